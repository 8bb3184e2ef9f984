r"""
Loading GGUF base models as Hugging Face sequence classifiers, fast.

transformers de-quantizes a ``.gguf`` file on every load and parses it three
times (config, tokenizer, weights): about 20 s for SmolLM2-135M on a 2-core CPU.
:func:`load_gguf_sequence_classifier` parses it once and keeps the de-quantized
model and its tokenizer in the user cache (:func:`cache_dir`), keyed by the
file's SHA-256 and the versions of the libraries that wrote them, so later loads
read plain safetensors in about a second. A cache entry is written to a
temporary directory and renamed into place only when complete, so an
interrupted first run never leaves a half-written model behind; an entry that
fails to load is discarded and rebuilt.
"""
import contextlib
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

logger = logging.getLogger(__name__)

GGUF_INSTALL = "pip install gguf accelerate"

#: Bump when what is written to a cache entry changes.
CACHE_FORMAT_VERSION = 1
#: The file that marks a complete cache entry (written last, before the rename).
COMPLETE_MARKER = "captum_pi_entry.json"
_HASH_INDEX = "gguf_sha256.json"
_KEY_LIBRARIES = ("torch", "transformers", "gguf", "tokenizers", "safetensors")


def cache_dir() -> Path:
    r"""
    The directory where de-quantized models, trained heads and features are
    cached: ``$CAPTUM_PI_CACHE`` if set, else ``~/.cache/captum_pi``.

    Returns:
        Path: The directory (created if missing).
    """
    root = os.environ.get("CAPTUM_PI_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "captum_pi"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_gguf() -> None:
    r"""Raises an ``ImportError`` with the pip command if ``gguf`` or ``accelerate``
    (needed by transformers to read GGUF files) is missing."""
    import importlib.util

    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"Loading GGUF models with transformers needs the packages {missing}, which are "
            f"not installed. Install them with: {GGUF_INSTALL}"
        )


def file_sha256(path: Path) -> str:
    r"""
    SHA-256 of a file, remembered in the cache by (path, size, modification time)
    so that an unchanged file is hashed once.

    Args:
        path (Path): The file.

    Returns:
        str: 64 hexadecimal characters.
    """
    path = Path(path).resolve()
    stat = path.stat()
    index_path = cache_dir() / _HASH_INDEX
    index = _read_json(index_path)
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    if key in index:
        return str(index[key])
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    index[key] = digest.hexdigest()
    _write_json_atomically(index_path, index)
    return str(index[key])


def dequantized_entry(path: Path, num_labels: int) -> Path:
    r"""
    The cache directory of the de-quantized classifier built from ``path`` with
    ``num_labels`` classes (it may not exist yet).

    Args:
        path (Path): The ``.gguf`` file.
        num_labels (int): Classes of the (randomly initialised) ``score`` head.

    Returns:
        Path: ``cache_dir()/dequantized/<name>-<key>``.
    """
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "sha256": file_sha256(path),
        "num_labels": int(num_labels),
        "versions": {name: _version(name) for name in _KEY_LIBRARIES},
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "-." else "-" for c in Path(path).stem)[:60]
    return cache_dir() / "dequantized" / f"{stem}-{key}"


def cached_tokenizer(path: Path, num_labels: int) -> Optional[Any]:
    r"""
    The tokenizer of the cached de-quantized classifier of ``path``, or None when
    the cache holds no complete entry yet (reading it takes a fraction of a second,
    so a caller can check texts before loading the model).

    Args:
        path (Path): The ``.gguf`` file.
        num_labels (int): Classes of the classifier.

    Returns:
        PreTrainedTokenizerBase or None
    """
    entry = dequantized_entry(path, num_labels)
    if not (entry / COMPLETE_MARKER).is_file():
        return None
    from transformers import AutoTokenizer

    try:
        with transformers_output(False):
            return AutoTokenizer.from_pretrained(str(entry), local_files_only=True)
    except Exception:  # the model load then rebuilds the entry
        return None


def load_gguf_sequence_classifier(
    path: Path, num_labels: int, verbose: bool = False, use_cache: bool = True
) -> Tuple[Any, Any, bool]:
    r"""
    Loads a ``.gguf`` base model as ``AutoModelForSequenceClassification``
    (float32, eval mode) with its tokenizer, offline, through the cache.

    Args:
        path (Path): The ``.gguf`` file.
        num_labels (int): Classes of the ``score`` head (randomly initialised
                    on the first load; install a trained head afterwards).
        verbose (bool, optional): Show transformers' own logs and de-quantizing
                    progress bar. Default: False
        use_cache (bool, optional): Read and write the de-quantized cache.
                    Default: True

    Returns:
        tuple: ``(model, tokenizer, from_cache)``; ``from_cache`` is True when the
        model was read from the cache rather than de-quantized.
    """
    require_gguf()
    path = Path(path)
    entry = dequantized_entry(path, num_labels) if use_cache else None
    if entry is not None and (entry / COMPLETE_MARKER).is_file():
        loaded = _load_entry(entry, verbose)
        if loaded is not None:
            return loaded[0], loaded[1], True
    with transformers_output(verbose), gguf_parsed_once():
        model, tokenizer = _from_gguf(path, num_labels)
    if entry is not None:
        _write_entry(entry, model, tokenizer, path)
    return model, tokenizer, False


def _from_gguf(path: Path, num_labels: int) -> Tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path.parent), gguf_file=path.name, num_labels=num_labels,
        local_files_only=True, dtype=torch.float32,
    )
    # transformers keeps a de-quantized GGUF model flagged as quantized, which makes
    # .float()/.half() and save_pretrained refuse; its weights are plain float32
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    return model.eval(), tokenizer


def _load_entry(entry: Path, verbose: bool) -> Optional[Tuple[Any, Any]]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        with transformers_output(verbose):
            tokenizer = AutoTokenizer.from_pretrained(str(entry), local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(entry), local_files_only=True, dtype=torch.float32
            )
    except Exception as error:  # a damaged entry is rebuilt, never trusted
        warnings.warn(f"The cached model {entry} could not be read ({error}); rebuilding it.")
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return model.eval(), tokenizer


def _write_entry(entry: Path, model: Any, tokenizer: Any, source: Path) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        with transformers_output(False):
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        marker = {"format": CACHE_FORMAT_VERSION, "source": str(source),
                  "versions": {name: _version(name) for name in _KEY_LIBRARIES}}
        (staging / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))
        try:
            os.rename(staging, entry)
        except OSError:  # another process completed the same entry first
            shutil.rmtree(staging, ignore_errors=True)
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)
        warnings.warn(f"Could not cache the de-quantized model in {entry.parent} ({error}).")


@contextlib.contextmanager
def gguf_parsed_once() -> Iterator[None]:
    r"""
    Within the context, every ``gguf.GGUFReader`` opened on the same file is the
    same object, so the config, the tokenizer and the weights that transformers
    reads each from its own reader share one parse (about 4 s for SmolLM2's
    vocabulary).
    """
    import gguf

    original = gguf.GGUFReader
    readers: Dict[Tuple[str, str], Any] = {}

    def shared_reader(path: Any, mode: str = "r") -> Any:
        key = (os.path.realpath(os.fspath(path)), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


@contextlib.contextmanager
def transformers_output(verbose: bool) -> Iterator[None]:
    r"""Silences transformers' logs and progress bars unless ``verbose``."""
    from transformers.utils import logging as hf_logging

    if verbose:
        yield
        return
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    verbosity = hf_logging.get_verbosity()
    bars_enabled = hf_logging.is_progress_bar_enabled()
    # the de-quantizing bar is a plain tqdm that transformers' switch does not reach
    plain_tqdm = getattr(gguf_utils, "tqdm", None)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if plain_tqdm is not None:
        gguf_utils.tqdm = functools.partial(plain_tqdm, disable=True)
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_enabled:
            hf_logging.enable_progress_bar()
        if plain_tqdm is not None:
            gguf_utils.tqdm = plain_tqdm


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_json_atomically(path: Path, value: Dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(value, stream)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
