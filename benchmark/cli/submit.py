"""`hmu submit IMAGE --out BUNDLE`: check a method image, run the full bench on it, write a results bundle.

    hmu submit keyword-filter:1 --out submissions/keyword_filter
    hmu submit my-method:2 --out bundle --seeds 0 1 2 --workers 2
    hmu bundle verify submissions/keyword_filter          # what the leaderboard maintainer runs

The bench runs with the benchmark's own evaluation settings (the embedded default unless `--task` and
`--data` say otherwise): a bundle is comparable with every other result only if it was scored the same way,
so the smoke-test knobs of `hmu bench` are not offered here. Exit status: 0 when the check passed and every
run is ok; 1 when the check failed (nothing was run, no bundle) or a run failed (the bundle holds it);
2 when the submission could not start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.bench import add_shared_arguments, shared_settings

EXAMPLES = """\
examples:
  hmu submit keyword-filter:1 --out submissions/keyword_filter
  hmu submit my-method:2 --out bundle --seeds 0 1 2 --workers 2
  hmu submit my-method:2 --out bundle --task humanml3d_violence --data humanml3d=dataset/HumanML3D \\
             --base-model humanml3d=models/momask --evaluator humanml3d=checkpoints/t2m

what it does:
  1. hmu check IMAGE                  the conformance suite; stops here unless every check passes
  2. hmu bench --image NAME=IMAGE     every task, seed and sweep point, in containers
  3. the bundle: <out>/runs/<run_id>/... and <out>/MANIFEST.json (sha256 of every file, the image ID, the
     harness's git commit, the check report, the date); send the folder (e.g. as a tar archive)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="check a method image, bench it and write a results bundle",
        description="Run the conformance suite on a method image, then the full bench on it, and write\n"
        "a bundle of its run folders with a manifest of hashes that `hmu bundle verify` checks.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", metavar="IMAGE", help="the method image (name:tag or image ID)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the bundle folder (new)")
    add_shared_arguments(parser)
    parser.add_argument(
        "--stage-seconds", type=float, default=300.0, metavar="S", help="the check's per-stage limit (300)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.harness.bench import BenchConfig, format_summary
    from benchmark.harness.conformance import CheckSettings
    from benchmark.harness.submit import submit_image

    config = BenchConfig(**shared_settings(args), runner="docker")
    submission = submit_image(
        args.image,
        config,
        args.out,
        check=CheckSettings(stage_seconds=args.stage_seconds),
        echo=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(submission.report.format())
    if submission.summary is None:
        print("the check failed: nothing was run and no bundle was written")
        return 1
    print(format_summary(submission.summary))
    print(f"\nbundle: {submission.bundle} (verify it with: hmu bundle verify {submission.bundle})")
    if not submission.ok:
        print("some runs failed: the bundle holds them with their state and logs")
    return 0 if submission.ok else 1
