"""Building blocks of the action families: keyframed channels, a footstep planner and common poses.

An action is written as keyframes of `PoseTrack` channels in its own frame (it starts at the origin, facing
+Z, in the relaxed stance) and sampled at the frame rate with monotone cubic interpolation (PCHIP: smooth, and
it never overshoots a held pose). Locomotion uses `plan_steps`, which places each footfall on the ground where
the root will pass over it and keeps the foot fixed there until it lifts again, so planted feet never slide.

    >>> from benchmark.data.synth.animator import solve_joints
    >>> ch = Choreography(duration=1.5, fps=20.0)
    >>> up = SHOULDERS[1] + (0.0, 0.5, 0.0)
    >>> ch.key("hands", [(0.0, HANDS_REST[1]), (0.7, up), (1.5, HANDS_REST[1])], 1)
    >>> joints = solve_joints(ch.track())        # the right arm goes up and comes down again
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike
from scipy.interpolate import PchipInterpolator

from benchmark.data.synth.animator import (
    ANKLE_HEIGHT,
    FEET_YAW_REST,
    FOOT,
    HANDS_REST,
    HIP_WIDTH,
    PLANTED_PITCH,
    SHOULDERS,
    PoseTrack,
    neutral_ankles,
    rotate_xz,
    smoothstep,
)

GUARD_POLES = np.array([[0.35, -1.0, -0.1], [-0.35, -1.0, -0.1]])
"""Elbow poles of a boxing guard: elbows down and tucked in."""


def side_index(side: str) -> int:
    """0 for "left", 1 for "right" (the index of that limb in the track channels)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return 0 if side == "left" else 1


def side_sign(side: str) -> float:
    """+1 for "left", -1 for "right": the sign of x on that side of the body."""
    return 1.0 - 2.0 * side_index(side)


def guard_hands(height: float = 0.0) -> np.ndarray:
    """Wrist targets (2, 3) of a fighting guard: fists in front of the chin, `height` m higher or lower."""
    return np.array([[0.09, 0.2 + height, 0.27], [-0.09, 0.2 + height, 0.27]])


def hanging_hands(bend: float) -> np.ndarray:
    """Relaxed wrist targets (2, 3) in the chest frame when the chest is pitched forward by `bend` radians:
    the arms keep hanging straight down instead of turning with the chest."""
    cos, sin = np.cos(bend), np.sin(bend)
    arm = HANDS_REST - SHOULDERS
    # Rotate the hanging arm by -bend about +X (the chest frame is pitched by +bend).
    y = arm[:, 1] * cos + arm[:, 2] * sin
    z = -arm[:, 1] * sin + arm[:, 2] * cos
    return SHOULDERS + np.stack([arm[:, 0], y, z], axis=-1)


def travel_profile(times: np.ndarray, start: float, stop: float, ramp: float) -> np.ndarray:
    """Fraction (T,) of a trip done at each time: 0 before `start`, 1 after `stop`, constant speed in between
    with the speed ramping up and down linearly over `ramp` seconds at both ends."""
    ramp = max(min(ramp, (stop - start) / 2), 1e-6)
    speed = np.clip(np.minimum(times - start, stop - times) / ramp, 0.0, 1.0)
    done = np.cumsum(speed)
    return done / max(done[-1], 1e-9)


@dataclass(frozen=True)
class StepPlan:
    """Feet of a locomotion: ankle targets, foot headings and pitches, and when each foot is in the air."""

    ankles: np.ndarray
    """(T, 2, 3) ankle targets, world."""
    foot_yaw: np.ndarray
    """(T, 2) foot headings."""
    foot_pitch: np.ndarray
    """(T, 2) foot pitches."""
    swinging: np.ndarray
    """(T, 2) bool: the foot is in the air."""


@dataclass(frozen=True)
class Gait:
    """How feet move in a locomotion."""

    period: float
    """Seconds between two lifts of the same foot (a stride: two steps)."""
    stance: float
    """Fraction of the period a foot is on the ground (walk ~0.6, run ~0.35)."""
    clearance: float
    """Height (m) the ankle rises above its floor height in mid-swing."""
    heel_rise: float = 0.05
    """Height (m) the heel (ankle) rises while the foot rolls over its toes before lifting."""
    heel_strike: float = 0.3
    """How much (rad) the toes point up when the foot lands heel first; 0 lands flat."""
    width: float = 1.0
    """Stance width, in hip widths."""
    passes_over: float = 0.25
    """When the root passes over a landed foot, in periods after landing: 0.25 puts the pelvis midway between
    the feet at heel strike (walking); running passes over the foot in the middle of its short stance."""


def _foot_direction(yaw: np.ndarray | float, pitch: np.ndarray | float) -> np.ndarray:
    return np.stack(
        np.broadcast_arrays(np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)), axis=-1
    )


def plan_steps(
    times: np.ndarray, root_xz: np.ndarray, yaw: np.ndarray, gait: Gait, first: int, start: float
) -> StepPlan:
    """Footsteps that follow a root trajectory (T, 2) and heading (T,).

    Each foot lifts every `gait.period` seconds from `start` on (the foot `first` first, the other half a
    period later), stays in the air for (1 - `gait.stance`) of a period and lands where the root will be
    `gait.passes_over` periods later, beside the path and turned with the heading. Before lifting, the heel
    rises and the foot rolls over its planted toes; it lands heel first and flattens. A swing that would land
    where the foot already is (the root has not moved) is skipped, so the feet stand still before the root
    starts and close the stance after it stops.
    """
    frames = len(times)
    fps = 1.0 / (times[1] - times[0])
    ankles = np.broadcast_to(neutral_ankles(), (frames, 2, 3)).copy()
    ankles[..., [0, 2]] = rotate_xz(ankles[..., [0, 2]], yaw[0, None]) + root_xz[0, None]
    foot_yaw = np.broadcast_to(FEET_YAW_REST + yaw[0], (frames, 2)).copy()
    foot_pitch = np.broadcast_to(PLANTED_PITCH, (frames, 2)).copy()
    swinging = np.zeros((frames, 2), dtype=bool)
    offsets = np.array([[HIP_WIDTH[0] * gait.width, 0.0], [-HIP_WIDTH[1] * gait.width, 0.0]])
    roll_frames = max(int(0.35 * gait.stance * gait.period * fps), 1)
    flatten_frames = max(int(0.08 * fps), 1)

    def frame_at(time: float) -> int:
        return int(np.clip(round(time * fps), 0, frames - 1))

    for foot in (0, 1):
        length = FOOT[foot]
        lift = start + (0.0 if foot == first else 0.5) * gait.period
        landed = 0
        while lift + (1 - gait.stance) * gait.period <= times[-1]:
            land = lift + (1 - gait.stance) * gait.period
            planted = frame_at(land + gait.passes_over * gait.period)
            target_xz = root_xz[planted] + rotate_xz(offsets[foot], yaw[planted])
            target_yaw = FEET_YAW_REST[foot] + yaw[planted]
            i0, i1 = frame_at(lift), frame_at(land)
            moved = (
                np.linalg.norm(target_xz - ankles[i0, foot, [0, 2]]) > 0.015
                or abs(target_yaw - foot_yaw[i0, foot]) > 0.05
            )
            if moved and i1 > i0:
                # Heel off: the ankle rises and swings round the planted toes (the toes stay where they are).
                first_roll = max(i0 - roll_frames, landed + flatten_frames)
                toe = ankles[i0, foot] + length * _foot_direction(foot_yaw[i0, foot], PLANTED_PITCH[foot])
                if i0 > first_roll:
                    rise = smoothstep(np.linspace(0.0, 1.0, i0 - first_roll + 1))
                    height = ANKLE_HEIGHT + gait.heel_rise * rise
                    pitch = np.arcsin(np.clip(height / length, -1.0, 1.0))
                    heel = toe - length * _foot_direction(foot_yaw[i0, foot], pitch)
                    ankles[first_roll : i0 + 1, foot] = heel
                    foot_pitch[first_roll : i0 + 1, foot] = pitch
                # Swing: a smooth path to the landing point, lifted by the clearance in the middle.
                s = np.linspace(0.0, 1.0, i1 - i0 + 1)
                blend = smoothstep(s)
                begin, begin_pitch, begin_yaw = (
                    ankles[i0, foot].copy(),
                    foot_pitch[i0, foot],
                    foot_yaw[i0, foot],
                )
                ankles[i0 : i1 + 1, foot, 0] = (1 - blend) * begin[0] + blend * target_xz[0]
                ankles[i0 : i1 + 1, foot, 2] = (1 - blend) * begin[2] + blend * target_xz[1]
                ankles[i0 : i1 + 1, foot, 1] = (
                    (1 - s) * begin[1] + s * ANKLE_HEIGHT + gait.clearance * np.sin(np.pi * s)
                )
                foot_yaw[i0 : i1 + 1, foot] = (1 - blend) * begin_yaw + blend * target_yaw
                landing_pitch = PLANTED_PITCH[foot] - gait.heel_strike
                foot_pitch[i0 : i1 + 1, foot] = (1 - blend) * begin_pitch + blend * landing_pitch
                swinging[i0 + 1 : i1, foot] = True
                # Flat foot: the toes come down onto the floor.
                flat = smoothstep(np.linspace(0.0, 1.0, flatten_frames + 1))[1:]
                stop = min(i1 + 1 + flatten_frames, frames)
                foot_pitch[i1 + 1 : stop, foot] = (
                    landing_pitch + (PLANTED_PITCH[foot] - landing_pitch) * flat[: stop - i1 - 1]
                )
                foot_pitch[stop:, foot] = PLANTED_PITCH[foot]
                ankles[i1 + 1 :, foot, 0], ankles[i1 + 1 :, foot, 2] = target_xz
                ankles[i1 + 1 :, foot, 1] = ANKLE_HEIGHT
                foot_yaw[i1 + 1 :, foot] = target_yaw
                landed = i1
            lift += gait.period
    return StepPlan(ankles, foot_yaw, foot_pitch, swinging)


class Choreography:
    """The channels of one action under construction: neutral everywhere, then overwritten by keyframes.

    A builder local to one action function; `track()` freezes it into a `PoseTrack`.
    """

    def __init__(self, duration: float, fps: float) -> None:
        self.fps = fps
        self.frames = max(int(round(duration * fps)), 2)
        self.times = np.arange(self.frames) / fps
        neutral = PoseTrack.neutral(self.frames)
        self.channels: dict[str, np.ndarray] = {f.name: getattr(neutral, f.name) for f in fields(PoseTrack)}

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def sample(self, keys: Sequence[tuple[float, ArrayLike]]) -> np.ndarray:
        """Keyframes (time, value) sampled at every frame; held before the first and after the last."""
        ordered = sorted(keys, key=lambda key: key[0])
        times = np.array([time for time, _ in ordered], dtype=np.float64)
        values = np.array([np.asarray(value, dtype=np.float64) for _, value in ordered])
        if len(times) == 1:
            return np.broadcast_to(values[0], (self.frames,) + values.shape[1:]).copy()
        if np.any(np.diff(times) <= 0):
            raise ValueError(f"keyframe times must increase, got {times.tolist()}")
        clipped = np.clip(self.times, times[0], times[-1])
        return PchipInterpolator(times, values, axis=0)(clipped)

    def key(self, channel: str, keys: Sequence[tuple[float, ArrayLike]], index: int | None = None) -> None:
        """Set a channel (or its limb `index`) from keyframes."""
        values = self.sample(keys)
        if index is None:
            self.channels[channel][:] = values
        else:
            self.channels[channel][:, index] = values

    def set(self, channel: str, values: np.ndarray, index: int | None = None) -> None:
        """Set a channel (or its limb `index`) to per-frame values."""
        if index is None:
            self.channels[channel][:] = values
        else:
            self.channels[channel][:, index] = values

    def get(self, channel: str) -> np.ndarray:
        """The current values of a channel (a view: edit through `set`/`key`)."""
        return self.channels[channel]

    def track(self) -> PoseTrack:
        return PoseTrack(**{name: values.copy() for name, values in self.channels.items()})
