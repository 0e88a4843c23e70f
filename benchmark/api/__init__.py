"""The method interface (version 1): the Method base class, the container contract's JSON documents, the
`method.yaml` schema, method discovery and the entrypoint that serves the container verbs.

- `contract`: `UnlearnRequest`, `GenerateRequest`, `StageResult` (result.json), `MethodDescription`
  (describe), `UnlearnProvenance` (what an unlearned model folder records): frozen dataclasses with strict
  `from_json`/`to_json`.
- `method_yaml`: `MethodSpec` (a folder's method.yaml), its sweep (`runs()`) and parameter resolution.
- `registry`: `Registry` (generic, typed, frozen after filling) and `discover_methods()`.
- `method`: `Method` (the abstract base class a method implements) and `UnlearnOutcome`.
- `entrypoint`: `run_stage` (unlearn, generate) and `print_description` (describe): `hmu method <verb>`.

    from benchmark.api import Method, UnlearnOutcome

    class OriginalMethod(Method):
        def unlearn(self, model, request, workdir):
            return UnlearnOutcome(backbone=model.backbone, record={"change": "none"})

Importing this package stays light (no torch): `Method` and `UnlearnOutcome` are imported on first use, so
that `hmu methods ls` and the harness's planning never start torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmark.api.contract import (
    INTERFACE_VERSION,
    ConceptRef,
    ContractError,
    DataSubset,
    GenerateRequest,
    MethodDescription,
    Resources,
    StageResult,
    TaskRef,
    UnlearnProvenance,
    UnlearnRequest,
)
from benchmark.api.method_yaml import MethodSpec, SweepRun, load_method_yaml
from benchmark.api.registry import (
    MethodEntry,
    MethodFolderError,
    Registry,
    RegistryError,
    discover_methods,
)

if TYPE_CHECKING:
    from benchmark.api.method import Method, MethodError, UnlearnOutcome

_LAZY = {"Method", "MethodError", "UnlearnOutcome"}
"""Names served from `benchmark.api.method`, which imports torch: loaded on first access (PEP 562)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from benchmark.api import method

        return getattr(method, name)
    raise AttributeError(f"module 'benchmark.api' has no attribute {name!r}")


__all__ = [
    "INTERFACE_VERSION",
    "ConceptRef",
    "ContractError",
    "DataSubset",
    "GenerateRequest",
    "Method",
    "MethodDescription",
    "MethodEntry",
    "MethodError",
    "MethodFolderError",
    "MethodSpec",
    "Registry",
    "RegistryError",
    "Resources",
    "StageResult",
    "SweepRun",
    "TaskRef",
    "UnlearnOutcome",
    "UnlearnProvenance",
    "UnlearnRequest",
    "discover_methods",
    "load_method_yaml",
]
