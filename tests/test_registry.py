import pytest
import torch

from captum_pi import MultiPassProgressive
from captum_pi.registry import FAMILIES, METHODS, PresetAttribution, get_method
from toy_models import tiny_classifier

PAPER_METHODS = {  # the paper's Table 2: name -> cost label
    "random": "0", "a-last": "0", "sp-pi": "0", "gae": "1", "input-x-gradient": "1",
    "lrp": "1", "integrated-gradients": "2n", "kernel-shap": "2n", "mp-pi": "2n",
}
IDS = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41, 12, 5]])
FEATURE_MASKS = {  # BOS is fixed, so SP-PI needs no extra pass
    1: torch.tensor([[-1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]),
    3: torch.tensor([[-1, 0, 0, 0, 1, 1, 1, 2, 2, 2]]),
    5: torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4]]),
}


def test_registry_has_every_method_of_the_paper_and_the_captum_extras():
    assert set(METHODS) == set(PAPER_METHODS) | {
        "feature-ablation", "shapley-value-sampling", "shapley-values", "lime", "mp-pi-shapley", "reagent"
    }
    for name, label in PAPER_METHODS.items():
        assert METHODS[name].paper_cost == label
    assert {spec.family for spec in METHODS.values()} <= set(FAMILIES)
    assert all(spec.name == name for name, spec in METHODS.items())


def test_get_method_normalises_names_and_lists_the_choices():
    assert get_method("Kernel_SHAP") is METHODS["kernel-shap"]
    with pytest.raises(KeyError, match="kernel-shap"):
        get_method("kernelshap")


class RowCounter:
    r"""Counts rows reaching the classification head in forward passes, and rows
    whose head output receives a gradient in backward passes. A forward pass over one
    row counts 1 forward-pass equivalent, a backward pass over one row counts 1."""

    def __init__(self, model):
        self.forward_rows = 0
        self.backward_rows = 0
        self.handles = [
            model.score.register_forward_pre_hook(self._count_forward),
            model.score.register_forward_hook(self._watch_backward),
        ]

    def _count_forward(self, _module, args):
        self.forward_rows += args[0].shape[0]

    def _watch_backward(self, _module, _args, output):
        if output.requires_grad:
            def count(gradient):
                self.backward_rows += gradient.shape[0]
            output.register_hook(count)

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("n", sorted(FEATURE_MASKS))
@pytest.mark.parametrize("name", list(METHODS))
def test_cost_matches_the_passes_actually_made(name, n):
    model = tiny_classifier("gpt2")
    spec = METHODS[name]
    method = spec.build(model)  # building may probe the model; that is not counted
    counter = RowCounter(model)
    try:
        method.attribute(IDS, feature_mask=FEATURE_MASKS[n], baselines=3,
                         **({"seed": 0} if spec.stochastic else {}))
    finally:
        counter.remove()
    passes = counter.forward_rows + counter.backward_rows
    prediction_pass = 0 if name == "random" else 1
    if name == "shapley-value-sampling":  # coalitions repeated across permutations cost once
        assert n + 1 < passes <= spec.cost(n) + prediction_pass, counter.forward_rows
    elif name == "reagent":  # probes that meet the stopping condition leave budget unspent
        assert passes == method.last_runs[0].rows + prediction_pass <= spec.cost(n) + prediction_pass
    else:
        assert passes == spec.cost(n) + prediction_pass, (counter.forward_rows, counter.backward_rows)


def test_costs_follow_the_paper_for_larger_inputs():
    n = 40
    for name, label in PAPER_METHODS.items():
        if name == "integrated-gradients":  # many steps by default, for completeness
            from captum_pi._core.gradient_adapters import default_n_steps

            assert METHODS[name].cost(n) == 2 * default_n_steps(n) + 2
            assert METHODS[name].cost_formula.startswith(str(2 * default_n_steps(n) + 2))
            continue
        paper = {"0": 0, "1": 1, "2n": 2 * n}[label]
        # MP-PI's 2n passes include the unmasked input, which is the prediction pass
        assert METHODS[name].cost(n) == paper - (name == "mp-pi")


def test_integrated_gradients_with_n_minus_1_steps_costs_the_papers_2n():
    model = tiny_classifier("gpt2")
    words = FEATURE_MASKS[5]
    counter = RowCounter(model)
    try:
        METHODS["integrated-gradients"].build(model).attribute(IDS, feature_mask=words, baselines=3, n_steps=4)
    finally:
        counter.remove()
    assert counter.forward_rows + counter.backward_rows == 2 * 5 + 1  # 2n, and the prediction pass


def test_preset_options_are_applied_and_can_be_overridden():
    model = tiny_classifier("llama")
    words = FEATURE_MASKS[5]
    preset = METHODS["mp-pi-shapley"].build(model)
    assert isinstance(preset, PresetAttribution) and preset.options == {"sampling": "shapley"}
    plain = MultiPassProgressive(model)
    # a budget beyond the deterministic border passes and short of every coalition
    options = dict(feature_mask=words, baselines=3, seed=0, n_samples=13)
    shapley = plain.attribute(IDS, sampling="shapley", **options)
    optimized = plain.attribute(IDS, **options)
    assert torch.equal(preset.attribute(IDS, **options), shapley)
    overridden = preset.attribute(IDS, sampling="optimized", **options)
    assert torch.equal(overridden, optimized)
    assert not torch.equal(shapley, optimized)
    assert preset.per_position is preset.method.per_position
