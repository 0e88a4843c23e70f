"""The motions a page animates: a run's sample motions (263-d HumanML3D features, de-normalised, in
`samples/`) turned into joint positions at render time, packed small, and written one script per run
(`motions/<run id>.js`) that the page's player loads only when it shows that run.

    >>> clip = sample_clip(run.path, "forget_test")
    >>> clip["frames"], unpack_joints(clip["joints"]).shape      # T, (T, 22, 3) centimetres

Joints come from `benchmark.motion.joints_from_features` (HumanML3D's `recover_from_ric`); positions are
rounded to whole centimetres (a stick figure a few hundred pixels high cannot show less) and packed as
little-endian int16, base64-encoded: a clip of 120 frames is about 21 kB of its run's script (as JSON
numbers it would be half as big again). The browser decodes them and draws the bones of `KINEMATIC_CHAINS`,
as `benchmark.render` does for its PNG strips.

A run's script is a call, `hmuMotionsLoaded(run_id, clips)`, not a JSON file: a page opened straight from
disk (file://) may load scripts but not fetch() files, and a task page of a hundred runs would otherwise carry
every run's motions (about 100 kB each) whichever one is watched.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.harness.store import SAMPLES_DIR, SAMPLES_INDEX
from benchmark.motion import FEATURE_DIM, NUM_JOINTS, joints_from_features
from benchmark.motion.skeleton import KINEMATIC_CHAINS

MOTIONS_DIR = "motions"
"""The site folder of the per-run motion scripts."""

UNITS_PER_METRE = 100
"""Joint positions are stored as integers in these units (centimetres)."""

SKELETON: dict[str, Any] = {
    "chains": [list(chain) for chain in KINEMATIC_CHAINS],
    "left": [1, 4],
    "right": [0, 3],
    "joints": NUM_JOINTS,
    "units_per_metre": UNITS_PER_METRE,
}
"""What the player needs to draw a figure: the bone chains, which of them are the left leg and arm and which
the right ones (as benchmark.render colours them), and the units of the joint arrays."""


def sample_clip(run_path: Path, name: str) -> dict[str, Any] | None:
    """The sample `name` of a run as {frames, text, prompt_id, joints}, or None when the run has none (or
    its file cannot be read)."""
    index_path = run_path / SAMPLES_DIR / SAMPLES_INDEX
    if not index_path.is_file():
        return None
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        entry = index[name]
        features = np.load(run_path / SAMPLES_DIR / entry["file"], allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM or not np.isfinite(features).all():
        return None
    joints = joints_from_features(features.astype(np.float32))
    centimetres = np.rint(joints * UNITS_PER_METRE)
    if np.abs(centimetres).max(initial=0) > np.iinfo(np.int16).max:
        return None  # a figure over 327 m from the origin: nothing a player could show
    return {
        "frames": int(centimetres.shape[0]),
        "text": str(entry.get("text", "")),
        "prompt_id": str(entry.get("prompt_id", "")),
        "joints": base64.b64encode(centimetres.astype("<i2").tobytes()).decode("ascii"),
    }


def unpack_joints(packed: str) -> np.ndarray:
    """The (T, 22, 3) integer joint array of a clip's `joints` (centimetres)."""
    return np.frombuffer(base64.b64decode(packed), dtype="<i2").reshape(-1, NUM_JOINTS, 3)


def sample_names(run_path: Path) -> list[str]:
    """The sample names a run holds (prompt sets), in its samples.json order; [] without samples."""
    index_path = run_path / SAMPLES_DIR / SAMPLES_INDEX
    try:
        return list(json.loads(index_path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []


def motion_script(run_id: str, clips: dict[str, dict[str, Any]]) -> str:
    """The script that hands a run's clips ({sample name: clip}) to the player (module docstring)."""
    arguments = json.dumps(run_id), json.dumps(clips, sort_keys=True, separators=(",", ":"))
    return f"hmuMotionsLoaded({arguments[0]},{arguments[1]});\n"
