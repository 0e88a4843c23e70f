"""What a benchmark run is (`RunSpec`) and what a stage's output is stored under (`StageKey`), with the hashes
that identify their inputs.

A `RunSpec` fixes everything a run's numbers depend on: the method (name, version, sweep point and its
parameters), the task (name, version, content hash), the seed, the base model, the data and its split, the
evaluation plan, the images that run the method and the evaluator, the evaluator's identity, the generation
settings, the evaluation protocol and the reference run the deltas are measured against. Its `run_id` is a
readable name plus a short hash of all of it, so two runs share a folder only when every input is equal:

    >>> spec.run_id
    'original--embedded_violence--s0--3f5c9a01be'

A `StageKey` is what one stage's output is cached under: the stage kind, the image that runs it, the hashes
of its inputs (base model, data, split, plan; for later stages the key of the stage that made their input),
its parameters and its seed. Upstream keys stand in for upstream outputs (derivation hashing, as in Nix), so
every key of a bench is known before anything runs and a cached bench is recognised without executing:

    >>> key = StageKey("unlearn", image="sha256:0cb5...", inputs={"model": base_hash, "data": data_hash},
    ...                parameters={"alpha": 1.0}, seed=0)
    >>> key.key                                     # 32 hex digits; changes with any field, and only then
    '9b1e...'

Hashes here are sha256 over canonical JSON (sorted keys, no spaces, no NaN) or over file bytes; nothing
depends on the order dictionaries were filled in, on absolute paths or on time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmark.api.contract import INTERFACE_VERSION
from benchmark.data.layout import SPLIT_NAMES, DatasetLayout
from benchmark.errors import ConfigError, HMUError

KEY_FORMAT = "hmu-stage-key/1"
"""Part of every stage key: bumped when what goes into a key (or what a cached output holds) changes, so
that old cache entries are never taken for new ones."""

RUN_SPEC_SCHEMA = "hmu.run-spec/1"
"""Schema id of `run_spec.json`."""

KEY_LENGTH = 32
"""Hex digits of a stage key (128 bits: no collision among a results folder's stages)."""

RUN_HASH_LENGTH = 10
"""Hex digits of the hash in a run id (the readable part tells runs apart; the hash tells versions apart)."""

StageKind = Literal["unlearn", "generate", "evaluate"]
STAGE_KINDS: tuple[StageKind, ...] = ("unlearn", "generate", "evaluate")
"""The stages of one run, in the order they run."""


class SpecError(HMUError):
    """A run spec or stage key cannot be made or read back (a malformed `run_spec.json`, a bad field)."""


# ----------------------------------------------------------------------------- hashing


def canonical_json(data: Any) -> bytes:
    """`data` as canonical JSON bytes: sorted keys, no whitespace, UTF-8, finite numbers only (a NaN in a
    key would make equal inputs hash differently)."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sha256_json(data: Any) -> str:
    """sha256 (hex) of `data`'s canonical JSON."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(root: Path, paths: Iterable[Path]) -> str:
    """sha256 over `paths` (files under `root`), each as its path relative to `root` and its bytes' hash,
    in sorted order: equal folders hash equal wherever they lie."""
    digest = hashlib.sha256()
    for relative in sorted(path.relative_to(root).as_posix() for path in paths):
        line = f"{relative} {file_sha256(root / relative)}\n".encode()
        digest.update(line)
    return digest.hexdigest()


_IGNORED_NAMES = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache")


def source_sha256(*folders: Path) -> str:
    """sha256 over the Python sources and data files under `folders` (caches ignored): a code identity for
    things the harness makes itself (the embedded dataset, the small model, the evaluator) and for stages
    run without an image (the local runner)."""
    digest = hashlib.sha256()
    for folder in folders:
        files = []
        for parent, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(name for name in dirnames if name not in _IGNORED_NAMES)
            files += [Path(parent) / name for name in filenames if not name.endswith((".pyc", ".pyo"))]
        digest.update(f"{folder.name}:{files_sha256(folder, files)}\n".encode())
    return digest.hexdigest()


DATASET_FILES: tuple[str, ...] = ("dataset.json", "Mean.npy", "Std.npy", "labels.jsonl")
"""Top-level files of a HumanML3D-layout folder that go into its hash (with the split files, `texts/` and
`new_joint_vecs/`). `new_joints/` and `kw_splits/` are left out: nothing the benchmark computes reads them,
and hashing HumanML3D's joints would cost gigabytes of reading."""


def dataset_sha256(root: Path) -> str:
    """sha256 of what the benchmark reads from a HumanML3D-layout folder: metadata, statistics, labels, split
    files, captions and features (`DATASET_FILES`)."""
    layout = DatasetLayout(root)
    paths = [root / name for name in DATASET_FILES if (root / name).is_file()]
    paths += [layout.split_path(name) for name in SPLIT_NAMES if layout.split_path(name).is_file()]
    for folder in (layout.texts_dir, layout.features_dir):
        if not folder.is_dir():
            raise ConfigError(root, None, f"not a HumanML3D-layout dataset: {folder.name}/ is missing")
        paths += [path for path in folder.iterdir() if path.is_file()]
    return files_sha256(root, paths)


def task_sha256(task: Any) -> str:
    """sha256 of a task's resolved content (every field of `TaskSpec` but the file it came from): two task
    files that say the same thing hash equal, and any change to the concept, split rule or prompt sets
    changes the hash even when the version was not bumped."""
    content = asdict(task)
    content.pop("path", None)
    return sha256_json(json.loads(json.dumps(content, default=str)))


# ----------------------------------------------------------------------------- run spec


@dataclass(frozen=True)
class ImageRef:
    """What runs a stage: a container image, or the checkout's code under the local runner."""

    reference: str
    """`hmu/method/original:<content tag>`, or `local` for the local runner."""
    digest: str
    """The engine's image ID (`sha256:...`), or `local:<sha256 of the code that runs>` for the local runner;
    it goes into every stage key, so a code change re-runs what it touches."""

    def to_json(self) -> dict[str, str]:
        return {"reference": self.reference, "digest": self.digest}


@dataclass(frozen=True)
class EvaluationSpec:
    """How generated motions are scored: the plan's size and the protocol's repeats."""

    repeats: int = 20
    """Repeats of the protocol (the CI is over them); MoMask's 20."""
    passes: int = 20
    """Generation passes planned per prompt: each repeat reads its own pass; fewer than `repeats` reuses
    passes (cheaper, and the CI then reflects only the evaluation's sampling)."""
    max_prompts: int | None = 32
    """Reference motions per prompt set at most (None: all); 32 fills one R-precision batch."""
    plan_seed: int = 0
    """Seeds the plan (caption turns, the `max_prompts` subsample, the prompts' generation seeds); fixed
    across runs so that every method answers the same prompts."""
    seed: int = 0
    """Seeds the evaluation protocol (its own draws)."""

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.passes < 1:
            raise SpecError(f"repeats and passes must be >= 1, got {self.repeats} and {self.passes}")
        if self.max_prompts is not None and self.max_prompts < 1:
            raise SpecError(f"max_prompts must be >= 1 or None, got {self.max_prompts}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """One benchmark run, fully resolved: (method, sweep point, task, seed) with every input's identity."""

    method: str
    """The method's name (its folder)."""
    method_version: int
    """The method's version (method.yaml)."""
    sweep: str
    """The sweep point's name (`lcr-k16`; the method's name when it sweeps nothing)."""
    parameters: Mapping[str, Any]
    """Every hyper-parameter of the run: the method's defaults with the sweep point's values."""
    task: str
    """The task's name."""
    task_version: int
    """The task's version."""
    task_hash: str
    """`task_sha256` of the task's resolved content."""
    seed: int
    """The run's seed (the unlearn and generate requests')."""
    base_model_hash: str
    """`model_hash` of the base model unlearning starts from."""
    data_hash: str
    """`dataset_sha256` of the dataset."""
    split_hash: str
    """sha256 of the task's forget/retain id lists on that dataset."""
    plan_hash: str
    """The evaluation plan's fingerprint (prompts, references, concept database)."""
    prompts_hash: str
    """sha256 of the plan's `prompts.json`, what `generate` reads."""
    method_image: ImageRef
    """What runs `unlearn` and `generate`."""
    evaluator_image: ImageRef
    """What runs `evaluate`."""
    evaluator_hash: str
    """The evaluator's identity hash (`benchmark.evaluator.identity_hash`)."""
    generation: Mapping[str, Any]
    """Sampling settings of `generate` (fields of `GenerationSettings`; missing: MoMask's defaults)."""
    evaluation: EvaluationSpec
    """The evaluation protocol's knobs."""
    reference: str | None
    """The run id of the reference run (D_r: the task's reference method, same task and seed) whose metrics
    the deltas are measured against; None for the reference run itself and when there is no reference."""
    interface_version: int = INTERFACE_VERSION
    """The method container contract the run was made under."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise SpecError(f"seed must be >= 0, got {self.seed}")
        for name in ("method", "sweep", "task"):
            value = getattr(self, name)
            if not value or "/" in value or value.startswith("."):
                raise SpecError(f"{name} {value!r} cannot be part of a folder name")

    def to_json(self) -> dict[str, Any]:
        """The content of `run_spec.json` (the schema first)."""
        data: dict[str, Any] = {"schema": RUN_SPEC_SCHEMA}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, ImageRef | EvaluationSpec):
                value = value.to_json()
            elif isinstance(value, Mapping):
                value = dict(value)
            data[name] = value
        return data

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "run_spec.json") -> RunSpec:
        """Read back `to_json`'s content; anything malformed is a ConfigError naming `path` and the field."""
        if not isinstance(data, dict) or data.get("schema") != RUN_SPEC_SCHEMA:
            raise ConfigError(path, "schema", f"expected a {RUN_SPEC_SCHEMA} object")
        known = set(cls.__dataclass_fields__) | {"schema"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(path, unknown[0], "unknown field")
        values = {key: value for key, value in data.items() if key != "schema"}
        try:
            values["method_image"] = ImageRef(**values["method_image"])
            values["evaluator_image"] = ImageRef(**values["evaluator_image"])
            values["evaluation"] = EvaluationSpec(**values["evaluation"])
            return cls(**values)
        except KeyError as error:
            raise ConfigError(path, str(error.args[0]), "missing") from None
        except (TypeError, HMUError) as error:
            raise ConfigError(path, None, f"not a run spec: {error}") from None

    def digest(self) -> str:
        """sha256 of every field: equal digests mean equal runs."""
        return sha256_json(self.to_json())

    @property
    def run_id(self) -> str:
        """`<sweep point>--<task>--s<seed>--<hash>`: readable, and unique to this exact run."""
        return f"{self.sweep}--{self.task}--s{self.seed}--{self.digest()[:RUN_HASH_LENGTH]}"


# ----------------------------------------------------------------------------- stage key


@dataclass(frozen=True)
class StageKey:
    """What one stage's output is cached under; equal keys mean interchangeable outputs."""

    stage: StageKind
    """unlearn, generate or evaluate."""
    image: str
    """The digest of what runs the stage (`ImageRef.digest`)."""
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Input name -> hash: `model`, `data`, `split`, `task`, `plan`, `prompts`, `evaluator`; for a stage
    fed by another, that stage's key (`model` of generate is the unlearn key, `motions` of evaluate the
    generate key, `reference` the reference run's evaluate key)."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """The stage's parameters: the method's hyper-parameters (unlearn), the sampling settings (generate),
    the protocol's knobs (evaluate)."""
    seed: int = 0
    """The stage's seed."""

    def __post_init__(self) -> None:
        if self.stage not in STAGE_KINDS:
            raise SpecError(f"unknown stage {self.stage!r}: expected one of {STAGE_KINDS}")
        if not self.image:
            raise SpecError(f"{self.stage}: a stage key needs the digest of what runs it")

    def material(self) -> dict[str, Any]:
        """Everything the key is made of, as plain JSON (stored beside the output, checked on every hit)."""
        return {
            "format": KEY_FORMAT,
            "stage": self.stage,
            "image": self.image,
            "inputs": dict(self.inputs),
            "parameters": dict(self.parameters),
            "seed": self.seed,
        }

    @property
    def key(self) -> str:
        """The first `KEY_LENGTH` hex digits of the material's sha256: the cache folder's name."""
        return sha256_json(self.material())[:KEY_LENGTH]
