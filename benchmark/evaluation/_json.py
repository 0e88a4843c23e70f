"""Typed reading of parsed JSON files: every bad field is a ConfigError naming the file and the field.

>>> reader = JsonReader(Path("request.json"))
>>> repeats = reader.get(data, "repeats", "", int)                 # ConfigError: request.json: field ...
>>> name = reader.get(data["task"], "name", "task", str)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError

_MISSING = object()


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


@dataclass(frozen=True)
class JsonReader:
    """Field access on the parsed content of one JSON file."""

    path: Path
    """The file, named in every error."""

    def error(self, field: str, message: str) -> ConfigError:
        return ConfigError(self.path, field or None, message)

    def get(
        self,
        data: Any,
        key: str,
        where: str,
        kind: type | tuple[type, ...],
        *,
        optional: bool = False,
        default: Any = _MISSING,
    ) -> Any:
        """`data[key]` checked to be of `kind`; `optional`: null is allowed; `default`: the key may be absent.

        `where` is the dotted path of `data` in the file (`""` at the top), for the error message.
        """
        name = f"{where}.{key}" if where else key
        if not isinstance(data, dict):
            raise self.error(where, "expected an object")
        if key not in data:
            if default is not _MISSING:
                return default
            raise self.error(name, "missing")
        value = data[key]
        if value is None and optional:
            return None
        kinds = _kinds(kind)
        # bool is an int in Python: `true` where a count belongs is a mistake, not 1.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(name, f"expected {names}{' or null' if optional else ''}, got {value!r:.80}")
        return value


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file; a missing or malformed file is a ConfigError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(path, None, f"not a readable JSON file: {error}") from None
