"""Generate the embedded dataset: procedurally animated motions in the HumanML3D layout, with ground truth.

Each motion is 1 to 3 actions (`actions.FAMILIES`) with random parameters, played one after the other with
cross-faded transitions between short moments of standing still, solved into joint positions
(`animator.solve_joints`) and turned into 263-d features by the real extraction
(`benchmark.motion.features_from_joints`). Three captions each (`captions.motion_captions`). A fixed share of
the motions is violent, and a fixed share of those is described only implicitly. Every motion also gets a
left/right mirrored copy `M<id>` (mirrored joints, features extracted again, captions with left and right
swapped), and `labels.jsonl` records for every id the actions, their concepts, and the concepts no caption
names.

Deterministic: motion i depends only on (seed, i), so the worker count never changes the output.

    >>> summary = generate_dataset("data/embedded", SynthConfig(motions=2000, seed=0))
    >>> summary.motions, summary.violent, summary.implicit
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.captions import Caption
from benchmark.data.humanml3d import DatasetMetadata, DatasetWriter
from benchmark.data.synth.actions import FAMILIES, ActionFamily, ActionParams, idle
from benchmark.data.synth.animator import PoseTrack, solve_joints
from benchmark.data.synth.captions import CONCEPT_KEYWORDS, motion_captions, names_concept
from benchmark.motion.features import features_from_joints, joints_from_features
from benchmark.motion.mirror import mirror_caption, mirror_joints

logger = logging.getLogger(__name__)

DATASET_NAME = "hmu-synth"
"""`dataset.json` name of a generated dataset (how `hmu data synth` recognises its own output)."""

_TRANSITION_SECONDS = 0.4
"""Cross-fade between consecutive parts of a motion (idle, action, idle...)."""


@dataclass(frozen=True)
class SynthConfig:
    """What to generate."""

    motions: int = 2000
    """Number of original motions (the dataset has twice as many ids, with the mirrored copies)."""
    seed: int = 0
    violent_fraction: float = 0.10
    """Share of motions that contain a violent action (exact up to rounding)."""
    implicit_fraction: float = 0.20
    """Share of violent motions whose captions never name the violence (exact up to rounding)."""
    min_seconds: float = 2.0
    max_seconds: float = 10.0
    fps: float = 20.0
    captions_per_motion: int = 3
    split_fractions: tuple[float, float, float] = (0.80, 0.05, 0.15)
    """train, val, test shares of the original motions; a mirrored copy is in its original's split."""
    write_joints: bool = True
    """Also write `new_joints/<id>.npy` (the joints recovered from the features, as HumanML3D ships them)."""
    workers: int = 1
    """Processes that animate and extract features (the result does not depend on it)."""

    def __post_init__(self) -> None:
        if self.motions < 1:
            raise ValueError(f"motions must be at least 1, got {self.motions}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        for name in ("violent_fraction", "implicit_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.min_seconds < self.max_seconds:
            raise ValueError(
                f"need 0 < min_seconds < max_seconds, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.max_seconds < 5.0:
            raise ValueError(
                f"max_seconds must be at least 5 (the longest single actions), got {self.max_seconds}"
            )
        if self.fps <= 0 or self.captions_per_motion < 1 or self.workers < 1:
            raise ValueError("fps, captions_per_motion and workers must be positive")
        if (
            len(self.split_fractions) != 3
            or abs(sum(self.split_fractions) - 1.0) > 1e-9
            or min(self.split_fractions) < 0
        ):
            raise ValueError(
                f"split_fractions must be 3 non-negative shares summing to 1, got {self.split_fractions}"
            )


@dataclass(frozen=True)
class SynthSummary:
    """What `generate_dataset` wrote."""

    root: Path
    motions: int
    """Original motions (ids without M)."""
    ids: int
    """All ids, mirrored copies included."""
    violent: int
    """Original motions with a violent action."""
    implicit: int
    """Violent original motions whose captions never name violence."""
    seconds: float
    """Total duration of the original motions."""
    elapsed: float
    """Wall-clock time of the generation (s)."""
    families: dict[str, int] = field(default_factory=dict)
    """How many original motions contain each family."""

    @property
    def violent_share(self) -> float:
        return self.violent / self.motions

    @property
    def implicit_share(self) -> float:
        return self.implicit / self.violent if self.violent else 0.0


@dataclass(frozen=True)
class _Plan:
    index: int
    violent: bool
    implicit: bool
    config: SynthConfig


@dataclass(frozen=True)
class _Record:
    """One motion ready to write."""

    motion_id: str
    features: np.ndarray
    joints: np.ndarray
    captions: list[Caption]
    label: dict[str, Any]


def _choose(families: Sequence[ActionFamily], rng: np.random.Generator, avoid: str = "") -> ActionFamily:
    options = [family for family in families if family.name != avoid] or list(families)
    weights = np.array([family.weight for family in options])
    return options[rng.choice(len(options), p=weights / weights.sum())]


def _plan_actions(plan: _Plan, rng: np.random.Generator) -> list[ActionFamily]:
    """1 to 3 families, never the same twice in a row; a violent motion has one violent family (two, in a
    third of the 3-action fights), a non-violent motion none."""
    calm = [family for family in FAMILIES if not family.violent]
    violent = [family for family in FAMILIES if family.violent]
    count = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    fierce: set[int] = set()
    if plan.violent:
        first = int(rng.integers(count))
        fierce.add(first)
        if count == 3 and rng.random() < 0.3:
            fierce.add(first + 1 if first < 2 else 1)
    chosen: list[ActionFamily] = []
    for position in range(count):
        pool = violent if position in fierce else calm
        chosen.append(_choose(pool, rng, chosen[-1].name if chosen else ""))
    return chosen


def _frames(seconds: float, fps: float) -> int:
    return max(int(round(seconds * fps)), 2)


def _assemble(
    families: list[ActionFamily], rng: np.random.Generator, config: SynthConfig
) -> tuple[PoseTrack, list[tuple[ActionFamily, ActionParams, float, float]]]:
    """Animate the actions and play them in a row between idle moments, within the clip length limits.

    Returns the track and, per action, (family, params, start s, end s). A clip that comes out too long is
    drawn again with fewer actions (non-violent ones go first); a single action too long for the clip is cut.
    """
    fps = config.fps
    overlap = _frames(_TRANSITION_SECONDS, fps)
    longest = int(config.max_seconds * fps) + 1  # T+1 joint frames give T feature frames
    for attempt in range(20):
        actions: list[tuple[ActionFamily, ActionParams, PoseTrack]] = []
        for family in families:
            params = family.sample(rng)
            track = family.animate(params, fps)
            if len(track) > longest - 2 * fps:
                params = ActionParams(**{**asdict(params), "count": family.counts[0]})
                track = family.animate(params, fps)
            actions.append((family, params, track))
        parts: list[PoseTrack] = [idle(rng.uniform(0.4, 1.0), fps, rng.random())]
        action_parts: list[int] = []
        for number, (_, _, track) in enumerate(actions):
            if number > 0 and rng.random() < 0.5:
                parts.append(idle(rng.uniform(0.5, 0.9), fps, rng.random()))
            action_parts.append(len(parts))
            parts.append(track)
        parts.append(idle(rng.uniform(0.5, 1.0), fps, rng.random()))
        total = sum(len(part) for part in parts) - overlap * (len(parts) - 1)
        if total <= longest or len(families) == 1 and attempt >= 10:
            break
        if len(families) > 1:
            calm = [i for i, family in enumerate(families) if not family.violent]
            drop = calm[-1] if calm else len(families) - 1
            families = families[:drop] + families[drop + 1 :]
    shortest = int(np.ceil(config.min_seconds * fps)) + 1
    if total < shortest:
        parts[-1] = idle((len(parts[-1]) + shortest - total) / fps, fps, rng.random())

    placed: list[PoseTrack] = []
    offsets: list[int] = []
    state = (0.0, 0.0, 0.0)
    start = 0
    for part in parts:
        placed.append(part.moved(*state))
        offsets.append(start)
        start += len(part) - overlap
        state = placed[-1].end_state()
    track = PoseTrack.concatenate(placed, [overlap] * (len(placed) - 1))
    if len(track) > longest:
        track = track.frames(0, longest)
    timing = []
    for (family, params, action_track), index in zip(actions, action_parts, strict=True):
        end = min(offsets[index] + len(action_track), len(track) - 1)
        timing.append((family, params, offsets[index] / fps, end / fps))
    return track, timing


def _label(
    motion_id: str,
    timing: list[tuple[ActionFamily, ActionParams, float, float]],
    captions: list[Caption],
    mirrored: bool,
) -> dict[str, Any]:
    concepts = sorted({concept for family, *_ in timing for concept in family.concepts})
    texts = [caption.text for caption in captions]
    return {
        "id": motion_id,
        "actions": [
            {
                "name": family.name,
                "violent": family.violent,
                "concepts": list(family.concepts),
                "start": round(start, 3),
                "end": round(end, 3),
                "params": asdict(params.mirrored() if mirrored else params),
            }
            for family, params, start, end in timing
        ],
        "concepts": concepts,
        "implicit_concepts": [c for c in concepts if not any(names_concept(text, c) for text in texts)],
        "violent": "violence" in concepts,
        "mirrored": mirrored,
    }


def _generate(plan: _Plan) -> tuple[_Record, _Record]:
    """One motion and its mirrored copy; a pure function of (seed, index)."""
    config = plan.config
    rng = np.random.default_rng([config.seed, plan.index])
    families = _plan_actions(plan, rng)
    track, timing = _assemble(families, rng, config)
    joints = solve_joints(track)
    actions = [(family.name, params) for family, params, *_ in timing]
    captions = motion_captions(
        actions, [family.violent for family, *_ in timing], plan.implicit, rng, config.captions_per_motion
    )
    motion_id = f"{plan.index:06d}"
    records = []
    for mirrored in (False, True):
        source = mirror_joints(joints) if mirrored else joints
        features = features_from_joints(source)
        texts = [mirror_caption(caption) for caption in captions] if mirrored else captions
        name = "M" + motion_id if mirrored else motion_id
        records.append(
            _Record(
                name, features, joints_from_features(features), texts, _label(name, timing, texts, mirrored)
            )
        )
    return records[0], records[1]


def _plans(config: SynthConfig) -> list[_Plan]:
    """Which motions are violent and which of those implicit: exact shares, random positions."""
    rng = np.random.default_rng([config.seed, 2**32 - 1])  # a stream no motion index uses
    violent_count = int(round(config.violent_fraction * config.motions))
    implicit_count = int(round(config.implicit_fraction * violent_count))
    violent = rng.permutation(config.motions)[:violent_count]
    implicit = set(rng.permutation(violent)[:implicit_count].tolist())
    violent_set = set(violent.tolist())
    return [_Plan(index, index in violent_set, index in implicit, config) for index in range(config.motions)]


def _splits(config: SynthConfig) -> dict[str, list[str]]:
    rng = np.random.default_rng([config.seed, 2**32 - 2])
    order = rng.permutation(config.motions)
    n_train = int(round(config.split_fractions[0] * config.motions))
    n_val = int(round(config.split_fractions[1] * config.motions))
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }

    def ids(indices: Sequence[int]) -> list[str]:
        originals = sorted(f"{index:06d}" for index in indices)
        return originals + ["M" + motion_id for motion_id in originals]

    splits = {name: ids(indices) for name, indices in parts.items()}
    splits["train_val"] = ids(np.concatenate([parts["train"], parts["val"]]))
    splits["all"] = ids(order)
    return splits


def _records(plans: list[_Plan], workers: int) -> Iterator[tuple[_Record, _Record]]:
    if workers == 1:
        yield from map(_generate, plans)
        return
    # fork would copy the parent's state (threads included); spawn starts clean workers.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_generate, plans, chunksize=8)


def generate_dataset(out_dir: Path | str, config: SynthConfig) -> SynthSummary:
    """Write the dataset into `out_dir` (absent or empty) and return what was written."""
    began = time.perf_counter()
    metadata = DatasetMetadata(
        name=DATASET_NAME,
        fps=config.fps,
        source=f"hmu data synth --motions {config.motions} --seed {config.seed} "
        "(HMU-Bench procedural animator)",
        description="Procedurally animated human motions in the HumanML3D format, with violent and "
        "non-violent "
        "actions, three captions each and ground-truth action labels (labels.jsonl).",
        extra={
            "generator": "benchmark.data.synth",
            "config": {k: v for k, v in asdict(config).items() if k != "workers"},
            "families": {family.name: list(family.concepts) for family in FAMILIES},
            "concept_keywords": {name: list(words) for name, words in CONCEPT_KEYWORDS.items()},
        },
    )
    writer = DatasetWriter(out_dir, metadata)
    violent = implicit = 0
    frames = 0
    families: dict[str, int] = {}
    for original, mirrored in _records(_plans(config), config.workers):
        for record in (original, mirrored):
            writer.add(
                record.motion_id,
                record.features,
                record.captions,
                joints=record.joints if config.write_joints else None,
                label=record.label,
            )
        violent += original.label["violent"]
        implicit += "violence" in original.label["implicit_concepts"]
        frames += len(original.features)
        for name in {action["name"] for action in original.label["actions"]}:
            families[name] = families.get(name, 0) + 1
    writer.write_splits(_splits(config))
    writer.finish()
    summary = SynthSummary(
        root=Path(out_dir),
        motions=config.motions,
        ids=2 * config.motions,
        violent=violent,
        implicit=implicit,
        seconds=frames / config.fps,
        elapsed=time.perf_counter() - began,
        families=dict(sorted(families.items())),
    )
    logger.info("generated %d motions (%d ids) in %.1f s", summary.motions, summary.ids, summary.elapsed)
    return summary
