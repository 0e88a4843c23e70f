"""`method.yaml`: what a method folder declares, read into a frozen `MethodSpec` and validated at load time.

    # methods/lcr/method.yaml
    name: lcr                      # the folder's name
    version: 1                     # bump when a change alters the method's output
    description: Latent Code Replacement: censor the concept's VQ codes.
    class: method:LCRMethod        # <module in the folder>:<class>, imported only when the method is used
    backbones: [momask]
    defaults: {k: 16, alpha: 1.0}  # hyper-parameters (method_args) and their defaults
    sweep: {k: [4, 8, 16, 32, 64]} # the grid the benchmark runs: one run per combination
    resources: {cpus: 2, memory_gb: 4, gpu: optional, time_limit_s: 600}

    >>> spec = load_method_yaml(Path("methods/lcr/method.yaml"))
    >>> [run.name for run in spec.runs()]
    ['lcr-k4', 'lcr-k8', 'lcr-k16', 'lcr-k32', 'lcr-k64']
    >>> spec.resolve_parameters({"k": 8})
    {'k': 8, 'alpha': 1.0}

A parameter's type is its default's: an integer default takes integers, a float default takes numbers (an
integer becomes a float), a null default takes any JSON value. Sweep values are scalars of that type. Any
mistake is a `ConfigError` naming the file and the field. Loading reads the one file and imports nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.api.contract import (
    BACKBONES,
    INTERFACE_VERSION,
    ContractError,
    JsonDocument,
    MethodDescription,
    Resources,
    check_name,
    did_you_mean,
    plain_json,
)
from benchmark.errors import ConfigError

METHOD_YAML = "method.yaml"
"""The declaration file of a method folder."""

_CLASS_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):([A-Za-z_][A-Za-z0-9_]*)$")
_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class SweepRun:
    """One point of a method's hyper-parameter grid: a separate benchmark run."""

    name: str
    """Stable run name: the method, then `<parameter><value>` per swept parameter (`lcr-k16`)."""
    parameters: dict[str, Any]
    """Every hyper-parameter of the run: the defaults with the swept values laid over them."""


@dataclass(frozen=True)
class MethodSpec(JsonDocument):
    """The content of a `method.yaml`, key for key (`class` is `class_ref`); or what a method image's
    `describe` declares (`from_description`), without a class: the image is the implementation."""

    name: str
    """Method id: lower-case snake case, equal to the folder's name."""
    version: int
    """Bumped whenever a change alters what the method outputs; results of different versions never mix."""
    description: str
    """One line for listings and the leaderboard."""
    resources: Resources
    """What one run needs: cpus, memory_gb, gpu (none/optional/required), time_limit_s."""
    class_ref: str | None = field(default=None, metadata={"key": "class"})
    """`<module>:<class>`: the Method subclass, in `<module>.py` of the folder (usually `method:...`).
    Required in a method.yaml (`load_method_yaml`); None for a method that is an image."""
    backbones: tuple[str, ...] = ("momask",)
    """Backbone architectures the method supports."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Hyper-parameters (`method_args`) and their defaults; a request may override each."""
    sweep: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """Hyper-parameter grid: parameter -> values; the cartesian product gives the benchmark's runs."""

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        if self.version < 1:
            raise ContractError("version", f"must be >= 1, got {self.version}")
        if not self.description.strip():
            raise ContractError("description", "must not be empty")
        if self.class_ref is not None and not _CLASS_REF.match(self.class_ref):
            raise ContractError(
                "class", f"expected '<module>:<Class>' (e.g. method:MyMethod), got {self.class_ref!r}"
            )
        if not self.backbones:
            raise ContractError("backbones", "must name at least one backbone")
        for index, backbone in enumerate(self.backbones):
            if backbone not in BACKBONES:
                raise ContractError(
                    f"backbones[{index}]", f"unknown backbone {backbone!r} (known: {BACKBONES})"
                )
        for name, value in self.defaults.items():
            check_name(name, f"defaults.{name}")
            plain_json(value, f"defaults.{name}")
        sweep = {}
        for name, values in self.sweep.items():
            if name not in self.defaults:
                raise ContractError(
                    f"sweep.{name}",
                    "not a parameter: sweep only parameters listed under defaults"
                    + did_you_mean(name, list(self.defaults)),
                )
            if not values:
                raise ContractError(f"sweep.{name}", "must list at least one value")
            checked = []
            for index, value in enumerate(values):
                where = f"sweep.{name}[{index}]"
                if not isinstance(value, _SCALARS):
                    raise ContractError(
                        where, f"sweep values are numbers, strings or booleans, got {value!r}"
                    )
                checked.append(_checked(self.defaults[name], value, where))
            if len({_label(value) for value in checked}) != len(checked):
                raise ContractError(f"sweep.{name}", f"lists a value twice: {checked}")
            sweep[name] = tuple(checked)
        # Values take their default's type (1 -> 1.0 for a float), so that run names and records agree.
        object.__setattr__(self, "sweep", sweep)

    @classmethod
    def from_description(cls, description: MethodDescription) -> MethodSpec:
        """The spec of a method known only by its image's `describe` output: its parameters are the
        defaults, its sweep and resources its own. A ContractError when the description breaks a rule of
        method.yaml (a sweep value that is not a scalar of its default's type)."""
        return cls(
            name=description.name,
            version=description.version,
            description=description.description,
            resources=description.resources,
            backbones=description.backbones,
            defaults=dict(description.parameters),
            sweep=dict(description.sweep),
        )

    @property
    def module(self) -> str:
        """The module (file stem in the folder) holding the class."""
        return self._class_ref().partition(":")[0]

    @property
    def class_name(self) -> str:
        """The Method subclass's name."""
        return self._class_ref().partition(":")[2]

    def _class_ref(self) -> str:
        if self.class_ref is None:
            raise ContractError("class", f"method {self.name} is an image: it has no class to import")
        return self.class_ref

    def resolve_parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults with `given` laid over them. An unknown name or a value of another type than the
        default's is a ContractError naming `parameters.<name>`."""
        resolved = dict(self.defaults)
        for name, value in given.items():
            where = f"parameters.{name}"
            if name not in self.defaults:
                known = ", ".join(self.defaults) or "none"
                raise ContractError(
                    where,
                    f"method {self.name} has no such parameter{did_you_mean(name, list(self.defaults))}; "
                    f"known: {known}",
                )
            resolved[name] = _checked(self.defaults[name], plain_json(value, where), where)
        return resolved

    def runs(self) -> tuple[SweepRun, ...]:
        """The sweep's runs, in order: the last parameter of `sweep` varies fastest, values as listed.
        Without a sweep, one run named after the method with the defaults."""
        names = list(self.sweep)
        runs = []
        for values in itertools.product(*(self.sweep[name] for name in names)):
            point = dict(zip(names, values, strict=True))
            label = "-".join(f"{name}{_label(value)}" for name, value in point.items())
            runs.append(
                SweepRun(
                    name=f"{self.name}-{label}" if label else self.name,
                    parameters=self.resolve_parameters(point),
                )
            )
        return tuple(runs)

    def description_record(self) -> MethodDescription:
        """What `describe` must print for this method."""
        return MethodDescription(
            name=self.name,
            version=self.version,
            interface_version=INTERFACE_VERSION,
            description=self.description,
            parameters=dict(self.defaults),
            sweep=dict(self.sweep),
            backbones=self.backbones,
            resources=self.resources,
        )


def _checked(default: Any, value: Any, where: str) -> Any:
    """`value` if it has the type of `default` (an integer for a float default becomes a float)."""
    if default is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        hint = ""
        if isinstance(default, float) and isinstance(value, str):
            hint = " (YAML reads 1e-3 as a string: write 1.0e-3)"
        raise ContractError(
            where, f"expected {type(default).__name__} like the default {default!r}, got {value!r}{hint}"
        )
    return value


def _label(value: Any) -> str:
    """A sweep value as it appears in a run name: `16`, `0.5`, `true`, `cosine`."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "_", text)


def load_method_yaml(path: Path) -> MethodSpec:
    """Read and validate a `method.yaml`; any mistake is a ConfigError naming the file and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, None, f"cannot read: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        # PyYAML's message spans lines (with a caret drawing); one line reads better in a list of problems.
        raise ConfigError(path, None, f"not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, None, "a method.yaml must be a mapping of fields")
    spec = MethodSpec.from_json(data, path)
    if spec.class_ref is None:
        raise ConfigError(path, "class", "missing: name the Method class, e.g. 'class: method:MyMethod'")
    return spec
