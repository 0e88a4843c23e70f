"""`hmu method <verb>`: the method container's entrypoint; `hmu methods ls|validate`: the method folders.

    hmu method describe --method original
    hmu method unlearn --method original --input runs/r/unlearn/in --output runs/r/unlearn/out
    hmu method generate --method original --input runs/r/generate/in --output runs/r/generate/out
    hmu methods ls
    hmu methods validate

In a method image the entrypoint is `hmu method` with `HMU_METHOD` and `HMU_METHODS_DIR` set, and the
harness mounts `/hmu/input` (read-only) and `/hmu/output`, the defaults of --input and --output.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXAMPLES_METHOD = """\
examples:
  hmu method describe --method original
  hmu method unlearn --method original --input runs/r/unlearn/in --output runs/r/unlearn/out
  hmu method generate --method original --input runs/r/generate/in --output runs/r/generate/out
  HMU_METHOD=original hmu method unlearn          # in a method container: /hmu/input -> /hmu/output

unlearn request.json (paths relative to --input; schemas in benchmark/api/contract.py):
  {"schema": "hmu.unlearn-request/1", "task": {"name": "embedded_violence", "version": 1},
   "concept": {"name": "violence", "keywords": ["kick", "punch"], "pos": {"box": ["VERB"]}},
   "base_model": "base_model", "data_dir": "data",
   "forget": {"motion_ids": ["000012"], "prompts": ["a person kicks"], "split": "train_val"},
   "retain": {"motion_ids": ["000007"], "prompts": ["a person walks"], "split": "train_val"},
   "seed": 0, "parameters": {"k": 16}, "time_budget_s": 600, "device": null, "clip_weights": null}
generate request.json:
  {"schema": "hmu.generate-request/1", "model": "model", "prompts": "prompts.json",
   "settings": {"timesteps": 10, "cond_scale": 4.0}, "seed": 0, "device": null, "clip_weights": null}

exit status: 0 ok; 1 the method failed; 2 unusable input. result.json says why, in every case.
"""

EXAMPLES_METHODS = """\
examples:
  hmu methods ls
  hmu methods ls --runs                   # with every sweep run's name and parameters
  hmu methods validate                    # import every method, check describe() against method.yaml
  hmu methods validate lcr --methods-dir ~/my-methods
"""


def _add_methods_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--methods-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="where method folders are (repeatable; default $HMU_METHODS_DIR, else the checkout's methods/)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    method = subparsers.add_parser(
        "method",
        help="run a method's container verb: describe, unlearn or generate",
        description="The method container's entrypoint. describe prints the method's description (JSON);\n"
        "unlearn reads <input>/request.json and writes <output>/model/ and <output>/result.json;\n"
        "generate reads <input>/request.json and writes <output>/motions.npz and <output>/result.json.",
        epilog=EXAMPLES_METHOD,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    method.add_argument("verb", choices=("describe", "unlearn", "generate"), help="the verb to run")
    method.add_argument(
        "--method",
        default=os.environ.get("HMU_METHOD"),
        metavar="NAME",
        help="the method (default $HMU_METHOD)",
    )
    method.add_argument("--input", type=Path, default=Path("/hmu/input"), metavar="DIR", help="(/hmu/input)")
    method.add_argument(
        "--output", type=Path, default=Path("/hmu/output"), metavar="DIR", help="(/hmu/output)"
    )
    _add_methods_dir(method)
    method.set_defaults(func=run_method)

    methods = subparsers.add_parser(
        "methods",
        help="list and validate the method folders",
        description="ls lists the discovered methods (reads method.yaml files only: fast, no torch);\n"
        "validate imports every method and checks describe() against its method.yaml.",
        epilog=EXAMPLES_METHODS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = methods.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("ls", help="list the methods with version, sweep size and GPU use")
    listing.add_argument("--runs", action="store_true", help="also list every sweep run")
    _add_methods_dir(listing)
    listing.set_defaults(func=run_ls)
    validate = verbs.add_parser("validate", help="import every method and check its description")
    validate.add_argument("names", nargs="*", metavar="NAME", help="methods to check (default: all)")
    _add_methods_dir(validate)
    validate.set_defaults(func=run_validate)


def run_method(args: argparse.Namespace) -> int:
    from benchmark.api.entrypoint import print_description, run_stage
    from benchmark.errors import HMUError

    if not args.method:
        raise HMUError("no method: pass --method NAME or set HMU_METHOD")
    if args.verb == "describe":
        return print_description(args.method, args.methods_dir)
    code = run_stage(args.verb, args.method, args.input, args.output, args.methods_dir)
    _print_result(args.output)
    return code


def _print_result(output: Path) -> None:
    import json
    import sys

    from benchmark.api.contract import RESULT_FILE

    result = json.loads((output / RESULT_FILE).read_text(encoding="utf-8"))
    where = f"{result['verb']} {result['method']} v{result['method_version']}"
    if result["status"] == "ok":
        produced = result["model_hash"] if result["verb"] == "unlearn" else f"{result['num_motions']} motions"
        print(f"{where}: ok in {result['wall_seconds']:.1f} s on {result['device']}: {produced}")
    else:
        print(f"{where}: failed: {result['error_type']}: {result['error']}", file=sys.stderr)
    for message in result["messages"]:
        print(f"  {message}")


def run_ls(args: argparse.Namespace) -> int:
    from benchmark.api.registry import discover_methods

    registry = discover_methods(args.methods_dir)
    rows = [("method", "version", "runs", "gpu", "description")]
    for name in registry:
        spec = registry.get(name).spec
        rows.append((name, str(spec.version), str(len(spec.runs())), spec.resources.gpu, spec.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    if args.runs:
        for name in registry:
            for run in registry.get(name).spec.runs():
                print(f"{run.name}: {run.parameters}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from benchmark.api.entrypoint import describe_entry
    from benchmark.api.registry import discover_methods
    from benchmark.errors import HMUError

    registry = discover_methods(args.methods_dir)
    failures = 0
    for name in args.names or registry.names():
        try:
            describe_entry(registry.get(name))
        except HMUError as error:
            failures += 1
            print(f"FAIL {name}: {error}")
            continue
        spec = registry.get(name).spec
        print(f"ok   {name} v{spec.version} ({len(spec.runs())} run(s)) {registry.origin(name)}")
    if failures:
        raise HMUError(f"{failures} method(s) failed validation")
    return 0
