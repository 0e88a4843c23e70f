"""`hmu split`: divide a dataset into the forget and retain motions of a task's concept.

Writes `<split>-w-<concept>.txt` (forget) and `<split>-wo-<concept>.txt` (retain) for every split of the task,
under `<data>/kw_splits/` as the original HMU scripts did, and prints a table of counts (plus precision and
recall when the dataset has ground-truth labels).

    hmu split --task tasks/embedded_violence.yaml --data data/embedded
    hmu split --task humanml3d_violence --data dataset/HumanML3D --compare-legacy
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from benchmark.data.captions import read_captions
from benchmark.data.layout import DatasetLayout
from benchmark.splits import (
    CaptionMatcher,
    SplitPart,
    SplitResult,
    compute_split,
    make_matcher,
    write_split_files,
)
from benchmark.tasks import TaskSpec, find_task, load_task

EXAMPLES = """\
examples:
  hmu split --task tasks/embedded_violence.yaml --data data/embedded
  hmu split --task humanml3d_violence --data dataset/HumanML3D --out /tmp/kw_splits
  hmu split --task humanml3d_violence --data dataset/HumanML3D --legacy-substring   # the original grep
  hmu split --task humanml3d_violence --data dataset/HumanML3D --compare-legacy     # both, side by side
"""

DIFF_EXAMPLES = 3
"""Differing ids shown per split and side by `--compare-legacy`."""

CAPTION_WIDTH = 60
"""Characters of a caption shown in an example line."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "split",
        help="divide a dataset into a task's forget and retain motions",
        description="Divide each split of a dataset (train_val, test) into the motions whose captions\n"
        "mention the task's concept (forget: <split>-w-<concept>.txt) and the others\n"
        "(retain: <split>-wo-<concept>.txt), and print counts, plus precision and recall when the\n"
        "dataset has ground-truth labels (labels.jsonl).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", required=True, metavar="FILE|NAME", help="a task YAML file or a task name")
    parser.add_argument("--data", required=True, type=Path, metavar="DIR", help="the dataset folder")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to write the id lists (default: <data>/kw_splits, or <data>/kw_splits-legacy with "
        "--legacy-substring, so the two never overwrite each other)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--legacy-substring",
        action="store_true",
        help="match as the original did: case-sensitive substrings of the raw caption lines",
    )
    mode.add_argument(
        "--compare-legacy",
        action="store_true",
        help="print whole-word and legacy matching side by side, with examples of the ids they disagree on; "
        "writes nothing",
    )
    parser.add_argument(
        "--tasks-dir",
        type=Path,
        metavar="DIR",
        help="where task names are looked up (default: $HMU_TASKS_DIR, else ./tasks)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tasks_dir = args.tasks_dir or Path(os.environ.get("HMU_TASKS_DIR", "tasks"))
    task = load_task(find_task(args.task, tasks_dir))
    if args.compare_legacy:
        words = compute_split(task, args.data, mode="words")
        legacy = compute_split(task, args.data, mode="legacy_substring")
        print(_header(task, words))
        print()
        print(_comparison_table(words, legacy))
        for line in _differences(task, words, legacy):
            print(line)
        return 0

    mode = "legacy_substring" if args.legacy_substring else task.split.match
    result = compute_split(task, args.data, mode=mode)
    print(_header(task, result))
    print()
    print(_split_table(result))
    print()
    minimum = task.split.min_occurrences
    print(f"partial: retained motions that mention the concept in fewer than {minimum} caption lines")
    if result.labels_path is not None:
        print("missed: ground-truth concept motions in the retain set; implicit: those no caption line names")
    default_out = "kw_splits-legacy" if mode == "legacy_substring" else "kw_splits"
    out_dir = args.out if args.out is not None else args.data / default_out
    for path in write_split_files(result, out_dir):
        count = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line)
        print(f"wrote {path} ({count} ids)")
    return 0


def _header(task: TaskSpec, result: SplitResult) -> str:
    truth = f"ground truth: {result.labels_path.name}" if result.labels_path else "no ground-truth labels"
    return (
        f"task {task.name} (version {task.version}): concept {task.concept.name}, "
        f"keywords {', '.join(task.concept.keywords)}\n"
        f"match {result.mode}, min_occurrences {task.split.min_occurrences}, data {result.data_dir} ({truth})"
    )


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """A plain-text table: the first `text_columns` columns left-aligned, the numbers right-aligned."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        aligned = (
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(aligned).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _split_table(result: SplitResult) -> str:
    headers = ["split", "total", "forget", "forget %", "retain", "retain %", "partial"]
    with_truth = result.labels_path is not None
    if with_truth:
        headers += ["precision", "recall", "F1", "missed", "implicit"]
    rows = []
    for part in result.parts:
        row = [
            part.split,
            str(part.total),
            str(len(part.forget)),
            _percent(len(part.forget), part.total),
            str(len(part.retain)),
            _percent(len(part.retain), part.total),
            str(len(part.partial)),
        ]
        if with_truth:
            row += [
                _ratio(part.precision),
                _ratio(part.recall),
                _ratio(part.f1),
                str(len(part.missed)),
                str(len(part.implicit)),
            ]
        rows.append(row)
    return _table(headers, rows)


def _comparison_table(words: SplitResult, legacy: SplitResult) -> str:
    headers = ["split", "mode", "forget", "forget %", "retain"]
    with_truth = words.labels_path is not None
    if with_truth:
        headers += ["precision", "recall", "F1"]
    rows = []
    for word_part in words.parts:
        for result in (words, legacy):
            part = result.part(word_part.split)
            row = [
                part.split if result is words else "",
                result.mode,
                str(len(part.forget)),
                _percent(len(part.forget), part.total),
                str(len(part.retain)),
            ]
            if with_truth:
                row += [_ratio(part.precision), _ratio(part.recall), _ratio(part.f1)]
            rows.append(row)
    return _table(headers, rows, text_columns=2)


def _example(layout: DatasetLayout, motion_id: str, matcher: CaptionMatcher) -> str:
    """`id  "first matching caption"  [what matched]` for one id."""
    for caption in read_captions(layout.text_path(motion_id)):
        matched = matcher.explain(caption)
        if matched:
            text = caption.text
            if len(text) > CAPTION_WIDTH:
                text = text[: CAPTION_WIDTH - 3] + "..."
            return f'{motion_id}  "{text}"  [{", ".join(matched)}]'
    return motion_id


def _differences(task: TaskSpec, words: SplitResult, legacy: SplitResult) -> list[str]:
    """Per split, how many ids the two modes put on different sides, with a few examples of each kind."""
    layout = DatasetLayout(words.data_dir)
    lines = []
    for word_part in words.parts:
        legacy_part: SplitPart = legacy.part(word_part.split)
        word_forget, legacy_forget = set(word_part.forget), set(legacy_part.forget)
        only_legacy = [i for i in word_part.ids if i in legacy_forget and i not in word_forget]
        only_words = [i for i in word_part.ids if i in word_forget and i not in legacy_forget]
        differ = len(only_legacy) + len(only_words)
        lines += ["", f"{word_part.split}: {differ} {'id differs' if differ == 1 else 'ids differ'}"]
        for mode, ids in (("legacy_substring", only_legacy), ("words", only_words)):
            if not ids:
                continue
            matcher = make_matcher(task.concept, mode)
            lines.append(f"  forget only with {mode} ({len(ids)}):")
            lines += [f"    {_example(layout, i, matcher)}" for i in ids[:DIFF_EXAMPLES]]
    return lines
