r"""The JSON Lines file ``--file`` writes: where it goes, how many leading texts it
already explains (so an interrupted run resumes), and opening it."""
import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from captum_pi._cli import UserError


def output_path(args: argparse.Namespace) -> Optional[Path]:
    if args.output == "-":
        return None
    return Path(args.output) if args.output else Path(args.file + ".explanations.jsonl")


def completed_records(output: Path, texts: Sequence[str], options: Optional[Dict[str, Any]] = None) -> int:
    r"""How many leading texts ``output`` already explains with the same
    ``options``; a trailing partial line (an interrupted write) is cut off."""
    if not output.is_file():
        return 0
    raw = output.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is incomplete or empty
    done = 0
    for line in complete:
        try:
            record = json.loads(line)
        except ValueError:
            break
        if done >= len(texts) or not isinstance(record, dict) or record.get("text") != texts[done]:
            raise UserError(
                f"{output} holds explanations of other texts (line {done + 1} differs from the input); "
                "remove it or choose another --output."
            )
        _check_same_options(output, done, record, options)
        done += 1
    kept = b"".join(line + b"\n" for line in complete[:done])
    if kept != raw:
        output.write_bytes(kept)
    return done


def _check_same_options(output: Path, line: int, record: Dict[str, Any], options: Optional[Dict[str, Any]]) -> None:
    if options is None:
        return
    recorded = record.get("options") if isinstance(record.get("options"), dict) else {}
    differing = [name for name, value in options.items() if recorded.get(name) != value]
    if differing:
        name = differing[0]
        raise UserError(
            f"{output} line {line + 1} was explained with other options ({name}: "
            f"{recorded.get(name)!r} there, {options[name]!r} now); resuming would mix them. "
            "Remove it, choose another --output, or rerun with the same options."
        )


def open_output(output: Optional[Path]) -> Tuple[Any, Callable[[], None]]:
    if output is None:
        return sys.stdout, lambda: None
    stream = open(output, "a", encoding="utf-8")
    return stream, stream.close
