"""The conformance suite of the method container contract (interface version 1): `hmu check IMAGE`.

    >>> report = run_check("keyword-filter:1")
    >>> print(report.format())
    PASS  describe     keyword_filter v1, interface 1, labels agree, 1 parameter, 1 sweep point
    PASS  unlearn      model/ loads (hash 5955f4ad83d6), result.json ok, 4.1 s
    ...
    >>> report.passed, report.to_json()

Any image is checked the same way, a built-in method's or a submitted one: the suite runs it through the
`DockerRunner`'s sandbox (no network, read-only root, non-root user, no capabilities, memory, pid and
wall-clock limits) on a tiny self-made world (`benchmark.harness.tinyworld`: a random small model, two
prompts, one of them naming the concept), in four containers:

1. `describe`;
2. `unlearn` on the tiny model (the request's `time_budget_s` is the stage's wall-clock limit);
3. `generate` from the unlearned model (from the tiny model itself when unlearn failed, so that generate is
   still checked);
4. the same `generate` request again, for determinism.

The checks, each PASS, FAIL or SKIP (not shown, because a stage it needs failed) with its reason:
- `describe`: one valid `MethodDescription` on stdout, the labels `org.hmu.interface=1` and
  `org.hmu.method=<its name>`, a sweep the bench can expand;
- `unlearn`: `model/` loads in the backbone's format and hashes to what `result.json` says;
- `generate`: `motions.npz` with one finite float32 (frames, 263) array per prompt and repeat, the lengths
  asked for, and `result.json`;
- `determinism`: the second `generate` gives the same motions (to 1e-6);
- `network`: no stage reports a network error (every stage runs with `--network=none`; a method that swallows
  the error silently is not seen, but it reached nothing either);
- `output`: every output folder holds only the contract's entries, plain files within the limits
  (`CheckSettings.output_limits`), no links, and no stage hit the read-only file system (a write outside
  `/hmu/output` and `/tmp`);
- `time budget`: no stage was killed at its wall-clock limit.

The outputs themselves are judged by the harness's own validation (`benchmark.harness.validate`), exactly as
in a bench. The suite passes when every check passes. It runs on the CPU (its requests say `device: cpu`),
so a method that refuses to run without a GPU does not pass it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmark.api.contract import INTERFACE_VERSION, MODEL_DIR, MOTIONS_FILE, MethodDescription, Resources
from benchmark.errors import HMUError
from benchmark.harness.docker import DockerCLI
from benchmark.harness.images import LABEL_INTERFACE, LABEL_METHOD
from benchmark.harness.runners import DockerRunner, ResourceLimits, StageInvocation, StageOutcome
from benchmark.harness.validate import InvalidOutput, OutputLimits, check_tree, expected_entries

REPORT_SCHEMA = "hmu.check-report/1"
"""Schema id of the JSON report (`hmu check --report`, and inside a submission bundle's manifest)."""

CHECKS: tuple[str, ...] = (
    "describe",
    "unlearn",
    "generate",
    "determinism",
    "network",
    "output",
    "time budget",
)
"""The checks, in the order the report lists them."""

DETERMINISM_TOLERANCE = 1e-6
"""Largest absolute difference allowed between the motions of two runs of the same generate request."""

NETWORK_MARKERS: tuple[str, ...] = (
    "network is unreachable",
    "temporary failure in name resolution",
    "name or service not known",
    "no address associated with hostname",
    "failed to establish a new connection",
)
"""How a refused network access shows in a log (Python's socket, urllib, requests), lower case."""

READ_ONLY_MARKERS: tuple[str, ...] = ("read-only file system",)
"""How a write outside the writable places (`/hmu/output`, `/tmp`) shows in a log, lower case."""

Status = Literal["pass", "fail", "skip"]
Echo = Callable[[str], None]


class ConformanceError(HMUError):
    """The suite cannot run at all: no engine, no such image, a work folder that is not empty."""


@dataclass(frozen=True)
class CheckSettings:
    """Limits of the suite's stages on the tiny world."""

    stage_seconds: float = 300.0
    """Wall-clock limit of each stage (the description's `time_limit_s` when lower); minutes on a CPU is
    generous for a small random model."""
    output_limits: OutputLimits = field(
        default_factory=lambda: OutputLimits(max_files=1_000, max_bytes=256 * 2**20)
    )
    """What a stage may write: a tiny model folder is a few MB, so 256 MiB is far more than honest."""
    pids: int = 512
    """Processes and threads of each stage."""

    def __post_init__(self) -> None:
        if self.stage_seconds <= 0 or self.pids < 1:
            raise ValueError(f"stage_seconds and pids must be positive: {self}")


@dataclass(frozen=True)
class CheckResult:
    """One line of the report."""

    name: str
    """One of `CHECKS`."""
    status: Status
    """pass, fail, or skip (not shown: a stage it needs failed)."""
    reason: str
    """Why, in one line."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class StageRun:
    """One container the suite ran."""

    label: str
    """`describe`, `unlearn`, `generate` or `generate again`."""
    state: str
    """The runner's state (ok, failed, timeout, oom, invalid_output, crashed)."""
    seconds: float
    """Wall-clock seconds, container start included."""
    message: str
    """The runner's one line."""
    logs: str
    """The folder of its logs (gone with the work folder unless it was kept)."""

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class CheckReport:
    """What the suite found about one image."""

    image: str
    """The image as it was named."""
    image_id: str
    """The engine's image ID (`sha256:...`): what ran."""
    method: str | None
    """The method's name from its description (None when describe failed)."""
    version: int | None
    """The method's version from its description."""
    date: str
    """When the suite ran (ISO 8601 UTC)."""
    checks: tuple[CheckResult, ...]
    """One result per check, in `CHECKS` order."""
    stages: tuple[StageRun, ...]
    """The containers it ran."""
    settings: dict[str, Any]
    """The limits it ran under."""

    @property
    def passed(self) -> bool:
        return all(check.status == "pass" for check in self.checks)

    def check(self, name: str) -> CheckResult:
        return next(check for check in self.checks if check.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "image": self.image,
            "image_id": self.image_id,
            "method": self.method,
            "version": self.version,
            "interface_version": INTERFACE_VERSION,
            "date": self.date,
            "passed": self.passed,
            "checks": [check.to_json() for check in self.checks],
            "stages": [stage.to_json() for stage in self.stages],
            "settings": self.settings,
        }

    def format(self) -> str:
        """The readable report: a header, one line per check, a verdict."""
        who = f"{self.method} v{self.version}" if self.method else "a method that did not describe itself"
        lines = [f"hmu check {self.image} ({self.image_id[:19]}): {who}"]
        lines += [f"{check.status.upper():<5} {check.name:<12} {check.reason}" for check in self.checks]
        failed = sum(1 for check in self.checks if check.status == "fail")
        skipped = sum(1 for check in self.checks if check.status == "skip")
        if self.passed:
            lines.append(f"PASSED: all {len(self.checks)} checks")
        else:
            lines.append(f"FAILED: {failed} failed, {skipped} not shown, of {len(self.checks)} checks")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- running the suite


@contextmanager
def _work_folder(workdir: Path | None) -> Iterator[Path]:
    """`workdir` (kept; absent or empty), or a temporary folder removed afterwards."""
    if workdir is not None:
        if workdir.exists() and any(workdir.iterdir()):
            raise ConformanceError(f"{workdir}: the work folder must be empty")
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="hmu-check-") as scratch:
        os.chmod(scratch, 0o755)
        yield Path(scratch)


def run_check(
    image: str,
    settings: CheckSettings = CheckSettings(),  # noqa: B008 (frozen: sharing the default is safe)
    *,
    docker: DockerCLI | None = None,
    workdir: Path | None = None,
    echo: Echo | None = None,
) -> CheckReport:
    """Run the suite (module docstring) against `image`; a ConformanceError only when it cannot run at all
    (everything the image does is a check's result). `workdir` keeps the requests, outputs and logs."""
    from benchmark.harness.store import utc_now
    from benchmark.harness.tinyworld import generate_input, make_readable, tiny_model, unlearn_input

    docker = docker or DockerCLI()
    why = docker.why_not()
    if why is not None:
        raise ConformanceError(f"cannot check {image}: {why} (run ci/start-docker.sh)")
    image_id = docker.image_id(image)
    if image_id is None:
        raise ConformanceError(f"no image {image!r} on the engine: build it first (see `hmu check --help`)")
    labels = docker.image_labels(image_id)
    say = echo or (lambda line: None)
    date = utc_now()
    runner = DockerRunner(docker=docker)
    with _work_folder(workdir) as root:

        def stage(label: str, invocation: StageInvocation) -> StageOutcome:
            say(f"check {image}: {label} ...")  # the runner logs how it ended
            return runner.run(invocation)

        base = ResourceLimits(
            memory_bytes=2 * 2**30, cpus=1, pids=settings.pids, wall_seconds=settings.stage_seconds
        )
        described = stage(
            "describe",
            StageInvocation(
                verb="describe",
                output_dir=root / "describe",
                image=image_id,
                limits=base,
                output_limits=settings.output_limits,
            ),
        )
        description = (
            MethodDescription.from_json(described.record, "describe")
            if described.state == "ok" and described.record is not None
            else None
        )
        resources = description.resources if description is not None else Resources()
        budget = min(settings.stage_seconds, resources.time_limit_s)
        limits = ResourceLimits(
            memory_bytes=max(int(resources.memory_gb * 2**30), 256 * 2**20),
            cpus=float(min(resources.cpus, os.cpu_count() or 1)),
            pids=settings.pids,
            wall_seconds=budget,
        )

        def invocation(verb: Literal["unlearn", "generate"], input_dir: Path, name: str) -> StageInvocation:
            return StageInvocation(
                verb=verb,
                input_dir=input_dir,
                output_dir=root / name,
                image=image_id,
                limits=limits,
                output_limits=settings.output_limits,
            )

        model = make_readable(tiny_model(root / "world" / "base"))
        unlearn_in = unlearn_input(root / "unlearn.in", model, time_budget_s=budget)
        unlearned = stage("unlearn", invocation("unlearn", unlearn_in, "unlearn.out"))
        generate_from = unlearned.output_dir / MODEL_DIR if unlearned.state == "ok" else model
        generate_in = generate_input(root / "generate.in", generate_from)
        generated = stage("generate", invocation("generate", generate_in, "generate.out"))
        again = stage("generate again", invocation("generate", generate_in, "generate-again.out"))

        runs = {"describe": described, "unlearn": unlearned, "generate": generated, "generate again": again}
        checks = (
            _check_describe(described, description, labels),
            _check_unlearn(unlearned),
            _check_generate(generated, fallback=unlearned.state != "ok"),
            _check_determinism(generated, again),
            _check_network(runs),
            _check_output(runs, settings.output_limits),
            _check_budget(runs, budget),
        )
        stages = tuple(
            StageRun(
                label, outcome.state, outcome.wall_seconds, outcome.message, str(outcome.stderr_log.parent)
            )
            for label, outcome in runs.items()
        )
    return CheckReport(
        image=image,
        image_id=image_id,
        method=description.name if description is not None else None,
        version=description.version if description is not None else None,
        date=date,
        checks=checks,
        stages=stages,
        settings={
            "stage_seconds": budget,
            "memory_bytes": limits.memory_bytes,
            "cpus": limits.cpus,
            "pids": settings.pids,
            "max_output_files": settings.output_limits.max_files,
            "max_output_bytes": settings.output_limits.max_bytes,
            "kept": str(workdir) if workdir is not None else None,
        },
    )


# ----------------------------------------------------------------------------- the checks


def _failed(outcome: StageOutcome) -> str:
    return f"{outcome.state}: {outcome.message}"


def _check_describe(
    outcome: StageOutcome, description: MethodDescription | None, labels: dict[str, str]
) -> CheckResult:
    from benchmark.api.method_yaml import MethodSpec

    if description is None:
        return CheckResult("describe", "fail", _failed(outcome))
    interface = labels.get(LABEL_INTERFACE)
    if interface != str(INTERFACE_VERSION):
        return CheckResult(
            "describe", "fail", f"label {LABEL_INTERFACE} is {interface!r}, expected '{INTERFACE_VERSION}'"
        )
    method = labels.get(LABEL_METHOD)
    if method != description.name:
        return CheckResult(
            "describe",
            "fail",
            f"describe names the method {description.name!r}, the label {LABEL_METHOD} says {method!r}",
        )
    if not description.backbones:
        return CheckResult("describe", "fail", "no backbone: the description lists none (momask)")
    try:
        runs = MethodSpec.from_description(description).runs()
    except HMUError as error:
        return CheckResult("describe", "fail", f"the bench cannot expand its parameters: {error}")
    parameters = len(description.parameters)
    return CheckResult(
        "describe",
        "pass",
        f"{description.name} v{description.version}, interface {INTERFACE_VERSION}, labels agree, "
        f"{parameters} parameter{'s' * (parameters != 1)}, {len(runs)} sweep point{'s' * (len(runs) != 1)}",
    )


def _check_unlearn(outcome: StageOutcome) -> CheckResult:
    if outcome.state != "ok" or outcome.record is None:
        return CheckResult("unlearn", "fail", _failed(outcome))
    digest = str(outcome.record.get("model_hash"))[:12]
    return CheckResult(
        "unlearn", "pass", f"{MODEL_DIR}/ loads (hash {digest}), result.json ok, {outcome.wall_seconds:.1f} s"
    )


def _check_generate(outcome: StageOutcome, *, fallback: bool) -> CheckResult:
    from benchmark.harness.tinyworld import PROMPTS

    if outcome.state != "ok" or outcome.record is None:
        return CheckResult("generate", "fail", _failed(outcome))
    lengths = " and ".join(str(prompt.length) for prompt in PROMPTS)
    reason = (
        f"{outcome.record.get('num_motions')} motions, one per prompt and repeat ({len(PROMPTS)} prompts), "
        f"float32 ({lengths} frames x 263), finite, {outcome.wall_seconds:.1f} s"
    )
    if fallback:
        reason += " (from the tiny model itself: unlearn failed)"
    return CheckResult("generate", "pass", reason)


def _check_determinism(first: StageOutcome, second: StageOutcome) -> CheckResult:
    import numpy as np

    from benchmark.backbone.generation import read_motions

    for outcome in (first, second):
        if outcome.state != "ok":
            return CheckResult("determinism", "skip", f"not shown: generate ended {outcome.state}")
    one = read_motions(first.output_dir / MOTIONS_FILE)
    two = read_motions(second.output_dir / MOTIONS_FILE)
    if one.keys() != two.keys():
        return CheckResult("determinism", "fail", f"two runs gave other keys: {sorted(one)} vs {sorted(two)}")
    worst_key, worst = "", 0.0
    for key in one:
        if one[key].shape != two[key].shape:
            return CheckResult("determinism", "fail", f"{key}: shape {one[key].shape} then {two[key].shape}")
        difference = float(np.max(np.abs(one[key] - two[key])))
        if difference > worst:
            worst_key, worst = key, difference
    if worst > DETERMINISM_TOLERANCE:
        return CheckResult(
            "determinism",
            "fail",
            f"the same request and seeds gave other motions: {worst_key} differs by up to {worst:.3g}",
        )
    return CheckResult(
        "determinism", "pass", f"the same request and seeds gave the same {len(one)} motions twice"
    )


def _log_line(outcome: StageOutcome, markers: tuple[str, ...], limit: int = 256 * 1024) -> str | None:
    """The first line of the stage's logs (else of its message) holding one of `markers`, or None."""
    texts = []
    for log in (outcome.stderr_log, outcome.stdout_log):
        try:
            with log.open("rb") as stream:
                stream.seek(max(0, log.stat().st_size - limit))
                texts.append(stream.read().decode("utf-8", errors="replace"))
        except OSError:
            continue
    texts.append(outcome.message)
    for text in texts:
        for line in text.splitlines():
            if any(marker in line.lower() for marker in markers):
                return line.strip()[:300]
    return None


def _check_network(runs: dict[str, StageOutcome]) -> CheckResult:
    for label, outcome in runs.items():
        line = _log_line(outcome, NETWORK_MARKERS)
        if line is not None:
            return CheckResult("network", "fail", f"{label} tried to reach the network: {line}")
    return CheckResult(
        "network", "pass", f"{len(runs)} containers ran with --network=none; none reported a network error"
    )


def _check_output(runs: dict[str, StageOutcome], limits: OutputLimits) -> CheckResult:
    largest = 0
    for label, outcome in runs.items():
        verb = "generate" if label == "generate again" else label
        if not outcome.output_dir.is_dir():
            continue  # the stage never started: nothing was written
        try:
            tree = check_tree(outcome.output_dir, limits)
        except InvalidOutput as error:
            return CheckResult("output", "fail", f"{label}: {error}")
        stray = sorted(tree.top_level - expected_entries(verb))  # type: ignore[arg-type]
        if stray:
            return CheckResult("output", "fail", f"{label}: unexpected {stray} in /hmu/output")
        line = _log_line(outcome, READ_ONLY_MARKERS)
        if line is not None:
            return CheckResult(
                "output", "fail", f"{label} tried to write outside /hmu/output and /tmp: {line}"
            )
        largest = max(largest, tree.bytes)
    return CheckResult(
        "output",
        "pass",
        f"only the contract's files, plain, no links; largest output {largest / 2**20:.1f} MiB "
        f"(limit {limits.max_bytes / 2**20:.0f} MiB)",
    )


def _check_budget(runs: dict[str, StageOutcome], budget: float) -> CheckResult:
    for label, outcome in runs.items():
        if outcome.state == "timeout":
            return CheckResult("time budget", "fail", f"{label}: {outcome.message}")
    label, slowest = max(((label, o.wall_seconds) for label, o in runs.items()), key=lambda item: item[1])
    return CheckResult(
        "time budget",
        "pass",
        f"every stage within its limit ({budget:g} s); slowest: {label} {slowest:.1f} s",
    )
