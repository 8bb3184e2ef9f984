r"""
How long the ``captum-pi`` command takes, side by side with the floor any such
command pays: importing torch and a transformers model class.

Each round runs, in this order, the floor ``python -c "import torch; from
transformers import LlamaForSequenceClassification"``, ``captum-pi --help``,
``captum-pi methods`` and a warm ``captum-pi explain TEXT`` (the de-quantized
model is cached by a first, untimed run), each in a fresh process, and records
wall time and peak memory. The ratios compare medians over the rounds; they are
measured in one run on one machine, so they hold for that machine only.

    python benchmarks/cli_startup.py --rounds 5 --out benchmarks/results/cli_startup.md
"""
import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

TEXT = "This medicine worked wonders for my back pain. The nausea was awful though."
COMMAND = "python benchmarks/cli_startup.py"


def commands() -> Dict[str, List[str]]:
    cli = [sys.executable, "-m", "captum_pi"]
    return {
        "floor: import torch + LlamaForSequenceClassification": [
            sys.executable, "-c", "import torch; from transformers import LlamaForSequenceClassification"],
        "captum-pi --help": cli + ["--help"],
        "captum-pi methods": cli + ["methods"],
        "captum-pi explain TEXT (warm)": cli + ["explain", TEXT],
        "captum-pi explain TEXT --method mp-pi (warm)": cli + ["explain", TEXT, "--method", "mp-pi"],
    }


# runs a command and reports its peak resident memory, so each command is measured alone
_PEAK_REPORTER = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def timed(argv: Sequence[str]) -> Tuple[float, float]:
    r"""Wall seconds and peak resident memory in MiB of one run of ``argv``."""
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", _PEAK_REPORTER, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{completed.stderr}")
    peak_kb = next(line.split()[1] for line in completed.stderr.splitlines()[::-1] if line.startswith("PEAK_KB"))
    return seconds, int(peak_kb) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cli_startup.md"))
    args = parser.parse_args()
    runs = commands()
    timed(runs["captum-pi explain TEXT (warm)"])  # fills the de-quantized model cache
    seconds: Dict[str, List[float]] = {name: [] for name in runs}
    memory: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, argv in runs.items():
            wall, peak = timed(argv)
            seconds[name].append(wall)
            memory[name].append(peak)
    floor = statistics.median(seconds["floor: import torch + LlamaForSequenceClassification"])
    lines = [
        "# Command-line start-up, side by side",
        "",
        f"Command: `{COMMAND} --rounds {args.rounds} --out {args.out}`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; {args.rounds} rounds, "
        "each command in a fresh process, in turn. The timer includes starting a small Python "
        "process that reports each command's peak memory (the same for every row).",
        "",
        "| command | median s | min s | max s | ratio to the floor | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in seconds.items():
        median = statistics.median(values)
        lines.append(
            f"| {name} | {median:.2f} | {min(values):.2f} | {max(values):.2f} | {median / floor:.2f} "
            f"| {statistics.median(memory[name]):.0f} |"
        )
    warm = statistics.median(seconds["captum-pi explain TEXT (warm)"])
    lines += ["", f"Warm `captum-pi explain` / floor: **{warm / floor:.2f}** (goal: at most 2)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
