"""The results store and the stage cache: immutable run folders, atomic writes (a crash leaves nothing that
looks complete), failed runs kept with their logs, cache hits only on the exact key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from harness_support import run_spec

from benchmark.harness import store as store_module
from benchmark.harness.cache import MaterialKey, StageCache
from benchmark.harness.spec import RunSpec, StageKey
from benchmark.harness.store import (
    ResultsStore,
    RunRecord,
    RunStatus,
    Sample,
    StageFiles,
    StageRecord,
    StoreError,
    hardware,
)


def _spec(seed: int = 0) -> RunSpec:
    return run_spec(seed=seed)


def _stage(kind: str, state: str = "ok", **changes) -> StageRecord:
    values = {
        "stage": kind,
        "key": f"{kind}key",
        "state": state,
        "cached": False,
        "seconds": 1.5,
        "runner": "local",
        "message": f"{kind} {state}",
    }
    return StageRecord(**{**values, **changes})


def _logs(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stdout.log").write_text("")
    (folder / "stderr.log").write_text(text)
    (folder / "command.txt").write_text("hmu method unlearn ...\n")
    return folder


def _record(tmp_path: Path, seed: int = 0, failed: bool = False) -> RunRecord:
    request = tmp_path / f"request-{seed}.json"
    request.write_text('{"schema": "hmu.unlearn-request/1"}')
    if failed:
        stages = (
            _stage("unlearn", "failed", message="RuntimeError: broken on purpose"),
            _stage("generate", "blocked", runner=None, seconds=0.0),
            _stage("evaluate", "blocked", runner=None, seconds=0.0),
        )
        files = {"unlearn": StageFiles(request, {"status": "failed"}, _logs(tmp_path / f"l{seed}", "boom"))}
        return RunRecord(_spec(seed), RunStatus(stages), {"runner": "local"}, files)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"schema": "hmu.metrics/1", "prompt_sets": {}}))
    files = {
        kind: StageFiles(request, {"status": "ok"}, _logs(tmp_path / f"{kind}{seed}", kind))
        for kind in ("unlearn", "generate", "evaluate")
    }
    sample = Sample("forget_test", "forget_test.00000", "a person kicks", np.zeros((8, 263), np.float32))
    stages = tuple(_stage(kind) for kind in ("unlearn", "generate", "evaluate"))
    return RunRecord(
        _spec(seed), RunStatus(stages, ("a note",)), {"runner": "local"}, files, metrics, (sample,)
    )


def test_a_run_folder_holds_everything_and_reads_back(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    stored = store.write(_record(tmp_path))
    run_id = _spec().run_id
    assert stored.path == tmp_path / "results" / "runs" / run_id
    names = sorted(str(p.relative_to(stored.path)) for p in stored.path.rglob("*") if p.is_file())
    assert names == sorted(
        [
            "run_spec.json",
            "status.json",
            "provenance.json",
            "metrics.json",
            *(
                f"{kind}/{name}"
                for kind in ("unlearn", "generate", "evaluate")
                for name in ("request.json", "result.json")
            ),
            *(
                f"logs/{kind}/{name}"
                for kind in ("unlearn", "generate", "evaluate")
                for name in ("stdout.log", "stderr.log", "command.txt")
            ),
            "samples/forget_test.npy",
            "samples/samples.json",
        ]
    )
    again = store.read(run_id)
    assert again.spec == _spec() and again.status.status == "ok" and again.status.notes == ("a note",)
    assert again.provenance["schema"] == "hmu.provenance/1"
    assert again.samples()["forget_test"]["text"] == "a person kicks"
    assert np.load(stored.path / "samples" / "forget_test.npy").shape == (8, 263)
    # Read-only once written.
    assert all(not os.access(p, os.W_OK) or os.geteuid() == 0 for p in stored.path.rglob("*") if p.is_file())
    assert all((p.stat().st_mode & 0o222) == 0 for p in stored.path.rglob("*") if p.is_file())
    assert [run.run_id for run in store.runs()] == [run_id]


def test_a_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    store.write(_record(tmp_path))
    with pytest.raises(StoreError, match="never overwritten"):
        store.write(_record(tmp_path))
    superseded = store.supersede(_spec().run_id)
    assert superseded.parent.name == ".superseded" and (superseded / "status.json").is_file()
    assert not store.exists(_spec().run_id)
    stored = store.write(_record(tmp_path))
    assert stored.status.record_id != json.loads((superseded / "status.json").read_text())["record_id"]
    assert [run.run_id for run in store.runs()] == [_spec().run_id]  # the superseded one is not listed


def test_a_crash_mid_write_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch) -> None:
    store = ResultsStore(tmp_path / "results")

    def crash(folder: Path, samples) -> None:
        (folder).mkdir()
        (folder / "half.npy").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_write_samples", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write(_record(tmp_path))
    assert not store.exists(_spec().run_id)
    assert list(store.runs_dir.iterdir()) == []  # the temporary folder went too
    # A process killed mid-write leaves its temporary folder: never listed, removed by the next bench.
    partial = store.runs_dir / f".tmp-{_spec().run_id}-x1y2"
    partial.mkdir()
    (partial / "run_spec.json").write_text("{}")
    assert store.runs() == [] and not store.exists(_spec().run_id)
    assert store.clean_partial() == 1 and not partial.exists()


def test_a_failed_run_is_stored_with_its_state_and_logs(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    stored = store.write(_record(tmp_path, failed=True))
    status = json.loads((stored.path / "status.json").read_text())
    assert status["status"] == "failed"
    assert (status["failed_stage"], status["state"]) == ("unlearn", "failed")
    assert "broken on purpose" in status["message"]
    assert [stage["state"] for stage in status["stages"]] == ["failed", "blocked", "blocked"]
    assert (stored.path / "logs" / "unlearn" / "stderr.log").read_text() == "boom"
    assert stored.metrics_path is None and stored.metrics() is None


def test_malformed_run_folders_are_refused(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    stored = store.write(_record(tmp_path))
    other = store.runs_dir / "someone-else"
    other.mkdir()
    for name in ("run_spec.json", "status.json", "provenance.json"):
        (other / name).write_bytes((stored.path / name).read_bytes())
    with pytest.raises(StoreError, match="belongs to run"):
        store.read("someone-else")
    with pytest.raises(StoreError):
        store.read("../escape")


def test_hardware_names_the_machine() -> None:
    info = hardware()
    assert info["cores"] >= 1 and info["cpu"] and info["torch"]
    assert "gpu" in info and info["memory_bytes"] > 0


# ----------------------------------------------------------------------------- the cache


KEY = StageKey("unlearn", "sha256:image", {"model": "m"}, {"alpha": 1.0}, seed=0)


def test_an_entry_exists_only_once_committed(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    assert cache.lookup("unlearn", KEY) is None
    with cache.begin("unlearn", KEY) as pending:
        (pending.output / "model").mkdir(parents=True)
        (pending.output / "model" / "weights").write_text("w")
        assert cache.lookup("unlearn", KEY) is None  # being written: not there
        assert pending.path.name.startswith(".tmp-")
        entry = pending.commit({"seconds": 2.0})
    assert entry.path == tmp_path / "cache" / "unlearn" / KEY.key
    hit = cache.lookup("unlearn", KEY)
    assert hit is not None and hit.record["seconds"] == 2.0 and (hit.output / "model" / "weights").is_file()
    assert hit.record["material"] == KEY.material()
    assert [p.name for p in (tmp_path / "cache" / "unlearn").iterdir()] == [KEY.key]


def test_an_interrupted_stage_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(RuntimeError):
        with cache.begin("unlearn", KEY) as pending:
            pending.output.mkdir()
            (pending.output / "result.json").write_text("{}")
            raise RuntimeError("killed")
    assert cache.lookup("unlearn", KEY) is None
    assert list((tmp_path / "cache" / "unlearn").iterdir()) == []
    # A harness killed outright leaves the temporary folder; the next bench removes it.
    leftover = tmp_path / "cache" / "unlearn" / f".tmp-{KEY.key}-abc"
    (leftover / "output").mkdir(parents=True)
    assert cache.lookup("unlearn", KEY) is None
    assert cache.clean_partial() == 1 and not leftover.exists()


def test_a_hit_needs_the_exact_key(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    with cache.begin("unlearn", KEY) as pending:
        pending.output.mkdir()
        pending.commit()
    other = StageKey("unlearn", "sha256:image", {"model": "m"}, {"alpha": 2.0}, seed=0)
    assert cache.lookup("unlearn", other) is None
    assert cache.lookup("generate", KEY) is None
    # An entry whose stored material is not the key's (a collision, a hand edit) is moved aside, never used.
    record = tmp_path / "cache" / "unlearn" / KEY.key / "record.json"
    data = json.loads(record.read_text())
    data["material"]["seed"] = 9
    record.write_text(json.dumps(data))
    assert cache.lookup("unlearn", KEY) is None
    assert [p.name.split(".")[1].split("-")[0] for p in (tmp_path / "cache" / "unlearn").iterdir()] == [
        "mismatch"
    ]


def test_failed_stages_are_kept_not_cached_and_fresh_replaces(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    with cache.begin("unlearn", KEY) as pending:
        pending.output.mkdir()
        (pending.output / "evidence").write_text("what the stage left")
        kept = cache.keep_failed(pending, "invalid_output")
    assert cache.lookup("unlearn", KEY) is None
    assert kept.parent == tmp_path / "cache" / "failed" / "unlearn" and ".invalid_output." in kept.name
    assert (kept / "output" / "evidence").read_text() == "what the stage left"
    for content in ("first", "second"):
        with cache.begin("unlearn", KEY) as pending:
            pending.output.mkdir()
            (pending.output / "content").write_text(content)
            pending.commit(replace=content == "second")
    hit = cache.lookup("unlearn", KEY)
    assert hit is not None and (hit.output / "content").read_text() == "second"
    # Without replace, an existing entry wins.
    with cache.begin("unlearn", KEY) as pending:
        pending.output.mkdir()
        (pending.output / "content").write_text("third")
        entry = pending.commit()
    assert (entry.output / "content").read_text() == "second"
    assert sorted(p.name for p in (tmp_path / "cache" / "unlearn").iterdir()) == [KEY.key]


def test_material_keys_hash_their_content() -> None:
    a = MaterialKey({"kind": "data", "motions": 2000, "seed": 0})
    assert a.key == MaterialKey({"seed": 0, "motions": 2000, "kind": "data"}).key
    assert a.key != MaterialKey({"kind": "data", "motions": 2001, "seed": 0}).key
