import pytest
import torch

from captum_pi import feature_attributions
from captum_pi._core.attention_last import AttentionLast
from captum_pi._core.generic_attention import GenericAttentionExplainability
from captum_pi._core.model_passes import eager_attention
from captum_pi._core.random_baseline import RandomAttribution
from captum_pi.registry import METHODS
from toy_models import ARCHITECTURES, RunningSumClassifier, tiny_classifier

IDS = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41, 12, 5]])
WORDS = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4]])
N_WORDS = 5
MASK_ID = 3

# one batch, right-padded, at three granularities
BATCH = torch.tensor([[1, 7, 9, 13, 21, 33, 40, 41, 12, 5], [1, 5, 6, 8, 9, 10, 11, 0, 0, 0]])
ATTENTION = torch.tensor([[1] * 10, [1] * 7 + [0] * 3])
LEVELS = {
    "token": None,
    "word": torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4], [-1, 0, 1, 1, 2, 3, -1, -1, -1, -1]]),
    "sentence": torch.tensor([[-1, 0, 0, 0, 0, 1, 1, 1, 1, 1], [-1, -1, 0, 0, 0, 0, 0, -1, -1, -1]]),
}


def _eager_attentions(model, ids):
    r"""Attention maps of the full model, computed independently of the package."""
    model.set_attn_implementation("eager")
    embeddings = model.get_input_embeddings()(ids).detach().requires_grad_()
    outputs = model(inputs_embeds=embeddings, output_attentions=True)
    return outputs.logits[0], outputs.attentions


def _sum_over_words(token_scores):
    return torch.stack([token_scores[WORDS[0] == k].sum() for k in range(N_WORDS)])


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_attention_last_equals_head_averaged_last_layer_attention_of_final_token(architecture):
    model = tiny_classifier(architecture)
    with torch.no_grad():
        _, attentions = _eager_attentions(model, IDS)
    expected = _sum_over_words(attentions[-1][0, :, -1, :].mean(dim=0))
    model.set_attn_implementation("sdpa")
    attr = AttentionLast(model).attribute(IDS, feature_mask=WORDS)
    torch.testing.assert_close(feature_attributions(attr, WORDS)[0], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize("target_type", ["logit", "prob"])
def test_gae_equals_hand_computed_rollout(architecture, target_type):
    model = tiny_classifier(architecture)
    logits, attentions = _eager_attentions(model, IDS)
    target = int(logits.argmax())
    value = logits[target] if target_type == "logit" else torch.softmax(logits, -1)[target]
    gradients = torch.autograd.grad(value, attentions)
    seq_len = IDS.shape[1]
    rollout = torch.eye(seq_len)
    for attention, gradient in zip(attentions, gradients):  # Chefer et al., Eqn 5-6
        cam = torch.zeros(seq_len, seq_len)
        for head in range(attention.shape[1]):
            cam += (gradient[0, head] * attention[0, head]).clamp(min=0)
        cam /= attention.shape[1]
        rollout = rollout + cam @ rollout
    expected = _sum_over_words(rollout[-1].detach())
    model.set_attn_implementation("sdpa")
    attr = GenericAttentionExplainability(model).attribute(
        IDS, feature_mask=WORDS, target_type=target_type
    )
    phi = feature_attributions(attr, WORDS)[0]
    torch.testing.assert_close(phi, expected, atol=1e-6, rtol=1e-5)
    assert float(expected[:-1].abs().sum()) > 0  # gradients reach earlier words


@pytest.mark.parametrize("method", [AttentionLast, GenericAttentionExplainability])
def test_attention_implementation_is_restored(method):
    model = tiny_classifier("qwen2")
    assert model.config._attn_implementation == "sdpa"
    method(model).attribute(IDS, feature_mask=WORDS)
    assert model.config._attn_implementation == "sdpa"
    assert all(
        module.config._attn_implementation == "sdpa"
        for module in model.modules() if hasattr(module, "config")
    )


def test_eager_attention_restores_after_an_error():
    model = tiny_classifier("llama")
    with pytest.raises(RuntimeError, match="inside"):
        with eager_attention(model, "test"):
            assert model.config._attn_implementation == "eager"
            raise RuntimeError("inside")
    assert model.config._attn_implementation == "sdpa"


def test_random_is_reproducible_with_a_seed_and_differs_without():
    random = RandomAttribution(None)
    first = random.attribute(BATCH, feature_mask=LEVELS["word"], attention_mask=ATTENTION, seed=3)
    again = random.attribute(BATCH, feature_mask=LEVELS["word"], attention_mask=ATTENTION, seed=3)
    other = random.attribute(BATCH, feature_mask=LEVELS["word"], attention_mask=ATTENTION, seed=4)
    unseeded = [random.attribute(BATCH, feature_mask=LEVELS["word"], attention_mask=ATTENTION) for _ in range(2)]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(unseeded[0], unseeded[1])
    phi = feature_attributions(first, LEVELS["word"], ATTENTION)
    assert phi[0].unique().numel() == 5 and phi[1, :4].unique().numel() == 4


def test_random_orders_features_uniformly():
    random = RandomAttribution(None)
    first_places = torch.zeros(N_WORDS)
    for seed in range(400):
        phi = feature_attributions(random.attribute(IDS, feature_mask=WORDS, seed=seed), WORDS)[0]
        first_places[int(phi.argmax())] += 1
    assert (first_places / 400 - 1 / N_WORDS).abs().max() < 0.06


@pytest.fixture(scope="module")
def models():
    return {architecture: tiny_classifier(architecture) for architecture in ARCHITECTURES}


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_follows_the_feature_ablation_convention(name, architecture, level, models):
    feature_mask = LEVELS[level]
    if name == "shapley-values" and level == "token":  # 10 features: n! orders, refused
        with pytest.raises(ValueError, match="at most 8 features"):
            METHODS[name].build(models[architecture]).attribute(
                BATCH, feature_mask=feature_mask, baselines=MASK_ID, attention_mask=ATTENTION)
        return
    attr = METHODS[name].build(models[architecture]).attribute(
        BATCH, feature_mask=feature_mask, baselines=MASK_ID, attention_mask=ATTENTION,
        **({"seed": 0} if METHODS[name].stochastic else {}),
    )
    assert attr.shape == BATCH.shape and attr.dtype == torch.float32
    assert torch.isfinite(attr).all()
    token_feature = feature_mask if feature_mask is not None else torch.where(
        ATTENTION.bool(), torch.arange(10).expand(2, -1), torch.tensor(-1)
    )
    assert attr[token_feature < 0].abs().sum() == 0
    for row in range(2):
        for feature in token_feature[row].unique().tolist():
            if feature >= 0:
                assert attr[row, token_feature[row] == feature].unique().numel() == 1
    assert attr.abs().sum() > 0


@pytest.mark.parametrize("architecture", [a for a in ARCHITECTURES if a not in ("gpt2", "llama")])
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_on_every_supported_architecture(name, architecture, models):
    model = models[architecture]
    implementation = model.config._attn_implementation
    attr = METHODS[name].build(model).attribute(
        IDS, feature_mask=WORDS, baselines=MASK_ID,
        **({"seed": 0} if METHODS[name].stochastic else {}),
    )
    assert attr.shape == IDS.shape and torch.isfinite(attr).all() and attr.abs().sum() > 0
    assert model.config._attn_implementation == implementation


@pytest.mark.parametrize("name", [n for n, s in METHODS.items() if s.needs_hf_model])
def test_model_reading_methods_reject_plain_callables(name):
    with pytest.raises(ValueError, match="Hugging Face"):
        METHODS[name].build(RunningSumClassifier())
