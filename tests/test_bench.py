"""The bench end to end on a tiny world (a 200-motion embedded dataset, a base model trained for two steps,
an evaluator trained for one epoch, 2 repeats): the `original` method and a method that always fails, through
the local runner, then once through the Docker runner when an engine answers. Checks the run folders, the
MLflow runs, that a failure is recorded and the bench carries on, and that a second bench runs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from harness_support import bad_methods, built_images, readable, require_engine, tiny_bench

from benchmark.harness.bench import BenchConfig, BenchError, format_summary, run_bench
from benchmark.harness.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]

BROKEN = """
from benchmark.api import Method


class Broken(Method):
    def unlearn(self, model, request, workdir):
        raise RuntimeError("broken on purpose: this method always fails")
"""


@pytest.fixture(scope="module")
def methods_dir(tmp_path_factory) -> Path:
    """A methods folder (for $HMU_METHODS_DIR): a copy of `original`, `broken` (raises in unlearn) and the
    misbehaving methods of harness_support (`nan_liar`: NaN motions behind a forged ok result)."""
    root = bad_methods(tmp_path_factory.mktemp("methods"))
    shutil.copytree(REPO / "methods" / "original", root / "original")
    broken = root / "broken"
    broken.mkdir()
    (broken / "method.yaml").write_text(
        "name: broken\nversion: 1\ndescription: Fails on purpose.\nclass: method:Broken\n"
        "defaults: {}\nresources: {cpus: 1, memory_gb: 2, gpu: none, time_limit_s: 300}\n"
    )
    (broken / "method.py").write_text(BROKEN)
    (broken / "README.md").write_text("# broken\n")
    return readable(root)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, methods_dir) -> BenchConfig:
    """The tiny world's configuration (harness_support); its cache is shared by every bench here."""
    return tiny_bench(
        tmp_path_factory,
        "results-local",
        methods=("original", "broken", "nan_liar"),
        runner="local",
        methods_dirs=(methods_dir,),
    )


def _require_mlflow() -> None:
    """The bench logs to MLflow (the `bench` extra): skip loudly without it, fail when CI is set."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        message = "mlflow is not installed (pip install -e '.[bench]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def first(tiny: BenchConfig, methods_dir: Path, monkeypatch_module):
    _require_mlflow()
    monkeypatch_module.setenv("HMU_METHODS_DIR", str(methods_dir))
    lines: list[str] = []
    summary = run_bench(dataclasses.replace(tiny, methods_dirs=()), echo=lines.append)
    return summary, lines


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _run(summary, method: str):
    return next(run for run in summary.runs if run.method == method)


def test_a_bench_stores_scores_and_logs_every_run(first, tiny: BenchConfig) -> None:
    import mlflow

    summary, lines = first
    assert [run.method for run in summary.runs] == ["original", "broken", "nan_liar"]
    assert dict(summary.executed) == {"unlearn": 3, "generate": 2, "evaluate": 1}
    assert summary.blocked == 2 + 1 and not summary.ok
    assert "no reference model" in " ".join(summary.notes)
    assert any("unlearn" in line and "started" in line for line in lines)  # the progress display
    assert any("evaluate" in line and "ok in" in line for line in lines)

    original = _run(summary, "original")
    assert original.status == "ok" and original.stored == "new"
    folder = original.path
    for name in ("run_spec.json", "status.json", "provenance.json", "metrics.json", "samples/samples.json"):
        assert (folder / name).is_file(), name
    for kind in ("unlearn", "generate", "evaluate"):
        assert (folder / kind / "request.json").is_file() and (folder / kind / "result.json").is_file()
        assert (folder / "logs" / kind / "stderr.log").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["schema"] == "hmu.metrics/1" and metrics["settings"]["repeats"] == 2
    assert metrics["prompt_sets"]["retain_test"]["metrics"]["fid"]["ci95"] is not None
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["runner"] == "local" and provenance["hardware"]["cores"] >= 1
    assert provenance["code"]["git"]["commit"]
    assert provenance["data"]["sha256"] and provenance["split"]["sha256"] and provenance["task"]["sha256"]
    assert provenance["evaluator"]["sha256"] == metrics["evaluator"]["sha256"]
    assert provenance["plan"]["sha256"] == metrics["plan_sha256"]
    assert provenance["reference"] is None
    # The methods saw a view of the training data: no test split, no ground-truth labels.
    unlearn_request = json.loads((folder / "unlearn" / "request.json").read_text())
    view = Path(unlearn_request["data_dir"])
    assert not (view / "test.txt").exists() and not (view / "labels.jsonl").exists()
    assert (view / "train_val.txt").is_file() and unlearn_request["forget"]["motion_ids"]

    broken = _run(summary, "broken")
    status = json.loads((broken.path / "status.json").read_text())
    assert (status["status"], status["failed_stage"], status["state"]) == ("failed", "unlearn", "failed")
    assert "broken on purpose" in status["message"]
    assert [stage["state"] for stage in status["stages"]] == ["failed", "blocked", "blocked"]
    assert "broken on purpose" in (broken.path / "logs" / "unlearn" / "stderr.log").read_text()
    assert Path(status["stages"][0]["kept_output"]).is_dir()
    assert not (broken.path / "metrics.json").exists()
    # A later stage's failure: the method's own checks passed, the harness's did not; the bench went on.
    states = {run.method: [stage.state for stage in run.stages] for run in summary.runs}
    assert states["nan_liar"] == ["ok", "invalid_output", "blocked"]
    nan_liar = _run(summary, "nan_liar")
    assert "NaN" in json.loads((nan_liar.path / "status.json").read_text())["message"]
    assert (nan_liar.path / "logs" / "generate" / "stderr.log").is_file()

    client = mlflow.MlflowClient(summary.tracking_uri)
    experiment = client.get_experiment_by_name("hmu-bench/embedded_violence")
    runs = {run.data.tags["hmu.run_id"]: run for run in client.search_runs([experiment.experiment_id])}
    assert runs[original.run_id].info.status == "FINISHED"
    assert (
        runs[original.run_id].data.metrics["retain_test.fid"]
        == metrics["prompt_sets"]["retain_test"]["metrics"]["fid"]["value"]
    )
    assert runs[broken.run_id].info.status == "FAILED"
    assert runs[nan_liar.run_id].data.tags["hmu.failed_stage"] == "generate"
    assert summary.logged == 3
    assert "broken on purpose" in format_summary(summary)


def test_a_second_bench_runs_nothing(first, tiny: BenchConfig, monkeypatch_module) -> None:
    lines: list[str] = []
    again = run_bench(dataclasses.replace(tiny, methods_dirs=()), echo=lines.append)
    assert again.stages_executed == 0 and again.logged == 0
    assert [run.stored for run in again.runs] == ["earlier"] * 3
    # Interrupted after the stages but before the run was stored: stored again from the cache alone.
    store = ResultsStore(tiny.results_dir)
    original = _run(again, "original")
    shutil.rmtree(original.path)
    resumed = run_bench(dataclasses.replace(tiny, methods_dirs=()), echo=lines.append)
    assert resumed.stages_executed == 0
    assert dict(resumed.cached) == {"unlearn": 1, "generate": 1, "evaluate": 1}
    assert _run(resumed, "original").stored == "new" and store.exists(original.run_id)
    assert json.loads((original.path / "status.json").read_text())["stages"][0]["cached"] is True
    assert resumed.logged == 1
    # --retry-failed runs the failed ones again (what failed: nan_liar's unlearn comes from the cache); their
    # old folders are kept aside.
    retried = run_bench(dataclasses.replace(tiny, methods_dirs=(), retry_failed=True), echo=lines.append)
    assert dict(retried.executed) == {"unlearn": 1, "generate": 1}
    assert len(list((tiny.results_dir / "runs" / ".superseded").iterdir())) == 2


def test_one_bench_per_results_folder(tiny: BenchConfig) -> None:
    from benchmark.harness.bench import results_lock

    with results_lock(tiny.results_dir), pytest.raises(BenchError, match="another bench"):
        run_bench(tiny, echo=lambda line: None)


def test_unknown_names_fail_before_anything_runs(tiny: BenchConfig) -> None:
    from benchmark.api.registry import RegistryError

    with pytest.raises(RegistryError, match="did you mean 'original'"):
        run_bench(dataclasses.replace(tiny, methods=("orignal",), track=False), echo=lambda line: None)


def test_task_all_is_every_task_whose_data_is_present(tmp_path: Path) -> None:
    from benchmark.harness.bench import _tasks

    config = BenchConfig(methods=("original",), tasks=("all",), results_dir=tmp_path)
    assert sorted(task.name for task in _tasks(config)) == [
        "embedded_jump_leap_hop",
        "embedded_kick",
        "embedded_violence",
    ]
    with_data = dataclasses.replace(config, tasks=("embedded_kick", "all"), data_dirs={"humanml3d": tmp_path})
    names = [task.name for task in _tasks(with_data)]
    assert names[0] == "embedded_kick" and names.count("embedded_kick") == 1
    assert "humanml3d_violence" in names and not any(name.startswith("motionx") for name in names)


def test_the_docker_runner_end_to_end(tiny: BenchConfig, first) -> None:
    images = built_images()  # skips loudly without an engine (fails when CI is set)
    config = dataclasses.replace(
        tiny,
        methods=("original",),
        runner="docker",
        results_dir=tiny.results_dir.with_name("results-docker"),
        methods_dirs=(REPO / "methods",),  # the built-in `original`, in its own image
        reference_method=None,  # the runner is under test, not D_r (the built-in `retrain` would train)
    )
    summary = run_bench(config, echo=lambda line: None)
    (run,) = summary.runs
    assert run.status == "ok", format_summary(summary)
    assert dict(summary.executed) == {"unlearn": 1, "generate": 1, "evaluate": 1}
    assert summary.timings.get("prepare.model", 0) < 30  # the prepared inputs came from the shared cache
    spec = json.loads((run.path / "run_spec.json").read_text())
    assert spec["method_image"]["digest"] == images.method("original").image_id
    assert spec["evaluator_image"]["digest"] == images.evaluator.image_id
    assert all(stage.runner == "docker" and stage.image_id for stage in run.stages)
    command = (run.path / "logs" / "unlearn" / "command.txt").read_text()
    assert "--network=none" in command and "--read-only" in command
    local = json.loads((_run(first[0], "original").path / "metrics.json").read_text())
    docker = json.loads((run.path / "metrics.json").read_text())
    # The same model, prompts and seeds give the same motions in a container: the same metrics.
    assert docker["prompt_sets"]["retain_test"]["metrics"]["fid"]["value"] == pytest.approx(
        local["prompt_sets"]["retain_test"]["metrics"]["fid"]["value"], rel=1e-4
    )


def test_the_cli_names_what_a_task_lacks(tmp_path: Path, capsys) -> None:
    from benchmark.cli.main import main

    code = main(
        [
            "bench",
            "--method",
            "original",
            "--task",
            "humanml3d_violence",
            "--no-mlflow",
            "--results",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "--data humanml3d=DIR" in capsys.readouterr().err


def test_the_reference_run_feeds_the_deltas(tiny: BenchConfig, first, tmp_path: Path) -> None:
    """A `retrain` method (here `original` under another name) is D_r: it runs first, and the other runs'
    evaluations measure their distance to it. `original`'s unlearn and generate come from the cache."""
    methods = tmp_path / "methods"
    shutil.copytree(REPO / "methods" / "original", methods / "original")
    shutil.copytree(REPO / "methods" / "original", methods / "retrain")
    spec = methods / "retrain" / "method.yaml"
    spec.write_text(spec.read_text().replace("name: original", "name: retrain"))
    config = dataclasses.replace(
        tiny,
        methods=("original",),
        methods_dirs=(readable(methods),),
        results_dir=tiny.results_dir.with_name("results-reference"),
    )
    summary = run_bench(config, echo=lambda line: None)
    assert [(run.method, run.role, run.status) for run in summary.runs] == [
        ("retrain", "reference", "ok"),
        ("original", "method", "ok"),
    ]
    assert summary.notes == ()
    assert dict(summary.executed) == {"unlearn": 1, "generate": 1, "evaluate": 2}
    reference, original = summary.runs
    spec_json = json.loads((original.path / "run_spec.json").read_text())
    assert spec_json["reference"] == reference.run_id
    metrics = json.loads((original.path / "metrics.json").read_text())
    assert metrics["reference"] is not None
    fid = metrics["prompt_sets"]["forget_test"]["metrics"]["fid"]
    assert fid["reference_value"] is not None and fid["delta_to_reference"] is not None
    assert json.loads((reference.path / "metrics.json").read_text())["reference"] is None


def test_the_base_model_and_the_evaluator_train_side_by_side(tmp_path_factory, tmp_path: Path) -> None:
    """With two workers the two trainings of a new dataset overlap (the first bench's longest wait); the
    images are resolved beside them. Its own cache: the shared one has them made already."""
    config = tiny_bench(
        tmp_path_factory,
        "results-side-by-side",
        cache_dir=tmp_path / "cache",
        methods=("original",),
        runner="local",
        methods_dirs=(REPO / "methods",),
        reference_method=None,
        track=False,
        workers=2,
    )
    lines: list[str] = []
    summary = run_bench(config, echo=lines.append)
    assert summary.ok, format_summary(summary)

    def first(text: str) -> int:
        return next(number for number, line in enumerate(lines) if text in line)

    starts = [first("prepare base model (small recipe): making it"), first("prepare evaluator: making it")]
    ends = [first("prepare base model (small recipe): done"), first("prepare evaluator: done")]
    assert max(starts) < min(ends), "\n".join(lines)


def test_a_failed_image_build_is_said_at_once(tmp_path_factory, tmp_path: Path) -> None:
    """The images are made beside the training: their failure is said when it happens, and a training not
    yet started is not started for nothing."""
    from benchmark.harness.images import ImageBuildError

    require_engine()
    config = tiny_bench(
        tmp_path_factory,
        "results-bad-base",
        cache_dir=tmp_path / "cache",
        methods=("original",),
        runner="docker",
        base_image="hmu-test/no-such-base:0",
        methods_dirs=(REPO / "methods",),
        reference_method=None,
        track=False,
    )
    lines: list[str] = []
    with pytest.raises(ImageBuildError, match="no-such-base"):
        run_bench(config, echo=lines.append)
    said = next(number for number, line in enumerate(lines) if "images failed" in line)
    trained = [number for number, line in enumerate(lines) if "base model (small recipe): done" in line]
    assert all(said < number for number in trained), "\n".join(lines)
