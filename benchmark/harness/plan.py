"""The bench planner: methods x tasks x seeds x sweep points, expanded into runs and each run into its three
stages, every stage keyed before anything runs.

    >>> plan = plan_bench(
    ...     methods=[MethodInput(spec, image)],               # spec: a MethodSpec; image: an ImageRef
    ...     tasks=[TaskInputs(task, task_hash=..., data_hash=..., split_hash=..., base_model_hash=...,
    ...                       plan_hash=..., prompts_hash=..., evaluator_hash=...)],
    ...     settings=PlanSettings(seeds=(0, 1), evaluator_image=evaluator, reference=retrain_or_none,
    ...                           reference_name="retrain"))
    >>> [run.spec.run_id for run in plan.runs]
    ['original--embedded_violence--s0--3f5c9a01be', 'original--embedded_violence--s1--...']
    >>> [(stage.key.stage, stage.needs) for stage in plan.stages()][:3]

One run = (method, sweep point, task, seed); its stages are `unlearn` (the base model -> an unlearned model),
`generate` (that model -> motions for the task's evaluation prompts) and `evaluate` (the motions -> metrics).
A stage's key (`StageKey`) holds the digest of what runs it, its inputs' hashes and its parameters; a later
stage names the key of the stage that feeds it, so a change anywhere upstream changes every key downstream,
and nothing else does (a new generation setting re-runs generate and evaluate, never unlearn).

The reference model D_r. Metrics with direction `reference` (the forget-set FID, diversity, R-precision) are
scored by their distance to the model retrained without the concept. It comes from a method named by the
bench (`PlanSettings.reference_name`, by default `retrain`): for every task and seed its default run is
planned first (it is a run like any other, stored and logged), and every other run's evaluate stage waits for
it and takes its metrics as the reference. When that method does not exist, nothing stands in for it: the
runs are evaluated without a reference, their `delta_to_reference` stays empty, and `BenchPlan.notes` says
so (the bench prints it and stores it with each run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmark.api.method_yaml import MethodSpec, SweepRun
from benchmark.harness.spec import EvaluationSpec, ImageRef, RunSpec, SpecError, StageKey, StageKind
from benchmark.tasks import TaskSpec


@dataclass(frozen=True)
class MethodInput:
    """A method as the planner sees it: its declaration and what runs it."""

    spec: MethodSpec
    """The method's `method.yaml` (name, version, defaults, sweep)."""
    image: ImageRef
    """The image (or local code) that runs its `unlearn` and `generate`."""

    def reference_point(self) -> SweepRun:
        """The sweep point a reference run uses: the one with the method's default parameters, else the
        first (a reference is one model, not a grid)."""
        runs = self.spec.runs()
        defaults = self.spec.resolve_parameters({})
        return next((run for run in runs if run.parameters == defaults), runs[0])


@dataclass(frozen=True)
class TaskInputs:
    """A task with the identities of everything prepared for it."""

    task: TaskSpec
    """The task."""
    task_hash: str
    """`task_sha256` of the task."""
    data_hash: str
    """`dataset_sha256` of its dataset."""
    split_hash: str
    """sha256 of its forget/retain id lists on that dataset."""
    base_model_hash: str
    """`model_hash` of the base model."""
    plan_hash: str
    """The evaluation plan's fingerprint."""
    prompts_hash: str
    """sha256 of the plan's `prompts.json` (the generate stage's input)."""
    evaluator_hash: str
    """The evaluator's identity hash."""


@dataclass(frozen=True)
class PlanSettings:
    """What every run of a bench shares."""

    seeds: tuple[int, ...]
    """Seeds of the runs (one run per seed)."""
    evaluator_image: ImageRef
    """What runs `evaluate`."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """Sampling settings of `generate` (empty: MoMask's defaults)."""
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    """The evaluation protocol's knobs."""
    reference: MethodInput | None = None
    """The reference method (D_r), or None when it does not exist."""
    reference_name: str | None = "retrain"
    """The reference method asked for (None: no reference wanted); named in the note when it is missing."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise SpecError("a bench needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError(f"seeds repeat: {self.seeds}")


@dataclass(frozen=True)
class PlannedStage:
    """One stage to run (or find in the cache), shared by every run that needs the same key."""

    key: StageKey
    """What its output is stored under."""
    method: str | None
    """The method whose image runs it (None: the evaluator)."""
    run_id: str
    """The first run that needs it (for progress lines)."""
    needs: tuple[str, ...]
    """Keys of the stages whose outputs it reads: they must have succeeded first."""


@dataclass(frozen=True)
class PlannedRun:
    """One run: its spec and its three stage keys."""

    spec: RunSpec
    """Everything the run depends on."""
    role: Literal["method", "reference"]
    """`reference`: the D_r run of its task and seed (other runs are measured against it)."""
    unlearn: StageKey
    """The unlearn stage's key."""
    generate: StageKey
    """The generate stage's key."""
    evaluate: StageKey
    """The evaluate stage's key."""
    reference_evaluate: str | None = None
    """The key of the reference run's evaluate stage (its metrics are this run's reference), or None."""

    def keys(self) -> dict[StageKind, StageKey]:
        return {"unlearn": self.unlearn, "generate": self.generate, "evaluate": self.evaluate}


@dataclass(frozen=True)
class BenchPlan:
    """Every run of a bench, reference runs first, with notes on what the plan could not provide."""

    runs: tuple[PlannedRun, ...]
    """The runs, each once (a reference run asked for as a method run is planned once, as a reference)."""
    notes: tuple[str, ...] = ()
    """What is missing, in words (no reference model for a task)."""

    def stages(self) -> tuple[PlannedStage, ...]:
        """Every distinct stage, each after the stages it needs (runs in order, stages in run order)."""
        seen: dict[str, PlannedStage] = {}
        for run in self.runs:
            method = run.spec.method
            needs: dict[StageKind, tuple[str, ...]] = {
                "unlearn": (),
                "generate": (run.unlearn.key,),
                "evaluate": (run.generate.key,)
                + ((run.reference_evaluate,) if run.reference_evaluate is not None else ()),
            }
            for kind, key in run.keys().items():
                if key.key not in seen:
                    owner = None if kind == "evaluate" else method
                    seen[key.key] = PlannedStage(key, owner, run.spec.run_id, needs[kind])
        return tuple(seen.values())

    def run(self, run_id: str) -> PlannedRun:
        for run in self.runs:
            if run.spec.run_id == run_id:
                return run
        raise KeyError(run_id)


def _stage_keys(
    method: MethodInput,
    point: SweepRun,
    inputs: TaskInputs,
    seed: int,
    settings: PlanSettings,
    reference_evaluate: str | None,
) -> tuple[StageKey, StageKey, StageKey]:
    """The keys of one run's unlearn, generate and evaluate stages."""
    name = f"{method.spec.name}/{method.spec.version}"
    unlearn = StageKey(
        "unlearn",
        image=method.image.digest,
        inputs={
            "method": name,
            "model": inputs.base_model_hash,
            "data": inputs.data_hash,
            "split": inputs.split_hash,
            "task": inputs.task_hash,
        },
        parameters=point.parameters,
        seed=seed,
    )
    generate = StageKey(
        "generate",
        image=method.image.digest,
        inputs={"method": name, "model": unlearn.key, "prompts": inputs.prompts_hash},
        parameters=settings.generation,
        seed=seed,
    )
    evaluate_inputs = {
        "motions": generate.key,
        "plan": inputs.plan_hash,
        "data": inputs.data_hash,
        "evaluator": inputs.evaluator_hash,
    }
    if reference_evaluate is not None:
        evaluate_inputs["reference"] = reference_evaluate
    evaluate = StageKey(
        "evaluate",
        image=settings.evaluator_image.digest,
        inputs=evaluate_inputs,
        parameters={"repeats": settings.evaluation.repeats},
        seed=settings.evaluation.seed,
    )
    return unlearn, generate, evaluate


def _planned_run(
    method: MethodInput,
    point: SweepRun,
    inputs: TaskInputs,
    seed: int,
    settings: PlanSettings,
    role: Literal["method", "reference"],
    reference: PlannedRun | None,
) -> PlannedRun:
    reference_evaluate = reference.evaluate.key if reference is not None else None
    unlearn, generate, evaluate = _stage_keys(method, point, inputs, seed, settings, reference_evaluate)
    spec = RunSpec(
        method=method.spec.name,
        method_version=method.spec.version,
        sweep=point.name,
        parameters=dict(point.parameters),
        task=inputs.task.name,
        task_version=inputs.task.version,
        task_hash=inputs.task_hash,
        seed=seed,
        base_model_hash=inputs.base_model_hash,
        data_hash=inputs.data_hash,
        split_hash=inputs.split_hash,
        plan_hash=inputs.plan_hash,
        prompts_hash=inputs.prompts_hash,
        method_image=method.image,
        evaluator_image=settings.evaluator_image,
        evaluator_hash=inputs.evaluator_hash,
        generation=dict(settings.generation),
        evaluation=settings.evaluation,
        reference=reference.spec.run_id if reference is not None else None,
    )
    return PlannedRun(spec, role, unlearn, generate, evaluate, reference_evaluate)


def plan_bench(
    methods: Sequence[MethodInput], tasks: Sequence[TaskInputs], settings: PlanSettings
) -> BenchPlan:
    """Expand methods x tasks x seeds x sweep points into runs (module docstring), reference runs first."""
    if not methods:
        raise SpecError("a bench needs at least one method")
    if not tasks:
        raise SpecError("a bench needs at least one task")
    names = [method.spec.name for method in methods]
    if len(set(names)) != len(names):
        raise SpecError(f"methods repeat: {names}")
    notes: list[str] = []
    if settings.reference is None and settings.reference_name is not None:
        notes.append(
            f"no reference model: the reference method {settings.reference_name!r} does not exist, so the "
            "metrics with direction 'reference' (closer to D_r is better) have no delta_to_reference and "
            "cannot be ranked"
        )
    runs: dict[str, PlannedRun] = {}
    references: dict[tuple[str, int], PlannedRun] = {}
    if settings.reference is not None:
        point = settings.reference.reference_point()
        for inputs in tasks:
            for seed in settings.seeds:
                run = _planned_run(settings.reference, point, inputs, seed, settings, "reference", None)
                references[(inputs.task.name, seed)] = run
                runs[run.spec.run_id] = run
    for method in methods:
        for inputs in tasks:
            for seed in settings.seeds:
                reference = references.get((inputs.task.name, seed))
                for point in method.spec.runs():
                    if reference is not None and method.spec.name == reference.spec.method:
                        if point.name == reference.spec.sweep:
                            continue  # the reference run itself, planned above
                    run = _planned_run(method, point, inputs, seed, settings, "method", reference)
                    runs.setdefault(run.spec.run_id, run)
    return BenchPlan(tuple(runs.values()), tuple(notes))
