"""`hmu evaluate`: the evaluator container's verb: score a method's motions from a request folder.

    hmu evaluate --input /hmu/input --output /hmu/output

The request folder holds `request.json` (schema in `benchmark.evaluation.request`); the output folder gets
`metrics.json` and `result.json`. Exit status 0, or 2 when the request cannot be evaluated (result.json says
why, naming the file and field).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
examples:
  hmu plan --task tasks/embedded_violence.yaml --data data/embedded --out runs/plan --max-prompts 256
  hmu generate --model runs/rece/model --prompts runs/plan/prompts.json --out runs/rece/input/motions.npz
  hmu evaluate --input runs/rece/input --output runs/rece/eval

request.json (paths relative to --input):
  {"schema": "hmu.evaluate-request/1", "plan": "../../plan/references.json", "motions": "motions.npz",
   "dataset": "/abs/data/embedded", "evaluator": "/abs/runs/evaluator", "cache_dir": "/abs/cache",
   "reference_metrics": "../../retrain/eval/metrics.json", "repeats": 20, "seed": 0}
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score generated motions (the evaluator container's verb)",
        description="Read <input>/request.json (plan, motions, dataset, evaluator, protocol knobs), score\n"
        "every prompt set over the repeats (mean and 95% CI per metric) and write <output>/metrics.json\n"
        "and <output>/result.json. Set OMP_NUM_THREADS/OPENBLAS_NUM_THREADS to the cores the process\n"
        "really has: oversubscribed BLAS threads make FID's matrix square roots many times slower.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input",
        type=Path,
        default=Path("/hmu/input"),
        metavar="DIR",
        help="the request folder (default /hmu/input)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("/hmu/output"),
        metavar="DIR",
        help="where results go (default /hmu/output)",
    )
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from benchmark.evaluation.request import METRICS_FILE, RESULT_FILE, run_evaluate_verb

    code = run_evaluate_verb(args.input, args.output)
    result = json.loads((args.output / RESULT_FILE).read_text(encoding="utf-8"))
    if code != 0:
        print(f"hmu evaluate: failed: {result['error']}")
        return code
    metrics = json.loads((args.output / METRICS_FILE).read_text(encoding="utf-8"))
    for name, prompt_set in metrics["prompt_sets"].items():
        declared = [
            f"{metric} {entry['value']:.4g}±{entry['ci95'] or 0:.2g}"
            for metric, entry in prompt_set["metrics"].items()
            if entry["declared"]
        ]
        print(
            f"{name} ({prompt_set['groups']} prompts x {metrics['settings']['repeats']} repeats): "
            f"{', '.join(declared)}"
        )
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(f"wrote {args.output / METRICS_FILE} in {result['timings'].get('verb_total', 0):.1f} s")
    return 0
