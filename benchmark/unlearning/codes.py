"""RVQ code statistics of forget and retain motions: which codes mark a concept (methods `lcr`, `code_ban`).

The HMU paper's analysis (arXiv 2503.18674, `src/methods/lcr.py`; spec/unlearning-methods.md section 1):
encode every forget and retain motion with the model's RVQ, count per layer in how many motions each code
occurs (document frequencies n_f(c), n_r(c): a motion counts once per code), rank the codes by
s1 = n_f / (n_r + ε) and s2 = (n_f / Σn_f) / (n_r / Σn_r + ε), and take the union of the top k of each.
`lcr` overwrites the codebook rows of those codes; `code_ban` forbids them while sampling.

    >>> statistics, key, notes = cached_statistics(backbone, request, passes=1, workdir=workdir)
    >>> flagged = [select_codes(statistics.forget[q], statistics.retain[q], k=16) for q in range(layers)]

How this departs from the HMU code (methods/lcr/README.md gives the reasons):
- Each motion is encoded whole, once (`passes=1`), cut to whole tokens, without padding; `passes=N > 1`
  reproduces MoMask's random crops, each crop a document. The original zero-padded every motion to 196
  frames and counted the padding's codes in every motion.
- Codes that never occur in a forget motion are never selected, and ties go to the lower code index.
- The statistics are cached under a key made of the RVQ's weights and normalisation, the sha256 of every
  listed feature file, the forget and retain ids and the statistics' own settings; an entry stored under
  another key is never used (the original reused `assets/<DS>_codes.csv` whatever the checkpoint or data).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmark.api.contract import UnlearnRequest
from benchmark.api.method import MethodError
from benchmark.backbone.model import Backbone
from benchmark.data.humanml3d import HumanML3DFolder, check_features
from benchmark.errors import DataFormatError

logger = logging.getLogger(__name__)

EPSILON = 1e-8
"""The ε of the original scores (it keeps codes absent from the retain motions finite)."""
BATCH_SIZE = 64
"""Motions encoded per RVQ forward pass (all of one length: no padding)."""
CACHE_ENV = "HMU_METHOD_CACHE_DIR"
"""A folder kept between runs; its `code-statistics/` subfolder holds the code statistics (shared by the
methods and the runs of a sweep). Unset: each run computes them in its own workdir."""
STATISTICS_SCHEMA = "hmu.lcr-code-statistics/1"
"""Part of every cache key: bump it when the way the statistics are computed changes. (It keeps the name
LCR gave it first: renaming would change every key, and with it the record of every LCR model.)"""

# ----------------------------------------------------------------------------- code statistics


@dataclass(frozen=True)
class CodeStatistics:
    """Document frequencies of every code in every RVQ layer, over the forget and the retain motions."""

    forget: np.ndarray
    """(Q, nb_code) int64: n_f, the forget documents (motions, or crops) that contain each code."""
    retain: np.ndarray
    """(Q, nb_code) int64: n_r, the same over the retain documents."""
    documents: np.ndarray
    """(2,) int64: forget and retain documents counted."""
    skipped: np.ndarray
    """(2,) int64: forget and retain motions shorter than one token (no code to count)."""

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "forget": self.forget,
            "retain": self.retain,
            "documents": self.documents,
            "skipped": self.skipped,
        }


def document_frequencies(codes: Tensor, nb_code: int) -> Tensor:
    """codes (B, n, Q) of B documents -> (Q, nb_code): how many documents contain each code in each layer
    (a code repeated within a document counts once: the original's `np.unique` per row)."""
    batch, _, layers = codes.shape
    present = torch.zeros(batch, layers, nb_code, dtype=torch.bool, device=codes.device)
    present.scatter_(2, codes.permute(0, 2, 1), True)
    return present.sum(dim=0)


def crop_windows(
    frames: int, frames_per_token: int, passes: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """The (start, length) windows of a motion to encode: with one pass, the whole motion cut to whole
    tokens; with several, one MoMask-style random crop per pass (whole tokens, one token fewer with
    probability 1/3, random offset). No window for a motion shorter than one token."""
    tokens = frames // frames_per_token
    if tokens == 0:
        return []
    if passes == 1:
        return [(0, tokens * frames_per_token)]
    windows = []
    for _ in range(passes):
        shorter = tokens > 1 and rng.random() < 1 / 3  # MoMask's coin: ['single', 'single', 'double']
        length = (tokens - 1 if shorter else tokens) * frames_per_token
        windows.append((int(rng.integers(0, frames - length + 1)), length))
    return windows


def code_statistics(
    backbone: Backbone,
    load: Callable[[str], np.ndarray],
    lengths: Mapping[str, int],
    forget_ids: Iterable[str],
    passes: int,
    seed: int,
) -> CodeStatistics:
    """Encode every motion in `lengths` (forget ids on one side, the rest on the other) and count codes.

    `load(id)` gives the (T, D) features. Motions are visited in sorted order, so the random crops depend
    on the set of ids and the seed, not on the request's order. Windows of one length are batched together:
    nothing is padded."""
    rvq = backbone.config.rvq
    forget = set(forget_ids)
    rng = np.random.default_rng(seed)
    by_length: dict[int, list[tuple[str, int]]] = {}
    skipped = np.zeros(2, dtype=np.int64)
    for motion_id in sorted(lengths):
        windows = crop_windows(lengths[motion_id], backbone.frames_per_token, passes, rng)
        if not windows:
            skipped[0 if motion_id in forget else 1] += 1
        for start, length in windows:
            by_length.setdefault(length, []).append((motion_id, start))
    counts = torch.zeros(2, rvq.num_quantizers, rvq.nb_code, dtype=torch.int64)
    documents = np.zeros(2, dtype=np.int64)
    device = backbone.mean.device
    for length in sorted(by_length):
        group = by_length[length]
        for first in range(0, len(group), BATCH_SIZE):
            chunk = group[first : first + BATCH_SIZE]
            motion = np.stack([load(motion_id)[start : start + length] for motion_id, start in chunk])
            codes = backbone.rvq.encode(backbone.normalise(torch.from_numpy(motion).to(device)))
            sides = torch.tensor([0 if motion_id in forget else 1 for motion_id, _ in chunk], device=device)
            for side in (0, 1):
                selected = codes[sides == side]
                if len(selected):
                    counts[side] += document_frequencies(selected, rvq.nb_code).cpu()
                    documents[side] += len(selected)
    return CodeStatistics(counts[0].numpy(), counts[1].numpy(), documents, skipped)


def code_scores(forget: np.ndarray, retain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original's two rankings of one layer's codes: s1 = n_f / (n_r + ε) and
    s2 = (n_f / (Σn_f + ε)) / (n_r / (Σn_r + ε) + ε)."""
    f, r = forget.astype(np.float64), retain.astype(np.float64)
    raw = f / (r + EPSILON)
    normalised = (f / (f.sum() + EPSILON)) / (r / (r.sum() + EPSILON) + EPSILON)
    return raw, normalised


def select_codes(forget: np.ndarray, retain: np.ndarray, k: int) -> list[int]:
    """The union of the top k codes of s1 and of s2 (`code_scores`), among codes that occur in at least one
    forget document; ties go to the lower code index. Sorted."""
    occurs = forget > 0
    chosen: set[int] = set()
    for score in code_scores(forget, retain):
        order = np.argsort(-score, kind="stable")
        chosen.update(int(code) for code in order[occurs[order]][:k])
    return sorted(chosen)


# ----------------------------------------------------------------------------- cache


def rvq_digest(backbone: Backbone) -> str:
    """sha256 of what the statistics depend on in the model: the RVQ's config and tensors, and the
    normalisation (mean, std)."""
    digest = hashlib.sha256(json.dumps(backbone.config.rvq.to_dict(), sort_keys=True).encode())
    tensors = {f"rvq.{name}": tensor for name, tensor in backbone.rvq.state_dict().items()}
    tensors.update(mean=backbone.mean, std=backbone.std)
    for name in sorted(tensors):
        data = tensors[name].detach().cpu().contiguous()
        digest.update(f"\n{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def ids_digest(ids: Iterable[str], file_digests: Mapping[str, str]) -> str:
    """sha256 of a set of motion ids with the sha256 of each one's feature file (sorted: order-free)."""
    digest = hashlib.sha256()
    for motion_id in sorted(ids):
        digest.update(f"{motion_id}\0{file_digests[motion_id]}\n".encode())
    return digest.hexdigest()


def statistics_material(
    backbone: Backbone,
    forget_ids: Sequence[str],
    retain_ids: Sequence[str],
    file_digests: Mapping[str, str],
    passes: int,
    seed: int,
) -> dict[str, Any]:
    """Everything the statistics are a function of: the cache key's content."""
    return {
        "schema": STATISTICS_SCHEMA,
        "rvq": rvq_digest(backbone),
        "forget": ids_digest(forget_ids, file_digests),
        "retain": ids_digest(retain_ids, file_digests),
        "passes": passes,
        "seed": seed if passes > 1 else None,  # one full-length pass draws nothing
    }


@dataclass(frozen=True)
class StatisticsCache:
    """Code statistics on disk, one `<sha256 of the key>.npz` per key, holding the key itself: a file
    stored under another key (a collision, a copied file) or unreadable is recomputed and replaced."""

    directory: Path

    def lookup(
        self, material: Mapping[str, Any], compute: Callable[[], CodeStatistics], shape: tuple[int, int]
    ) -> tuple[CodeStatistics, str, str]:
        """The statistics for `material`, read back or computed and stored; with the key and what happened
        (`hit`, `miss`, or `replaced` with the reason)."""
        text = json.dumps(material, sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(text.encode()).hexdigest()
        path = self.directory / f"{key}.npz"
        event = "miss"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as archive:
                    if str(archive["key"][()]) != text:
                        raise ValueError("it was stored under another key")
                    statistics = CodeStatistics(
                        **{name: archive[name] for name in ("forget", "retain", "documents", "skipped")}
                    )
                if statistics.forget.shape != shape or statistics.retain.shape != shape:
                    raise ValueError(f"counts of shape {statistics.forget.shape}, expected {shape}")
                return statistics, key, "hit"
            except (OSError, ValueError, KeyError, EOFError) as error:
                event = f"replaced ({path.name} unusable: {error})"
                logger.warning("code statistics cache %s: unusable (%s); recomputed", path, error)
        statistics = compute()
        self._store(path, text, statistics)
        return statistics, key, event

    def _store(self, path: Path, text: str, statistics: CodeStatistics) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, key=np.array(text), **statistics.arrays())
            os.replace(
                temporary, path
            )  # readers never see half a file; concurrent runs at worst both compute
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


def cache_directory(workdir: Path) -> Path:
    """`$HMU_METHOD_CACHE_DIR/code-statistics` when set (shared by runs, e.g. a k sweep, and by the methods
    that read the statistics), else the run's workdir."""
    shared = os.environ.get(CACHE_ENV)
    return (Path(shared) if shared else workdir) / "code-statistics"


def read_motion_files(folder: HumanML3DFolder, ids: Iterable[str]) -> tuple[dict[str, str], dict[str, int]]:
    """sha256 of each motion's feature-file bytes and its number of frames (the file is checked)."""
    digests: dict[str, str] = {}
    lengths: dict[str, int] = {}
    for motion_id in ids:
        path = folder.layout.features_path(motion_id)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DataFormatError(
                path, f"cannot read the features of motion {motion_id!r}: {error}"
            ) from None
        digests[motion_id] = hashlib.sha256(data).hexdigest()
        array = np.load(io.BytesIO(data), allow_pickle=False)
        lengths[motion_id] = len(check_features(array, path, folder.metadata.feature_dim))
    return digests, lengths


def cached_statistics(
    backbone: Backbone, request: UnlearnRequest, passes: int, workdir: Path
) -> tuple[CodeStatistics, str, list[str]]:
    """The code statistics of the request's forget and retain motions, from the cache or computed; with
    the cache key and notes for result.json."""
    rvq = backbone.config.rvq
    forget_ids, retain_ids = list(request.forget.motion_ids), list(request.retain.motion_ids)
    if not forget_ids or not retain_ids:
        raise MethodError("the code statistics compare forget and retain motions: both must list motion ids")
    folder = HumanML3DFolder(request.data_dir)
    file_digests, lengths = read_motion_files(folder, [*forget_ids, *retain_ids])
    material = statistics_material(backbone, forget_ids, retain_ids, file_digests, passes, request.seed)

    def compute() -> CodeStatistics:
        return code_statistics(backbone, folder.features, lengths, forget_ids, passes, request.seed)

    began = time.perf_counter()
    cache = StatisticsCache(cache_directory(workdir))
    statistics, key, event = cache.lookup(material, compute, (rvq.num_quantizers, rvq.nb_code))
    notes = [f"code statistics {key[:12]}: {event} in {time.perf_counter() - began:.1f} s"]
    if statistics.documents[0] == 0:
        raise MethodError("no forget motion is long enough to encode: there is nothing to count")
    if statistics.skipped.any():
        forget, retain = statistics.skipped.tolist()
        notes.append(f"motions shorter than one token, not counted: {forget} forget, {retain} retain")
    return statistics, key, notes
