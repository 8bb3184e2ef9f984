import pytest
import torch

from captum_pi.lora import apply_adapter, load_adapter, save_adapter
from captum_pi.models import ClassifierBundle
from captum_pi.signatures import model_signature
from captum_pi.training import LoraSettings, fine_tune_lora, validation_split
from tiny_text import tiny_tokenizer



POSITIVE = ["It works great.", "Great help, no side effects.", "Works well for me.", "Great, it helps."]
NEGATIVE = ["It made me sick.", "Awful side effects.", "Did not help at all.", "Sick and dizzy all day."]
TEXTS = (POSITIVE + NEGATIVE) * 2
LABELS = ([1] * 4 + [0] * 4) * 2
SETTINGS = LoraSettings(rank=4, alpha=8, dropout=0.0, learning_rate=5e-3, epochs=4, batch_size=4,
                        micro_batch_size=2, validation_fraction=0.25, checkpoint_every=2)


def tiny_llama_bundle(seed=0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         num_labels=2, pad_token_id=0)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config).eval()
    return ClassifierBundle(model=model, tokenizer=tokenizer, prefix="Review: ", label_names=("negative", "positive"),
                            model_id="tiny-llama")


def test_validation_split_is_stratified_and_disjoint():
    train, held_out = validation_split(LABELS, 0.25, seed=0)
    assert sorted(train + held_out) == list(range(len(LABELS)))
    assert sorted(LABELS[i] for i in held_out) == [0, 0, 1, 1]


def test_a_few_steps_lower_the_loss_and_the_merged_adapter_is_the_trained_model(tmp_path):
    import peft

    from captum_pi.lora import lora_config

    bundle = tiny_llama_bundle()
    signature = model_signature(bundle.model)
    adapter = fine_tune_lora(bundle, TEXTS, LABELS, bundle.label_names, SETTINGS, show_progress=False)
    losses = [entry["train_loss"] for entry in adapter["curve"] if "train_loss" in entry]
    assert len(losses) == SETTINGS.epochs * 3  # 12 training texts, batches of 4
    assert sum(losses[-3:]) < 0.6 * sum(losses[:3])
    validations = [entry for entry in adapter["curve"] if "validation_accuracy" in entry]
    assert [entry["epoch"] for entry in validations] == [1, 2, 3, 4]
    assert adapter["metrics"]["best_epoch"] in (1, 2, 3, 4)
    path = save_adapter(adapter, tmp_path / "adapter.pt")
    merged = apply_adapter(tiny_llama_bundle().model, path, signature)
    assert type(merged).__name__ == "LlamaForSequenceClassification"
    # the same weights unmerged, through peft itself: the trained score head included
    unmerged = peft.get_peft_model(tiny_llama_bundle().model, lora_config(adapter["settings"]))
    peft.set_peft_model_state_dict(unmerged, adapter["lora_state"])
    unmerged.eval()
    encoded = bundle.encode(TEXTS)
    with torch.no_grad():
        expected = unmerged(**encoded).logits
        got = merged(**encoded).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, tiny_llama_bundle().model(**encoded).logits, atol=1e-3)


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_adapter(tmp_path, monkeypatch):
    import captum_pi.training as training

    names = ("negative", "positive")
    whole = fine_tune_lora(tiny_llama_bundle(), TEXTS, LABELS, names, SETTINGS, show_progress=False)
    original_step = training._optimizer_step
    calls = {"n": 0}

    def interrupted_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # after the checkpoint of step 6
            raise KeyboardInterrupt
        return original_step(*args, **kwargs)

    monkeypatch.setattr(training, "_optimizer_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        fine_tune_lora(tiny_llama_bundle(), TEXTS, LABELS, names, SETTINGS, checkpoint_dir=tmp_path,
                       show_progress=False)
    monkeypatch.setattr(training, "_optimizer_step", original_step)
    resumed = fine_tune_lora(tiny_llama_bundle(), TEXTS, LABELS, names, SETTINGS, checkpoint_dir=tmp_path,
                             show_progress=False)
    assert [e.get("train_loss") for e in resumed["curve"]] == pytest.approx(
        [e.get("train_loss") for e in whole["curve"]], abs=1e-6)
    for name, tensor in whole["lora_state"].items():
        torch.testing.assert_close(resumed["lora_state"][name], tensor, atol=1e-6, rtol=0)
    other = LoraSettings(**{**SETTINGS.as_dict(), "target_modules": SETTINGS.target_modules, "learning_rate": 1e-3})
    with pytest.raises(ValueError, match="another training run"):
        fine_tune_lora(tiny_llama_bundle(), TEXTS, LABELS, names, other, checkpoint_dir=tmp_path,
                       show_progress=False)


def test_raising_the_epochs_continues_a_finished_run(tmp_path):
    names = ("negative", "positive")
    longer = LoraSettings(**{**SETTINGS.as_dict(), "target_modules": SETTINGS.target_modules, "epochs": 6})
    straight = fine_tune_lora(tiny_llama_bundle(), TEXTS, LABELS, names, longer, show_progress=False)
    fine_tune_lora(tiny_llama_bundle(), TEXTS, LABELS, names, SETTINGS, checkpoint_dir=tmp_path,
                   show_progress=False)
    continued = fine_tune_lora(tiny_llama_bundle(), TEXTS, LABELS, names, longer, checkpoint_dir=tmp_path,
                               show_progress=False)
    assert len([e for e in continued["curve"] if "train_loss" in e]) == 6 * 3
    for name, tensor in straight["lora_state"].items():
        torch.testing.assert_close(continued["lora_state"][name], tensor, atol=1e-6, rtol=0)


def test_a_stale_adapter_is_refused(tmp_path):
    bundle = tiny_llama_bundle()
    adapter = fine_tune_lora(bundle, TEXTS, LABELS, bundle.label_names,
                             LoraSettings(**{**SETTINGS.as_dict(), "target_modules": ("q_proj",), "epochs": 1}),
                             show_progress=False)
    other_base = tiny_llama_bundle(seed=1).model
    with pytest.raises(ValueError, match="trained on a base model with signature"):
        apply_adapter(other_base, adapter, model_signature(other_base))
    with pytest.raises(ValueError, match="not a captum-pi LoRA adapter"):
        load_adapter({"format": 0})


def test_a_warm_started_head_with_a_bias_is_restored_on_a_base_model_without_one():
    from captum_pi.heads import install_head

    bundle = tiny_llama_bundle()
    signature = model_signature(bundle.model)
    hidden = bundle.model.config.hidden_size
    install_head(bundle.model, {"weight": torch.randn(2, hidden), "bias": torch.tensor([0.5, -0.5]),
                                "label_names": ["negative", "positive"]})
    warm = LoraSettings(**{**SETTINGS.as_dict(), "target_modules": SETTINGS.target_modules, "epochs": 1,
                           "warm_start": True})
    adapter = fine_tune_lora(bundle, TEXTS, LABELS, bundle.label_names, warm, show_progress=False)
    assert any(name.endswith("score.bias") for name in adapter["lora_state"])
    merged = apply_adapter(tiny_llama_bundle().model, adapter, signature)
    assert merged.score.bias is not None
    trained_bias = next(t for name, t in adapter["lora_state"].items() if name.endswith("score.bias"))
    torch.testing.assert_close(merged.score.bias.detach(), trained_bias)


def test_a_checkpoint_warm_started_from_another_head_is_refused_and_a_cold_start_is_seeded(tmp_path):
    from captum_pi.heads import install_head

    names = ("negative", "positive")
    short = {**SETTINGS.as_dict(), "target_modules": SETTINGS.target_modules, "epochs": 1}
    warm = LoraSettings(**{**short, "warm_start": True})

    def warm_bundle(head_seed):
        bundle = tiny_llama_bundle()
        generator = torch.Generator().manual_seed(head_seed)
        install_head(bundle.model, {"weight": torch.randn(2, 32, generator=generator), "bias": torch.zeros(2),
                                    "label_names": list(names)})
        return bundle

    fine_tune_lora(warm_bundle(1), TEXTS, LABELS, names, warm, checkpoint_dir=tmp_path / "warm", show_progress=False)
    with pytest.raises(ValueError, match="another training run"):
        fine_tune_lora(warm_bundle(2), TEXTS, LABELS, names, warm, checkpoint_dir=tmp_path / "warm",
                       show_progress=False)
    # a cold start redraws the head from the seed, whatever head the bundle came with
    cold = LoraSettings(**short)
    first = fine_tune_lora(warm_bundle(1), TEXTS, LABELS, names, cold, show_progress=False)
    second = fine_tune_lora(warm_bundle(2), TEXTS, LABELS, names, cold, show_progress=False)
    assert first["fingerprint"] == second["fingerprint"]
    for name, tensor in first["lora_state"].items():
        torch.testing.assert_close(second["lora_state"][name], tensor, atol=1e-6, rtol=0)


def test_class_weights_make_every_class_weigh_the_same():
    from captum_pi.training import _class_weights

    weights = _class_weights([0, 0, 0, 1], 2)
    torch.testing.assert_close(weights, torch.tensor([4 / 6, 2.0]))
    # each class's total weight in the loss is then n / C
    assert float(weights[0] * 3) == pytest.approx(float(weights[1] * 1))
