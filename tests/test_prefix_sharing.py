r"""
Prefix sharing (captum_pi._core.prefix_sharing): the plans are valid tries of the
batch, the engine's logits equal plain passes on every tiny architecture, every
perturbation method gives the same attributions with and without it, passes never
hold more rows than the call, and models that cannot share fall back and say so.
"""
import warnings

import numpy as np
import pytest
import torch

import captum_pi
from captum_pi import MultiPassProgressive, PerPositionForward, feature_attributions
from captum_pi._core.captum_adapters import (
    TokenFeatureAblation,
    TokenKernelShap,
    TokenLime,
    TokenShapleyValueSampling,
)
from captum_pi._core.prefix_sharing import (
    PrefixSharingWarning,
    plan_sharing,
    prefix_sharing,
    prefix_sharing_enabled,
    right_padded_lengths,
)
from toy_models import ARCHITECTURES, RunningSumClassifier, tiny_classifier

# A fixed prompt of 9 tokens, then 5 features: 14 tokens, inside the tiny Gemma 3's
# sliding window of 16, so every architecture shares.
IDS = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46, 47, 7, 9, 13, 21, 33]])
FEATURES = torch.tensor([[-1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 1, 2, 3]])
N_FEATURES = 4


def _batch(rows):
    lengths = torch.tensor([len(row) for row in rows])
    ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.as_tensor(row)
    mask = (torch.arange(ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).long()
    return ids, mask, lengths


def _trie_batch(seed, vocab_size=64, max_rows=12):
    r"""Rows grown from a random trie: a shared prompt, branches at random depths,
    rows that are prefixes of other rows and duplicates."""
    generator = torch.Generator().manual_seed(seed)

    def draw(size):
        return torch.randint(3, vocab_size, (size,), generator=generator).tolist()

    prompt = draw(int(torch.randint(0, 10, (1,), generator=generator)))
    rows = [prompt + draw(int(torch.randint(1, 8, (1,), generator=generator)))]
    n_rows = int(torch.randint(2, max_rows + 1, (1,), generator=generator))
    while len(rows) < n_rows:
        parent = rows[int(torch.randint(0, len(rows), (1,), generator=generator))]
        cut = int(torch.randint(1, len(parent) + 1, (1,), generator=generator))
        kind = int(torch.randint(0, 4, (1,), generator=generator))
        if kind == 0:
            rows.append(parent[:cut])  # a prefix of another row
        elif kind == 1:
            rows.append(list(parent))  # a duplicate
        else:
            rows.append(parent[:cut] + draw(int(torch.randint(1, 6, (1,), generator=generator))))
    return _batch(rows)


def _lenient(per_position):
    r"""Share in every call that saves anything, so the tests exercise the engine on
    as many plans as possible."""
    per_position.prefix_engine.min_shared_tokens = 0
    per_position.prefix_engine.min_saved_fraction = 0.0
    return per_position


def _assert_valid(plan, ids, lengths, window=None):
    group, source, depth = plan.group.numpy(), plan.trunk_source.numpy(), plan.trunk_length.numpy()
    assert np.array_equal(group[source], np.arange(len(source)))  # each source is in its group
    assert (depth >= 1).all() and (lengths.numpy()[source] >= depth).all()
    for row in range(ids.shape[0]):
        read = min(int(depth[group[row]]), int(lengths[row]))
        assert torch.equal(ids[row, :read], ids[source[group[row]], :read])
    beyond = (lengths - plan.trunk_length[plan.group]).clamp(min=0)
    expected_cost = len(source) * int(depth.max()) + int((beyond > 0).sum()) * int(beyond.max())
    assert plan.cost == expected_cost
    if window is not None:
        assert plan.trunk_width + plan.continuation_width <= window


def test_the_docstring_example_plans_one_trunk():
    prompt = torch.arange(1, 21)
    ids = torch.stack([torch.cat([prompt, torch.tensor([30, 31])]), torch.cat([prompt, torch.tensor([32, 33])])])
    plan = plan_sharing(ids, torch.tensor([22, 22]))
    assert plan.trunk_length.tolist() == [20] and plan.cost == 24
    assert plan.continuation_rows.tolist() == [0, 1]


@pytest.mark.parametrize("seed", range(40))
def test_plans_are_valid_tries_of_the_batch_and_cheaper_than_a_plain_pass(seed):
    ids, _, lengths = _trie_batch(seed)
    plan = plan_sharing(ids, lengths, min_shared_tokens=0, min_saved_fraction=0.0)
    if plan is not None:
        _assert_valid(plan, ids, lengths)
        assert plan.cost < ids.numel()
    windowed = plan_sharing(ids, lengths, window=10, min_shared_tokens=0, min_saved_fraction=0.0)
    if windowed is not None:
        _assert_valid(windowed, ids, lengths, window=10)


def test_splitting_at_a_branching_pays_when_branches_are_long():
    # two long branches after a short common token: two trunks beat one
    left, right = [5] + list(range(10, 30)), [5] + list(range(30, 50))
    rows = [left + [60], left + [61], right + [62], right + [63]]
    ids, _, lengths = _batch(rows)
    plan = plan_sharing(ids, lengths, min_shared_tokens=0, min_saved_fraction=0.0)
    assert sorted(plan.trunk_length.tolist()) == [21, 21]
    assert plan.cost == 2 * 21 + 4 * 1


def test_calls_that_share_too_little_or_are_not_right_padded_run_plain():
    ids, mask, lengths = _batch([[1, 2, 3], [4, 5, 6]])
    assert plan_sharing(ids, lengths, min_shared_tokens=0, min_saved_fraction=0.0) is None
    ids, mask, lengths = _batch([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]])
    assert plan_sharing(ids, lengths) is None  # 5 shared tokens, fewer than 8
    assert plan_sharing(ids[:1], lengths[:1], min_shared_tokens=0) is None  # one row
    assert right_padded_lengths(mask).tolist() == [6, 6]
    assert right_padded_lengths(torch.tensor([[0, 1, 1], [1, 1, 1]])) is None  # left padding
    assert right_padded_lengths(torch.tensor([[0, 0, 0], [1, 1, 1]])) is None  # an empty row


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_engine_logits_equal_plain_passes_at_every_real_position(architecture):
    model = tiny_classifier(architecture)
    forward = _lenient(PerPositionForward(model))
    assert forward.shares_prefixes, forward.prefix_engine.reason
    window = forward.prefix_engine.window
    shared_calls = 0
    for seed in range(6):
        ids, mask, lengths = _trie_batch(seed, max_rows=8)
        if window is not None:  # rows that fit Gemma 3's window of 16
            keep = lengths <= window
            ids, mask, lengths = ids[keep], mask[keep], lengths[keep]
        before = forward.n_shared_calls
        shared = forward(ids, mask)
        shared_calls += forward.n_shared_calls - before
        with prefix_sharing(False):
            plain = forward(ids, mask)
        real = mask.bool()
        torch.testing.assert_close(shared[real], plain[real], atol=1e-5, rtol=0)
    assert shared_calls >= 3
    assert forward.n_tokens_computed < forward.n_tokens_requested


METHODS = {
    "feature_ablation": (TokenFeatureAblation, {}),
    "shapley_value_sampling": (TokenShapleyValueSampling, {"n_samples": 2, "seed": 0}),
    "kernel_shap": (TokenKernelShap, {"n_samples": 2 * N_FEATURES, "seed": 0}),
    "lime": (TokenLime, {"n_samples": 2 * N_FEATURES, "seed": 0}),
    "mp_pi": (MultiPassProgressive, {"n_samples": 2 * N_FEATURES, "seed": 0}),
}


@pytest.mark.parametrize("masking", ["delete", "replace"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_attributions_do_not_change_with_prefix_sharing(architecture, masking):
    model = tiny_classifier(architecture)
    for name, (method, options) in METHODS.items():
        explainer = method(model)
        _lenient(explainer.per_position)
        arguments = dict(target=1, feature_mask=FEATURES, baselines=3, masking=masking,
                         perturbations_per_eval=4, **options)
        shared = explainer.attribute(IDS, **arguments)
        assert explainer.per_position.n_shared_calls > 0, name
        with prefix_sharing(False):
            calls = explainer.per_position.n_shared_calls
            plain = explainer.attribute(IDS, **arguments)
            assert explainer.per_position.n_shared_calls == calls
        torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0, msg=name)


def test_metrics_read_the_same_values_with_prefix_sharing():
    from captum_pi.metrics import aopc

    model = tiny_classifier("qwen2")
    attributions = torch.tensor([[0.0] * 9 + [0.3, 0.3, -0.2, 0.5, 0.1]])
    forward = _lenient(PerPositionForward(model))
    shared = aopc(forward, IDS, attributions, target=1, feature_mask=FEATURES)
    assert forward.n_shared_calls > 0
    with prefix_sharing(False):
        plain = aopc(forward, IDS, attributions, target=1, feature_mask=FEATURES)
    np.testing.assert_allclose(shared.comprehensiveness_per_fraction, plain.comprehensiveness_per_fraction, atol=1e-5)
    np.testing.assert_allclose(shared.sufficiency_per_fraction, plain.sufficiency_per_fraction, atol=1e-5)


def test_no_pass_holds_more_rows_than_the_call():
    model = tiny_classifier("llama")
    explainer = MultiPassProgressive(model)
    _lenient(explainer.per_position)
    seen = []
    handle = model.base_model.register_forward_pre_hook(
        lambda _module, args, kwargs: seen.append((args or [kwargs["input_ids"]])[0].shape[0]),
        with_kwargs=True,
    )
    try:
        explainer.attribute(IDS, target=1, feature_mask=FEATURES, n_samples=12, seed=0, perturbations_per_eval=3)
    finally:
        handle.remove()
    assert explainer.per_position.n_shared_calls > 0
    assert seen and max(seen) <= 3


def test_the_switch_as_function_and_context_manager():
    assert prefix_sharing_enabled()
    with prefix_sharing(False):
        assert not prefix_sharing_enabled()
        with prefix_sharing(True):
            assert prefix_sharing_enabled()
        assert not prefix_sharing_enabled()
    assert prefix_sharing_enabled()
    try:
        captum_pi.prefix_sharing(False)
        assert not prefix_sharing_enabled()
    finally:
        captum_pi.prefix_sharing(True)
    with pytest.raises(TypeError, match="takes a bool, got 'no'"):
        prefix_sharing("no")
    forward = PerPositionForward(tiny_classifier("gpt2"), share_prefixes=False)
    assert forward.prefix_engine is None and not forward.shares_prefixes


def test_callables_that_are_not_hugging_face_models_run_plain():
    forward = PerPositionForward(RunningSumClassifier(vocab_size=64))
    assert forward.prefix_engine is None and not forward.shares_prefixes
    ids = IDS.repeat(3, 1)
    forward(ids)
    assert forward.n_tokens_computed == forward.n_tokens_requested == ids.numel()


def test_a_chunked_attention_model_falls_back_with_one_warning():
    model = tiny_classifier("llama")
    model.config.attention_chunk_size = 8  # as Llama 4: the tiny Llama ignores it
    with pytest.warns(PrefixSharingWarning, match=r"chunked attention.*plain batched passes"):
        forward = PerPositionForward(model)
    assert not forward.shares_prefixes and "chunked" in forward.prefix_engine.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forward(IDS.repeat(4, 1))  # no second warning
    assert forward.n_shared_calls == 0


def test_hybrid_and_recurrent_layer_kinds_rule_sharing_out():
    from types import SimpleNamespace

    from captum_pi._core.prefix_sharing import _obstacle

    model = tiny_classifier("qwen2")
    decoder = model.base_model
    hybrid = SimpleNamespace(layer_types=["full_attention", "linear_attention"])
    assert "hybrid" in _obstacle(model, decoder, "cache", hybrid)
    assert "no `cache`" in _obstacle(model, decoder, None, model.config)
    assert "no separate decoder" in _obstacle(model, model, "cache", model.config)
    assert _obstacle(model, decoder, "cache", model.config) is None


def test_a_model_whose_extended_cache_differs_fails_the_probe(monkeypatch):
    from captum_pi._core import prefix_sharing as module

    original = module.PrefixSharingEngine.run
    monkeypatch.setattr(module.PrefixSharingEngine, "run", lambda self, ids, plan: original(self, ids, plan) + 1.0)
    with pytest.warns(PrefixSharingWarning, match="differed from a plain pass"):
        forward = PerPositionForward(tiny_classifier("gpt2"))
    assert not forward.shares_prefixes


def test_a_sliding_window_model_runs_calls_longer_than_its_window_plain():
    model = tiny_classifier("gemma3")  # sliding window of 16
    forward = _lenient(PerPositionForward(model))
    assert forward.prefix_engine.window == 16
    prompt = list(range(10, 22))
    ids, mask, _ = _batch([prompt + [30, 31, 32, 33, 34, 35], prompt + [36, 37, 38, 39, 40, 41]])
    shared = forward(ids, mask)
    assert forward.n_shared_calls == 0  # 12 + 6 positions do not fit the window
    with prefix_sharing(False):
        torch.testing.assert_close(shared, forward(ids, mask), atol=0, rtol=0)


@pytest.mark.real_llm
def test_smollm2_attributions_do_not_change_with_prefix_sharing():
    from captum_pi.models import load_default_classifier
    from captum_pi.text import TextFeatureInput

    bundle = load_default_classifier(verbose=False)
    text = "It helped my back pain a lot. But the nausea was bad. I stopped after a week."
    inp = TextFeatureInput(text, bundle.tokenizer, level="sentence", template=bundle.prefix + "{}")
    n = inp.n_itp_features
    for method, options in [(TokenFeatureAblation, {}), (MultiPassProgressive, {"n_samples": 2 * n, "seed": 0})]:
        explainer = method(bundle.model)
        arguments = dict(target=1, feature_mask=inp.feature_mask, **options)
        shared = explainer.attribute(inp.input_ids, **arguments)
        assert explainer.per_position.n_shared_calls > 0
        with prefix_sharing(False):
            plain = explainer.attribute(inp.input_ids, **arguments)
        torch.testing.assert_close(
            feature_attributions(shared, inp.feature_mask), feature_attributions(plain, inp.feature_mask),
            atol=1e-5, rtol=0,
        )
