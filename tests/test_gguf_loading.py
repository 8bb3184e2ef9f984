import contextlib
import os
import warnings

import pytest
import torch
from tiny_text import tiny_gpt2_classifier, tiny_tokenizer

from captum_pi import gguf_loading
from captum_pi.gguf_loading import COMPLETE_MARKER, dequantized_entry, file_sha256, gguf_parsed_once


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTUM_PI_CACHE", str(tmp_path / "cache"))


def _fake_gguf(tmp_path, content=b"GGUF fake weights"):
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    return path


def test_the_file_hash_is_the_sha256_and_is_remembered(tmp_path, monkeypatch):
    import hashlib

    path = _fake_gguf(tmp_path)
    expected = hashlib.sha256(b"GGUF fake weights").hexdigest()
    assert file_sha256(path) == expected

    def no_hashing(*args):
        raise AssertionError("an unchanged file was hashed again")

    monkeypatch.setattr(hashlib, "sha256", no_hashing)
    assert file_sha256(path) == expected
    monkeypatch.undo()
    os.utime(path, ns=(1, 1))  # a changed file (other mtime) is hashed again
    path.write_bytes(b"other weights")
    assert file_sha256(path) == hashlib.sha256(b"other weights").hexdigest()


def test_the_cache_key_follows_the_file_the_head_size_and_the_library_versions(tmp_path, monkeypatch):
    path = _fake_gguf(tmp_path)
    entry = dequantized_entry(path, 2)
    assert entry == dequantized_entry(path, 2)
    assert entry != dequantized_entry(path, 3)
    monkeypatch.setattr(gguf_loading, "_version", lambda name: "9.9" if name == "transformers" else "1")
    assert dequantized_entry(path, 2) != entry
    monkeypatch.undo()
    path.write_bytes(b"GGUF other weights")
    assert dequantized_entry(path, 2) != entry


def _write_tiny_entry(entry):
    tokenizer = tiny_tokenizer()
    model = tiny_gpt2_classifier(len(tokenizer)).eval()
    gguf_loading._write_entry(entry, model, tokenizer, entry.parent / "source.gguf")
    return model, tokenizer


def test_an_entry_is_complete_when_it_appears_and_reads_back_the_same_model(tmp_path):
    entry = dequantized_entry(_fake_gguf(tmp_path), 2)
    model, tokenizer = _write_tiny_entry(entry)
    assert (entry / COMPLETE_MARKER).is_file()
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no staging directory left
    loaded, loaded_tokenizer = gguf_loading._load_entry(entry, verbose=False)
    ids = torch.tensor([loaded_tokenizer.encode("it works great")])
    assert ids.tolist() == [tokenizer.encode("it works great")]
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_a_half_written_entry_is_never_used(tmp_path, monkeypatch):
    path = _fake_gguf(tmp_path)
    entry = dequantized_entry(path, 2)
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}")  # interrupted before the marker
    loaded = {}

    def from_gguf(gguf_path, num_labels):
        loaded["gguf"] = True
        tokenizer = tiny_tokenizer()
        return tiny_gpt2_classifier(len(tokenizer)).eval(), tokenizer

    monkeypatch.setattr(gguf_loading, "require_gguf", lambda: None)
    monkeypatch.setattr(gguf_loading, "_from_gguf", from_gguf)
    monkeypatch.setattr(gguf_loading, "gguf_parsed_once", _no_context)
    _, _, from_cache = gguf_loading.load_gguf_sequence_classifier(path, 2)
    assert loaded == {"gguf": True} and not from_cache


def test_a_damaged_entry_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    path = _fake_gguf(tmp_path)
    entry = dequantized_entry(path, 2)
    _write_tiny_entry(entry)
    (entry / "model.safetensors").write_bytes(b"truncated")
    monkeypatch.setattr(gguf_loading, "require_gguf", lambda: None)
    monkeypatch.setattr(gguf_loading, "gguf_parsed_once", _no_context)
    monkeypatch.setattr(gguf_loading, "_from_gguf",
                        lambda p, n: (tiny_gpt2_classifier(len(tiny_tokenizer())).eval(), tiny_tokenizer()))
    with pytest.warns(UserWarning, match="could not be read"):
        _, _, from_cache = gguf_loading.load_gguf_sequence_classifier(path, 2)
    assert not from_cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, from_cache = gguf_loading.load_gguf_sequence_classifier(path, 2)
    assert from_cache


def test_readers_of_one_file_are_shared_inside_the_context(monkeypatch):
    gguf = pytest.importorskip("gguf")
    opened = []

    class CountingReader:
        def __init__(self, path, mode="r"):
            opened.append(path)

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    with gguf_parsed_once():
        first = gguf.GGUFReader("/tmp/a.gguf")
        assert gguf.GGUFReader("/tmp/a.gguf") is first
        gguf.GGUFReader("/tmp/b.gguf")
    assert opened == ["/tmp/a.gguf", "/tmp/b.gguf"]
    assert gguf.GGUFReader is CountingReader


@contextlib.contextmanager
def _no_context():
    yield
