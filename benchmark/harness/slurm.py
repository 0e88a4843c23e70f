"""The Slurm runner: each stage one Slurm batch job, with the same contract and outcomes as the other runners.

    >>> runner = select_runner("slurm", slurm=SlurmSettings(partition="gpu", account="lab", runtime="docker",
    ...                                                     gpus=1, jobs_dir=Path("/shared/hmu/cache/slurm")))
    >>> outcome = runner.run(invocation)          # blocks until the job ends; a StageOutcome, never raised
    >>> outcome.state, outcome.message
    ('ok', 'unlearn ok in 4.1 s (Slurm job 812 COMPLETED)')

Why `sbatch` and `scontrol` and not submitit:
- submitit follows its jobs with `sacct`, which needs the accounting daemon (slurmdbd and a database); small
  clusters and this project's CI have none. `scontrol show job` and the jobcomp/filetxt file work everywhere.
- submitit pickles a Python function into the job. A stage here is a command (`docker run`, `apptainer run`,
  `hmu method <verb>`), so the job is a short shell script that anyone can read and resubmit by hand; it is
  saved beside the logs (`command.txt`), as the Docker runner saves its `docker run` line.
- Resume needs the job's id on disk next to its output, under a name the head can find again; that is a few
  lines here, and no new dependency on the head or the nodes.

A job's folder, `<jobs_dir>/<invocation hash>/` (on storage the head and the nodes share):
    job.json        the record: job id, job name, the invocation's hash, runtime, the sbatch command line
    job.sh          the batch script
    input/          a copy of the request folder (the head's own is temporary: a restarted bench removes it)
    output/         where the stage writes (mounted at /hmu/output, or `--output` of `hmu method`)
    logs/           stdout.log and stderr.log of the job (sbatch --output, --error)
    container.json  docker runtime: the container's final state (exit code, OOMKilled) and image ID
    exit-status     the job script's exit status, when it got to write it
When the job has ended, the head moves the output to the invocation's folder and the logs beside it (with
`command.txt` and `slurm-job.json`, the record plus Slurm's final word), judges the output exactly as the
other runners do (`benchmark.harness.validate`), and removes the job's folder.

Resume. The invocation's hash covers what the stage computes: the verb, the image, the method, its
environment and read-only folders, the runtime and every file of the request folder (not the output and logs
folders, which a restarted bench makes anew, and not the limits). A head that starts again and runs the same
invocation finds `job.json` and waits for the job when it is pending or running, or collects it when it has
ended, instead of submitting it again. A head killed between `sbatch` and writing `job.json` is covered too:
the job's name is made from its folder's path, and a live job of that name (and user) is adopted.

Where a job's state comes from: `scontrol show job` while slurmctld remembers the job (MinJobAge, 300 s by
default, after its end), then the jobcomp/filetxt file when the cluster writes one (`JobCompLoc`), then the
`exit-status` the script left. There is no `sacct`: it needs slurmdbd. Slurm's end states become the
harness's states:
- COMPLETED, FAILED: by the exit status and the output, as the local runner judges them (ok, failed, crashed,
  invalid_output); FAILED after slurmstepd killed the job for memory ("Exceeded job memory limit", what
  jobacct_gather's OverMemoryKill does on clusters without cgroups) is `oom`;
- OUT_OF_MEMORY (cgroup clusters): `oom`; TIMEOUT: `timeout`;
- CANCELLED, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE: `crashed`, with the state and reason in the message.
Jobs are submitted with `--no-requeue`: a job that lost its node ends as NODE_FAIL (recorded, re-run by the
next bench) instead of starting over in a half-written output folder.

Limits. The method's resources (`ResourceLimits`) become `--cpus-per-task`, `--mem`, `--time` and, for a stage
that may use a GPU, `--gres=gpu:<gpus>` when `gpus` > 0; `cpus`, `memory_gb` and `time_minutes` override them
for every stage of a bench. Slurm counts time in whole minutes and checks the limits every 30 s or so, so a
stage may run up to a minute and a half past its `time_limit_s` before it is `timeout`.

Runtimes on the node (`SlurmSettings.runtime`):
- `docker`: the Docker runner's own `docker run` command (`DockerRunner.container_command`: the same sandbox
  flags, mounts, user and limits), attached, in the job. Slurm's signal at a time limit kills the container
  (`docker kill`), and the container's OOMKilled flag means `oom`. The GPUs Slurm gave the job
  (CUDA_VISIBLE_DEVICES) are the container's. The nodes need the images: on one machine they are the head's;
  on a cluster, load them on each node (`docker save | docker load`) or use a registry.
- `apptainer`: `apptainer run` of the image as a SIF file or URI (`apptainer_image`, a template of the image
  reference: `/shared/sif/{name}.sif` after `apptainer build /shared/sif/<name>.sif docker-daemon://<ref>`),
  with the same folders at the same places, no network, a clean environment and `--nv` for a GPU. Memory and
  CPUs are Slurm's (cgroups). Apptainer cannot be installed on the machines this project is developed on, so
  only its command line is tested.
- `none`: the local runner's process command (`hmu method <verb>`, `hmu evaluate`) with this interpreter
  (`python`: it must exist at the same path on the nodes, e.g. a venv on shared storage). Not a sandbox; the
  memory limit is Slurm's, not RLIMIT_AS.
- `auto` (the default): docker when the head's Docker engine answers, else none (with a warning).

Only the head process writes to MLflow. Jobs run the stage commands, which never import the tracking module,
and the job script unsets MLFLOW_TRACKING_URI; the head logs each run folder once it is stored.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from benchmark.api.contract import INPUT_DIR, OUTPUT_DIR
from benchmark.harness.docker import DockerCLI
from benchmark.harness.runners import (
    DockerRunner,
    LocalRunner,
    ResourceLimits,
    RunnerError,
    StageEnd,
    StageInvocation,
    StageOutcome,
    container_arguments,
    judge_stage,
    prepare_stage_folders,
    stage_environment,
)
from benchmark.harness.spec import KEY_LENGTH, files_sha256, sha256_json

logger = logging.getLogger(__name__)

Runtime = Literal["auto", "docker", "apptainer", "none"]
RUNTIMES: tuple[Runtime, ...] = ("auto", "docker", "apptainer", "none")

JOB_FORMAT = "hmu-slurm-job/1"
"""Part of every invocation hash and the schema of `job.json`."""

ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING"}
)
"""Job states after which the job still runs (or will): the head keeps waiting."""

_MEMORY_KILL = re.compile(r"^slurmstepd.*(exceeded (job )?memory limit|oom[-_]kill event)", re.I | re.M)
"""slurmstepd's words in the job's stderr when it killed the job for memory (jobacct_gather, or cgroups)."""

_FIELD = re.compile(r"(?:^|\s)([A-Za-z_:/]+)=(\S*)")
"""One `Key=Value` of `scontrol show job -o` and of a jobcomp/filetxt line."""


class SlurmError(RunnerError):
    """No Slurm cluster answers, or the Slurm runner is configured wrongly."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SlurmSettings:
    """Where and how a bench's stages run on a Slurm cluster (`hmu bench --runner slurm --slurm-...`)."""

    partition: str | None = None
    """`--partition` of every job; None: the cluster's default partition."""
    account: str | None = None
    """`--account` of every job; None: the user's default account."""
    runtime: Runtime = "auto"
    """What runs the stage on the node: docker, apptainer, none (module docstring); auto: docker when the
    head's engine answers, else none."""
    gpus: int = 0
    """GPUs of a stage that may use one (`--gres=gpu:N`); 0: none are asked for and stages run on the CPU."""
    cpus: int | None = None
    """CPUs of every stage, instead of what each method declares (its `resources.cpus`)."""
    memory_gb: float | None = None
    """Memory of every stage in GiB, instead of the method's `resources.memory_gb`."""
    time_minutes: int | None = None
    """Time limit of every stage in minutes, instead of the method's `resources.time_limit_s`."""
    extra: tuple[str, ...] = ()
    """More `sbatch` arguments, verbatim (`--qos=high`, `--constraint=a100`, `--reservation=...`)."""
    jobs_dir: Path | None = None
    """The job folders, on storage the nodes share; None: the bench puts them in `<cache>/slurm/`."""
    apptainer_image: str = "docker-daemon://{reference}"
    """Apptainer: what to run for an image, `{reference}` being the image reference and `{name}` the same
    as a file name (`/shared/sif/{name}.sif`)."""
    python: str = sys.executable
    """Runtime none: the interpreter that runs `hmu` on the nodes (a venv on shared storage)."""
    conf: Path | None = None
    """The cluster's slurm.conf; None: $SLURM_CONF, else Slurm's own default."""
    poll_seconds: float = 2.0
    """How often the head asks Slurm about a running job."""
    silent_limit_s: float = 600.0
    """How long the head waits for slurmctld to answer again before it records the stage as crashed."""

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise SlurmError(f"SlurmSettings.runtime: one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.gpus < 0:
            raise SlurmError(f"SlurmSettings.gpus: must be >= 0, got {self.gpus}")
        for name in ("cpus", "memory_gb", "time_minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SlurmError(f"SlurmSettings.{name}: must be > 0 or None, got {value}")
        if self.poll_seconds <= 0 or self.silent_limit_s <= 0:
            raise SlurmError("SlurmSettings.poll_seconds and silent_limit_s: must be > 0")

    def limits(self, limits: ResourceLimits) -> ResourceLimits:
        """A stage's limits with this bench's overrides on top."""
        changes: dict[str, Any] = {}
        if self.cpus is not None:
            changes["cpus"] = float(self.cpus)
        if self.memory_gb is not None:
            changes["memory_bytes"] = int(self.memory_gb * 2**30)
        if self.time_minutes is not None:
            changes["wall_seconds"] = self.time_minutes * 60.0
        return replace(limits, **changes)


# ----------------------------------------------------------------------------- the cluster's commands


def parse_fields(line: str) -> dict[str, str]:
    """`Key=Value` pairs of one line (the first of a repeated key wins: later ones may be inside a
    command line)."""
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(line):
        fields.setdefault(key, value)
    return fields


@dataclass(frozen=True)
class JobState:
    """What Slurm says of one job."""

    state: str
    """Slurm's job state: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL,
    ...; UNKNOWN when no source knows the job."""
    exit_code: int | None = None
    """The batch script's exit status; negative: killed by that signal; None: unknown."""
    seconds: float = 0.0
    """How long the job ran (queueing not counted)."""
    reason: str = ""
    """Slurm's reason (why it waits, or how it ended), when it gives one."""
    source: str = "scontrol"
    """Where the state came from: scontrol, jobcomp or exit-status."""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _exit_code(text: str) -> int | None:
    """Slurm's `ExitCode=status:signal`: the signal negated when there is one, else the status."""
    status, _, signal = text.partition(":")
    if not status.isdigit():
        return None
    return -int(signal) if signal.isdigit() and int(signal) > 0 else int(status)


def _duration(text: str) -> float:
    """Slurm's `[days-]hours:minutes:seconds` (or `minutes:seconds`) in seconds; 0 when unreadable."""
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    if not all(part.isdigit() for part in parts) or (days and not days.isdigit()):
        return 0.0
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return float(seconds + int(days or 0) * 86400)


def _elapsed(start: str, end: str) -> float:
    """Seconds between two of Slurm's local ISO times; 0 when either is unknown."""
    try:
        began = time.mktime(time.strptime(start, "%Y-%m-%dT%H:%M:%S"))
        ended = time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    return max(0.0, ended - began)


class SlurmUnreachable(SlurmError):
    """slurmctld did not answer (it may be restarting): the caller asks again later."""


@dataclass(frozen=True)
class SlurmCLI:
    """Slurm's command-line clients (sbatch, scontrol, squeue, sinfo), pointed at one cluster."""

    conf: Path | None = None
    """slurm.conf of the cluster; None: $SLURM_CONF, else Slurm's default."""
    timeout_s: float = 30.0
    """How long one command may take."""

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.conf is not None:
            env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run one client; its result whatever its exit status (a missing client is exit 127)."""
        try:
            return subprocess.run(
                list(args),
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            return subprocess.CompletedProcess(list(args), 127, "", f"{args[0]}: not found (install Slurm)")
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(
                list(args), 124, "", f"{args[0]}: no answer in {self.timeout_s} s"
            )

    def why_not(self) -> str | None:
        """None when the cluster answers (sinfo lists a node that takes jobs); otherwise why not."""
        result = self.run(["sinfo", "--noheader", "--format=%T"])
        if result.returncode != 0:
            lines = (result.stderr or "sinfo failed").strip().splitlines()
            return f"no Slurm cluster answers: {lines[-1] if lines else 'sinfo failed'}"
        states = result.stdout.split()
        if not any(state.rstrip("*~#!%$@^-") in ("idle", "mixed", "allocated") for state in states):
            return f"no Slurm node takes jobs (sinfo: {', '.join(states) or 'no nodes'})"
        return None

    def submit(self, args: Sequence[str]) -> str:
        """`sbatch --parsable <args>`: the job's id; a SlurmError quoting sbatch when it refuses."""
        result = self.run(["sbatch", "--parsable", *args])
        job_id = result.stdout.strip().split(";", 1)[0]
        if result.returncode != 0 or not job_id.isdigit():
            raise SlurmError(f"sbatch refused the job (exit {result.returncode}): {result.stderr.strip()}")
        return job_id

    def show_job(self, job_id: str) -> dict[str, str] | None:
        """`scontrol show job` as fields; None when slurmctld no longer knows the job. SlurmUnreachable
        when it does not answer."""
        result = self.run(["scontrol", "--oneliner", "show", "job", job_id])
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return None
            raise SlurmUnreachable(f"scontrol show job {job_id}: {result.stderr.strip()}")
        return parse_fields(result.stdout.strip().splitlines()[0]) if result.stdout.strip() else None

    def live_job(self, name: str) -> str | None:
        """The id of a pending or running job named `name`, or None."""
        result = self.run(["squeue", "--me", "--noheader", f"--name={name}", "--format=%i"])
        if result.returncode != 0:
            raise SlurmUnreachable(f"squeue --name={name}: {result.stderr.strip()}")
        ids = result.stdout.split()
        return ids[-1] if ids else None

    def cancel(self, job_id: str) -> None:
        """`scancel` a job (quiet when it has ended already)."""
        self.run(["scancel", job_id])

    def config(self) -> dict[str, str]:
        """`scontrol show config` as a mapping (`JobCompType`, `JobCompLoc`, ...); {} when unreachable."""
        result = self.run(["scontrol", "show", "config"])
        pairs = (line.split("=", 1) for line in result.stdout.splitlines() if " = " in line)
        return {key.strip(): value.strip() for key, value in pairs}

    def completed_job(self, job_id: str, name: str) -> JobState | None:
        """The job's line in the jobcomp/filetxt file (when the cluster writes one), or None."""
        config = self.config()
        if config.get("JobCompType") != "jobcomp/filetxt" or not config.get("JobCompLoc"):
            return None
        try:
            lines = Path(config["JobCompLoc"]).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        # The latest line of that id and name: ids start over when a cluster's state is wiped.
        for line in reversed(lines):
            fields = parse_fields(line)
            if fields.get("JobId") == job_id and fields.get("Name") == name:
                return JobState(
                    state=fields.get("JobState", "UNKNOWN"),
                    exit_code=_exit_code(fields.get("ExitCode", "")),
                    seconds=_elapsed(fields.get("StartTime", ""), fields.get("EndTime", "")),
                    source="jobcomp",
                )
        return None


# ----------------------------------------------------------------------------- a submitted job


@dataclass(frozen=True)
class SlurmJob:
    """A submitted job, as its `job.json` records it."""

    job_id: str
    """Slurm's job id."""
    name: str
    """The job's name, `hmu-<verb>-<a hash of its folder>` (the docker runtime's container has it too)."""
    digest: str
    """The invocation's hash (`invocation_digest`)."""
    folder: Path
    """The job's folder."""
    runtime: str
    """docker, apptainer or none."""
    sbatch: tuple[str, ...]
    """The sbatch command line."""
    submitted_at: str
    """When (UTC)."""
    container: str | None = None
    """Docker runtime: the container's name."""

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {"schema": JOB_FORMAT, **data, "folder": str(self.folder), "sbatch": list(self.sbatch)}

    @classmethod
    def read(cls, path: Path) -> SlurmJob | None:
        """The record in `path`, or None when it is missing or unreadable (then the job is not trusted)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.pop("schema") != JOB_FORMAT:
                return None
            return cls(**{**data, "folder": Path(data["folder"]), "sbatch": tuple(data["sbatch"])})
        except (OSError, ValueError, KeyError, TypeError):
            return None


def invocation_digest(invocation: StageInvocation, runtime: str) -> str:
    """sha256 of what the stage computes (module docstring): equal for the same stage run again by a
    restarted head, whatever its temporary output and logs folders."""
    inputs = None
    if invocation.input_dir is not None:
        files = [Path(parent) / name for parent, _, names in os.walk(invocation.input_dir) for name in names]
        inputs = files_sha256(invocation.input_dir, files)
    return sha256_json(
        {
            "format": JOB_FORMAT,
            "verb": invocation.verb,
            "image": invocation.image,
            "method": invocation.method,
            "env": dict(invocation.env),
            "read_only_paths": [str(path) for path in invocation.read_only_paths],
            "input": inputs,
            "runtime": runtime,
        }
    )


def _write_json(path: Path, data: Any) -> None:
    """Write a JSON file in one rename: a reader never sees half of it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _file_name(reference: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", reference)


_SCRIPT_HEAD = """#!/bin/bash
# HMU-Bench stage {what}, runtime {runtime}: the Slurm runner's job (benchmark/harness/slurm.py).
# By hand: {sbatch}
set -u
# Only the head process writes to MLflow.
unset MLFLOW_TRACKING_URI MLFLOW_TRACKING_TOKEN MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
cd {folder}
"""

_SCRIPT_TAIL = """status=$?
echo "$status" > {folder}/exit-status
exit "$status"
"""


# ----------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class SlurmRunner:
    """Runs each stage as one Slurm batch job and waits for it (module docstring)."""

    settings: SlurmSettings
    """Partition, account, runtime, GPUs, overrides, the jobs folder (resolved: runtime not `auto`)."""
    slurm: SlurmCLI = field(default_factory=SlurmCLI)
    """The cluster's clients."""
    docker: DockerRunner = field(default_factory=lambda: DockerRunner(gpus_available=False))
    """Docker runtime: whose `docker run` command the jobs run (its user, sandbox flags, GPU switch)."""
    name: Literal["slurm"] = "slurm"
    """The runner's name, as outcomes record it."""

    def __post_init__(self) -> None:
        if self.settings.runtime == "auto":
            raise SlurmError("SlurmRunner: resolve the runtime first (select_runner('slurm') does)")
        self.jobs_dir  # noqa: B018 (a SlurmError now rather than at the first stage)

    @property
    def runtime(self) -> str:
        return self.settings.runtime

    @property
    def runs_images(self) -> bool:
        """False for runtime none: the stages are this checkout's code, as under the local runner."""
        return self.runtime != "none"

    @property
    def jobs_dir(self) -> Path:
        if self.settings.jobs_dir is None:
            raise SlurmError("SlurmRunner: SlurmSettings.jobs_dir is needed (a folder the nodes share)")
        return self.settings.jobs_dir.resolve()

    # ------------------------------------------------------------------------- what a job runs

    def sbatch_arguments(self, invocation: StageInvocation, name: str, folder: Path) -> list[str]:
        """The options of the job's `sbatch` (without `--parsable` and the script)."""
        limits, settings = invocation.limits, self.settings
        args = [
            f"--job-name={name}",
            f"--chdir={folder}",
            f"--output={folder / 'logs' / 'stdout.log'}",
            f"--error={folder / 'logs' / 'stderr.log'}",
            "--no-requeue",
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={math.ceil(limits.cpus)}",
            f"--mem={math.ceil(limits.memory_bytes / 2**20)}M",
            f"--time={math.ceil(limits.wall_seconds / 60)}",
        ]
        if settings.partition:
            args.append(f"--partition={settings.partition}")
        if settings.account:
            args.append(f"--account={settings.account}")
        if limits.gpu and settings.gpus > 0:
            args.append(f"--gres=gpu:{settings.gpus}")
        return [*args, *settings.extra]

    def stage_command(self, invocation: StageInvocation, container: str) -> list[str]:
        """The stage's command inside the job (for docker and apptainer; `none` is `_local_lines`)."""
        if self.runtime == "docker":
            return ["docker", *self.docker.container_command(invocation, container)]
        return self._apptainer_command(invocation)

    def _apptainer_command(self, invocation: StageInvocation) -> list[str]:
        if invocation.image is None:
            raise RunnerError(f"{invocation.verb}: the apptainer runtime needs an image")
        image = self.settings.apptainer_image.format(
            reference=invocation.image, name=_file_name(invocation.image)
        )
        command = ["apptainer", "run", "--containall", "--no-home", "--net", "--network=none"]
        mounts = [(invocation.output_dir, OUTPUT_DIR, "rw")]
        if invocation.input_dir is not None:
            mounts.insert(0, (invocation.input_dir, INPUT_DIR, "ro"))
        mounts += [(path, path, "ro") for path in invocation.read_only_paths]
        for source, target, mode in mounts:
            if "," in str(source) or ":" in str(source):
                raise RunnerError(f"{source}: a path with a comma or colon cannot be bound")
            command.append(f"--bind={source.resolve()}:{target}:{mode}")
        command += [f"--env={name}={value}" for name, value in stage_environment(invocation).items()]
        if invocation.limits.gpu and self.settings.gpus > 0:
            command.append("--nv")
        return [*command, image, *container_arguments(invocation)]

    def job_script(self, invocation: StageInvocation, name: str, folder: Path) -> str:
        """The batch script of a stage whose folders are the job's (`input/`, `output/`); a docker
        runtime's container is named as the job."""
        sbatch = shlex.join(
            ["sbatch", *self.sbatch_arguments(invocation, name, folder), str(folder / "job.sh")]
        )
        what = f"{invocation.verb} of {invocation.method or invocation.image or 'the evaluator'}"
        head = _SCRIPT_HEAD.format(
            what=what, runtime=self.runtime, sbatch=sbatch, folder=shlex.quote(str(folder))
        )
        tail = _SCRIPT_TAIL.format(folder=shlex.quote(str(folder)))
        if self.runtime == "none":
            return head + self._local_lines(invocation) + tail
        command = self.stage_command(invocation, name)
        if self.runtime == "apptainer":
            return head + shlex.join(command) + "\n" + tail
        return head + self._docker_lines(command, name, folder) + tail

    def _local_lines(self, invocation: StageInvocation) -> str:
        """Runtime none: the local runner's command, its environment, a scratch folder as cwd and TMPDIR."""
        env = stage_environment(invocation)
        if not invocation.limits.gpu or self.settings.gpus == 0:
            env["CUDA_VISIBLE_DEVICES"] = ""  # as in a container without --gpus
        lines = [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        lines += [
            'scratch="$(mktemp -d "${TMPDIR:-/tmp}/hmu-stage-XXXXXX")"',
            "trap 'rm -rf \"$scratch\"' EXIT",
            'cd "$scratch"',
            'TMPDIR="$scratch" ' + shlex.join(LocalRunner(python=self.settings.python).command(invocation)),
        ]
        return "\n".join(lines) + "\n"

    def _docker_lines(self, command: list[str], container: str, folder: Path) -> str:
        """Runtime docker: `docker run` attached, in the background so that Slurm's SIGTERM (time limit,
        scancel) reaches the trap, which kills the container (a container is no child of the job); then
        the container's final state is kept and the container removed."""
        lines = []
        if "--gpus=all" in command:  # the GPUs Slurm gave the job, not every GPU of the node
            lines.append(
                'gpus=all; [ -n "${CUDA_VISIBLE_DEVICES:-}" ] && gpus="\\"device=${CUDA_VISIBLE_DEVICES}\\""'
            )
        words = ['--gpus="$gpus"' if word == "--gpus=all" else shlex.quote(word) for word in command]
        quoted = shlex.quote(container)
        final = folder / "container.json"
        state = '\'{"State": {{json .State}}, "Image": {{json .Image}}}\''
        lines += [
            f"docker rm --force --volumes {quoted} >/dev/null 2>&1  # one a killed job left",
            f"trap 'docker kill {quoted} >/dev/null 2>&1' TERM INT",
            " ".join(words) + " &",
            "pid=$!",
            'wait "$pid"',
            "status=$?",
            'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done',
            f"docker container inspect --format {state} {quoted} > {shlex.quote(str(final))}",
            f"docker rm --force --volumes {quoted} >/dev/null 2>&1",
            "(exit $status)",  # the container's exit status is the job's
        ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------------- running a stage

    def run(self, invocation: StageInvocation) -> StageOutcome:
        if self.runtime == "none":
            LocalRunner(python=self.settings.python).command(invocation)  # a RunnerError when unusable
        elif invocation.image is None:
            raise RunnerError(f"{invocation.verb}: the {self.runtime} runtime needs an image")
        _, stdout_log, stderr_log = prepare_stage_folders(invocation)
        limits = self.settings.limits(invocation.limits)
        # Slurm counts whole minutes: the limit the stage gets, and the one its messages name.
        invocation = replace(
            invocation, limits=replace(limits, wall_seconds=math.ceil(limits.wall_seconds / 60) * 60.0)
        )
        digest = invocation_digest(invocation, self.runtime)
        try:
            job, resumed = self._find_or_submit(invocation, digest)
        except (SlurmError, OSError) as error:  # the cluster refused the job: recorded as a crash
            stderr_log.write_text(f"hmu runner: {error}\n", encoding="utf-8")
            return judge_stage(
                invocation, StageEnd(None, 0.0, note=str(error)), stdout_log, stderr_log, "slurm"
            )
        logger.info("%s: Slurm job %s (%s)", job.name, job.job_id, "found again" if resumed else "submitted")
        shutil.copyfile(job.folder / "job.sh", invocation.logs / "command.txt")  # it names its sbatch line
        state = self._wait(job)
        ended, image_id = self._collect(invocation, job, state, stdout_log, stderr_log)
        outcome = judge_stage(invocation, ended, stdout_log, stderr_log, "slurm", image_id)
        return replace(outcome, message=f"{outcome.message} (Slurm job {job.job_id} {state.state})")

    def _find_or_submit(self, invocation: StageInvocation, digest: str) -> tuple[SlurmJob, bool]:
        """The job of this invocation: one a previous head submitted (True), else a new one (False)."""
        folder = self.jobs_dir / digest[:KEY_LENGTH]
        # Named after the folder, not the stage alone: another bench (another cache) running the same stage
        # on the same cluster has jobs and containers of other names, and the two never touch each other's.
        name = f"hmu-{invocation.verb}-{sha256_json(str(folder))[:16]}"
        known = SlurmJob.read(folder / "job.json")
        if known is not None and known.digest == digest and (folder / "output").is_dir():
            return known, True
        container = name if self.runtime == "docker" else None
        job_side = replace(
            invocation,
            input_dir=folder / "input" if invocation.input_dir is not None else None,
            output_dir=folder / "output",
            logs_dir=folder / "logs",
        )
        sbatch = ("sbatch", *self.sbatch_arguments(job_side, name, folder), str(folder / "job.sh"))
        live = self.slurm.live_job(name)
        if live is not None:
            if (folder / "job.sh").is_file() and (folder / "output").is_dir():
                # Submitted by a head that was killed before it wrote job.json.
                job = SlurmJob(live, name, digest, folder, self.runtime, sbatch, _utc_now(), container)
                _write_json(folder / "job.json", job.to_json())
                return job, True
            self.slurm.cancel(live)  # its folder is gone: it cannot be collected, and it must not write
        if folder.exists():
            shutil.rmtree(folder)  # what a job that ended uncollected, or a submission cut short, left
        folder.mkdir(parents=True)
        os.chmod(folder, 0o755)  # the container's user enters it
        if invocation.input_dir is not None:
            shutil.copytree(invocation.input_dir, folder / "input", symlinks=True)
        (folder / "output").mkdir()
        (folder / "logs").mkdir()
        if self.runtime == "docker":
            self.docker.admit(job_side)
        script = self.job_script(job_side, name, folder)
        (folder / "job.sh").write_text(script, encoding="utf-8")
        os.chmod(folder / "job.sh", 0o755)
        job_id = self.slurm.submit(sbatch[1:])
        job = SlurmJob(job_id, name, digest, folder, self.runtime, sbatch, _utc_now(), container)
        _write_json(folder / "job.json", job.to_json())
        return job, False

    def _state(self, job: SlurmJob) -> JobState:
        """The job's state from scontrol, else the jobcomp file, else the script's exit status."""
        fields = self.slurm.show_job(job.job_id)
        if fields is not None and fields.get("JobName") == job.name:
            return JobState(
                state=fields.get("JobState", "UNKNOWN"),
                exit_code=_exit_code(fields.get("ExitCode", "")),
                seconds=_duration(fields.get("RunTime", "")),
                reason=fields.get("Reason", "") if fields.get("Reason") != "None" else "",
            )
        completed = self.slurm.completed_job(job.job_id, job.name)
        if completed is not None:
            return completed
        status = job.folder / "exit-status"
        if status.is_file() and status.read_text().strip().isdigit():
            code = int(status.read_text().strip())
            return JobState("COMPLETED" if code == 0 else "FAILED", code, source="exit-status")
        return JobState("UNKNOWN", reason="Slurm has no record of the job and it left no exit status")

    def _wait(self, job: SlurmJob) -> JobState:
        """Ask Slurm until the job has ended; tolerate slurmctld's silence up to `silent_limit_s`."""
        silent_since: float | None = None
        while True:
            try:
                state = self._state(job)
                silent_since = None
            except SlurmUnreachable as error:
                now = time.monotonic()
                silent_since = silent_since or now
                if now - silent_since > self.settings.silent_limit_s:
                    return JobState(
                        "UNKNOWN", reason=f"slurmctld did not answer for {now - silent_since:.0f} s"
                    )
                logger.warning("Slurm job %s: %s; asking again", job.job_id, error)
                state = JobState("PENDING")
            if not state.active:
                return state
            time.sleep(self.settings.poll_seconds)

    def _collect(
        self, invocation: StageInvocation, job: SlurmJob, state: JobState, stdout_log: Path, stderr_log: Path
    ) -> tuple[StageEnd, str | None]:
        """Move the job's logs and output to the invocation's folders; how the stage ended and its image."""
        for name, target in (("stdout.log", stdout_log), ("stderr.log", stderr_log)):
            source = job.folder / "logs" / name
            if source.is_file():
                os.replace(source, target)
            else:
                target.touch()
        container: dict[str, Any] = {}
        if (job.folder / "container.json").is_file():
            try:
                container = json.loads((job.folder / "container.json").read_text(encoding="utf-8"))
            except ValueError:
                container = {}
        record = {**job.to_json(), "final": state.to_json()}
        _write_json(invocation.logs / "slurm-job.json", record)
        if (job.folder / "output").is_dir():
            invocation.output_dir.rmdir()  # left empty by prepare_stage_folders: the job's output goes there
            shutil.move(job.folder / "output", invocation.output_dir)
        shutil.rmtree(job.folder, ignore_errors=True)
        note = "no GPU: ran on the CPU" if invocation.limits.gpu and self.settings.gpus == 0 else ""
        return ending(job.job_id, state, _tail_text(stderr_log), container, note), container.get("Image")


def ending(
    job_id: str, state: JobState, stderr: str, container: Mapping[str, Any], note: str = ""
) -> StageEnd:
    """How a job ended, in the harness's terms (module docstring). `stderr` is the end of the job's stderr
    (slurmstepd's words), `container` the docker runtime's final container state ({} otherwise), `note`
    what to say about an ending that is not a crash."""
    if state.state == "TIMEOUT":
        return StageEnd(state.exit_code, state.seconds, timed_out=True, note=note)
    killed = bool((container.get("State") or {}).get("OOMKilled"))
    if state.state == "OUT_OF_MEMORY" or killed or (state.state == "FAILED" and _MEMORY_KILL.search(stderr)):
        return StageEnd(state.exit_code, state.seconds, oom_killed=True, note=note)
    if state.state in ("COMPLETED", "FAILED") and state.exit_code is not None:
        return StageEnd(state.exit_code, state.seconds, note=note)
    reason = f": {state.reason}" if state.reason else ""
    return StageEnd(None, state.seconds, note=f"Slurm job {job_id} ended {state.state}{reason}")


def _tail_text(path: Path, limit: int = 64 * 1024) -> str:
    try:
        with path.open("rb") as stream:
            stream.seek(max(0, path.stat().st_size - limit))
            return stream.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def slurm_runner(settings: SlurmSettings, *, docker: DockerCLI | None = None) -> SlurmRunner:
    """The Slurm runner of `settings`, its runtime resolved (`auto`: docker when the head's engine answers,
    else none, with a warning); a SlurmError when no cluster answers."""
    slurm = SlurmCLI(settings.conf)
    why = slurm.why_not()
    if why is not None:
        raise SlurmError(
            f"the Slurm runner was asked for but {why} (start one with ci/start-slurm.sh, or set SLURM_CONF)"
        )
    docker = docker or DockerCLI()
    runtime = settings.runtime
    if runtime in ("auto", "docker"):
        engine = docker.why_not()
        if engine is None:
            runtime = "docker"
        elif runtime == "docker":
            raise SlurmError(f"the Slurm runner's docker runtime was asked for but {engine}")
        else:
            logger.warning(
                "Slurm runtime auto: %s; the jobs run the stages as plain processes (runtime none), WITHOUT "
                "the container sandbox",
                engine,
            )
            runtime = "none"
    return SlurmRunner(
        replace(settings, runtime=runtime),
        slurm,
        DockerRunner(docker=docker, gpus_available=settings.gpus > 0),
    )
