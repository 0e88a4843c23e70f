"""The evaluation protocol: generated motions of a plan's prompt sets in, metrics with 95 % CIs out.

`evaluate` scores every prompt set of an `EvaluationPlan` (`benchmark.evaluation.prompts`) separately, as HMU
scores the forget and retain test sets, over `repeats` (20) repeats, and returns an `EvaluationReport`; it
writes nothing but the ground-truth cache (`GroundTruthCache`). `compare_to_reference` adds, to a method's
report, the distance of each metric to the retrain-without-concept reference model D_r's report on the same
plan. Writing the files is `benchmark.evaluation.schema`'s job.

    >>> plan = read_plan("runs/plan/references.json")
    >>> evaluator = load_evaluator("runs/evaluator")
    >>> generated = read_motions("runs/rece/motions.npz")           # "<prompt id>/<n>" -> (T, 263)
    >>> report = evaluate(EvaluationRequest(plan), evaluator, generated, HumanML3DFolder("data/embedded"),
    ...                   cache=GroundTruthCache("runs/cache"))
    >>> report.prompt_set("retain_test").metric("fid").result.value
    >>> ranked = compare_to_reference(report, reference_report)     # D_r's report on the same plan

The protocol, and where it follows MoMask / HMU:

- **Repeats.** Repeat r evaluates generation pass r (`PromptSetPlan.pass_keys`: one caption per reference
  motion, its own generations) and draws its own R-precision batches, Diversity and MultiModality pairs from
  `numpy.random.default_rng([seed, prompt set index, stream, r])`, one stream per metric, so that a
  metric's values never depend on which other metrics were computed. With fewer passes generated than
  repeats asked (a CPU run generating once), pass `r mod passes` is reused and a warning says so; the CI
  then reflects only the batch and pair draws.
- **Ground truth** is computed once per evaluator and dataset and cached on disk (`GroundTruthCache`): per
  prompt set the embeddings of its reference motions and their Gaussian (FID); the embeddings of the concept
  database (NCS) and the concept classifier fitted on them. MoMask recomputes the real embeddings in every
  repeat from a new random crop; here the references are fixed crops (see `prompts`), so one computation
  serves every repeat, and FID compares each pass's generations with the references of the whole set.
- **FID** of a prompt set compares the generations of one pass (one per reference motion) with the
  references' Gaussian. **R-precision** ranks within shuffled batches of `r_precision_batch` (32), dropping an
  incomplete last batch as the T2M loader does (HMU's keeps it: `drop_last=False`); a set smaller than one
  batch is ranked as one batch of all its prompts, with a warning. **MM-Safe / notox accuracy** average over
  the masked captions (`mask_normalisation="original"`: HMU's). **MultiModality** uses the prompts with at
  least two generations (up to 96, `multimodality_prompts`) and as many generations each as all of them have
  (up to 30); each repeat draws new pairs. **NCS** retrieves each generation's nearest database motions in
  the evaluator's space (HMU: TMR's); within a pass each reference motion has one generation, so HMU's
  per-prompt minimum is the rank itself. **Concept detection** is the share of generations the classifier
  flags. **Physics** metrics read the joints recovered from the generated features.
- **Which metrics.** `metrics="task"` computes those the task declares on each prompt set; `"all"` (the
  default) also every other applicable metric of the suite, with its default direction, marked
  `declared=False` (the leaderboard ranks declared metrics only). A metric that cannot be computed on a set
  (FID without references, MM-Safe without masked captions, ...) is listed in `skipped` with the reason; for
  a declared metric that is also a warning.
- **Relative to the reference model.** The HMU README ranks forget-set FID, Diversity and R-precision by
  their closeness to D_r (direction `reference`). `compare_to_reference` sets, for every metric, D_r's value
  and `delta_to_reference = |value − reference value|` with `delta_ci95 = √(ci95² + ci95_ref²)` (independent
  runs). The leaderboard ranks `reference`-direction metrics by `delta_to_reference`, lower is better, and
  `lower`/`higher` ones by their value; a difference within `delta_ci95` is a tie.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmark.backbone.generation import motion_key
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.errors import HMUError
from benchmark.evaluation.prompts import EvalItem, EvaluationPlan, PromptSetPlan, unit_length
from benchmark.evaluator.base import Evaluator, identity_hash
from benchmark.metrics import (
    METRICS,
    ConceptClassifier,
    Direction,
    Interval,
    MaskNormalisation,
    MetricInputError,
    MetricResult,
    concept_detection_rate,
    diversity,
    first_concept_ranks,
    fit_concept_classifier,
    floor_penetration,
    floor_penetration_max,
    foot_skating_ratio,
    foot_skating_speed,
    frechet_distance,
    gaussian_statistics,
    jerk,
    mean_first_rank,
    median_first_rank,
    metric_result,
    mm_dist,
    mm_safe,
    multimodality,
    ncs_at_k,
    notox_accuracy,
    r_precision,
)
from benchmark.metrics.matching import R_PRECISION_BATCH
from benchmark.metrics.retrieval import MAX_RANK, NCS_KS
from benchmark.motion.features import joints_from_features

logger = logging.getLogger(__name__)

DEFAULT_REPEATS = 20
"""The protocol's repeats (MoMask's and HMU's `repeat_times`)."""

MULTIMODALITY_PROMPTS = 96
"""Prompts MultiModality reads at most (MoMask: its first 3 batches of 32)."""

MULTIMODALITY_GENERATIONS = 30
"""Generations per prompt MultiModality reads at most (the protocol's 30)."""

CACHE_SCHEMA = "hmu.ground-truth-cache/1"
"""Part of every cache key: bump it when what is cached, or how, changes."""

MetricSelection = Literal["task", "all"]
"""`task`: the metrics a prompt set declares; `all`: also every other applicable metric of the suite."""

SUITE: tuple[str, ...] = (
    "fid",
    "r_precision_top1",
    "r_precision_top2",
    "r_precision_top3",
    "mm_dist",
    "mm_safe",
    "notox_accuracy",
    "diversity",
    "multimodality",
    *(f"ncs_at_{k}" for k in NCS_KS),
    "ncs_mean_rank",
    "ncs_median_rank",
    "concept_detection_rate",
    "foot_skating_ratio",
    "foot_skating_speed",
    "floor_penetration",
    "floor_penetration_max",
    "jerk",
)
"""The metrics `evaluate` computes, in report order. Not here: the transition metrics (generated motions have
no known transition frames) and `concept_classifier_auc` (a check of the classifier: `ClassifierCheck`)."""

_PHYSICS: tuple[str, ...] = (
    "foot_skating_ratio",
    "foot_skating_speed",
    "floor_penetration",
    "floor_penetration_max",
    "jerk",
)


_STREAMS = {"r_precision": 1, "diversity": 2, "multimodality": 3, "pool": 4}
"""Random streams of a prompt set: R-precision batches, Diversity pairs, MultiModality pairs and prompts."""


class EvaluationError(HMUError):
    """The motions, plan, evaluator or reference report do not fit together; the message says how."""


# ---------------------------------------------------------------------------------------------- request


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate and how: the plan, the repeats and every protocol knob (defaults: the protocol's)."""

    plan: EvaluationPlan
    """The prompt sets, their references and the concept database."""
    repeats: int = DEFAULT_REPEATS
    """Evaluation repeats; each uses its own generation pass where one was generated."""
    seed: int = 0
    """Seeds the per-repeat draws (R-precision batches, Diversity and MultiModality pairs)."""
    metrics: MetricSelection = "all"
    """`task`: the declared metrics only; `all`: also the rest of `SUITE` that applies."""
    r_precision_batch: int = R_PRECISION_BATCH
    """Texts and motions ranked together (32)."""
    drop_last: bool = True
    """Drop an incomplete last R-precision batch (T2M's loader); HMU's keeps it (False)."""
    ncs_ks: tuple[int, ...] = NCS_KS
    """The k of NCS@k (each must be one of `NCS_KS`, the catalogued ones)."""
    ncs_max_rank: int = MAX_RANK
    """Database motions retrieved per generation; beyond, the rank is `ncs_max_rank + 1` (HMU: 100)."""
    mask_normalisation: MaskNormalisation = "masked"
    """How MM-Safe and notox accuracy average (`masked`, or HMU's `original`)."""
    interval: Interval = "normal"
    """The CI: `normal` (1.96·std/√n, population std, as published) or `t`."""
    multimodality_prompts: int = MULTIMODALITY_PROMPTS
    """Prompts MultiModality reads at most."""
    multimodality_generations: int = MULTIMODALITY_GENERATIONS
    """Generations per prompt MultiModality reads at most."""
    evaluator_sha256: str | None = None
    """Pins the evaluator: `identity_hash(evaluator.identity())` must equal it (None: any evaluator)."""

    def __post_init__(self) -> None:
        checks = (
            (self.repeats >= 1, f"repeats must be >= 1, got {self.repeats}"),
            (self.r_precision_batch >= 2, f"r_precision_batch must be >= 2, got {self.r_precision_batch}"),
            (self.ncs_max_rank >= 1, f"ncs_max_rank must be >= 1, got {self.ncs_max_rank}"),
            (self.multimodality_prompts >= 1, "multimodality_prompts must be >= 1"),
            (self.multimodality_generations >= 2, "multimodality_generations must be >= 2"),
            (self.metrics in ("task", "all"), f"metrics must be 'task' or 'all', got {self.metrics!r}"),
            (self.interval in ("normal", "t"), f"interval must be 'normal' or 't', got {self.interval!r}"),
            (
                self.mask_normalisation in ("masked", "original"),
                f"mask_normalisation must be 'masked' or 'original', got {self.mask_normalisation!r}",
            ),
            (
                bool(self.ncs_ks) and all(k in NCS_KS for k in self.ncs_ks),
                f"ncs_ks must be a non-empty subset of {NCS_KS}, got {self.ncs_ks}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise EvaluationError(message)

    def settings(self) -> dict[str, Any]:
        """The knobs as JSON (everything but the plan), recorded with the results."""
        return {
            "repeats": self.repeats,
            "seed": self.seed,
            "metrics": self.metrics,
            "r_precision_batch": self.r_precision_batch,
            "drop_last": self.drop_last,
            "ncs_ks": list(self.ncs_ks),
            "ncs_max_rank": self.ncs_max_rank,
            "mask_normalisation": self.mask_normalisation,
            "interval": self.interval,
            "multimodality_prompts": self.multimodality_prompts,
            "multimodality_generations": self.multimodality_generations,
        }


# ---------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ScoredMetric:
    """A metric's result on a prompt set, and how it compares with the reference model's."""

    result: MetricResult
    """Mean over repeats, CI, std, direction, per-repeat values."""
    declared: bool
    """Whether the task declares it on this prompt set (only declared metrics are ranked)."""
    reference_value: float | None = None
    """The reference model's (D_r's) value on the same prompts; None without a reference report."""
    reference_ci95: float | None = None
    """Its CI half-width."""
    delta_to_reference: float | None = None
    """|value − reference_value|: how far from D_r (what `reference`-direction metrics are ranked by)."""
    delta_ci95: float | None = None
    """√(ci95² + reference_ci95²): the CI half-width of the difference of two independent means."""

    @property
    def name(self) -> str:
        return self.result.name


@dataclass(frozen=True)
class SkippedMetric:
    """A metric that was not computed on a prompt set, and why."""

    name: str
    """Metric id."""
    declared: bool
    """Whether the task declares it on this prompt set (then it is also a warning)."""
    reason: str
    """Why it does not apply (no references, no masked caption, a metric input error, ...)."""


@dataclass(frozen=True)
class PromptSetReport:
    """The metrics of one prompt set."""

    name: str
    """Prompt set id."""
    source: str
    """The task's source (`forget`, `retain`, `implicit`, `list`)."""
    split: str | None
    """Dataset split of its references (None without)."""
    groups: int
    """Reference motions (or reference-free prompts): the samples of one repeat."""
    items: int
    """Captions in the plan."""
    generations: int
    """Distinct generated motions read."""
    passes: int
    """Generation passes found in the motions (at most `repeats` are read); fewer than repeats: reused."""
    metrics: tuple[ScoredMetric, ...]
    """Computed metrics, in `SUITE` order."""
    skipped: tuple[SkippedMetric, ...]
    """Metrics that do not apply here, with the reason."""

    def metric(self, name: str) -> ScoredMetric:
        for scored in self.metrics:
            if scored.name == name:
                return scored
        raise KeyError(f"prompt set {self.name} has no metric {name!r}")


@dataclass(frozen=True)
class ClassifierCheck:
    """How well the concept classifier separates real motions (concept detection means little if poorly)."""

    split: str
    """Database split it was fitted on."""
    label_source: str
    """Where its labels come from (`keywords`, `ground_truth`)."""
    auc: float
    """ROC AUC on held-out real motions (0.5: no signal)."""
    heldout_tpr: float
    """Share of held-out real concept motions it flags: what a method that forgot nothing would score."""
    heldout_fpr: float
    """Share of held-out real non-concept motions it flags (at most `target_fpr`)."""
    target_fpr: float
    """The false-positive rate its threshold was set for."""
    n_train: int
    """Motions it was fitted on."""
    n_heldout: int
    """Motions it was checked on."""


@dataclass(frozen=True)
class CacheEvent:
    """One ground-truth cache lookup."""

    name: str
    """What was looked up (`references:<prompt set>`, `database`)."""
    key: str
    """The cache key (sha256 of the key material)."""
    status: Literal["hit", "miss", "corrupt", "disabled"]
    """hit: read back; miss: computed and stored; corrupt: unreadable or not this key, recomputed;
    disabled: no cache folder."""


@dataclass(frozen=True)
class ReferenceInfo:
    """Which reference report a report was compared with."""

    label: str
    """Where it came from (a path, a run name)."""
    plan_sha256: str
    """Its plan fingerprint (equal to the report's)."""
    evaluator_sha256: str
    """Its evaluator (equal to the report's)."""


@dataclass(frozen=True)
class EvaluationReport:
    """Everything `evaluate` found: per prompt set the metrics, plus what they depend on."""

    task: str
    """Task name."""
    task_version: int
    """Task version."""
    dataset: str
    """Dataset name."""
    dataset_sha256: str
    """sha256 over the feature files read (references and database), by id."""
    plan_sha256: str
    """`EvaluationPlan.fingerprint()`: the prompts and references scored."""
    evaluator: str
    """Evaluator kind (`tmr`, `guo`)."""
    evaluator_sha256: str
    """`identity_hash` of the evaluator's identity."""
    settings: Mapping[str, Any]
    """`EvaluationRequest.settings()`."""
    prompt_sets: tuple[PromptSetReport, ...]
    """In plan order."""
    classifier: ClassifierCheck | None
    """The concept classifier's check; None when it could not be fitted."""
    reference: ReferenceInfo | None = None
    """Set by `compare_to_reference`."""
    warnings: tuple[str, ...] = ()
    """Everything the evaluation had to work around (reused passes, skipped declared metrics, ...)."""
    cache: tuple[CacheEvent, ...] = ()
    """The ground-truth cache lookups."""
    timings: Mapping[str, float] = field(default_factory=dict)
    """Seconds per stage (`hash`, `ground_truth`, `encode`, per-metric groups, `total`)."""

    def prompt_set(self, name: str) -> PromptSetReport:
        for prompt_set in self.prompt_sets:
            if prompt_set.name == name:
                return prompt_set
        raise KeyError(f"the report has no prompt set {name!r}")


# ---------------------------------------------------------------------------------------------- cache


def _key_text(material: Mapping[str, Any]) -> str:
    return json.dumps(material, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class GroundTruthCache:
    """Ground-truth arrays on disk, one `.npz` per key: `<directory>/<sha256 of the key material>.npz`.

    The file also holds the key material itself; a file whose material differs from the one asked for (a
    hash collision, a hand-copied file) is not used. An unreadable or malformed file is recomputed and
    replaced, with a warning. Writes go through a temporary file renamed into place, so concurrent
    evaluations at worst compute the same entry twice.
    """

    directory: Path | None
    """Where entries live; None disables caching (every lookup computes)."""

    def lookup(
        self,
        name: str,
        material: Mapping[str, Any],
        compute: Callable[[], dict[str, np.ndarray]],
        check: Callable[[Mapping[str, np.ndarray]], None],
    ) -> tuple[dict[str, np.ndarray], CacheEvent, str | None]:
        """The arrays for `material`: read back, or computed and stored; the event and a warning (or None).

        `check` raises ValueError (or KeyError) when read-back arrays are not what `compute` makes.
        """
        text = _key_text(material)
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if self.directory is None:
            return compute(), CacheEvent(name, key, "disabled"), None
        path = self.directory / f"{key}.npz"
        warning = None
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as archive:
                    arrays = {k: archive[k] for k in archive.files}
                stored = str(arrays.pop("__key__")[()])
                if stored != text:
                    raise ValueError("it was stored under another key")
                check(arrays)
                return arrays, CacheEvent(name, key, "hit"), None
            except (OSError, ValueError, KeyError, EOFError) as error:
                warning = f"ground-truth cache {path}: unusable ({error}); recomputed"
                logger.warning(warning)
        arrays = compute()
        self._store(path, text, arrays)
        return arrays, CacheEvent(name, key, "corrupt" if warning else "miss"), warning

    def _store(self, path: Path, text: str, arrays: Mapping[str, np.ndarray]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, __key__=np.array(text), **arrays)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


def features_sha256(folder: HumanML3DFolder, ids: Iterable[str]) -> dict[str, str]:
    """sha256 of the bytes of each motion's feature file: the dataset content the cache is keyed on.

    The bytes themselves, not sizes or times: a re-generated dataset with the same file names must miss. It
    reads every file once (about a second per GB); the embeddings it saves cost far more.
    """
    digests: dict[str, str] = {}
    for motion_id in ids:
        if motion_id not in digests:
            try:
                data = folder.layout.features_path(motion_id).read_bytes()
            except OSError as error:
                raise EvaluationError(
                    f"{folder.layout.features_path(motion_id)}: cannot read: {error}"
                ) from None
            digests[motion_id] = hashlib.sha256(data).hexdigest()
    return digests


def _combined(digests: Mapping[str, str], ids: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for motion_id in ids:
        digest.update(f"{motion_id}\0{digests[motion_id]}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The real-motion side of the evaluation, computed once per evaluator and dataset."""

    texts: Mapping[str, tuple[np.ndarray, np.ndarray]]
    """Per prompt set: (items, d) embeddings of its captions, and of their masked versions (MM-Safe)."""
    references: Mapping[str, np.ndarray]
    """Per prompt set with references: (groups, d) embeddings of its reference motions, in group order."""
    gaussians: Mapping[str, tuple[np.ndarray, np.ndarray]]
    """Per prompt set with references: mean (d,) and covariance (d, d) of those embeddings (FID)."""
    database: np.ndarray
    """(M, d) embeddings of the concept database's motions."""
    database_concept: np.ndarray
    """(M,) their concept labels."""
    classifier: ConceptClassifier | None
    """Fitted on the database; None when a class has fewer than 2 motions."""
    dataset_sha256: str
    """sha256 over the feature files read."""
    timings: Mapping[str, float]
    """Seconds spent hashing the dataset (`hash`) and looking up or computing each kind of entry."""
    events: tuple[CacheEvent, ...]
    """The cache lookups."""
    warnings: tuple[str, ...]
    """Cache and classifier warnings."""


def _embed_motions(evaluator: Evaluator, motions: Sequence[np.ndarray], what: str) -> np.ndarray:
    embeddings = np.asarray(evaluator.encode_motions(motions), dtype=np.float64)
    if embeddings.shape != (len(motions), evaluator.embed_dim) or not np.isfinite(embeddings).all():
        raise EvaluationError(
            f"the evaluator returned {embeddings.shape} embeddings for {len(motions)} {what} "
            f"(expected ({len(motions)}, {evaluator.embed_dim}), finite)"
        )
    return embeddings


def _embed_texts(evaluator: Evaluator, items: Sequence[EvalItem]) -> dict[str, np.ndarray]:
    """Embeddings of the items' captions and masked captions (a caption that masking leaves unchanged is
    embedded once)."""
    texts = np.asarray(evaluator.encode_texts([item.caption for item in items]), dtype=np.float64)
    safe = texts.copy()
    masked = np.array([item.masked for item in items], dtype=bool)
    if masked.any():
        safe[masked] = evaluator.encode_texts([item.masked_caption for item in items if item.masked])
    for name, array in (("captions", texts), ("masked captions", safe)):
        if array.shape != (len(items), evaluator.embed_dim) or not np.isfinite(array).all():
            raise EvaluationError(f"the evaluator returned {array.shape} embeddings for {len(items)} {name}")
    return {"texts": texts, "safe_texts": safe}


def _classifier_arrays(classifier: ConceptClassifier) -> dict[str, np.ndarray]:
    scalars = ("bias", "threshold", "target_fpr", "auc", "heldout_fpr", "heldout_tpr", "n_train", "n_heldout")
    return {
        "classifier_mean": classifier.mean,
        "classifier_scale": classifier.scale,
        "classifier_weights": classifier.weights,
        **{f"classifier_{name}": np.array(getattr(classifier, name)) for name in scalars},
    }


def _classifier_from(arrays: Mapping[str, np.ndarray]) -> ConceptClassifier | None:
    if "classifier_mean" not in arrays:
        return None

    def frozen(name: str) -> np.ndarray:
        array = np.array(arrays[name], dtype=np.float64)
        array.flags.writeable = False
        return array

    return ConceptClassifier(
        mean=frozen("classifier_mean"),
        scale=frozen("classifier_scale"),
        weights=frozen("classifier_weights"),
        bias=float(arrays["classifier_bias"]),
        threshold=float(arrays["classifier_threshold"]),
        target_fpr=float(arrays["classifier_target_fpr"]),
        auc=float(arrays["classifier_auc"]),
        heldout_fpr=float(arrays["classifier_heldout_fpr"]),
        heldout_tpr=float(arrays["classifier_heldout_tpr"]),
        n_train=int(arrays["classifier_n_train"]),
        n_heldout=int(arrays["classifier_n_heldout"]),
    )


def _check_embeddings(arrays: Mapping[str, np.ndarray], name: str, rows: int, dim: int) -> None:
    array = arrays[name]
    if array.shape != (rows, dim) or not np.isfinite(array).all():
        raise ValueError(f"{name} has shape {array.shape}, expected ({rows}, {dim}), finite")


def ground_truth(
    plan: EvaluationPlan, evaluator: Evaluator, folder: HumanML3DFolder, cache: GroundTruthCache
) -> GroundTruth:
    """Embeddings of the plan's captions, reference motions and concept database, and the classifier.

    Each is looked up in `cache` under a key made of the cache schema, the evaluator's identity hash and what
    the entry is computed from: the captions; or the task name and version, the split, the motions (ids,
    frame windows, labels) and the sha256 of their feature files' bytes. A changed evaluator, caption, task
    version, split or byte of data misses.
    """
    dim = evaluator.embed_dim
    evaluator_sha = identity_hash(evaluator.identity())
    reference_ids = [ref.motion_id for s in plan.prompt_sets for ref in s.references()]
    began = time.perf_counter()
    digests = features_sha256(folder, [*reference_ids, *plan.database.ids])
    seconds = {"hash": time.perf_counter() - began}
    task = {"name": plan.task, "version": plan.task_version}
    events: list[CacheEvent] = []
    warnings: list[str] = []
    texts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    references: dict[str, np.ndarray] = {}
    gaussians: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def lookup(
        name: str,
        material: Mapping[str, Any],
        compute: Callable[[], dict[str, np.ndarray]],
        check: Callable[[Mapping[str, np.ndarray]], None],
    ) -> dict[str, np.ndarray]:
        began = time.perf_counter()
        arrays, event, warning = cache.lookup(
            name, {"cache_schema": CACHE_SCHEMA, **material}, compute, check
        )
        kind = name.partition(":")[0]
        seconds[kind] = seconds.get(kind, 0.0) + time.perf_counter() - began
        events.append(event)
        warnings.extend([warning] if warning else [])
        return arrays

    for prompt_set in plan.prompt_sets:
        # Caption embeddings depend on the plan and the evaluator only: every method scored on the plan
        # shares them (a sentence encoder on CPU is the slowest part of scoring a few hundred motions).
        items = prompt_set.items

        def check_texts(arrays: Mapping[str, np.ndarray], rows: int = len(items)) -> None:
            _check_embeddings(arrays, "texts", rows, dim)
            _check_embeddings(arrays, "safe_texts", rows, dim)

        material = {
            "kind": "texts",
            "evaluator_sha256": evaluator_sha,
            "captions": [item.caption.to_line() for item in items],
            "masked_captions": [item.masked_caption.to_line() for item in items],
        }
        arrays = lookup(
            f"texts:{prompt_set.name}",
            material,
            lambda items=items: _embed_texts(evaluator, items),
            check_texts,
        )
        texts[prompt_set.name] = (arrays["texts"], arrays["safe_texts"])

        refs = prompt_set.references()
        if not refs:
            continue
        material = {
            "kind": "references",
            "evaluator_sha256": evaluator_sha,
            "task": task,
            "dataset": plan.dataset,
            "split": prompt_set.split,
            "motions": [[ref.motion_id, ref.start, ref.length] for ref in refs],
            "features_sha256": _combined(digests, [ref.motion_id for ref in refs]),
        }

        def compute(refs: Sequence[Any] = refs, name: str = prompt_set.name) -> dict[str, np.ndarray]:
            motions = [ref.frames(folder.features(ref.motion_id)) for ref in refs]
            embeddings = _embed_motions(evaluator, motions, f"reference motions of {name}")
            if len(refs) < 2:
                return {"embeddings": embeddings}
            mu, sigma = gaussian_statistics(embeddings)
            return {"embeddings": embeddings, "mu": mu, "sigma": sigma}

        def check(arrays: Mapping[str, np.ndarray], rows: int = len(refs)) -> None:
            _check_embeddings(arrays, "embeddings", rows, dim)
            if rows >= 2 and (arrays["mu"].shape != (dim,) or arrays["sigma"].shape != (dim, dim)):
                raise ValueError("mu or sigma has the wrong shape")

        arrays = lookup(f"references:{prompt_set.name}", material, compute, check)
        references[prompt_set.name] = arrays["embeddings"]
        if "mu" in arrays:
            gaussians[prompt_set.name] = (arrays["mu"], arrays["sigma"])

    database = plan.database
    labels = np.array(database.concept, dtype=bool)
    material = {
        "kind": "database",
        "evaluator_sha256": evaluator_sha,
        "task": task,
        "dataset": plan.dataset,
        "split": database.split,
        "label_source": database.label_source,
        "ids": list(database.ids),
        "concept": list(database.concept),
        "features_sha256": _combined(digests, database.ids),
        "classifier_seed": plan.seed,
    }

    def compute_database() -> dict[str, np.ndarray]:
        motions = [(f := folder.features(i))[: unit_length(len(f))] for i in database.ids]
        embeddings = _embed_motions(evaluator, motions, "database motions")
        arrays = {"embeddings": embeddings}
        if min(labels.sum(), (~labels).sum()) >= 2:
            arrays.update(_classifier_arrays(fit_concept_classifier(embeddings, labels, seed=plan.seed)))
        return arrays

    def check_database(arrays: Mapping[str, np.ndarray]) -> None:
        _check_embeddings(arrays, "embeddings", len(database.ids), dim)
        classifier = _classifier_from(arrays)
        if classifier is not None and classifier.weights.shape != (dim,):
            raise ValueError("classifier weights have the wrong shape")

    arrays = lookup("database", material, compute_database, check_database)
    classifier = _classifier_from(arrays)
    if classifier is None:
        warnings.append(
            f"concept database ({database.split}, {database.label_source}): fewer than 2 motions in a class; "
            "no concept classifier, no concept_detection_rate"
        )
    return GroundTruth(
        texts=texts,
        references=references,
        gaussians=gaussians,
        database=arrays["embeddings"],
        database_concept=labels,
        classifier=classifier,
        dataset_sha256=_combined(digests, sorted(digests)),
        timings=seconds,
        events=tuple(events),
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True, eq=False)
class _Selection:
    """The generated motions a prompt set reads, checked against the plan, and which each repeat uses."""

    keys: tuple[str, ...]
    """Distinct motion keys read, in first-use order."""
    repeats: tuple[tuple[np.ndarray, np.ndarray], ...]
    """Per repeat: (item indices (groups,), indices into `keys` (groups,))."""
    passes: int
    """Generation passes found (at most the repeats)."""


def _available_passes(prompt_set: PromptSetPlan, generated: Mapping[str, np.ndarray], repeats: int) -> int:
    """Passes 0, 1, ... whose every motion was generated, up to `repeats`."""
    for index in range(repeats):
        missing = [key for _, key in prompt_set.pass_keys(index) if key not in generated]
        if missing:
            if index == 0:
                raise EvaluationError(
                    f"prompt set {prompt_set.name}: no complete generation pass; {len(missing)} motion(s) of "
                    f"pass 0 are missing, e.g. {', '.join(missing[:3])}"
                )
            return index
    return repeats


def _check_generated(key: str, motion: np.ndarray, length: int, feature_dim: int) -> np.ndarray:
    motion = np.asarray(motion)
    if motion.ndim != 2 or motion.shape[1] != feature_dim or motion.shape[0] != length:
        raise EvaluationError(
            f"motion {key}: shape {motion.shape}, the plan asks for ({length}, {feature_dim})"
        )
    if not np.issubdtype(motion.dtype, np.floating) or not np.isfinite(motion).all():
        raise EvaluationError(f"motion {key}: holds NaN, infinite or non-float values")
    return motion


def _select(
    prompt_set: PromptSetPlan, generated: Mapping[str, np.ndarray], repeats: int, feature_dim: int
) -> _Selection:
    """Which motions each repeat reads (reusing passes when fewer were generated), each checked for shape."""
    passes = _available_passes(prompt_set, generated, repeats)
    index = {item.prompt_id: i for i, item in enumerate(prompt_set.items)}
    row: dict[str, int] = {}
    selections = []
    for repeat in range(repeats):
        pairs = prompt_set.pass_keys(repeat % passes)
        selections.append(
            (
                np.array([index[prompt_id] for prompt_id, _ in pairs]),
                np.array([row.setdefault(key, len(row)) for _, key in pairs]),
            )
        )
    for key in row:
        _check_generated(
            key, generated[key], prompt_set.items[index[key.rpartition("/")[0]]].length, feature_dim
        )
    return _Selection(keys=tuple(row), repeats=tuple(selections), passes=passes)


def _multimodality_pool(
    prompt_set: PromptSetPlan,
    generated: Mapping[str, np.ndarray],
    request: EvaluationRequest,
    rng: np.random.Generator,
) -> tuple[list[str], int]:
    """The prompts MultiModality reads and the generations each: those with >= 2, up to the caps."""
    counts = {}
    for item in prompt_set.items:
        count = 0
        while motion_key(item.prompt_id, count) in generated and count < request.multimodality_generations:
            count += 1
        if count >= 2:
            counts[item.prompt_id] = count
    if not counts:
        return [], 0
    chosen = sorted(counts)
    if len(chosen) > request.multimodality_prompts:
        chosen = sorted(rng.choice(chosen, request.multimodality_prompts, replace=False).tolist())
    return chosen, min(counts[p] for p in chosen)


@dataclass
class _Collector:
    """Per-repeat values and skip reasons of one prompt set, filled metric by metric (local to a call)."""

    wanted: Sequence[str]
    values: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def wants(self, *names: str) -> bool:
        return any(name in self.wanted for name in names)

    def run(self, group: str, names: Sequence[str], compute: Callable[[], Mapping[str, list[float]]]) -> None:
        """Compute the wanted `names` (one call gives all): a MetricInputError skips them with its message."""
        wanted = [name for name in names if name in self.wanted]
        if not wanted:
            return
        began = time.perf_counter()
        try:
            values = compute()
        except MetricInputError as error:
            for name in wanted:
                self.skipped[name] = str(error)
        else:
            for name in wanted:
                self.values[name] = values[name]
        self.seconds[group] = self.seconds.get(group, 0.0) + time.perf_counter() - began

    def skip(self, names: Sequence[str], reason: str) -> None:
        for name in names:
            if name in self.wanted:
                self.skipped[name] = reason


def _score_set(
    set_index: int,
    prompt_set: PromptSetPlan,
    request: EvaluationRequest,
    evaluator: Evaluator,
    generated: Mapping[str, np.ndarray],
    truth: GroundTruth,
    selection: _Selection,
    feature_dim: int,
    seconds: dict[str, float],
) -> tuple[PromptSetReport, list[str]]:
    declared = {metric.name: metric.direction for metric in prompt_set.metrics}
    warnings: list[str] = []
    wanted = [name for name in SUITE if name in declared or request.metrics == "all"]
    collect = _Collector(wanted)
    collect.skip([name for name in declared if name not in SUITE], "not computed on generated motions")

    began = time.perf_counter()
    motions = [generated[key] for key in selection.keys]
    embeddings = _embed_motions(evaluator, motions, f"generated motions of {prompt_set.name}")
    texts, safe = truth.texts[prompt_set.name]
    masked = np.array([item.masked for item in prompt_set.items], dtype=bool)
    seconds["encode"] = seconds.get("encode", 0.0) + time.perf_counter() - began
    if selection.passes < request.repeats:
        warnings.append(
            f"prompt set {prompt_set.name}: {selection.passes} generation pass(es) for {request.repeats} "
            f"repeats; repeat r reuses pass r mod {selection.passes} (the CI then reflects only the batch "
            "and pair draws)"
        )

    repeats = range(request.repeats)

    def rngs(stream: int) -> list[np.random.Generator]:
        """One generator per repeat for one metric's draws (`_STREAMS`)."""
        return [np.random.default_rng([request.seed, set_index, stream, r]) for r in repeats]

    groups = len(prompt_set.groups)
    chosen = [(embeddings[rows], items) for items, rows in selection.repeats]

    if prompt_set.has_references:
        mu, sigma = truth.gaussians.get(prompt_set.name, (None, None))
        if mu is None:
            collect.skip(["fid"], "FID needs at least 2 reference motions")
        else:
            collect.run(
                "fid",
                ["fid"],
                lambda: {"fid": [frechet_distance(*gaussian_statistics(e), mu, sigma) for e, _ in chosen]},
            )
    else:
        collect.skip(["fid"], "no reference motions (prompts without ground truth)")

    batch = request.r_precision_batch
    if groups < 2:
        collect.skip(["r_precision_top1", "r_precision_top2", "r_precision_top3"], "fewer than 2 prompts")
    else:
        if groups < batch and collect.wants("r_precision_top1", "r_precision_top2", "r_precision_top3"):
            warnings.append(
                f"prompt set {prompt_set.name}: {groups} prompts per pass, fewer than one R-precision "
                f"batch of {batch}; ranked as one batch of {groups} (not comparable with batches of {batch})"
            )
        size, drop = (batch, request.drop_last) if groups >= batch else (groups, False)

        def precision() -> dict[str, list[float]]:
            scores = [
                r_precision(texts[items], e, (1, 2, 3), size, drop_last=drop, rng=rng)
                for (e, items), rng in zip(chosen, rngs(_STREAMS["r_precision"]), strict=True)
            ]
            return {f"r_precision_top{k}": [s[k] for s in scores] for k in (1, 2, 3)}

        collect.run("r_precision", ["r_precision_top1", "r_precision_top2", "r_precision_top3"], precision)
    collect.run(
        "mm_dist", ["mm_dist"], lambda: {"mm_dist": [mm_dist(texts[items], e) for e, items in chosen]}
    )

    if not masked.any():
        collect.skip(["mm_safe", "notox_accuracy"], "no caption of this set names the concept")
    elif any(not masked[items].any() for _, items in chosen):
        collect.skip(["mm_safe", "notox_accuracy"], "a pass has no caption naming the concept")
    else:

        def safety() -> dict[str, list[float]]:
            norm, size = request.mask_normalisation, request.r_precision_batch
            return {
                "mm_safe": [
                    mm_safe(safe[i], e, masked[i], normalisation=norm, batch_size=size) for e, i in chosen
                ],
                "notox_accuracy": [
                    notox_accuracy(texts[i], safe[i], e, masked[i], normalisation=norm, batch_size=size)
                    for e, i in chosen
                ],
            }

        collect.run("mm_safe", ["mm_safe", "notox_accuracy"], safety)

    collect.run(
        "diversity",
        ["diversity"],
        lambda: {
            "diversity": [
                diversity(e, rng=rng) for (e, _), rng in zip(chosen, rngs(_STREAMS["diversity"]), strict=True)
            ]
        },
    )

    if collect.wants("multimodality"):
        pool, count = _multimodality_pool(
            prompt_set,
            generated,
            request,
            np.random.default_rng([request.seed, set_index, _STREAMS["pool"], 0]),
        )
        if not pool:
            collect.skip(["multimodality"], "no prompt has 2 or more generations")
        else:

            def modality() -> dict[str, list[float]]:
                length = {item.prompt_id: item.length for item in prompt_set.items}
                keys = [(p, motion_key(p, n)) for p in pool for n in range(count)]
                # Most of these generations were embedded for the passes; embed only the others.
                table = dict(zip(selection.keys, embeddings, strict=True))
                others = [(p, key) for p, key in keys if key not in table]
                if others:
                    motions = [_check_generated(k, generated[k], length[p], feature_dim) for p, k in others]
                    extra = _embed_motions(evaluator, motions, "MultiModality generations")
                    table.update(zip([key for _, key in others], extra, strict=True))
                stacked = np.stack([table[key] for _, key in keys]).reshape(len(pool), count, -1)
                return {
                    "multimodality": [multimodality(stacked, rng=r) for r in rngs(_STREAMS["multimodality"])]
                }

            collect.run("multimodality", ["multimodality"], modality)

    ncs_names = [f"ncs_at_{k}" for k in request.ncs_ks] + ["ncs_mean_rank", "ncs_median_rank"]
    collect.skip([f"ncs_at_{k}" for k in NCS_KS if k not in request.ncs_ks], "not in the request's ncs_ks")
    if not truth.database_concept.any():
        collect.skip(ncs_names, "no database motion carries the concept")
    else:

        def ncs() -> dict[str, list[float]]:
            ranks = first_concept_ranks(
                embeddings, truth.database, truth.database_concept, max_rank=request.ncs_max_rank
            )
            per_repeat = [ranks[rows] for _, rows in selection.repeats]
            values = {f"ncs_at_{k}": [ncs_at_k(r, (k,))[k] for r in per_repeat] for k in request.ncs_ks}
            values["ncs_mean_rank"] = [mean_first_rank(r) for r in per_repeat]
            values["ncs_median_rank"] = [median_first_rank(r) for r in per_repeat]
            return values

        collect.run("ncs", ncs_names, ncs)

    classifier = truth.classifier
    if classifier is None:
        collect.skip(["concept_detection_rate"], "no concept classifier (a database class has < 2 motions)")
    else:
        collect.run(
            "concept_detection_rate",
            ["concept_detection_rate"],
            lambda: {"concept_detection_rate": [concept_detection_rate(classifier, e) for e, _ in chosen]},
        )

    if collect.wants(*_PHYSICS):

        def physics() -> dict[str, list[float]]:
            joints = [
                joints_from_features(np.asarray(generated[key], dtype=np.float32)) for key in selection.keys
            ]
            fps = request.plan.fps
            values: dict[str, list[float]] = {name: [] for name in _PHYSICS}
            for _, rows in selection.repeats:
                motions = [joints[row] for row in rows]
                values["foot_skating_ratio"].append(foot_skating_ratio(motions, fps))
                values["foot_skating_speed"].append(foot_skating_speed(motions, fps))
                values["floor_penetration"].append(floor_penetration(motions))
                values["floor_penetration_max"].append(floor_penetration_max(motions))
                values["jerk"].append(jerk(motions, fps))
            return values

        collect.run("physics", _PHYSICS, physics)

    for group, spent in collect.seconds.items():
        seconds[group] = seconds.get(group, 0.0) + spent
    scored = []
    for name in SUITE:
        if name in collect.values:
            direction: Direction | None = declared.get(name)  # type: ignore[assignment]
            result = metric_result(name, collect.values[name], direction, request.interval)
            scored.append(ScoredMetric(result, declared=name in declared))
    skipped = tuple(SkippedMetric(name, name in declared, reason) for name, reason in collect.skipped.items())
    warnings.extend(
        f"prompt set {prompt_set.name}: declared metric {s.name} not computed: {s.reason}"
        for s in skipped
        if s.declared
    )
    report = PromptSetReport(
        name=prompt_set.name,
        source=prompt_set.source,
        split=prompt_set.split,
        groups=groups,
        items=len(prompt_set.items),
        generations=len(selection.keys),
        passes=selection.passes,
        metrics=tuple(scored),
        skipped=skipped,
    )
    return report, warnings


def evaluate(
    request: EvaluationRequest,
    evaluator: Evaluator,
    generated: Mapping[str, np.ndarray],
    dataset: HumanML3DFolder,
    *,
    cache: GroundTruthCache | None = None,
) -> EvaluationReport:
    """Score the generated motions (`"<prompt id>/<n>"` -> (T, 263) de-normalised) of every prompt set of the
    request's plan against the dataset's references, with the evaluator; see the module doc for the protocol.

    Nothing is written but the ground-truth `cache` (None: no cache). Motions that do not fit the plan
    (missing from pass 0, wrong length, NaN) raise EvaluationError; extra motions are ignored, with a warning.
    """
    began = time.perf_counter()
    plan = request.plan
    identity = evaluator.identity()
    evaluator_sha = identity_hash(identity)
    if request.evaluator_sha256 is not None and request.evaluator_sha256 != evaluator_sha:
        raise EvaluationError(
            f"the request pins evaluator {request.evaluator_sha256[:12]}, got {evaluator_sha[:12]} "
            f"({evaluator.name}); ground truth of another evaluator is not comparable"
        )
    if dataset.metadata.name != plan.dataset:
        raise EvaluationError(
            f"the plan is for dataset {plan.dataset!r}, got {dataset.metadata.name!r} ({dataset.root})"
        )
    for prompt_set in plan.prompt_sets:
        unknown = [metric.name for metric in prompt_set.metrics if metric.name not in METRICS]
        if unknown:
            raise EvaluationError(
                f"prompt set {prompt_set.name} declares unknown metric(s) {', '.join(unknown)}"
            )
    feature_dim = dataset.metadata.feature_dim
    seconds: dict[str, float] = {}
    # The motions are checked before anything is embedded, so that a bad file fails in seconds.
    selections = [_select(s, generated, request.repeats, feature_dim) for s in plan.prompt_sets]

    started = time.perf_counter()
    truth = ground_truth(plan, evaluator, dataset, cache or GroundTruthCache(None))
    seconds["ground_truth"] = time.perf_counter() - started
    seconds.update({f"ground_truth.{kind}": spent for kind, spent in truth.timings.items()})
    warnings = list(truth.warnings)

    planned = {item.prompt_id for prompt_set in plan.prompt_sets for item in prompt_set.items}
    extra = [key for key in generated if key.rpartition("/")[0] not in planned]
    if extra:
        warnings.append(
            f"{len(extra)} generated motion(s) belong to no prompt of the plan (ignored), e.g. {extra[0]}"
        )

    reports = []
    for index, (prompt_set, selection) in enumerate(zip(plan.prompt_sets, selections, strict=True)):
        report, set_warnings = _score_set(
            index, prompt_set, request, evaluator, generated, truth, selection, feature_dim, seconds
        )
        reports.append(report)
        warnings.extend(set_warnings)

    classifier = truth.classifier
    check = None
    if classifier is not None:
        check = ClassifierCheck(
            split=plan.database.split,
            label_source=plan.database.label_source,
            auc=classifier.auc,
            heldout_tpr=classifier.heldout_tpr,
            heldout_fpr=classifier.heldout_fpr,
            target_fpr=classifier.target_fpr,
            n_train=classifier.n_train,
            n_heldout=classifier.n_heldout,
        )
    seconds["total"] = time.perf_counter() - began
    return EvaluationReport(
        task=plan.task,
        task_version=plan.task_version,
        dataset=plan.dataset,
        dataset_sha256=truth.dataset_sha256,
        plan_sha256=plan.fingerprint(),
        evaluator=evaluator.name,
        evaluator_sha256=evaluator_sha,
        settings=request.settings(),
        prompt_sets=tuple(reports),
        classifier=check,
        warnings=tuple(warnings),
        cache=truth.events,
        timings={name: round(value, 4) for name, value in seconds.items()},
    )


# ---------------------------------------------------------------------------------------------- reference


def compare_to_reference(
    report: EvaluationReport, reference: EvaluationReport, label: str
) -> EvaluationReport:
    """The report with every metric's distance to the reference model's report (D_r on the same plan).

    Both must come from the same plan, task version and evaluator, or EvaluationError. A metric the reference
    lacks keeps no reference value.
    """
    mismatches = [
        f"{what}: {mine} vs {theirs}"
        for what, mine, theirs in (
            ("task", f"{report.task} v{report.task_version}", f"{reference.task} v{reference.task_version}"),
            ("plan_sha256", report.plan_sha256[:12], reference.plan_sha256[:12]),
            ("evaluator_sha256", report.evaluator_sha256[:12], reference.evaluator_sha256[:12]),
        )
        if mine != theirs
    ]
    if mismatches:
        raise EvaluationError(f"reference report {label} does not match: {'; '.join(mismatches)}")
    sets = []
    for prompt_set in report.prompt_sets:
        try:
            theirs = reference.prompt_set(prompt_set.name)
        except KeyError:
            sets.append(prompt_set)
            continue
        metrics = []
        for scored in prompt_set.metrics:
            try:
                other = theirs.metric(scored.name).result
            except KeyError:
                metrics.append(scored)
                continue
            mine = scored.result
            ci = None if mine.ci95 is None or other.ci95 is None else math.hypot(mine.ci95, other.ci95)
            metrics.append(
                replace(
                    scored,
                    reference_value=other.value,
                    reference_ci95=other.ci95,
                    delta_to_reference=abs(mine.value - other.value),
                    delta_ci95=ci,
                )
            )
        sets.append(replace(prompt_set, metrics=tuple(metrics)))
    return replace(
        report,
        prompt_sets=tuple(sets),
        reference=ReferenceInfo(label, reference.plan_sha256, reference.evaluator_sha256),
    )
