r"""Reading the texts to explain (an argument, standard input or ``--file``) and
checking them and ``--target`` before the model loads."""
import argparse
import json
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from captum_pi._cli import UserError


def read_inputs(args: argparse.Namespace) -> List[str]:
    if args.file is not None and args.text is not None:
        raise UserError("give either a text or --file FILE, not both.")
    if args.file is None and args.text is None:
        raise UserError('give a text to explain (or "-" to read it from standard input, or --file FILE).')
    if args.output is not None and args.file is None:
        raise UserError("--output is for --file; a single explanation prints to standard output.")
    if args.file is not None:
        return _read_text_file(Path(args.file))
    if args.text == "-":
        text = _decode(sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read(), "standard input")
    else:
        text = _checked_utf8(args.text, "the text argument")
    if not text.strip():
        raise UserError("the text is empty: there is nothing to explain.")
    return [text]


def _decode(data: Union[bytes, str], where: str) -> str:
    if isinstance(data, str):
        return _checked_utf8(data, where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{where} is not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "convert it first, e.g. with iconv -f latin1 -t utf-8."
        ) from None


def _checked_utf8(text: str, where: str) -> str:
    # undecodable bytes of argv arrive as lone surrogates (PEP 383)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise UserError(
            f"{where} is not valid UTF-8 (offset {error.start}); convert it first, e.g. with "
            "iconv -f latin1 -t utf-8."
        ) from None
    return text


def _read_text_file(path: Path) -> List[str]:
    if not path.is_file():
        raise UserError(f"--file {path}: no such file.")
    lines = _decode(path.read_bytes(), f"--file {path}").splitlines()
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        texts.append(_text_of_line(line, number, path))
    if not texts:
        raise UserError(f"--file {path} holds no text to explain.")
    return texts


def _text_of_line(line: str, number: int, path: Path) -> str:
    if not line.lstrip().startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError as error:
        raise UserError(f"--file {path}, line {number}: not valid JSON ({error}).") from None
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise UserError(f'--file {path}, line {number}: a JSON line needs a non-empty "text" field.')
    return text


def check_target(target: Optional[str], labels: Sequence[str]) -> Union[int, str, None]:
    if target is None:
        return None
    value = target.strip()
    listing = ", ".join(f"{index} {name}" for index, name in enumerate(labels))
    if value.lstrip("+-").isdigit():
        index = int(value)
        if not 0 <= index < len(labels):
            raise UserError(
                f"--target {target} is out of range: class indices run from 0 to {len(labels) - 1} ({listing})."
            )
        return index
    lowered = [name.lower() for name in labels]
    if value not in labels and value.lower() not in lowered:
        raise UserError(f"Unknown label {value!r} for --target: the model's labels are {listing}.")
    return value


def check_lengths(inputs: Sequence[Any], limit: Optional[int]) -> None:
    if limit is None:
        return
    for number, inp in enumerate(inputs, start=1):
        length = int(inp.input_ids.shape[1])
        if length > limit:
            where = "The input" if len(inputs) == 1 else f"Text {number}"
            raise UserError(f"{where} is {length} tokens long but the model reads at most {limit} tokens; shorten the text.")
