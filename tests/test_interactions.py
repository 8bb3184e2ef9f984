r"""Feature interactions: the shapiq game of a text, interactions from PI passes, the view."""
import importlib
import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from tiny_text import tiny_gpt2_classifier, tiny_tokenizer

shapiq = pytest.importorskip("shapiq")

from toy_models import deleted_ids, hf_value, tiny_classifier  # noqa: E402

from captum_pi.interactions import (  # noqa: E402
    SHAPIQ_INSTALL,
    TableGame,
    TextGame,
    interaction_basis,
    interaction_html,
    interaction_text,
    plan_passes,
    progressive_interactions,
    top_interactions,
)
from captum_pi.metrics import coalition_values  # noqa: E402
from captum_pi.text import TextFeatureInput  # noqa: E402

IDS = torch.tensor([[1, 7, 9, 13, 21, 33, 40]])
FEATURES = torch.tensor([[-1, 0, 0, 1, 2, 3, 3]])
MASK_ID = 3


def all_coalitions(n):
    r"""BoolArray ``[2^n, n]``, row ``s`` the bits of ``s`` (our tables' order)."""
    return (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1 == 1


def triple_table():
    r"""``v(S) = 1`` when ``S`` holds all three features, else 0."""
    return all_coalitions(3).all(axis=1).astype(float)


# --- exact indices on a tiny game -------------------------------------------------------

def test_exact_indices_of_the_pure_triple_match_hand_computed_values():
    # FSII of order 2 (weighted least squares, Kernel SHAP weights 1/3 on sizes 1 and 2, exact
    # at the empty and full set): by symmetry beta_i = a, beta_ij = 1/3 - a, minimising
    # a^2 + (a + 1/3)^2 gives a = -1/6, beta_ij = 1/2. k-SII: SII_ij = (0 + 1) / 2 and
    # phi_i - (SII_ij + SII_ik) / 2 = 1/3 - 1/2.
    exact = shapiq.ExactComputer(TableGame(triple_table()))
    for index in ("FSII", "k-SII"):
        values = exact(index, 2)
        for i in range(3):
            assert values[(i,)] == pytest.approx(-1 / 6, abs=1e-6)
        for pair in itertools.combinations(range(3), 2):
            assert values[pair] == pytest.approx(1 / 2, abs=1e-6)
    assert exact("SV", 1)[(0,)] == pytest.approx(1 / 3)


def test_progressive_interactions_with_every_coalition_revealed_are_the_exact_fsii():
    game = TableGame(triple_table())
    values = progressive_interactions(game, n_samples=4, seed=0)  # 2^(n-1) passes reveal all
    assert game.n_rows == 4 and values.estimation_budget == 4 and not values.estimated
    assert values[()] == values.baseline_value == 0.0
    np.testing.assert_allclose([values[(i,)] for i in range(3)], [-1 / 6] * 3, atol=1e-12)
    np.testing.assert_allclose([values[p] for p in itertools.combinations(range(3), 2)], [0.5] * 3, atol=1e-12)


def test_progressive_interactions_of_a_random_game_equal_shapiqs_exact_fsii_at_full_budget():
    table = np.random.default_rng(0).normal(size=2 ** 5)
    exact = shapiq.ExactComputer(TableGame(table))("FSII", 2)
    values = progressive_interactions(TableGame(table), n_samples=2 ** 4, seed=1)
    for interaction in exact.interaction_lookup:
        assert values[interaction] == pytest.approx(exact[interaction], abs=1e-6)  # shapiq's big-M weights


def test_interaction_basis_marks_the_subsets_of_each_coalition_in_shapiqs_order():
    basis, interactions = interaction_basis(np.array([[True, False, True]]), 2)
    assert interactions == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    assert basis.tolist() == [[1, 0, 1, 0, 1, 0]]


# --- the game of a classifier equals our masking rules -----------------------------------

@pytest.mark.parametrize("masking", ["delete", "replace"])
def test_the_game_of_a_classifier_is_its_prediction_on_each_masked_input(masking):
    model = tiny_classifier("llama")
    game = TextGame(model, IDS, target=1, feature_mask=FEATURES, baselines=MASK_ID, masking=masking,
                    perturbations_per_eval=3)
    coalitions = all_coalitions(4)
    values = game(coalitions)
    reference = coalition_values(model, IDS, target=1, feature_mask=FEATURES, baselines=MASK_ID,
                                 masking=masking).games[0]
    np.testing.assert_allclose(values, reference, atol=1e-5)
    for coalition, value in zip(coalitions, values):
        kept = {int(f) for f in np.flatnonzero(coalition)}
        if masking == "delete":
            ids = deleted_ids(IDS[0], FEATURES[0], kept)
        else:
            keep = torch.tensor([f < 0 or f in kept for f in FEATURES[0].tolist()])
            ids = torch.where(keep, IDS[0], torch.full_like(IDS[0], MASK_ID))
        assert value == pytest.approx(hf_value(model, ids, 1), abs=1e-5)
    # deletion reads every coalition off the passes that contain the last feature
    assert game.n_rows == (2 ** 3 if masking == "delete" else 2 ** 4)
    assert game.n_calls == (1 + 3 if masking == "delete" else 1 + 5)  # anchors, then batches of 3
    before = game.n_rows
    game(coalitions[:5])
    assert game.n_rows == before  # cached


def test_the_game_of_a_text_feature_input_uses_its_features_and_masking():
    tokenizer = tiny_tokenizer()
    model = tiny_gpt2_classifier(len(tokenizer))
    inp = TextFeatureInput("It works. Not great. I love it!", tokenizer, level="sentence",
                           template="Review: {}")
    game = TextGame.from_input(model, inp, target=2)
    assert game.n_players == 3 and game.features is inp and game.target == 2
    assert game.player_name_lookup == {name: i for i, name in enumerate(inp.values)}
    masked = inp.to_masked_inputs(torch.tensor([[1, 0, 1]]))
    with torch.no_grad():
        logits = model(input_ids=masked.input_ids, attention_mask=masked.attention_mask).logits
    assert game(np.array([[True, False, True]]))[0] == pytest.approx(
        float(torch.softmax(logits[0], -1)[2]), abs=1e-5)
    assert game.empty_value == pytest.approx(hf_value(model, inp.to_masked_inputs(torch.zeros(1, 3)).input_ids[0], 2),
                                             abs=1e-5)


def test_a_game_explains_one_row():
    with pytest.raises(ValueError, match="one row"):
        TextGame(tiny_classifier("gpt2"), IDS.repeat(2, 1))


def test_plan_passes_reveals_every_requested_coalition_with_the_fewest_passes():
    every = all_coalitions(5)[1:]  # the empty coalition, after no feature, would be a pass of its own
    passes = plan_passes(every)
    assert len(passes) == 2 ** 4 and passes[:, -1].all()
    rng = np.random.default_rng(0)
    some = np.unique(rng.random((12, 6)) < 0.5, axis=0)
    passes = plan_passes(some)
    for coalition in some:
        last = np.flatnonzero(coalition).max(initial=-1)
        assert any(((p & (np.arange(6) <= last)) == coalition).all() for p in passes)
    assert len(passes) <= len(some)


# --- every shapiq approximator runs on a classifier ------------------------------------

IDS6 = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41, 12]])
FEATURES6 = torch.tensor([[-1, 0, 0, 1, 2, 3, 4, 5, 5]])


@pytest.mark.parametrize("approximator, budget", [("ProxySPEX", 64), ("RegressionFSII", 20), ("KernelSHAPIQ", 20)])
def test_shapiq_approximators_run_on_a_text_game_and_return_interaction_values(approximator, budget):
    # SPEX runs in tests/test_interactions_spex.py: its first call compiles its BCH decoder.
    if approximator == "ProxySPEX":
        pytest.importorskip("lightgbm", reason="ProxySPEX needs lightgbm")
    model = tiny_classifier("gpt2")
    game = TextGame(model, IDS6, target=0, feature_mask=FEATURES6)
    options = {"index": "FSII"} if approximator != "KernelSHAPIQ" else {"index": "k-SII"}
    estimator = getattr(shapiq, approximator)(n=6, max_order=2, random_state=0, **options)
    values = estimator.approximate(budget, game)
    assert isinstance(values, shapiq.InteractionValues) and values.index == options["index"]
    assert np.isfinite(values.values).all() and len(values.values) > 1
    assert game.n_rows <= budget + 1  # cached and read off passes; the anchor pass included


# --- the PI estimator recovers a planted interaction -------------------------------------

class PlantedPairModel(torch.nn.Module):
    r"""Causal: the class-1 logit after position ``t`` is ``sum_i w_i x_i + 3 x_2 x_5``,
    ``x_i`` = 1 once token ``2 + i`` (feature ``i``) has been read; class 0's logit is 0."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.weights = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)

    def forward(self, input_ids, attention_mask=None):
        present = torch.nn.functional.one_hot(input_ids, 2 + self.n)[..., 2:].double()
        if attention_mask is not None:
            present = present * attention_mask[..., None]
        seen = present.cumsum(dim=1).clamp(max=1)
        logit = seen @ self.weights + 3.0 * seen[..., 2] * seen[..., 5]
        return torch.stack([torch.zeros_like(logit), logit], dim=-1)


def test_progressive_interactions_recover_a_planted_pair_of_a_causal_model():
    n = 8
    ids = torch.tensor([[1] + [2 + i for i in range(n)]])
    features = torch.tensor([[-1] + list(range(n))])
    game = TextGame(PlantedPairModel(n), ids, target=1, feature_mask=features, target_type="logit")
    values = progressive_interactions(game, n_samples=4 * n, seed=0)
    assert game.n_rows == 4 * n and values.estimated
    (pair, value), (_, runner_up) = top_interactions(values, k=2)
    assert pair == (2, 5) and 2.7 < value <= 3.0 and abs(runner_up) < 0.1  # the default ridge shrinks a little
    # the 4n passes identify every coefficient, so least squares recovers the 2-additive game exactly
    exact = progressive_interactions(TextGame(PlantedPairModel(n), ids, target=1, feature_mask=features,
                                              target_type="logit"), n_samples=4 * n, seed=0, ridge=0.0)
    assert exact[(2, 5)] == pytest.approx(3.0, abs=1e-5)  # PerPositionForward returns float32 logits
    assert max(abs(exact[p]) for p in itertools.combinations(range(n), 2) if p != (2, 5)) < 1e-5
    np.testing.assert_allclose([exact[(i,)] for i in range(n)], np.linspace(-1, 1, n), atol=1e-5)


def test_progressive_interactions_under_replacement_cost_their_budget():
    game = TextGame(tiny_classifier("gpt2"), IDS, target=0, feature_mask=FEATURES, baselines=MASK_ID,
                    masking="replace")
    values = progressive_interactions(game, n_samples=6, seed=0)
    assert game.n_rows == 6 and values.estimation_budget == 6
    assert values[tuple(range(2))] == values[(0, 1)] and np.isfinite(values.values).all()


def test_progressive_interactions_refuse_bad_options_before_any_pass():
    game = TableGame(triple_table())
    with pytest.raises(ValueError, match="max_order"):
        progressive_interactions(game, max_order=4)
    with pytest.raises(ValueError, match="ridge"):
        progressive_interactions(game, ridge=-1.0)
    with pytest.raises(TypeError, match="TextGame or TableGame"):
        progressive_interactions(lambda coalitions: coalitions.sum(axis=1))
    assert game.n_rows == 1


def test_too_few_passes_warn_that_the_interactions_are_not_identified():
    from captum_pi import BudgetWarning

    with pytest.warns(BudgetWarning, match="identify only"):
        progressive_interactions(TableGame(np.arange(2.0 ** 6)), n_samples=6, seed=0)


# --- the view ----------------------------------------------------------------------------

def test_the_text_view_lists_the_strongest_pairs_first():
    values = shapiq.InteractionValues(
        np.array([0.0, 0.1, 0.2, 0.3, -0.5, 0.05, 0.2]), index="FSII", max_order=2, min_order=0,
        n_players=3, interaction_lookup={(): 0, (0,): 1, (1,): 2, (2,): 3, (0, 1): 4, (0, 2): 5, (1, 2): 6},
    )
    assert top_interactions(values, k=2) == [((0, 1), -0.5), ((1, 2), 0.2)]
    lines = interaction_text(values, ["Works.", "Made me dizzy.", "Stopped."], k=2).splitlines()
    assert lines[1].split() == ["-0.5000", "[1]", '"Works."', "x", "[2]", '"Made', 'me', 'dizzy."']
    assert "[2]" in lines[2] and "[3]" in lines[2] and len(lines) == 3


def test_the_html_view_highlights_the_interacting_features_together_and_escapes_text():
    tokenizer = tiny_tokenizer()
    inp = TextFeatureInput("It <b>works</b>. Not great. I love it!", tokenizer, level="sentence")
    values = shapiq.ExactComputer(TableGame(triple_table()))("FSII", 2)
    page = interaction_html(values, inp, k=2, caption="P(<positive>)")
    assert "<b>works</b>" not in page and "&lt;b&gt;works&lt;/b&gt;" in page and "P(&lt;positive&gt;)" in page
    panels = page.split('<section class="panel"')[1:]
    assert len(panels) == 2 and 'data-interaction="0 1"' in panels[0]
    first = panels[0]
    assert first.count("outline") == 2 and 'data-feature="2">' in first  # feature 2 is not highlighted
    assert "<script" not in page


# --- shapiq is optional ------------------------------------------------------------------

def test_without_shapiq_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "shapiq", None)  # `import shapiq` now raises ImportError
    for name in [name for name in sys.modules if name.startswith("captum_pi.interactions")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError) as error:
        importlib.import_module("captum_pi.interactions")
    assert SHAPIQ_INSTALL in str(error.value) and 'pip install "captum-pi[shapiq]"' in str(error.value)


def test_importing_captum_pi_does_not_import_shapiq():
    probe = "import sys, captum_pi; captum_pi.__all__; print('shapiq' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False"
