"""`hmu data synth`: generate the embedded dataset (procedural human motion in the HumanML3D layout).

The dataset is written to a temporary folder beside `--out` and moved into place when complete, so an
interrupted run never leaves half a dataset. An existing `--out` is replaced only when it is a previous output
of this command (its `dataset.json` says so) or with `--force`; anything else is refused.

    hmu data synth --out data/embedded                       # 2000 motions, seed 0
    hmu data synth --out /tmp/tiny --motions 40 --seed 3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from benchmark.errors import HMUError

EXAMPLES = """\
examples:
  hmu data synth --out data/embedded
  hmu data synth --out /tmp/tiny --motions 40 --seed 3
  hmu render --data data/embedded --id 000012 --out kick.gif
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="generate datasets",
        description="Generate datasets.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    synth = commands.add_parser(
        "synth",
        help="generate the embedded dataset of procedural human motion",
        description="Generate procedurally animated human motions (walks, jumps, kicks, punches...) in the\n"
        "HumanML3D layout, with mirrored M copies, train/val/test splits, three captions per motion and\n"
        "ground-truth action labels (labels.jsonl). Deterministic for a seed.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_argument("--out", required=True, type=Path, metavar="DIR", help="the dataset folder to write")
    synth.add_argument(
        "--motions",
        type=int,
        default=2000,
        metavar="N",
        help="original motions (default 2000; the dataset holds 2N ids with the mirrored copies)",
    )
    synth.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    synth.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        metavar="W",
        help="processes (default: 2, or 1 on a single core); the output does not depend on it",
    )
    synth.add_argument(
        "--force",
        action="store_true",
        help="replace --out even when it is a non-empty folder that this command did not write",
    )
    synth.set_defaults(func=run_synth)


def _is_synth_output(folder: Path) -> bool:
    from benchmark.data.synth.generator import DATASET_NAME

    try:
        record = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("name") == DATASET_NAME


def _check_target(out: Path, force: bool) -> bool:
    """Whether `out` holds something to replace; raises when it may not be replaced."""
    if out.exists() and not out.is_dir():
        raise HMUError(f"--out {out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return False
    if _is_synth_output(out) or force:
        return True
    raise HMUError(
        f"--out {out} is not empty and is not a dataset written by 'hmu data synth'; "
        "choose another folder or pass --force to replace it"
    )


def run_synth(args: argparse.Namespace) -> int:
    from benchmark.data.synth.generator import SynthConfig, generate_dataset

    out: Path = args.out
    try:
        config = SynthConfig(motions=args.motions, seed=args.seed, workers=args.workers)
    except ValueError as error:
        raise HMUError(str(error)) from None
    replace = _check_target(out, args.force)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = generate_dataset(staging, config)
        if replace:
            print(f"replacing the previous contents of {out}")
            shutil.rmtree(out)
        elif out.exists():
            out.rmdir()  # an empty folder
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(
        f"wrote {summary.motions} motions ({summary.ids} ids with the mirrored copies, "
        f"{summary.seconds / 3600:.2f} h of motion) to {out} in {summary.elapsed:.1f} s"
    )
    print(
        f"violent: {summary.violent} motions ({100 * summary.violent_share:.1f}%), "
        "described only implicitly: "
        f"{summary.implicit} ({100 * summary.implicit_share:.1f}% of the violent)"
    )
    families = ", ".join(f"{name} {count}" for name, count in summary.families.items())
    print(f"motions per action family: {families}")
    return 0
