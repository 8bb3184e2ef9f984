import io
import json
import os
import subprocess
import sys

import pytest
import torch
from tiny_text import tiny_gpt2_classifier, tiny_tokenizer

from captum_pi import SinglePassProgressive
from captum_pi.cli import available_methods, main
from captum_pi.llm_attr import LLMClassifierAttribution
from captum_pi.segmentation import _segmenter
from captum_pi.text import TextFeatureInput

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
        assert summary["options"]["method_arguments"]["seed"] == 0
    # only Integrated Gradients has a completeness gap to report
    assert ("completeness_gap" in summary) == (name == "integrated-gradients")
    if name == "integrated-gradients":
        assert 0 <= summary["completeness_gap"] < 0.05


def test_budget_becomes_the_methods_sample_count(capsys, model_dir):
    status, out, _ = run(capsys, "explain", TEXT, "--model", model_dir, "--method", "kernel-shap",
                         "--budget", "12", "--format", "json", "--level", "sentence")
    assert status == 0
    summary = json.loads(out)
    assert summary["options"]["method_arguments"] == {"n_samples": 12, "seed": 0}
    assert {k: summary["options"][k] for k in ("method", "level", "budget", "seed")} == {
        "method": "kernel-shap", "level": "sentence", "budget": 12, "seed": 0}
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
    status, _, err = run(capsys, "explain", "--model", model_dir)
    assert_one_line_error(status, err, "give a text")
    status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--output", tmp_path / "o.jsonl")
    assert_one_line_error(status, err, "--output is for --file")
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
def test_the_default_model_explains_a_short_text(tmp_path):
    command = [sys.executable, "-m", "captum_pi", "explain", "Worked great, no side effects.", "--format", "json"]
    environment = {**os.environ, "CAPTUM_PI_CACHE": str(tmp_path)}
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert first.returncode == 0, first.stderr
    assert "first run: de-quantizing SmolLM2-135M-Instruct" in first.stderr  # says what it loads, once
    assert "Converting and de-quantizing" not in first.stderr  # transformers' bar only with --verbose
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""  # the cached model loads silently
    assert completed.stdout == first.stdout  # and gives the same explanation
    summary = json.loads(completed.stdout)
    assert [f["text"] for f in summary["features"]] == ["Worked", "great,", "no", "side", "effects."]
    assert summary["prediction"]["label"] == "positive"
    assert summary["probabilities"]["positive"] > 0.5
    phi = [f["attribution"] for f in summary["features"]]
    assert max(phi) > 0  # something in the review speaks for "positive"


def test_arguments_are_checked_before_the_model_loads(capsys, monkeypatch, model_dir):
    from captum_pi import cli

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(cli.ModelSource, "load_tokenizer", no_loading)
    for target, fragment in (("7", "--target 7 is out of range"), ("-1", "--target -1 is out of range"),
                             ("nonsense", "Unknown label 'nonsense'")):
        status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--target", target)
        assert_one_line_error(status, err, fragment)
        assert "0 negative, 1 neutral, 2 positive" in err
    status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--method", "mp-pi", "--budget", "1")
    assert_one_line_error(status, err, "--budget must be at least 3 for mp-pi")
    status, _, err = run(capsys, "explain", TEXT, "--model", model_dir, "--method", "integrated-gradients",
                         "--budget", "5")
    assert_one_line_error(status, err, "--budget must be at least 6 for integrated-gradients")
    status, _, err = run(capsys, "explain", "--model", model_dir, "--batch-size", "0", "--file", __file__)
    assert_one_line_error(status, err, "--batch-size")


def test_the_default_models_labels_are_known_without_loading_it():
    from captum_pi.cli import ModelSource

    assert ModelSource.from_arguments(None, None).label_names() == ["negative", "positive"]


def test_text_that_is_not_utf8_is_refused_with_a_message(capsys, monkeypatch, model_dir):
    undecodable = b"caf\xe9 au lait".decode("utf-8", "surrogateescape")  # how argv carries bad bytes
    status, _, err = run(capsys, "explain", undecodable, "--model", model_dir)
    assert_one_line_error(status, err, "the text argument is not valid UTF-8")

    class BytesStdin:
        buffer = io.BytesIO(b"caf\xe9 au lait")

    monkeypatch.setattr(sys, "stdin", BytesStdin())
    status, _, err = run(capsys, "explain", "-", "--model", model_dir)
    assert_one_line_error(status, err, "standard input is not valid UTF-8 (byte 0xe9 at offset 3)")


def test_a_model_directory_without_tokenizer_files_says_so(capsys, tmp_path):
    tokenizer = tiny_tokenizer()
    tiny_gpt2_classifier(len(tokenizer), n_positions=48).save_pretrained(tmp_path)
    status, _, err = run(capsys, "explain", TEXT, "--model", tmp_path)
    assert_one_line_error(status, err, "the tokenizer files are missing")


def test_version_help_and_methods_import_neither_torch_nor_transformers():
    probe = (
        "import sys; from captum_pi.cli import main\n"
        "for argv in (['--version'], ['--help'], ['methods']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'captum', 'sklearn') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "HEAVY []" in completed.stdout
    assert "captum-pi 0.1.0" in completed.stdout and "shapley-values" in completed.stdout


def test_offsets_count_from_the_users_text_and_options_are_recorded(capsys, model_dir):
    status, out, _ = run(capsys, "explain", TEXT, "--model", model_dir, "--format", "json", "--prefix", "Review: ")
    assert status == 0
    summary = json.loads(out)
    assert summary["text"] == TEXT and summary["prompt"]["prefix"] == "Review: "
    assert summary["features"][0]["start"] == 0
    assert all(TEXT[f["start"]:f["end"]] == f["text"] for f in summary["features"])
    assert summary["options"]["prefix"] == "Review: " and summary["options"]["method"] == "sp-pi"


TEXTS = ["It works great.", "Not bad at all, really.", "Awful. It made me sick and I stopped after two days."]


def _explain_file(capsys, tmp_path, *extra):
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:2]) + TEXTS[2] + "\n\n")
    output = tmp_path / "out.jsonl"
    status, _, err = run(capsys, "explain", "--file", source, "--output", output, "--format", "json", *extra)
    assert status == 0, err
    return source, output, [json.loads(line) for line in output.read_text().splitlines()]


@pytest.mark.parametrize("method", ["sp-pi", "mp-pi", "kernel-shap"])
def test_a_file_of_texts_gives_what_each_text_gives_alone(capsys, tmp_path, model_dir, method):
    _, _, records = _explain_file(capsys, tmp_path, "--model", model_dir, "--method", method, "--batch-size", "2")
    assert [r["text"] for r in records] == TEXTS and [r["index"] for r in records] == [0, 1, 2]
    for text, record in zip(TEXTS, records):
        status, out, _ = run(capsys, "explain", text, "--model", model_dir, "--method", method, "--format", "json")
        alone = json.loads(out)
        got = torch.tensor([f["attribution"] for f in record["features"]])
        expected = torch.tensor([f["attribution"] for f in alone["features"]])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # float32 padded vs unpadded
        assert record["prediction"]["label"] == alone["prediction"]["label"]


def test_an_interrupted_file_run_resumes_where_it_stopped(capsys, tmp_path, model_dir):
    source, output, records = _explain_file(capsys, tmp_path, "--model", model_dir)
    complete = output.read_text()
    first_line = complete.splitlines()[0]
    output.write_text(first_line + "\n" + complete.splitlines()[1][:25])  # killed while writing line 2
    status, _, err = run(capsys, "explain", "--file", source, "--output", output, "--model", model_dir)
    assert status == 0 and "resuming after 1 of 3" in err
    assert output.read_text() == complete
    status, _, err = run(capsys, "explain", "--file", source, "--output", output, "--model", model_dir)
    assert status == 0 and "already holds all 3" in err
    source.write_text("Something else entirely.\n")
    status, _, err = run(capsys, "explain", "--file", source, "--output", output, "--model", model_dir)
    assert_one_line_error(status, err, "holds explanations of other texts")


def test_resuming_with_another_masking_game_is_refused(capsys, tmp_path, model_dir):
    source, output, records = _explain_file(capsys, tmp_path, "--model", model_dir)
    assert {r["options"]["masking"] for r in records} == {"delete"} and records[0]["masking"] == "delete"
    output.write_text(output.read_text().splitlines()[0] + "\n")
    status, _, err = run(capsys, "explain", "--file", source, "--output", output, "--model", model_dir,
                         "--masking", "replace")
    assert_one_line_error(status, err, "other options (masking: 'delete' there, 'replace' now)")


@pytest.mark.parametrize("masking", ["delete", "replace"])
def test_masking_flag_reaches_the_method(capsys, model_dir, masking):
    from transformers import AutoModelForSequenceClassification

    from captum_pi.llm_attr import LLMClassifierAttribution
    from captum_pi.registry import get_method
    from captum_pi.text import TextFeatureInput

    status, out, _ = run(capsys, "explain", TEXT, "--model", model_dir, "--format", "json",
                         "--method", "feature-ablation", "--masking", masking)
    summary = json.loads(out)
    assert status == 0 and summary["masking"] == masking and summary["options"]["masking"] == masking
    tokenizer = tiny_tokenizer()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    inp = TextFeatureInput(TEXT, tokenizer, level="word", masking=masking)
    expected = LLMClassifierAttribution(get_method("feature-ablation").build(model), tokenizer).attribute(inp)
    got = torch.tensor([f["attribution"] for f in summary["features"]])
    torch.testing.assert_close(got, expected.seq_attr.float(), atol=1e-5, rtol=0)
