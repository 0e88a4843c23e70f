"""Errors the user can act on.

The CLI prints them as one line; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class HMUError(Exception):
    """Base class of errors caused by input (files, options), not by a bug."""


class DataFormatError(HMUError):
    """A data file is missing, malformed or holds bad values. Names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class ConfigError(HMUError):
    """A configuration file (task YAML, method YAML) is malformed. Names the file and the field."""

    def __init__(self, path: str | Path, field: str | None, message: str) -> None:
        self.path = Path(path)
        self.field = field
        where = f"{self.path}: field '{field}'" if field else str(self.path)
        super().__init__(f"{where}: {message}")
