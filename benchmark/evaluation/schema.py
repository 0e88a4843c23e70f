"""The files the `evaluate` verb writes: `metrics.json` (the results) and `result.json` (how the run went).

Both are typed here, key by key (`MetricsFile`, `ResultFile`), and versioned (`METRICS_SCHEMA`,
`RESULT_SCHEMA`): a change of keys or of their meaning bumps the version, and readers refuse versions they do
not know. `metrics.json` holds results only (what the leaderboard reads), so that two evaluations of the same
motions give byte-identical files; timings, cache hits and the error go to `result.json`.

    >>> write_metrics(report, "out/metrics.json")
    >>> report_again = read_metrics("out/metrics.json")        # an EvaluationReport (no timings, no cache)
    >>> write_result(result_record(report, status="ok", outputs=["metrics.json"]), "out/result.json")

`metrics.json`, abridged:

    {"schema": "hmu.metrics/1",
     "task": {"name": "embedded_violence", "version": 1},
     "dataset": {"name": "hmu-synth", "features_sha256": "..."},
     "plan_sha256": "...", "evaluator": {"kind": "tmr", "sha256": "..."},
     "settings": {"repeats": 20, "seed": 0, ...},
     "prompt_sets": {"retain_test": {"source": "retain", "split": "test", "groups": 566, ...,
        "metrics": {"fid": {"value": 0.21, "ci95": 0.01, "std": 0.02, "n_repeats": 20, "direction": "lower",
                            "declared": true, "description": "...", "repeats": [...],
                            "reference_value": null, "reference_ci95": null,
                            "delta_to_reference": null, "delta_ci95": null}, ...},
        "skipped": {"mm_safe": {"declared": false, "reason": "..."}}}, ...},
     "classifier": {"auc": 0.97, ...}, "reference": null, "warnings": []}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

from benchmark.evaluation._json import JsonReader, read_json
from benchmark.evaluation.protocol import (
    CacheEvent,
    ClassifierCheck,
    EvaluationReport,
    PromptSetReport,
    ReferenceInfo,
    ScoredMetric,
    SkippedMetric,
)
from benchmark.metrics import DIRECTIONS, METRICS, MetricResult

METRICS_SCHEMA = "hmu.metrics/1"
"""Schema id of `metrics.json`."""

RESULT_SCHEMA = "hmu.evaluate-result/1"
"""Schema id of `result.json`."""


class MetricEntry(TypedDict):
    """One metric on one prompt set."""

    value: float  # mean over the repeats
    ci95: float | None  # half-width of the 95 % CI of the mean (settings.interval); null with one repeat
    std: float  # standard deviation of the repeats (population for interval "normal", sample for "t")
    n_repeats: int  # repeats aggregated
    direction: str  # lower | higher | reference (closer to the reference model D_r is better)
    declared: bool  # the task declares it on this prompt set: the leaderboard ranks it
    description: str  # what it measures, in which units
    repeats: list[float]  # the per-repeat values, in repeat order
    reference_value: float | None  # D_r's value on the same plan; null without a reference report
    reference_ci95: float | None  # its CI half-width
    delta_to_reference: float | None  # |value - reference_value|: ranks "reference" metrics, lower is better
    delta_ci95: float | None  # sqrt(ci95^2 + reference_ci95^2): within it, two methods tie


class SkippedEntry(TypedDict):
    """A metric not computed on a prompt set."""

    declared: bool  # the task declares it here (then also a warning)
    reason: str  # why it does not apply


class PromptSetEntry(TypedDict):
    """The results of one prompt set."""

    source: str  # forget | retain | implicit | list (the task's source)
    split: str | None  # dataset split of the reference motions; null without references
    groups: int  # reference motions (or reference-free prompts): samples per repeat
    items: int  # captions planned
    generations: int  # distinct generated motions read
    passes: int  # generation passes found; fewer than settings.repeats means passes were reused
    metrics: dict[str, MetricEntry]  # metric id -> result, in suite order
    skipped: dict[str, SkippedEntry]  # metric id -> why not computed


class ClassifierEntry(TypedDict):
    """The concept classifier's check on held-out real motions."""

    split: str  # the database split it was fitted on
    label_source: str  # keywords | ground_truth
    auc: float  # ROC AUC (0.5: no signal)
    heldout_tpr: (
        float  # share of real concept motions flagged: a method that forgot nothing scores about this
    )
    heldout_fpr: float  # share of real non-concept motions flagged
    target_fpr: float  # the false-positive rate the threshold aims at
    n_train: int  # motions fitted on
    n_heldout: int  # motions checked on


class ReferenceEntry(TypedDict):
    """The reference report the deltas were computed against."""

    label: str  # where it came from (path or run name)
    plan_sha256: str  # its plan (equal to this file's)
    evaluator_sha256: str  # its evaluator (equal to this file's)


class TaskEntry(TypedDict):
    name: str  # task name
    version: int  # task version: results of different versions never mix


class DatasetEntry(TypedDict):
    name: str  # dataset name (dataset.json)
    features_sha256: str  # sha256 over the feature files read (references and database), by id


class EvaluatorEntry(TypedDict):
    kind: str  # tmr | guo
    sha256: str  # identity hash of the evaluator (weights, config, normalisation)


class MetricsFile(TypedDict):
    """`metrics.json`."""

    schema: str  # METRICS_SCHEMA
    task: TaskEntry  # the task scored
    dataset: DatasetEntry  # the dataset its references come from
    plan_sha256: str  # fingerprint of the plan (prompts, references, database)
    evaluator: EvaluatorEntry  # the evaluator that embedded everything
    settings: dict[str, Any]  # the protocol knobs (EvaluationRequest.settings())
    prompt_sets: dict[str, PromptSetEntry]  # prompt set name -> results, in plan order
    classifier: ClassifierEntry | None  # null when no classifier could be fitted
    reference: ReferenceEntry | None  # null without a reference report
    warnings: list[str]  # what the evaluation worked around


class CacheEntry(TypedDict):
    name: str  # references:<prompt set> | database
    key: str  # sha256 of the key material
    status: str  # hit | miss | corrupt | disabled


class ResultFile(TypedDict):
    """`result.json`."""

    schema: str  # RESULT_SCHEMA
    status: Literal["ok", "failed"]  # ok: metrics.json is complete
    error: str | None  # on failure: what went wrong, naming the file and field
    warnings: list[str]  # as in metrics.json
    timings: dict[str, float]  # seconds per stage (ground_truth, encode, per metric group, total)
    cache: list[CacheEntry]  # ground-truth cache lookups
    outputs: list[str]  # files written to the output folder


# ----------------------------------------------------------------------------------------------- writing


def _metric_entry(scored: ScoredMetric) -> MetricEntry:
    result = scored.result
    return {
        "value": result.value,
        "ci95": result.ci95,
        "std": result.std,
        "n_repeats": result.n_repeats,
        "direction": result.direction,
        "declared": scored.declared,
        "description": result.description,
        "repeats": list(result.repeats),
        "reference_value": scored.reference_value,
        "reference_ci95": scored.reference_ci95,
        "delta_to_reference": scored.delta_to_reference,
        "delta_ci95": scored.delta_ci95,
    }


def _prompt_set_entry(report: PromptSetReport) -> PromptSetEntry:
    return {
        "source": report.source,
        "split": report.split,
        "groups": report.groups,
        "items": report.items,
        "generations": report.generations,
        "passes": report.passes,
        "metrics": {scored.name: _metric_entry(scored) for scored in report.metrics},
        "skipped": {s.name: {"declared": s.declared, "reason": s.reason} for s in report.skipped},
    }


def metrics_json(report: EvaluationReport) -> MetricsFile:
    """The `metrics.json` content of a report."""
    classifier: ClassifierEntry | None = None
    if report.classifier is not None:
        c = report.classifier
        classifier = {
            "split": c.split,
            "label_source": c.label_source,
            "auc": c.auc,
            "heldout_tpr": c.heldout_tpr,
            "heldout_fpr": c.heldout_fpr,
            "target_fpr": c.target_fpr,
            "n_train": c.n_train,
            "n_heldout": c.n_heldout,
        }
    reference: ReferenceEntry | None = None
    if report.reference is not None:
        reference = {
            "label": report.reference.label,
            "plan_sha256": report.reference.plan_sha256,
            "evaluator_sha256": report.reference.evaluator_sha256,
        }
    return {
        "schema": METRICS_SCHEMA,
        "task": {"name": report.task, "version": report.task_version},
        "dataset": {"name": report.dataset, "features_sha256": report.dataset_sha256},
        "plan_sha256": report.plan_sha256,
        "evaluator": {"kind": report.evaluator, "sha256": report.evaluator_sha256},
        "settings": dict(report.settings),
        "prompt_sets": {s.name: _prompt_set_entry(s) for s in report.prompt_sets},
        "classifier": classifier,
        "reference": reference,
        "warnings": list(report.warnings),
    }


def result_record(
    report: EvaluationReport | None,
    *,
    status: Literal["ok", "failed"],
    error: str | None = None,
    warnings: Sequence[str] = (),
    timings: dict[str, float] | None = None,
    outputs: Sequence[str] = (),
) -> ResultFile:
    """The `result.json` content: from the report when there is one, plus what the caller adds."""
    events: tuple[CacheEvent, ...] = report.cache if report is not None else ()
    return {
        "schema": RESULT_SCHEMA,
        "status": status,
        "error": error,
        "warnings": [*(report.warnings if report is not None else ()), *warnings],
        "timings": {**(dict(report.timings) if report is not None else {}), **(timings or {})},
        "cache": [{"name": e.name, "key": e.key, "status": e.status} for e in events],
        "outputs": list(outputs),
    }


def write_json(path: Path | str, content: Any) -> Path:
    """Write JSON through a temporary file renamed into place (no half-written file on a crash).

    Non-finite numbers are refused (`allow_nan=False`): JSON has none, and a NaN metric is a bug upstream.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(content, indent=1, allow_nan=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_metrics(report: EvaluationReport, path: Path | str) -> Path:
    """Write `metrics.json`."""
    return write_json(path, metrics_json(report))


def write_result(record: ResultFile, path: Path | str) -> Path:
    """Write `result.json`."""
    return write_json(path, record)


# ----------------------------------------------------------------------------------------------- reading


def _number(reader: JsonReader, data: Any, key: str, where: str, optional: bool = False) -> float | None:
    value = reader.get(data, key, where, (int, float), optional=optional)
    if value is not None and not math.isfinite(value):
        raise reader.error(f"{where}.{key}", "must be finite")
    return None if value is None else float(value)


def _read_metric(reader: JsonReader, name: str, data: Any, where: str) -> ScoredMetric:
    if name not in METRICS:
        raise reader.error(where, f"unknown metric {name!r}")
    direction = reader.get(data, "direction", where, str)
    if direction not in DIRECTIONS:
        raise reader.error(f"{where}.direction", f"expected one of {', '.join(DIRECTIONS)}")
    repeats = reader.get(data, "repeats", where, list)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in repeats):
        raise reader.error(f"{where}.repeats", "expected a list of numbers")
    result = MetricResult(
        name=name,
        value=_number(reader, data, "value", where),  # type: ignore[arg-type]
        ci95=_number(reader, data, "ci95", where, optional=True),
        std=_number(reader, data, "std", where),  # type: ignore[arg-type]
        n_repeats=reader.get(data, "n_repeats", where, int),
        direction=direction,
        description=reader.get(data, "description", where, str),
        repeats=tuple(float(v) for v in repeats),
    )
    return ScoredMetric(
        result=result,
        declared=reader.get(data, "declared", where, bool),
        reference_value=_number(reader, data, "reference_value", where, optional=True),
        reference_ci95=_number(reader, data, "reference_ci95", where, optional=True),
        delta_to_reference=_number(reader, data, "delta_to_reference", where, optional=True),
        delta_ci95=_number(reader, data, "delta_ci95", where, optional=True),
    )


def _read_prompt_set(reader: JsonReader, name: str, data: Any, where: str) -> PromptSetReport:
    metrics = reader.get(data, "metrics", where, dict)
    skipped = reader.get(data, "skipped", where, dict)
    return PromptSetReport(
        name=name,
        source=reader.get(data, "source", where, str),
        split=reader.get(data, "split", where, str, optional=True),
        groups=reader.get(data, "groups", where, int),
        items=reader.get(data, "items", where, int),
        generations=reader.get(data, "generations", where, int),
        passes=reader.get(data, "passes", where, int),
        metrics=tuple(_read_metric(reader, k, v, f"{where}.metrics.{k}") for k, v in metrics.items()),
        skipped=tuple(
            SkippedMetric(
                k,
                reader.get(v, "declared", f"{where}.skipped.{k}", bool),
                reader.get(v, "reason", f"{where}.skipped.{k}", str),
            )
            for k, v in skipped.items()
        ),
    )


def report_from_json(data: Any, path: Path | str = "metrics.json") -> EvaluationReport:
    """An `EvaluationReport` from the content of a `metrics.json` (no timings, no cache events)."""
    reader = JsonReader(Path(path))
    schema = reader.get(data, "schema", "", str)
    if schema != METRICS_SCHEMA:
        raise reader.error("schema", f"expected {METRICS_SCHEMA!r}, got {schema!r}")
    task = reader.get(data, "task", "", dict)
    dataset = reader.get(data, "dataset", "", dict)
    evaluator = reader.get(data, "evaluator", "", dict)
    classifier_data = reader.get(data, "classifier", "", dict, optional=True)
    classifier = None
    if classifier_data is not None:
        w = "classifier"
        classifier = ClassifierCheck(
            split=reader.get(classifier_data, "split", w, str),
            label_source=reader.get(classifier_data, "label_source", w, str),
            auc=_number(reader, classifier_data, "auc", w),  # type: ignore[arg-type]
            heldout_tpr=_number(reader, classifier_data, "heldout_tpr", w),  # type: ignore[arg-type]
            heldout_fpr=_number(reader, classifier_data, "heldout_fpr", w),  # type: ignore[arg-type]
            target_fpr=_number(reader, classifier_data, "target_fpr", w),  # type: ignore[arg-type]
            n_train=reader.get(classifier_data, "n_train", w, int),
            n_heldout=reader.get(classifier_data, "n_heldout", w, int),
        )
    reference_data = reader.get(data, "reference", "", dict, optional=True)
    reference = None
    if reference_data is not None:
        reference = ReferenceInfo(
            label=reader.get(reference_data, "label", "reference", str),
            plan_sha256=reader.get(reference_data, "plan_sha256", "reference", str),
            evaluator_sha256=reader.get(reference_data, "evaluator_sha256", "reference", str),
        )
    warnings = reader.get(data, "warnings", "", list)
    prompt_sets = reader.get(data, "prompt_sets", "", dict)
    return EvaluationReport(
        task=reader.get(task, "name", "task", str),
        task_version=reader.get(task, "version", "task", int),
        dataset=reader.get(dataset, "name", "dataset", str),
        dataset_sha256=reader.get(dataset, "features_sha256", "dataset", str),
        plan_sha256=reader.get(data, "plan_sha256", "", str),
        evaluator=reader.get(evaluator, "kind", "evaluator", str),
        evaluator_sha256=reader.get(evaluator, "sha256", "evaluator", str),
        settings=reader.get(data, "settings", "", dict),
        prompt_sets=tuple(_read_prompt_set(reader, k, v, f"prompt_sets.{k}") for k, v in prompt_sets.items()),
        classifier=classifier,
        reference=reference,
        warnings=tuple(str(w) for w in warnings),
    )


def read_metrics(path: Path | str) -> EvaluationReport:
    """Read a `metrics.json` written by `write_metrics`."""
    path = Path(path)
    return report_from_json(read_json(path), path)
