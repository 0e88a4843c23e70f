"""The stage cache: every validated stage output (and every input the bench prepares itself) stored under the
key of its inputs, so that an interrupted bench resumes and an unchanged bench re-runs from cache.

    >>> cache = StageCache(Path("results/cache"))
    >>> entry = cache.lookup("unlearn", key)           # key: a StageKey (or a PrepareKey); None: a miss
    >>> if entry is None:
    ...     with cache.begin("unlearn", key) as pending:  # <cache>/unlearn/.tmp-<key>-<random>/
    ...         run_the_stage(output=pending.output, logs=pending.logs)
    ...         entry = pending.commit({"seconds": 4.1})   # record.json, then one rename: complete
    >>> entry.output / "model"

An entry is a folder `<cache>/<kind>/<key>/` holding `output/` (what the stage wrote, validated), `input/`
(its request), `logs/` (its stdout, stderr and command line) and `record.json` (the key's material and facts
about the run). It appears in one `rename` of a finished temporary folder, so an entry that exists is
complete; a bench killed mid-stage leaves only a `.tmp-*` folder, which never looks complete and is removed by
`clean_partial` at the next start (the bench holds the results folder's lock, so no other writer owns it).
A hit needs the exact key: the folder name and the material stored in `record.json` must both match, so a
truncated-hash collision or a hand-edited entry is a miss (the odd entry is moved aside, never used).

Failed stages are not cached (they run again next time); their folders are kept under `<cache>/failed/`
(`keep_failed`), because a failed output may be evidence and the harness loses nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmark.errors import HMUError
from benchmark.harness.spec import KEY_LENGTH, sha256_json

RECORD_FILE = "record.json"
"""Inside an entry: the key's material and facts about the run that made it."""

_PARTIAL_PREFIX = ".tmp-"
"""Temporary entry folders start with this: never complete, removed at the next start."""


class CacheError(HMUError):
    """The cache cannot be written (an entry that is not a folder, a name that is not a key)."""


class CacheKey(Protocol):
    """Anything with a `key` (the folder name) and the `material` it was hashed from."""

    @property
    def key(self) -> str: ...

    def material(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MaterialKey:
    """A key made of plain JSON material: what the bench prepares itself (the dataset, the base model, the
    evaluator, a plan) is cached under one, as stages are under a `StageKey`."""

    content: Mapping[str, Any]
    """What the prepared thing is made from: its recipe and its inputs' hashes."""

    def material(self) -> dict[str, Any]:
        return json.loads(json.dumps(dict(self.content)))

    @property
    def key(self) -> str:
        return sha256_json(self.material())[:KEY_LENGTH]


def _readable_folder(path: Path) -> Path:
    """Make `path` (a folder the harness made) enterable and readable by others: a container's user is not
    the folder's owner, and mkdtemp makes folders 0700."""
    os.chmod(path, 0o755)
    return path


@dataclass(frozen=True)
class CacheEntry:
    """A complete cache entry."""

    path: Path
    """`<cache>/<kind>/<key>/`."""
    record: Mapping[str, Any]
    """Its `record.json`: `kind`, `key`, `material`, plus what the writer added."""

    @property
    def output(self) -> Path:
        """The stage's validated output folder."""
        return self.path / "output"

    @property
    def input(self) -> Path:
        """The stage's request folder."""
        return self.path / "input"

    @property
    def logs(self) -> Path:
        """The stage's logs (stdout.log, stderr.log, command.txt)."""
        return self.path / "logs"


@dataclass
class PendingEntry:
    """A cache entry being made: a temporary folder that becomes the entry on `commit`."""

    cache: StageCache
    """The cache it belongs to."""
    kind: str
    """The entry's kind (`unlearn`, `prepare-model`, ...)."""
    key: CacheKey
    """Its key."""
    path: Path
    """The temporary folder (`<cache>/<kind>/.tmp-<key>-<random>/`)."""
    committed: CacheEntry | None = None
    """The entry, once committed."""

    @property
    def output(self) -> Path:
        """Where the stage writes (not created: the runner makes it)."""
        return self.path / "output"

    @property
    def input(self) -> Path:
        """Where the request goes (created)."""
        folder = self.path / "input"
        folder.mkdir(exist_ok=True)
        return _readable_folder(folder)

    @property
    def logs(self) -> Path:
        """Where the stage's logs go."""
        return self.path / "logs"

    def commit(self, facts: Mapping[str, Any] | None = None, *, replace: bool = False) -> CacheEntry:
        """Write `record.json` (the key's material and `facts`), then rename the folder into place. When an
        entry with this key exists, it wins and this folder is removed, unless `replace` (a fresh bench):
        then the old entry is moved aside, the new one renamed in, the old one removed."""
        if self.committed is not None:
            return self.committed
        if not self.output.is_dir():
            raise CacheError(f"{self.path}: nothing to commit (no output/ folder)")
        record = {
            "kind": self.kind,
            "key": self.key.key,
            "material": self.key.material(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(facts or {}),
        }
        _write_json(self.path / RECORD_FILE, record)
        final = self.cache.path(self.kind, self.key.key)
        if replace and final.exists():
            old = final.with_name(f"{_PARTIAL_PREFIX}{final.name}-replaced-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
            os.rename(self.path, final)
            shutil.rmtree(old, ignore_errors=True)
            self.committed = CacheEntry(final, record)
            return self.committed
        try:
            os.rename(self.path, final)
        except OSError:
            existing = self.cache.lookup(self.kind, self.key)
            if existing is None:
                raise
            shutil.rmtree(self.path, ignore_errors=True)
            self.committed = existing
            return existing
        self.committed = CacheEntry(final, record)
        return self.committed


def _write_json(path: Path, data: Any) -> None:
    """JSON through a temporary file renamed into place (a reader never sees half a file)."""
    text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@dataclass(frozen=True)
class StageCache:
    """The cache under one folder (module docstring). Not safe for two writers: the bench locks the results
    folder for that."""

    root: Path
    """`<results>/cache` by default."""

    def path(self, kind: str, key: str) -> Path:
        """Where the entry of `key` lies (whether or not it exists)."""
        if not kind or "/" in kind or kind.startswith(".") or not key.isalnum():
            raise CacheError(f"bad cache address {kind!r}/{key!r}")
        return self.root / kind / key

    def lookup(self, kind: str, key: CacheKey) -> CacheEntry | None:
        """The complete entry of exactly `key`, or None. An entry whose record does not hold this key's
        material is moved aside (`<key>.mismatch-<time>`) and is a miss."""
        path = self.path(kind, key.key)
        if not path.is_dir():
            return None
        try:
            record = json.loads((path / RECORD_FILE).read_text(encoding="utf-8"))
            ok = (
                isinstance(record, dict)
                and record.get("material") == json.loads(json.dumps(key.material()))
                and (path / "output").is_dir()
            )
        except (OSError, ValueError):
            ok = False
        if not ok:
            os.rename(path, path.with_name(f"{path.name}.mismatch-{uuid.uuid4().hex[:8]}"))
            return None
        return CacheEntry(path, record)

    @contextmanager
    def begin(self, kind: str, key: CacheKey) -> Iterator[PendingEntry]:
        """A temporary folder for a new entry of `key`. Leaving the block without `commit` (an error, a
        failed stage) removes it, unless `keep_failed` moved it away first."""
        parent = self.root / kind
        parent.mkdir(parents=True, exist_ok=True)
        self.path(kind, key.key)  # checks the address
        folder = Path(tempfile.mkdtemp(prefix=f"{_PARTIAL_PREFIX}{key.key}-", dir=parent))
        pending = PendingEntry(self, kind, key, _readable_folder(folder))
        try:
            yield pending
        finally:
            if pending.committed is None and folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def keep_failed(self, pending: PendingEntry, state: str) -> Path:
        """Move an uncommitted entry's folder (the failed output, its request and logs) to
        `<cache>/failed/<kind>/<key>.<state>.<time>/` and return that path."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = (
            self.root / "failed" / pending.kind / f"{pending.key.key}.{state}.{stamp}-{uuid.uuid4().hex[:6]}"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(pending.path, target)
        return target

    def clean_partial(self) -> int:
        """Remove the temporary folders of entries never committed (a bench killed mid-stage); returns how
        many. Only call while holding the results folder's lock."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for kind in self.root.iterdir():
            if not kind.is_dir():
                continue
            for folder in kind.glob(f"{_PARTIAL_PREFIX}*"):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed
