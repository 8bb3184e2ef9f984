import pytest
import torch
from torch import nn

from captum_pi import feature_attributions
from captum_pi._core.reagent import ReAGent
from captum_pi._core.token_samplers import LanguageModelSampler, UniformSampler
from captum_pi.registry import METHODS
from test_registry import RowCounter
from toy_models import tiny_classifier

PLANTED = 7
MASK_ID = 0
VOCAB = 32
# BOS (fixed), then 8 one-token features; the planted token is feature 4
IDS = torch.tensor([[1, 11, 12, 13, 14, PLANTED, 15, 16, 17]])
FEATURES = torch.tensor([[-1, 0, 1, 2, 3, 4, 5, 6, 7]])


class PlantedTokenModel(nn.Module):
    r"""Causal per-position classifier: class 1 once the planted token has been seen."""

    def forward(self, input_ids, attention_mask=None):
        seen = (input_ids == PLANTED).long().cummax(dim=1).values.float()
        return torch.stack([torch.zeros_like(seen), 6.0 * seen - 1.0], dim=-1)


class Recording(nn.Module):
    r"""A callable that records every row it is asked to evaluate."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.rows = []

    def forward(self, input_ids, attention_mask=None):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        self.rows += [ids[mask_row.bool()].clone() for ids, mask_row in zip(input_ids, mask)]
        return self.model(input_ids, attention_mask)


@pytest.mark.parametrize("options", [
    {"replacement": "uniform"},
    {},  # the deletion game
    {"masking": "replace", "baselines": MASK_ID},
])
def test_the_planted_token_ranks_first(options):
    reagent = ReAGent(PlantedTokenModel(), vocab_size=VOCAB)
    # rational_size=1: a probe stops only once the planted token alone keeps the class
    attr = reagent.attribute(IDS, target=1, feature_mask=FEATURES, n_samples=200,
                             rational_size=1, seed=0, **options)
    phi = feature_attributions(attr, FEATURES)[0]
    assert int(phi.argmax()) == 4
    assert torch.isclose(phi.sum(), torch.tensor(1.0), atol=1e-5)
    assert bool(reagent.last_runs[0].stopped.all())


def test_without_a_stopping_check_every_row_of_the_budget_updates_and_the_ranking_is_clear():
    reagent = ReAGent(PlantedTokenModel(), vocab_size=VOCAB)
    attr = reagent.attribute(IDS, target=1, feature_mask=FEATURES, n_samples=100, stop_top_k=None,
                             replacement="uniform", seed=0)
    phi = feature_attributions(attr, FEATURES)[0]
    run = reagent.last_runs[0]
    assert run.rows == 100 and run.steps.tolist() == [20] * 5 and not bool(run.stopped.any())
    others = torch.cat([phi[:4], phi[5:]])
    assert float(phi[4]) > 2 * float(others.max())


def test_the_same_seed_gives_the_same_attributions_and_another_seed_others():
    reagent = ReAGent(tiny_classifier("gpt2"))
    words = torch.tensor([[-1, 0, 0, 1, 2, 2, 3, 4, 5]])
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41, 12]])
    first = reagent.attribute(ids, feature_mask=words, seed=3, stop_top_k=None)
    again = reagent.attribute(ids, feature_mask=words, seed=3, stop_top_k=None)
    other = reagent.attribute(ids, feature_mask=words, seed=4, stop_top_k=None)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("replacement", ["uniform", "lm"])
def test_replacements_keep_fixed_tokens_and_the_length_and_change_replaced_tokens(replacement):
    model = tiny_classifier("gpt2")  # GPT-2 ties its embeddings: its LM head is available
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41, 12, 2, 2]])
    features = torch.tensor([[-1, 0, 0, 1, 2, 2, 3, 4, 5, -1, -1]])
    reagent = ReAGent(model)  # built before recording: building probes the model
    calls = []
    handle = model.transformer.register_forward_pre_hook(
        lambda _module, args, kwargs: calls.append(kwargs.get("input_ids", args[0] if args else None).clone()),
        with_kwargs=True)
    try:
        reagent.attribute(ids, feature_mask=features, seed=0, n_samples=24, replacement=replacement)
    finally:
        handle.remove()
    rows = torch.cat(calls[1:])  # after the prediction pass
    assert rows.shape == (reagent.last_runs[0].rows, ids.shape[1])  # updates and stopping checks
    fixed = features[0] < 0
    assert bool((rows[:, fixed] == ids[0, fixed]).all())
    changed = rows != ids[0]
    # a feature is replaced as a whole: all of its tokens change, or none
    for feature in range(6):
        tokens = changed[:, features[0] == feature]
        assert bool((tokens.all(dim=1) | ~tokens.any(dim=1)).all())
    assert bool(changed.any(dim=1).all())


def test_under_deletion_the_rows_are_the_deleted_inputs():
    recording = Recording(PlantedTokenModel())
    ReAGent(recording, vocab_size=VOCAB).attribute(IDS, target=1, feature_mask=FEATURES,
                                                   n_samples=20, stop_top_k=None, seed=0)
    for row in recording.rows[1:]:
        assert row[0] == 1 and len(row) == 1 + 8 - 2  # BOS kept, 2 of 8 features (0.3 n) deleted
        kept = [int(t) for t in row[1:]]
        assert kept == [t for t in IDS[0, 1:].tolist() if t in kept]  # order kept


def test_the_language_model_sampler_draws_the_models_next_token_guesses():
    model = tiny_classifier("gpt2")
    ids = torch.tensor([1, 7, 9, 13, 21])
    with torch.no_grad():
        hidden = model.transformer(ids[None]).last_hidden_state[0]
        logits = hidden @ model.get_input_embeddings().weight.T
    sampler = LanguageModelSampler(model, top_k=5).for_row(ids, hidden)
    for position in range(1, 5):
        guesses = logits[position - 1].clone()
        guesses[ids[position]] = float("-inf")
        assert set(sampler.candidates[position].tolist()) == set(guesses.topk(5).indices.tolist())
        expected = torch.softmax(guesses.topk(5).values, dim=0)
        assert torch.allclose(sampler.weights[position], expected, atol=1e-6)
    drawn = sampler.replace(torch.ones(200, 5, dtype=torch.bool), torch.Generator().manual_seed(0))
    assert not bool((drawn == ids).any())
    for position in range(5):
        assert set(drawn[:, position].tolist()) <= set(sampler.candidates[position].tolist())


def test_the_uniform_sampler_never_draws_excluded_or_original_tokens():
    ids = torch.tensor([3, 4, 5])
    sampler = UniformSampler(8, excluded_ids=[0, 1]).for_row(ids)
    drawn = sampler.replace(torch.ones(500, 3, dtype=torch.bool), torch.Generator().manual_seed(0))
    assert not bool((drawn == ids).any()) and not bool((drawn < 2).any())
    assert set(drawn.flatten().tolist()) == set(range(2, 8))


def test_the_registry_cost_is_the_rows_counted_at_the_model():
    model = tiny_classifier("gpt2")
    ids = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41, 12, 5]])
    words = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4]])
    method = METHODS["reagent"].build(model)
    for options, exact in (({"stop_top_k": None}, True), ({}, False)):
        counter = RowCounter(model)
        try:
            method.attribute(ids, feature_mask=words, seed=0, **options)
        finally:
            counter.remove()
        assert counter.forward_rows == method.last_runs[0].rows + 1  # and the prediction pass
        if exact:
            assert counter.forward_rows == METHODS["reagent"].cost(5) + 1
        assert counter.forward_rows <= METHODS["reagent"].cost(5) + 1


def test_bad_options_fail_before_any_model_call():
    recording = Recording(PlantedTokenModel())
    reagent = ReAGent(recording, vocab_size=VOCAB)
    for options, message in (
        ({"target_type": "logit"}, "target_type='prob'"),
        ({"replacement": "bert"}, "replacement must be None or one of"),
        ({"n_samples": 0}, "n_samples"),
        ({"replacing_ratio": 1.5}, "replacing_ratio"),
        ({"masking": "replace"}, "needs `baselines`"),
        ({"replacement": "lm"}, "Hugging Face model"),
    ):
        with pytest.raises(ValueError, match=message):
            reagent.attribute(IDS, feature_mask=FEATURES, **options)
    assert recording.rows == []
    untied = tiny_classifier("llama")  # LlamaConfig does not tie its embeddings
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        ReAGent(untied).attribute(IDS, feature_mask=FEATURES, replacement="lm")
