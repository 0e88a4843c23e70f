"""Runners: one stage (a container verb) run under the container contract, its outcome recorded, never raised.

    >>> runner = select_runner("auto")           # Docker when an engine answers, else local (with a warning)
    >>> outcome = runner.run(StageInvocation(
    ...     verb="unlearn", input_dir=Path("runs/r/unlearn/in"), output_dir=Path("runs/r/unlearn/out"),
    ...     image="hmu/method/original:3f5c...", method="original",
    ...     limits=ResourceLimits(memory_bytes=2 * 2**30, cpus=1, wall_seconds=600)))
    >>> outcome.state, outcome.message, outcome.stderr_log
    ('ok', 'unlearn ok in 4.1 s', PosixPath('runs/r/unlearn/out.logs/stderr.log'))

Both runners give the stage the same files: the request folder (`input_dir`) read-only, an empty `output_dir`,
extra read-only folders (`read_only_paths`: a dataset, a methods folder) at the same paths as on the host, so
that absolute paths in a request mean the same thing under both.

- `DockerRunner`: `docker run` with exactly these sandbox flags: `--network none --read-only --tmpfs /tmp
  --user 1000:1000 --cap-drop ALL --security-opt no-new-privileges --memory --memory-swap --cpus
  --pids-limit`, the input at `/hmu/input` (read-only), the output at `/hmu/output`, `--gpus all` when the
  stage may use a GPU and the host has one. The user is 1000:1000 when the harness runs as root (the output
  folder is handed to it; the input must be readable by others), else the harness's own user; never root.
  The container is killed at the wall-clock limit and always removed; `OOMKilled` in its state means `oom`.
  The exact command line is saved beside the logs.
- `LocalRunner`: the same verb as a subprocess of this Python (`hmu method <verb>`, `hmu evaluate`), with the
  same folders and environment, a wall-clock limit (the whole process group is killed) and an address-space
  limit (`RLIMIT_AS`). **It is not a sandbox**: the process can read and write anything its user can and
  reach the network. It exists for machines without Docker and for debugging.

After every stage the harness checks the output folder itself (`benchmark.harness.validate`), whatever the
stage's exit status. The outcome's `state`:
- `ok`: exit status 0 and the output passed every check;
- `failed`: the stage reported its own failure (exit status 1 or 2 with a `result.json` saying `failed`);
- `timeout`: killed at the wall-clock limit; `oom`: killed for memory (or, locally, a MemoryError);
- `invalid_output`: the output breaks the contract (links out, special files, too many or too large files,
  NaNs, wrong shapes, a model that does not load, a missing or malformed `result.json` after exit 0);
- `crashed`: any other exit status, a missing `result.json` after a failure, or the engine failing.

Logs go to `<output_dir>.logs/` (`stdout.log`, `stderr.log`, `command.txt`). Only a valid output stays at
`output_dir`: any other outcome moves the folder aside to `<output_dir>.<state>` (`outcome.output_dir` says
where), so that nothing is lost and nothing invalid is ever taken for a result.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from benchmark.api.contract import INPUT_DIR, OUTPUT_DIR, Resources
from benchmark.errors import HMUError
from benchmark.harness.docker import DockerCLI, DockerError
from benchmark.harness.validate import VERBS, InvalidOutput, OutputLimits, Verb, check_tree, read_stage_result
from benchmark.harness.validate import validate_output as check_output

if TYPE_CHECKING:  # the Slurm runner builds on this module
    from benchmark.harness.slurm import SlurmSettings

logger = logging.getLogger(__name__)

State = Literal["ok", "failed", "timeout", "oom", "invalid_output", "crashed"]
STATES: tuple[State, ...] = ("ok", "failed", "timeout", "oom", "invalid_output", "crashed")

METHOD_VERBS: tuple[Verb, ...] = ("describe", "unlearn", "generate")
"""The verbs of a method container; `evaluate` is the evaluator's."""

_OOM_MARKERS = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "out of memory")
"""How an allocation refused under RLIMIT_AS shows in a local stage's result (numpy, torch, the OS)."""


class RunnerError(HMUError):
    """The invocation itself is unusable (the caller's fault, raised before anything runs): a missing input
    folder, an output folder that is not empty, no image for Docker, no method for a local method verb."""


# ----------------------------------------------------------------------------- what a stage is


@dataclass(frozen=True)
class ResourceLimits:
    """What a stage may use."""

    memory_bytes: int = 4 * 2**30
    """Memory (Docker: `--memory`, no swap; local: the address-space limit)."""
    cpus: float = 1.0
    """CPU cores (Docker: `--cpus`); also sets OMP_NUM_THREADS and friends to its floor (at least 1)."""
    pids: int = 512
    """Processes and threads (Docker: `--pids-limit`; not enforced locally)."""
    wall_seconds: float = 3600.0
    """Wall-clock limit, container start included; past it the stage is killed (`timeout`)."""
    gpu: bool = False
    """Give the stage the GPUs when the host has any (otherwise it runs on the CPU, and says so)."""
    tmp_bytes: int = 2**30
    """Size of the stage's /tmp (Docker: a tmpfs, counted in its memory; local: a fresh folder, unbounded)."""

    def __post_init__(self) -> None:
        if self.memory_bytes < 64 * 2**20:
            raise ValueError(f"memory_bytes must be at least 64 MiB, got {self.memory_bytes}")
        if self.cpus <= 0 or self.pids < 1 or self.wall_seconds <= 0 or self.tmp_bytes < 1:
            raise ValueError(f"cpus, pids, wall_seconds and tmp_bytes must be positive: {self}")

    @classmethod
    def from_resources(cls, resources: Resources, **changes: Any) -> ResourceLimits:
        """The limits a method declares in its method.yaml (`resources`), with `changes` on top."""
        values: dict[str, Any] = {
            "memory_bytes": int(resources.memory_gb * 2**30),
            "cpus": float(resources.cpus),
            "wall_seconds": float(resources.time_limit_s),
            "gpu": resources.gpu != "none",
        }
        return cls(**{**values, **changes})

    @property
    def threads(self) -> int:
        """BLAS/OpenMP threads: the whole cores the stage has."""
        return max(1, math.floor(self.cpus))


@dataclass(frozen=True)
class StageInvocation:
    """One stage to run: which verb, of what, on which folders, within which limits."""

    verb: Verb
    """`describe`, `unlearn`, `generate` (a method image) or `evaluate` (the evaluator image)."""
    output_dir: Path
    """Host folder for the outputs: absent or empty. Mounted at /hmu/output."""
    input_dir: Path | None = None
    """Host request folder (with request.json), mounted read-only at /hmu/input; None for `describe`."""
    image: str | None = None
    """The image to run (Docker): a content-tagged reference or an image ID."""
    method: str | None = None
    """The method's name: needed by the local runner for method verbs; under Docker it overrides the
    image's HMU_METHOD (with `read_only_paths` and HMU_METHODS_DIR in `env`, any methods folder runs)."""
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    """Memory, CPUs, pids, wall clock, GPU."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables of the stage (they win over the runner's)."""
    read_only_paths: tuple[Path, ...] = ()
    """Host folders the stage may read besides its input (a dataset, a methods folder), mounted read-only
    at the same path."""
    output_limits: OutputLimits = field(default_factory=OutputLimits)
    """How much the stage may write."""
    logs_dir: Path | None = None
    """Where stdout.log, stderr.log and command.txt go; None: `<output_dir>.logs` beside the output."""

    def __post_init__(self) -> None:
        if self.verb not in VERBS:
            raise RunnerError(f"unknown verb {self.verb!r}: expected one of {VERBS}")
        if self.verb != "describe" and self.input_dir is None:
            raise RunnerError(f"{self.verb} needs an input folder (the request folder)")
        # Absolute: the stage runs from another working folder (a scratch folder, a container, a node).
        for name in ("output_dir", "input_dir", "logs_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).absolute())
        object.__setattr__(self, "read_only_paths", tuple(Path(p).absolute() for p in self.read_only_paths))

    @property
    def logs(self) -> Path:
        return self.logs_dir or self.output_dir.with_name(self.output_dir.name + ".logs")


@dataclass(frozen=True)
class StageOutcome:
    """How a stage went. Runners return one for everything the stage did; they never raise for it."""

    state: State
    """ok, failed, timeout, oom, invalid_output or crashed (module docstring)."""
    exit_code: int | None
    """The stage's exit status (negative: killed by that signal, locally); None when it never ran."""
    wall_seconds: float
    """Wall-clock time from start (container creation included) to exit."""
    stdout_log: Path
    """The stage's standard output (the description, for `describe`)."""
    stderr_log: Path
    """The stage's standard error (its log and tracebacks)."""
    message: str
    """One line: what happened, naming the file and rule for an invalid output."""
    output_dir: Path
    """Where the output folder is now: the invocation's when ok, else the folder it was moved aside to."""
    runner: Literal["local", "docker", "slurm"]
    """Which runner ran it."""
    record: dict[str, Any] | None = None
    """The stage's result.json (describe: its description) when it could be read, else None."""
    image_id: str | None = None
    """The image that ran (Docker), for provenance."""
    peak_memory_bytes: int | None = None
    """The stage's memory high-water mark: locally the process's peak resident set (`wait4`), in Docker the
    container's memory cgroup high-water mark (read until it exits); None where the runner cannot see it."""


class Runner(Protocol):
    """Runs stages; `run` records every failure of the stage in the outcome and raises only RunnerError for
    an unusable invocation."""

    name: Literal["local", "docker", "slurm"]

    def run(self, invocation: StageInvocation) -> StageOutcome: ...


# ----------------------------------------------------------------------------- shared steps


def prepare_stage_folders(invocation: StageInvocation) -> tuple[Path, Path, Path]:
    """Check the folders, create the output and logs folders; returns (output, stdout log, stderr log)."""
    if invocation.input_dir is not None and not invocation.input_dir.is_dir():
        raise RunnerError(f"{invocation.input_dir}: the input folder does not exist")
    for path in invocation.read_only_paths:
        if not path.exists():
            raise RunnerError(f"{path}: a read-only path of the stage does not exist")
    output = invocation.output_dir
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise RunnerError(f"{output}: the output must be a folder")
    output.mkdir(parents=True, exist_ok=True)
    if any(output.iterdir()):
        raise RunnerError(f"{output}: the output folder must be empty")
    logs = invocation.logs
    if logs.exists() and any(logs.iterdir()):
        _move_aside(logs, "old")  # an earlier attempt's logs: kept, never overwritten
    logs.mkdir(parents=True, exist_ok=True)
    return output, logs / "stdout.log", logs / "stderr.log"


def _move_aside(path: Path, label: str) -> Path:
    """Rename `path` to `<path>.<label>` (or `.<label>.N` when taken); returns the new path."""
    target = path.with_name(f"{path.name}.{label}")
    number = 1
    while target.exists() or target.is_symlink():
        target = path.with_name(f"{path.name}.{label}.{number}")
        number += 1
    os.replace(path, target)
    return target


def _tail(path: Path, lines: int = 5, limit: int = 64 * 1024) -> str:
    """The last lines of a log, as one line ("nothing in stderr.log" when it is empty)."""
    try:
        with path.open("rb") as stream:
            stream.seek(max(0, path.stat().st_size - limit))
            text = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or f"nothing in {path.name}"


def stage_environment(invocation: StageInvocation) -> dict[str, str]:
    """What every stage gets in its environment under either runner (the image sets the same defaults)."""
    threads = str(invocation.limits.threads)
    env = {
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if invocation.method is not None:
        env["HMU_METHOD"] = invocation.method
    return {**env, **invocation.env}


@dataclass(frozen=True)
class StageEnd:
    """How the stage's process ended, before its output is judged."""

    exit_code: int | None
    """The exit status; None when the stage never started."""
    wall_seconds: float
    """From start to exit."""
    timed_out: bool = False
    """Killed at the wall-clock limit."""
    oom_killed: bool = False
    """Killed by the kernel for memory (Docker's `OOMKilled`)."""
    note: str = ""
    """Something the runner wants said (no GPU, the engine's error)."""
    peak_memory_bytes: int | None = None
    """The stage's memory high-water mark, where the runner can see it (`StageOutcome`)."""


def judge_stage(
    invocation: StageInvocation,
    ended: StageEnd,
    stdout_log: Path,
    stderr_log: Path,
    runner: Literal["local", "docker", "slurm"],
    image_id: str | None = None,
) -> StageOutcome:
    """The outcome of a finished stage: its state from how it ended and what it left (module docstring)."""
    output = invocation.output_dir
    limits = invocation.output_limits
    record: dict[str, Any] | None = None
    state: State
    if ended.timed_out:
        state, message = "timeout", f"killed at the wall-clock limit of {invocation.limits.wall_seconds:g} s"
    elif ended.oom_killed:
        state, message = (
            "oom",
            f"killed at the memory limit of {invocation.limits.memory_bytes / 2**20:.0f} MiB",
        )
    elif ended.exit_code is None:
        state, message = "crashed", ended.note or "the stage did not start"
    else:
        try:
            # The shape first, whatever the exit status: a failed stage may still have left a link out.
            check_tree(output, limits)
            if ended.exit_code == 0:
                checked = check_output(
                    invocation.verb, output, invocation.input_dir, stdout=stdout_log, limits=limits
                )
                record = checked.record
                state, message = "ok", f"{invocation.verb} ok in {ended.wall_seconds:.1f} s"
            else:
                state, message, record = _judge_failure(invocation, ended.exit_code, stderr_log, runner)
        except InvalidOutput as error:
            state, message = "invalid_output", str(error)
        except Exception as error:  # a fault of the checks themselves: recorded, the bench goes on
            logger.exception("checking the output of %s in %s failed", invocation.verb, output)
            state, message = (
                "crashed",
                f"the harness could not check the output: {type(error).__name__}: {error}",
            )
    if ended.note and state != "crashed":
        message = f"{message} ({ended.note})"
    if state != "ok" and output.exists():
        output = _move_aside(output, state)
    log = logger.info if state == "ok" else logger.warning
    log("%s %s: %s: %s", invocation.verb, invocation.method or invocation.image or "(local)", state, message)
    return StageOutcome(
        state=state,
        exit_code=ended.exit_code,
        wall_seconds=round(ended.wall_seconds, 3),
        stdout_log=stdout_log,
        stderr_log=stderr_log,
        message=message,
        output_dir=output,
        runner=runner,
        record=record,
        image_id=image_id,
        peak_memory_bytes=ended.peak_memory_bytes,
    )


def _judge_failure(
    invocation: StageInvocation, code: int, stderr_log: Path, runner: str
) -> tuple[State, str, dict[str, Any] | None]:
    """A non-zero exit `code`: `failed` when the stage said why in a valid result.json, else `crashed`."""
    if code < 0 or code > 128:
        number = -code if code < 0 else code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return "crashed", f"killed by {name} (exit {code}): {_tail(stderr_log)}", None
    if code not in (1, 2):
        return "crashed", f"exit status {code}: {_tail(stderr_log)}", None
    if invocation.verb == "describe":  # no result.json: the log says why
        return "failed", f"exit status {code}: {_tail(stderr_log)}", None
    try:
        record = read_stage_result(invocation.output_dir, invocation.output_limits)
    except InvalidOutput as error:
        return (
            "crashed",
            f"exit status {code} without a usable result.json ({error}): {_tail(stderr_log)}",
            None,
        )
    if record.get("status") != "failed":
        raise InvalidOutput(
            f"{invocation.output_dir}/result.json: status {record.get('status')!r}, exit {code}"
        )
    error = str(record.get("error") or "")
    kind = record.get("error_type")
    message = f"{kind}: {error}" if kind else error
    if runner == "local" and any(marker in message for marker in _OOM_MARKERS):
        return (
            "oom",
            f"out of memory under the {invocation.limits.memory_bytes / 2**20:.0f} MiB limit: {message}",
            record,
        )
    return "failed", message, record


# ----------------------------------------------------------------------------- Docker


def container_arguments(invocation: StageInvocation) -> list[str]:
    """What follows the image on a container's command line: the evaluator image's entrypoint is its whole
    command, a method image's takes the verb."""
    return [] if invocation.verb == "evaluate" else [invocation.verb]


def host_has_gpu() -> bool:
    """True when the host shows an NVIDIA GPU (the driver's device node or nvidia-smi)."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def docker_has_gpu() -> bool:
    """True when containers can get the host's GPUs: a GPU and the NVIDIA container toolkit (without it,
    `--gpus` makes `docker run` fail)."""
    toolkit = shutil.which("nvidia-container-cli") or shutil.which("nvidia-container-runtime-hook")
    return host_has_gpu() and toolkit is not None


def _default_user() -> str:
    """uid:gid of the container: 1000:1000 when the harness runs as root, else the harness's own user (the
    outputs then belong to whoever ran the benchmark). Never root."""
    if os.geteuid() == 0:
        return "1000:1000"
    return f"{os.getuid()}:{os.getgid()}"


@dataclass(frozen=True)
class DockerRunner:
    """Runs a stage in a container of `invocation.image` (module docstring)."""

    docker: DockerCLI = field(default_factory=DockerCLI)
    """The engine's client."""
    user: str = field(default_factory=_default_user)
    """`--user` of every container (numeric uid:gid)."""
    gpus_available: bool = field(default_factory=docker_has_gpu)
    """Whether `--gpus all` can be given to stages that may use a GPU."""
    log_max_bytes: int = 64 * 2**20
    """The engine keeps at most this much of a container's output (json-file `max-size`)."""
    name: Literal["docker"] = "docker"
    """The runner's name, as outcomes record it."""

    def sandbox_flags(self, invocation: StageInvocation) -> list[str]:
        """The `docker run` flags of a stage: sandbox, limits, mounts, environment (no image, no command)."""
        limits = invocation.limits
        flags = [
            "--pull=never",
            "--network=none",
            "--read-only",
            f"--tmpfs=/tmp:rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777",
            f"--user={self.user}",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            f"--memory={limits.memory_bytes}",
            f"--memory-swap={limits.memory_bytes}",  # equal to --memory: no swap, memory means memory
            f"--cpus={limits.cpus:g}",
            f"--pids-limit={limits.pids}",
            "--log-driver=json-file",
            f"--log-opt=max-size={self.log_max_bytes}",
            "--log-opt=max-file=1",
        ]
        mounts = [(invocation.output_dir, OUTPUT_DIR, False)]
        if invocation.input_dir is not None:
            mounts.insert(0, (invocation.input_dir, INPUT_DIR, True))
        mounts += [(path, path, True) for path in invocation.read_only_paths]
        for source, target, read_only in mounts:
            source = source.resolve()
            if "," in str(source) or "," in str(target):
                raise RunnerError(f"{source}: a path with a comma cannot be mounted")
            flags.append(
                f"--mount=type=bind,source={source},target={target}" + (",readonly" if read_only else "")
            )
        for name, value in stage_environment(invocation).items():
            flags.append(f"--env={name}={value}")
        if limits.gpu and self.gpus_available:
            flags.append("--gpus=all")
        return flags

    def container_command(self, invocation: StageInvocation, container: str) -> list[str]:
        """The arguments of `docker` that run a stage, attached, in a container named `container`: `run`,
        the sandbox flags, the image, the verb. The Slurm runner's docker runtime runs exactly this."""
        if invocation.image is None:
            raise RunnerError(f"{invocation.verb}: the Docker runner needs an image")
        command = ["run", f"--name={container}", "--label=org.hmu.stage=1", *self.sandbox_flags(invocation)]
        return [*command, invocation.image, *container_arguments(invocation)]

    def admit(self, invocation: StageInvocation) -> None:
        """Before a container runs: check that its user can read the mounted folders (a RunnerError when
        not) and hand it the output folder."""
        self._check_readable(invocation)
        self._grant_output(invocation.output_dir)

    def _grant_output(self, output: Path) -> None:
        """Let the container's user write the output folder (the harness made it as root)."""
        if os.geteuid() == 0:
            uid, _, gid = self.user.partition(":")
            os.chown(output, int(uid), int(gid or uid))

    def _check_readable(self, invocation: StageInvocation) -> None:
        """The container's user (not the folder's owner) must be able to enter the mounted folders."""
        uid = int(self.user.partition(":")[0])
        for path in [invocation.input_dir, *invocation.read_only_paths]:
            if path is None or not path.is_dir():
                continue
            info = path.stat()
            if info.st_uid != uid and (info.st_mode & 0o005) != 0o005:
                raise RunnerError(
                    f"{path}: mode {info.st_mode & 0o777:o}: the container user {self.user} cannot read it "
                    "(make it readable by others: chmod o+rx)"
                )

    def run(self, invocation: StageInvocation) -> StageOutcome:
        if invocation.image is None:
            raise RunnerError(f"{invocation.verb}: the Docker runner needs an image")
        output, stdout_log, stderr_log = prepare_stage_folders(invocation)
        self.admit(invocation)
        container = f"hmu-{invocation.verb}-{uuid.uuid4().hex[:12]}"
        image_id: str | None = None
        try:
            image_id = self.docker.image_id(invocation.image)
            command = ["run", "--detach", *self.container_command(invocation, container)[1:]]
            (invocation.logs / "command.txt").write_text(shlex.join(["docker", *command]) + "\n")
            ended = self._run_container(invocation, container, command, stdout_log, stderr_log)
        except (DockerError, OSError, subprocess.SubprocessError) as error:
            # The engine failed, not the stage: recorded as a crash, with the engine's words.
            ended = StageEnd(None, 0.0, note=f"the Docker engine failed: {error}")
            with stderr_log.open("a", encoding="utf-8") as stream:
                stream.write(f"hmu runner: {ended.note}\n")
        finally:
            self.docker.remove_container(container)
        if invocation.limits.gpu and not self.gpus_available:
            ended = replace(
                ended, note="; ".join(part for part in ("no GPU: ran on the CPU", ended.note) if part)
            )
        return judge_stage(invocation, ended, stdout_log, stderr_log, "docker", image_id)

    def _run_container(
        self,
        invocation: StageInvocation,
        container: str,
        command: list[str],
        stdout_log: Path,
        stderr_log: Path,
    ) -> StageEnd:
        began = time.perf_counter()
        wall = invocation.limits.wall_seconds
        started = self.docker.run(command, timeout=max(120.0, wall))
        if started.returncode != 0:
            stderr_log.write_text(started.stderr, encoding="utf-8")
            return StageEnd(
                None, time.perf_counter() - began, note=f"docker run failed: {started.stderr.strip()}"
            )
        timed_out = False
        with _CgroupPeak(started.stdout.strip()) as peak:
            try:
                self.docker.run(["wait", container], timeout=max(0.0, wall - (time.perf_counter() - began)))
            except subprocess.TimeoutExpired:
                timed_out = True
                self.docker.run(["kill", container], timeout=60)
                self.docker.run(["wait", container], timeout=60)
        seconds = time.perf_counter() - began
        state = (self.docker.inspect("container", container) or {}).get("State", {})
        with stdout_log.open("w", encoding="utf-8") as out, stderr_log.open("w", encoding="utf-8") as err:
            self.docker.run(["logs", container], stdout=out, stderr=err, timeout=300)
        return StageEnd(
            exit_code=int(state.get("ExitCode", -1)),
            wall_seconds=seconds,
            timed_out=timed_out,
            oom_killed=bool(state.get("OOMKilled")) and not timed_out,
            peak_memory_bytes=peak.bytes,
        )


_CGROUP_PEAK_FILES = (
    "/sys/fs/cgroup/memory/docker/{id}/memory.max_usage_in_bytes",  # v1, cgroupfs driver
    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.max_usage_in_bytes",  # v1, systemd
    "/sys/fs/cgroup/docker/{id}/memory.peak",  # v2, cgroupfs driver
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.peak",  # v2, systemd
)


class _CgroupPeak:
    """Reads a running container's memory high-water mark from its cgroup every half second, until the
    `with` block ends (the cgroup goes with the container). The mark only grows, so the last reading is the
    peak but for what the final half second added; `bytes` stays None when the engine's cgroups are not
    visible here (a remote engine, an older kernel)."""

    def __init__(self, container_id: str) -> None:
        self.bytes: int | None = None
        self._paths = [Path(pattern.format(id=container_id)) for pattern in _CGROUP_PEAK_FILES]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="hmu-cgroup-peak", daemon=True)

    def __enter__(self) -> _CgroupPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            for path in self._paths:
                try:
                    value = int(path.read_text())
                except (OSError, ValueError):
                    continue
                self.bytes = max(value, self.bytes or 0)
                break
            if self._stop.wait(0.5):
                return


# ----------------------------------------------------------------------------- local


_LIMIT_AND_EXEC = (
    "import os, resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
"""Sets the address-space limit, then becomes the stage: no preexec_fn (unsafe when the harness has threads)
and no window in which the stage runs unlimited."""


@dataclass(frozen=True)
class LocalRunner:
    """Runs a stage as a subprocess of this Python (module docstring). Not a sandbox."""

    python: str = sys.executable
    """The interpreter that runs `benchmark.cli.main` (one with this project installed)."""
    name: Literal["local"] = "local"
    """The runner's name, as outcomes record it."""

    def command(self, invocation: StageInvocation) -> list[str]:
        """The stage's command line (without the limits wrapper)."""
        hmu = [self.python, "-m", "benchmark.cli.main"]
        if invocation.verb == "evaluate":
            return [
                *hmu,
                "evaluate",
                "--input",
                str(invocation.input_dir),
                "--output",
                str(invocation.output_dir),
            ]
        if invocation.method is None:
            raise RunnerError(f"{invocation.verb}: the local runner needs the method's name")
        command = [*hmu, "method", invocation.verb, "--method", invocation.method]
        if invocation.verb != "describe":
            command += ["--input", str(invocation.input_dir), "--output", str(invocation.output_dir)]
        return command

    def run(self, invocation: StageInvocation) -> StageOutcome:
        command = self.command(invocation)
        output, stdout_log, stderr_log = prepare_stage_folders(invocation)
        limits = invocation.limits
        wrapped = [self.python, "-c", _LIMIT_AND_EXEC, str(limits.memory_bytes), *command]
        note = "no GPU: ran on the CPU" if limits.gpu and not host_has_gpu() else ""
        (invocation.logs / "command.txt").write_text(shlex.join(wrapped) + "\n")
        with tempfile.TemporaryDirectory(prefix="hmu-stage-") as scratch:
            env = {**os.environ, **stage_environment(invocation), "TMPDIR": scratch}
            if not limits.gpu:
                env["CUDA_VISIBLE_DEVICES"] = ""  # as in a container without --gpus
            ended = self._run_process(
                wrapped, env, scratch, limits.wall_seconds, stdout_log, stderr_log, note
            )
        return judge_stage(invocation, ended, stdout_log, stderr_log, "local")

    def _run_process(
        self,
        command: list[str],
        env: Mapping[str, str],
        cwd: str,
        wall: float,
        stdout_log: Path,
        stderr_log: Path,
        note: str,
    ) -> StageEnd:
        began = time.perf_counter()
        with stdout_log.open("wb") as out, stderr_log.open("wb") as err:
            try:
                process = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=dict(env),
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as error:
                return StageEnd(None, 0.0, note=f"cannot start {command[0]}: {error}")
            timed_out = False
            peak: int | None = None
            try:
                peak = _wait_with_peak(process, began + wall)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # The whole session: the stage's children go too, on a timeout and after a normal exit.
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        return StageEnd(
            process.returncode,
            time.perf_counter() - began,
            timed_out=timed_out,
            note=note,
            peak_memory_bytes=peak,
        )


def _wait_with_peak(process: subprocess.Popen, deadline: float) -> int:
    """Wait for `process` until `deadline` (perf_counter; TimeoutExpired after it) and return its peak
    resident set in bytes, which `wait4` reports for the reaped child (Linux: ru_maxrss in KiB)."""
    delay = 0.01
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            return usage.ru_maxrss * 1024
        if time.perf_counter() >= deadline:
            raise subprocess.TimeoutExpired(process.args, 0)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


# ----------------------------------------------------------------------------- choosing


def select_runner(
    kind: Literal["auto", "local", "docker", "slurm"] = "auto",
    *,
    docker: DockerCLI | None = None,
    slurm: SlurmSettings | None = None,
) -> Runner:
    """`docker`: the Docker runner (a RunnerError when no engine answers); `local`: the local runner; `auto`:
    Docker when an engine answers, else local with a warning saying the stages run without a sandbox;
    `slurm`: a Slurm job per stage (`benchmark.harness.slurm`, with `slurm`'s settings; a RunnerError when no
    cluster answers)."""
    docker = docker or DockerCLI()
    if kind == "local":
        return LocalRunner()
    if kind == "slurm":
        from benchmark.harness.slurm import SlurmSettings, slurm_runner

        return slurm_runner(slurm or SlurmSettings(), docker=docker)
    why = docker.why_not()
    if why is None:
        return DockerRunner(docker=docker)
    if kind == "docker":
        raise RunnerError(f"the Docker runner was asked for but {why} (run ci/start-docker.sh)")
    if kind != "auto":
        raise RunnerError(f"unknown runner {kind!r}: expected auto, local, docker or slurm")
    logger.warning(
        "runner auto: %s; running every stage as a local process instead, WITHOUT the container sandbox "
        "(no network isolation, no read-only root, no memory or pid limits beyond RLIMIT_AS)",
        why,
    )
    return LocalRunner()
