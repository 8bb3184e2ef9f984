r"""
Every attribution method of the package by name, so that benchmarks, the command
line and tutorials can iterate over them without special cases::

    from captum_pi.registry import METHODS, get_method

    for name, spec in METHODS.items():
        method = spec.build(model)
        options = {"seed": 0} if spec.stochastic else {}
        if spec.masks:
            options["masking"] = "delete"       # or "replace", the same for every method
        attr = method.attribute(ids, feature_mask=words, baselines=mask_id,
                                attention_mask=attention_mask, **options)   # [B, T]
        print(name, spec.family, spec.cost(n_features))

Every built method follows the uniform protocol
``attribute(inputs, target=None, feature_mask=None, baselines=mask_id,
attention_mask=None, **options) -> Tensor [B, T]`` in Captum's FeatureAblation
convention. Methods that mask features (``spec.masks``: SP-PI, MP-PI and the
perturbation methods) take ``masking="delete"`` (their default) or
``"replace"`` (see :mod:`captum_pi._core.masking`); under ``"replace"``,
``baselines`` is the mask token. Integrated Gradients' baseline is always the
replacement one (a path needs equal lengths). Budgets that depend on the number of features ``n`` (``n_samples = 2 n``
for Kernel SHAP, Lime and MP-PI, ``n_steps`` for Integrated Gradients) are bound per
row at call time, so one built method serves inputs of any length.

**Cost convention.** ``spec.cost(n)`` counts forward-pass equivalents for one input
row with ``n`` features *beyond the forward pass on the unmasked input that gives the
prediction*, which the user needs anyway (so Random, A-Last and SP-PI cost 0, as in
the paper's Table 2). A forward pass over one row counts 1 and a backward pass over
one row counts 1 (the paper, section 4.1: IG's samples each cost "a forward and
backward pass"). With ``target=None`` a method makes exactly ``cost(n) + 1``
row-passes (Random: 0; Shapley Value Sampling at most that, as it evaluates a
coalition that recurs across permutations once), which ``tests/test_registry.py`` checks by counting the rows
that reach the model's head. SP-PI's 0 assumes a fixed (-1) token such as BOS
before the first feature; without one it evaluates the fully masked row too (1).
``spec.paper_cost`` is the label of the paper's Table 2 where the method appears
there. Costs are per input row; a batch of ``B`` rows costs ``B`` times as much.

======================  ============  =================  =====  ===================
name                    family        cost(n)            paper  feature scores
======================  ============  =================  =====  ===================
random                  random        0                  0      per feature
a-last                  attention     0                  0      sum over tokens
sp-pi                   progressive   0                  0      per feature
gae                     attention     1                  1      sum over tokens
input-x-gradient        gradient      1                  1      L2 (dims, tokens)
lrp                     gradient      1                  1      L2 (dims, tokens)
integrated-gradients    gradient      516 (257 points)   2n     sum (dims, tokens)
kernel-shap             perturbation  2n                 2n     per feature
feature-ablation        perturbation  n + 1              --     per feature
shapley-value-sampling  perturbation  <= 2n              --     per feature
shapley-values          perturbation  2^n (n <= 8)       --     per feature
lime                    perturbation  2n                 --     per feature
mp-pi                   progressive   <= 2n - 1          2n     per feature
mp-pi-shapley           progressive   <= 2n - 1          --     per feature
reagent                 perturbation  <= 2n              --     per feature
======================  ============  =================  =====  ===================

MP-PI spends ``2 n`` passes, one of which is the unmasked input (the prediction), so
``2n - 1`` beyond it; the paper rounds to ``2n``. Its passes are distinct, so it never
spends more than the ``2^(n-1)`` passes (with a BOS or prefix token under deletion)
that reveal every coalition and give the exact Shapley values: below ``n = 5`` that
is fewer than ``2n``. Integrated Gradients takes 257
trapezoid points by default (:func:`captum_pi._core.gradient_adapters.default_n_steps`: fewer
miss completeness by far more than 5 % on SmolLM2's drug reviews), plus the two
forward passes in which Captum's ``LayerIntegratedGradients`` reads the embedding
layer on the input and the baseline; pass ``n_steps=n - 1`` for the paper's ``2n``.
Shapley Values evaluates each of the ``2^n`` coalitions once (the unmasked input
among them). ReAGent spends at most ``2 n`` rows (``n_samples``) beyond its prediction
pass, which it always makes (it needs the probability on the unmasked input); probes
that meet its stopping condition leave the rest unspent (``last_runs`` tells the rows
spent). It plays the masking game like the other perturbation methods; its
``replacement="lm"`` option (tokens from the explained model's language-model head,
closer to the paper's RoBERTa replacements) plays neither game.
"""
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Union

if TYPE_CHECKING:
    from torch import Tensor

#: Where the method classes live: they are imported when a method is built, so
#: listing the registry (``captum-pi methods``) imports neither torch nor captum.
_CORE = "captum_pi._core."

FAMILIES = ("random", "attention", "gradient", "perturbation", "progressive")


class PresetAttribution:
    r"""
    An attribution method with some ``attribute`` options preset (a call may still
    override them), e.g. MP-PI with ``sampling="shapley"``. Other attributes are
    those of the wrapped method.

    Args:
        method (Attribution): The method.
        **options: Keyword arguments passed to every ``attribute`` call.
    """

    def __init__(self, method: Any, **options: Any) -> None:
        self.method = method
        self.options = options

    def attribute(self, inputs: "Tensor", *args: Any, **kwargs: Any) -> "Tensor":
        return self.method.attribute(inputs, *args, **{**self.options, **kwargs})

    def __getattr__(self, name: str) -> Any:
        method = self.__dict__.get("method")
        if method is None:
            raise AttributeError(name)
        return getattr(method, name)


@dataclass(frozen=True)
class MethodSpec:
    r"""
    A named attribution method.

    Attributes:
        name (str): Registry key, e.g. ``"kernel-shap"``.
        title (str): Name for tables and plots, e.g. ``"Kernel SHAP"``.
        family (str): ``"random"``, ``"attention"``, ``"gradient"``,
                    ``"perturbation"`` or ``"progressive"``.
        factory (Callable or str): ``factory(model)`` returns the method object;
                    a ``"module:attribute"`` string names such a callable, imported
                    on the first :meth:`build`.
        cost (Callable): ``cost(n)``: forward-pass equivalents per row with ``n``
                    features beyond the prediction pass (see the module docstring).
        cost_formula (str): ``cost`` as a formula, e.g. ``"2n"``.
        paper_cost (str or None): The cost printed in the paper's Table 2, or None
                    for methods the paper does not compare.
        needs_hf_model (bool): True if the method differentiates through or reads
                    the attention of a Hugging Face model; False if any callable
                    returning per-position logits works.
        uses_baselines (bool): True if ``baselines`` is used: the mask token id
                    under ``masking="replace"`` (and Integrated Gradients'
                    baseline), the token of an empty input under ``"delete"``.
        masks (bool): True if the method masks features and so takes
                    ``masking`` (``"delete"`` or ``"replace"``).
        default_target_type (str or None): The explained quantity when
                    ``target_type`` is not passed; None if the method ignores the
                    class (Random, A-Last).
        aggregation (str or None): How token scores become feature scores:
                    ``"sum"``, ``"l2"``, or None for methods that score features
                    directly.
        stochastic (bool): True if results depend on random draws; such methods
                    accept ``seed`` (pass it only to them: SP-PI, for one, takes
                    no ``seed``).
    """

    name: str
    title: str
    family: str
    factory: Union[Callable[[Any], Any], str] = field(repr=False)
    cost: Callable[[int], int] = field(repr=False)
    cost_formula: str
    paper_cost: Optional[str]
    needs_hf_model: bool
    uses_baselines: bool
    masks: bool
    default_target_type: Optional[str]
    aggregation: Optional[str]
    stochastic: bool

    def build(self, model: Any) -> Any:
        r"""The method object for ``model``, following the uniform protocol."""
        factory = self.factory
        if isinstance(factory, str):
            module, attribute = factory.split(":")
            factory = getattr(importlib.import_module(module), attribute)
        return factory(model)


def _integrated_gradients_cost(n: int) -> int:
    from captum_pi._core.gradient_adapters import default_n_steps

    return 2 * default_n_steps(n) + 2


_MASKING = ("sp-pi", "kernel-shap", "feature-ablation", "shapley-value-sampling", "shapley-values",
            "lime", "mp-pi", "mp-pi-shapley", "reagent")
_STOCHASTIC = ("random", "kernel-shap", "shapley-value-sampling", "lime", "mp-pi", "mp-pi-shapley", "reagent")


def _spec(
    name: str, title: str, family: str, factory: Union[Callable[[Any], Any], str],
    cost: Callable[[int], int], cost_formula: str, paper_cost: Optional[str], *,
    hf: bool, baselines: bool, target_type: Optional[str], aggregation: Optional[str],
) -> MethodSpec:
    return MethodSpec(
        name=name, title=title, family=family, factory=factory, cost=cost,
        cost_formula=cost_formula, paper_cost=paper_cost, needs_hf_model=hf,
        uses_baselines=baselines, masks=name in _MASKING, default_target_type=target_type,
        aggregation=aggregation, stochastic=name in _STOCHASTIC,
    )


def _mp_pi_with_shapley_sampling(model: Any) -> PresetAttribution:
    from captum_pi._core.multi_pass import MultiPassProgressive

    return PresetAttribution(MultiPassProgressive(model), sampling="shapley")


_SPECS = (
    _spec("random", "Random", "random", _CORE + "random_baseline:RandomAttribution", lambda n: 0, "0", "0",
          hf=False, baselines=False, target_type=None, aggregation=None),
    _spec("a-last", "A-Last", "attention", _CORE + "attention_last:AttentionLast", lambda n: 0, "0", "0",
          hf=True, baselines=False, target_type=None, aggregation="sum"),
    _spec("sp-pi", "SP-PI", "progressive", _CORE + "single_pass:SinglePassProgressive", lambda n: 0, "0", "0",
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("gae", "GAE", "attention", _CORE + "generic_attention:GenericAttentionExplainability", lambda n: 1, "1", "1",
          hf=True, baselines=False, target_type="logit", aggregation="sum"),
    _spec("input-x-gradient", "Input x Gradient", "gradient", _CORE + "gradient_adapters:TokenInputXGradient",
          lambda n: 1, "1", "1",
          hf=True, baselines=False, target_type="prob", aggregation="l2"),
    _spec("lrp", "LRP for Transformers", "gradient", _CORE + "lrp_transformer:TransformerLRP", lambda n: 1, "1", "1",
          hf=True, baselines=False, target_type="logit", aggregation="l2"),
    _spec("integrated-gradients", "Integrated Gradients", "gradient", _CORE + "gradient_adapters:TokenIntegratedGradients",
          _integrated_gradients_cost, "516 (257 points)", "2n",
          hf=True, baselines=True, target_type="prob", aggregation="sum"),
    _spec("kernel-shap", "Kernel SHAP", "perturbation", _CORE + "captum_adapters:TokenKernelShap",
          lambda n: 2 * n, "2n", "2n",
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("feature-ablation", "Feature Ablation", "perturbation", _CORE + "captum_adapters:TokenFeatureAblation",
          lambda n: n + 1, "n + 1", None,
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("shapley-value-sampling", "Shapley Value Sampling", "perturbation",
          _CORE + "captum_adapters:TokenShapleyValueSampling", lambda n: 2 * n, "<= 2n", None,
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("shapley-values", "Shapley Values", "perturbation",
          _CORE + "captum_adapters:TokenShapleyValues", lambda n: 2 ** n, "2^n (n <= 8)", None,
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("lime", "LIME", "perturbation", _CORE + "captum_adapters:TokenLime", lambda n: 2 * n, "2n", None,
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("mp-pi", "MP-PI", "progressive", _CORE + "multi_pass:MultiPassProgressive",
          lambda n: min(2 * n, 2 ** (n - 1)) - 1, "min(2n, 2^(n-1)) - 1", "2n",
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("mp-pi-shapley", "MP-PI (Shapley sampling)", "progressive",
          _mp_pi_with_shapley_sampling, lambda n: min(2 * n - 1, 2 ** n - 2), "min(2n - 1, 2^n - 2)", None,
          hf=False, baselines=True, target_type="prob", aggregation=None),
    _spec("reagent", "ReAGent", "perturbation", _CORE + "reagent:ReAGent", lambda n: 2 * n, "<= 2n", None,
          hf=False, baselines=True, target_type="prob", aggregation=None),
)

METHODS: Dict[str, MethodSpec] = {spec.name: spec for spec in _SPECS}


def get_method(name: str) -> MethodSpec:
    r"""
    The :class:`MethodSpec` registered under ``name``.

    Args:
        name (str): One of ``METHODS`` (case-insensitive; ``_`` and ``-`` are
                    interchangeable).

    Returns:
        :class:`MethodSpec`

    Examples::

        >>> spec = get_method("kernel-shap")
        >>> attr = spec.build(model).attribute(ids, feature_mask=words, baselines=mask_id)
    """
    if not isinstance(name, str):
        raise TypeError(f"method name must be a str, got {type(name).__name__}.")
    key = name.strip().lower().replace("_", "-")
    if key not in METHODS:
        raise KeyError(f"unknown attribution method {name!r}; available: {', '.join(METHODS)}.")
    return METHODS[key]
