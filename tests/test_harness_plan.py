"""The planner: methods x tasks x seeds x sweep points into runs and stages, the reference runs, and stage
keys that change with every input they depend on and with nothing else."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from benchmark.api.method_yaml import MethodSpec
from benchmark.errors import ConfigError
from benchmark.harness.plan import MethodInput, PlanSettings, TaskInputs, plan_bench
from benchmark.harness.spec import (
    EvaluationSpec,
    ImageRef,
    RunSpec,
    SpecError,
    StageKey,
    dataset_sha256,
    task_sha256,
)
from benchmark.tasks import load_task

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"


def _method(name: str, sweep: dict | None = None, defaults: dict | None = None) -> MethodInput:
    spec = MethodSpec.from_json(
        {
            "name": name,
            "version": 1,
            "description": f"{name} for the planner tests",
            "class": "method:Thing",
            "resources": {"gpu": "none"},
            "defaults": defaults or {},
            "sweep": sweep or {},
        },
        f"{name}/method.yaml",
    )
    return MethodInput(spec, ImageRef(f"hmu/method/{name}:tag", f"sha256:{name}-image"))


def _inputs(task_name: str, **changes: str) -> TaskInputs:
    task = load_task(TASKS_DIR / f"{task_name}.yaml")
    values = {
        "task_hash": task_sha256(task),
        "data_hash": "data-1",
        "split_hash": "split-1",
        "base_model_hash": "model-1",
        "plan_hash": "plan-1",
        "prompts_hash": "prompts-1",
        "evaluator_hash": "evaluator-1",
    }
    return TaskInputs(task, **{**values, **changes})


EVALUATOR = ImageRef("hmu/evaluator:tag", "sha256:evaluator-image")
METHODS = [_method("alpha"), _method("beta", sweep={"k": [1, 2, 3]}, defaults={"k": 2, "scale": 1.0})]
TASKS = [_inputs("embedded_violence"), _inputs("embedded_kick")]


def _settings(**changes) -> PlanSettings:
    return PlanSettings(**{"seeds": (0, 1), "evaluator_image": EVALUATOR, **changes})


def test_expansion_methods_tasks_seeds_sweep_points() -> None:
    plan = plan_bench(METHODS, TASKS, _settings())
    # alpha: 1 point, beta: 3 points; 2 tasks; 2 seeds.
    assert len(plan.runs) == (1 + 3) * 2 * 2
    ids = [run.spec.run_id for run in plan.runs]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9_.-]+--embedded_[a-z_]+--s[01]--[0-9a-f]{10}", i) for i in ids)
    sweeps = sorted({run.spec.sweep for run in plan.runs})
    assert sweeps == ["alpha", "beta-k1", "beta-k2", "beta-k3"]
    beta = next(run for run in plan.runs if run.spec.sweep == "beta-k3")
    assert beta.spec.parameters == {"k": 3, "scale": 1.0}
    # Three distinct stages per run; each stage after what it reads.
    stages = plan.stages()
    assert len(stages) == 3 * len(plan.runs)
    position = {stage.key.key: index for index, stage in enumerate(stages)}
    for stage in stages:
        assert all(position[need] < position[stage.key.key] for need in stage.needs)
    # No reference method: said once, and no run pretends to have one.
    assert len(plan.notes) == 1 and "'retrain' does not exist" in plan.notes[0]
    assert all(run.spec.reference is None and "reference" not in run.evaluate.inputs for run in plan.runs)


def test_no_reference_wanted_means_no_note() -> None:
    plan = plan_bench(METHODS, TASKS, _settings(reference_name=None))
    assert plan.notes == ()


def test_reference_runs_come_first_and_feed_every_evaluation() -> None:
    retrain = _method("retrain", sweep={"epochs": [1, 5]}, defaults={"epochs": 5})
    plan = plan_bench([METHODS[0], retrain], TASKS, _settings(reference=retrain))
    references = [run for run in plan.runs if run.role == "reference"]
    assert len(references) == 2 * 2  # tasks x seeds, the default sweep point only
    assert all(run.spec.sweep == "retrain-epochs5" for run in references)
    assert plan.runs[: len(references)] == tuple(references)
    # retrain asked for as a method too: its default run is planned once; its other point is a method run.
    assert len(plan.runs) == 4 + 4 + 4  # references, alpha, retrain-epochs1
    by_key = {(run.spec.task, run.spec.seed): run for run in references}
    for run in plan.runs:
        if run.role == "reference":
            assert run.spec.reference is None and run.reference_evaluate is None
            continue
        reference = by_key[(run.spec.task, run.spec.seed)]
        assert run.spec.reference == reference.spec.run_id
        assert run.evaluate.inputs["reference"] == reference.evaluate.key
        stage = next(s for s in plan.stages() if s.key.key == run.evaluate.key)
        assert reference.evaluate.key in stage.needs
    assert plan.notes == ()


# Which stages each input reaches: the stage that reads it and everything downstream of it.
ALL = {"unlearn", "generate", "evaluate"}
CHANGES = [
    ("method image", {"methods": [dataclasses.replace(METHODS[0], image=ImageRef("x", "sha256:new"))]}, ALL),
    ("base model", {"inputs": {"base_model_hash": "model-2"}}, ALL),
    ("data", {"inputs": {"data_hash": "data-2"}}, ALL),
    ("split", {"inputs": {"split_hash": "split-2"}}, ALL),
    ("task content", {"inputs": {"task_hash": "task-2"}}, ALL),
    ("prompts", {"inputs": {"prompts_hash": "prompts-2"}}, {"generate", "evaluate"}),
    ("plan", {"inputs": {"plan_hash": "plan-2"}}, {"evaluate"}),
    ("evaluator", {"inputs": {"evaluator_hash": "evaluator-2"}}, {"evaluate"}),
    ("evaluator image", {"settings": {"evaluator_image": ImageRef("e", "sha256:e2")}}, {"evaluate"}),
    ("generation", {"settings": {"generation": {"timesteps": 5}}}, {"generate", "evaluate"}),
    ("repeats", {"settings": {"evaluation": EvaluationSpec(repeats=5)}}, {"evaluate"}),
    ("passes", {"settings": {"evaluation": EvaluationSpec(passes=5)}}, set()),  # through the plan's hash
    ("seed", {"settings": {"seeds": (7,)}}, ALL),
]


def _one_run(methods=None, inputs=None, settings=None):
    plan = plan_bench(
        methods or [METHODS[0]],
        [_inputs("embedded_violence", **(inputs or {}))],
        _settings(**{"seeds": (0,), **(settings or {})}),
    )
    (run,) = plan.runs
    return run


@pytest.mark.parametrize(("what", "change", "reached"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_change_reaches_exactly_the_stages_that_depend_on_it(what, change, reached) -> None:
    base = _one_run()
    changed = _one_run(**change)
    moved = {kind for kind, key in base.keys().items() if key.key != changed.keys()[kind].key}
    assert moved == reached, what
    assert changed.spec.run_id != base.spec.run_id, f"{what} must change the run id"


def test_keys_are_stable_and_ignore_dict_order() -> None:
    assert _one_run().keys() == _one_run().keys()
    a = StageKey("unlearn", "sha256:i", {"model": "m", "data": "d"}, {"a": 1, "b": [1, 2]}, seed=3)
    b = StageKey("unlearn", "sha256:i", {"data": "d", "model": "m"}, {"b": [1, 2], "a": 1}, seed=3)
    assert a.key == b.key and re.fullmatch(r"[0-9a-f]{32}", a.key)
    for other in (
        dataclasses.replace(a, stage="generate"),
        dataclasses.replace(a, image="sha256:j"),
        dataclasses.replace(a, inputs={"model": "m", "data": "e"}),
        dataclasses.replace(a, parameters={"a": 2, "b": [1, 2]}),
        dataclasses.replace(a, seed=4),
    ):
        assert other.key != a.key
    with pytest.raises(SpecError):
        StageKey("train", "sha256:i")


def test_sweep_points_differ_only_where_their_parameters_reach() -> None:
    plan = plan_bench([METHODS[1]], [TASKS[0]], _settings(seeds=(0,)))
    keys = [run.unlearn.key for run in plan.runs]
    assert len(set(keys)) == 3


def test_run_spec_round_trip_and_strict_reading() -> None:
    spec = _one_run().spec
    assert RunSpec.from_json(spec.to_json()) == spec
    assert RunSpec.from_json(spec.to_json()).run_id == spec.run_id
    with pytest.raises(ConfigError, match="colour"):
        RunSpec.from_json({**spec.to_json(), "colour": "blue"})
    with pytest.raises(ConfigError, match="seed"):
        RunSpec.from_json({key: value for key, value in spec.to_json().items() if key != "seed"})
    with pytest.raises(SpecError):
        dataclasses.replace(spec, sweep="../escape")


def test_plan_refuses_empty_or_repeated_inputs() -> None:
    with pytest.raises(SpecError):
        plan_bench([], TASKS, _settings())
    with pytest.raises(SpecError):
        plan_bench([METHODS[0], METHODS[0]], TASKS, _settings())
    with pytest.raises(SpecError):
        _settings(seeds=(1, 1))


def test_dataset_hash_reads_what_the_benchmark_reads(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for folder in ("new_joint_vecs", "texts", "new_joints"):
        (root / folder).mkdir(parents=True)
    (root / "new_joint_vecs" / "a.npy").write_bytes(b"features")
    (root / "texts" / "a.txt").write_text("a person walks#a/DET person/NOUN walk/VERB#0.0#0.0\n")
    (root / "train.txt").write_text("a\n")
    first = dataset_sha256(root)
    (root / "new_joints" / "a.npy").write_bytes(b"joints are not read")
    assert dataset_sha256(root) == first
    (root / "texts" / "a.txt").write_text("a person runs\n")
    assert dataset_sha256(root) != first
