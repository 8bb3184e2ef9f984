r"""
An example of the HTML views (like the paper's Figures 6 and 7): several methods
explaining the default classifier's prediction on one drug review, sentence by
sentence, side by side in one page, plus a screenshot taken with headless Chromium.

    python benchmarks/html_example.py
    python benchmarks/html_example.py --level word --out benchmarks/results/html_example_words

Writes ``<out>.html`` (the comparison, the prompt hidden), ``<out>_sp_pi.html``
(SP-PI alone, the prompt in grey) and ``<out>.png`` (a screenshot of the comparison).
"""
import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from captum_pi.llm_attr import LLMClassifierAttribution
from captum_pi.models import load_default_classifier
from captum_pi.registry import get_method
from captum_pi.text import TextFeatureInput, fixed_template
from captum_pi.visualization import attribution_html, comparison_html

HERE = Path(__file__).resolve().parent
REVIEW = (
    "It worked well for my migraines at first, and I was really hopeful. "
    "After two weeks the headaches came back worse than before. "
    "I also gained weight and felt tired all day. "
    "The pharmacist was very kind and helpful. "
    "My doctor finally switched me to something else."
)
METHODS = ("sp-pi", "mp-pi", "kernel-shap", "feature-ablation", "input-x-gradient", "a-last")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def screenshot(page: Path, png: Path, size: str) -> None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        print("chromium not found (apt-get install -y chromium): no screenshot taken")
        return
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
             f"--window-size={size}", page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--level", default="sentence", choices=("token", "word", "sentence"))
    parser.add_argument("--out", default=str(HERE / "results" / "html_example"))
    parser.add_argument("--window-size", default="1400,820")
    args = parser.parse_args()

    bundle = load_default_classifier()
    inp = TextFeatureInput(REVIEW, bundle.tokenizer, level=args.level, template=fixed_template(bundle.prefix))
    results = {}
    for name in METHODS:
        spec = get_method(name)
        options = {"seed": 0} if spec.stochastic else {}
        result = LLMClassifierAttribution(spec.build(bundle.model), bundle.tokenizer).attribute(inp, **options)
        results[spec.title] = result
        print(f"{spec.title:22s} " + " ".join(f"{v:+.3f}" for v in result.seq_attr.tolist()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = out.with_suffix(".html")
    title = "Drug review: attributions compared"
    page.write_text(comparison_html(results, title=title, show_fixed=False), encoding="utf-8")
    out.with_name(out.name + "_sp_pi.html").write_text(attribution_html(results["SP-PI"]), encoding="utf-8")
    screenshot(page, out.with_suffix(".png"), args.window_size)
    print(f"wrote {page}, {out.with_suffix('.png')} ({os.path.basename(out)}_sp_pi.html)")


if __name__ == "__main__":
    main()
