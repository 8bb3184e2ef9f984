import json
import subprocess
import sys

import pytest
import torch
from tiny_text import tiny_gpt2_classifier, tiny_tokenizer

from captum_pi import SinglePassProgressive
from captum_pi.cli import available_methods, main
from captum_pi.llm_attr import LLMClassifierAttribution
from captum_pi.text import TextFeatureInput, _segmenter

TEXT = "It works great. Not bad at all."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-classifier")
    tokenizer = tiny_tokenizer()
    tiny_gpt2_classifier(len(tokenizer), n_positions=48).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run(capsys, *argv):
    capsys.readouterr()  # drop what the test printed before (e.g. save_pretrained's progress bars)
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_output_matches_the_wrapper(capsys, model_dir):
    status, out, _ = run(capsys, "explain", TEXT, "--model", model_dir, "--format", "json", "--target", "negative")
    assert status == 0
    summary = json.loads(out)
    tokenizer = tiny_tokenizer()
    model = tiny_gpt2_classifier(len(tokenizer), n_positions=48)
    inp = TextFeatureInput(TEXT, tokenizer, level="word")
    expected = LLMClassifierAttribution(SinglePassProgressive(model), tokenizer).attribute(inp, target=0)
    assert [f["text"] for f in summary["features"]] == ["It", "works", "great.", "Not", "bad", "at", "all."]
    got = torch.tensor([f["attribution"] for f in summary["features"]], dtype=torch.float64)
    assert torch.allclose(got, expected.seq_attr, atol=1e-6)
    assert summary["target"] == {"index": 0, "label": "negative"}
    assert summary["prediction"]["label"] == expected.predicted_label
    assert summary["method"] == "SP-PI" and summary["level"] == "word"


@pytest.mark.parametrize("name", sorted(available_methods()))
def test_every_method_runs_from_the_command_line(capsys, model_dir, name):
    status, out, err = run(
        capsys, "explain", "Works. Not bad.", "--model", model_dir, "--method", name, "--format", "json"
    )
    assert status == 0, err
    summary = json.loads(out)
    values = [f["attribution"] for f in summary["features"]]
    assert len(values) == 3 and all(v == v for v in values)
    if available_methods()[name].stochastic:
        assert summary["options"]["seed"] == 0


def test_budget_becomes_the_methods_sample_count(capsys, model_dir):
    status, out, _ = run(capsys, "explain", TEXT, "--model", model_dir, "--method", "kernel-shap",
                         "--budget", "12", "--format", "json", "--level", "sentence")
    assert status == 0
    summary = json.loads(out)
    assert summary["options"] == {"n_samples": 12, "seed": 0}
    assert [f["text"] for f in summary["features"]] == ["It works great.", "Not bad at all."]
    status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--budget", "5")
    assert status == 0 and "--budget is ignored" in err


def test_terminal_rendering_reads_with_and_without_colour(capsys, model_dir):
    status, plain, _ = run(capsys, "explain", TEXT, "--model", model_dir, "--color", "never")
    assert status == 0
    assert "\x1b[" not in plain
    assert "Predicted:" in plain and "[great. " in plain
    status, coloured, _ = run(capsys, "explain", TEXT, "--model", model_dir, "--color", "always")
    assert "\x1b[30;48;2;" in coloured


def test_html_output_and_text_from_stdin(capsys, monkeypatch, model_dir, tmp_path):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("<script>alert(1)</script> works"))
    page = tmp_path / "out.html"
    status, _, err = run(capsys, "explain", "-", "--model", model_dir, "--html", page)
    assert status == 0 and str(page) in err
    html = page.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def assert_one_line_error(status, err, fragment):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("captum-pi: error:"), err
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_user_errors_exit_2_with_one_line(capsys, model_dir, tmp_path):
    status, _, err = run(capsys, "explain", "   ", "--model", model_dir)
    assert_one_line_error(status, err, "empty")
    status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--target", "happy")
    assert_one_line_error(status, err, "Unknown label 'happy'")
    status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--method", "magic")
    assert_one_line_error(status, err, "unknown method 'magic'")
    status, _, err = run(capsys, "explain", TEXT * 10, "--model", model_dir)
    assert_one_line_error(status, err, "reads at most 48 tokens")
    status, _, err = run(capsys, "explain", TEXT, "--model", tmp_path / "missing")
    assert_one_line_error(status, err, "no such file or directory")
    fake_gguf = tmp_path / "base.gguf"
    fake_gguf.write_bytes(b"GGUF")
    status, _, err = run(capsys, "explain", TEXT, "--model", fake_gguf)
    assert_one_line_error(status, err, "--head")


def test_a_model_that_is_not_a_sequence_classifier_is_rejected(capsys, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer()
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=16, n_head=2,
                               bos_token_id=1, eos_token_id=1)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    status, _, err = run(capsys, "explain", TEXT, "--model", tmp_path)
    assert_one_line_error(status, err, "is not a sequence classifier")


def test_a_missing_optional_package_names_the_install_command(capsys, monkeypatch, model_dir):
    monkeypatch.setitem(sys.modules, "pysbd", None)
    _segmenter.cache_clear()
    try:
        status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--level", "sentence")
    finally:
        _segmenter.cache_clear()
    assert_one_line_error(status, err, "pip install pysbd")


@pytest.mark.real_llm
def test_the_default_model_explains_a_short_text():
    completed = subprocess.run(
        [sys.executable, "-m", "captum_pi", "explain", "Worked great, no side effects.", "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "SmolLM2-135M-Instruct" in completed.stderr  # says what it loads
    summary = json.loads(completed.stdout)
    assert [f["text"] for f in summary["features"]] == ["Worked", "great,", "no", "side", "effects."]
    assert summary["prediction"]["label"] == "positive"
    assert summary["probabilities"]["positive"] > 0.5
    phi = [f["attribution"] for f in summary["features"]]
    assert max(phi) > 0  # something in the review speaks for "positive"
