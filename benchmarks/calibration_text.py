"""Write the calibration text of docs/compression.md's data-aware rows: in-domain, not held out.

The first ``--modules`` top-level modules (``*.py`` directly in the standard-library folder, in
name order) of this interpreter's CPython standard library whose file name is not in the
references' ``heldout_files.json``, concatenated. The references were trained on CPython 3.11.7's
library; a different Python gives a different (still held-out-free) text.

    python benchmarks/calibration_text.py ../shared/reference-models/eval/heldout_files.json calib.txt
"""

from __future__ import annotations

import argparse
import json
import sysconfig
from pathlib import Path


def calibration_modules(heldout: set[str], count: int) -> list[Path]:
    """The first ``count`` top-level standard-library modules not in ``heldout``, by file name."""
    library = Path(sysconfig.get_paths()["stdlib"])
    return [path for path in sorted(library.glob("*.py")) if path.name not in heldout][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("heldout_files", help="the references' eval/heldout_files.json")
    parser.add_argument("output", help="text file to write")
    parser.add_argument("--modules", type=int, default=40)
    args = parser.parse_args()
    heldout = set(json.loads(Path(args.heldout_files).read_text())["files"])
    modules = calibration_modules(heldout, args.modules)
    text = "\n\n".join(path.read_text(encoding="utf-8") for path in modules)
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"{args.output}: {len(modules)} modules ({modules[0].name} … {modules[-1].name}), {len(text):,} characters")


if __name__ == "__main__":
    main()
