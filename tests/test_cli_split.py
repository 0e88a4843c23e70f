"""`hmu split` end to end on a small hand-built dataset folder: the printed table and the files written."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from benchmark.cli import main as cli

# id -> (caption lines as "text#tokens", violent by ground truth)
MOTIONS: dict[str, tuple[list[str], bool]] = {
    "000001": (["a person kicks.#a/DET person/NOUN kick/VERB", "he kicks.#he/PRON kick/VERB"], True),
    "000002": (["a man walks.#a/DET man/NOUN walk/VERB", "he walks.#he/PRON walk/VERB"], False),
    "000003": (["a man in white waves.#a/DET man/NOUN in/ADP white/ADJ wave/VERB"], False),
    "000004": (["a man punches.#a/DET man/NOUN punch/VERB", "he strikes.#he/PRON strike/VERB"], True),
    "100001": (["a person boxes.#a/DET person/NOUN box/VERB", "he boxes.#he/PRON box/VERB"], True),
    "100002": (["he lifts two boxes.#he/PRON lift/VERB two/NUM box/NOUN"], False),
    "100003": (["a person strikes.#a/DET person/NOUN strike/VERB"], True),
    "100004": (["a person jogs.#a/DET person/NOUN jog/VERB"], False),
}
SPLITS = {
    "train_val": ["000001", "000002", "000003", "000004"],
    "test": ["100001", "100002", "100003", "100004"],
}

TASK = """\
name: tiny_violence
version: 2
dataset: {name: embedded, fps: 20}
concept:
  name: violence
  keywords: [kick, punch, hit, beat, boxe, boxing, jab, uppercut, hook]
  pos: {box: [VERB]}
split: {min_occurrences: 1}
prompt_sets:
  forget_test: {source: forget, split: test, metrics: {fid: reference}}
  retain_test: {source: retain, split: test, metrics: {fid: lower}}
"""


@pytest.fixture
def hmu(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`hmu` with only the split subcommand, so these tests do not depend on the other subcommands."""
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("benchmark.cli.split",))
    return cli


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "texts").mkdir(parents=True)
    for motion_id, (lines, _) in MOTIONS.items():
        text = "".join(f"{line}#0.0#0.0\n" for line in lines)
        (root / "texts" / f"{motion_id}.txt").write_text(text, encoding="utf-8")
    for split, ids in SPLITS.items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    labels = [{"id": i, "concepts": ["violence"] if violent else []} for i, (_, violent) in MOTIONS.items()]
    (root / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels), encoding="utf-8")
    return root


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks" / "tiny_violence.yaml"
    path.parent.mkdir()
    path.write_text(TASK, encoding="utf-8")
    return path


def rows(output: str) -> dict[str, list[str]]:
    """The table's data rows by their first cell."""
    return {
        line.split()[0]: line.split()[1:]
        for line in output.splitlines()
        if line.startswith(("train_val", "test"))
    }


def test_split_prints_the_table_and_writes_the_files(
    hmu: ModuleType, dataset: Path, task_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hmu.main(["split", "--task", str(task_file), "--data", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "task tiny_violence (version 2): concept violence" in out
    header = next(line for line in out.splitlines() if line.startswith("split"))
    assert header.split() == [
        "split", "total", "forget", "forget", "%", "retain", "retain", "%", "partial",
        "precision", "recall", "F1", "missed", "implicit",
    ]  # fmt: skip
    table = rows(out)
    # train_val: forget {000001, 000004} of 4, both violent; nothing missed.
    assert table["train_val"] == ["4", "2", "50.0%", "2", "50.0%", "0", "1.000", "1.000", "1.000", "0", "0"]
    # test: forget {100001}; truth {100001, 100003}: precision 1, recall 0.5, 100003 missed and implicit.
    assert table["test"] == ["4", "1", "25.0%", "3", "75.0%", "0", "1.000", "0.500", "0.667", "1", "1"]
    out_dir = dataset / "kw_splits"
    assert (out_dir / "test-w-violence.txt").read_text() == "100001\n"
    assert (out_dir / "test-wo-violence.txt").read_text() == "100002\n100003\n100004\n"
    assert (out_dir / "train_val-w-violence.txt").read_text() == "000001\n000004\n"
    assert f"wrote {out_dir / 'train_val-wo-violence.txt'} (2 ids)" in out


def test_task_by_name_and_out_dir(
    hmu: ModuleType, dataset: Path, task_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "elsewhere"
    argv = ["split", "--task", "tiny_violence", "--tasks-dir", str(task_file.parent), "--data", str(dataset)]
    assert hmu.main([*argv, "--out", str(out_dir)]) == 0
    assert (out_dir / "test-w-violence.txt").read_text() == "100001\n"
    assert not (dataset / "kw_splits").exists()


def test_legacy_substring_writes_beside_the_new_splits(
    hmu: ModuleType, dataset: Path, task_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hmu.main(["split", "--task", str(task_file), "--data", str(dataset), "--legacy-substring"]) == 0
    out = capsys.readouterr().out
    assert "match legacy_substring" in out
    # "white" -> hit and "boxes" (noun) -> boxe: both false positives come back.
    legacy = dataset / "kw_splits-legacy"
    assert (legacy / "train_val-w-violence.txt").read_text() == "000001\n000003\n000004\n"
    assert (legacy / "test-w-violence.txt").read_text() == "100001\n100002\n"
    assert rows(out)["test"][6:8] == ["0.500", "0.500"]  # precision, recall


def test_compare_legacy_shows_both_modes_and_differing_ids(
    hmu: ModuleType, dataset: Path, task_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hmu.main(["split", "--task", str(task_file), "--data", str(dataset), "--compare-legacy"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    words_row = next(line for line in lines if line.startswith("train_val")).split()
    assert words_row[:4] == ["train_val", "words", "2", "50.0%"]
    legacy_row = lines[lines.index(next(line for line in lines if line.startswith("train_val"))) + 1].split()
    assert legacy_row[:3] == ["legacy_substring", "3", "75.0%"]
    assert "train_val: 1 id differs" in out
    assert '000003  "a man in white waves."  [hit]' in out
    assert '100002  "he lifts two boxes."  [boxe]' in out
    assert not (dataset / "kw_splits").exists()  # a diagnostic: writes nothing


def test_empty_forget_set_is_a_one_line_error(
    hmu: ModuleType, dataset: Path, task_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zombie = TASK.replace("[kick, punch, hit, beat, boxe, boxing, jab, uppercut, hook]", "[zombie]")
    task_file.write_text(zombie.replace("  pos: {box: [VERB]}\n", ""), encoding="utf-8")
    assert hmu.main(["split", "--task", str(task_file), "--data", str(dataset)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = "hmu split: error: task tiny_violence: the forget set of split 'train_val' is empty"
    assert err[-1].startswith(expected)


def test_unknown_task_name_suggests_one(
    hmu: ModuleType, dataset: Path, task_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["split", "--task", "tiny_violense", "--tasks-dir", str(task_file.parent), "--data", str(dataset)]
    assert hmu.main(argv) == 2
    assert "did you mean 'tiny_violence'" in capsys.readouterr().err
