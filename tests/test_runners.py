"""Runners on the real engine and locally: the sandbox seen from inside a container, `original` end to end
under both runners (the same motions), and every way a stage can fail recorded, never raised.

Without a Docker engine the container tests skip with the reason (they fail when CI is set); the local
runner's tests run everywhere.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from harness_support import bad_methods, built_images, readable, require_engine

from benchmark.api.contract import MethodDescription, StageResult
from benchmark.backbone.generation import read_motions
from benchmark.backbone.model import load_model
from benchmark.harness.docker import DockerCLI
from benchmark.harness.images import ImageSet
from benchmark.harness.runners import (
    DockerRunner,
    LocalRunner,
    ResourceLimits,
    RunnerError,
    StageInvocation,
    StageOutcome,
    select_runner,
)
from benchmark.harness.tinyworld import PROMPTS, generate_input, tiny_model, unlearn_input

LIMITS = ResourceLimits(memory_bytes=2 * 2**30, cpus=1, pids=256, wall_seconds=120)


@pytest.fixture(scope="session")
def images() -> ImageSet:
    return built_images()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return readable(tiny_model(tmp_path_factory.mktemp("model") / "base"))


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    return bad_methods(tmp_path_factory.mktemp("bad_methods"))


@pytest.fixture
def work(tmp_path) -> Path:
    return readable(tmp_path)


def _bad(verb: str, name: str, input_dir: Path, output: Path, bad_dir: Path, image: str | None, **limits):
    return StageInvocation(
        verb=verb,
        input_dir=input_dir,
        output_dir=output,
        image=image,
        method=name,
        limits=ResourceLimits(**{**LIMITS.__dict__, **limits}),
        env={"HMU_METHODS_DIR": str(bad_dir)},
        read_only_paths=(bad_dir,),
    )


# ----------------------------------------------------------------------------- images and the sandbox


def test_original_image_is_labelled(images: ImageSet) -> None:
    docker = DockerCLI()
    labels = docker.image_labels(images.method("original").reference)
    assert labels["org.hmu.interface"] == "1" and labels["org.hmu.method"] == "original"
    config = docker.inspect("image", images.method("original").reference)["Config"]
    assert config["Entrypoint"] == ["hmu", "method"] and config["User"] == "1000:1000"
    assert "HMU_METHOD=original" in config["Env"] and "OMP_NUM_THREADS=1" in config["Env"]


PROBE = r"""
import errno, json, os, socket
report = {}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    report["network"] = "connected"
except OSError as error:
    report["network"] = f"{type(error).__name__}: {error}"
report["interfaces"] = sorted(os.listdir("/sys/class/net"))
def writable(path):
    try:
        with open(path, "w") as stream:
            stream.write("x")
        return True
    except OSError as error:
        return errno.errorcode[error.errno]
report["root"] = writable("/opt/probe")
report["etc"] = writable("/etc/probe")
report["input"] = writable("/hmu/input/probe")
report["output"] = writable("/hmu/output/probe")
report["tmp"] = writable("/tmp/probe")
report["uid"] = [os.getuid(), os.getgid(), os.geteuid()]
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
report["CapEff"] = status["CapEff"].strip()
report["NoNewPrivs"] = status["NoNewPrivs"].strip()
report["tmp_mount"] = [line.split()[2] for line in open("/proc/mounts") if line.split()[1] == "/tmp"]
for name in ("memory/memory.limit_in_bytes", "memory.max", "pids/pids.max", "pids.max"):
    path = "/sys/fs/cgroup/" + name
    if os.path.exists(path):
        report[name.split("/")[-1].split(".")[0]] = open(path).read().strip()
report["omp"] = os.environ.get("OMP_NUM_THREADS")
print(json.dumps(report))
"""


def test_sandbox_seen_from_inside(images: ImageSet, work: Path) -> None:
    """The method base image run with exactly the runner's flags, probing its own limits."""
    (work / "in").mkdir()
    (work / "in" / "request.json").write_text("{}")
    readable(work / "in")
    (work / "out").mkdir()
    runner = DockerRunner()
    invocation = StageInvocation(
        verb="describe", input_dir=work / "in", output_dir=work / "out", image="unused", limits=LIMITS
    )
    runner._grant_output(work / "out")
    flags = runner.sandbox_flags(invocation)
    command = ["run", "--rm", *flags, "--entrypoint", "python", images.method_base.reference, "-c", PROBE]
    result = DockerCLI().run(command, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["network"].startswith("OSError") and "unreachable" in report["network"].lower(), report
    assert report["interfaces"] == ["lo"]
    assert report["root"] == "EROFS" and report["etc"] == "EROFS" and report["input"] == "EROFS"
    assert report["output"] is True and report["tmp"] is True and report["tmp_mount"] == ["tmpfs"]
    assert report["uid"] == [1000, 1000, 1000]
    assert int(report["CapEff"], 16) == 0 and report["NoNewPrivs"] == "1"
    assert int(report.get("memory") or report.get("max")) == LIMITS.memory_bytes
    assert report["pids"] == str(LIMITS.pids)
    assert report["omp"] == "1"


# ----------------------------------------------------------------------------- original, end to end


def test_describe_through_docker(images: ImageSet, work: Path) -> None:
    invocation = StageInvocation(
        verb="describe", output_dir=work / "describe", image=images.method("original").reference
    )
    began = time.perf_counter()
    outcome = DockerRunner().run(invocation)
    print(f"describe through Docker: {time.perf_counter() - began:.2f} s")
    assert outcome.state == "ok", outcome.message
    description = MethodDescription.from_json(json.loads(outcome.stdout_log.read_text()), "stdout")
    assert (description.name, description.interface_version) == ("original", 1)
    assert outcome.image_id == images.method("original").image_id
    assert list((work / "describe").iterdir()) == []


def _unlearn_then_generate(runner, image: str | None, model: Path, root: Path) -> tuple[StageOutcome, ...]:
    unlearn = runner.run(
        StageInvocation(
            verb="unlearn",
            input_dir=unlearn_input(root / "unlearn.in", model),
            output_dir=root / "unlearn.out",
            image=image,
            method="original",
            limits=LIMITS,
        )
    )
    assert unlearn.state == "ok", f"{unlearn.message}\n{unlearn.stderr_log.read_text()[-3000:]}"
    generate = runner.run(
        StageInvocation(
            verb="generate",
            input_dir=generate_input(root / "generate.in", root / "unlearn.out" / "model"),
            output_dir=root / "generate.out",
            image=image,
            method="original",
            limits=LIMITS,
        )
    )
    assert generate.state == "ok", f"{generate.message}\n{generate.stderr_log.read_text()[-3000:]}"
    return unlearn, generate


def test_original_docker_and_local_agree(images: ImageSet, model: Path, work: Path) -> None:
    """unlearn then generate under Docker and locally: valid outputs, the same model, the same motions."""
    timings = {}
    outcomes = {}
    for name, runner, image in (
        ("docker", DockerRunner(), images.method("original").reference),
        ("local", LocalRunner(), None),
    ):
        began = time.perf_counter()
        (work / name).mkdir()
        outcomes[name] = _unlearn_then_generate(runner, image, model, readable(work / name))
        timings[name] = time.perf_counter() - began
    print(f"unlearn+generate: docker {timings['docker']:.1f} s, local {timings['local']:.1f} s")
    (docker_unlearn, docker_generate), (local_unlearn, local_generate) = outcomes["docker"], outcomes["local"]
    # Each runner measured the stage's memory: a Python with torch loaded, under the stage's limit.
    for outcome in (*outcomes["docker"], *outcomes["local"]):
        assert outcome.peak_memory_bytes is not None, outcome.runner
        assert 100 * 2**20 < outcome.peak_memory_bytes <= LIMITS.memory_bytes, outcome.runner
    assert docker_unlearn.record["model_hash"] == local_unlearn.record["model_hash"]
    for outcome in (docker_generate, local_generate):
        result = StageResult.from_json(outcome.record, "result.json")
        assert result.status == "ok" and result.num_motions == 3
    docker_motions = read_motions(work / "docker" / "generate.out" / "motions.npz", prompts=PROMPTS)
    local_motions = read_motions(work / "local" / "generate.out" / "motions.npz", prompts=PROMPTS)
    assert docker_motions.keys() == local_motions.keys()
    for key in docker_motions:
        np.testing.assert_allclose(docker_motions[key], local_motions[key], rtol=0, atol=1e-6)
    load_model(work / "docker" / "unlearn.out" / "model")
    assert sorted(p.name for p in (work / "docker" / "unlearn.out.logs").iterdir()) == [
        "command.txt",
        "stderr.log",
        "stdout.log",
    ]


# ----------------------------------------------------------------------------- failures, recorded


@pytest.fixture(scope="module")
def unlearn_in(tmp_path_factory, model) -> Path:
    return unlearn_input(tmp_path_factory.mktemp("bad_unlearn") / "in", model)


@pytest.fixture(scope="module")
def generate_in(tmp_path_factory, model) -> Path:
    return generate_input(tmp_path_factory.mktemp("bad_generate") / "in", model)


CASES = [
    # (method, verb, expected state, extra limits, a word the message or logs hold)
    ("sleeper", "unlearn", "timeout", {"wall_seconds": 6}, "wall-clock"),
    ("hog", "unlearn", "oom", {"memory_bytes": 1 * 2**30}, "memory"),
    ("nan_honest", "generate", "failed", {}, "NaN"),
    ("nan_liar", "generate", "invalid_output", {}, "NaN"),
    ("linker", "unlearn", "invalid_output", {}, "/etc/passwd"),
    ("exit3", "unlearn", "crashed", {}, "exit status 3"),
]


@pytest.mark.slow
@pytest.mark.parametrize("runner_kind", ["docker", "local"])
@pytest.mark.parametrize(
    ("method", "verb", "state", "limits", "word"), CASES, ids=[case[0] for case in CASES]
)
def test_failures_are_recorded(
    runner_kind, method, verb, state, limits, word, unlearn_in, generate_in, bad_dir, work, request
) -> None:
    if runner_kind == "docker":
        image = request.getfixturevalue("images").method("original").reference
        runner = DockerRunner()
    else:
        image, runner = None, LocalRunner()
    input_dir = unlearn_in if verb == "unlearn" else generate_in
    output = work / "out"
    outcome = runner.run(_bad(verb, method, input_dir, output, bad_dir, image, **limits))
    assert outcome.state == state, f"{outcome.message}\n{outcome.stderr_log.read_text()[-2000:]}"
    assert word in outcome.message, outcome.message
    if "wall_seconds" in limits:
        assert outcome.wall_seconds < limits["wall_seconds"] + 10
    # Nothing lost: the output folder was moved aside, the logs are there.
    assert not output.exists() and outcome.output_dir == work / f"out.{state}" and outcome.output_dir.is_dir()
    assert outcome.stderr_log.is_file()
    if method == "linker":
        assert (outcome.output_dir / "passwd").is_symlink()


def test_network_is_off_in_docker(images: ImageSet, unlearn_in: Path, bad_dir: Path, work: Path) -> None:
    """A method that tries the network fails, the error in its result and its log (never run locally: the
    local runner has the host's network)."""
    image = images.method("original").reference
    outcome = DockerRunner().run(_bad("unlearn", "network", unlearn_in, work / "out", bad_dir, image))
    assert outcome.state == "failed", outcome.message
    assert "unreachable" in outcome.message.lower()
    assert "unreachable" in outcome.stderr_log.read_text().lower()


def test_missing_image_is_a_crash_not_an_exception(work: Path) -> None:
    require_engine()
    outcome = DockerRunner().run(
        StageInvocation(verb="describe", output_dir=work / "out", image="hmu/no-such-image:none")
    )
    assert outcome.state == "crashed" and outcome.exit_code is None
    assert "no-such-image" in outcome.message or "No such image" in outcome.message


# ----------------------------------------------------------------------------- the local runner alone


def test_local_describe_and_unknown_method(work: Path) -> None:
    ok = LocalRunner().run(StageInvocation(verb="describe", output_dir=work / "a", method="original"))
    assert ok.state == "ok" and ok.record["name"] == "original"
    bad = LocalRunner().run(StageInvocation(verb="describe", output_dir=work / "b", method="orignal"))
    assert bad.state == "failed" and "original" in bad.message  # the did-you-mean from the log


def test_relative_folders_are_the_callers(work: Path, monkeypatch) -> None:
    """A relative output folder means the caller's working folder, not the stage's scratch folder."""
    monkeypatch.chdir(work)
    ok = LocalRunner().run(StageInvocation(verb="describe", output_dir=Path("relative"), method="original"))
    assert ok.state == "ok", ok.message
    assert ok.output_dir == work / "relative" and ok.record["name"] == "original"
    assert ok.stdout_log == work / "relative.logs" / "stdout.log"


def test_invocation_errors_raise(work: Path) -> None:
    with pytest.raises(RunnerError, match="needs an input folder"):
        StageInvocation(verb="unlearn", output_dir=work / "out")
    (work / "full").mkdir()
    (work / "full" / "x").write_text("x")
    with pytest.raises(RunnerError, match="must be empty"):
        LocalRunner().run(StageInvocation(verb="describe", output_dir=work / "full", method="original"))
    with pytest.raises(RunnerError, match="needs an image"):
        DockerRunner().run(StageInvocation(verb="describe", output_dir=work / "out2"))


def test_auto_without_engine_runs_locally_and_says_so(caplog) -> None:
    missing = DockerCLI(binary="/nonexistent/docker")
    with caplog.at_level(logging.WARNING):
        runner = select_runner("auto", docker=missing)
    assert isinstance(runner, LocalRunner)
    assert "WITHOUT the container sandbox" in caplog.text
    with pytest.raises(RunnerError, match="Docker runner was asked for"):
        select_runner("docker", docker=missing)
    assert isinstance(select_runner("local", docker=missing), LocalRunner)


def test_auto_with_engine_is_docker() -> None:
    require_engine()
    assert isinstance(select_runner("auto"), DockerRunner)


def test_limits_from_method_resources() -> None:
    from benchmark.api.contract import Resources

    limits = ResourceLimits.from_resources(Resources(cpus=2, memory_gb=1.5, gpu="none", time_limit_s=60))
    assert (limits.memory_bytes, limits.cpus, limits.wall_seconds, limits.gpu) == (
        int(1.5 * 2**30),
        2.0,
        60.0,
        False,
    )
    assert limits.threads == 2
    with pytest.raises(ValueError):
        ResourceLimits(cpus=0)


def test_docker_flags_are_the_sandbox(work: Path) -> None:
    (work / "in").mkdir()
    invocation = StageInvocation(
        verb="unlearn",
        input_dir=work / "in",
        output_dir=work / "out",
        image="x",
        method="original",
        limits=ResourceLimits(memory_bytes=2**30, cpus=1.5, pids=64, gpu=True),
        env={"EXTRA": "1"},
    )
    flags = DockerRunner(user="1000:1000", gpus_available=False).sandbox_flags(invocation)
    for flag in (
        "--network=none",
        "--read-only",
        "--user=1000:1000",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--memory={2**30}",
        f"--memory-swap={2**30}",
        "--cpus=1.5",
        "--pids-limit=64",
        f"--mount=type=bind,source={(work / 'in').resolve()},target=/hmu/input,readonly",
        f"--mount=type=bind,source={(work / 'out').resolve()},target=/hmu/output",
        "--env=OMP_NUM_THREADS=1",
        "--env=HMU_METHOD=original",
        "--env=EXTRA=1",
    ):
        assert flag in flags, flag
    assert any(flag.startswith("--tmpfs=/tmp:") for flag in flags)
    assert "--gpus=all" not in flags
    with_gpu = DockerRunner(user="1000:1000", gpus_available=True).sandbox_flags(invocation)
    assert "--gpus=all" in with_gpu
