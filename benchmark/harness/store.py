"""The results store: one immutable folder per run, written atomically, failed runs included.

    >>> store = ResultsStore(Path("results"))
    >>> stored = store.write(RunRecord(spec, status, provenance, stages, metrics=Path(".../metrics.json")))
    >>> stored.path
    PosixPath('results/runs/original--embedded_violence--s0--3f5c9a01be')
    >>> [run.spec.run_id for run in store.runs()]          # every complete run folder, sorted
    >>> store.write(same_record)                           # StoreError: the run exists (never overwritten)

A run folder:

    runs/<run_id>/
      run_spec.json        the RunSpec (hmu.run-spec/1): every input's identity
      status.json          ok or failed, and per stage: state, cache key, cached or run, seconds, message
      provenance.json      images, git commit, task/data/split/plan hashes, base model, evaluator, hardware
      metrics.json         the evaluator's metrics (hmu.metrics/1); absent when the run failed before them
      unlearn/request.json unlearn/result.json      the stage's request and its result.json
      generate/request.json generate/result.json
      evaluate/request.json evaluate/result.json
      logs/<stage>/        stdout.log, stderr.log, command.txt of each stage that ran
      samples/             a few generated motions (<prompt set>.npy, samples.json: prompt id and text)

The folder is assembled in `runs/.tmp-<run_id>-<random>/` and renamed into place in one step, so a folder
named after a run is always complete; a crash mid-write leaves only a dot-folder, which `runs()` never lists
and `clean_partial` removes. Files are made read-only once written. A run folder is never overwritten: to run
it again, `supersede` moves it to `runs/.superseded/` first (kept, never deleted). A failed run is stored the
same way, with the state and message of the stage that failed and that stage's logs; its failed output stays
in the cache's `failed/` folder (`status.json` says where), never in the run folder, which holds only files
the harness wrote itself.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmark.errors import ConfigError, HMUError
from benchmark.harness.spec import STAGE_KINDS, RunSpec, StageKind

STATUS_SCHEMA = "hmu.run-status/1"
"""Schema id of `status.json`."""

PROVENANCE_SCHEMA = "hmu.provenance/1"
"""Schema id of `provenance.json`."""

RUN_SPEC_FILE = "run_spec.json"
STATUS_FILE = "status.json"
PROVENANCE_FILE = "provenance.json"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"
SAMPLES_DIR = "samples"
SAMPLES_INDEX = "samples.json"

StageState = Literal["ok", "failed", "timeout", "oom", "invalid_output", "crashed", "blocked"]
"""A runner's states (`benchmark.harness.runners.STATES`), plus `blocked`: not run because a stage it needs
failed."""


class StoreError(HMUError):
    """A run folder cannot be written or read: it exists already, or its files are malformed."""


def utc_now() -> str:
    """The time as ISO 8601 UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StageRecord:
    """How one stage of a run went."""

    stage: StageKind
    """unlearn, generate or evaluate."""
    key: str
    """Its cache key."""
    state: StageState
    """ok, a failure state of the runner, or blocked."""
    cached: bool
    """True when its output came from the cache (it did not run in this bench)."""
    seconds: float
    """Wall-clock seconds of the run that made the output (the earlier run's, when cached); 0 if blocked."""
    runner: str | None
    """`local` or `docker`; None when blocked."""
    message: str
    """One line: what happened."""
    image_id: str | None = None
    """The image that ran it (Docker)."""
    kept_output: str | None = None
    """Where a failed stage's output folder was kept (under the cache's `failed/`), or None."""
    peak_memory_bytes: int | None = None
    """The stage's memory high-water mark (the earlier run's, when cached); None where the runner could not
    see it (`StageOutcome.peak_memory_bytes`)."""

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class RunStatus:
    """How a run went: ok when every stage is, else the first stage that was not."""

    stages: tuple[StageRecord, ...]
    """Its stages, in order."""
    notes: tuple[str, ...] = ()
    """What the run lacks, in words (no reference model)."""
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique to this folder: a run stored again after `supersede` gets a new one (MLflow keys on it)."""
    stored_at: str = field(default_factory=utc_now)
    """When the folder was written (UTC)."""

    @property
    def failed(self) -> StageRecord | None:
        """The first stage that is not ok, or None."""
        return next((stage for stage in self.stages if stage.state != "ok"), None)

    @property
    def status(self) -> Literal["ok", "failed"]:
        return "ok" if self.failed is None and len(self.stages) == len(STAGE_KINDS) else "failed"

    def stage(self, kind: StageKind) -> StageRecord | None:
        return next((stage for stage in self.stages if stage.stage == kind), None)

    def to_json(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "schema": STATUS_SCHEMA,
            "status": self.status,
            "failed_stage": failed.stage if failed is not None else None,
            "state": failed.state if failed is not None else "ok",
            "message": failed.message if failed is not None else "every stage ok",
            "record_id": self.record_id,
            "stored_at": self.stored_at,
            "notes": list(self.notes),
            "stages": [stage.to_json() for stage in self.stages],
        }

    @classmethod
    def from_json(cls, data: Any, path: Path | str = STATUS_FILE) -> RunStatus:
        if not isinstance(data, dict) or data.get("schema") != STATUS_SCHEMA:
            raise ConfigError(path, "schema", f"expected a {STATUS_SCHEMA} object")
        try:
            stages = tuple(StageRecord(**stage) for stage in data["stages"])
            return cls(stages, tuple(data["notes"]), data["record_id"], data["stored_at"])
        except KeyError as error:
            raise ConfigError(path, str(error.args[0]), "missing") from None
        except TypeError as error:
            raise ConfigError(path, "stages", f"malformed: {error}") from None


@dataclass(frozen=True)
class StageFiles:
    """What the store keeps of one stage."""

    request: Path | None = None
    """The stage's `request.json` (copied)."""
    result: Mapping[str, Any] | None = None
    """The stage's `result.json`, as the runner read and checked it (written as JSON)."""
    logs: Path | None = None
    """The folder of its `stdout.log`, `stderr.log` and `command.txt` (copied)."""


@dataclass(frozen=True)
class Sample:
    """One generated motion kept with the run (for pictures in MLflow and the leaderboard)."""

    name: str
    """File stem: the prompt set it answers (`forget_test`)."""
    prompt_id: str
    """The prompt's id in the plan."""
    text: str
    """The prompt."""
    motion: np.ndarray
    """(frames, 263) float32 features."""


@dataclass(frozen=True)
class RunRecord:
    """Everything a run folder holds, as the bench hands it to the store."""

    spec: RunSpec
    """The run."""
    status: RunStatus
    """How it went."""
    provenance: Mapping[str, Any]
    """Where everything came from (`provenance.json` without its schema)."""
    stages: Mapping[StageKind, StageFiles] = field(default_factory=dict)
    """The files of each stage that ran or came from the cache."""
    metrics: Path | None = None
    """The evaluator's `metrics.json`, when the evaluation succeeded."""
    samples: tuple[Sample, ...] = ()
    """A few generated motions."""


@dataclass(frozen=True)
class StoredRun:
    """A run folder, read back."""

    path: Path
    """The folder."""
    spec: RunSpec
    """Its `run_spec.json`."""
    status: RunStatus
    """Its `status.json`."""
    provenance: Mapping[str, Any]
    """Its `provenance.json`."""

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def metrics_path(self) -> Path | None:
        path = self.path / METRICS_FILE
        return path if path.is_file() else None

    def metrics(self) -> dict[str, Any] | None:
        """The parsed `metrics.json`, or None when the run has none."""
        path = self.metrics_path
        return None if path is None else _read_json(path)

    def samples(self) -> dict[str, dict[str, Any]]:
        """Sample name -> {prompt_id, text, frames, file}, from `samples/samples.json` ({} without)."""
        index = self.path / SAMPLES_DIR / SAMPLES_INDEX
        return _read_json(index) if index.is_file() else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StoreError(f"{path}: not a readable JSON file: {error}") from None


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def _copy_plain(source: Path, destination: Path) -> None:
    """Copy a folder of plain files the harness wrote (logs); links are never followed."""
    destination.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        if item.is_symlink():
            continue
        if item.is_dir():
            _copy_plain(item, destination / item.name)
        elif item.is_file():
            shutil.copyfile(item, destination / item.name)


def _write_samples(folder: Path, samples: tuple[Sample, ...]) -> None:
    folder.mkdir()
    index: dict[str, dict[str, Any]] = {}
    for sample in samples:
        motion = np.asarray(sample.motion, dtype=np.float32)
        np.save(folder / f"{sample.name}.npy", motion, allow_pickle=False)
        index[sample.name] = {
            "prompt_id": sample.prompt_id,
            "text": sample.text,
            "frames": int(motion.shape[0]),
            "file": f"{sample.name}.npy",
        }
    _write_json(folder / SAMPLES_INDEX, index)


def _freeze(folder: Path) -> None:
    """Make every file read-only: a run folder is a record, not a workspace."""
    for parent, _, files in os.walk(folder):
        os.chmod(parent, 0o755)
        for name in files:
            os.chmod(Path(parent) / name, 0o444)


@dataclass(frozen=True)
class ResultsStore:
    """The run folders under `<root>/runs/` (module docstring)."""

    root: Path
    """The results folder (`results/`)."""

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def path(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise StoreError(f"{run_id!r} is not a run id")
        return self.runs_dir / run_id

    def exists(self, run_id: str) -> bool:
        """True when the run's folder exists (it is then complete)."""
        return self.path(run_id).is_dir()

    def read(self, run_id: str) -> StoredRun:
        """The run folder of `run_id`; a StoreError when it is absent or malformed."""
        return read_run(self.path(run_id))

    def run_paths(self) -> list[Path]:
        """Every run folder's path, sorted by run id (temporary and superseded folders are never listed)."""
        if not self.runs_dir.is_dir():
            return []
        return [
            path
            for path in sorted(self.runs_dir.iterdir())
            if path.is_dir() and not path.name.startswith(".")
        ]

    def runs(self) -> list[StoredRun]:
        """Every run folder, read (a StoreError or ConfigError at the first malformed one)."""
        return [read_run(path) for path in self.run_paths()]

    def write(self, record: RunRecord) -> StoredRun:
        """Store a run (module docstring); a StoreError when its folder exists."""
        run_id = record.spec.run_id
        final = self.path(run_id)
        if final.exists():
            raise StoreError(f"{final}: the run is stored already (run folders are never overwritten)")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{run_id}-", dir=self.runs_dir))
        try:
            _write_json(temporary / RUN_SPEC_FILE, record.spec.to_json())
            _write_json(temporary / PROVENANCE_FILE, {"schema": PROVENANCE_SCHEMA, **record.provenance})
            for kind in STAGE_KINDS:
                files = record.stages.get(kind)
                if files is None:
                    continue
                folder = temporary / kind
                folder.mkdir()
                if files.request is not None and files.request.is_file():
                    shutil.copyfile(files.request, folder / "request.json")
                if files.result is not None:
                    _write_json(folder / "result.json", dict(files.result))
                if files.logs is not None and files.logs.is_dir():
                    _copy_plain(files.logs, temporary / LOGS_DIR / kind)
            if record.metrics is not None:
                shutil.copyfile(record.metrics, temporary / METRICS_FILE)
            if record.samples:
                _write_samples(temporary / SAMPLES_DIR, record.samples)
            # status.json last: a folder with a status is a folder with everything else.
            _write_json(temporary / STATUS_FILE, record.status.to_json())
            _freeze(temporary)
            if final.exists():
                raise StoreError(f"{final}: the run was stored meanwhile")
            os.rename(temporary, final)
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        return read_run(final)

    def supersede(self, run_id: str) -> Path:
        """Move a run folder to `runs/.superseded/<run_id>.<time>/` (so that the run can be stored again)
        and return where it went."""
        source = self.path(run_id)
        if not source.is_dir():
            raise StoreError(f"{source}: no such run to supersede")
        target = self.runs_dir / ".superseded" / f"{run_id}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        while target.exists():
            target = target.with_name(target.name + "+")
        os.rename(source, target)
        return target

    def clean_partial(self) -> int:
        """Remove temporary folders of writes that never finished; returns how many. Only call while holding
        the results folder's lock."""
        if not self.runs_dir.is_dir():
            return 0
        partial = list(self.runs_dir.glob(".tmp-*"))
        for folder in partial:
            shutil.rmtree(folder, ignore_errors=True)
        return len(partial)


def read_run(path: Path) -> StoredRun:
    """Read a run folder's spec, status and provenance."""
    if not (path / STATUS_FILE).is_file():
        raise StoreError(f"{path}: not a run folder (no {STATUS_FILE})")
    spec = RunSpec.from_json(_read_json(path / RUN_SPEC_FILE), path / RUN_SPEC_FILE)
    status = RunStatus.from_json(_read_json(path / STATUS_FILE), path / STATUS_FILE)
    provenance = _read_json(path / PROVENANCE_FILE)
    if spec.run_id != path.name:
        raise StoreError(f"{path}: run_spec.json belongs to run {spec.run_id}, not to this folder")
    return StoredRun(path, spec, status, provenance)


# ----------------------------------------------------------------------------- provenance helpers


def git_commit(root: Path) -> dict[str, Any]:
    """The checkout's commit and whether it has uncommitted changes; `unknown` outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
        )
        if head.returncode != 0:
            return {"commit": "unknown", "dirty": None}
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def hardware() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (name or None), platform, Python and torch versions."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
