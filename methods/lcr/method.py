"""lcr: Latent Code Replacement: overwrite the RVQ codes that mark the concept, so they decode otherwise.

The HMU paper's method (arXiv 2503.18674, `src/methods/lcr.py`; spec/unlearning-methods.md section 1):

1. Encode every forget and retain motion of the training split with the RVQ, and count per layer in how
   many motions each code occurs (document frequencies n_f(c), n_r(c): a motion counts once per code).
2. Rank the codes by s1 = n_f / (n_r + ε) and by s2 = (n_f / Σn_f) / (n_r / Σn_r + ε), and censor the
   union of the top k of each, in each of the first `layers` layers.
3. Overwrite each censored codebook row (in a copy of the model): `replace` writes the target code's row
   plus α·σ_layer·ε, ε ~ N(0, I) drawn once with the run's seed (σ_layer: std of all entries of that
   layer's codebook); `orthogonal` removes α times the row's component along the normalised mean of the
   censored rows.

Only codebook tensors change. The transformers have their own token embeddings, so they still predict the
same indices; the censored indices just decode differently.

Where this departs from the HMU code, and why:
- Each motion is encoded whole, once (`statistics_passes: 1`), cropped to a multiple of the token length,
  without padding. The original encoded `train_val` 20 times with the dataset's random crops (and random
  caption choice, irrelevant to codes), zero-padded to 196 frames: the padding's codes were counted in
  every motion, forget and retain alike. The RVQ is convolutional and deterministic, so one full-length
  pass is exact; `statistics_passes: N > 1` reproduces the random crops (MoMask's: length rounded down to
  whole tokens, one token shorter with probability 1/3, random offset), each crop a document.
- The retain set is the request's retain ids, not "every train_val motion not in the forget file".
- Codes that never occur in a forget motion are never censored (the original's argsort could pick them
  when fewer than k codes occur), and ties are broken by the lower code index (a stable sort).
- A censored target code is replaced by a code uncensored in *every* edited layer, drawn with the run's
  seed (the original checked layer 0 only).
- The statistics are cached under a key made of the RVQ's weights and normalisation, the sha256 of every
  listed feature file, the forget and retain ids and the statistics' own settings; an entry stored under
  another key is never used. The original reused `assets/<DS>_codes.csv` whatever the checkpoint or data.
"""

from __future__ import annotations

import copy
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

from benchmark.api import Method, MethodError, UnlearnOutcome, UnlearnRequest
from benchmark.api.contract import ContractError
from benchmark.backbone import LoadedModel
from benchmark.backbone.model import Backbone
from benchmark.data.humanml3d import HumanML3DFolder, check_features
from benchmark.errors import DataFormatError

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("replace", "orthogonal")
"""How a censored code is overwritten: by the target code plus noise, or without its mean direction."""
EPSILON = 1e-8
"""The ε of the original scores (it keeps codes absent from the retain motions finite)."""
BATCH_SIZE = 64
"""Motions encoded per RVQ forward pass (all of one length: no padding)."""
CACHE_ENV = "HMU_METHOD_CACHE_DIR"
"""A folder kept between runs; its `lcr/` subfolder holds the code statistics. Unset: the run's workdir."""
STATISTICS_SCHEMA = "hmu.lcr-code-statistics/1"
"""Part of every cache key: bump it when the way the statistics are computed changes."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LCRSettings:
    """The method's parameters, checked against the model (method.yaml explains each)."""

    k: int
    layers: int
    alpha: float
    mode: str
    target_code: int
    statistics_passes: int

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any], backbone: Backbone) -> LCRSettings:
        """The settings; a value out of range is a ContractError naming `parameters.<name>`."""
        rvq = backbone.config.rvq
        settings = cls(**{name: parameters[name] for name in cls.__dataclass_fields__})
        checks = {
            "k": (settings.k >= 1, "must be >= 1"),
            "layers": (
                1 <= settings.layers <= rvq.num_quantizers,
                f"must be in [1, {rvq.num_quantizers}] (the model's RVQ layers)",
            ),
            "alpha": (settings.alpha >= 0, "must be >= 0"),
            "mode": (settings.mode in MODES, f"expected one of {', '.join(MODES)}"),
            "target_code": (
                0 <= settings.target_code < rvq.nb_code,
                f"must be in [0, {rvq.nb_code}) (the model's codes per layer)",
            ),
            "statistics_passes": (settings.statistics_passes >= 1, "must be >= 1"),
        }
        for name, (ok, message) in checks.items():
            if not ok:
                raise ContractError(f"parameters.{name}", f"{message}, got {getattr(settings, name)!r}")
        return settings


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
    """`$HMU_METHOD_CACHE_DIR/lcr` when set (shared by runs, e.g. a k sweep), else the run's workdir."""
    shared = os.environ.get(CACHE_ENV)
    return Path(shared) / "lcr" if shared else workdir / "code-statistics"


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


# ----------------------------------------------------------------------------- the edit


def choose_target(
    requested: int, censored: Sequence[Sequence[int]], nb_code: int, rng: np.random.Generator
) -> int:
    """`requested`, or when some edited layer censors it, a code no edited layer censors, drawn with `rng`."""
    banned = {code for layer in censored for code in layer}
    if requested not in banned:
        return requested
    allowed = [code for code in range(nb_code) if code not in banned]
    if not allowed:
        raise MethodError("every code is censored in some edited layer: there is no target code left")
    return int(allowed[int(rng.integers(len(allowed)))])


def replace_codes(codebook: Tensor, codes: Sequence[int], target: int, alpha: float, noise: Tensor) -> float:
    """codebook[c] = codebook[target] + α·σ·ε_c for each censored code c, in place; σ is the std of all
    entries of the codebook before the edit and ε (len(codes), code_dim) the noise. Returns σ."""
    sigma = float(codebook.std())
    rows = torch.as_tensor(list(codes), dtype=torch.long, device=codebook.device)
    with torch.no_grad():
        codebook[rows] = codebook[target] + alpha * sigma * noise.to(codebook.device, codebook.dtype)
    return sigma


def orthogonalise_codes(codebook: Tensor, codes: Sequence[int], alpha: float) -> None:
    """c ← c − α (c·d) d for each censored code c, in place, d the normalised mean of the censored rows."""
    rows = torch.as_tensor(list(codes), dtype=torch.long, device=codebook.device)
    censored = codebook[rows]
    direction = censored.mean(dim=0)
    norm = direction.norm()
    if norm == 0:
        raise MethodError("the censored codes average to 0: there is no direction to remove")
    direction = direction / norm
    with torch.no_grad():
        codebook[rows] = censored - alpha * (censored @ direction)[:, None] * direction


# ----------------------------------------------------------------------------- the method


class LCRMethod(Method):
    """Censor the RVQ codes over-represented in the forget motions by overwriting their codebook rows."""

    def unlearn(self, model: LoadedModel, request: UnlearnRequest, workdir: Path) -> UnlearnOutcome:
        settings = LCRSettings.from_parameters(request.parameters, model.backbone)
        statistics, key, notes = cached_statistics(model.backbone, request, settings, workdir)
        censored = [
            select_codes(statistics.forget[layer], statistics.retain[layer], settings.k)
            for layer in range(settings.layers)
        ]
        backbone = copy.deepcopy(model.backbone)  # the transformers are copied untouched
        edit = edit_codebooks(backbone, censored, settings, request.seed)
        if edit.get("target_code", settings.target_code) != settings.target_code:
            notes.append(f"target code {settings.target_code} is censored: code {edit['target_code']} drawn")
        sizes = ", ".join(f"layer {layer}: {len(codes)}" for layer, codes in enumerate(censored))
        notes.append(f"censored codes ({settings.mode}, k={settings.k}): {sizes}")
        record = {
            "mode": settings.mode,
            "censored_codes": censored,
            **edit,
            # n_f and n_r of each censored code, in the order of censored_codes.
            "forget_counts": [
                statistics.forget[layer][codes].tolist() for layer, codes in enumerate(censored)
            ],
            "retain_counts": [
                statistics.retain[layer][codes].tolist() for layer, codes in enumerate(censored)
            ],
            "documents": {"forget": int(statistics.documents[0]), "retain": int(statistics.documents[1])},
            "statistics_key": key,
        }
        return UnlearnOutcome(backbone=backbone, record=record, notes=tuple(notes))


def cached_statistics(
    backbone: Backbone, request: UnlearnRequest, settings: LCRSettings, workdir: Path
) -> tuple[CodeStatistics, str, list[str]]:
    """The code statistics of the request's forget and retain motions, from the cache or computed; with
    the cache key and notes for result.json."""
    rvq = backbone.config.rvq
    forget_ids, retain_ids = list(request.forget.motion_ids), list(request.retain.motion_ids)
    if not forget_ids or not retain_ids:
        raise MethodError("lcr compares forget and retain motions: both subsets must list motion ids")
    folder = HumanML3DFolder(request.data_dir)
    file_digests, lengths = read_motion_files(folder, [*forget_ids, *retain_ids])
    passes = settings.statistics_passes
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


def edit_codebooks(
    backbone: Backbone, censored: Sequence[Sequence[int]], settings: LCRSettings, seed: int
) -> dict[str, Any]:
    """Overwrite the censored rows of the first len(censored) codebooks in place; returns what was used
    (target code, noise seed and per-layer sigma for `replace`) for the record."""
    codebooks = backbone.rvq.codebooks
    if settings.mode == "orthogonal":
        for layer, codes in enumerate(censored):
            orthogonalise_codes(codebooks[layer], codes, settings.alpha)
        return {}
    rvq = backbone.config.rvq
    target = choose_target(settings.target_code, censored, rvq.nb_code, np.random.default_rng(seed))
    # The noise is drawn once, here, and frozen into the codebook (as in the original); a CPU generator of
    # its own makes it the same on every device.
    generator = torch.Generator().manual_seed(seed)
    sigmas = []
    for layer, codes in enumerate(censored):
        noise = torch.randn(len(codes), rvq.code_dim, generator=generator)
        sigma = replace_codes(codebooks[layer], codes, target, settings.alpha, noise)
        sigmas.append(float(f"{sigma:.6g}"))  # rounded: the record is hashed with the model
    return {
        "target_code": target,
        "target_code_requested": settings.target_code,
        "noise_seed": seed,
        "sigma": sigmas,
    }
