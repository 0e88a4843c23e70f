"""Checks of a stage's output folder, done by the harness after every stage, trusting nothing the stage did.

A stage's process (a container, or a local process) may be buggy or hostile: its output folder is read as
untrusted data. First its shape, without following anything (`check_tree`): plain files and folders only (no
symbolic links, no hard links, no fifos, sockets or devices), at most `OutputLimits.max_files` entries,
`max_bytes` in all and `max_depth` levels. Only then are files opened: `result.json` (at most
`max_document_bytes`) must parse, and per verb:

- `describe`: the folder stays empty; stdout is one `MethodDescription`.
- `unlearn`: `result.json` (a `StageResult`, ok) and `model/`, which loads strictly and hashes to the
  result's `model_hash`.
- `generate`: `result.json` (ok) and `motions.npz`, read with `read_motions` against the request's prompts
  (keys, lengths, float32, finite, the feature size of the request's model); `num_motions` matches.
- `evaluate`: `result.json` (the evaluator's, ok) and `metrics.json`, which parses (`report_from_json`).

    >>> checked = validate_output("generate", Path("runs/r/generate/out"), Path("runs/r/generate/in"))
    >>> checked.record["num_motions"]
    InvalidOutput: runs/r/generate/out/motions.npz: ...: holds NaN or infinite values

Every failure is an `InvalidOutput` whose message says which file broke which rule; the runner records it as
the stage state `invalid_output`.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmark.api.contract import MODEL_DIR, MOTIONS_FILE, REQUEST_FILE, RESULT_FILE
from benchmark.errors import HMUError

Verb = Literal["describe", "unlearn", "generate", "evaluate"]
VERBS: tuple[Verb, ...] = ("describe", "unlearn", "generate", "evaluate")

METRICS_FILE = "metrics.json"
"""The evaluator's metrics inside its output folder."""

_EXPECTED: dict[str, frozenset[str]] = {
    "describe": frozenset(),
    "unlearn": frozenset({RESULT_FILE, MODEL_DIR}),
    "generate": frozenset({RESULT_FILE, MOTIONS_FILE}),
    "evaluate": frozenset({RESULT_FILE, METRICS_FILE}),
}
"""What each verb's output folder holds at its top level when the stage succeeded."""


def expected_entries(verb: Verb) -> frozenset[str]:
    """The names a `verb` stage's output folder holds at its top level when it succeeded (a failed stage
    leaves at most `result.json`)."""
    return _EXPECTED[verb]


class InvalidOutput(HMUError):
    """A stage's output breaks the contract; the message names the file and the rule."""


@dataclass(frozen=True)
class OutputLimits:
    """How much a stage may write; past any limit its output is invalid."""

    max_files: int = 10_000
    """Entries (files and folders) in the output folder, all levels."""
    max_bytes: int = 64 * 2**30
    """Total size of the files, in bytes (the published model is about 1 GB)."""
    max_depth: int = 16
    """Folder levels below the output folder."""
    max_document_bytes: int = 16 * 2**20
    """Size of a JSON document read into memory (result.json, metrics.json, the describe output)."""

    def __post_init__(self) -> None:
        for name in ("max_files", "max_bytes", "max_depth", "max_document_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"OutputLimits.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class TreeSummary:
    """What `check_tree` found."""

    entries: int
    """Files and folders, all levels."""
    bytes: int
    """Total size of the files."""
    top_level: frozenset[str]
    """Names directly in the folder."""


@dataclass(frozen=True)
class CheckedOutput:
    """A valid stage output."""

    tree: TreeSummary
    """Its shape."""
    record: dict[str, Any]
    """The parsed result.json (`describe`: the printed description)."""


def check_tree(root: Path, limits: OutputLimits = OutputLimits()) -> TreeSummary:
    """Walk `root` without following anything; an InvalidOutput at the first entry that is not a plain file
    or folder, or as soon as a limit is passed (a folder of a million files is not walked to its end)."""
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidOutput(f"{root}: the output is not a folder")
    entries = 0
    total = 0
    pending: list[tuple[Path, int]] = [(root, 0)]
    top_level: set[str] = set()
    while pending:
        folder, depth = pending.pop()
        with os.scandir(folder) as scan:
            for entry in scan:
                path = Path(entry.path)
                if folder == root:
                    top_level.add(entry.name)
                entries += 1
                if entries > limits.max_files:
                    raise InvalidOutput(f"{root}: more than {limits.max_files} files and folders")
                mode = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(mode.st_mode):
                    target = os.readlink(path)
                    raise InvalidOutput(
                        f"{path}: a symbolic link (to {target}); outputs are plain files only"
                    )
                if stat.S_ISDIR(mode.st_mode):
                    if depth + 1 > limits.max_depth:
                        raise InvalidOutput(f"{path}: deeper than {limits.max_depth} folder levels")
                    pending.append((path, depth + 1))
                    continue
                if not stat.S_ISREG(mode.st_mode):
                    raise InvalidOutput(f"{path}: {_kind(mode.st_mode)}; outputs are plain files only")
                if mode.st_nlink > 1:
                    # A hard link shares its data with a file elsewhere (for a local process, possibly
                    # anywhere on the host): reading or moving it would leak or touch that file.
                    raise InvalidOutput(
                        f"{path}: a hard link ({mode.st_nlink} names); outputs are plain files"
                    )
                total += mode.st_size
                if total > limits.max_bytes:
                    raise InvalidOutput(f"{root}: more than {limits.max_bytes} bytes of files")
    return TreeSummary(entries=entries, bytes=total, top_level=frozenset(top_level))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return f"a special file (mode {mode:o})"


def read_document(path: Path, limits: OutputLimits = OutputLimits()) -> Any:
    """A JSON document written by a stage: a plain file of at most `max_document_bytes`, valid JSON."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise InvalidOutput(f"{path}: missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidOutput(f"{path}: not a plain file")
    if info.st_size > limits.max_document_bytes:
        raise InvalidOutput(f"{path}: {info.st_size} bytes, more than {limits.max_document_bytes}")
    # O_NOFOLLOW: the file was checked above, but a stage process that is still alive could swap in a link.
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(handle, "rb") as stream:
        data = stream.read(limits.max_document_bytes + 1)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidOutput(f"{path}: not valid JSON: {error}") from None


def read_stage_result(output_dir: Path, limits: OutputLimits = OutputLimits()) -> dict[str, Any]:
    """`result.json` of a stage as a dict: for a method stage a valid `StageResult`, for the evaluator a
    `hmu.evaluate-result/1` object with a status. Use after `check_tree`."""
    from benchmark.api.contract import StageResult
    from benchmark.evaluation.schema import RESULT_SCHEMA

    path = output_dir / RESULT_FILE
    data = read_document(path, limits)
    if isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA:
        if data.get("status") not in ("ok", "failed"):
            raise InvalidOutput(f"{path}: field 'status': expected ok or failed, got {data.get('status')!r}")
        return data
    try:
        return StageResult.from_json(data, path).to_json()
    except HMUError as error:
        raise InvalidOutput(str(error)) from None


def validate_output(
    verb: Verb,
    output_dir: Path,
    input_dir: Path | None = None,
    *,
    stdout: Path | None = None,
    limits: OutputLimits = OutputLimits(),
) -> CheckedOutput:
    """Check the output of a stage that exited 0 (module docstring); an InvalidOutput says what is wrong.
    `input_dir` (the request folder) is needed for `generate`, `stdout` (the captured stdout) for
    `describe`."""
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}: expected one of {VERBS}")
    tree = check_tree(output_dir, limits)
    expected = _EXPECTED[verb]
    if tree.top_level != expected:
        stray = sorted(tree.top_level - expected)
        missing = sorted(expected - tree.top_level)
        raise InvalidOutput(
            f"{output_dir}: a {verb} output holds {sorted(expected) or 'nothing'}; "
            + ", ".join(
                part
                for part in (f"unexpected {stray}" if stray else "", f"missing {missing}" if missing else "")
                if part
            )
        )
    if verb == "describe":
        return CheckedOutput(tree, _check_description(stdout, limits))
    record = read_stage_result(output_dir, limits)
    if record.get("status") != "ok":
        raise InvalidOutput(f"{output_dir / RESULT_FILE}: exit status 0 but status {record.get('status')!r}")
    if verb == "evaluate":
        _check_metrics(output_dir / METRICS_FILE, limits)
        return CheckedOutput(tree, record)
    if record.get("verb") != verb:
        raise InvalidOutput(f"{output_dir / RESULT_FILE}: field 'verb': {record.get('verb')!r}, ran {verb}")
    if verb == "unlearn":
        _check_model(output_dir, record)
    else:
        if input_dir is None:
            raise ValueError("validate_output('generate', ...) needs the request folder (input_dir)")
        _check_motions(output_dir, input_dir, record, limits)
    return CheckedOutput(tree, record)


def _check_description(stdout: Path | None, limits: OutputLimits) -> dict[str, Any]:
    from benchmark.api.contract import MethodDescription

    if stdout is None:
        raise ValueError("validate_output('describe', ...) needs the captured stdout")
    data = read_document(stdout, limits)
    try:
        return MethodDescription.from_json(data, stdout).to_json()
    except HMUError as error:
        raise InvalidOutput(f"describe printed no valid description: {error}") from None


def _check_model(output_dir: Path, record: dict[str, Any]) -> None:
    from benchmark.backbone.model import load_model, model_hash

    model = output_dir / MODEL_DIR
    try:
        load_model(model, device="cpu")
        digest = model_hash(model)
    except Exception as error:  # untrusted files: any failure to load is the output's fault
        raise InvalidOutput(f"{model}: does not load: {type(error).__name__}: {error}") from None
    if digest != record.get("model_hash"):
        raise InvalidOutput(f"{model}: hashes to {digest}, result.json says {record.get('model_hash')}")


def _check_motions(output_dir: Path, input_dir: Path, record: dict[str, Any], limits: OutputLimits) -> None:
    from benchmark.api.contract import GenerateRequest
    from benchmark.backbone.generation import read_motions, read_prompts
    from benchmark.backbone.model import read_model_card

    path = output_dir / MOTIONS_FILE
    # np.load decompresses members in memory: bound what they expand to before reading any.
    try:
        with zipfile.ZipFile(path) as archive:
            expanded = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise InvalidOutput(f"{path}: not a readable .npz file: {error}") from None
    if expanded > limits.max_bytes:
        raise InvalidOutput(f"{path}: expands to {expanded} bytes, more than {limits.max_bytes}")
    # The request is the harness's own file: if it cannot be read, that is not the stage's fault.
    request_path = input_dir / REQUEST_FILE
    request = GenerateRequest.from_json(json.loads(request_path.read_text(encoding="utf-8")), request_path)
    request = request.resolved(input_dir)
    prompts = read_prompts(request.prompts)
    feature_dim = read_model_card(request.model).dataset.feature_dim
    try:
        motions = read_motions(path, feature_dim=feature_dim, prompts=prompts)
    except HMUError as error:
        raise InvalidOutput(str(error)) from None
    if record.get("num_motions") != len(motions):
        raise InvalidOutput(
            f"{output_dir / RESULT_FILE}: num_motions {record.get('num_motions')}, "
            f"{path.name} holds {len(motions)}"
        )


def _check_metrics(path: Path, limits: OutputLimits) -> None:
    from benchmark.evaluation.schema import report_from_json

    data = read_document(path, limits)
    try:
        report_from_json(data, path)
    except Exception as error:  # untrusted file: any failure to parse is the output's fault
        raise InvalidOutput(f"{path}: not a valid metrics file: {type(error).__name__}: {error}") from None
