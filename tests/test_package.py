import subprocess
import sys

import pytest

import captum_pi


@pytest.mark.parametrize("name", captum_pi.__all__)
def test_every_public_name_resolves(name):
    assert getattr(captum_pi, name) is not None


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'SinglePass'"):
        captum_pi.SinglePass


def test_importing_the_package_and_the_registry_pays_for_no_heavy_library():
    probe = (
        "import sys, captum_pi, captum_pi.registry\n"
        "print(sorted(m for m in ('torch', 'transformers', 'captum', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_progress_bars_use_the_text_bar_without_jupyter_widgets(monkeypatch):
    import importlib
    import importlib.util

    import tqdm.std

    import captum_pi.progress as progress

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "ipywidgets" else real_find_spec(name, *args))
    try:
        assert importlib.reload(progress).tqdm is tqdm.std.tqdm
    finally:
        monkeypatch.undo()
        importlib.reload(progress)
