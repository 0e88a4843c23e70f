"""Method discovery: one folder per method, found by scanning, imported only when the method is used.

A methods folder holds `<name>/method.yaml`, `<name>/method.py` and `<name>/README.md` per method; folders
whose name starts with `_` or `.` (`_template`) are skipped. Discovery reads the YAML files only, so listing
methods is fast and never imports torch; `MethodEntry.load()` imports the class named by `class:` the first
time the method is used.

    >>> methods = discover_methods()                  # $HMU_METHODS_DIR, else the checkout's methods/
    >>> methods.names()
    ('original',)
    >>> method = methods.get("original").build()      # imports methods/original/method.py
    >>> methods.get("orignal")
    RegistryError: unknown method 'orignal' (did you mean 'original'?); known: original

Where methods are looked for, first match wins: the `dirs` argument, then `$HMU_METHODS_DIR` (one folder or
several joined by ':'; the method container image sets `/opt/hmu/methods`), then the `methods/` folder of a
source checkout. With several folders, a name found twice is an error naming both places.

A broken folder (a required file missing, bad YAML, a name that is not the folder's, an unknown class, a
class that is not a `benchmark.api.Method`) is a `MethodFolderError` naming the folder and the fault;
discovery reports every broken folder at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from benchmark.api.contract import did_you_mean
from benchmark.api.method_yaml import METHOD_YAML, MethodSpec, load_method_yaml
from benchmark.errors import HMUError

if TYPE_CHECKING:
    from benchmark.api.method import Method

ENV_METHODS_DIR = "HMU_METHODS_DIR"
"""Environment variable naming the methods folder(s), joined by os.pathsep."""

REQUIRED_FILES = (METHOD_YAML, "method.py", "README.md")
"""Files every method folder has."""

T = TypeVar("T")


class RegistryError(HMUError):
    """A name registered twice, an unknown name, or a change to a frozen registry."""


class MethodFolderError(HMUError):
    """A method folder cannot be used; the message names the folder and what is wrong."""


class Registry(Generic[T]):
    """Names to entries, each with the place it came from; frozen once filled.

    registry: Registry[MethodEntry] = Registry("method")
    registry.register("lcr", entry, origin="methods/lcr/method.yaml")
    registry.freeze()
    registry.get("lcr")
    """

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._entries: dict[str, tuple[T, str]] = {}
        self._frozen = False

    def register(self, name: str, entry: T, *, origin: str) -> None:
        """Add `entry` as `name`; `origin` says where it was declared (named if the name comes again)."""
        if self._frozen:
            raise RegistryError(f"the {self._kind} registry is frozen; cannot register {name!r} ({origin})")
        if name in self._entries:
            raise RegistryError(
                f"{self._kind} {name!r} is declared twice: in {self._entries[name][1]} and in {origin}"
            )
        self._entries[name] = (entry, origin)

    def freeze(self) -> Registry[T]:
        """Refuse any further registration; returns the registry."""
        self._frozen = True
        return self

    @property
    def frozen(self) -> bool:
        return self._frozen

    def get(self, name: str) -> T:
        """The entry of `name`; an unknown name is a RegistryError suggesting the closest one."""
        if name not in self._entries:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(
                f"unknown {self._kind} {name!r}{did_you_mean(name, self.names())}; known: {known}"
            )
        return self._entries[name][0]

    def origin(self, name: str) -> str:
        """Where `name` was declared."""
        self.get(name)
        return self._entries[name][1]

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class MethodEntry:
    """A discovered method: its declaration and folder. The class is imported by `load()`, not before."""

    spec: MethodSpec
    """The folder's method.yaml."""
    folder: Path
    """The method folder."""

    def load(self) -> type[Method]:
        """Import the Method subclass named by `class:`; any fault is a MethodFolderError naming the
        folder. Importing twice returns the same class."""
        from benchmark.api.method import Method

        module = _import_method_module(self.folder, self.spec)
        cls = getattr(module, self.spec.class_name, None)
        if cls is None:
            defined = sorted(
                name
                for name, value in vars(module).items()
                if inspect.isclass(value) and value.__module__ == module.__name__
            )
            raise MethodFolderError(
                f"{self.folder}: {self.spec.module}.py has no class {self.spec.class_name!r} (named by "
                f"'class' in {METHOD_YAML}); it defines: {', '.join(defined) or 'no class'}"
            )
        if not inspect.isclass(cls) or not issubclass(cls, Method):
            raise MethodFolderError(
                f"{self.folder}: {self.spec.class_ref} is not a subclass of benchmark.api.Method"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            raise MethodFolderError(f"{self.folder}: {self.spec.class_ref} does not implement {missing}")
        return cls

    def build(self) -> Method:
        """An instance of the method, configured with its spec."""
        cls = self.load()
        try:
            return cls(self.spec)
        except Exception as error:
            raise MethodFolderError(
                f"{self.folder}: {self.spec.class_ref}({self.spec.name!r} spec) failed: "
                f"{type(error).__name__}: {error}"
            ) from error


def _import_method_module(folder: Path, spec: MethodSpec) -> types.ModuleType:
    """Import `<folder>/<module>.py` as part of a package made of the folder, so that a method may split
    its code into several files (`from .codes import count_codes`). The package name carries a hash of the
    folder's path: two folders with equal method names (tests, out-of-tree copies) never share modules."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    package = f"hmu_method_{spec.name}_{digest}"
    qualified = f"{package}.{spec.module}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    path = folder / f"{spec.module}.py"
    if not path.is_file():
        raise MethodFolderError(f"{folder}: {path.name} (named by 'class' in {METHOD_YAML}) is missing")
    if package not in sys.modules:
        package_spec = importlib.util.spec_from_loader(package, loader=None, is_package=True)
        if package_spec is None:
            raise MethodFolderError(f"{folder}: cannot make a package of the folder")
        package_module = importlib.util.module_from_spec(package_spec)
        package_module.__path__ = [str(folder)]
        sys.modules[package] = package_module
    module_spec = importlib.util.spec_from_file_location(qualified, path)
    if module_spec is None or module_spec.loader is None:
        raise MethodFolderError(f"{folder}: cannot import {path.name}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[qualified] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        # A failed import leaves nothing behind, so that a fixed file imports on the next try.
        for name in [name for name in sys.modules if name == package or name.startswith(package + ".")]:
            del sys.modules[name]
        raise MethodFolderError(
            f"{folder}: importing {path.name} failed: {type(error).__name__}: {error}"
        ) from error
    return module


def methods_dirs(dirs: Sequence[Path] | Path | None = None) -> tuple[Path, ...]:
    """The folders to look for methods in: `dirs`, else $HMU_METHODS_DIR, else the checkout's methods/."""
    if isinstance(dirs, Path):
        return (dirs,)
    if dirs:
        return tuple(dirs)
    value = os.environ.get(ENV_METHODS_DIR, "")
    if value.strip():
        return tuple(Path(part) for part in value.split(os.pathsep) if part.strip())
    checkout = Path(__file__).resolve().parents[2] / "methods"
    if checkout.is_dir():
        return (checkout,)
    raise RegistryError(
        f"no methods folder: set ${ENV_METHODS_DIR} or pass --methods-dir (looked for {checkout})"
    )


def read_method_folder(folder: Path) -> MethodEntry:
    """Check a method folder's files and read its method.yaml (nothing is imported)."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise MethodFolderError(
            f"{folder}: missing {', '.join(missing)} (a method folder has {REQUIRED_FILES})"
        )
    spec = load_method_yaml(folder / METHOD_YAML)
    if spec.name != folder.name:
        raise MethodFolderError(
            f"{folder}: {METHOD_YAML} says name {spec.name!r}, the folder is {folder.name!r} "
            "(they must agree)"
        )
    if not (folder / f"{spec.module}.py").is_file():
        raise MethodFolderError(f"{folder}: {spec.module}.py (named by 'class' in {METHOD_YAML}) is missing")
    return MethodEntry(spec, folder)


def discover_methods(dirs: Sequence[Path] | Path | None = None) -> Registry[MethodEntry]:
    """Every method under the methods folder(s), as a frozen registry. Broken folders are reported together
    in one MethodFolderError, one line each; nothing is imported."""
    registry: Registry[MethodEntry] = Registry("method")
    problems: list[str] = []
    for root in methods_dirs(dirs):
        if not root.is_dir():
            problems.append(f"{root}: not a folder (methods folder)")
            continue
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or folder.name.startswith(("_", ".")):
                continue
            try:
                entry = read_method_folder(folder)
                registry.register(entry.spec.name, entry, origin=str(folder))
            except HMUError as error:
                problems.append(str(error))
    if problems:
        raise MethodFolderError("broken method folder(s):\n  " + "\n  ".join(problems))
    return registry.freeze()
