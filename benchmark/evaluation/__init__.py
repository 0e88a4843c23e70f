"""Evaluation: the prompt sets of a task, the protocol that scores generated motions, the `evaluate` verb.

- `prompts`: `build_evaluation_plan(task, folder, split)` -> `EvaluationPlan` (prompt sets of `EvalItem`s, the
  concept database); `write_plan` writes `prompts.json` (for a method's `generate`) and `references.json`.
- `protocol`: `evaluate(EvaluationRequest(plan), evaluator, motions, folder, cache=...)` ->
  `EvaluationReport` (per prompt set, per metric: mean and 95 % CI over 20 repeats); `compare_to_reference`
  adds the distance to the retrain-without-concept model D_r.
- `schema`: `metrics.json` and `result.json`, typed and versioned; `write_metrics`, `read_metrics`.
- `request`: the container verb, `run_evaluate_verb(input_dir, output_dir)` (`hmu evaluate`).

    >>> plan = build_evaluation_plan(task, folder, compute_split(task, folder.root), max_prompts=256)
    >>> write_plan(plan, "runs/plan")                        # -> hmu generate ... -> motions.npz
    >>> report = evaluate(EvaluationRequest(plan), load_evaluator("runs/evaluator"),
    ...                   read_motions("runs/m/motions.npz"), folder, cache=GroundTruthCache(Path("cache")))
    >>> write_metrics(report, "runs/m/metrics.json")

Importing this package loads numpy and torch (through the generation prompt format and the evaluator
interface); the CLI imports it inside its functions.
"""

from benchmark.evaluation.prompts import (
    ConceptDatabase,
    EvalItem,
    EvaluationPlan,
    PlanError,
    PromptGroup,
    PromptSetPlan,
    ReferenceMotion,
    build_evaluation_plan,
    read_plan,
    write_plan,
)
from benchmark.evaluation.protocol import (
    EvaluationError,
    EvaluationReport,
    EvaluationRequest,
    GroundTruthCache,
    PromptSetReport,
    ScoredMetric,
    compare_to_reference,
    evaluate,
)
from benchmark.evaluation.request import run_evaluate_verb
from benchmark.evaluation.schema import read_metrics, write_metrics

__all__ = [
    "ConceptDatabase",
    "EvalItem",
    "EvaluationError",
    "EvaluationPlan",
    "EvaluationReport",
    "EvaluationRequest",
    "GroundTruthCache",
    "PlanError",
    "PromptGroup",
    "PromptSetPlan",
    "PromptSetReport",
    "ReferenceMotion",
    "ScoredMetric",
    "build_evaluation_plan",
    "compare_to_reference",
    "evaluate",
    "read_metrics",
    "read_plan",
    "run_evaluate_verb",
    "write_metrics",
    "write_plan",
]
