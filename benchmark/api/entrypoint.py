"""The method container's entrypoint: one code path serves `describe`, `unlearn` and `generate` for any
method folder (`hmu method <verb> --method NAME`; the image sets `HMU_METHOD`).

    >>> print_description("original")                                  # describe: one JSON line on stdout
    >>> exit_code = run_stage("unlearn", "original", Path("/hmu/input"), Path("/hmu/output"))

`unlearn`: reads `<input>/request.json` (`UnlearnRequest`), loads the base model on the device (the
request's, else cuda when there is one), fills in the method.yaml defaults of missing hyper-parameters, seeds
Python, numpy and torch with the request's seed, calls `Method.unlearn` with an empty scratch folder, refuses
non-finite weights, saves the backbone as `<output>/model/` with provenance (method, version, parameters,
the parent's hash, task, seed and the method's record: `UnlearnProvenance`), loads it back strictly and
hashes it. The hash differs from the base model's even when the weights do not (`original`): the provenance
is part of the hash, and an unlearned model is a different artifact with its own lineage.

`generate`: reads `<input>/request.json` (`GenerateRequest`) and its prompt file, loads the model, seeds,
calls `Method.generate`, writes `<output>/motions.npz` and reads it back against the prompts (keys, lengths,
float32, finite).

Both write `<output>/result.json` (`StageResult`) last, through a temporary file renamed into place, also
when they fail. Exit status:
- 0: ok, and every output was checked;
- 1: the method failed (an exception in its code, or an output that did not pass the checks);
- 2: the input is unusable (unknown method, broken method folder, malformed request, missing model).
On a failure the verb removes what it wrote, and result.json says why (`error`, `error_type`, and for an
exception in the method's code where it was raised); the traceback goes to the log (stderr). An output
folder that is not empty is refused before anything is written.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np
import torch

from benchmark.api.contract import (
    INTERFACE_VERSION,
    MODEL_DIR,
    MOTIONS_FILE,
    REQUEST_FILE,
    RESULT_FILE,
    ContractError,
    GenerateRequest,
    MethodDescription,
    StageResult,
    UnlearnProvenance,
    UnlearnRequest,
    plain_json,
    read_json,
    write_json,
)
from benchmark.api.method import Method, UnlearnOutcome
from benchmark.api.method_yaml import METHOD_YAML
from benchmark.api.registry import MethodEntry, discover_methods
from benchmark.backbone.generation import read_motions, read_prompts, write_motions
from benchmark.backbone.model import Backbone, LoadedModel, load_model, model_hash, resolve_device, save_model
from benchmark.errors import ConfigError, HMUError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_METHOD_FAILED = 1
"""The method raised, or its output did not pass the checks."""
EXIT_BAD_INPUT = 2
"""The method or the request cannot be used (the same status as `hmu` for any user error)."""

Verb = Literal["unlearn", "generate"]


class OutputCheckError(HMUError):
    """A method's output breaks the contract: non-finite weights, wrong keys or shapes, stray files."""


def describe_entry(entry: MethodEntry) -> MethodDescription:
    """Build the method and return its `describe()`, checked against its method.yaml."""
    method = entry.build()
    try:
        description = method.describe()
    except Exception as error:  # the method's code: report it as the method's fault, by name
        raise HMUError(
            f"method {entry.spec.name}: describe() failed: {type(error).__name__}: {error}"
        ) from error
    expected = entry.spec.description_record()
    if description != expected:
        raise HMUError(
            f"method {entry.spec.name}: describe() differs from {entry.folder / METHOD_YAML}: "
            f"{description.to_json() if isinstance(description, MethodDescription) else description!r} != "
            f"{expected.to_json()}"
        )
    return description


def print_description(
    name: str, methods_dirs: Sequence[Path] | Path | None = None, *, stream: IO[str] | None = None
) -> int:
    """The `describe` verb: print the method's description as one line of JSON."""
    description = describe_entry(discover_methods(methods_dirs).get(name))
    print(json.dumps(description.to_json()), file=stream or sys.stdout)
    return EXIT_OK


# ----------------------------------------------------------------------------- unlearn and generate


@dataclass
class _Run:
    """What result.json reports, filled in as the verb goes (one per call, never shared)."""

    verb: Verb
    method: str
    began: float
    method_version: int | None = None
    device: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def result(self, **outcome: Any) -> StageResult:
        return StageResult(
            verb=self.verb,
            method=self.method,
            method_version=self.method_version,
            interface_version=INTERFACE_VERSION,
            wall_seconds=round(time.perf_counter() - self.began, 4),
            device=self.device,
            parameters=self.parameters,
            messages=tuple(self.messages),
            **outcome,
        )


@dataclass(frozen=True)
class _Job:
    """A verb ready to run: the checked inputs, and the work that writes and checks the outputs."""

    work: Callable[[Path], dict[str, Any]]
    """Runs the method, writes its outputs into the output folder, checks them and returns the result
    fields it knows (`outputs`, `model_hash` or `num_motions`)."""
    outputs: tuple[str, ...]
    """The entries `work` may create in the output folder (removed again if it fails)."""


def run_stage(
    verb: str,
    method_name: str,
    input_dir: Path,
    output_dir: Path,
    methods_dirs: Sequence[Path] | Path | None = None,
) -> int:
    """Run `unlearn` or `generate` of a method on `input_dir`/request.json into `output_dir`; returns the
    exit status (module docstring). result.json is written whatever happens, except when `output_dir` is
    not empty (an HMUError: nothing is overwritten)."""
    if verb not in ("unlearn", "generate"):
        raise HMUError(f"unknown verb {verb!r}: expected unlearn or generate (describe prints, see describe)")
    began = time.perf_counter()
    _prepare_output(output_dir)
    run = _Run(verb=cast(Verb, verb), method=method_name, began=began)
    try:
        job = _prepare(run, input_dir, methods_dirs)
    except Exception as error:  # user code (a method's constructor) may raise anything
        code = EXIT_BAD_INPUT if isinstance(error, HMUError) else EXIT_METHOD_FAILED
        return _fail(run, output_dir, error, code)
    try:
        fields = job.work(output_dir)
        _check_output_tree(output_dir, fields["outputs"])
    except Exception as error:  # the method's code may raise anything: it is recorded, never a crash
        for name in job.outputs:
            _remove(output_dir / name)
        return _fail(run, output_dir, error, EXIT_METHOD_FAILED)
    result = run.result(status="ok", **fields)
    write_json(output_dir / RESULT_FILE, result.to_json())
    logger.info("%s %s: ok in %.1f s (%s)", verb, method_name, result.wall_seconds, ", ".join(result.outputs))
    return EXIT_OK


def _prepare(run: _Run, input_dir: Path, methods_dirs: Sequence[Path] | Path | None) -> _Job:
    """Everything before the method runs: find and build it, read and check the request, load the model."""
    method = discover_methods(methods_dirs).get(run.method).build()
    run.method_version = method.spec.version
    request_path = input_dir / REQUEST_FILE
    data = read_json(request_path)
    if run.verb == "unlearn":
        return _prepare_unlearn(run, method, UnlearnRequest.from_json(data, request_path), input_dir)
    return _prepare_generate(run, method, GenerateRequest.from_json(data, request_path), input_dir)


def _in_request(request_path: Path, check: Callable[[], Any]) -> Any:
    """`check()`, with a ContractError turned into a ConfigError naming the request file."""
    try:
        return check()
    except ContractError as error:
        raise ConfigError(request_path, error.field, error.message) from None


def _existing(
    request_path: Path, field_name: str, path: Path | None, kind: Literal["file", "folder"]
) -> None:
    if path is None:
        return
    exists = path.is_dir() if kind == "folder" else path.is_file()
    if not exists:
        raise ConfigError(request_path, field_name, f"{path} is not a {kind}")


def _prepare_unlearn(run: _Run, method: Method, request: UnlearnRequest, input_dir: Path) -> _Job:
    request_path = input_dir / REQUEST_FILE
    request = request.resolved(input_dir)
    parameters = _in_request(request_path, lambda: method.spec.resolve_parameters(request.parameters))
    request = replace(request, parameters=parameters)
    run.parameters = parameters
    _existing(request_path, "base_model", request.base_model, "folder")
    _existing(request_path, "data_dir", request.data_dir, "folder")
    _existing(request_path, "clip_weights", request.clip_weights, "file")
    device = _device(method, request.device)
    run.device = str(device)
    parent_hash = model_hash(request.base_model)
    model = load_model(request.base_model, device=device)

    def work(output_dir: Path) -> dict[str, Any]:
        _seed_everything(request.seed)
        with tempfile.TemporaryDirectory(prefix=f"hmu-{method.spec.name}-") as scratch:
            outcome = method.unlearn(model, request, Path(scratch))
        backbone = _checked_outcome(outcome)
        run.messages.extend(outcome.notes)
        provenance = UnlearnProvenance(
            kind="unlearned",
            method=method.spec.name,
            method_version=method.spec.version,
            interface_version=INTERFACE_VERSION,
            parameters=parameters,
            parent=parent_hash,
            task=request.task,
            concept=request.concept.name,
            seed=request.seed,
            record=_plain_record(outcome.record),
        )
        _budget_note(run, request.time_budget_s)
        return _save_and_check_model(backbone, model, provenance, output_dir / MODEL_DIR)

    return _Job(work=work, outputs=(MODEL_DIR,))


def _prepare_generate(run: _Run, method: Method, request: GenerateRequest, input_dir: Path) -> _Job:
    request_path = input_dir / REQUEST_FILE
    request = request.resolved(input_dir)
    _in_request(request_path, request.generation_settings)
    _existing(request_path, "model", request.model, "folder")
    _existing(request_path, "prompts", request.prompts, "file")
    _existing(request_path, "clip_weights", request.clip_weights, "file")
    prompts = read_prompts(request.prompts)  # before the model: a bad prompt file fails fast
    device = _device(method, request.device)
    run.device = str(device)
    model = load_model(request.model, device=device)
    feature_dim = model.card.dataset.feature_dim

    def work(output_dir: Path) -> dict[str, Any]:
        _seed_everything(request.seed)
        motions = method.generate(model, prompts, request)
        if not isinstance(motions, Mapping):
            raise OutputCheckError(f"generate returned {type(motions).__name__}, not a dict of motions")
        path = output_dir / MOTIONS_FILE
        write_motions(path, motions, feature_dim=feature_dim)
        # Read back from disk against the prompts: the file the harness gets is the file that was checked.
        written = read_motions(path, feature_dim=feature_dim, prompts=prompts)
        return {"outputs": (MOTIONS_FILE,), "num_motions": len(written)}

    return _Job(work=work, outputs=(MOTIONS_FILE,))


def _device(method: Method, requested: str | None) -> torch.device:
    """The run's torch device: the request's, else cuda when there is one; a method that requires a GPU
    refuses a CPU."""
    device = resolve_device(requested)
    if method.spec.resources.gpu == "required" and device.type != "cuda":
        raise HMUError(
            f"method {method.spec.name} requires a GPU (resources.gpu: required); the device is {device}"
        )
    return device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _checked_outcome(outcome: object) -> Backbone:
    """The outcome's backbone, if it is one and all its weights are finite."""
    if not isinstance(outcome, UnlearnOutcome):
        raise OutputCheckError(f"unlearn returned {type(outcome).__name__}, not an UnlearnOutcome")
    if not isinstance(outcome.backbone, Backbone):
        raise OutputCheckError(
            f"UnlearnOutcome.backbone is a {type(outcome.backbone).__name__}, not a Backbone"
        )
    for name, tensor in outcome.backbone.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise OutputCheckError(f"the unlearned model's {name} holds NaN or infinite values")
    return outcome.backbone


def _plain_record(record: Any) -> dict[str, Any]:
    """`UnlearnOutcome.record` if it is plain JSON (it goes into model.json)."""
    if not isinstance(record, Mapping):
        raise OutputCheckError(f"UnlearnOutcome.record must be a dict, got {type(record).__name__}")
    try:
        return plain_json(dict(record), "record")
    except ContractError as error:
        raise OutputCheckError(f"UnlearnOutcome.{error}") from None


def _save_and_check_model(
    backbone: Backbone, parent: LoadedModel, provenance: UnlearnProvenance, path: Path
) -> dict[str, Any]:
    """Save the model folder, then load it back strictly (on the CPU) and hash it."""
    save_model(
        backbone.eval(),
        path,
        text_encoder_identity=parent.card.text_encoder,
        dataset=parent.card.dataset,
        provenance=provenance.to_json(),
    )
    load_model(path, device="cpu")
    return {"outputs": (MODEL_DIR,), "model_hash": model_hash(path)}


def _budget_note(run: _Run, budget: float | None) -> None:
    spent = time.perf_counter() - run.began
    if budget is not None and spent > budget:
        run.messages.append(f"the run took {spent:.1f} s, over its time budget of {budget:.1f} s")


def _prepare_output(output_dir: Path) -> None:
    """Create the output folder if needed; refuse one that holds anything."""
    output_dir.mkdir(parents=True, exist_ok=True)
    leftovers = sorted(entry.name for entry in output_dir.iterdir())
    if leftovers:
        raise HMUError(f"{output_dir}: the output folder must be empty, it holds {', '.join(leftovers[:5])}")


def _check_output_tree(output_dir: Path, outputs: Sequence[str]) -> None:
    """Only the verb's outputs in the output folder, and no links anywhere in it."""
    stray = sorted(entry.name for entry in output_dir.iterdir() if entry.name not in outputs)
    if stray:
        raise OutputCheckError(f"{output_dir}: unexpected entries {stray[:5]} (did the method write there?)")
    for path in output_dir.rglob("*"):
        if path.is_symlink():
            raise OutputCheckError(f"{path}: a link; the output folder holds plain files only")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _fail(run: _Run, output_dir: Path, error: BaseException, code: int) -> int:
    """Record a failure in result.json and the log (with the traceback); returns the exit status."""
    message = str(error) or type(error).__name__
    if isinstance(error, HMUError):  # a user error already names its file and field
        logger.error("%s %s failed: %s", run.verb, run.method, message)
        logger.debug("traceback:\n%s", "".join(traceback.format_exception(error)))
    else:
        logger.error(
            "%s %s failed: %s: %s", run.verb, run.method, type(error).__name__, message, exc_info=error
        )
        # Where it was raised, so that the one-line error in result.json points at the code.
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            message += f" (raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})"
    result = run.result(status="failed", outputs=(), error=message, error_type=type(error).__name__)
    write_json(output_dir / RESULT_FILE, result.to_json())
    return code
