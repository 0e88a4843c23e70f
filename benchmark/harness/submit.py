"""Submitting a method image: the check, the full bench, and a results bundle anyone can verify.

    >>> submission = submit_image("keyword-filter:1", BenchConfig(), Path("bundle"))   # hmu submit
    >>> submission.report.passed, submission.bundle
    >>> verify_bundle(Path("bundle")).problems                                       # hmu bundle verify
    ()

`submit_image` runs the conformance suite (`benchmark.harness.conformance`) on the image; when every check
passes, the bench on it (`BenchConfig.external_images`, in containers: the image's own `describe` gives its
parameters, sweep and resources); then it writes the bundle:

    <bundle>/
      MANIFEST.json        hmu.bundle/1: the method, the image (reference, image ID, repository digests),
                           the harness's git commit, the date, the check report, and the sha256 of every
                           other file of the bundle
      runs/<run_id>/...    the image's run folders as the results store wrote them (run_spec.json,
                           status.json, provenance.json, metrics.json, logs, samples); failed runs too

A leaderboard maintainer runs `verify_bundle` (`hmu bundle verify`): every file listed and unchanged, none
added, no links, the check passed on this very image, and every run folder well formed and made by that
image (its `run_spec.json` and `provenance.json` name the image ID). The bundle then renders with the other
results as it is (`hmu leaderboard --results results --results bundle`: any folder with `runs/` inside).

What the hashes prove: the files are the ones the harness wrote at submission time. They do not prove the
numbers honest: the image ID and each run's spec say exactly what to run again to reproduce a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import HMUError
from benchmark.harness.bench import BenchConfig, BenchSummary, run_bench
from benchmark.harness.conformance import CheckReport, CheckSettings, run_check
from benchmark.harness.docker import DockerCLI
from benchmark.harness.store import git_commit, read_run, utc_now

BUNDLE_SCHEMA = "hmu.bundle/1"
"""Schema id of `MANIFEST.json`."""

MANIFEST_FILE = "MANIFEST.json"
RUNS_DIR = "runs"

_CHECKOUT = Path(__file__).resolve().parents[2]


class SubmitError(HMUError):
    """A submission cannot be made: an output folder that is not empty, a runner without containers."""


@dataclass(frozen=True)
class Submission:
    """What `submit_image` did."""

    report: CheckReport
    """The conformance report."""
    summary: BenchSummary | None
    """The bench's summary; None when the check failed (nothing was run)."""
    bundle: Path | None
    """The bundle written; None when the check failed."""

    @property
    def ok(self) -> bool:
        """The check passed and every run of the bench is ok."""
        return self.summary is not None and self.summary.ok


@dataclass(frozen=True)
class BundleCheck:
    """What `verify_bundle` found."""

    bundle: Path
    """The bundle folder."""
    problems: tuple[str, ...]
    """Every problem, one line each, naming the file; empty when the bundle verifies."""
    runs: tuple[str, ...]
    """The run ids in the bundle."""
    files: int
    """Files checked against the manifest."""
    manifest: dict[str, Any]
    """The parsed MANIFEST.json ({} when it cannot be read)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- submitting


def submit_image(
    image: str,
    config: BenchConfig,
    bundle: Path,
    *,
    check: CheckSettings = CheckSettings(),  # noqa: B008 (frozen: sharing the default is safe)
    docker: DockerCLI | None = None,
    echo: Callable[[str], None] | None = None,
) -> Submission:
    """Check `image`, bench it with `config` (its `methods` and `external_images` are replaced by the
    image's method) and write the bundle to `bundle` (absent or empty). Returns without running the bench
    when a check fails."""
    if bundle.exists() and (not bundle.is_dir() or any(bundle.iterdir())):
        raise SubmitError(f"{bundle}: the bundle folder must be new or empty")
    if config.runner == "local":
        raise SubmitError("a submission runs in containers: use the Docker runner, not --runner local")
    docker = docker or DockerCLI()
    report = run_check(image, check, docker=docker, echo=echo)
    if not report.passed or report.method is None:
        return Submission(report, None, None)
    name = report.method
    # The checked image ID, not the reference: a tag could move between the check and the bench.
    bench = dataclasses.replace(
        config,
        methods=(name,),
        external_images={name: report.image_id},
        runner="docker" if config.runner == "auto" else config.runner,
    )
    summary = run_bench(bench) if echo is None else run_bench(bench, echo=echo)
    runs = [run.path for run in summary.runs if run.method == name]
    inspected = docker.inspect("image", report.image_id) or {}
    image_record = {
        "reference": image,
        "image_id": report.image_id,
        "repo_digests": inspected.get("RepoDigests") or [],
    }
    write_bundle(bundle, report, image_record, runs)
    return Submission(report, summary, bundle)


def write_bundle(bundle: Path, report: CheckReport, image: dict[str, Any], runs: list[Path]) -> None:
    """Copy the run folders into `<bundle>/runs/` and write the manifest; assembled beside `bundle` and
    renamed into place, so a bundle folder is always complete."""
    bundle.parent.mkdir(parents=True, exist_ok=True)
    if bundle.is_dir():
        bundle.rmdir()  # empty (checked by the caller): replaced by the assembled folder
    temporary = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.", dir=bundle.parent))
    try:
        for run in runs:
            shutil.copytree(run, temporary / RUNS_DIR / run.name, symlinks=True)
        files = {
            path.relative_to(temporary).as_posix(): sha256_file(path)
            for path in sorted(temporary.rglob("*"))
            if path.is_file()
        }
        manifest = {
            "schema": BUNDLE_SCHEMA,
            "created": utc_now(),
            "method": {"name": report.method, "version": report.version},
            "image": image,
            "harness": {"git": git_commit(_CHECKOUT)},
            "runs": sorted(run.name for run in runs),
            "check": report.to_json(),
            "files": files,
        }
        (temporary / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        os.chmod(temporary, 0o755)
        os.rename(temporary, bundle)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


# ----------------------------------------------------------------------------- verifying


def verify_bundle(bundle: Path) -> BundleCheck:
    """Check a bundle (module docstring); every problem is listed, none raised."""
    problems: list[str] = []
    path = bundle / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return BundleCheck(bundle, (f"{path}: not a readable manifest: {error}",), (), 0, {})
    if not isinstance(manifest, dict) or manifest.get("schema") != BUNDLE_SCHEMA:
        schema = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        return BundleCheck(bundle, (f"{path}: schema {schema!r}, expected {BUNDLE_SCHEMA!r}",), (), 0, {})
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    image_id = (manifest.get("image") or {}).get("image_id")
    method = (manifest.get("method") or {}).get("name")

    found: dict[str, Path] = {}
    for entry in sorted(bundle.rglob("*")):
        relative = entry.relative_to(bundle).as_posix()
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            problems.append(f"{relative}: a symbolic link (a bundle holds plain files only)")
        elif stat.S_ISREG(mode) and relative != MANIFEST_FILE:
            found[relative] = entry
        elif not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            problems.append(f"{relative}: not a plain file")
    for relative in sorted(set(listed) - set(found)):
        problems.append(f"{relative}: listed in {MANIFEST_FILE} but missing")
    for relative in sorted(set(found) - set(listed)):
        problems.append(f"{relative}: not listed in {MANIFEST_FILE} (added after submission)")
    for relative in sorted(set(found) & set(listed)):
        if sha256_file(found[relative]) != listed[relative]:
            problems.append(f"{relative}: sha256 differs from {MANIFEST_FILE} (changed after submission)")

    check = manifest.get("check") or {}
    if check.get("passed") is not True:
        problems.append(f"{MANIFEST_FILE}: the conformance check did not pass")
    if check.get("image_id") != image_id:
        problems.append(f"{MANIFEST_FILE}: the check ran on {check.get('image_id')}, the image is {image_id}")

    runs_dir = bundle / RUNS_DIR
    runs = tuple(sorted(p.name for p in runs_dir.iterdir() if p.is_dir())) if runs_dir.is_dir() else ()
    if not runs:
        problems.append(f"{RUNS_DIR}/: no run folder")
    if list(runs) != list(manifest.get("runs") or []):
        problems.append(f"{MANIFEST_FILE}: lists runs {manifest.get('runs')}, the bundle holds {list(runs)}")
    for run_id in runs:
        problems += _run_problems(runs_dir / run_id, method, image_id)
    return BundleCheck(bundle, tuple(problems), runs, len(found), manifest)


def _run_problems(folder: Path, method: str | None, image_id: str | None) -> list[str]:
    """Why a run folder is not a run of the submitted image (empty when it is)."""
    where = f"{RUNS_DIR}/{folder.name}"
    try:
        run = read_run(folder)
    except HMUError as error:
        return [f"{where}: not a valid run folder: {error}"]
    problems = []
    if run.spec.method != method:
        problems.append(f"{where}: a run of method {run.spec.method!r}, the bundle submits {method!r}")
    if run.spec.method_image.digest != image_id:
        problems.append(f"{where}/run_spec.json: method image {run.spec.method_image.digest}, not {image_id}")
    provenance_image = ((run.provenance.get("images") or {}).get("method") or {}).get("image_id")
    if provenance_image != image_id:
        problems.append(f"{where}/provenance.json: method image {provenance_image}, not {image_id}")
    return problems
