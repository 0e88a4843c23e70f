"""Physical plausibility of generated motions from joint positions: foot skating, floor penetration, jerk.

Motions are joint positions (T, 22, 3) in metres, Y up, floor at y = 0 (HumanML3D's processing puts the
lowest joint of a clip on the floor; `benchmark.motion.joints_from_features` recovers them from features),
at `fps` frames per second (HumanML3D 20, Motion-X 30). Each metric takes the motions of a prompt set, of
any lengths, and returns one number. Definitions and sources:

- `foot_skating_ratio`: GMD (Karunratanakul et al., "Guided Motion Diffusion for Controllable Human Motion
  Synthesis", ICCV 2023; `calculate_skating_ratio` in korrawe/guided-motion-diffusion): the share of frame
  pairs in which a toe joint (L_foot 10, R_foot 11) is below 5 cm in both frames and moves horizontally
  faster than 0.5 m/s (2.5 cm per frame at 20 fps), both in that frame pair and in a centred 5-frame box
  average (zero-padded at the ends, as GMD's `uniform_filter1d(mode="constant")`); per motion, then averaged.
- `foot_skating_speed`: the mean horizontal speed (m/s) of the foot joints (ankles 7, 8 and toes 10, 11)
  over the frame pairs in which that joint is below 5 cm in both frames, pooled over all motions: the size
  of the sliding, where the ratio counts its frames.
- `floor_penetration`, `floor_penetration_max`: depth below the floor of the lowest joint of each frame,
  max(0, floor − min_j y_j), as PhysDiff's "Penetrate" (Yuan et al., ICCV 2023, after UHC) but on joints
  instead of mesh vertices; the mean over frames, and the per-motion maximum, averaged over motions.
- `jerk`: mean magnitude (m/s^3) of the third time derivative of the joint positions, the third forward
  difference times fps^3, over joints and frames; per motion, then averaged. Real motions are not jerk-free,
  so closer to the real (or reference) level is better, not lower.
- `transition_peak_jerk`, `transition_jerk_area`: FlowMDM's PJ and AUJ (Barquero et al., "Seamless Human
  Motion Composition with Blended Positional Encodings", CVPR 2024): the per-frame jerk (max over joints)
  is averaged over all transitions, aligned on the transition frame, within a window of `window_s`; PJ is
  its maximum, AUJ the area between it and the real motions' jerk level. FlowMDM takes the L1 norm of
  per-frame differences and sums over frames; here the L2 norm in m/s^3 and the area in m/s^2 (sum × 1/fps),
  so that values do not change with the frame rate.

    >>> motions = [joints_a, joints_b]                   # (T_i, 22, 3) each
    >>> foot_skating_ratio(motions, fps=20), floor_penetration(motions), jerk(motions, fps=20)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import uniform_filter1d

from benchmark.metrics.base import MetricInputError
from benchmark.motion.skeleton import FOOT_JOINTS_LEFT, FOOT_JOINTS_RIGHT, NUM_JOINTS

TOE_JOINTS: tuple[int, int] = (FOOT_JOINTS_LEFT[1], FOOT_JOINTS_RIGHT[1])
"""L_foot and R_foot (10, 11): the joints GMD's skating ratio watches."""

FOOT_JOINTS: tuple[int, ...] = FOOT_JOINTS_LEFT + FOOT_JOINTS_RIGHT
"""Ankles and toes (7, 10, 8, 11): the joints `foot_skating_speed` watches."""

CONTACT_HEIGHT = 0.05
"""A foot joint below this height (m) in two consecutive frames is on the floor (GMD: 5 cm)."""

SKATING_SPEED = 0.5
"""Horizontal speed (m/s) above which a foot on the floor skates (GMD: 0.5 m/s = 2.5 cm/frame at 20 fps)."""

SKATING_WINDOW_S = 0.25
"""Length (s) of the box average of the foot speed (GMD: 5 frames at 20 fps), rounded to odd frames."""

FLOOR_HEIGHT = 0.0
"""Height (m) of the floor."""

TRANSITION_WINDOW_S = 1.5
"""Length (s) of the window centred on a transition in which its jerk is measured."""


def _motions(motions: Sequence[np.ndarray], min_frames: int) -> list[np.ndarray]:
    if len(motions) == 0:
        raise MetricInputError("no motions to score")
    checked = []
    for i, motion in enumerate(motions):
        motion = np.asarray(motion, dtype=np.float64)
        if motion.ndim != 3 or motion.shape[1:] != (NUM_JOINTS, 3) or motion.shape[0] < min_frames:
            raise MetricInputError(
                f"motion {i}: expected joints (T >= {min_frames}, {NUM_JOINTS}, 3), got {motion.shape}"
            )
        if not np.isfinite(motion).all():
            raise MetricInputError(f"motion {i}: joint positions contain NaN or infinite values")
        checked.append(motion)
    return checked


def _contact(heights: np.ndarray, contact_height: float) -> np.ndarray:
    """(T-1, J): the joint is below `contact_height` in both frames of the pair."""
    below = heights < contact_height
    return below[:-1] & below[1:]


def _horizontal_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T-1, J) speed (m/s) in the floor plane (x, z) between consecutive frames."""
    return np.linalg.norm(np.diff(positions[..., [0, 2]], axis=0), axis=-1) * fps


def foot_skating_ratio(
    motions: Sequence[np.ndarray],
    fps: float,
    *,
    contact_height: float = CONTACT_HEIGHT,
    speed_threshold: float = SKATING_SPEED,
    window_s: float = SKATING_WINDOW_S,
) -> float:
    """Share of frames where a foot on the floor slides faster than 0.5 m/s (GMD); lower is better."""
    window = 2 * round((window_s * fps - 1) / 2) + 1
    ratios = []
    for motion in _motions(motions, min_frames=2):
        toes = motion[:, list(TOE_JOINTS)]
        speed = _horizontal_speed(toes, fps)
        averaged = uniform_filter1d(speed, size=window, axis=0, mode="constant")
        skating = (
            _contact(toes[..., 1], contact_height) & (speed > speed_threshold) & (averaged > speed_threshold)
        )
        ratios.append(skating.any(axis=1).mean())
    return float(np.mean(ratios))


def foot_skating_speed(
    motions: Sequence[np.ndarray], fps: float, *, contact_height: float = CONTACT_HEIGHT
) -> float:
    """Mean horizontal speed (m/s) of foot joints on the floor; lower is better (0 without contact)."""
    total, count = 0.0, 0
    for motion in _motions(motions, min_frames=2):
        feet = motion[:, list(FOOT_JOINTS)]
        contact = _contact(feet[..., 1], contact_height)
        total += float(_horizontal_speed(feet, fps)[contact].sum())
        count += int(contact.sum())
    return total / count if count else 0.0


def _depths(motion: np.ndarray, floor_height: float) -> np.ndarray:
    """(T,) depth (m) of the lowest joint below the floor, 0 when above it."""
    return np.maximum(0.0, floor_height - motion[..., 1].min(axis=1))


def floor_penetration(motions: Sequence[np.ndarray], *, floor_height: float = FLOOR_HEIGHT) -> float:
    """Mean depth (m) of the lowest joint below the floor per frame, over motions; lower is better."""
    return float(np.mean([_depths(m, floor_height).mean() for m in _motions(motions, min_frames=1)]))


def floor_penetration_max(motions: Sequence[np.ndarray], *, floor_height: float = FLOOR_HEIGHT) -> float:
    """Deepest penetration (m) of the lowest joint below the floor, averaged over motions; lower is better."""
    return float(np.mean([_depths(m, floor_height).max() for m in _motions(motions, min_frames=1)]))


def _jerk_magnitudes(motion: np.ndarray, fps: float) -> np.ndarray:
    """(T-3, J) magnitude (m/s^3) of the third forward difference of each joint's position, times fps^3."""
    return np.linalg.norm(np.diff(motion, n=3, axis=0), axis=-1) * fps**3


def jerk(motions: Sequence[np.ndarray], fps: float) -> float:
    """Mean jerk magnitude (m/s^3) over joints, frames and motions; closer to the reference is better."""
    return float(np.mean([_jerk_magnitudes(m, fps).mean() for m in _motions(motions, min_frames=4)]))


def jerk_curve(motion: np.ndarray, fps: float) -> np.ndarray:
    """(T-3,) per-frame jerk (m/s^3), the maximum over joints; sample t spans frames t..t+3."""
    return _jerk_magnitudes(_motions([motion], min_frames=4)[0], fps).max(axis=1)


def _transition_curve(
    motions: Sequence[np.ndarray], transitions: Sequence[Sequence[int]], fps: float, window_s: float
) -> np.ndarray:
    """The per-frame jerk around transitions, averaged over every transition of every motion."""
    if len(transitions) != len(motions):
        raise MetricInputError(f"{len(motions)} motions but transition frames for {len(transitions)}")
    half = max(1, round(window_s * fps / 2))
    windows = []
    for i, (motion, frames) in enumerate(zip(_motions(motions, min_frames=4), transitions, strict=True)):
        curve = jerk_curve(motion, fps)
        for frame in frames:
            # A velocity step at `frame` shows in jerk samples frame-2 and frame-1 (sample t spans frames
            # t..t+3); the window of 2·half samples is centred between them.
            start, stop = frame - 1 - half, frame - 1 + half
            if start < 0 or stop > curve.size:
                raise MetricInputError(
                    f"motion {i}: the {window_s} s window around transition frame {frame} leaves the motion"
                )
            windows.append(curve[start:stop])
    if not windows:
        raise MetricInputError("no transition frames given")
    return np.mean(windows, axis=0)


def transition_peak_jerk(
    motions: Sequence[np.ndarray],
    transitions: Sequence[Sequence[int]],
    fps: float,
    *,
    window_s: float = TRANSITION_WINDOW_S,
) -> float:
    """Peak (m/s^3) of the mean per-frame jerk around transitions between actions (PJ); lower is better.

    `transitions[i]` lists the frames of motion i where one action hands over to the next.
    """
    return float(_transition_curve(motions, transitions, fps, window_s).max())


def transition_jerk_area(
    motions: Sequence[np.ndarray],
    transitions: Sequence[Sequence[int]],
    fps: float,
    reference_jerk: float,
    *,
    window_s: float = TRANSITION_WINDOW_S,
) -> float:
    """Area (m/s^2) between the mean jerk curve around transitions and the real level (AUJ); lower is better.

    `reference_jerk` is the real motions' per-frame jerk level: the mean of `jerk_curve` over real motions.
    """
    curve = _transition_curve(motions, transitions, fps, window_s)
    return float(np.abs(curve - reference_jerk).sum() / fps)
