import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import KernelShap, Lime
from tiny_text import AdditiveTextModel, tiny_tokenizer
from toy_models import MASK_ID

from captum_pi import MultiPassProgressive, feature_attributions
from captum_pi._core.budget import (
    BudgetWarning,
    check_captum_budget,
    design_rank,
    identifying_n_samples,
    mp_pi_minimum_n_samples,
)
from captum_pi._core.captum_adapters import (
    TokenKernelShap,
    TokenLime,
    TokenShapleyValueSampling,
)
from captum_pi._core.multi_pass import minimum_n_samples
from captum_pi.llm_attr import LLMClassifierAttribution
from captum_pi.text import TextFeatureInput, mask_token_id

IDS = torch.tensor([[1, 7, 9, 13, 21, 5, 30, 4, 11]])
WORDS = torch.tensor([[-1, 0, 0, 1, 2, 2, -1, 3, 3]])
N_WORDS = 4
# 6 features of two tokens each, for MP-PI
IDS6 = torch.randint(1, 32, (1, 12), generator=torch.Generator().manual_seed(11))
PAIRS = torch.arange(12).div(2, rounding_mode="floor")[None]


class AdditiveLogits(torch.nn.Module):
    r"""Per-position logits are running sums of per-token vectors, the mask token
    adding 0: the logit game is additive, so a regression that identifies every
    feature recovers each feature's own contribution exactly, and one that does not
    returns something else. Records the rows it sees."""

    def __init__(self, vocab_size: int = 32, n_classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.table = torch.randn(vocab_size, n_classes, generator=generator, dtype=torch.float64)
        self.table[MASK_ID] = 0.0
        self.seen = []

    def forward(self, input_ids, attention_mask=None):
        self.seen.append(input_ids.clone())
        return self.table[input_ids].cumsum(dim=1)

    def contributions(self, ids, features, target):
        n = int(features.max()) + 1
        return torch.stack([self.table[ids[0][features[0] == k], target].sum() for k in range(n)])

    def design(self, ids, features):
        r"""0/1 presence of every feature in every row seen (the regression's rows)."""
        seen = torch.cat(self.seen)
        n = int(features.max()) + 1
        return torch.stack(
            [(seen[:, features[0] == k] == ids[0][features[0] == k]).all(dim=1) for k in range(n)],
            dim=1,
        ).double().numpy()


def _budget_warnings(caught):
    return [w for w in caught if issubclass(w.category, BudgetWarning)]


def _attribute(method, model, ids, features, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attr = method.attribute(
            ids, target=2, feature_mask=features, baselines=MASK_ID, masking="replace", target_type="logit", **options
        )
    return feature_attributions(attr, features)[0].double(), _budget_warnings(caught)


def _lime(model):
    return TokenLime(model, interpretable_model=SkLearnLinearRegression())


def test_identifying_budget_is_one_row_per_unknown():
    assert [identifying_n_samples(n) for n in (1, 2, 13)] == [2, 3, 14]
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match="positive int"):
            identifying_n_samples(bad)


def test_design_rank_counts_the_intercept():
    # the all-1 and all-0 rows and one coalition: 3 independent rows for 4 unknowns
    rows = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0]])
    assert design_rank(rows) == 3
    assert design_rank(np.vstack([rows, [[1, 1, 0]]])) == 4
    assert design_rank(np.vstack([rows, [[1, 0, 0]]])) == 3  # a repeat adds nothing
    assert design_rank(rows, intercept=False) == 2
    assert design_rank(np.zeros((0, 3))) == 0


@pytest.mark.parametrize("make", [TokenKernelShap, _lime], ids=["kernel-shap", "lime"])
def test_one_below_the_minimum_warns_and_misses_the_exact_values(make):
    model = AdditiveLogits()
    exact = model.contributions(IDS, WORDS, 2)
    phi, caught = _attribute(make(model), model, IDS, WORDS, n_samples=N_WORDS, seed=0)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"n_samples={N_WORDS} " in message and f"all {N_WORDS} features" in message
    assert f"n_samples={N_WORDS + 1}" in message  # the minimum
    design = model.design(IDS, WORDS)
    assert design.shape[0] == N_WORDS and design_rank(design) < N_WORDS + 1
    assert (phi - exact).abs().max() > 1e-2


@pytest.mark.parametrize(
    "make, seed", [(TokenKernelShap, 0), (_lime, 2)], ids=["kernel-shap", "lime"]
)
def test_at_the_minimum_a_full_rank_draw_is_exact_and_silent(make, seed):
    model = AdditiveLogits()
    phi, caught = _attribute(make(model), model, IDS, WORDS, n_samples=N_WORDS + 1, seed=seed)
    assert caught == []
    assert design_rank(model.design(IDS, WORDS)) == N_WORDS + 1
    # an exact fit of an additive game; Kernel SHAP's 1e6 end weights cost ~1e-6
    torch.testing.assert_close(phi, model.contributions(IDS, WORDS, 2), atol=1e-4, rtol=0)


def test_at_the_minimum_a_draw_with_repeats_still_warns():
    model = AdditiveLogits()
    phi, caught = _attribute(TokenKernelShap(model), model, IDS, WORDS, n_samples=N_WORDS + 1, seed=2)
    assert len(caught) == 1 and "span only" in str(caught[0].message)
    assert design_rank(model.design(IDS, WORDS)) < N_WORDS + 1
    assert (phi - model.contributions(IDS, WORDS, 2)).abs().max() > 1e-2


def test_the_reported_case_budget_3_for_13_features():
    model = AdditiveLogits()
    ids = torch.arange(1, 15)[None]
    features = torch.tensor([[-1] + list(range(13))])
    phi, caught = _attribute(TokenKernelShap(model), model, ids, features, n_samples=3, seed=0)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "13 features" in message and "n_samples=3 " in message and "n_samples=14" in message
    # one sampled coalition splits the features in two groups; the minimum-norm
    # solution gives every feature of a group the same value (to Captum's float32)
    values = np.sort(phi.numpy())
    assert int((np.diff(values) > 1e-6).sum()) + 1 <= 2
    assert (phi - model.contributions(ids, features, 2)).abs().max() > 1e-2


def test_shapley_value_sampling_never_warns():
    model = AdditiveLogits()
    phi, caught = _attribute(TokenShapleyValueSampling(model), model, IDS, WORDS, n_samples=1, seed=0)
    assert caught == []
    torch.testing.assert_close(phi, model.contributions(IDS, WORDS, 2), atol=1e-5, rtol=0)  # float32 model passes


def test_the_minima_import_without_torch_or_numpy():
    # the command line checks --budget before it loads a model
    code = (
        "import sys; from captum_pi._core.budget import identifying_n_samples, "
        "mp_pi_minimum_n_samples; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mp_pi_minimum_and_its_error_message():
    assert minimum_n_samples is mp_pi_minimum_n_samples
    assert [minimum_n_samples(n) for n in (1, 2, 50)] == [2, 3, 3]
    with pytest.raises(ValueError, match="must be an int >= 3 for a row with 6 features"):
        MultiPassProgressive(AdditiveLogits()).attribute(
            IDS6, feature_mask=PAIRS, baselines=MASK_ID, n_samples=2
        )
    with pytest.raises(ValueError, match="positive int"):
        minimum_n_samples(0)


@pytest.mark.parametrize("seed, identified", [(2, False), (0, True)])
def test_mp_pi_warns_exactly_when_its_pooled_design_is_rank_deficient(seed, identified):
    model = AdditiveLogits()
    phi, caught = _attribute(
        MultiPassProgressive(model), model, IDS6, PAIRS, n_samples=3, seed=seed, weighting="coalition"
    )
    exact = model.contributions(IDS6, PAIRS, 2)
    if identified:
        assert caught == []
        torch.testing.assert_close(phi, exact, atol=1e-5, rtol=0)  # float32 model passes
    else:
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "MP-PI" in message and "6 features" in message and "n_samples=3 " in message
        assert "n_samples=7" in message
        assert (phi - exact).abs().max() > 1e-2
    # efficiency holds either way: it is enforced, not estimated
    assert float(phi.sum()) == pytest.approx(float(exact.sum()), abs=1e-5)


@pytest.mark.parametrize("seed", [0, 2])
def test_mp_pi_with_the_unmasked_chain_identifies_every_feature_at_the_smallest_budget(seed):
    # the default weighting pools the prefixes of the unmasked pass too: n - 1
    # independent coalitions, so an additive game is exact from 3 passes on
    model = AdditiveLogits()
    phi, caught = _attribute(MultiPassProgressive(model), model, IDS6, PAIRS, n_samples=3, seed=seed)
    assert caught == []
    torch.testing.assert_close(phi, model.contributions(IDS6, PAIRS, 2), atol=1e-5, rtol=0)


def test_mp_pi_default_budget_is_silent_and_exact():
    model = AdditiveLogits()
    phi, caught = _attribute(MultiPassProgressive(model), model, IDS6, PAIRS, seed=2)
    assert caught == []
    torch.testing.assert_close(phi, model.contributions(IDS6, PAIRS, 2), atol=1e-5, rtol=0)  # float32 model passes


@pytest.mark.parametrize("cls", [KernelShap, Lime])
def test_captum_methods_through_the_wrapper_follow_the_count_rule(cls):
    tokenizer = tiny_tokenizer()
    model = AdditiveTextModel(len(tokenizer), mask_token_id(tokenizer))
    inp = TextFeatureInput("It works. Not bad, really.", tokenizer, level="word", template="Review: {}")
    n = inp.n_itp_features
    explainer = LLMClassifierAttribution(cls(model), tokenizer, target_type="logit")
    for n_samples, expected in ((n, 1), (n + 1, 0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            explainer.attribute(inp, target=1, n_samples=n_samples, seed=0)
        found = _budget_warnings(caught)
        assert len(found) == expected, (n_samples, [str(w.message) for w in found])
        if found:
            message = str(found[0].message)
            assert f"{cls.__name__}: n_samples={n} " in message and f"n_samples={n + 1}" in message


def test_captum_budget_check_reads_the_default_and_ignores_other_methods():
    model = AdditiveLogits()
    with pytest.warns(BudgetWarning, match="n_samples=25 .* all 30 features"):
        check_captum_budget(KernelShap(model), 30, {})  # Captum's default n_samples is 25
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_captum_budget(KernelShap(model), 24, {})
        check_captum_budget(TokenKernelShap(model), 30, {"n_samples": 2})  # not Captum's
