import numpy as np
import pytest
import torch
from torch import nn

from captum_pi import heads
from captum_pi.heads import extract_features, fit_linear_head, install_head, load_head, save_head, train_head
from tiny_bundles import NEGATIVE, POSITIVE, PREFIX, hooked_per_position, tiny_llama_bundle


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_PI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


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

    monkeypatch.setattr(heads, "extract_features", no_training)
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
        "format_version": heads.HEAD_FORMAT_VERSION, "weight": torch.randn(3, 16),
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
