"""Entry point of the `hmu` console script.

Each subcommand lives in its own module under `benchmark.cli` and exposes
`register(subparsers) -> None`, which adds its parser and sets `func` on it.
Subcommand modules import heavy libraries (torch) inside their functions, so `hmu --help` stays fast.

    hmu data synth --out data/embedded --motions 2000 --seed 0
    hmu split --task tasks/embedded_violence.yaml --data data/embedded
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from benchmark.errors import HMUError

# Subcommand modules, in the order `hmu --help` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "benchmark.cli.data",
    "benchmark.cli.render",
    "benchmark.cli.split",
    "benchmark.cli.train",
    "benchmark.cli.model",
    "benchmark.cli.generate",
    "benchmark.cli.method",
    "benchmark.cli.plan",
    "benchmark.cli.evaluate",
    "benchmark.cli.train_evaluator",
    "benchmark.cli.images",
    "benchmark.cli.bench",
    "benchmark.cli.leaderboard",
    "benchmark.cli.check",
    "benchmark.cli.submit",
    "benchmark.cli.bundle",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hmu",
        description="HMU-Bench: a benchmark for human motion unlearning.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HMUError as error:
        print(f"hmu {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
