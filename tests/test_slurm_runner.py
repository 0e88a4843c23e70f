"""The Slurm runner against a real one-node cluster (`ci/start-slurm.sh`): a stage through Slurm with the
runtimes none and docker, a memory kill and a time kill recorded as `oom` and `timeout`, a cancelled job as
`crashed`, a head process killed and started again finding its jobs instead of submitting them again, and a
tiny bench (harness_support's world) through Slurm giving the local runner's metrics, two stages at a time.

The cluster is $SLURM_CONF's, else the one `ci/start-slurm.sh` configured (build/slurm/slurm.conf). Without a
cluster these tests skip with the reason; they fail when CI is set. The time kill costs about 80 s: Slurm
counts whole minutes and checks the limits every 30 s or so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from harness_support import bad_methods, built_images, readable, require_engine, tiny_bench

from benchmark.backbone.generation import read_motions
from benchmark.cli.bench import world_arguments
from benchmark.harness.bench import BenchConfig, format_summary, run_bench
from benchmark.harness.runners import LocalRunner, ResourceLimits, StageInvocation, StageOutcome
from benchmark.harness.slurm import JobState, SlurmCLI, SlurmRunner, SlurmSettings, ending, parse_fields
from benchmark.harness.tinyworld import PROMPTS, generate_input, tiny_model, unlearn_input

REPO = Path(__file__).resolve().parents[1]
LIMITS = ResourceLimits(memory_bytes=2 * 2**30, cpus=1, pids=256, wall_seconds=120)


def _conf() -> Path | None:
    if os.environ.get("SLURM_CONF"):
        return Path(os.environ["SLURM_CONF"])
    default = REPO / "build" / "slurm" / "slurm.conf"
    return default if default.is_file() else None


@pytest.fixture(scope="module")
def cluster() -> SlurmCLI:
    """The cluster's clients; skips (loudly) without a cluster, fails when CI is set."""
    slurm = SlurmCLI(_conf())
    why = slurm.why_not()
    if why is not None:
        message = (
            f"no Slurm cluster for the Slurm runner's tests: {why} (start one with: bash ci/start-slurm.sh)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return slurm


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A readable folder: the tiny model, its unlearn and generate requests, the misbehaving methods."""
    root = readable(tmp_path_factory.mktemp("slurm"))
    model = tiny_model(root / "model")
    unlearn_input(root / "unlearn.in", model)
    generate_input(root / "generate.in", model)
    bad_methods(root / "bad")
    return readable(root)


def _runner(cluster: SlurmCLI, jobs: Path, runtime: str = "none", **settings) -> SlurmRunner:
    return SlurmRunner(
        SlurmSettings(runtime=runtime, jobs_dir=jobs, conf=cluster.conf, poll_seconds=0.3, **settings),
        cluster,
    )


def _jobs_named(cluster: SlurmCLI, name: str) -> list[str]:
    """Ids of every job of that name the cluster knows: live ones and those in the jobcomp file."""
    live = cluster.run(["squeue", "--noheader", f"--name={name}", "--format=%i"]).stdout.split()
    lines = Path(cluster.config()["JobCompLoc"]).read_text().splitlines()
    ended = [fields["JobId"] for fields in map(parse_fields, lines) if fields.get("Name") == name]
    return sorted({*live, *ended})


def _record(outcome: StageOutcome) -> dict:
    return json.loads((outcome.stderr_log.parent / "slurm-job.json").read_text())


# ----------------------------------------------------------------------------- stages


@pytest.fixture(scope="module")
def local_motions(world: Path, tmp_path_factory) -> dict[str, np.ndarray]:
    """`original`'s generate on the tiny model under the local runner: what every runtime must give."""
    out = tmp_path_factory.mktemp("local") / "generate.out"
    invocation = StageInvocation(
        verb="generate", input_dir=world / "generate.in", output_dir=out, method="original", limits=LIMITS
    )
    assert LocalRunner().run(invocation).state == "ok"
    return read_motions(out / "motions.npz", prompts=list(PROMPTS))


@pytest.mark.parametrize("runtime", ["none", "docker"])
def test_a_stage_through_slurm(
    runtime: str, cluster: SlurmCLI, world: Path, local_motions, tmp_path: Path
) -> None:
    """unlearn then generate of `original`, each a Slurm job: valid outputs where the invocation asked, the
    local runner's motions, the logs and the job's record kept, the job's folder gone."""
    image = None
    if runtime == "docker":
        require_engine()
        image = built_images().method("original").reference
    runner = _runner(cluster, tmp_path / "jobs", runtime)
    work = readable(tmp_path)
    outcomes = {}
    for verb in ("unlearn", "generate"):
        invocation = StageInvocation(
            verb=verb,
            input_dir=world / f"{verb}.in",
            output_dir=work / f"{verb}.out",
            image=image,
            method="original",
            limits=LIMITS,
        )
        outcomes[verb] = outcome = runner.run(invocation)
        assert outcome.state == "ok", f"{outcome.message}\n{outcome.stderr_log.read_text()[-2000:]}"
        assert outcome.runner == "slurm" and outcome.output_dir == work / f"{verb}.out"
        record = _record(outcome)
        assert record["final"]["state"] == "COMPLETED" and record["runtime"] == runtime
        assert f"Slurm job {record['job_id']} COMPLETED" in outcome.message
        logs = sorted(path.name for path in outcome.stderr_log.parent.iterdir())
        assert logs == ["command.txt", "slurm-job.json", "stderr.log", "stdout.log"]
        command = (outcome.stderr_log.parent / "command.txt").read_text()
        assert "sbatch --job-name=hmu-" in command and "unset MLFLOW_TRACKING_URI" in command
        if runtime == "docker":
            assert "docker run" in command and "--network=none" in command and "--read-only" in command
            assert outcome.image_id and outcome.image_id.startswith("sha256:")
        else:
            assert "-m benchmark.cli.main method " + verb in command
    assert outcomes["unlearn"].record["model_hash"]
    assert list((tmp_path / "jobs").iterdir()) == []  # collected: nothing left behind
    motions = read_motions(work / "generate.out" / "motions.npz", prompts=list(PROMPTS))
    assert motions.keys() == local_motions.keys()
    for key in motions:
        np.testing.assert_allclose(motions[key], local_motions[key], rtol=0, atol=1e-6)


def test_memory_and_time_kills_are_recorded(cluster: SlurmCLI, world: Path, tmp_path: Path) -> None:
    """The hog goes past its 1 GiB (slurmstepd kills it: FAILED, `oom`); the sleeper past its minute (TIMEOUT,
    `timeout`). Both run at once; their outputs are moved aside and their logs kept."""
    runner = _runner(cluster, tmp_path / "jobs")
    bad = world / "bad"

    def run(method: str, **limits) -> StageOutcome:
        invocation = StageInvocation(
            verb="unlearn",
            input_dir=world / "unlearn.in",
            output_dir=tmp_path / method / "out",
            method=method,
            limits=dataclasses.replace(LIMITS, **limits),
            env={"HMU_METHODS_DIR": str(bad)},
            read_only_paths=(bad,),
        )
        return runner.run(invocation)

    began = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        hog = pool.submit(run, "hog", memory_bytes=2**30)
        sleeper = pool.submit(run, "sleeper", wall_seconds=30)
        hog_outcome, sleeper_outcome = hog.result(), sleeper.result()
    print(f"oom after {hog_outcome.wall_seconds:.0f} s, timeout after {time.perf_counter() - began:.0f} s")
    assert hog_outcome.state == "oom", hog_outcome.message
    assert "memory limit of 1024 MiB" in hog_outcome.message and "FAILED" in hog_outcome.message
    assert "Exceeded job memory limit" in hog_outcome.stderr_log.read_text()
    assert sleeper_outcome.state == "timeout", sleeper_outcome.message
    assert "wall-clock limit of 60 s" in sleeper_outcome.message and "TIMEOUT" in sleeper_outcome.message
    assert _record(sleeper_outcome)["final"]["state"] == "TIMEOUT"
    for method, outcome in (("hog", hog_outcome), ("sleeper", sleeper_outcome)):
        assert (
            outcome.output_dir == tmp_path / method / f"out.{outcome.state}" and outcome.output_dir.is_dir()
        )
        assert not (tmp_path / method / "out").exists()


def test_a_cancelled_job_is_a_crash(cluster: SlurmCLI, tmp_path: Path) -> None:
    """scancel while the job waits: `crashed`, Slurm's state in the message."""
    runner = _runner(cluster, tmp_path / "jobs", extra=("--begin=now+60",))
    invocation = StageInvocation(verb="describe", output_dir=tmp_path / "out", method="original")
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(runner.run, invocation)
        record = _wait_for_record(tmp_path / "jobs")
        cluster.cancel(record["job_id"])
        outcome = future.result(timeout=60)
    assert outcome.state == "crashed" and outcome.exit_code is None
    assert f"Slurm job {record['job_id']} ended CANCELLED" in outcome.message


def test_slurm_states_become_harness_states() -> None:
    """What a one-node cluster cannot show (a lost node, a cgroup OOM), and what decides a FAILED job."""
    lost = ending("7", JobState("NODE_FAIL", reason="NodeDown"), "", {})
    assert lost.exit_code is None and lost.note == "Slurm job 7 ended NODE_FAIL: NodeDown"
    assert ending("7", JobState("OUT_OF_MEMORY", exit_code=0), "", {}).oom_killed
    killed = "slurmstepd: error: Detected 1 oom_kill event in StepId=7.batch.\n"
    assert ending("7", JobState("FAILED", exit_code=-9), killed, {}).oom_killed
    failed = ending("7", JobState("FAILED", exit_code=3), "a stage that says oom_kill event\n", {})
    assert failed.exit_code == 3 and not failed.oom_killed
    assert ending("7", JobState("FAILED", exit_code=137), "", {"State": {"OOMKilled": True}}).oom_killed
    assert ending("7", JobState("TIMEOUT", exit_code=0), "", {}).timed_out


# ----------------------------------------------------------------------------- resume


HEAD = """
import sys
from pathlib import Path
from benchmark.harness.runners import StageInvocation
from benchmark.harness.slurm import SlurmCLI, SlurmRunner, SlurmSettings

conf, jobs, out, phase = sys.argv[1:5]
settings = SlurmSettings(runtime="none", jobs_dir=Path(jobs), conf=Path(conf), extra=tuple(sys.argv[5:]))
invocation = StageInvocation(verb="describe", output_dir=Path(out), method="original", env={"PHASE": phase})
SlurmRunner(settings, SlurmCLI(Path(conf))).run(invocation)
"""


def _wait_for_record(jobs: Path, timeout: float = 60.0) -> dict:
    """The first job.json written under `jobs`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        for path in jobs.glob("*/job.json"):
            return json.loads(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"no job.json under {jobs} within {timeout} s")


def _killed_head(cluster: SlurmCLI, jobs: Path, out: Path, phase: str, *extra: str) -> dict:
    """Start a head process that runs a describe stage, kill it (SIGKILL) once its job is submitted; the
    job's record."""
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD, str(cluster.conf), str(jobs), str(out), phase, *extra],
        env={**os.environ, "SLURM_CONF": str(cluster.conf)},
    )
    try:
        record = _wait_for_record(jobs)
    finally:
        head.send_signal(signal.SIGKILL)
        head.wait()
    return record


def test_a_killed_head_finds_its_jobs_again(cluster: SlurmCLI, tmp_path: Path) -> None:
    """A head is killed while its job waits; the next head waits for that same job. Another head is killed,
    its job ends meanwhile; the next head collects it. Nothing is submitted twice."""
    if cluster.conf is None:
        pytest.skip("the head subprocess needs the cluster's slurm.conf path")
    runner = _runner(cluster, tmp_path / "jobs")

    # Held (pending until released): found, and waited for.
    pending = _killed_head(cluster, tmp_path / "jobs", tmp_path / "a", "a", "--hold")
    assert cluster.show_job(pending["job_id"])["JobState"] == "PENDING"
    again = StageInvocation(
        verb="describe", output_dir=tmp_path / "a2", method="original", env={"PHASE": "a"}
    )
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(runner.run, again)
        time.sleep(1.0)
        waited = not future.done()
        cluster.run(["scontrol", "release", pending["job_id"]])
        outcome = future.result(timeout=120)
    assert waited  # for the held job, instead of running a new one
    assert outcome.state == "ok" and outcome.record["name"] == "original", outcome.message
    assert _record(outcome)["job_id"] == pending["job_id"]
    assert _jobs_named(cluster, pending["name"]) == [pending["job_id"]]

    # Ended while no head was there: collected.
    ended = _killed_head(cluster, tmp_path / "jobs", tmp_path / "b", "b")
    while cluster.show_job(ended["job_id"])["JobState"] != "COMPLETED":
        time.sleep(0.3)
    later = StageInvocation(
        verb="describe", output_dir=tmp_path / "b2", method="original", env={"PHASE": "b"}
    )
    outcome = runner.run(later)
    assert outcome.state == "ok", outcome.message
    assert _record(outcome)["job_id"] == ended["job_id"]
    assert _jobs_named(cluster, ended["name"]) == [ended["job_id"]]
    assert list((tmp_path / "jobs").iterdir()) == []


# ----------------------------------------------------------------------------- a tiny bench


def _tiny(tmp_path_factory, results: str, **changes) -> BenchConfig:
    """The tiny bench world (harness_support; its cache is the session's): `original` on seeds 0 and 1, two
    stages at a time, no reference run."""
    world = {
        "methods": ("original",),
        "seeds": (0, 1),
        "runner": "local",
        "track": False,
        "methods_dirs": (REPO / "methods",),
        "reference_method": None,
    }
    return tiny_bench(tmp_path_factory, results, **{**world, **changes})


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start: touching is not overlapping
        running += step
        most = max(most, running)
    return most


def _metric_values(path: Path) -> dict[str, float]:
    metrics = json.loads((path / "metrics.json").read_text())
    return {
        f"{set_name}.{name}": entry["value"]
        for set_name, prompt_set in metrics["prompt_sets"].items()
        for name, entry in prompt_set["metrics"].items()
        if entry["value"] is not None
    }


def _killed_bench(config: BenchConfig) -> dict:
    """`hmu bench` of the tiny world through Slurm (runtime none, `config`'s folders) in a subprocess, killed
    (SIGKILL) once it has submitted a job: that job's record."""
    command = [
        sys.executable,
        "-m",
        "benchmark.cli.main",
        "bench",
        "--method",
        "original",
        "--seeds",
        "0",
        "1",
    ]
    command += ["--runner", "slurm", "--slurm-runtime", "none", "--workers", "2", "--reference", "none"]
    command += ["--fresh", "--no-mlflow", "--no-gifs", "--threads", "1", *world_arguments(config)]
    command += ["--results", str(config.results_dir), "--cache", str(config.cache_root)]
    env = {key: value for key, value in os.environ.items() if key != "HMU_METHODS_DIR"}
    head = subprocess.Popen(
        command,
        env={**env, "SLURM_CONF": str(config.slurm.conf)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _wait_for_record(config.cache_root / "slurm", timeout=300)
    finally:
        head.send_signal(signal.SIGKILL)
        head.wait()


def test_a_tiny_bench_through_slurm(cluster: SlurmCLI, tmp_path_factory) -> None:
    """The same bench through the local runner, then through Slurm (runtime none, `fresh`: the cache keys
    are the local runner's, so without it nothing would run), its first head killed once it has submitted a
    job: the same stage keys, the same metrics, every stage one Slurm job (the killed head's too, found
    again), two at a time on the two CPUs; the head alone logs to MLflow."""
    if cluster.conf is None:
        pytest.skip("the killed head needs the cluster's slurm.conf path")
    lines: list[str] = []
    began = time.perf_counter()
    local = run_bench(_tiny(tmp_path_factory, "results-slurm-baseline"), echo=lines.append)
    local_seconds = time.perf_counter() - began
    assert local.ok, format_summary(local)

    config = _tiny(tmp_path_factory, "results-slurm", fresh=True, track=True)
    config = dataclasses.replace(
        config, runner="slurm", slurm=SlurmSettings(runtime="none", conf=cluster.conf, poll_seconds=0.3)
    )
    killed = _killed_bench(config)
    began = time.perf_counter()
    summary = run_bench(config, echo=lines.append)
    slurm_seconds = time.perf_counter() - began
    assert summary.ok, format_summary(summary)
    print(f"timings, local: {dict(local.timings)}\ntimings, slurm: {dict(summary.timings)}")
    assert dict(summary.executed) == {"unlearn": 2, "generate": 2, "evaluate": 2}
    assert summary.logged == 2 and summary.tracking_uri

    intervals: list[tuple[float, float]] = []
    jobs: list[str] = []
    for ours, theirs in zip(summary.runs, local.runs, strict=True):
        assert ours.run_id == theirs.run_id
        assert [stage.key for stage in ours.stages] == [stage.key for stage in theirs.stages]
        assert all(stage.runner == "slurm" for stage in ours.stages)
        assert _metric_values(ours.path) == _metric_values(theirs.path)
        for kind in ("unlearn", "generate", "evaluate"):
            job = json.loads((ours.path / "logs" / kind / "slurm-job.json").read_text())
            assert job["final"]["state"] == "COMPLETED"
            assert _jobs_named(cluster, job["name"]) == [job["job_id"]]  # submitted once
            jobs.append(job["job_id"])
            fields = cluster.show_job(job["job_id"])
            intervals.append((_epoch(fields["StartTime"]), _epoch(fields["EndTime"])))
    at_once = _most_at_once(intervals)
    print(
        f"tiny bench (6 stages, workers 2): local {local_seconds:.1f} s (stages "
        f"{local.timings['stages']:.1f} s), slurm {slurm_seconds:.1f} s (stages "
        f"{summary.timings['stages']:.1f} s); at most {at_once} Slurm jobs at once"
    )
    assert at_once == 2, "fewer at once: did the cluster run other jobs meanwhile?"
    assert killed["job_id"] in jobs
    assert list((config.cache_root / "slurm").iterdir()) == []


def _epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


# ----------------------------------------------------------------------------- without a cluster


def test_apptainer_command(tmp_path: Path) -> None:
    """The apptainer runtime's job (Apptainer cannot be installed here: the command line is what is
    checked): the image from the template, the contract's folders, no network, a clean environment, --nv
    only for a stage that may use a GPU when GPUs are asked for."""
    (tmp_path / "in").mkdir()
    runner = SlurmRunner(
        SlurmSettings(
            runtime="apptainer", jobs_dir=tmp_path / "jobs", gpus=1, apptainer_image="/sif/{name}.sif"
        )
    )
    invocation = StageInvocation(
        verb="unlearn",
        input_dir=tmp_path / "in",
        output_dir=tmp_path / "out",
        image="hmu/method/lcr:abc",
        method="lcr",
        limits=ResourceLimits(memory_bytes=2**30, cpus=2, wall_seconds=90, gpu=True),
        read_only_paths=(tmp_path,),
    )
    command = runner.stage_command(invocation, "unused")
    assert command[:2] == ["apptainer", "run"] and command[-2:] == ["/sif/hmu_method_lcr_abc.sif", "unlearn"]
    for flag in (
        "--containall",
        "--net",
        "--network=none",
        f"--bind={(tmp_path / 'in').resolve()}:/hmu/input:ro",
        f"--bind={(tmp_path / 'out').resolve()}:/hmu/output:rw",
        f"--bind={tmp_path.resolve()}:{tmp_path}:ro",
        "--env=OMP_NUM_THREADS=2",
        "--env=HMU_METHOD=lcr",
        "--nv",
    ):
        assert flag in command, flag
    arguments = runner.sbatch_arguments(invocation, "hmu-unlearn-x", tmp_path / "jobs" / "x")
    for flag in ("--cpus-per-task=2", "--mem=1024M", "--time=2", "--gres=gpu:1", "--no-requeue"):
        assert flag in arguments, flag
    cpu_only = SlurmRunner(SlurmSettings(runtime="apptainer", jobs_dir=tmp_path / "jobs"))
    assert "--nv" not in cpu_only.stage_command(invocation, "unused")
    assert not any(arg.startswith("--gres") for arg in cpu_only.sbatch_arguments(invocation, "n", tmp_path))
    evaluate = dataclasses.replace(invocation, verb="evaluate", method=None)
    assert cpu_only.stage_command(evaluate, "unused")[-1] == "docker-daemon://hmu/method/lcr:abc"  # no verb


def test_bench_overrides_and_cli_options() -> None:
    """`hmu bench --runner slurm --slurm-*` reaches the settings; overrides replace the method's limits."""
    from benchmark.cli.bench import _slurm
    from benchmark.cli.main import build_parser

    args = build_parser().parse_args(
        [
            "bench",
            "--method",
            "lcr",
            "--runner",
            "slurm",
            "--slurm-partition",
            "gpu",
            "--slurm-account",
            "lab",
            "--slurm-runtime",
            "docker",
            "--slurm-gpus",
            "2",
            "--slurm-cpus",
            "4",
            "--slurm-mem",
            "16",
            "--slurm-time",
            "90",
            "--slurm-extra=--qos=high",
        ]
    )
    settings = _slurm(args)
    assert (settings.partition, settings.account, settings.runtime, settings.gpus) == (
        "gpu",
        "lab",
        "docker",
        2,
    )
    assert settings.extra == ("--qos=high",)
    limits = settings.limits(LIMITS)
    assert (limits.cpus, limits.memory_bytes, limits.wall_seconds) == (4.0, 16 * 2**30, 5400.0)
    assert SlurmSettings().limits(LIMITS) == LIMITS
