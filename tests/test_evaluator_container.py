"""The evaluator runs as its own container: the `evaluate` verb in the `hmu/evaluator` image, sandboxed by
the Docker runner, writes the same metrics.json as the same request run in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness_support import built_images, readable
from test_evaluate_verb import PASSES, build_world, request_folder, staged  # noqa: F401 (fixture)

from benchmark.evaluation.request import run_evaluate_verb
from benchmark.harness.runners import DockerRunner, ResourceLimits, StageInvocation


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_world(tmp_path_factory)


def test_evaluator_container_matches_in_process(world, staged, tmp_path: Path) -> None:  # noqa: F811
    images = built_images()
    data, evaluator = world
    shared = readable(tmp_path / "shared")
    shared.mkdir(exist_ok=True)
    # The container reads the dataset and the evaluator through read-only mounts at the same paths.
    for source in (data, evaluator):
        shutil.copytree(source, shared / source.name)
    readable(shared)
    _, plan = staged
    task = {"name": plan.task, "version": plan.task_version}
    input_dir = request_folder(tmp_path, (shared / data.name, shared / evaluator.name), staged, task=task)
    request = json.loads((input_dir / "request.json").read_text())
    del request["cache_dir"]  # the container's only writable places are /hmu/output and /tmp
    (input_dir / "request.json").write_text(json.dumps(request))
    readable(tmp_path)

    in_process = tmp_path / "in-process"
    assert run_evaluate_verb(input_dir, in_process) == 0

    outcome = DockerRunner().run(
        StageInvocation(
            verb="evaluate",
            input_dir=input_dir,
            output_dir=tmp_path / "container",
            image=images.evaluator.reference,
            limits=ResourceLimits(memory_bytes=4 << 30, cpus=1.0, wall_seconds=600),
            read_only_paths=(shared,),
        )
    )
    assert outcome.state == "ok", outcome.message
    container = json.loads((tmp_path / "container" / "metrics.json").read_text())
    local = json.loads((in_process / "metrics.json").read_text())
    assert container.keys() == local.keys()
    for name, prompt_set in local["prompt_sets"].items():
        for metric, entry in prompt_set["metrics"].items():
            other = container["prompt_sets"][name]["metrics"][metric]
            # The same code on the same CPU; BLAS may still round differently in another process.
            assert other["value"] == pytest.approx(entry["value"], rel=1e-4, abs=1e-5), (name, metric)
    assert container["settings"]["repeats"] == PASSES
    assert abs(container["prompt_sets"]["retain_test"]["metrics"]["fid"]["value"]) < 1e-3
