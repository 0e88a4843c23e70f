"""`hmu check IMAGE`: run the method container contract's conformance suite against any image.

    hmu check hmu/method/original:latest
    hmu check keyword-filter:1 --report check.json --workdir /tmp/check-kf

Prints one line per check (PASS, FAIL or SKIP, and why) and exits 0 when every check passes, 1 otherwise,
2 when the suite cannot run (no engine, no such image). See `benchmark.harness.conformance`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  hmu check hmu/method/original:latest
  docker build --build-arg METHOD_BASE=hmu/method-base:latest -t keyword-filter:1 examples/external_method
  hmu check keyword-filter:1 --report check.json
  hmu check keyword-filter:1 --workdir /tmp/check-kf      # keep the requests, outputs and logs

the checks, on a tiny random model and two prompts, every container in the sandbox (no network, read-only
root, non-root user, no capabilities, memory/pid/time limits):
  describe      a valid description on stdout; labels org.hmu.interface=1, org.hmu.method=<its name>
  unlearn       /hmu/output/model/ loads in the backbone's format; result.json
  generate      /hmu/output/motions.npz: one finite float32 (frames x 263) array per prompt and repeat
  determinism   the same generate request twice gives the same motions
  network       no stage reports a network error
  output        only the contract's files, plain, within limits, no links; no write outside /hmu/output
  time budget   no stage killed at its wall-clock limit
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="run the contract's conformance suite against a method image",
        description="Run a method image through the container contract's checks, in the sandbox, on a\n"
        "tiny self-made world, and print a report. Exit 0: every check passed; 1: some did not.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", metavar="IMAGE", help="the image: a reference (name:tag) or an image ID")
    parser.add_argument("--report", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="keep the requests, outputs and logs here (empty folder)"
    )
    parser.add_argument(
        "--stage-seconds",
        type=float,
        default=300.0,
        metavar="S",
        help="wall-clock limit of each stage (default 300; the method's own time_limit_s when lower)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.api.contract import write_json
    from benchmark.harness.conformance import CheckSettings, run_check

    report = run_check(
        args.image,
        CheckSettings(stage_seconds=args.stage_seconds),
        workdir=args.workdir,
        echo=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(report.format())
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.report, report.to_json())
        print(f"report: {args.report}")
    if args.workdir is not None:
        print(f"requests, outputs and logs: {args.workdir}")
    return 0 if report.passed else 1
