r"""
The package's progress bar: tqdm's notebook bar where Jupyter widgets
(``ipywidgets``) are installed, its text bar everywhere else. ``tqdm.auto`` alone
picks the notebook bar in any Jupyter kernel and, without ``ipywidgets``, warns
"IProgress not found" on every bar before falling back to text.
"""
import importlib.util

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
