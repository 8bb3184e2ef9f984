import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language, section=None):
    text = README
    if section is not None:
        text = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_ci_runs_every_readme_install_and_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = _blocks("bash", "Install") + _blocks("bash", "Run the tests")
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert "python -m pytest -q" in commands
    for command in commands:
        assert command in ci, f"README command not run by .ci/run: {command}"


def test_readme_example_runs_as_written(capsys):
    (example,) = _blocks("python", "Example")
    exec(compile(example, "README example", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.count("tensor(") == 2
