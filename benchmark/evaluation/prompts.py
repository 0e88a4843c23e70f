"""The evaluation plan of a task: its prompt sets, built from a dataset and its concept split; their files.

A prompt set (`forget_test`, `forget_test_implicit`, `retain_test`, ...) becomes a `PromptSetPlan`: one
`EvalItem` per caption that will be generated, grouped by the reference motion the captions describe
(`PromptGroup`). An `EvaluationPlan` holds every prompt set of a task plus the `ConceptDatabase` (the real
motions of the training split with concept labels: NCS retrieves among them, the concept classifier is fitted
on them). `write_plan` writes it as the two files the containers exchange:

- `prompts.json`: every item as a `benchmark.backbone.generation.Prompt` (`id`, `text`, `length`, `repeats`,
  `seed`), the input of a method's `generate` verb;
- `references.json`: the plan itself (schema `PLAN_SCHEMA`), the input of the evaluator's `evaluate` verb.

    >>> task = load_task("tasks/embedded_violence.yaml")
    >>> folder = HumanML3DFolder("data/embedded")
    >>> split = compute_split(task, folder.root)
    >>> plan = build_evaluation_plan(task, folder, split, passes=20, max_prompts=256)
    >>> [(s.name, len(s.groups), len(s.items)) for s in plan.prompt_sets]
    >>> write_plan(plan, "runs/plan")        # runs/plan/prompts.json, runs/plan/references.json
    >>> plan == read_plan("runs/plan/references.json")
    True

Decisions (and why):

- **Captions take turns across passes.** The protocol evaluates 20 passes; MoMask's loader draws one random
  caption per motion per pass. Here each reference motion's captions take turns from a random per-motion
  offset: pass r uses caption `(offset + r) mod n` and its generation number `r // n`. Every pass has one
  caption per motion (as MoMask), every caption is used equally often (±1, lower variance than independent
  draws), and generation costs motions × passes, as MoMask's. An item's `repeats` in `prompts.json` is the
  number of passes that use it; an item no pass uses (fewer passes than captions) is not generated.
- **Lengths** are the reference's frames rounded down to a multiple of 4 (`UNIT_LENGTH`, the backbone's
  token) and capped at 196 (`MAX_FRAMES`), as the T2M evaluation loader does. That loader also draws a random
  crop and, one time in three, one unit less; here the reference is the first `length` frames of the caption's
  span, fixed, so that its ground-truth statistics can be cached. A caption with a time span (HumanML3D
  segments) is its own reference motion, the frames it describes. References shorter than 40 frames
  (`MIN_FRAMES`) are left out, as HumanML3D's loader does; longer than 196 are cropped, where that loader
  drops motions of 200 frames or more.
- **Implicit prompts.** `source: implicit` with a split (the embedded dataset, which has ground truth): the
  captions of that split's motions whose ground truth has the concept but none of whose captions names a
  keyword (`SplitPart.implicit`); they have reference motions, so every metric applies. With `prompts`
  (HumanML3D, Motion-X: the task's paraphrases) and for `source: list`: one item per prompt, no reference
  motion, `list_prompt_seconds` long; only reference-free metrics apply (no FID; R-precision ranks the
  prompts of the set among themselves).
- **Retain is the keyword split's.** `source: retain` is every motion no keyword marks, so on a dataset with
  ground truth it also holds the implicit concept motions (those of `forget_test_implicit`): a method that
  forgets the concept itself, not its words, loses a little on `retain_test` for them, as it would on the
  original HMU split.
- **Masked captions** (MM-Safe): every caption is also kept with its concept keywords replaced by `***`
  (`benchmark.metrics.mask_caption`, the task's whole-word matching even when the split used
  `legacy_substring`).
- **Prompt ids** are `<prompt set>.<index>` (index in the set's item order, 5 digits): always valid
  (`generation.PROMPT_ID`) whatever the dataset's ids look like (Motion-X ids hold slashes).
- **The concept database** is the first split of the task's split rule that no prompt set draws from
  (`train_val`), labelled by the task's keyword split (`keywords`, as HMU's NCS, which looked for keywords in
  descriptions) or by the dataset's ground truth (`ground_truth`).
- **Determinism.** The plan is a function of (task, dataset, split, seed, passes, max_prompts, ...): the
  turn offsets and the `max_prompts` subsample come from `numpy.random.default_rng([seed, set index])`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmark.backbone.generation import Prompt, motion_key, write_prompts
from benchmark.data.captions import Caption, parse_caption_line
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.errors import ConfigError, HMUError
from benchmark.evaluation._json import JsonReader, read_json
from benchmark.metrics.matching import mask_caption
from benchmark.splits import KeywordMatcher, SplitPart, SplitResult
from benchmark.tasks import MetricSpec, PromptSetSpec, TaskSpec

PLAN_SCHEMA = "hmu.evaluation-plan/1"
"""Schema id of `references.json`; bumped whenever its fields or their meaning change."""

PROMPTS_FILE = "prompts.json"
"""The prompts a method generates from (the `generate` verb's input)."""

REFERENCES_FILE = "references.json"
"""The plan the evaluator reads (the `evaluate` verb's input)."""

UNIT_LENGTH = 4
"""Frames per backbone token: generated and reference lengths are multiples of it."""

MAX_FRAMES = 196
"""Longest motion evaluated (frames), the T2M protocol's `max_motion_length`."""

MIN_FRAMES = 40
"""Shortest reference motion kept (frames), HumanML3D's `min_motion_len`."""

DEFAULT_PASSES = 20
"""Generation passes planned: the protocol's 20 repeats, each on its own generations."""

DEFAULT_LIST_PROMPT_SECONDS = 6.0
"""Length of prompts without a reference motion (implicit paraphrases, lists); about HumanML3D's mean."""

LabelSource = Literal["keywords", "ground_truth"]
"""Concept labels of the database motions: the task's keyword split, or the dataset's ground truth."""

LABEL_SOURCES: tuple[str, ...] = ("keywords", "ground_truth")


class PlanError(HMUError):
    """A plan cannot be built from this task and dataset (a prompt set with no usable motion, no labels)."""


@dataclass(frozen=True)
class ReferenceMotion:
    """The real motion a caption describes: `length` frames of a dataset motion from frame `start`."""

    motion_id: str
    """Dataset id of the motion."""
    start: int
    """First frame (0, or the start of the caption's time span)."""
    length: int
    """Frames, a multiple of `UNIT_LENGTH`, at most `MAX_FRAMES`; also the length generated from it."""

    @property
    def key(self) -> str:
        """Unique within a prompt set: the id, plus the start frame for a segment of a motion."""
        return self.motion_id if self.start == 0 else f"{self.motion_id}@{self.start}"

    def frames(self, features: np.ndarray) -> np.ndarray:
        """The reference's frames of the motion's features (T, 263)."""
        return features[self.start : self.start + self.length]


@dataclass(frozen=True)
class EvalItem:
    """One caption to generate from, with what the metrics compare its generations with."""

    prompt_id: str
    """`<prompt set>.<index>`: the `Prompt.id`; its generations are `<prompt_id>/<n>` in `motions.npz`."""
    caption: Caption
    """The caption (text and word/POS tokens) given to the model and to the evaluator's text encoder."""
    masked_caption: Caption
    """The caption with its concept keywords replaced by `***` (MM-Safe); equal to `caption` when unmasked."""
    length: int
    """Frames to generate (the reference's length, or the list-prompt length)."""
    reference: ReferenceMotion | None
    """The real motion the caption describes; None for prompts without one (paraphrases, lists)."""
    repeats: int
    """Generations of this caption the plan asks for: the passes that use it (0: never generated)."""

    @property
    def masked(self) -> bool:
        """Whether masking changed the caption (it names the concept)."""
        return self.masked_caption != self.caption


@dataclass(frozen=True)
class PromptGroup:
    """The items that describe one reference motion (or one reference-free prompt): they take turns."""

    key: str
    """The reference's `ReferenceMotion.key`, or the prompt id of a reference-free prompt."""
    prompt_ids: tuple[str, ...]
    """Its items, in caption order."""
    offset: int
    """Which item pass 0 uses; pass r uses item `(offset + r) mod len(prompt_ids)`."""

    def turn(self, index: int) -> tuple[str, int]:
        """(prompt id, generation number) of pass `index`."""
        count = len(self.prompt_ids)
        return self.prompt_ids[(self.offset + index) % count], index // count


@dataclass(frozen=True)
class PromptSetPlan:
    """One prompt set of the task, resolved into items."""

    name: str
    """Prompt set id (`forget_test`, ...)."""
    source: str
    """The task's source: `forget`, `retain`, `implicit`, `list`."""
    split: str | None
    """The dataset split of its reference motions; None without references."""
    metrics: tuple[MetricSpec, ...]
    """The metrics the task declares on it, with their directions."""
    items: tuple[EvalItem, ...]
    """Every caption, in group order."""
    groups: tuple[PromptGroup, ...]
    """One per reference motion (or reference-free prompt), in split (or prompt) order."""
    total_groups: int
    """Groups before the `max_prompts` cap."""

    @property
    def has_references(self) -> bool:
        return all(item.reference is not None for item in self.items)

    def pass_keys(self, index: int) -> list[tuple[str, str]]:
        """Per group, (prompt id, motion key `<prompt_id>/<n>`) of generation pass `index`."""
        keys = []
        for group in self.groups:
            prompt_id, generation = group.turn(index)
            keys.append((prompt_id, motion_key(prompt_id, generation)))
        return keys

    def references(self) -> list[ReferenceMotion]:
        """One reference per group, in group order (empty without references)."""
        if not self.has_references:
            return []
        by_id = {item.prompt_id: item for item in self.items}
        return [by_id[group.prompt_ids[0]].reference for group in self.groups]  # type: ignore[misc]


@dataclass(frozen=True)
class ConceptDatabase:
    """Real motions with concept labels: NCS retrieves among them; the concept classifier learns from them."""

    split: str
    """The dataset split they come from (not one any prompt set uses)."""
    label_source: LabelSource
    """Where the labels come from (`keywords`: the task's forget split; `ground_truth`: `labels.jsonl`)."""
    ids: tuple[str, ...]
    """Motion ids with at least `MIN_FRAMES` frames, in split order; each is embedded from its first
    `MAX_FRAMES` frames."""
    concept: tuple[bool, ...]
    """Per id, whether it carries the concept."""


@dataclass(frozen=True)
class EvaluationPlan:
    """Every prompt set of a task, and the concept database, built for one dataset."""

    task: str
    """Task name."""
    task_version: int
    """Task version: plans (and results) of different versions never mix."""
    dataset: str
    """The dataset's name (`dataset.json`)."""
    fps: float
    """Its frame rate."""
    seed: int
    """Seed of the turn offsets, the `max_prompts` subsample and the prompts' generation seeds."""
    passes: int
    """Generation passes planned (the evaluation's repeats)."""
    max_prompts: int | None
    """Cap on groups per prompt set (None: all)."""
    prompt_sets: tuple[PromptSetPlan, ...]
    """In task order."""
    database: ConceptDatabase
    """The labelled real motions NCS and the concept classifier use."""

    def prompt_set(self, name: str) -> PromptSetPlan:
        for prompt_set in self.prompt_sets:
            if prompt_set.name == name:
                return prompt_set
        raise KeyError(f"the plan has no prompt set {name!r} (has {', '.join(self.names)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(prompt_set.name for prompt_set in self.prompt_sets)

    def prompts(self) -> list[Prompt]:
        """Every item with at least one repeat, as generation prompts (the content of `prompts.json`)."""
        return [
            Prompt(item.prompt_id, item.caption.text, item.length, item.repeats, prompt_seed(self.seed, item))
            for prompt_set in self.prompt_sets
            for item in prompt_set.items
            if item.repeats > 0
        ]

    def fingerprint(self) -> str:
        """sha256 of the plan's canonical JSON: equal fingerprints mean the same prompts and references."""
        text = json.dumps(plan_to_json(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_seed(seed: int, item: EvalItem) -> int:
    """The generation seed of an item: a 31-bit hash of the plan seed and its prompt id (stable anywhere)."""
    digest = hashlib.sha256(f"{seed}/{item.prompt_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def unit_length(frames: int) -> int:
    """Frames evaluated of a motion of `frames`: capped at `MAX_FRAMES`, rounded down to whole units."""
    return min(frames, MAX_FRAMES) // UNIT_LENGTH * UNIT_LENGTH


# ----------------------------------------------------------------------------------------------- building


def _parts(split: SplitResult, name: str) -> SplitPart:
    try:
        return split.part(name)
    except KeyError:
        raise PlanError(
            f"task {split.task.name}: the split result has no split {name!r}; recompute it with the task"
        ) from None


def _source_ids(spec: PromptSetSpec, split: SplitResult) -> tuple[str, ...]:
    part = _parts(split, spec.split or "")
    if spec.source == "forget":
        return part.forget
    if spec.source == "retain":
        return part.retain
    if part.truth is None:
        raise PlanError(
            f"prompt set {spec.name}: source implicit with split {spec.split!r} needs ground-truth labels "
            f"(labels.jsonl naming concept {split.concept!r}) in {split.data_dir}"
        )
    return part.implicit


def _reference_groups(
    folder: HumanML3DFolder, ids: Sequence[str], matcher: KeywordMatcher
) -> list[tuple[ReferenceMotion, list[tuple[Caption, Caption]]]]:
    """Per reference motion (a whole clip or a caption's segment), its (caption, masked caption) pairs."""
    fps = folder.metadata.fps
    groups: dict[str, tuple[ReferenceMotion, list[tuple[Caption, Caption]]]] = {}
    for motion_id in ids:
        frames = frame_count(folder, motion_id)
        for caption in folder.captions(motion_id):
            first, last = caption.frame_range(fps, frames)
            if last - first < MIN_FRAMES:
                continue
            reference = ReferenceMotion(motion_id, first, unit_length(last - first))
            entry = groups.setdefault(reference.key, (reference, []))
            entry[1].append((caption, mask_caption(caption, matcher)))
    return list(groups.values())


def frame_count(folder: HumanML3DFolder, motion_id: str) -> int:
    """Frames of a motion, from its `.npy` header only (the evaluator reads and checks the data itself)."""
    path = folder.layout.features_path(motion_id)
    try:
        return int(np.load(path, mmap_mode="r").shape[0])
    except (OSError, ValueError) as error:
        raise PlanError(f"{path}: not a readable .npy array ({error})") from None


def _cap(count: int, max_prompts: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of the groups kept: all, or `max_prompts` drawn at random, in their original order."""
    if max_prompts is None or count <= max_prompts:
        return np.arange(count)
    return np.sort(rng.choice(count, max_prompts, replace=False))


def _repeats(count: int, position: int, offset: int, passes: int) -> int:
    """Passes in [0, passes) that use caption `position` of a group of `count` turning from `offset`."""
    first = (position - offset) % count
    return max(0, math.ceil((passes - first) / count))


def _build_set(
    index: int,
    spec: PromptSetSpec,
    folder: HumanML3DFolder,
    split: SplitResult,
    matcher: KeywordMatcher,
    *,
    seed: int,
    passes: int,
    max_prompts: int | None,
    list_frames: int,
) -> PromptSetPlan:
    rng = np.random.default_rng([seed, index])
    entries: list[tuple[ReferenceMotion | None, list[tuple[Caption, Caption]]]]
    if spec.source in ("forget", "retain") or (spec.source == "implicit" and not spec.prompts):
        entries = list(_reference_groups(folder, _source_ids(spec, split), matcher))
        set_split = spec.split
    else:
        for text in spec.prompts:
            # references.json stores captions as HumanML3D caption lines, which '#' and newlines would split.
            if "#" in text or "\n" in text:
                raise PlanError(f"prompt set {spec.name}: prompt {text!r} holds '#' or a newline")
        entries = [
            (None, [(Caption(text, ()), mask_caption(Caption(text, ()), matcher))]) for text in spec.prompts
        ]
        set_split = None
    if not entries:
        raise PlanError(
            f"prompt set {spec.name} of task {split.task.name} has no usable motion in {split.data_dir} "
            f"(source {spec.source}, split {spec.split}; references need >= {MIN_FRAMES} frames)"
        )
    kept = _cap(len(entries), max_prompts, rng)
    offsets = rng.integers(0, 1 << 30, size=len(entries))
    items: list[EvalItem] = []
    groups: list[PromptGroup] = []
    for group_index in kept:
        reference, captions = entries[group_index]
        offset = int(offsets[group_index] % len(captions))
        ids = []
        for position, (caption, masked) in enumerate(captions):
            prompt_id = f"{spec.name}.{len(items):05d}"
            ids.append(prompt_id)
            items.append(
                EvalItem(
                    prompt_id=prompt_id,
                    caption=caption,
                    masked_caption=masked,
                    length=reference.length if reference is not None else list_frames,
                    reference=reference,
                    repeats=_repeats(len(captions), position, offset, passes),
                )
            )
        groups.append(PromptGroup(reference.key if reference is not None else ids[0], tuple(ids), offset))
    return PromptSetPlan(
        name=spec.name,
        source=spec.source,
        split=set_split,
        metrics=spec.metrics,
        items=tuple(items),
        groups=tuple(groups),
        total_groups=len(entries),
    )


def _database(
    task: TaskSpec, folder: HumanML3DFolder, split: SplitResult, label_source: LabelSource
) -> ConceptDatabase:
    used = {spec.split for spec in task.prompt_sets if spec.split is not None}
    free = [name for name in task.split.splits if name not in used]
    if not free:
        raise PlanError(
            f"task {task.name}: every split of its split rule ({', '.join(task.split.splits)}) holds "
            "prompts; "
            "the concept database needs a split no prompt set uses (train_val)"
        )
    part = _parts(split, free[0])
    if label_source == "keywords":
        concept = frozenset(part.forget)
    elif label_source == "ground_truth":
        if part.truth is None:
            raise PlanError(
                f"concept labels 'ground_truth' need labels.jsonl naming concept {split.concept!r} "
                f"in {split.data_dir}"
            )
        concept = part.truth
    else:
        raise PlanError(f"unknown concept label source {label_source!r}; expected one of {LABEL_SOURCES}")
    # Too short to embed (HumanML3D holds a few clips of a handful of frames; its loaders drop them too).
    ids = tuple(i for i in part.ids if frame_count(folder, i) >= MIN_FRAMES)
    return ConceptDatabase(part.split, label_source, ids, tuple(i in concept for i in ids))


def build_evaluation_plan(
    task: TaskSpec,
    folder: HumanML3DFolder,
    split: SplitResult,
    *,
    seed: int = 0,
    passes: int = DEFAULT_PASSES,
    max_prompts: int | None = None,
    label_source: LabelSource = "keywords",
    list_prompt_seconds: float = DEFAULT_LIST_PROMPT_SECONDS,
) -> EvaluationPlan:
    """The plan of every prompt set of `task` on the dataset `folder`, from its concept `split`.

    `passes`: generation passes (the evaluation's repeats); `max_prompts`: at most this many reference
    motions (groups) per prompt set, drawn with `seed` (CPU runs); `label_source`: the database's concept
    labels; `list_prompt_seconds`: the length of prompts without a reference motion.
    """
    if split.task.name != task.name or split.task.version != task.version:
        raise PlanError(f"the split was computed for task {split.task.name}, not {task.name}")
    if passes < 1:
        raise PlanError(f"passes must be >= 1, got {passes}")
    if max_prompts is not None and max_prompts < 1:
        raise PlanError(f"max_prompts must be >= 1 or None, got {max_prompts}")
    list_frames = unit_length(int(list_prompt_seconds * folder.metadata.fps))
    if list_frames < UNIT_LENGTH:
        raise PlanError(
            f"list_prompt_seconds {list_prompt_seconds} gives no whole unit of {UNIT_LENGTH} frames"
        )
    matcher = KeywordMatcher.from_concept(task.concept)
    prompt_sets = tuple(
        _build_set(
            index,
            spec,
            folder,
            split,
            matcher,
            seed=seed,
            passes=passes,
            max_prompts=max_prompts,
            list_frames=list_frames,
        )
        for index, spec in enumerate(task.prompt_sets)
    )
    return EvaluationPlan(
        task=task.name,
        task_version=task.version,
        dataset=folder.metadata.name,
        fps=folder.metadata.fps,
        seed=seed,
        passes=passes,
        max_prompts=max_prompts,
        prompt_sets=prompt_sets,
        database=_database(task, folder, split, label_source),
    )


# ----------------------------------------------------------------------------------------------- files


def plan_to_json(plan: EvaluationPlan) -> dict[str, Any]:
    """The plan as the JSON object of `references.json` (captions as HumanML3D caption lines)."""
    return {
        "schema": PLAN_SCHEMA,
        "task": {"name": plan.task, "version": plan.task_version},
        "dataset": {"name": plan.dataset, "fps": plan.fps},
        "seed": plan.seed,
        "passes": plan.passes,
        "max_prompts": plan.max_prompts,
        "prompt_sets": [
            {
                "name": s.name,
                "source": s.source,
                "split": s.split,
                "metrics": {metric.name: metric.direction for metric in s.metrics},
                "total_groups": s.total_groups,
                "items": [
                    {
                        "prompt_id": item.prompt_id,
                        "caption": item.caption.to_line(),
                        "masked_caption": item.masked_caption.to_line(),
                        "length": item.length,
                        "repeats": item.repeats,
                        "reference": None
                        if item.reference is None
                        else {
                            "motion_id": item.reference.motion_id,
                            "start": item.reference.start,
                            "length": item.reference.length,
                        },
                    }
                    for item in s.items
                ],
                "groups": [
                    {"key": group.key, "prompt_ids": list(group.prompt_ids), "offset": group.offset}
                    for group in s.groups
                ],
            }
            for s in plan.prompt_sets
        ],
        "database": {
            "split": plan.database.split,
            "label_source": plan.database.label_source,
            "ids": list(plan.database.ids),
            "concept": list(plan.database.concept),
        },
    }


def write_plan(plan: EvaluationPlan, out_dir: Path | str) -> tuple[Path, Path]:
    """Write `prompts.json` (for `generate`) and `references.json` (for `evaluate`) into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts_path, references_path = out_dir / PROMPTS_FILE, out_dir / REFERENCES_FILE
    write_prompts(prompts_path, plan.prompts())
    references_path.write_text(json.dumps(plan_to_json(plan), indent=1) + "\n", encoding="utf-8")
    return prompts_path, references_path


def _read_caption(reader: JsonReader, data: Any, key: str, where: str) -> Caption:
    line = reader.get(data, key, where, str)
    try:
        return parse_caption_line(line, reader.path)
    except HMUError as error:
        raise reader.error(f"{where}.{key}", str(error)) from None


def _read_item(reader: JsonReader, data: Any, where: str) -> EvalItem:
    reference_data = reader.get(data, "reference", where, dict, optional=True)
    reference = None
    if reference_data is not None:
        ref_where = f"{where}.reference"
        reference = ReferenceMotion(
            reader.get(reference_data, "motion_id", ref_where, str),
            reader.get(reference_data, "start", ref_where, int),
            reader.get(reference_data, "length", ref_where, int),
        )
    length = reader.get(data, "length", where, int)
    if length < UNIT_LENGTH or length > MAX_FRAMES:
        raise ConfigError(
            reader.path, f"{where}.length", f"must be in [{UNIT_LENGTH}, {MAX_FRAMES}], got {length}"
        )
    return EvalItem(
        prompt_id=reader.get(data, "prompt_id", where, str),
        caption=_read_caption(reader, data, "caption", where),
        masked_caption=_read_caption(reader, data, "masked_caption", where),
        length=length,
        reference=reference,
        repeats=reader.get(data, "repeats", where, int),
    )


def _read_set(reader: JsonReader, data: Any, where: str) -> PromptSetPlan:
    metrics = reader.get(data, "metrics", where, dict)
    items = tuple(
        _read_item(reader, item, f"{where}.items[{i}]")
        for i, item in enumerate(reader.get(data, "items", where, list))
    )
    known = {item.prompt_id for item in items}
    if len(known) != len(items):
        raise ConfigError(reader.path, f"{where}.items", "repeats a prompt_id")
    groups = []
    for i, group in enumerate(reader.get(data, "groups", where, list)):
        group_where = f"{where}.groups[{i}]"
        prompt_ids = tuple(reader.get(group, "prompt_ids", group_where, list))
        if not prompt_ids or any(p not in known for p in prompt_ids):
            raise ConfigError(reader.path, f"{group_where}.prompt_ids", "must list items of this prompt set")
        groups.append(
            PromptGroup(
                reader.get(group, "key", group_where, str),
                prompt_ids,
                reader.get(group, "offset", group_where, int),
            )
        )
    if not groups:
        raise ConfigError(reader.path, f"{where}.groups", "a prompt set needs at least one group")
    return PromptSetPlan(
        name=reader.get(data, "name", where, str),
        source=reader.get(data, "source", where, str),
        split=reader.get(data, "split", where, str, optional=True),
        metrics=tuple(MetricSpec(str(name), str(direction)) for name, direction in metrics.items()),
        items=items,
        groups=tuple(groups),
        total_groups=reader.get(data, "total_groups", where, int),
    )


def plan_from_json(data: Any, path: Path | str = REFERENCES_FILE) -> EvaluationPlan:
    """Parse the JSON object of a `references.json`; a bad field is a ConfigError naming `path` and it."""
    reader = JsonReader(Path(path))
    schema = reader.get(data, "schema", "", str)
    if schema != PLAN_SCHEMA:
        raise ConfigError(reader.path, "schema", f"expected {PLAN_SCHEMA!r}, got {schema!r}")
    task = reader.get(data, "task", "", dict)
    dataset = reader.get(data, "dataset", "", dict)
    database = reader.get(data, "database", "", dict)
    ids = tuple(reader.get(database, "ids", "database", list))
    concept = tuple(reader.get(database, "concept", "database", list))
    if len(ids) != len(concept) or not all(isinstance(c, bool) for c in concept):
        raise ConfigError(reader.path, "database.concept", "must hold one boolean per id")
    label_source = reader.get(database, "label_source", "database", str)
    if label_source not in LABEL_SOURCES:
        raise ConfigError(reader.path, "database.label_source", f"expected one of {LABEL_SOURCES}")
    max_prompts = reader.get(data, "max_prompts", "", int, optional=True)
    return EvaluationPlan(
        task=reader.get(task, "name", "task", str),
        task_version=reader.get(task, "version", "task", int),
        dataset=reader.get(dataset, "name", "dataset", str),
        fps=float(reader.get(dataset, "fps", "dataset", (int, float))),
        seed=reader.get(data, "seed", "", int),
        passes=reader.get(data, "passes", "", int),
        max_prompts=max_prompts,
        prompt_sets=tuple(
            _read_set(reader, s, f"prompt_sets[{i}]")
            for i, s in enumerate(reader.get(data, "prompt_sets", "", list))
        ),
        database=ConceptDatabase(reader.get(database, "split", "database", str), label_source, ids, concept),  # type: ignore[arg-type]
    )


def read_plan(path: Path | str) -> EvaluationPlan:
    """Read a `references.json` written by `write_plan`."""
    path = Path(path)
    return plan_from_json(read_json(path), path)
