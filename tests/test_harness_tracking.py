"""MLflow logging from run folders, on a real SQLite tracking store: parameters, metrics with CIs and deltas,
tags, artifacts (GIFs included), run status, idempotence, the tracking URI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from harness_support import run_spec

from benchmark.harness.spec import ImageRef, RunSpec
from benchmark.harness.store import ResultsStore, RunRecord, RunStatus, Sample, StageFiles, StageRecord
from benchmark.harness.tracking import (
    Tracker,
    default_tracking_uri,
    log_results,
    resolve_tracking_uri,
)


def _mlflow():
    try:
        import mlflow
    except ImportError:
        message = "mlflow is not installed (pip install -e '.[bench]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return mlflow


def _spec(method: str, seed: int = 0) -> RunSpec:
    return run_spec(
        method=method,
        method_version=2,
        sweep=f"{method}-k16",
        parameters={"k": 16, "alpha": 0.5},
        seed=seed,
        method_image=ImageRef(f"hmu/method/{method}:abc", "sha256:methodimage"),
        evaluator_image=ImageRef("hmu/evaluator:def", "sha256:evaluatorimage"),
        generation={"timesteps": 2},
        reference="retrain--embedded_violence--s0--0123456789",
    )


METRICS = {
    "schema": "hmu.metrics/1",
    "prompt_sets": {
        "forget_test": {
            "metrics": {
                "fid": {
                    "value": 1.5,
                    "ci95": 0.1,
                    "direction": "reference",
                    "declared": True,
                    "reference_value": 1.2,
                    "delta_to_reference": 0.3,
                    "delta_ci95": 0.12,
                },
                "mm_safe": {"value": 2.0, "ci95": None, "direction": "lower", "declared": True},
            }
        },
        "retain_test": {"metrics": {"r_precision_top1": {"value": 0.4, "ci95": 0.02, "direction": "higher"}}},
    },
    "classifier": {"auc": 0.9},
}


def _store_runs(root: Path) -> ResultsStore:
    store = ResultsStore(root)
    logs = root.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "stderr.log").write_text("the stage's log\n")
    metrics = root.parent / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    ok = tuple(
        StageRecord(
            kind, f"{kind}key", "ok", kind == "unlearn", 2.0, "docker", "ok", peak_memory_bytes=3 * 2**29
        )
        for kind in ("unlearn", "generate", "evaluate")
    )
    motion = np.random.default_rng(0).normal(size=(12, 263)).astype(np.float32)
    store.write(
        RunRecord(
            _spec("lcr"),
            RunStatus(ok),
            {"data": {"fps": 20.0}},
            {kind: StageFiles(None, {"status": "ok"}, logs) for kind in ("unlearn", "generate", "evaluate")},
            metrics,
            (Sample("forget_test", "forget_test.00000", "a person kicks", motion),),
        )
    )
    failed = (
        StageRecord("unlearn", "u", "oom", False, 9.0, "docker", "killed at the memory limit of 2048 MiB"),
        StageRecord("generate", "g", "blocked", False, 0.0, None, "a stage it reads ended oom"),
        StageRecord("evaluate", "e", "blocked", False, 0.0, None, "a stage it reads ended oom"),
    )
    store.write(
        RunRecord(
            _spec("hog"),
            RunStatus(failed, ("no reference model",)),
            {},
            {"unlearn": StageFiles(None, None, logs)},
        )
    )
    return store


def test_run_folders_become_mlflow_runs(tmp_path: Path) -> None:
    mlflow = _mlflow()
    store = _store_runs(tmp_path / "results")
    uri = default_tracking_uri(tmp_path / "results")
    logged = log_results(tmp_path / "results", uri)
    assert [(run.run_id.split("--")[0], run.new) for run in logged] == [("hog-k16", True), ("lcr-k16", True)]

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("hmu-bench/embedded_violence")
    assert experiment is not None
    assert experiment.artifact_location.startswith((tmp_path / "results" / "mlartifacts").as_uri())
    runs = {run.data.tags["hmu.run_id"]: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {run.run_id for run in store.runs()}

    ok = runs[_spec("lcr").run_id]
    assert ok.info.status == "FINISHED" and ok.info.run_name == _spec("lcr").run_id
    params = ok.data.params
    assert params["method"] == "lcr" and params["method_version"] == "2" and params["seed"] == "0"
    assert params["param.k"] == "16" and params["param.alpha"] == "0.5"
    assert params["task"] == "embedded_violence" and params["generation.timesteps"] == "2"
    assert params["evaluation.repeats"] == "2" and params["reference"].startswith("retrain--")
    metrics = ok.data.metrics
    assert metrics["forget_test.fid"] == 1.5 and metrics["forget_test.fid.ci95"] == 0.1
    assert metrics["forget_test.fid.delta"] == 0.3 and metrics["forget_test.fid.delta_ci95"] == 0.12
    assert metrics["forget_test.fid.reference"] == 1.2
    assert metrics["forget_test.mm_safe"] == 2.0 and "forget_test.mm_safe.ci95" not in metrics
    assert metrics["retain_test.r_precision_top1"] == 0.4 and metrics["classifier.auc"] == 0.9
    assert metrics["seconds.unlearn"] == 2.0 and metrics["peak_memory_mib.unlearn"] == 1536.0
    tags = ok.data.tags
    assert tags["hmu.status"] == "ok" and tags["hmu.interface_version"] == "1"
    assert tags["hmu.image_digest"] == "sha256:methodimage" and tags["hmu.task_version"] == "1"
    assert tags["hmu.evaluator_image"] == "sha256:evaluatorimage" and tags["hmu.runner"] == "docker"
    artifacts = {item.path for item in client.list_artifacts(ok.info.run_id)}
    assert {"metrics.json", "run_spec.json", "provenance.json", "status.json", "logs", "samples"} <= artifacts
    samples = {item.path for item in client.list_artifacts(ok.info.run_id, "samples")}
    assert {"samples/forget_test.npy", "samples/forget_test.gif", "samples/samples.json"} <= samples
    logs = {item.path for item in client.list_artifacts(ok.info.run_id, "logs/unlearn")}
    assert "logs/unlearn/stderr.log" in logs
    local = client.download_artifacts(ok.info.run_id, "metrics.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == METRICS

    failed = runs[_spec("hog").run_id]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["hmu.status"] == "failed" and failed.data.tags["hmu.failed_stage"] == "unlearn"
    assert failed.data.tags["hmu.state"] == "oom"
    assert "memory limit" in failed.data.tags["mlflow.note.content"]
    assert "no reference model" in failed.data.tags["mlflow.note.content"]
    assert not any(key.startswith("forget_test") for key in failed.data.metrics)


def test_logging_is_idempotent_and_resumes_a_cut_off_run(tmp_path: Path) -> None:
    mlflow = _mlflow()
    store = _store_runs(tmp_path / "results")
    tracker = Tracker.open(tmp_path / "results", render_gifs=False)
    first = tracker.log_all(store)
    second = tracker.log_all(store)
    assert all(run.new for run in first) and not any(run.new for run in second)
    assert [run.mlflow_run_id for run in first] == [run.mlflow_run_id for run in second]
    client = mlflow.MlflowClient(tracker.uri)
    experiment_id = tracker.experiment_id("embedded_violence")
    assert len(client.search_runs([experiment_id])) == 2

    # A logging cut off midway leaves a RUNNING run with the record's tag: it is replaced, not duplicated.
    lcr = store.read(_spec("lcr").run_id)
    client.delete_run(tracker.find(experiment_id, lcr.status.record_id).info.run_id)
    client.create_run(experiment_id, tags={"hmu.record_id": lcr.status.record_id})
    again = tracker.log(lcr)
    assert again.new
    live = client.search_runs(
        [experiment_id], filter_string=f"tags.`hmu.record_id` = '{lcr.status.record_id}'"
    )
    assert len(live) == 1 and live[0].info.status == "FINISHED"


def test_the_tracking_uri(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert resolve_tracking_uri(tmp_path, "sqlite:////x/y.db") == "sqlite:////x/y.db"
    other = tmp_path / "elsewhere" / "track.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    assert resolve_tracking_uri(tmp_path) == f"sqlite:///{other}"
    _mlflow()
    _store_runs(tmp_path / "results")
    logged = log_results(tmp_path / "results", render_gifs=False)
    assert len(logged) == 2 and other.is_file() and not (tmp_path / "results" / "mlflow.db").exists()
