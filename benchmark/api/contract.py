"""The JSON documents of the method container contract (interface version 1), as frozen dataclasses.

A method container is run with one verb; the harness mounts the request folder read-only at `/hmu/input`
and an empty folder at `/hmu/output` (DESIGN.md, "The method container contract"):

| verb | reads | writes |
| --- | --- | --- |
| `describe` | nothing | one JSON object on stdout: `MethodDescription` |
| `unlearn` | `/hmu/input/request.json`: `UnlearnRequest` | `/hmu/output/model/` (a model), `result.json` |
| `generate` | `/hmu/input/request.json`: `GenerateRequest` | `/hmu/output/motions.npz`, `result.json` |

`result.json` is a `StageResult` for both verbs, written also (with `"status": "failed"`) when the verb fails.
Every document names its format in `"schema"` (`hmu.<document>/<interface version>`); a reader refuses any
other. The dataclasses mirror the JSON key for key: `to_json()` writes every field, `from_json(data, path)`
reads strictly (an unknown, misspelt, missing or ill-typed field is a `ConfigError` naming the file and the
dotted field); a field with a default may be left out of the JSON.

Paths inside a request (`base_model`, `data_dir`, `model`, `prompts`, `clip_weights`) are relative to the
request's folder, so one request folder works mounted at `/hmu/input` and on the host (local runner); an
absolute path is taken as it is. `resolved(input_dir)` gives the request with every path joined to the folder.

    >>> request = UnlearnRequest.from_json(read_json(Path("in/request.json")), "in/request.json")
    >>> request = request.resolved(Path("in"))           # paths now point into in/
    >>> write_json(Path("out/result.json"), result.to_json())

Everything here is plain Python (no torch), so the harness, `hmu methods ls` and validators import it cheaply.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tempfile
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from benchmark.errors import ConfigError, HMUError

if TYPE_CHECKING:
    from benchmark.backbone.generation import GenerationSettings

INTERFACE_VERSION = 1
"""The version of the method container contract this code speaks (the image label `org.hmu.interface`)."""

INPUT_DIR = Path("/hmu/input")
"""Where the container finds its request folder (mounted read-only)."""
OUTPUT_DIR = Path("/hmu/output")
"""Where the container writes (mounted empty, read-write)."""
REQUEST_FILE = "request.json"
"""The request inside the input folder."""
RESULT_FILE = "result.json"
"""The stage result inside the output folder, written last."""
MODEL_DIR = "model"
"""The unlearned model folder inside the output folder (`unlearn`)."""
MOTIONS_FILE = "motions.npz"
"""The generated motions inside the output folder (`generate`)."""

BACKBONES: tuple[str, ...] = ("momask",)
"""Backbone architectures a method may declare. Every model folder (`hmu-model` format 1) is a MoMask."""

GPU_POLICIES: tuple[str, ...] = ("none", "optional", "required")
"""How a method uses a GPU: never, when there is one, or only with one (it refuses to run on a CPU)."""

VERBS: tuple[str, ...] = ("describe", "unlearn", "generate")
"""The verbs of a method container."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
"""Method and parameter names: lower-case snake case (run names join them with '-')."""


def _schema(document: str) -> str:
    return f"hmu.{document}/{INTERFACE_VERSION}"


class ContractError(HMUError):
    """A contract value breaks a rule. `field` is the dotted field it concerns (None: the whole document);
    `from_json` turns it into a `ConfigError` naming the file."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"field '{field}': {message}" if field else message)


def check_name(value: str, where: str) -> None:
    """Raise ContractError unless `value` is a lower-case snake-case name (`lcr`, `preserve_scale`)."""
    if not _NAME.match(value):
        raise ContractError(where, f"expected a lower-case snake_case name, got {value!r}")


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ----------------------------------------------------------------------------- strict JSON <-> dataclass

_D = TypeVar("_D", bound="JsonDocument")


class JsonDocument:
    """Base of the contract's frozen dataclasses: strict JSON in (`from_json`) and out (`to_json`).

    The JSON keys are the field names (a field may rename its key with `metadata={"key": ...}`). Supported
    field types: str, int, float (an integer is accepted), bool, Path (a string), `X | None`, `Literal`,
    `tuple[X, ...]` (a list), `dict[str, X]` (an object), `Any` (any JSON value) and nested JsonDocuments.
    A subclass's `__post_init__` raises `ContractError` for rules beyond the types.
    """

    SCHEMA: ClassVar[str | None] = None
    """The `"schema"` value of a top-level document; None for a part of one (no `schema` key)."""

    def to_json(self) -> dict[str, Any]:
        """The document as plain JSON data, every field written (the schema first)."""
        data: dict[str, Any] = {"schema": self.SCHEMA} if self.SCHEMA else {}
        data.update(_encode(self))
        return data

    @classmethod
    def from_json(cls: type[_D], data: Any, path: str | Path) -> _D:
        """Parse JSON data read from `path`; anything wrong is a ConfigError naming `path` and the field."""
        try:
            return _decode_document(cls, data, "")
        except ContractError as error:
            raise ConfigError(path, error.field, error.message) from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _key(item: dataclasses.Field[Any]) -> str:
    return str(item.metadata.get("key", item.name))


def _decode_document(cls: type[_D], data: Any, where: str) -> _D:
    if not isinstance(data, Mapping):
        raise ContractError(where or None, f"expected an object, got {_json_kind(data)}")
    items = {_key(item): item for item in dataclasses.fields(cls) if item.init}  # type: ignore[arg-type]
    known = (["schema"] if cls.SCHEMA else []) + list(items)
    for key in data:
        if key not in known:
            hint = did_you_mean(str(key), known)
            raise ContractError(_join(where, str(key)), f"unknown field{hint}; known: {', '.join(known)}")
    if cls.SCHEMA:
        schema = data.get("schema")
        if schema is None:
            raise ContractError(_join(where, "schema"), f"missing (expected {cls.SCHEMA!r})")
        if schema != cls.SCHEMA:
            raise ContractError(
                _join(where, "schema"),
                f"expected {cls.SCHEMA!r}, got {schema!r} (this code speaks interface version "
                f"{INTERFACE_VERSION})",
            )
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, item in items.items():
        if key not in data:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                raise ContractError(_join(where, key), "missing")
            continue
        values[item.name] = _decode(data[key], hints[item.name], _join(where, key))
    try:
        return cls(**values)
    except ContractError as error:
        raise ContractError(
            _join(where, error.field) if error.field else where or None, error.message
        ) from None


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _expected(hint: Any) -> str:
    """How a type reads in an error message."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin is tuple:
        return "a list"
    if origin is dict or (isinstance(hint, type) and issubclass(hint, JsonDocument)):
        return "an object"
    names = {
        str: "a string",
        Path: "a path (string)",
        int: "an integer",
        float: "a number",
        bool: "true or false",
    }
    return "null" if hint is type(None) else names.get(hint, str(hint))


def _decode(value: Any, hint: Any, where: str) -> Any:
    """`value` (parsed JSON) as type `hint`, or ContractError naming `where`."""
    if hint is Any:
        return plain_json(value, where)
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        others = [arg for arg in args if arg is not type(None)]
        if len(others) != 1:
            raise TypeError(f"unsupported union {hint}")  # a bug in a contract class, not in a document
        try:
            return _decode(value, others[0], where)
        except ContractError as error:
            if error.field != where:  # an error inside a nested value keeps its own message
                raise
            raise ContractError(where, f"expected {_expected(hint)}, got {value!r:.80}") from None
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise ContractError(where, f"expected {_expected(hint)}, got {value!r:.80}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ContractError(where, f"expected a list, got {_json_kind(value)}")
        return tuple(_decode(item, args[0], f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ContractError(where, f"expected an object, got {_json_kind(value)}")
        return {str(key): _decode(item, args[1], _join(where, str(key))) for key, item in value.items()}
    if isinstance(hint, type) and issubclass(hint, JsonDocument):
        return _decode_document(hint, value, where)
    # bool is an int in Python: `true` where a count belongs is a mistake, not 1.
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ContractError(where, f"expected a finite number, got {value!r}")
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if hint is Path and isinstance(value, str):
        if not value.strip():
            raise ContractError(where, "expected a path, got an empty string")
        return Path(value)
    if hint in (bool, int, float, str, Path):
        raise ContractError(where, f"expected {_expected(hint)}, got {value!r:.80}")
    raise TypeError(f"unsupported field type {hint}")


def plain_json(value: Any, where: str) -> Any:
    """A copy of `value` if it is plain JSON data (objects with string keys, lists, strings, finite numbers,
    booleans, null); tuples become lists. Anything else is a ContractError naming `where`."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ContractError(where, f"expected a finite number, got {value!r}")
        return value
    if isinstance(value, list | tuple):
        return [plain_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ContractError(where, "object keys must be strings")
        return {key: plain_json(item, _join(where, key)) for key, item in value.items()}
    raise ContractError(where, f"not a JSON value: {type(value).__name__}")


def _encode(value: Any) -> Any:
    if isinstance(value, JsonDocument):
        return {
            _key(item): _encode(getattr(value, item.name))
            for item in dataclasses.fields(value)  # type: ignore[arg-type]
        }
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _encode(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file; a missing or malformed file is a ConfigError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(path, None, f"not a readable JSON file: {error}") from None


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file renamed into place, so a reader never sees half a file."""
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; the harness may read it as another user
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _resolve(base: Path, path: Path | None) -> Path | None:
    return None if path is None or path.is_absolute() else base / path


# ----------------------------------------------------------------------------- describe


@dataclass(frozen=True)
class Resources(JsonDocument):
    """What one run of the method needs; the harness sets the container's limits from it."""

    cpus: int = 1
    """CPU cores."""
    memory_gb: float = 4.0
    """Memory limit in GiB (model, data and the method's own state)."""
    gpu: Literal["none", "optional", "required"] = "optional"
    """`none`: never uses one; `optional`: uses one when there is one; `required`: refuses a CPU."""
    time_limit_s: float = 3600.0
    """Wall-clock limit of one `unlearn` run, in seconds; past it the run is killed and recorded failed."""

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise ContractError("cpus", f"must be >= 1, got {self.cpus}")
        if self.memory_gb <= 0:
            raise ContractError("memory_gb", f"must be > 0, got {self.memory_gb}")
        if self.gpu not in GPU_POLICIES:
            raise ContractError("gpu", f"expected one of {', '.join(GPU_POLICIES)}, got {self.gpu!r}")
        if self.time_limit_s <= 0:
            raise ContractError("time_limit_s", f"must be > 0, got {self.time_limit_s}")


@dataclass(frozen=True)
class MethodDescription(JsonDocument):
    """What `describe` prints: who the method is and what it takes. Equal to its `method.yaml`."""

    SCHEMA = _schema("method-description")

    name: str
    """The method's id (its folder name, `org.hmu.method` label)."""
    version: int
    """Bumped whenever a change alters what the method outputs; results of different versions never mix."""
    interface_version: int
    """The contract version the method speaks (1)."""
    description: str
    """One line for listings and the leaderboard."""
    parameters: dict[str, Any]
    """Hyper-parameters and their defaults (`method_args`); a request may override any of them."""
    sweep: dict[str, tuple[Any, ...]]
    """The hyper-parameter grid the benchmark runs: parameter -> values (cartesian product)."""
    backbones: tuple[str, ...]
    """Backbone architectures the method supports (`momask`)."""
    resources: Resources
    """What one run needs."""

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        if self.version < 1:
            raise ContractError("version", f"must be >= 1, got {self.version}")
        if self.interface_version != INTERFACE_VERSION:
            raise ContractError(
                "interface_version", f"this code speaks {INTERFACE_VERSION}, got {self.interface_version}"
            )
        for name in self.parameters:
            check_name(name, f"parameters.{name}")
        for name in self.sweep:
            if name not in self.parameters:
                raise ContractError(
                    f"sweep.{name}", "not a parameter" + did_you_mean(name, list(self.parameters))
                )
        for index, backbone in enumerate(self.backbones):
            if backbone not in BACKBONES:
                raise ContractError(
                    f"backbones[{index}]", f"unknown backbone {backbone!r} (known: {BACKBONES})"
                )


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class TaskRef(JsonDocument):
    """Which task (and version) a request serves."""

    name: str
    """Task id (`embedded_violence`)."""
    version: int
    """Task version: results of different versions never mix."""

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ContractError("version", f"must be >= 1, got {self.version}")


@dataclass(frozen=True)
class ConceptRef(JsonDocument):
    """The concept to forget, as the task defines it."""

    name: str
    """Concept id (`violence`)."""
    keywords: tuple[str, ...]
    """Lower-case words naming the concept; inflections and compounds count too (`benchmark.splits`)."""
    pos: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Ambiguous keywords and the POS tags they must carry to count (`{"box": ["VERB"]}`)."""

    def __post_init__(self) -> None:
        if not self.keywords:
            raise ContractError("keywords", "must not be empty")


@dataclass(frozen=True)
class DataSubset(JsonDocument):
    """One side of the task's split (forget or retain) of the training data."""

    motion_ids: tuple[str, ...]
    """Motion ids (file stems under `data_dir`) of this side of the split."""
    prompts: tuple[str, ...]
    """Texts of this side, usable as prompts: the captions of those motions, deduplicated."""
    split: str = "train_val"
    """The dataset split the ids come from (never the test split: methods do not see test data)."""

    def __post_init__(self) -> None:
        if len(set(self.motion_ids)) != len(self.motion_ids):
            raise ContractError("motion_ids", "holds duplicate ids")
        if self.split == "test":
            raise ContractError("split", "a method never sees the test split")


@dataclass(frozen=True)
class UnlearnRequest(JsonDocument):
    """`request.json` of `unlearn`: remove `concept` from the model in `base_model`."""

    SCHEMA = _schema("unlearn-request")

    task: TaskRef
    """The task this run serves."""
    concept: ConceptRef
    """The concept to forget."""
    base_model: Path
    """The model folder to unlearn from (relative to the request's folder)."""
    data_dir: Path
    """A read-only view of the training data: a HumanML3D-layout dataset folder (relative to the request)."""
    forget: DataSubset
    """Training motions and texts of the concept."""
    retain: DataSubset
    """Training motions and texts without the concept."""
    seed: int
    """Seeds every random draw of the method (the entrypoint seeds Python, numpy and torch with it)."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Hyper-parameters (`method_args`); the entrypoint fills in the method.yaml defaults of missing ones."""
    time_budget_s: float | None = None
    """Wall-clock the harness allows (it kills the run past it); None: no limit. A method may size its work
    by it, e.g. stop fine-tuning early."""
    device: str | None = None
    """`cpu`, `cuda` or `cuda:N`; None: cuda when there is one, else cpu."""
    clip_weights: Path | None = None
    """CLIP ViT-B/32 weights, for models conditioned on CLIP (relative to the request); None otherwise."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ContractError("seed", f"must be >= 0, got {self.seed}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ContractError("time_budget_s", f"must be > 0 or null, got {self.time_budget_s}")
        both = set(self.forget.motion_ids) & set(self.retain.motion_ids)
        if both:
            raise ContractError("retain.motion_ids", f"also in forget.motion_ids: {sorted(both)[:5]}")

    def resolved(self, base: Path) -> UnlearnRequest:
        """This request with its relative paths joined to `base` (the request's folder)."""
        return dataclasses.replace(
            self,
            base_model=_resolve(base, self.base_model) or self.base_model,
            data_dir=_resolve(base, self.data_dir) or self.data_dir,
            clip_weights=_resolve(base, self.clip_weights) or self.clip_weights,
        )


@dataclass(frozen=True)
class GenerateRequest(JsonDocument):
    """`request.json` of `generate`: motions for a prompt file from a model folder."""

    SCHEMA = _schema("generate-request")

    model: Path
    """The model folder (usually the method's own `unlearn` output), relative to the request's folder."""
    prompts: Path
    """The prompt file (`benchmark.backbone.generation.read_prompts`: id, text, length, repeats, seed)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Sampling settings, fields of `GenerationSettings` (timesteps, cond_scale, ...); missing: default."""
    seed: int = 0
    """Seeds random draws outside the prompts' own seeds (the default generation uses only those)."""
    device: str | None = None
    """`cpu`, `cuda` or `cuda:N`; None: cuda when there is one, else cpu."""
    clip_weights: Path | None = None
    """CLIP ViT-B/32 weights, for models conditioned on CLIP (relative to the request); None otherwise."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ContractError("seed", f"must be >= 0, got {self.seed}")

    def resolved(self, base: Path) -> GenerateRequest:
        """This request with its relative paths joined to `base` (the request's folder)."""
        return dataclasses.replace(
            self,
            model=_resolve(base, self.model) or self.model,
            prompts=_resolve(base, self.prompts) or self.prompts,
            clip_weights=_resolve(base, self.clip_weights) or self.clip_weights,
        )

    def generation_settings(self) -> GenerationSettings:
        """`settings` as `GenerationSettings`; an unknown, ill-typed or out-of-range setting is a
        ContractError naming `settings.<name>`. Imports torch (through the generation module)."""
        from benchmark.backbone.generation import GenerationError, GenerationSettings

        hints = get_type_hints(GenerationSettings)
        known = [item.name for item in dataclasses.fields(GenerationSettings)]
        values = {}
        for name, value in self.settings.items():
            if name not in known:
                raise ContractError(
                    f"settings.{name}",
                    f"unknown setting{did_you_mean(name, known)}; known: {', '.join(known)}",
                )
            values[name] = _decode(value, hints[name], f"settings.{name}")
        try:
            return GenerationSettings(**values)
        except GenerationError as error:
            raise ContractError("settings", str(error)) from None


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StageResult(JsonDocument):
    """`result.json` of `unlearn` and `generate`: how the run went and what it wrote."""

    SCHEMA = _schema("method-result")

    status: Literal["ok", "failed"]
    """`ok`: the outputs are there and were checked; `failed`: `error` says why, no output is there."""
    verb: Literal["unlearn", "generate"]
    """The verb that ran."""
    method: str
    """The method's name."""
    method_version: int | None
    """The method's version; null when the method could not be found."""
    interface_version: int
    """The contract version of the entrypoint that wrote this (1)."""
    wall_seconds: float
    """Wall-clock time of the whole verb (reading, running, writing and checking)."""
    device: str | None
    """Where the method ran (`cpu`, `cuda:0`); null when it failed before choosing."""
    parameters: dict[str, Any]
    """`unlearn`: the resolved hyper-parameters (defaults filled in); `generate`: {}."""
    messages: tuple[str, ...]
    """Notes from the method and the entrypoint (e.g. the time budget was exceeded)."""
    outputs: tuple[str, ...]
    """Every entry the verb left in the output folder besides result.json, relative (`model`,
    `motions.npz`); empty when it failed."""
    error: str | None = None
    """Why it failed (one line naming the file and field where it can); null when ok."""
    error_type: str | None = None
    """The exception's class (`ConfigError`, `RuntimeError`, ...); null when ok."""
    model_hash: str | None = None
    """`unlearn` ok: `model_hash` of the written model folder; null otherwise."""
    num_motions: int | None = None
    """`generate` ok: motions written (one per prompt and repeat); null otherwise."""

    def __post_init__(self) -> None:
        if self.status == "ok":
            if self.error is not None or self.error_type is not None:
                raise ContractError("error", "must be null when the status is ok")
            if self.verb == "unlearn" and self.model_hash is None:
                raise ContractError("model_hash", "an ok unlearn result names its model's hash")
            if self.verb == "generate" and self.num_motions is None:
                raise ContractError("num_motions", "an ok generate result counts its motions")
        else:
            if not self.error:
                raise ContractError("error", "a failed result says why")
            if self.outputs:
                raise ContractError("outputs", "a failed run leaves no outputs")
        for index, output in enumerate(self.outputs):
            parts = Path(output).parts
            if not parts or Path(output).is_absolute() or ".." in parts or output == RESULT_FILE:
                raise ContractError(
                    f"outputs[{index}]", f"expected a path inside the output folder, got {output!r}"
                )
        if self.wall_seconds < 0:
            raise ContractError("wall_seconds", f"must be >= 0, got {self.wall_seconds}")


@dataclass(frozen=True)
class UnlearnProvenance(JsonDocument):
    """The `provenance` the entrypoint writes into an unlearned model's `model.json`.

    It is part of the model hash, so it holds nothing that changes between equal runs (no time, no host).
    `record` is how a method passes facts from `unlearn` to its own `generate` (a separate process): for
    example the codes a sampling-time method forbids.
    """

    kind: Literal["unlearned"]
    """What made the model (trained models say `trained`, imported ones `imported`)."""
    method: str
    """The method's name."""
    method_version: int
    """The method's version."""
    interface_version: int
    """The contract version of the entrypoint."""
    parameters: dict[str, Any]
    """The resolved hyper-parameters."""
    parent: str
    """`model_hash` of the base model."""
    task: TaskRef
    """The task the model was unlearned for."""
    concept: str
    """The concept forgotten."""
    seed: int
    """The request's seed."""
    record: dict[str, Any] = field(default_factory=dict)
    """What the method chose to keep with the model (`UnlearnOutcome.record`), plain JSON."""
