"""The bench: every method on every task, each run's stages through a runner, every run stored and logged.

    >>> summary = run_bench(BenchConfig(methods=("original",)))      # hmu bench --method original
    >>> print(format_summary(summary))
    >>> summary.executed, summary.cached                              # stages run vs found in the cache

What `run_bench` does, in order:
1. Locks the results folder (one bench per folder: one writer of its cache, store and SQLite file) and removes
   what an interrupted bench left half-written.
2. Prepares the shared inputs once per dataset (step 3 meanwhile, and the base model beside the evaluator,
   up to `workers` at a time), each cached under the hash of what makes it
   (`<cache>/prepare-*/<key>/`): the embedded dataset (`hmu data synth`), a read-only view of its training
   motions for the methods (no test motions, no ground-truth labels), the base model (`hmu train all` on the
   train split), the evaluator (`hmu train-evaluator`); then per task the concept split and the evaluation
   plan. A dataset, base model or evaluator of the user's (`data_dirs`, `base_models`, `evaluators`) is used
   as it is, hashed. The training commands run as subprocesses; an interrupted training resumes.
3. Resolves what runs the stages: with Docker the content-tagged images (`build_images` reuses every image
   whose content did not change), locally the checkout's code, identified by a hash of its sources.
4. Plans the runs (`plan_bench`): methods x tasks x seeds x sweep points, plus the reference runs (D_r).
5. Skips runs whose folder exists (a failed one too, unless `retry_failed`; everything with `fresh`, whose
   old folders are moved to `runs/.superseded/`), and runs the stages the others need: a stage whose key is in
   the cache is not run again; the others run through the runner, up to `workers` at a time, each as soon as
   the stages it reads have succeeded. A stage whose input failed is `blocked`. A progress line is printed
   when a stage starts and when it ends.
6. Stores each run as soon as its last stage ends (`ResultsStore`), ok or failed, and logs it to MLflow
   (`Tracker`), then logs any run folder not logged yet, and returns a `BenchSummary`.

Nothing a stage does can stop the bench: every failure is a state in its run's folder. What stops it is what
no run can do without: a dataset, base model, evaluator or plan that cannot be made (a `BenchError` naming the
command and its log), an unknown method or task, or MLflow missing when tracking is asked for.

Ctrl-C: queued stages are cancelled; running stages are waited for (they are separate processes or
containers, their outputs then land in the cache), so the next bench continues where this one stopped.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

import benchmark
from benchmark.api.contract import (
    INTERFACE_VERSION,
    ConceptRef,
    DataSubset,
    GenerateRequest,
    Resources,
    TaskRef,
    UnlearnRequest,
    write_json,
)
from benchmark.api.method_yaml import MethodSpec
from benchmark.api.registry import MethodEntry, Registry, discover_methods, methods_dirs
from benchmark.errors import HMUError
from benchmark.harness.cache import CacheEntry, MaterialKey, StageCache
from benchmark.harness.images import DEFAULT_TORCH_SPEC
from benchmark.harness.plan import (
    BenchPlan,
    MethodInput,
    PlannedRun,
    PlannedStage,
    PlanSettings,
    TaskInputs,
    plan_bench,
)
from benchmark.harness.runners import ResourceLimits, Runner, StageInvocation, docker_has_gpu, select_runner
from benchmark.harness.slurm import SlurmRunner, SlurmSettings
from benchmark.harness.spec import (
    STAGE_KINDS,
    EvaluationSpec,
    ImageRef,
    StageKind,
    dataset_sha256,
    file_sha256,
    sha256_json,
    source_sha256,
    task_sha256,
)
from benchmark.harness.store import (
    ResultsStore,
    RunRecord,
    RunStatus,
    Sample,
    StageFiles,
    StageRecord,
    StageState,
    StoredRun,
    git_commit,
    hardware,
)
from benchmark.tasks import TaskSpec

logger = logging.getLogger(__name__)

EMBEDDED_DATASET = "embedded"
"""The dataset the bench makes itself (`hmu data synth`); any other needs `data_dirs`."""

DEFAULT_EMBEDDED_MOTIONS = 2000
"""Motions of the embedded dataset: the default the small model's recipe and the evaluator were tuned on
(4,000 ids with the mirrors; its test split has about 50 keyword-forget motions, over one R-precision
batch of 32)."""

_PACKAGE_DIR = Path(benchmark.__file__).resolve().parent
_CHECKOUT = _PACKAGE_DIR.parent

Echo = Callable[[str], None]
"""Where progress lines go (stderr by default)."""


class BenchError(HMUError):
    """The bench cannot go on: a shared input cannot be made, a name is unknown, the results folder is
    busy."""


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BenchConfig:
    """Everything a bench is asked to do. Parsing it has no side effects; `run_bench` does the work."""

    methods: tuple[str, ...] = ("all",)
    """Method names, or `all` (every discovered method but the reference, which runs anyway when present)."""
    tasks: tuple[str, ...] = ("embedded_violence",)
    """Task names (looked up in `tasks_dir`) or task files."""
    seeds: tuple[int, ...] = (0,)
    """One run per seed."""
    results_dir: Path = Path("results")
    """Run folders (`runs/`), the cache (`cache/`, unless `cache_dir`), the MLflow SQLite file."""
    cache_dir: Path | None = None
    """The stage cache; None: `<results_dir>/cache`. Benches may share one (one at a time)."""
    runner: Literal["auto", "local", "docker", "slurm"] = "auto"
    """`auto`: Docker when an engine answers, else local processes (warned: no sandbox); `slurm`: a Slurm job
    per stage (`slurm`)."""
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    """The Slurm runner's partition, account, runtime, GPUs and resource overrides; its jobs folder is
    `<cache>/slurm/` unless set (it must be on storage the nodes share, as the cache and results are)."""
    base_image: str | None = None
    """Docker: the image the method base stands on (`python:3.11-slim`, a CUDA/PyTorch image); None: the
    offline debootstrap one (`hmu images build --base-image`)."""
    torch_spec: str = DEFAULT_TORCH_SPEC
    """Docker: the torch requirement of the images' wheelhouse (the Makefile's TORCH_SPEC)."""
    workers: int = 1
    """Stages run at the same time (each with the CPU threads its method declares, `resources.cpus`)."""
    embedded_motions: int = DEFAULT_EMBEDDED_MOTIONS
    """Size of the embedded dataset (original motions; twice as many ids with the mirrors)."""
    embedded_seed: int = 0
    """Seed of the embedded dataset."""
    data_dirs: Mapping[str, Path] = field(default_factory=dict)
    """Dataset name -> a HumanML3D-layout folder of the user's (HumanML3D, Motion-X, or an embedded one)."""
    base_models: Mapping[str, Path] = field(default_factory=dict)
    """Dataset name -> a model folder to unlearn from, instead of training the small model."""
    evaluators: Mapping[str, Path] = field(default_factory=dict)
    """Dataset name -> an evaluator folder (or Guo et al. root), instead of training one."""
    model_config: Literal["small", "published"] = "small"
    """Size and recipe of the base model the bench trains."""
    model_steps: int | None = None
    """Optimiser steps of each part of the base model (None: the recipe's; a few for tests)."""
    evaluator_epochs: int | None = None
    """Epochs of the evaluator's training (None: its default)."""
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    """Repeats, generation passes, prompts per prompt set, seeds of the evaluation."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """Sampling settings of `generate` (`GenerationSettings` fields; empty: MoMask's defaults)."""
    reference_method: str | None = "retrain"
    """The method whose default run is D_r, the reference of the forget-set metrics; None: no reference."""
    fresh: bool = False
    """Ignore the stage cache and stored runs: run every stage again (cache entries are replaced, stored
    runs moved to `runs/.superseded/`). Prepared inputs (data, base model, evaluator) are kept."""
    retry_failed: bool = False
    """Run again the runs stored as failed (their folders moved to `runs/.superseded/`)."""
    track: bool = True
    """Log runs to MLflow (needs the `bench` extra)."""
    tracking_uri: str | None = None
    """MLflow tracking URI; None: $MLFLOW_TRACKING_URI, else `sqlite:///<results>/mlflow.db`."""
    render_gifs: bool = True
    """Log a GIF of each sample motion to MLflow."""
    threads: int = 1
    """CPU threads of the bench's own training (base model, evaluator). One is the fastest on a machine
    other jobs share (BENCHMARKS.md: the evaluator trained in 127 s with 1 thread, 605 s with 2, on a loaded
    2-core machine); more pays off only on idle cores."""
    device: str | None = None
    """Where the bench trains and the evaluator runs: `cpu`, `cuda`; None: CUDA when there is a GPU."""
    evaluator_cpus: int = 1
    """CPU threads of an evaluate stage (one, for the reason `threads` gives)."""
    evaluator_memory_gb: float = 4.0
    """Memory limit of an evaluate stage."""
    evaluator_time_limit_s: float = 3600.0
    """Wall-clock limit of an evaluate stage."""
    tasks_dir: Path = _CHECKOUT / "tasks"
    """Where task names are looked up."""
    methods_dirs: tuple[Path, ...] = ()
    """Methods folders; empty: $HMU_METHODS_DIR, else the checkout's `methods/`."""
    external_images: Mapping[str, str] = field(default_factory=dict)
    """Method name -> an image that is that method, run instead of a method folder (`hmu bench --image
    NAME=REF`, `hmu submit`): its `describe` gives its parameters, sweep and resources. Needs Docker."""

    @classmethod
    def tiny(cls, results_dir: Path, cache_dir: Path, **changes: Any) -> BenchConfig:
        """The tiny world of the tests and the harness benchmarks: a 200-motion embedded dataset, a base model
        trained for two steps, an evaluator trained for one epoch, 2 repeats of 4 prompts per set, 2 sampling
        steps; about a minute to prepare on two cores. The numbers mean nothing; the machinery is real."""
        config = cls(
            results_dir=results_dir,
            cache_dir=cache_dir,
            workers=2,
            embedded_motions=200,
            model_steps=2,
            evaluator_epochs=1,
            evaluation=EvaluationSpec(repeats=2, passes=2, max_prompts=4),
            generation={"timesteps": 2, "batch_size": 16},
            threads=1,
            render_gifs=False,
        )
        return replace(config, **changes)

    def __post_init__(self) -> None:
        if not self.methods:
            raise BenchError("BenchConfig.methods: name at least one method (or 'all')")
        if not self.tasks:
            raise BenchError("BenchConfig.tasks: name at least one task")
        if not self.seeds or any(seed < 0 for seed in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise BenchError(f"BenchConfig.seeds: distinct non-negative seeds, got {self.seeds}")
        if self.workers < 1:
            raise BenchError(f"BenchConfig.workers: must be >= 1, got {self.workers}")
        if self.embedded_motions < 1:
            raise BenchError(f"BenchConfig.embedded_motions: must be >= 1, got {self.embedded_motions}")
        for name in ("model_steps", "evaluator_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchError(f"BenchConfig.{name}: must be >= 1 or None, got {value}")
        if self.threads < 1 or self.evaluator_cpus < 1:
            raise BenchError(f"BenchConfig.threads and evaluator_cpus: must be >= 1, got {self.threads}")
        if self.runner not in ("auto", "local", "docker", "slurm"):
            raise BenchError(f"BenchConfig.runner: auto, local, docker or slurm, got {self.runner!r}")
        for name in self.external_images:
            if name not in self.methods:
                raise BenchError(f"BenchConfig.external_images: {name!r} is not one of the methods to run")

    @property
    def cache_root(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.results_dir / "cache"


# ----------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class RunSummary:
    """One run of the bench, as the summary table shows it."""

    run_id: str
    """The run's id (its folder)."""
    method: str
    """The method."""
    sweep: str
    """The sweep point."""
    task: str
    """The task."""
    seed: int
    """The seed."""
    role: Literal["method", "reference"]
    """`reference`: a D_r run."""
    status: Literal["ok", "failed"]
    """How it went."""
    stages: tuple[StageRecord, ...]
    """Its stages."""
    stored: Literal["new", "earlier"]
    """`earlier`: its folder existed and it was skipped."""
    path: Path
    """Its run folder."""

    @property
    def failed(self) -> StageRecord | None:
        return next((stage for stage in self.stages if stage.state != "ok"), None)


@dataclass(frozen=True)
class BenchSummary:
    """What a bench did."""

    runs: tuple[RunSummary, ...]
    """Every run of the plan, in plan order."""
    executed: Mapping[str, int]
    """Stage kind -> stages run in this bench."""
    cached: Mapping[str, int]
    """Stage kind -> stages whose output came from the cache."""
    blocked: int
    """Stages not run because a stage they read failed."""
    timings: Mapping[str, float]
    """Seconds: `prepare.<thing>`, `images`, `stages`, `stage.<kind>` (summed over stages run), `store`,
    `tracking`, `total`."""
    notes: tuple[str, ...]
    """What the bench lacks (no reference model), in words."""
    results_dir: Path
    """The results folder."""
    tracking_uri: str | None
    """Where runs were logged; None without tracking."""
    logged: int
    """MLflow runs created by this bench."""

    @property
    def stages_executed(self) -> int:
        return sum(self.executed.values())

    @property
    def ok(self) -> bool:
        """Every run of the plan is stored ok."""
        return all(run.status == "ok" for run in self.runs)


def _metric_lines(run: StoredRun) -> list[str]:
    metrics = run.metrics()
    if metrics is None:
        return []
    lines = []
    for set_name, prompt_set in metrics.get("prompt_sets", {}).items():
        for name, entry in prompt_set.get("metrics", {}).items():
            if not entry.get("declared"):
                continue
            value = f"{entry['value']:.4g}"
            if entry.get("ci95") is not None:
                value += f" ± {entry['ci95']:.2g}"
            delta = entry.get("delta_to_reference")
            shown = f"Δref {delta:.3g}" if delta is not None else ""
            lines.append(f"  {set_name:<22} {name:<18} {entry['direction']:<9} {value:<20} {shown}")
    return lines


def format_summary(summary: BenchSummary) -> str:
    """The summary table: one row per run (stages: `ok`, `c` for cached, or the failure state), then the
    declared metrics of each ok run, the notes and the timings."""
    rows = []
    header = f"{'run':<52} {'status':<7} {'unlearn':<16} {'generate':<16} {'evaluate':<16}"
    rows.append(header)
    rows.append("-" * len(header))
    for run in summary.runs:
        cells = []
        for kind in STAGE_KINDS:
            stage = next((s for s in run.stages if s.stage == kind), None)
            if stage is None:
                cells.append("-")
            elif stage.state == "ok":
                cells.append("cached" if stage.cached else f"ok {stage.seconds:.0f}s")
            else:
                cells.append(stage.state)
        label = run.run_id + (" (stored earlier)" if run.stored == "earlier" else "")
        rows.append(f"{label:<52} {run.status:<7} {cells[0]:<16} {cells[1]:<16} {cells[2]:<16}")
    lines = ["", *rows]
    for run in summary.runs:
        failed = run.failed
        if failed is not None:
            lines.append(f"{run.run_id}: {failed.stage} {failed.state}: {failed.message}")
            lines.append(f"  logs: {run.path / 'logs' / failed.stage}")
    for run in summary.runs:
        if run.status == "ok":
            metric_lines = _metric_lines(ResultsStore(summary.results_dir).read(run.run_id))
            if metric_lines:
                lines += ["", f"{run.run_id} (declared metrics: value ± 95% CI):", *metric_lines]
    lines += ["", *(f"note: {note}" for note in summary.notes)]
    executed = ", ".join(f"{kind} {summary.executed.get(kind, 0)}" for kind in STAGE_KINDS)
    cached = ", ".join(f"{kind} {summary.cached.get(kind, 0)}" for kind in STAGE_KINDS)
    lines.append(f"stages run: {executed}; from the cache: {cached}; blocked: {summary.blocked}")
    timings = ", ".join(f"{name} {seconds:.1f}" for name, seconds in summary.timings.items())
    lines.append(f"seconds: {timings}")
    lines.append(f"results: {summary.results_dir / 'runs'}")
    if summary.tracking_uri is not None:
        lines.append(f"MLflow: {summary.tracking_uri} ({summary.logged} runs logged now)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- shared inputs


@dataclass(frozen=True)
class Prepared:
    """A shared input: where it is, what identifies it, how it came to be."""

    path: Path
    """The folder (dataset, model, evaluator, plan)."""
    digest: str
    """Its identity hash (dataset_sha256, model_hash, evaluator identity, plan fingerprint)."""
    made_by: str
    """The command (or `given`) that made it."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    """Anything else worth recording (fps, prompts hash, counts)."""


@dataclass(frozen=True)
class DatasetWorld:
    """Everything prepared for one dataset."""

    name: str
    """The dataset's name (the tasks' `dataset.name`)."""
    data: Prepared
    """The dataset folder."""
    view: Path
    """The methods' read-only view of its training motions."""
    model: Prepared
    """The base model folder."""
    evaluator: Prepared
    """The evaluator folder."""


@dataclass(frozen=True)
class TaskWorld:
    """Everything prepared for one task."""

    task: TaskSpec
    """The task."""
    dataset: DatasetWorld
    """Its dataset's world."""
    inputs: TaskInputs
    """The identities the planner keys stages on."""
    plan: Prepared
    """The evaluation plan's folder (`prompts.json`, `references.json`)."""
    forget: DataSubset
    """Training motions and texts of the concept (the unlearn request's)."""
    retain: DataSubset
    """Training motions and texts without it."""
    split_counts: Mapping[str, Mapping[str, int]]
    """Split -> forget/retain counts, for the provenance."""
    samples: tuple[tuple[str, str, str], ...]
    """(prompt set, prompt id, text): the motions kept with each run, the first prompt of each set."""


class _Context:
    """The state of one bench (not shared between benches): config, cache, echo, clock, timings."""

    def __init__(self, config: BenchConfig, echo: Echo) -> None:
        self.config = config
        self.cache = StageCache(config.cache_root)
        self.echo = echo
        self.began = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.threads = config.threads
        self.device = config.device or _default_device()

    def say(self, message: str) -> None:
        elapsed = int(time.perf_counter() - self.began)
        self.echo(f"[hmu bench {elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {message}")

    def add_time(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _hmu(*args: str) -> list[str]:
    """The command line of `hmu <args>` with this interpreter."""
    return [sys.executable, "-m", "benchmark.cli.main", *args]


def _run_command(ctx: _Context, what: str, command: list[str], logs: Path) -> None:
    """Run a preparation command with its output in `logs/`; a BenchError naming the log when it fails."""
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "command.txt").write_text(" ".join(command) + "\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with (logs / "stdout.log").open("wb") as out, (logs / "stderr.log").open("wb") as err:
        result = subprocess.run(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    if result.returncode != 0:
        tail = (logs / "stderr.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")


def _prepared(
    ctx: _Context,
    kind: str,
    key: MaterialKey,
    what: str,
    make: Callable[[Path, Path], dict[str, Any]],
) -> CacheEntry:
    """The cache entry of a prepared input, made by `make(output, logs) -> facts` on a miss."""
    began = time.perf_counter()
    entry = ctx.cache.lookup(kind, key)
    if entry is not None:
        ctx.say(f"prepare {what}: from the cache ({entry.output})")
    else:
        ctx.say(f"prepare {what}: making it (cache miss)")
        with ctx.cache.begin(kind, key) as pending:
            try:
                facts = make(pending.output, pending.logs)
            except Exception as error:
                kept = ctx.cache.keep_failed(pending, "failed")
                raise BenchError(f"prepare {what}: {error} (logs: {kept / 'logs'})") from error
            entry = pending.commit({"seconds": round(time.perf_counter() - began, 3), **facts})
        ctx.say(f"prepare {what}: done in {time.perf_counter() - began:.1f} s")
    ctx.add_time(f"prepare.{kind.removeprefix('prepare-')}", time.perf_counter() - began)
    return entry


def _prepare_data(ctx: _Context, name: str) -> Prepared:
    given = ctx.config.data_dirs.get(name)
    if given is not None:
        began = time.perf_counter()
        digest = dataset_sha256(given.resolve())
        ctx.add_time("prepare.data", time.perf_counter() - began)
        return Prepared(given.resolve(), digest, "given", {"fps": _fps(given)})
    if name != EMBEDDED_DATASET:
        raise BenchError(
            f"dataset {name!r}: the bench makes only the {EMBEDDED_DATASET!r} dataset; pass "
            f"--data {name}=DIR (a HumanML3D-layout folder)"
        )
    config = ctx.config
    args = ["data", "synth", "--motions", str(config.embedded_motions), "--seed", str(config.embedded_seed)]
    code = source_sha256(_PACKAGE_DIR / "data" / "synth", _PACKAGE_DIR / "motion")
    key = MaterialKey({"kind": "data", "command": args, "code": code})

    def make(output: Path, logs: Path) -> dict[str, Any]:
        # Processes, not threads: the generator scales with them (and its output does not depend on them).
        workers = str(min(os.cpu_count() or 1, 4))
        _run_command(ctx, "hmu data synth", _hmu(*args, "--out", str(output), "--workers", workers), logs)
        return {"digest": dataset_sha256(output)}

    entry = _prepared(ctx, "prepare-data", key, f"embedded dataset ({config.embedded_motions} motions)", make)
    return Prepared(
        entry.output, entry.record["digest"], "hmu " + " ".join(args), {"fps": _fps(entry.output)}
    )


def _fps(folder: Path) -> float:
    from benchmark.data.humanml3d import HumanML3DFolder

    return float(HumanML3DFolder(folder).metadata.fps)


VIEW_SPLITS: tuple[str, ...] = ("train", "val", "train_val")
"""The split files a method's view of the data keeps (never `test`; `all` becomes `train_val`)."""


def _prepare_view(ctx: _Context, data: Prepared) -> Path:
    """The methods' view of the training data: its motions, captions, statistics and split files, without
    the test motions and without ground-truth labels (a method learns the concept from the forget set, as
    in the real benchmark). Files are hard links where the filesystem allows (no copy), else copies."""
    from benchmark.data.layout import DatasetLayout, read_split_ids, write_split_ids

    key = MaterialKey({"kind": "view", "data": data.digest, "splits": list(VIEW_SPLITS)})

    def make(output: Path, logs: Path) -> dict[str, Any]:
        source, view = DatasetLayout(data.path), DatasetLayout(output)
        for folder in (view.features_dir, view.texts_dir):
            folder.mkdir(parents=True)
        ids: list[str] = []
        for split in VIEW_SPLITS:
            if source.split_path(split).is_file():
                split_ids = read_split_ids(source.split_path(split))
                write_split_ids(view.split_path(split), split_ids)
                ids += [i for i in split_ids if i not in ids]
        write_split_ids(view.split_path("all"), ids)
        pairs = [(source.mean_path, view.mean_path), (source.std_path, view.std_path)]
        pairs += [(source.metadata_path, view.metadata_path)] if source.metadata_path.is_file() else []
        for motion_id in ids:
            pairs.append((source.features_path(motion_id), view.features_path(motion_id)))
            pairs.append((source.text_path(motion_id), view.text_path(motion_id)))
        for origin, target in pairs:
            try:
                os.link(origin, target)
            except OSError:
                shutil.copyfile(origin, target)
        return {"motions": len(ids)}

    return _prepared(ctx, "prepare-view", key, "training view for the methods", make).output


def _prepare_model(ctx: _Context, name: str, data: Prepared) -> Prepared:
    from benchmark.backbone.model import model_hash

    given = ctx.config.base_models.get(name)
    if given is not None:
        return Prepared(given.resolve(), model_hash(given), "given")
    config = ctx.config
    args = ["train", "all", "--split", "train", "--val-split", "val", "--config", config.model_config]
    args += ["--steps", str(config.model_steps)] if config.model_steps is not None else []
    code = source_sha256(_PACKAGE_DIR / "training", _PACKAGE_DIR / "backbone", _PACKAGE_DIR / "text")
    key = MaterialKey(
        {"kind": "model", "data": data.digest, "command": args, "device": ctx.device, "code": code}
    )
    # The training's checkpoints live beside the entries, under the key, so an interrupted bench resumes the
    # training instead of starting it over; they go once the model is in the cache.
    work = ctx.cache.root / "prepare-model" / f".work-{key.key}"

    def make(output: Path, logs: Path) -> dict[str, Any]:
        command = _hmu(*args, "--data", str(data.path), "--out", str(output), "--work", str(work))
        command += ["--threads", str(ctx.threads), "--device", ctx.device, "--no-progress"]
        _run_command(ctx, "hmu train all (the base model)", command, logs)
        return {"digest": model_hash(output)}

    entry = _prepared(ctx, "prepare-model", key, f"base model ({config.model_config} recipe)", make)
    shutil.rmtree(work, ignore_errors=True)
    return Prepared(entry.output, entry.record["digest"], "hmu " + " ".join(args))


def _evaluator_identity(path: Path, device: str) -> str:
    from benchmark.evaluator import identity_hash, load_evaluator

    return identity_hash(load_evaluator(path, device=device).identity())


def _prepare_evaluator(ctx: _Context, name: str, data: Prepared) -> Prepared:
    given = ctx.config.evaluators.get(name)
    if given is not None:
        return Prepared(given.resolve(), _evaluator_identity(given, "cpu"), "given")
    args = ["train-evaluator", "--split", "train", "--val-split", "val"]
    if ctx.config.evaluator_epochs is not None:
        args += ["--epochs", str(ctx.config.evaluator_epochs)]
    code = source_sha256(_PACKAGE_DIR / "evaluator", _PACKAGE_DIR / "text")
    key = MaterialKey(
        {"kind": "evaluator", "data": data.digest, "command": args, "device": ctx.device, "code": code}
    )

    def make(output: Path, logs: Path) -> dict[str, Any]:
        command = _hmu(*args, "--data", str(data.path), "--out", str(output))
        command += ["--threads", str(ctx.threads), "--device", ctx.device]
        _run_command(ctx, "hmu train-evaluator", command, logs)
        return {"digest": _evaluator_identity(output, "cpu")}

    entry = _prepared(ctx, "prepare-evaluator", key, "evaluator", make)
    return Prepared(entry.output, entry.record["digest"], "hmu " + " ".join(args))


def _subset(folder: Any, ids: tuple[str, ...], split: str) -> DataSubset:
    """The ids with their captions (deduplicated, in order) as the unlearn request's prompts."""
    prompts: dict[str, None] = {}
    for motion_id in ids:
        for caption in folder.captions(motion_id):
            prompts.setdefault(caption.text)
    return DataSubset(motion_ids=ids, prompts=tuple(prompts), split=split)


def _prepare_task(ctx: _Context, task: TaskSpec, world: DatasetWorld) -> TaskWorld:
    from benchmark.backbone.generation import read_prompts
    from benchmark.data.humanml3d import HumanML3DFolder
    from benchmark.evaluation.prompts import PROMPTS_FILE, build_evaluation_plan, write_plan
    from benchmark.splits import compute_split

    began = time.perf_counter()
    split = compute_split(task, world.data.path)
    split_lists = {
        part.split: {"forget": list(part.forget), "retain": list(part.retain)} for part in split.parts
    }
    split_hash = sha256_json({"mode": split.mode, "parts": split_lists})
    task_hash = task_sha256(task)
    folder = HumanML3DFolder(world.data.path)
    training = next((part for part in split.parts if part.split != "test"), None)
    if training is None:
        raise BenchError(f"task {task.name}: its split rule has no training split (only {task.split.splits})")
    ctx.add_time("prepare.split", time.perf_counter() - began)

    evaluation = ctx.config.evaluation
    knobs = {"passes": evaluation.passes, "max_prompts": evaluation.max_prompts, "seed": evaluation.plan_seed}
    code = source_sha256(_PACKAGE_DIR / "evaluation")
    key = MaterialKey(
        {
            "kind": "plan",
            "task": task_hash,
            "data": world.data.digest,
            "split": split_hash,
            **knobs,
            "code": code,
        }
    )

    def make(output: Path, logs: Path) -> dict[str, Any]:
        plan = build_evaluation_plan(
            task,
            folder,
            split,
            seed=evaluation.plan_seed,
            passes=evaluation.passes,
            max_prompts=evaluation.max_prompts,
        )
        write_plan(plan, output)
        sets = {s.name: {"groups": len(s.groups), "items": len(s.items)} for s in plan.prompt_sets}
        return {
            "digest": plan.fingerprint(),
            "prompts_sha256": file_sha256(output / PROMPTS_FILE),
            "prompt_sets": sets,
        }

    entry = _prepared(ctx, "prepare-plan", key, f"evaluation plan of {task.name}", make)
    first: dict[str, tuple[str, str, str]] = {}
    for prompt in read_prompts(entry.output / PROMPTS_FILE):
        first.setdefault(prompt.id.split(".", 1)[0], (prompt.id.split(".", 1)[0], prompt.id, prompt.text))
    plan = Prepared(
        entry.output,
        entry.record["digest"],
        "benchmark.evaluation.build_evaluation_plan",
        {
            "prompts_sha256": entry.record["prompts_sha256"],
            "prompt_sets": entry.record["prompt_sets"],
            **knobs,
        },
    )
    inputs = TaskInputs(
        task=task,
        task_hash=task_hash,
        data_hash=world.data.digest,
        split_hash=split_hash,
        base_model_hash=world.model.digest,
        plan_hash=plan.digest,
        prompts_hash=entry.record["prompts_sha256"],
        evaluator_hash=world.evaluator.digest,
    )
    return TaskWorld(
        task=task,
        dataset=world,
        inputs=inputs,
        plan=plan,
        forget=_subset(folder, training.forget, training.split),
        retain=_subset(folder, training.retain, training.split),
        split_counts={
            part.split: {"forget": len(part.forget), "retain": len(part.retain)} for part in split.parts
        },
        samples=tuple(first.values()),
    )


# ----------------------------------------------------------------------------- what runs the stages


@dataclass(frozen=True)
class MethodRuntime:
    """How one method's stages run."""

    spec: MethodSpec
    """The method's declaration (its method.yaml, or its image's description)."""
    image: ImageRef
    """Its image (or local code)."""
    provenance: Mapping[str, Any]
    """The image's record (reference, image ID, content tag) or the local code's hash."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of its stages (a methods folder mounted into a carrier image)."""
    read_only: tuple[Path, ...] = ()
    """Extra read-only folders of its stages (that methods folder)."""


@dataclass(frozen=True)
class Runtimes:
    """What runs every stage of the bench."""

    runner: Runner
    """The runner."""
    methods: Mapping[str, MethodRuntime]
    """Method name -> how it runs."""
    evaluator: ImageRef
    """What runs `evaluate`."""
    evaluator_provenance: Mapping[str, Any]
    """Its record."""


def _runs_local_code(runner: Runner) -> bool:
    """True when the stages are this checkout's code run as processes (the local runner, or Slurm's runtime
    none), not images: they are keyed by the code's hash, as under the local runner, and may write the
    shared ground-truth cache."""
    return runner.name == "local" or (isinstance(runner, SlurmRunner) and not runner.runs_images)


def _resolve_runtimes(ctx: _Context, entries: list[MethodEntry], dirs: tuple[Path, ...]) -> Runtimes:
    began = time.perf_counter()
    slurm = ctx.config.slurm
    slurm = replace(slurm, jobs_dir=slurm.jobs_dir or ctx.config.cache_root / "slurm")
    runner = select_runner(ctx.config.runner, slurm=slurm)
    env_dirs = {"HMU_METHODS_DIR": os.pathsep.join(str(path.resolve()) for path in dirs)}
    if _runs_local_code(runner):
        # The local runner runs this checkout's code: its hash (with the method's folder) is the "image".
        code = source_sha256(_PACKAGE_DIR)
        methods = {}
        for entry in entries:
            digest = "local:" + sha256_json([code, source_sha256(entry.folder)])
            methods[entry.spec.name] = MethodRuntime(
                entry.spec,
                ImageRef("local", digest),
                {"reference": "local", "code_sha256": digest},
                env_dirs,
                dirs,
            )
        evaluator = ImageRef("local", "local:" + code)
        ctx.add_time("images", time.perf_counter() - began)
        return Runtimes(runner, methods, evaluator, {"reference": "local", "code_sha256": evaluator.digest})

    from benchmark.harness.images import ImageBuildSettings, build_images

    builtin = _CHECKOUT / "methods"
    inside = [entry for entry in entries if entry.folder.parent.resolve() == builtin.resolve()]
    outside = [entry for entry in entries if entry not in inside]
    # A method from another folder runs in the `original` image (the shared entrypoint and nothing of its
    # own), with its folder mounted read-only: its "image" is that image plus the folder's hash.
    names = sorted({entry.spec.name for entry in inside} | ({"original"} if outside else set()))
    ctx.say(f"images: building or reusing {', '.join(names)} and the evaluator")
    settings = ImageBuildSettings.for_checkout(
        _CHECKOUT, base_image=ctx.config.base_image, torch_spec=ctx.config.torch_spec
    )
    images = build_images(settings, names)
    methods = {}
    for entry in inside:
        image = images.method(entry.spec.name)
        methods[entry.spec.name] = MethodRuntime(
            entry.spec, ImageRef(image.reference, image.image_id), image.provenance()
        )
    for entry in outside:
        carrier = images.method("original")
        digest = f"{carrier.image_id}+{source_sha256(entry.folder)[:20]}"
        folder = entry.folder.parent.resolve()
        record = {**carrier.provenance(), "methods_dir": str(folder), "digest": digest}
        methods[entry.spec.name] = MethodRuntime(
            entry.spec,
            ImageRef(carrier.reference, digest),
            record,
            {"HMU_METHODS_DIR": str(folder)},
            (folder,),
        )
    if images.evaluator is None:
        raise BenchError("the evaluator image was not built")
    evaluator = ImageRef(images.evaluator.reference, images.evaluator.image_id)
    ctx.add_time("images", time.perf_counter() - began)
    return Runtimes(runner, methods, evaluator, images.evaluator.provenance())


def _external_runtimes(ctx: _Context, runtimes: Runtimes) -> Runtimes:
    """`runtimes` with the external images added: each described in the sandbox (its description gives
    the spec the planner expands), recorded by its image ID. A BenchError when an image cannot be used."""
    import tempfile

    from benchmark.api.contract import MethodDescription
    from benchmark.harness.docker import DockerCLI
    from benchmark.harness.runners import DockerRunner

    if _runs_local_code(runtimes.runner):
        raise BenchError(
            f"external images ({', '.join(ctx.config.external_images)}) run only in containers: "
            "use --runner docker, or --runner slurm with the docker or apptainer runtime"
        )
    docker = DockerCLI()
    methods = dict(runtimes.methods)
    for name, reference in ctx.config.external_images.items():
        image_id = docker.image_id(reference)
        if image_id is None:
            raise BenchError(f"external image {reference!r} (method {name}) is not on the engine")
        with tempfile.TemporaryDirectory(prefix="hmu-describe-") as scratch:
            outcome = DockerRunner(docker=docker).run(
                StageInvocation(verb="describe", output_dir=Path(scratch) / "out", image=image_id)
            )
        if outcome.state != "ok" or outcome.record is None:
            raise BenchError(f"external image {reference}: describe {outcome.state}: {outcome.message}")
        description = MethodDescription.from_json(outcome.record, f"{reference} describe")
        if description.name != name:
            raise BenchError(f"external image {reference} describes {description.name!r}, not {name!r}")
        try:
            spec = MethodSpec.from_description(description)
        except HMUError as error:
            raise BenchError(f"external image {reference}: its description cannot be run: {error}") from None
        inspected = docker.inspect("image", image_id) or {}
        record = {"reference": reference, "image_id": image_id, "repo_digests": inspected.get("RepoDigests")}
        methods[name] = MethodRuntime(spec, ImageRef(reference, image_id), {**record, "external": True})
        ctx.say(f"external image {reference}: method {name} v{spec.version}, {len(spec.runs())} run(s)")
    return replace(runtimes, methods=methods)


# ----------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class _Done:
    """How a stage ended in this bench."""

    state: StageState
    """ok, a failure state, or blocked."""
    cached: bool
    """Its output came from the cache."""
    seconds: float
    """Wall seconds of the run that made it."""
    message: str
    """One line."""
    runner: str | None = None
    """Which runner ran it."""
    image_id: str | None = None
    """The image that ran it (Docker)."""
    entry: CacheEntry | None = None
    """Its cache entry, when ok."""
    kept: Path | None = None
    """Where a failed stage's folder was kept."""
    result: Mapping[str, Any] | None = None
    """A failed stage's result.json, when it wrote a readable one."""
    peak_memory_bytes: int | None = None
    """Memory high-water mark of the run that made it, where the runner saw it."""

    def files(self) -> StageFiles:
        if self.entry is not None:
            result = json.loads((self.entry.output / "result.json").read_text(encoding="utf-8"))
            return StageFiles(self.entry.input / "request.json", result, self.entry.logs)
        if self.kept is not None:
            return StageFiles(self.kept / "input" / "request.json", self.result, self.kept / "logs")
        return StageFiles()


def _from_entry(entry: CacheEntry, cached: bool) -> _Done:
    record = entry.record
    return _Done(
        "ok",
        cached,
        float(record.get("seconds", 0.0)),
        str(record.get("message", "")),
        record.get("runner"),
        record.get("image_id"),
        entry,
        peak_memory_bytes=record.get("peak_memory_bytes"),
    )


def _limits(ctx: _Context, resources: Resources | None) -> ResourceLimits:
    """A stage's limits: what the method declares (`resources`), or the evaluator's (None). The thread count
    never depends on `workers`, so a stage computes the same numbers however the bench is parallelised."""
    if resources is None:
        return ResourceLimits(
            memory_bytes=int(ctx.config.evaluator_memory_gb * 2**30),
            cpus=float(ctx.config.evaluator_cpus),
            wall_seconds=ctx.config.evaluator_time_limit_s,
            gpu=ctx.device != "cpu",
        )
    return ResourceLimits.from_resources(resources)


def _output(done: Mapping[str, _Done], key: str) -> CacheEntry:
    """The cache entry of a stage another reads (the scheduler runs a stage only after those succeeded)."""
    entry = done[key].entry
    if entry is None:
        raise BenchError(f"stage {key} has no output to read ({done[key].state})")
    return entry


def _request(
    ctx: _Context,
    stage: PlannedStage,
    run: PlannedRun,
    world: TaskWorld,
    done: Mapping[str, _Done],
    runtimes: Runtimes,
) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """The request.json content of a stage and the folders it reads."""
    key = stage.key
    if key.stage == "unlearn":
        task = world.task
        request = UnlearnRequest(
            task=TaskRef(task.name, task.version),
            concept=ConceptRef(task.concept.name, task.concept.keywords, dict(task.concept.pos)),
            base_model=world.dataset.model.path,
            data_dir=world.dataset.view,
            forget=world.forget,
            retain=world.retain,
            seed=key.seed,
            parameters=dict(key.parameters),
            time_budget_s=_limits(ctx, runtimes.methods[run.spec.method].spec.resources).wall_seconds,
        )
        return request.to_json(), (world.dataset.model.path, world.dataset.view)
    if key.stage == "generate":
        unlearned = _output(done, key.inputs["model"])
        request_g = GenerateRequest(
            model=unlearned.output / "model",
            prompts=world.plan.path / "prompts.json",
            settings=dict(key.parameters),
            seed=key.seed,
        )
        return request_g.to_json(), (unlearned.output, world.plan.path)
    from benchmark.evaluation.request import REQUEST_SCHEMA

    generated = _output(done, key.inputs["motions"])
    reads = [generated.output, world.plan.path, world.dataset.data.path, world.dataset.evaluator.path]
    data: dict[str, Any] = {
        "schema": REQUEST_SCHEMA,
        "plan": str(world.plan.path / "references.json"),
        "motions": str(generated.output / "motions.npz"),
        "dataset": str(world.dataset.data.path),
        "evaluator": str(world.dataset.evaluator.path),
        "device": ctx.device if (runtimes.runner.name in ("local", "slurm") or docker_has_gpu()) else "cpu",
        "task": {"name": world.task.name, "version": world.task.version},
        "repeats": int(key.parameters["repeats"]),
        "seed": key.seed,
    }
    if "reference" in key.inputs:
        reference = _output(done, key.inputs["reference"])
        data["reference_metrics"] = str(reference.output / "metrics.json")
        reads.append(reference.output)
    if _runs_local_code(runtimes.runner):
        # Ground-truth statistics are cached across evaluations; a container may write only its output, so
        # under Docker each evaluation computes them (the metrics are the same either way).
        data["cache_dir"] = str((ctx.cache.root / "ground-truth").resolve())
    return data, tuple(reads)


def _execute(
    ctx: _Context,
    stage: PlannedStage,
    run: PlannedRun,
    world: TaskWorld,
    done: Mapping[str, _Done],
    runtimes: Runtimes,
) -> _Done:
    """Run one stage into a new cache entry (committed when ok, kept under `failed/` when not). Runs in a
    worker thread; never raises for anything the stage or its request does."""
    key = stage.key
    with ctx.cache.begin(key.stage, key) as pending:
        try:
            request, reads = _request(ctx, stage, run, world, done, runtimes)
            write_json(pending.input / "request.json", request)
            if key.stage == "evaluate":
                method_env: Mapping[str, str] = {}
                extra: tuple[Path, ...] = ()
                limits = _limits(ctx, None)
                image = runtimes.evaluator.reference
                method = None
            else:
                runtime = runtimes.methods[run.spec.method]
                method_env, extra = runtime.env, runtime.read_only
                limits = _limits(ctx, runtime.spec.resources)
                image, method = runtime.image.reference, run.spec.method
            invocation = StageInvocation(
                verb=key.stage,
                output_dir=pending.output,
                input_dir=pending.input,
                image=None if image == "local" else image,
                method=method,
                limits=limits,
                env=dict(method_env),
                read_only_paths=tuple(dict.fromkeys(path.resolve() for path in (*reads, *extra))),
                logs_dir=pending.logs,
            )
            outcome = runtimes.runner.run(invocation)
        except Exception as error:  # the harness's own fault for this stage: recorded, the bench goes on
            logger.exception("%s of %s: the harness failed", key.stage, run.spec.run_id)
            message = f"the harness could not run the stage: {type(error).__name__}: {error}"
            kept = ctx.cache.keep_failed(pending, "crashed")
            return _Done("crashed", False, 0.0, message, kept=kept)
        facts = {
            "state": outcome.state,
            "seconds": outcome.wall_seconds,
            "message": outcome.message,
            "runner": outcome.runner,
            "image_id": outcome.image_id,
            "run_id": run.spec.run_id,
            "peak_memory_bytes": outcome.peak_memory_bytes,
        }
        if outcome.state == "ok":
            return _from_entry(pending.commit(facts, replace=ctx.config.fresh), cached=False)
        kept = ctx.cache.keep_failed(pending, outcome.state)
        return _Done(
            outcome.state,
            False,
            outcome.wall_seconds,
            outcome.message,
            outcome.runner,
            outcome.image_id,
            kept=kept,
            result=outcome.record,
            peak_memory_bytes=outcome.peak_memory_bytes,
        )


# ----------------------------------------------------------------------------- storing a run


def _samples(world: TaskWorld, generate: _Done) -> tuple[Sample, ...]:
    from benchmark.backbone.generation import motion_key

    if generate.entry is None:
        return ()
    samples = []
    with np.load(generate.entry.output / "motions.npz", allow_pickle=False) as archive:
        for name, prompt_id, text in world.samples:
            key = motion_key(prompt_id, 0)
            if key in archive.files:
                samples.append(Sample(name, prompt_id, text, archive[key]))
    return tuple(samples)


def _provenance(
    run: PlannedRun,
    world: TaskWorld,
    runtimes: Runtimes,
    host: Mapping[str, Any],
    code: Mapping[str, Any],
    config: BenchConfig,
) -> dict[str, Any]:
    method = runtimes.methods[run.spec.method]
    dataset = world.dataset
    return {
        "runner": runtimes.runner.name,
        "images": {"method": dict(method.provenance), "evaluator": dict(runtimes.evaluator_provenance)},
        "code": dict(code),
        "interface_version": INTERFACE_VERSION,
        "task": {
            "name": world.task.name,
            "version": world.task.version,
            "sha256": world.inputs.task_hash,
            "file": str(world.task.path),
        },
        "data": {
            "name": dataset.name,
            "sha256": dataset.data.digest,
            "path": str(dataset.data.path),
            "made_by": dataset.data.made_by,
            "fps": dataset.data.facts.get("fps"),
            "methods_view": str(dataset.view),
        },
        "split": {"sha256": world.inputs.split_hash, "counts": dict(world.split_counts)},
        "plan": {"sha256": world.plan.digest, "path": str(world.plan.path), **dict(world.plan.facts)},
        "base_model": {
            "sha256": dataset.model.digest,
            "path": str(dataset.model.path),
            "made_by": dataset.model.made_by,
        },
        "evaluator": {
            "sha256": dataset.evaluator.digest,
            "path": str(dataset.evaluator.path),
            "made_by": dataset.evaluator.made_by,
        },
        "reference": {"run_id": run.spec.reference} if run.spec.reference is not None else None,
        "stage_keys": {kind: key.material() for kind, key in run.keys().items()},
        "bench": {"workers": config.workers, "fresh": config.fresh},
        "hardware": dict(host),
    }


def _record(
    run: PlannedRun,
    world: TaskWorld,
    done: Mapping[str, _Done],
    provenance: dict[str, Any],
    notes: tuple[str, ...],
) -> RunRecord:
    stages: list[StageRecord] = []
    files: dict[StageKind, StageFiles] = {}
    for kind, key in run.keys().items():
        outcome = done[key.key]
        stages.append(
            StageRecord(
                stage=kind,
                key=key.key,
                state=outcome.state,
                cached=outcome.cached,
                seconds=outcome.seconds,
                runner=outcome.runner,
                message=outcome.message,
                image_id=outcome.image_id,
                kept_output=str(outcome.kept) if outcome.kept is not None else None,
                peak_memory_bytes=outcome.peak_memory_bytes,
            )
        )
        if outcome.state != "blocked":
            files[kind] = outcome.files()
    evaluate = done[run.evaluate.key]
    metrics = evaluate.entry.output / "metrics.json" if evaluate.entry is not None else None
    return RunRecord(
        spec=run.spec,
        status=RunStatus(tuple(stages), notes),
        provenance=provenance,
        stages=files,
        metrics=metrics,
        samples=_samples(world, done[run.generate.key]),
    )


# ----------------------------------------------------------------------------- the bench


@contextmanager
def results_lock(results_dir: Path) -> Iterator[None]:
    """Hold `<results>/.lock` for the bench: a second bench on the same folder fails at once."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with (results_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(
                f"{results_dir}: another bench is running on this results folder (it holds {handle.name})"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _methods(
    config: BenchConfig, registry: Registry[MethodEntry]
) -> tuple[list[MethodEntry], MethodEntry | None]:
    """The method folders asked for (`all`: every one but the reference) and the reference method (or
    None). A name given an external image is not looked up: `_external_runtimes` describes its image."""
    reference = None
    if config.reference_method is not None and config.reference_method in registry:
        reference = registry.get(config.reference_method)
    images = config.external_images
    names: list[str] = []
    for name in config.methods:
        if name == "all":
            names += [n for n in registry.names() if n != config.reference_method and n not in images]
        elif name not in images:
            registry.get(name)  # an unknown name fails here, with a suggestion
            names.append(name)
    entries = [registry.get(name) for name in dict.fromkeys(names)]
    if not entries and not images:
        raise BenchError(f"no method to run (discovered: {', '.join(registry.names()) or 'none'})")
    return entries, reference


ALL_TASKS = "all"
"""A task name that stands for every task whose dataset is present: the embedded ones, and those of
`data_dirs`."""


def _tasks(config: BenchConfig) -> list[TaskSpec]:
    from benchmark.tasks import discover_tasks, find_task, load_task

    tasks = []
    for name in dict.fromkeys(config.tasks):
        if name != ALL_TASKS:
            tasks.append(load_task(find_task(name, config.tasks_dir)))
            continue
        present = {EMBEDDED_DATASET, *config.data_dirs}
        every = [load_task(path) for path in discover_tasks(config.tasks_dir).values()]
        named = {task.name for task in tasks}
        tasks.extend(task for task in every if task.dataset.name in present and task.name not in named)
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise BenchError(f"tasks repeat: {names}")
    return tasks


def _code_record() -> dict[str, Any]:
    try:
        version = importlib.metadata.version("hmu-bench")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "git": git_commit(_CHECKOUT),
        "package_version": version,
        "benchmark_sha256": source_sha256(_PACKAGE_DIR),
    }


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_bench(config: BenchConfig, *, echo: Echo = _stderr) -> BenchSummary:
    """Run the bench `config` asks for (module docstring) and return what it did."""
    # Absolute folders: requests name paths in them, and stages run elsewhere (a scratch folder as their
    # working folder, a container, a Slurm node), where a relative path means something else.
    results, cache = config.results_dir.absolute(), config.cache_root.absolute()
    config = replace(config, results_dir=results, cache_dir=cache)
    ctx = _Context(config, echo)
    with results_lock(config.results_dir):
        return _run_locked(ctx)


def _run_locked(ctx: _Context) -> BenchSummary:
    config = ctx.config
    store = ResultsStore(config.results_dir)
    cleaned = ctx.cache.clean_partial() + store.clean_partial()
    if cleaned:
        ctx.say(f"removed {cleaned} half-written folder(s) of an interrupted bench")
    tracker = None
    if config.track:
        from benchmark.harness.tracking import Tracker

        tracker = Tracker.open(config.results_dir, config.tracking_uri, render_gifs=config.render_gifs)

    dirs = methods_dirs(config.methods_dirs or None)
    registry = discover_methods(dirs)
    entries, reference_entry = _methods(config, registry)
    tasks = _tasks(config)
    ctx.say(
        f"methods: {', '.join(e.spec.name for e in entries)}; tasks: {', '.join(t.name for t in tasks)}; "
        f"seeds: {', '.join(map(str, config.seeds))}; results: {config.results_dir}"
    )

    all_entries = entries + (
        [reference_entry] if reference_entry is not None and reference_entry not in entries else []
    )
    # What does not depend on each other is made at the same time, up to `workers` at once: the images
    # beside the training, and each dataset's base model beside its evaluator (each trains on one thread).
    with ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="hmu-prepare") as pool:
        images = pool.submit(_resolve_runtimes, ctx, all_entries, dirs)
        images.add_done_callback(lambda done: _say_failure(ctx, "images", done))
        datasets: dict[str, DatasetWorld] = {}
        worlds: list[TaskWorld] = []
        for task in tasks:
            name = task.dataset.name
            if name not in datasets:
                data = _prepare_data(ctx, name)
                view = _prepare_view(ctx, data)
                if images.done():
                    images.result()  # failed already: no training is started for nothing
                model = pool.submit(_prepare_model, ctx, name, data)
                evaluator = pool.submit(_prepare_evaluator, ctx, name, data)
                datasets[name] = DatasetWorld(name, data, view, model.result(), evaluator.result())
            worlds.append(_prepare_task(ctx, task, datasets[name]))
        runtimes = images.result()
    if config.external_images:
        runtimes = _external_runtimes(ctx, runtimes)
    settings = PlanSettings(
        seeds=config.seeds,
        evaluator_image=runtimes.evaluator,
        generation=dict(config.generation),
        evaluation=config.evaluation,
        reference=(
            MethodInput(reference_entry.spec, runtimes.methods[reference_entry.spec.name].image)
            if reference_entry is not None
            else None
        ),
        reference_name=config.reference_method,
    )
    names = [entry.spec.name for entry in entries]
    names += [name for name in config.methods if name in config.external_images]
    plan = plan_bench(
        [MethodInput(runtimes.methods[name].spec, runtimes.methods[name].image) for name in names],
        [world.inputs for world in worlds],
        settings,
    )
    for note in plan.notes:
        ctx.say(f"note: {note}")
    return _execute_plan(ctx, plan, {world.task.name: world for world in worlds}, runtimes, store, tracker)


def _say_failure(ctx: _Context, what: str, done: Future) -> None:
    """Say at once that a preparation failed: the bench stops with its error only once the preparations
    already under way (a training of minutes) have ended."""
    if not done.cancelled() and done.exception() is not None:
        ctx.say(f"{what} failed: {done.exception()}; stopping once the preparations under way end")


def _execute_plan(
    ctx: _Context,
    plan: BenchPlan,
    worlds: Mapping[str, TaskWorld],
    runtimes: Runtimes,
    store: ResultsStore,
    tracker: Any,
) -> BenchSummary:
    config = ctx.config
    earlier: dict[str, StoredRun] = {}
    todo: list[PlannedRun] = []
    for run in plan.runs:
        run_id = run.spec.run_id
        if store.exists(run_id):
            stored = store.read(run_id)
            again = config.fresh or (config.retry_failed and stored.status.status == "failed")
            if not again:
                earlier[run_id] = stored
                continue
            ctx.say(f"{run_id}: stored earlier as {stored.status.status}; moved to {store.supersede(run_id)}")
        todo.append(run)
    if earlier:
        ctx.say(f"{len(earlier)} run(s) stored earlier: skipped (--retry-failed / --fresh run them again)")

    # The stages the remaining runs need, with those they read (a stored reference run's evaluate).
    stages = {stage.key.key: stage for stage in plan.stages()}
    needed: set[str] = set()
    frontier = [key.key for run in todo for key in run.keys().values()]
    while frontier:
        key = frontier.pop()
        if key not in needed:
            needed.add(key)
            frontier += list(stages[key].needs)
    order = [stage for stage in plan.stages() if stage.key.key in needed]
    owner = {
        key.key: run for run in reversed(plan.runs) for key in run.keys().values()
    }  # a run needing the stage (the first one in plan order wins)

    host = hardware()
    code = _code_record()
    done: dict[str, _Done] = {}
    stored_now: dict[str, StoredRun] = {}
    executed: dict[str, int] = {}
    cached: dict[str, int] = {}
    logged = 0
    total = len(order)
    began = time.perf_counter()

    def finished(key: str, outcome: _Done, stage: PlannedStage) -> None:
        done[key] = outcome
        if outcome.state == "blocked":
            word = "blocked"
        elif outcome.cached:
            word = "from the cache"
            cached[stage.key.stage] = cached.get(stage.key.stage, 0) + 1
        else:
            word = f"{outcome.state} in {outcome.seconds:.1f} s"
            executed[stage.key.stage] = executed.get(stage.key.stage, 0) + 1
            ctx.add_time(f"stage.{stage.key.stage}", outcome.seconds)
        detail = "" if outcome.state == "ok" else f": {outcome.message}"
        ctx.say(f"[{len(done)}/{total}] {stage.key.stage:<8} {stage.run_id}  {word}{detail}")

    def store_ready() -> None:
        nonlocal logged
        for run in todo:
            run_id = run.spec.run_id
            if run_id in stored_now or any(key.key not in done for key in run.keys().values()):
                continue
            world = worlds[run.spec.task]
            began_store = time.perf_counter()
            provenance = _provenance(run, world, runtimes, host, code, config)
            notes = plan.notes if run.spec.reference is None and run.role != "reference" else ()
            stored_now[run_id] = store.write(_record(run, world, done, provenance, notes))
            ctx.add_time("store", time.perf_counter() - began_store)
            ctx.say(f"stored {run_id}: {stored_now[run_id].status.status} -> {stored_now[run_id].path}")
            if tracker is not None:
                began_log = time.perf_counter()
                try:
                    logged += int(tracker.log(stored_now[run_id]).new)
                except HMUError as error:  # the folder is safe; the final sweep tries again
                    ctx.say(f"MLflow: {error}")
                ctx.add_time("tracking", time.perf_counter() - began_log)

    queue = list(order)
    running: dict[Future[_Done], PlannedStage] = {}
    with ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="hmu-stage") as pool:
        try:
            while queue or running:
                progressed = True
                while progressed:
                    progressed = False
                    for stage in list(queue):
                        if any(need not in done for need in stage.needs):
                            continue
                        failed = next((done[n] for n in stage.needs if done[n].state != "ok"), None)
                        if failed is not None:
                            queue.remove(stage)
                            progressed = True
                            reason = f"a stage it reads ended {failed.state}"
                            finished(stage.key.key, _Done("blocked", False, 0.0, reason), stage)
                            continue
                        entry = None if config.fresh else ctx.cache.lookup(stage.key.stage, stage.key)
                        if entry is not None:
                            queue.remove(stage)
                            progressed = True
                            finished(stage.key.key, _from_entry(entry, cached=True), stage)
                            continue
                        if len(running) >= config.workers:
                            continue  # every worker is busy: it waits, cache hits and blocked stages go on
                        queue.remove(stage)
                        progressed = True
                        run = owner[stage.key.key]
                        ctx.say(f"[{len(done)}/{total}] {stage.key.stage:<8} {stage.run_id}  started")
                        future = pool.submit(_execute, ctx, stage, run, worlds[run.spec.task], done, runtimes)
                        running[future] = stage
                    store_ready()
                if running:
                    finished_futures, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished_futures:
                        stage = running.pop(future)
                        finished(stage.key.key, future.result(), stage)
                    store_ready()
        except KeyboardInterrupt:
            ctx.say(f"interrupted: waiting for {len(running)} running stage(s); queued stages cancelled")
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    ctx.add_time("stages", time.perf_counter() - began)

    if tracker is not None:
        began_log = time.perf_counter()
        try:
            logged += sum(1 for run in tracker.log_all(store) if run.new)
        except HMUError as error:
            ctx.say(f"MLflow: {error}")
        ctx.add_time("tracking", time.perf_counter() - began_log)
    ctx.add_time("total", time.perf_counter() - ctx.began)

    summaries = []
    for run in plan.runs:
        run_id = run.spec.run_id
        stored = stored_now.get(run_id) or earlier[run_id]
        summaries.append(
            RunSummary(
                run_id=run_id,
                method=run.spec.method,
                sweep=run.spec.sweep,
                task=run.spec.task,
                seed=run.spec.seed,
                role=run.role,
                status=stored.status.status,
                stages=stored.status.stages,
                stored="new" if run_id in stored_now else "earlier",
                path=stored.path,
            )
        )
    return BenchSummary(
        runs=tuple(summaries),
        executed=executed,
        cached=cached,
        blocked=sum(1 for outcome in done.values() if outcome.state == "blocked"),
        timings={name: round(seconds, 2) for name, seconds in ctx.timings.items()},
        notes=plan.notes,
        results_dir=config.results_dir,
        tracking_uri=tracker.uri if tracker is not None else None,
        logged=logged,
    )
