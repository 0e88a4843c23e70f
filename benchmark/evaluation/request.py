"""The `evaluate` verb of the evaluator container: a request folder in, `metrics.json` and `result.json` out.

The harness mounts the request folder read-only at `/hmu/input` and an empty folder at `/hmu/output`, then
runs `hmu evaluate --input /hmu/input --output /hmu/output`; tests call `run_evaluate_verb` in-process, the
same code. `/hmu/input/request.json` (schema `REQUEST_SCHEMA`; relative paths are relative to the input
folder):

    {
      "schema": "hmu.evaluate-request/1",
      "plan": "references.json",            # the evaluation plan (benchmark.evaluation.prompts.write_plan)
      "motions": "motions.npz",             # the method's generations for the plan's prompts.json
      "dataset": "/data/embedded",          # the dataset folder the plan was built from (read-only)
      "evaluator": "/evaluator",            # a trained evaluator folder or a Guo et al. checkpoint root
      "reference_metrics": null,            # optional: D_r's metrics.json on the same plan
      "cache_dir": null,                    # optional: a writable folder for the ground-truth cache
      "device": "cpu",                      # optional: where the evaluator runs
      "task": {"name": "embedded_violence", "version": 1},   # optional: must match the plan's
      "repeats": 20, "seed": 0               # optional protocol knobs: any field of EvaluationRequest
    }

The protocol knobs are the fields of `EvaluationRequest` (`repeats`, `seed`, `metrics`, `r_precision_batch`,
`drop_last`, `ncs_ks`, `ncs_max_rank`, `mask_normalisation`, `interval`, `multimodality_prompts`,
`multimodality_generations`, `evaluator_sha256`), with its defaults. The verb writes
`/hmu/output/metrics.json` (`benchmark.evaluation.schema.MetricsFile`) and `/hmu/output/result.json`
(`ResultFile`: status, error, warnings, timings, cache hits). A bad request, plan, dataset, motions file or
evaluator is exit status 2 with `result.json` saying `"status": "failed"` and an error that names the file
and field; metrics.json is then not written.

    >>> exit_code = run_evaluate_verb(Path("/hmu/input"), Path("/hmu/output"))
"""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError, HMUError
from benchmark.evaluation._json import JsonReader, read_json
from benchmark.evaluation.prompts import EvaluationPlan, read_plan
from benchmark.evaluation.protocol import EvaluationError, EvaluationReport, EvaluationRequest

logger = logging.getLogger(__name__)

REQUEST_SCHEMA = "hmu.evaluate-request/1"
"""Schema id of `request.json`."""

REQUEST_FILE = "request.json"
METRICS_FILE = "metrics.json"
RESULT_FILE = "result.json"

EXIT_OK = 0
EXIT_BAD_REQUEST = 2
"""Exit status of a request that cannot be evaluated (the same as `hmu` for any HMUError)."""

_PATH_FIELDS = ("plan", "motions", "dataset", "evaluator")
_OPTIONAL_PATH_FIELDS = ("reference_metrics", "cache_dir")
_KNOB_TYPES: dict[str, type | tuple[type, ...]] = {
    "repeats": int,
    "seed": int,
    "metrics": str,
    "r_precision_batch": int,
    "drop_last": bool,
    "ncs_ks": list,
    "ncs_max_rank": int,
    "mask_normalisation": str,
    "interval": str,
    "multimodality_prompts": int,
    "multimodality_generations": int,
    "evaluator_sha256": str,
}
_FIELDS = ("schema", *_PATH_FIELDS, *_OPTIONAL_PATH_FIELDS, "device", "task", *_KNOB_TYPES)


@dataclass(frozen=True)
class VerbRequest:
    """The parsed `request.json`: where everything is, and the protocol knobs."""

    path: Path
    """The request file (named in errors)."""
    plan: Path
    """The plan (`references.json`)."""
    motions: Path
    """The generated motions (`motions.npz`)."""
    dataset: Path
    """The dataset folder."""
    evaluator: Path
    """The evaluator folder."""
    reference_metrics: Path | None
    """D_r's `metrics.json` on the same plan, or None."""
    cache_dir: Path | None
    """Where ground-truth statistics are cached, or None (computed every time)."""
    device: str
    """Where the evaluator runs."""
    task: tuple[str, int] | None
    """(name, version) the plan must be for, or None."""
    knobs: tuple[tuple[str, Any], ...]
    """The protocol knobs given (field of EvaluationRequest, value)."""

    def evaluation_request(self, plan: EvaluationPlan) -> EvaluationRequest:
        """The `EvaluationRequest` of this request on its plan; an invalid knob is a ConfigError."""
        if self.task is not None and self.task != (plan.task, plan.task_version):
            raise ConfigError(
                self.path,
                "task",
                f"{self.task[0]} v{self.task[1]}, but the plan {self.plan} is for "
                f"{plan.task} v{plan.task_version}",
            )
        knobs = dict(self.knobs)
        if "ncs_ks" in knobs:
            knobs["ncs_ks"] = tuple(knobs["ncs_ks"])
        try:
            return EvaluationRequest(plan, **knobs)
        except EvaluationError as error:
            # The message starts with the knob's name ("repeats must be >= 1, got 0").
            raise ConfigError(self.path, None, str(error)) from None


def parse_request(data: Any, path: Path, base: Path) -> VerbRequest:
    """Parse the content of a `request.json`; relative paths are resolved against `base`."""
    reader = JsonReader(path)
    if not isinstance(data, dict):
        raise reader.error("", "expected a JSON object")
    for key in data:
        if key not in _FIELDS:
            close = difflib.get_close_matches(str(key), _FIELDS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise reader.error(str(key), f"unknown field; {hint}known: {', '.join(_FIELDS)}")
    schema = reader.get(data, "schema", "", str)
    if schema != REQUEST_SCHEMA:
        raise reader.error("schema", f"expected {REQUEST_SCHEMA!r}, got {schema!r}")

    def resolve(value: str, key: str) -> Path:
        if not value.strip():
            raise reader.error(key, "must be a non-empty path")
        return base / value

    paths = {key: resolve(reader.get(data, key, "", str), key) for key in _PATH_FIELDS}
    optional: dict[str, Path | None] = {}
    for key in _OPTIONAL_PATH_FIELDS:
        value = reader.get(data, key, "", str, optional=True, default=None)
        optional[key] = None if value is None else resolve(value, key)
    for key in ("plan", "motions"):
        if not paths[key].is_file():
            raise reader.error(key, f"{paths[key]} is not a file")
    for key in ("dataset", "evaluator"):
        if not paths[key].is_dir():
            raise reader.error(key, f"{paths[key]} is not a folder")
    reference = optional["reference_metrics"]
    if reference is not None and not reference.is_file():
        raise reader.error("reference_metrics", f"{reference} is not a file")
    task = None
    task_data = reader.get(data, "task", "", dict, optional=True, default=None)
    if task_data is not None:
        task = (reader.get(task_data, "name", "task", str), reader.get(task_data, "version", "task", int))
    knobs = []
    for key, kind in _KNOB_TYPES.items():
        if key not in data:
            continue
        value = reader.get(data, key, "", kind, optional=key == "evaluator_sha256")
        if key == "ncs_ks" and not all(isinstance(k, int) and not isinstance(k, bool) for k in value):
            raise reader.error(key, "expected a list of integers")
        knobs.append((key, value))
    return VerbRequest(
        path=path,
        plan=paths["plan"],
        motions=paths["motions"],
        dataset=paths["dataset"],
        evaluator=paths["evaluator"],
        reference_metrics=reference,
        cache_dir=optional["cache_dir"],
        device=reader.get(data, "device", "", str, default="cpu"),
        task=task,
        knobs=tuple(knobs),
    )


def read_request(input_dir: Path) -> VerbRequest:
    """Read and parse `<input_dir>/request.json`."""
    path = input_dir / REQUEST_FILE
    return parse_request(read_json(path), path, input_dir)


def _evaluate(request: VerbRequest) -> EvaluationReport:
    """Everything the verb does between reading the request and writing the files."""
    from benchmark.backbone.generation import read_motions
    from benchmark.data.humanml3d import HumanML3DFolder
    from benchmark.evaluation.protocol import GroundTruthCache, compare_to_reference, evaluate
    from benchmark.evaluation.schema import read_metrics
    from benchmark.evaluator import load_evaluator

    plan = read_plan(request.plan)
    evaluation = request.evaluation_request(plan)
    reference = read_metrics(request.reference_metrics) if request.reference_metrics is not None else None
    dataset = HumanML3DFolder(request.dataset)
    generated = read_motions(request.motions, feature_dim=dataset.metadata.feature_dim)
    evaluator = load_evaluator(request.evaluator, device=request.device)
    try:
        report = evaluate(
            evaluation, evaluator, generated, dataset, cache=GroundTruthCache(request.cache_dir)
        )
    except EvaluationError as error:
        raise EvaluationError(f"{request.motions} (plan {request.plan}): {error}") from None
    if reference is not None:
        report = compare_to_reference(report, reference, str(request.reference_metrics))
    return report


def run_evaluate_verb(input_dir: Path, output_dir: Path) -> int:
    """Run the `evaluate` verb: read `<input_dir>/request.json`, write `metrics.json` and `result.json` into
    `output_dir`. Returns the exit status: 0, or 2 for a request that cannot be evaluated (result.json then
    says why). Any other exception is a bug: result.json records it, and it propagates."""
    from benchmark.evaluation.schema import result_record, write_metrics, write_result

    began = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    result_path = output_dir / RESULT_FILE

    def failed(message: str) -> None:
        seconds = {"verb_total": round(time.perf_counter() - began, 4)}
        write_result(result_record(None, status="failed", error=message, timings=seconds), result_path)

    try:
        report = _evaluate(read_request(input_dir))
    except HMUError as error:
        logger.error("evaluate: %s", error)
        failed(str(error))
        return EXIT_BAD_REQUEST
    except Exception as error:
        failed(f"internal error: {type(error).__name__}: {error}")
        raise
    write_metrics(report, output_dir / METRICS_FILE)
    seconds = {"verb_total": round(time.perf_counter() - began, 4)}
    write_result(
        result_record(report, status="ok", timings=seconds, outputs=[METRICS_FILE, RESULT_FILE]), result_path
    )
    return EXIT_OK
