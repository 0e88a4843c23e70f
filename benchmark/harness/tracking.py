"""MLflow logging from the results store: a pure reader of run folders, one MLflow run per folder.

    >>> tracker = Tracker.open(Path("results"))         # $MLFLOW_TRACKING_URI, else sqlite:///<results>/mlflow.db
    >>> logged = tracker.log_all(ResultsStore(Path("results")))
    >>> [(run.run_id, run.new) for run in logged]      # new=False: logged by an earlier call, left alone

    mlflow ui --backend-store-uri sqlite:///$PWD/results/mlflow.db --host 127.0.0.1     # make mlflow-ui

What a run folder becomes (experiment `hmu-bench/<task>`, run name = the run id):
- params: `method`, `method_version`, `sweep`, `task`, `task_version`, `seed`, `reference` (the D_r run id or
  `none`), `param.<name>` per hyper-parameter, `generation.<name>` per sampling setting, `evaluation.<knob>`;
- metrics: `<prompt set>.<metric>` (the mean over repeats), `.ci95` (95 % CI half-width), `.delta` and
  `.delta_ci95` (distance to the reference model, when there is one), `.reference` (D_r's value);
  `classifier.auc`; `seconds.<stage>` (wall time of each stage's run);
  `peak_memory_mib.<stage>` (its memory high-water mark, where the runner measured it);
- tags: `hmu.run_id`, `hmu.record_id`, `hmu.status`, `hmu.failed_stage`, `hmu.state`, `hmu.interface_version`,
  `hmu.image_digest` (the method's image), `hmu.evaluator_image`, `hmu.task_version`, `hmu.runner`, and a
  note (the failure or the missing reference) shown on the run's page;
- artifacts: the whole run folder (run_spec.json, status.json, provenance.json, metrics.json, the stages'
  requests and results, logs/, samples/) plus a GIF of each sample motion (`samples/<prompt set>.gif`).
The MLflow run ends FINISHED for an ok run, FAILED for a failed one.

Idempotent: each run folder carries a `record_id` (status.json); a folder whose record id is already in the
experiment is not logged again. A run whose logging was cut off (left RUNNING) is deleted and logged anew.
Only the harness process writes to MLflow (several writers on one SQLite file is a known lock risk): stages
write run folders, this module ingests them. MLflow is the `bench` extra; images never import this module.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import HMUError
from benchmark.harness.store import ResultsStore, StoredRun, read_run

logger = logging.getLogger(__name__)

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
"""MLflow's own variable: when set, it wins over the default SQLite file."""

EXPERIMENT_PREFIX = "hmu-bench/"
"""Experiments are named `hmu-bench/<task>`: one per task, where methods are compared."""

ARTIFACTS_DIR = "mlartifacts"
"""Beside a SQLite tracking file: where its experiments keep their artifacts."""

_PARAM_LIMIT = 6000
"""MLflow's longest parameter value."""


class TrackingError(HMUError):
    """MLflow is missing or refuses what is logged."""


def default_tracking_uri(results_dir: Path) -> str:
    """`sqlite:///<absolute results folder>/mlflow.db`."""
    return f"sqlite:///{results_dir.resolve() / 'mlflow.db'}"


def resolve_tracking_uri(results_dir: Path, uri: str | None = None) -> str:
    """`uri` if given, else $MLFLOW_TRACKING_URI, else the SQLite file in the results folder."""
    return uri or os.environ.get(ENV_TRACKING_URI) or default_tracking_uri(results_dir)


def _artifact_root(uri: str) -> Path | None:
    """For a SQLite store: `mlartifacts/` beside the database file (MLflow would otherwise put artifacts
    under the current folder). None for a server, which has its own artifact store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix) :]).parent / ARTIFACTS_DIR


@dataclass(frozen=True)
class LoggedRun:
    """A run folder and its MLflow run."""

    run_id: str
    """The benchmark's run id (the folder's name)."""
    mlflow_run_id: str
    """MLflow's id of the run."""
    experiment: str
    """The experiment's name."""
    new: bool
    """True when this call logged it; False when it was logged before."""


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _PARAM_LIMIT else text[: _PARAM_LIMIT - 3] + "..."


def run_params(run: StoredRun) -> dict[str, str]:
    """The MLflow parameters of a run folder (module docstring)."""
    spec = run.spec
    params: dict[str, Any] = {
        "method": spec.method,
        "method_version": spec.method_version,
        "sweep": spec.sweep,
        "task": spec.task,
        "task_version": spec.task_version,
        "seed": spec.seed,
        "reference": spec.reference or "none",
    }
    params.update({f"param.{name}": value for name, value in spec.parameters.items()})
    params.update({f"generation.{name}": value for name, value in spec.generation.items()})
    params.update({f"evaluation.{name}": value for name, value in spec.evaluation.to_json().items()})
    return {name: _param_value(value) for name, value in params.items()}


def run_metrics(run: StoredRun) -> dict[str, float]:
    """The MLflow metrics of a run folder (module docstring): none but stage times for a failed run."""
    metrics: dict[str, float] = {}
    for stage in run.status.stages:
        if stage.state == "ok":
            metrics[f"seconds.{stage.stage}"] = float(stage.seconds)
            if stage.peak_memory_bytes is not None:
                metrics[f"peak_memory_mib.{stage.stage}"] = stage.peak_memory_bytes / 2**20
    data = run.metrics()
    if data is None:
        return metrics
    suffixes = {
        "value": "",
        "ci95": ".ci95",
        "delta_to_reference": ".delta",
        "delta_ci95": ".delta_ci95",
        "reference_value": ".reference",
    }
    for set_name, prompt_set in data.get("prompt_sets", {}).items():
        for metric_name, entry in prompt_set.get("metrics", {}).items():
            for field, suffix in suffixes.items():
                value = entry.get(field)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[f"{set_name}.{metric_name}{suffix}"] = float(value)
    classifier = data.get("classifier")
    if isinstance(classifier, dict) and isinstance(classifier.get("auc"), int | float):
        metrics["classifier.auc"] = float(classifier["auc"])
    return metrics


def run_tags(run: StoredRun) -> dict[str, str]:
    """The MLflow tags of a run folder (module docstring)."""
    status = run.status
    failed = status.failed
    runners = sorted({stage.runner for stage in status.stages if stage.runner})
    tags = {
        "hmu.run_id": run.run_id,
        "hmu.record_id": status.record_id,
        "hmu.status": status.status,
        "hmu.failed_stage": failed.stage if failed is not None else "none",
        "hmu.state": failed.state if failed is not None else "ok",
        "hmu.interface_version": str(run.spec.interface_version),
        "hmu.image_digest": run.spec.method_image.digest,
        "hmu.image": run.spec.method_image.reference,
        "hmu.evaluator_image": run.spec.evaluator_image.digest,
        "hmu.task_version": str(run.spec.task_version),
        "hmu.runner": ",".join(runners) or "none",
    }
    lines = []
    if failed is not None:
        lines.append(f"**{failed.stage} {failed.state}**: {failed.message}")
    lines += [f"- {note}" for note in status.notes]
    if lines:
        tags["mlflow.note.content"] = "\n".join(lines)
    return tags


def _milliseconds(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) * 1000


@dataclass(frozen=True)
class Tracker:
    """Logs run folders to one MLflow tracking store (module docstring)."""

    uri: str
    """The tracking URI."""
    client: Any
    """The `mlflow.MlflowClient` (typed loosely: MLflow is an optional dependency)."""
    render_gifs: bool = True
    """Also log a GIF of each sample motion (about 0.7 s each on a CPU)."""

    @classmethod
    def open(cls, results_dir: Path, uri: str | None = None, *, render_gifs: bool = True) -> Tracker:
        """A tracker on `resolve_tracking_uri(results_dir, uri)`; a TrackingError when MLflow is missing."""
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise TrackingError(
                "MLflow is not installed: pip install -e '.[bench]' (or run the bench with --no-mlflow; the "
                "run folders can be logged later with `hmu bench --log-only`)"
            ) from None
        resolved = resolve_tracking_uri(results_dir, uri)
        if resolved.startswith("sqlite:///"):
            Path(resolved[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return cls(resolved, MlflowClient(tracking_uri=resolved), render_gifs)

    def experiment_id(self, task: str) -> str:
        """The id of `hmu-bench/<task>`, created on first use (with its artifacts beside a SQLite file)."""
        name = EXPERIMENT_PREFIX + task
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        root = _artifact_root(self.uri)
        location = (root / task).resolve().as_uri() if root is not None else None
        return str(self.client.create_experiment(name, artifact_location=location))

    def find(self, experiment_id: str, record_id: str) -> Any | None:
        """The MLflow run holding `record_id`, or None."""
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`hmu.record_id` = '{record_id}'", max_results=5
        )
        return runs[0] if runs else None

    def log(self, run: StoredRun) -> LoggedRun:
        """Log one run folder, unless its record is in MLflow already. Any failure of MLflow is a
        TrackingError (the run folder is untouched; logging it again later is safe)."""
        try:
            return self._log(run)
        except TrackingError:
            raise
        except Exception as error:
            raise TrackingError(
                f"{run.path}: logging to {self.uri} failed: {type(error).__name__}: {error}"
            ) from error

    def _log(self, run: StoredRun) -> LoggedRun:
        from mlflow.entities import Metric, Param, RunStatus, RunTag

        experiment_id = self.experiment_id(run.spec.task)
        experiment = EXPERIMENT_PREFIX + run.spec.task
        existing = self.find(experiment_id, run.status.record_id)
        if existing is not None:
            if existing.info.status != "RUNNING":
                return LoggedRun(run.run_id, existing.info.run_id, experiment, new=False)
            self.client.delete_run(existing.info.run_id)  # a logging cut off midway: start over
        end = _milliseconds(run.status.stored_at)
        start = end - int(1000 * sum(stage.seconds for stage in run.status.stages if not stage.cached))
        tags = run_tags(run)
        created = self.client.create_run(
            experiment_id,
            start_time=start,
            tags={"hmu.record_id": tags["hmu.record_id"]},
            run_name=run.run_id,
        )
        mlflow_id = created.info.run_id
        try:
            self.client.log_batch(
                mlflow_id,
                metrics=[Metric(key, value, end, 0) for key, value in sorted(run_metrics(run).items())],
                params=[Param(key, value) for key, value in sorted(run_params(run).items())],
                tags=[RunTag(key, value) for key, value in sorted(tags.items())],
            )
            self.client.log_artifacts(mlflow_id, str(run.path))
            if self.render_gifs:
                self._log_gifs(mlflow_id, run)
        except Exception as error:
            self.client.set_terminated(mlflow_id, RunStatus.to_string(RunStatus.FAILED))
            raise TrackingError(f"{run.path}: logging to {self.uri} failed: {error}") from error
        status = RunStatus.FINISHED if run.status.status == "ok" else RunStatus.FAILED
        self.client.set_terminated(mlflow_id, RunStatus.to_string(status), end_time=end)
        return LoggedRun(run.run_id, mlflow_id, experiment, new=True)

    def _log_gifs(self, mlflow_id: str, run: StoredRun) -> None:
        import numpy as np

        from benchmark.render import render_gif

        samples = run.samples()
        if not samples:
            return
        fps = float(run.provenance.get("data", {}).get("fps") or 20.0)
        with tempfile.TemporaryDirectory(prefix="hmu-gifs-") as scratch:
            for name, sample in samples.items():
                motion = np.load(run.path / "samples" / sample["file"], allow_pickle=False)
                render_gif(motion, Path(scratch) / f"{name}.gif", fps=fps, caption=sample["text"])
            self.client.log_artifacts(mlflow_id, scratch, "samples")

    def log_all(self, store: ResultsStore) -> list[LoggedRun]:
        """Log every run folder of the store not logged yet; returns one LoggedRun per folder logged. A
        folder that cannot be read (written by another schema version) is skipped with a warning."""
        logged = []
        for path in store.run_paths():
            try:
                run = read_run(path)
            except HMUError as error:
                logger.warning("not logged to MLflow: %s", error)
                continue
            logged.append(self.log(run))
        return logged


def log_results(results_dir: Path, uri: str | None = None, *, render_gifs: bool = True) -> list[LoggedRun]:
    """Log every run folder under `results_dir` to MLflow (idempotent)."""
    return Tracker.open(results_dir, uri, render_gifs=render_gifs).log_all(ResultsStore(results_dir))
