r"""
The notebooks of ``tutorials/`` run from top to bottom, offline, in an IPython kernel of
the interpreter running the tests (this environment, whatever other Jupyter kernels are
installed). A cell that raises fails its notebook's test, and so the test command;
``test_a_failing_cell_fails_the_run`` checks that this is so.

The notebooks explain the embedded default classifier (SmolLM2 + the shipped LoRA
adapter), hence the ``real_llm`` marker, as for the other tests that load it.
"""
import pathlib
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT_S = 1200  # generous: a shared CPU can be many times slower than CI
#: Stored outputs stay small: a notebook file is read on GitHub and in reviews.
MAX_NOTEBOOK_BYTES = 400_000


class _ThisInterpreter(KernelSpecManager):
    r"""Every kernel name resolves to an IPython kernel of ``sys.executable``."""

    def get_kernel_spec(self, kernel_name, *args, **kwargs):
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name=f"Python ({sys.prefix})", language="python", name=kernel_name)


def run_notebook(path: pathlib.Path, timeout: int = CELL_TIMEOUT_S) -> nbformat.NotebookNode:
    r"""Executes a notebook in memory (the file is not changed), with ``path``'s folder as
    the working directory; raises ``CellExecutionError`` naming the failing cell."""
    notebook = nbformat.read(path, as_version=4)
    check = f"import sys\nassert sys.prefix == {sys.prefix!r}, f'kernel runs in {{sys.prefix}}'"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(check))
    kernel = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_ThisInterpreter())
    client = NotebookClient(
        notebook, km=kernel, timeout=timeout, record_timing=False,
        extra_arguments=["--InteractiveShell.colors=nocolor"],  # plain tracebacks in the test report
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def test_the_tutorials_are_there():
    names = [path.name for path in NOTEBOOKS]
    assert names[:3] == [
        "01_explain_in_five_minutes.ipynb",
        "02_which_masking_game.ipynb",
        "03_benchmark_on_your_data.ipynb",
    ], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_notebooks_are_small_and_hold_no_errors(path):
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name}: clear or shrink its outputs"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{path.name} was stored with an error output"


def test_a_failing_cell_fails_the_run(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / (x - 1)")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        run_notebook(path, timeout=120)


@pytest.mark.real_llm
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_tutorial_runs_offline_from_top_to_bottom(path):
    run_notebook(path)
