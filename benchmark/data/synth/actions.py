"""The action families of the generated dataset: what each one does, its parameters and its concepts.

Each `ActionFamily` has a name, the concepts it belongs to (the ground truth of the dataset's labels: a front
kick is `("violence", "kick")`, a squat `("duck_squat",)`), the values its parameters may take and a function
that animates one instance as a `PoseTrack`, starting and ending in the relaxed stance at the origin, facing
+Z. The common parameters (`ActionParams`) are side, speed, amplitude, count, direction and style; what
amplitude and count mean is family-specific and written in each family's `amplitude`/`count` description,
which the captions use.

    >>> import numpy as np
    >>> from benchmark.data.synth.animator import solve_joints
    >>> family = FAMILIES_BY_NAME["front_kick"]
    >>> params = family.sample(np.random.default_rng(0))
    >>> joints = solve_joints(family.animate(params, 20.0))        # (T, 22, 3)
    >>> family.violent, family.concepts
    (True, ('violence', 'kick'))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from benchmark.data.synth.animator import (
    ANKLE_HEIGHT,
    FEET_YAW_REST,
    HANDS_REST,
    PLANTED_PITCH,
    SHOULDERS,
    STAND_HEIGHT,
    PoseTrack,
    neutral_ankles,
)
from benchmark.data.synth.choreography import (
    GUARD_POLES,
    Choreography,
    Gait,
    guard_hands,
    hanging_hands,
    plan_steps,
    side_index,
    side_sign,
    travel_profile,
)

GRAVITY = 9.81
REST_ANKLES = neutral_ankles()
SPEED_RANGE: tuple[float, float] = (0.7, 1.4)
"""Speed factors: 1 is an ordinary pace; every duration of an action is divided by it."""


@dataclass(frozen=True)
class ActionParams:
    """The parameters of one action instance."""

    side: str = ""
    """"left", "right" or "both" (the limb that acts, or the turning side); "" when the family has none."""
    speed: float = 1.0
    """Pace factor in `SPEED_RANGE`; < 0.85 reads as slow, > 1.2 as fast."""
    amplitude: float = 0.5
    """Size of the movement in [0, 1]: kick height, squat depth, step length, jump height, bow depth..."""
    count: int = 1
    """Repetitions: kicks, punches, steps, jumps, claps, wave swings..."""
    direction: str = ""
    """Travel direction ("forward", "backward", "left", "right", "curve_left", "curve_right") or ""."""
    style: str = ""
    """Family-specific variant ("jab", "hook", "overhand", "side_bend"...) or ""."""

    def mirrored(self) -> ActionParams:
        """The parameters of the left/right mirrored action."""
        return replace(self, side=_swap(self.side), direction=_swap(self.direction), style=_swap(self.style))


def _swap(word: str) -> str:
    if "left" in word:
        return word.replace("left", "right")
    return word.replace("right", "left")


Animate = Callable[[ActionParams, float], PoseTrack]


@dataclass(frozen=True)
class ActionFamily:
    """One kind of action and how to sample and animate it."""

    name: str
    concepts: tuple[str, ...]
    """Concepts this action belongs to; "violence" makes it a violent action."""
    animate: Animate
    """(params, fps) -> PoseTrack made at the origin facing +Z, starting and ending in the relaxed stance."""
    sides: tuple[str, ...] = ("",)
    directions: tuple[str, ...] = ("",)
    """Possible directions; a value listed twice is drawn twice as often."""
    styles: tuple[str, ...] = ("",)
    counts: tuple[int, int] = (1, 1)
    """Inclusive range of `count`."""
    weight: float = 1.0
    """Relative frequency among the families of its kind (violent or not)."""

    @property
    def violent(self) -> bool:
        return "violence" in self.concepts

    def sample(self, rng: np.random.Generator) -> ActionParams:
        """Random parameters for one instance."""
        return ActionParams(
            side=self.sides[rng.integers(len(self.sides))],
            speed=float(np.round(rng.uniform(*SPEED_RANGE), 3)),
            amplitude=float(np.round(rng.uniform(0.0, 1.0), 3)),
            count=int(rng.integers(self.counts[0], self.counts[1] + 1)),
            direction=self.directions[rng.integers(len(self.directions))],
            style=self.styles[rng.integers(len(self.styles))],
        )


# ------------------------------------------------------------------------------------------------------------
# Shared pieces


def _counter_pitch(hands: np.ndarray, bend: float) -> np.ndarray:
    """Chest-frame wrist targets that keep their world direction from the shoulder when the chest pitches
    forward by `bend` (so arms held forward stay horizontal while the body leans)."""
    arm = np.asarray(hands, dtype=np.float64) - SHOULDERS
    cos, sin = np.cos(bend), np.sin(bend)
    y = arm[..., 1] * cos + arm[..., 2] * sin
    z = -arm[..., 1] * sin + arm[..., 2] * cos
    return SHOULDERS + np.stack([arm[..., 0], y, z], axis=-1)


def _heading_reach(side: int, twist: float, length: float, height: float, inward: float) -> np.ndarray:
    """Chest-frame wrist target `length` m from the shoulder straight along the *heading* (not the chest,
    which is turned by `twist`), `height` m above the shoulder and `inward` m towards the midline."""
    sign = 1.0 if side == 0 else -1.0
    forward = np.array([-np.sin(twist), 0.0, np.cos(twist)])
    across = np.array([np.cos(twist), 0.0, np.sin(twist)])
    return SHOULDERS[side] + length * forward - sign * inward * across + np.array([0.0, height, 0.0])


def _vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _rotation(pitch: float = 0.0, twist: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """A rotation vector: pitch leans forward, twist turns left, roll leans right (small angles compose)."""
    return _vec(pitch, twist, roll)


def _step_keys(
    start: np.ndarray, end: np.ndarray, t0: float, t1: float, lift: float
) -> list[tuple[float, np.ndarray]]:
    """Ankle keyframes of one step from `start` to `end` (both on the floor) between t0 and t1."""
    middle = (start + end) / 2 + _vec(0.0, lift, 0.0)
    return [(t0, start), ((t0 + t1) / 2, middle), (t1, end)]


def _walk_arms(
    ch: Choreography,
    ankles: np.ndarray,
    root_xz: np.ndarray,
    yaw: np.ndarray,
    swing: float,
    base: np.ndarray,
    poles: np.ndarray,
    engaged: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Arms swinging opposite to the legs: each hand moves forward as the other side's foot does, around the
    `base` pose, which is faded in from the relaxed one by `engaged` (T,) in [0, 1].
    Returns the forward offset (T, 2) of each foot from the root along the heading."""
    heading = np.stack([np.sin(yaw), np.cos(yaw)], axis=-1)
    forward = ((ankles[..., [0, 2]] - root_xz[:, None]) * heading[:, None]).sum(-1)
    weight = np.broadcast_to(np.asarray(engaged, dtype=np.float64), (ch.frames,))[:, None, None]
    hands = HANDS_REST + weight * (base - HANDS_REST)
    hands[:, 0, 2] += swing * forward[:, 1]
    hands[:, 1, 2] += swing * forward[:, 0]
    hands[:, :, 1] += 0.25 * swing * np.abs(forward[:, ::-1])
    ch.set("hands", hands)
    ch.set("elbow_poles", ch.get("elbow_poles") + weight * (poles - ch.get("elbow_poles")))
    return forward


def _locomotion_path(
    times: np.ndarray,
    start: float,
    duration: float,
    distance: float,
    direction: str,
    turn: float,
    ramp: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Root path (T, 2) and heading (T,) of a walk: `distance` m in `direction` relative to the body over
    `duration` s from `start`, turning the heading by `turn` rad along the way (a curve)."""
    # The ramps are added to the trip so that the cruising speed is distance / duration.
    progress = travel_profile(times, start, start + duration + ramp, ramp)
    yaw = turn * progress
    angle = {"forward": 0.0, "backward": np.pi, "left": np.pi / 2, "right": -np.pi / 2}.get(direction, 0.0)
    step = np.diff(progress, prepend=0.0) * distance
    heading = yaw + angle
    root = np.cumsum(np.stack([step * np.sin(heading), step * np.cos(heading)], axis=-1), axis=0)
    return root, yaw


def _set_gait(
    ch: Choreography, root: np.ndarray, yaw: np.ndarray, gait: Gait, first: int, start: float
) -> np.ndarray:
    """Set the root path and heading and the feet that follow them; returns when each foot is in the air."""
    plan = plan_steps(ch.times, root, yaw, gait, first, start)
    ch.set("root_xz", root)
    ch.set("yaw", yaw)
    ch.set("ankles", plan.ankles)
    ch.set("foot_yaw", plan.foot_yaw)
    ch.set("foot_pitch", plan.foot_pitch)
    return plan.swinging


# ------------------------------------------------------------------------------------------------------------
# Locomotion


def _walk(p: ActionParams, fps: float) -> PoseTrack:
    """Walk `count` steps forward, backward, sideways or along a curve; amplitude is the step length."""
    u = 1.0 / p.speed
    if p.direction in ("left", "right"):
        step, period = 0.26 + 0.14 * p.amplitude, 1.15 * u
    elif p.direction == "backward":
        step, period = 0.32 + 0.16 * p.amplitude, 1.15 * u
    else:
        step, period = 0.42 + 0.22 * p.amplitude, 1.05 * u
    distance = step * max(p.count - 1, 1)
    speed = 2 * step / period
    travel = distance / speed
    start = 0.25
    ch = Choreography(start + travel + 1.4 * period + 0.4, fps)
    turn = {"curve_left": 1.0, "curve_right": -1.0}.get(p.direction, 0.0) * (
        np.pi / 3 + np.pi / 3 * p.amplitude
    )
    root, yaw = _locomotion_path(ch.times, start + 0.05, travel, distance, p.direction, turn, 0.4 * period)
    first = 1 if p.direction == "left" else 0 if p.direction == "right" else int(p.count % 2)
    # Side-stepping leads with the foot on the side of travel.
    first = {"left": 0, "right": 1}.get(p.direction, first)
    _set_gait(ch, root, yaw, Gait(period, 0.62, 0.07), first, start)
    ch.set("pelvis_height", np.full(ch.frames, STAND_HEIGHT))
    forward = _walk_arms(
        ch,
        ch.get("ankles"),
        root,
        yaw,
        0.5 if p.direction not in ("left", "right") else 0.1,
        HANDS_REST + _vec(0.0, 0.03, 0.03),
        np.array([[0.3, -0.2, -1.0], [-0.3, -0.2, -1.0]]),
    )
    # The pelvis turns with the forward leg and the chest turns back against it.
    twist = forward[:, 0] - forward[:, 1]
    ch.set("pelvis_tilt", np.stack([np.full(ch.frames, 0.04), -0.25 * twist, np.zeros(ch.frames)], axis=-1))
    ch.set("spine", np.stack([np.full(ch.frames, 0.02), 0.4 * twist, np.zeros(ch.frames)], axis=-1))
    return ch.track()


def _run(p: ActionParams, fps: float) -> PoseTrack:
    """Run `count` strides forward or along a curve; amplitude is the stride length."""
    u = 1.0 / p.speed
    step, period = 0.85 + 0.45 * p.amplitude, 0.72 * u
    distance = step * max(p.count - 1, 1)
    travel = distance / (2 * step / period)
    start = 0.3
    ch = Choreography(start + travel + 2.3 * period + 0.5, fps)
    turn = {"curve_left": 1.0, "curve_right": -1.0}.get(p.direction, 0.0) * (
        np.pi / 2 + np.pi / 2 * p.amplitude
    )
    root, yaw = _locomotion_path(ch.times, start + 0.05, travel, distance, "forward", turn, 0.8 * period)
    swinging = _set_gait(
        ch,
        root,
        yaw,
        Gait(period, 0.33, 0.17, heel_rise=0.04, heel_strike=0.0, passes_over=0.12),
        int(p.count % 2),
        start,
    )
    # Higher in flight (both feet up), lower in stance; the speed ramps in and out with the root.
    moving = np.clip(np.linalg.norm(np.gradient(root, axis=0), axis=-1) * fps / (2 * step / period), 0.0, 1.0)
    # Arms come up into the running position as the run starts and drop when it ends.
    engaged = np.convolve(
        np.pad((moving > 0.05).astype(float), 6, mode="edge"), np.ones(13) / 13, mode="valid"
    )
    flight = np.convolve(swinging.all(axis=1).astype(float), np.ones(3) / 3, mode="same")
    ch.set("pelvis_height", STAND_HEIGHT - 0.07 * moving + 0.06 * flight)
    base = SHOULDERS + np.array([[0.03, -0.3, 0.12], [-0.03, -0.3, 0.12]])
    poles = np.array([[0.2, -0.3, -1.0], [-0.2, -0.3, -1.0]])
    _walk_arms(ch, ch.get("ankles"), root, yaw, 0.45, base, poles, engaged)
    lean = 0.16 * moving
    ch.set("pelvis_tilt", np.stack([lean, np.zeros(ch.frames), np.zeros(ch.frames)], axis=-1))
    ch.set("spine", np.stack([0.6 * lean, np.zeros(ch.frames), np.zeros(ch.frames)], axis=-1))
    return ch.track()


def _zombie_walk(p: ActionParams, fps: float) -> PoseTrack:
    """Shuffle forward `count` short, dragging steps with both arms held straight out in front."""
    u = 1.0 / p.speed
    step, period = 0.22 + 0.1 * p.amplitude, 1.7 * u
    distance = step * max(p.count - 1, 1)
    travel = distance / (2 * step / period)
    start = 0.6
    ch = Choreography(start + travel + 1.3 * period + 0.8, fps)
    root, yaw = _locomotion_path(ch.times, start + 0.05, travel, distance, "forward", 0.0, 0.3 * period)
    _set_gait(
        ch,
        root,
        yaw,
        Gait(period, 0.7, 0.025, heel_rise=0.0, heel_strike=0.0, width=1.25, passes_over=0.3),
        0,
        start,
    )
    ch.set("pelvis_height", np.full(ch.frames, STAND_HEIGHT - 0.02))
    end = ch.duration
    arms = np.array([_heading_reach(0, 0.0, 0.58, 0.02, 0.04), _heading_reach(1, 0.0, 0.58, -0.02, 0.04)])
    ch.key("hands", [(0.0, HANDS_REST), (0.5, arms), (end - 0.6, arms), (end - 0.05, HANDS_REST)])
    ch.key(
        "elbow_poles",
        [(0.0, ch.get("elbow_poles")[0]), (0.5, np.array([[0.3, -1.0, 0.0], [-0.3, -1.0, 0.0]]))],
    )
    # A limp head and a sway from foot to foot.
    ankles = ch.get("ankles")
    sway = (ankles[:, 0, 1] - ankles[:, 1, 1]) / 0.025
    ch.key(
        "neck",
        [
            (0.0, _rotation()),
            (0.5, _rotation(pitch=0.25, roll=0.35)),
            (end - 0.6, _rotation(0.25, 0, 0.35)),
            (end - 0.05, _rotation()),
        ],
    )
    tilt = ch.sample([(0.0, 0.0), (0.5, 0.12), (end - 0.6, 0.12), (end - 0.05, 0.0)])
    ch.set("pelvis_tilt", np.stack([tilt, np.zeros(ch.frames), 0.08 * sway], axis=-1))
    return ch.track()


def _turn(p: ActionParams, fps: float) -> PoseTrack:
    """Turn on the spot to the left or right by a quarter, half or full turn, stepping round."""
    u = 1.0 / p.speed
    angle = {"quarter": np.pi / 2, "half": np.pi, "full": 2 * np.pi}[p.style] * side_sign(p.side)
    duration = (0.6 + 0.45 * abs(angle) / (np.pi / 2)) * u
    period = 0.9 * u
    start = 0.2
    ch = Choreography(start + duration + period + 0.3, fps)
    yaw = angle * travel_profile(ch.times, start + 0.1, start + duration, 0.3 * duration)
    root = np.zeros((ch.frames, 2))
    # The foot on the turning side moves first, opening the turn.
    _set_gait(
        ch,
        root,
        yaw,
        Gait(period, 0.55, 0.05, heel_rise=0.02, heel_strike=0.0, width=1.1),
        side_index(p.side),
        start,
    )
    ch.set("pelvis_height", np.full(ch.frames, STAND_HEIGHT + 0.02))
    # The head leads the turn.
    lead = np.clip(np.gradient(yaw) * fps * 0.25, -0.5, 0.5)
    ch.set("neck", np.stack([np.zeros(ch.frames), lead, np.zeros(ch.frames)], axis=-1))
    return ch.track()


def _dance_step(p: ActionParams, fps: float) -> PoseTrack:
    """Step-touch `count` beats: one foot steps out to the side and the other closes beside it, alternating
    sides (starting towards `side`); the body bounces on every beat, the hips sway and the arms swing."""
    u = 1.0 / p.speed
    beat = 0.6 * u
    start = 0.35
    ch = Choreography(start + p.count * beat + 0.5, fps)
    width = 0.22 + 0.2 * p.amplitude
    feet = REST_ANKLES.copy()
    keys: list[list[tuple[float, np.ndarray]]] = [[(0.0, feet[0])], [(0.0, feet[1])]]
    root = [(0.0, _vec(0.0, 0.0))]
    sign = side_sign(p.side)
    for n in range(p.count):
        t0 = start + n * beat
        lead = side_index(p.side) if n % 2 == 0 else 1 - side_index(p.side)
        shift = _vec(sign * width, 0.0, 0.0)
        stepped = feet[lead] + shift
        keys[lead] += _step_keys(feet[lead], stepped, t0, t0 + 0.45 * beat, 0.06)
        closed = feet[1 - lead] + shift
        keys[1 - lead] += _step_keys(feet[1 - lead], closed, t0 + 0.5 * beat, t0 + 0.95 * beat, 0.05)
        feet = np.array([stepped, closed]) if lead == 0 else np.array([closed, stepped])
        root += [
            (t0 + 0.45 * beat, _vec(sign * width * 0.75, 0.0) + root[-1][1]),
            (t0 + beat, root[-1][1] + _vec(sign * width, 0.0)),
        ]
        sign = -sign
    for side in (0, 1):
        ch.key("ankles", keys[side], side)
    ch.key("root_xz", root)
    active = ((ch.times > start) & (ch.times < start + p.count * beat)).astype(float)
    active = np.convolve(np.pad(active, 4, mode="edge"), np.ones(9) / 9, mode="valid")
    phase = (ch.times - start) / beat
    bounce = 0.5 * (1 - np.cos(2 * np.pi * phase))
    ch.set("pelvis_height", STAND_HEIGHT - 0.07 * bounce * active)
    swing = np.sin(np.pi * phase) * active * side_sign(p.side)
    arms = SHOULDERS + np.array([[0.05, -0.3, 0.22], [-0.05, -0.3, 0.22]])
    hands = HANDS_REST + active[:, None, None] * (arms - HANDS_REST)
    hands = hands + (0.16 * swing)[:, None, None] * _vec(1.0, 0.0, 0.0)
    hands = hands + (0.08 * np.abs(swing))[:, None, None] * _vec(0.0, 1.0, 0.0)
    ch.set("hands", hands)
    poles = np.array([[0.5, -1.0, -0.5], [-0.5, -1.0, -0.5]])
    ch.set("elbow_poles", ch.get("elbow_poles") + active[:, None, None] * (poles - ch.get("elbow_poles")))
    ch.set("pelvis_tilt", np.stack([np.zeros(ch.frames), 0.12 * swing, 0.1 * swing], axis=-1))
    ch.set("spine", np.stack([np.zeros(ch.frames), -0.18 * swing, -0.15 * swing], axis=-1))
    ch.set("neck", np.stack([0.1 * bounce * active, np.zeros(ch.frames), 0.12 * swing], axis=-1))
    return ch.track()


# ------------------------------------------------------------------------------------------------------------
# Jumps and lowering the body


def _jump(p: ActionParams, fps: float) -> PoseTrack:
    """Jump `count` times on both feet, in place or forward; amplitude is the jump height."""
    u = 1.0 / p.speed
    height = 0.1 + 0.25 * p.amplitude
    distance = (0.3 + 0.4 * p.amplitude) if p.direction == "forward" else 0.0
    flight = 2 * np.sqrt(2 * height / GRAVITY)
    cycle = 0.65 * u + flight + 0.55 * u
    ch = Choreography(0.2 + p.count * cycle + 0.2, fps)
    pelvis = [(0.0, STAND_HEIGHT)]
    tilt = [(0.0, _rotation())]
    hands = [(0.0, HANDS_REST)]
    root = [(0.0, _vec(0.0, 0.0))]
    feet = [(0.0, REST_ANKLES)]
    for jump in range(p.count):
        t0 = 0.2 + jump * cycle
        here, there = jump * distance, (jump + 1) * distance
        takeoff, land = t0 + 0.65 * u, t0 + 0.65 * u + flight
        ground = REST_ANKLES + _vec(0.0, 0.0, here)
        landed = REST_ANKLES + _vec(0.0, 0.0, there)
        airborne = (ground + landed) / 2 + _vec(0.0, height + 0.12, 0.0)
        back = hanging_hands(0.5) + _vec(0.0, 0.08, -0.3)
        up = _counter_pitch(SHOULDERS + np.array([[0.05, 0.3, 0.35], [-0.05, 0.3, 0.35]]), 0.0)
        pelvis += [
            (t0 + 0.4 * u, STAND_HEIGHT - 0.24),
            (takeoff, STAND_HEIGHT),
            (takeoff + flight / 2, STAND_HEIGHT + height),
            (land, STAND_HEIGHT - 0.01),
            (land + 0.2 * u, STAND_HEIGHT - 0.18),
            (land + 0.5 * u, STAND_HEIGHT),
        ]
        tilt += [
            (t0 + 0.4 * u, _rotation(0.45)),
            (takeoff, _rotation(0.05)),
            (land, _rotation(0.1)),
            (land + 0.2 * u, _rotation(0.35)),
            (land + 0.5 * u, _rotation()),
        ]
        hands += [
            (t0 + 0.4 * u, back),
            (takeoff + 0.05, up),
            (land, up - _vec(0, 0.15, 0)),
            (land + 0.2 * u, hanging_hands(0.35) + _vec(0, 0.1, 0.15)),
            (land + 0.5 * u, HANDS_REST),
        ]
        root += [(takeoff, _vec(0.0, here)), (land, _vec(0.0, there))]
        feet += [(takeoff, ground), (takeoff + flight / 2, airborne), (land, landed)]
    ch.key("pelvis_height", pelvis)
    ch.key("pelvis_tilt", tilt)
    ch.key("hands", hands)
    ch.key("root_xz", root)
    ch.key("ankles", feet)
    return ch.track()


def _hop(p: ActionParams, fps: float) -> PoseTrack:
    """Hop `count` times on one foot (the `side` foot), the other foot held up behind; in place or forward."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    free = 1 - k
    sign = side_sign(p.side)
    height = 0.06 + 0.08 * p.amplitude
    advance = (0.15 + 0.15 * p.amplitude) if p.direction == "forward" else 0.0
    flight = 2 * np.sqrt(2 * height / GRAVITY)
    cycle = 0.3 * u + flight + 0.15 * u
    first = 0.5 * u
    ch = Choreography(first + p.count * cycle + 0.6 * u, fps)
    end = ch.duration
    lifted = _vec(REST_ANKLES[free, 0] * 0.9, 0.32 + 0.1 * p.amplitude, -0.2)
    stand = [(0.0, REST_ANKLES[k])]
    held = [(0.0, REST_ANKLES[free]), (first, lifted)]
    pelvis = [(0.0, STAND_HEIGHT)]
    root = [(0.0, _vec(0.0, 0.0)), (first, _vec(sign * 0.07, 0.0))]
    for hop in range(p.count):
        t0 = first + hop * cycle
        here, there = hop * advance, (hop + 1) * advance
        takeoff, land = t0 + 0.3 * u, t0 + 0.3 * u + flight
        base = REST_ANKLES[k] + _vec(0.0, 0.0, here)
        stand += [
            (takeoff, base),
            (takeoff + flight / 2, base + _vec(0.0, height + 0.05, advance / 2)),
            (land, base + _vec(0.0, 0.0, advance)),
        ]
        held += [
            (takeoff + flight / 2, lifted + _vec(0.0, height, here + advance / 2)),
            (land + 0.1 * u, lifted + _vec(0.0, 0.0, there)),
        ]
        pelvis += [
            (t0 + 0.2 * u, STAND_HEIGHT - 0.09),
            (takeoff, STAND_HEIGHT - 0.01),
            (takeoff + flight / 2, STAND_HEIGHT + height),
            (land, STAND_HEIGHT - 0.02),
            (land + 0.12 * u, STAND_HEIGHT - 0.08),
        ]
        root += [(takeoff, _vec(sign * 0.07, here)), (land, _vec(sign * 0.07, there))]
    total = p.count * advance
    held += [(end - 0.15 * u, REST_ANKLES[free] + _vec(0.0, 0.0, total))]
    stand += [(end - 0.1 * u, REST_ANKLES[k] + _vec(0.0, 0.0, total))]
    pelvis += [(end - 0.3 * u, STAND_HEIGHT)]
    root += [(end - 0.05, _vec(0.0, total))]
    ch.key("ankles", stand, k)
    ch.key("ankles", held, free)
    ch.key("pelvis_height", pelvis)
    ch.key("root_xz", root)
    arms = SHOULDERS + np.array([[0.3, -0.35, 0.12], [-0.3, -0.35, 0.12]])
    ch.key("hands", [(0.0, HANDS_REST), (first, arms), (end - 0.3 * u, arms), (end - 0.05, HANDS_REST)])
    ch.key(
        "pelvis_tilt",
        [
            (0.0, _rotation()),
            (first, _rotation(0.12, 0.0, -sign * 0.05)),
            (end - 0.3 * u, _rotation(0.12, 0.0, -sign * 0.05)),
            (end - 0.05, _rotation()),
        ],
    )
    return ch.track()


def _squat(p: ActionParams, fps: float) -> PoseTrack:
    """Squat down and up `count` times; amplitude is the depth. Arms forward or hands on the hips."""
    u = 1.0 / p.speed
    depth = 0.28 + 0.17 * p.amplitude
    lean = 0.3 + 0.45 * depth
    cycle = 2.2 * u
    ch = Choreography(0.3 + p.count * cycle + 0.3, fps)
    if p.style == "hands_on_hips":
        held = SHOULDERS + np.array([[-0.02, -0.44, 0.02], [0.02, -0.44, 0.02]])
        poles = np.array([[1.0, 0.0, -0.4], [-1.0, 0.0, -0.4]])
        bottom_hands = held
    else:
        held = np.array([_heading_reach(0, 0.0, 0.58, 0.0, 0.06), _heading_reach(1, 0.0, 0.58, 0.0, 0.06)])
        poles = np.array([[0.3, -1.0, 0.0], [-0.3, -1.0, 0.0]])
        bottom_hands = _counter_pitch(held, lean + 0.1)
    pelvis, tilt, spine, root, hands = (
        [(0.0, STAND_HEIGHT)],
        [(0.0, _rotation())],
        [(0.0, _rotation())],
        [(0.0, _vec(0.0, 0.0))],
        [(0.0, HANDS_REST), (0.3, held)],
    )
    for rep in range(p.count):
        t0 = 0.3 + rep * cycle
        bottom, rise = t0 + 0.9 * u, t0 + 1.25 * u
        pelvis += [(bottom, STAND_HEIGHT - depth), (rise, STAND_HEIGHT - depth), (t0 + 2.1 * u, STAND_HEIGHT)]
        tilt += [(bottom, _rotation(lean)), (rise, _rotation(lean)), (t0 + 2.1 * u, _rotation())]
        spine += [(bottom, _rotation(0.1)), (rise, _rotation(0.1)), (t0 + 2.1 * u, _rotation())]
        root += [
            (bottom, _vec(0.0, -0.3 * depth)),
            (rise, _vec(0.0, -0.3 * depth)),
            (t0 + 2.1 * u, _vec(0.0, 0.0)),
        ]
        hands += [(bottom, bottom_hands), (rise, bottom_hands), (t0 + 2.1 * u, held)]
    hands += [(ch.duration - 0.05, HANDS_REST)]
    for name, keys in (
        ("pelvis_height", pelvis),
        ("pelvis_tilt", tilt),
        ("spine", spine),
        ("root_xz", root),
        ("hands", hands),
    ):
        ch.key(name, keys)
    ch.key("elbow_poles", [(0.0, ch.get("elbow_poles")[0]), (0.3, poles)])
    return ch.track()


def _sit_down_stand_up(p: ActionParams, fps: float) -> PoseTrack:
    """Sit down on a chair behind, stay seated (amplitude: how long), then stand back up."""
    u = 1.0 / p.speed
    hold = 0.8 + 1.4 * p.amplitude
    seated, up = 1.5 * u, 1.5 * u + hold
    ch = Choreography(up + 1.6 * u + 0.2, fps)
    end = up + 1.5 * u
    seat = _vec(0.0, -0.3)
    on_thighs = SHOULDERS + np.array([[-0.04, -0.42, 0.3], [0.04, -0.42, 0.3]])
    ch.key(
        "pelvis_height",
        [
            (0.0, STAND_HEIGHT),
            (0.4 * u, STAND_HEIGHT - 0.03),
            (seated, 0.52),
            (up, 0.52),
            (up + 0.6 * u, 0.58),
            (end, STAND_HEIGHT),
        ],
    )
    ch.key(
        "root_xz",
        [(0.0, _vec(0, 0)), (0.4 * u, _vec(0, 0)), (seated, seat), (up + 0.3 * u, seat), (end, _vec(0, 0))],
    )
    ch.key(
        "pelvis_tilt",
        [
            (0.0, _rotation()),
            (0.9 * u, _rotation(0.55)),
            (seated, _rotation(0.15)),
            (up, _rotation(0.15)),
            (up + 0.6 * u, _rotation(0.6)),
            (end, _rotation()),
        ],
    )
    ch.key(
        "spine",
        [
            (0.0, _rotation()),
            (0.9 * u, _rotation(0.2)),
            (seated, _rotation(-0.05)),
            (up, _rotation(-0.05)),
            (up + 0.6 * u, _rotation(0.2)),
            (end, _rotation()),
        ],
    )
    reach = hanging_hands(0.6) + _vec(0.0, 0.05, 0.12)
    ch.key(
        "hands",
        [
            (0.0, HANDS_REST),
            (0.9 * u, reach),
            (seated, on_thighs),
            (up, on_thighs),
            (up + 0.6 * u, reach),
            (end, HANDS_REST),
        ],
    )
    return ch.track()


def _pick_up(p: ActionParams, fps: float) -> PoseTrack:
    """Bend down (squatting or stooping), pick something up from the floor with one or both hands, stand up
    holding it, then lower the hands."""
    u = 1.0 / p.speed
    squat = p.style == "squat"
    ch = Choreography(4.0 * u + 0.2, fps)
    bottom, lifted = 1.1 * u, 2.4 * u
    height = STAND_HEIGHT - (0.52 if squat else 0.3)
    pitch = 0.7 if squat else 1.0
    bend = 0.5 if squat else 0.9
    low = hanging_hands(pitch + bend) + _vec(0.0, 0.0, 0.12)
    low[:, 0] *= 0.7
    hold = SHOULDERS + np.array([[-0.05, -0.3, 0.3], [0.05, -0.3, 0.3]])
    both = p.side == "both"
    picking = [0, 1] if both else [side_index(p.side)]
    hands_low = np.where(np.isin([0, 1], picking)[:, None], low, hanging_hands(pitch + bend))
    hands_hold = np.where(
        np.isin([0, 1], picking)[:, None], hold if both else hold + _vec(0, 0.05, 0), HANDS_REST
    )
    ch.key(
        "pelvis_height",
        [(0.0, STAND_HEIGHT), (bottom, height), (bottom + 0.35 * u, height), (lifted, STAND_HEIGHT)],
    )
    ch.key(
        "root_xz",
        [
            (0.0, _vec(0, 0)),
            (bottom, _vec(0.0, -0.12)),
            (bottom + 0.35 * u, _vec(0.0, -0.12)),
            (lifted, _vec(0, 0)),
        ],
    )
    ch.key(
        "pelvis_tilt",
        [
            (0.0, _rotation()),
            (bottom, _rotation(pitch)),
            (bottom + 0.35 * u, _rotation(pitch)),
            (lifted, _rotation()),
        ],
    )
    ch.key(
        "spine",
        [
            (0.0, _rotation()),
            (bottom, _rotation(bend)),
            (bottom + 0.35 * u, _rotation(bend)),
            (lifted, _rotation()),
        ],
    )
    ch.key("neck", [(0.0, _rotation()), (bottom, _rotation(0.25)), (lifted, _rotation())])
    ch.key(
        "hands",
        [
            (0.0, HANDS_REST),
            (bottom, hands_low),
            (bottom + 0.35 * u, hands_low),
            (lifted, hands_hold),
            (3.4 * u, hands_hold),
            (4.0 * u, HANDS_REST),
        ],
    )
    return ch.track()


# ------------------------------------------------------------------------------------------------------------
# Arms and upper body


def _wave(p: ActionParams, fps: float) -> PoseTrack:
    """Wave a raised hand (or both) from side to side `count` times; amplitude is how high and wide."""
    u = 1.0 / p.speed
    swing = 0.45 * u
    ch = Choreography(0.6 * u + p.count * swing + 0.7 * u, fps)
    sides = [0, 1] if p.side == "both" else [side_index(p.side)]
    for side in sides:
        sign = 1.0 if side == 0 else -1.0
        up = SHOULDERS[side] + _vec(sign * 0.16, 0.26 + 0.16 * p.amplitude, 0.12)
        width = 0.08 + 0.07 * p.amplitude
        keys = [(0.0, HANDS_REST[side]), (0.6 * u, up)]
        for n in range(p.count):
            keys.append(
                (0.6 * u + (n + 0.5) * swing, up + _vec(sign * width * (1 if n % 2 == 0 else -1), -0.02, 0))
            )
        keys += [(0.6 * u + p.count * swing, up), (ch.duration - 0.05, HANDS_REST[side])]
        ch.key("hands", keys, side)
        ch.key(
            "elbow_poles",
            [(0.0, ch.get("elbow_poles")[0, side]), (0.5 * u, _vec(sign * 1.0, -0.8, 0.1))],
            side,
        )
    return ch.track()


def _raise_arms(p: ActionParams, fps: float) -> PoseTrack:
    """Raise one or both arms up, forward or out to the side, hold, lower; `count` times."""
    u = 1.0 / p.speed
    hold = 0.4 + 0.8 * p.amplitude
    cycle = 1.7 * u + hold
    ch = Choreography(0.1 + p.count * cycle + 0.2, fps)
    sides = [0, 1] if p.side == "both" else [side_index(p.side)]
    for side in sides:
        sign = 1.0 if side == 0 else -1.0
        target, pole = {
            "up": (_vec(sign * 0.05, 0.58, 0.06), _vec(sign * 1.0, 0.0, -0.3)),
            "forward": (_vec(-sign * 0.04, 0.02, 0.58), _vec(sign * 0.3, -1.0, 0.0)),
            "sideways": (_vec(sign * 0.58, 0.05, 0.04), _vec(0.0, -0.4, -1.0)),
        }[p.style]
        keys = [(0.0, HANDS_REST[side])]
        for rep in range(p.count):
            t0 = 0.1 + rep * cycle
            keys += [
                (t0 + 0.8 * u, SHOULDERS[side] + target),
                (t0 + 0.8 * u + hold, SHOULDERS[side] + target),
                (t0 + 1.6 * u + hold, HANDS_REST[side]),
            ]
        ch.key("hands", keys, side)
        ch.key("elbow_poles", [(0.0, ch.get("elbow_poles")[0, side]), (0.5 * u, pole)], side)
    if p.style == "up":
        # Looking up a little with the arms overhead.
        ch.key(
            "neck",
            [
                (0.0, _rotation()),
                (0.8 * u, _rotation(-0.2)),
                (ch.duration - 0.8 * u, _rotation(-0.2)),
                (ch.duration - 0.05, _rotation()),
            ],
        )
    return ch.track()


def _clap(p: ActionParams, fps: float) -> PoseTrack:
    """Clap the hands `count` times in front of the chest or above the head; amplitude is how far apart."""
    u = 1.0 / p.speed
    beat = 0.42 * u
    ch = Choreography(0.5 * u + p.count * beat + 0.6 * u, fps)
    height, depth = (0.55, 0.15) if p.style == "overhead" else (0.02, 0.3)
    spread = 0.12 + 0.1 * p.amplitude
    apart = np.array([[spread, height, depth], [-spread, height, depth]])
    together = np.array([[0.035, height, depth + 0.03], [-0.035, height, depth + 0.03]])
    keys = [(0.0, HANDS_REST), (0.5 * u, apart)]
    for n in range(p.count):
        t = 0.5 * u + n * beat
        keys += [(t + 0.5 * beat, together), (t + beat, apart)]
    keys += [(ch.duration - 0.05, HANDS_REST)]
    ch.key("hands", keys)
    ch.key(
        "elbow_poles",
        [(0.0, ch.get("elbow_poles")[0]), (0.4 * u, np.array([[0.7, -1.0, -0.2], [-0.7, -1.0, -0.2]]))],
    )
    return ch.track()


def _bow(p: ActionParams, fps: float) -> PoseTrack:
    """Bow from the waist `count` times; amplitude is how deep. Hands at the sides or together in front."""
    u = 1.0 / p.speed
    bend = 0.35 + 0.6 * p.amplitude
    cycle = 2.2 * u
    ch = Choreography(0.2 + p.count * cycle + 0.2, fps)
    together = p.style == "hands_together"
    front = SHOULDERS + np.array([[-0.14, -0.4, 0.2], [0.14, -0.4, 0.2]])
    tilt, spine, neck, root, hands = (
        [(0.0, _rotation())],
        [(0.0, _rotation())],
        [(0.0, _rotation())],
        [(0.0, _vec(0, 0))],
        [(0.0, HANDS_REST)],
    )
    for rep in range(p.count):
        t0 = 0.2 + rep * cycle
        down, hold, up = t0 + 0.8 * u, t0 + 1.3 * u, t0 + 2.1 * u
        low = _counter_pitch(front, bend) if together else hanging_hands(bend)
        tilt += [(down, _rotation(0.45 * bend)), (hold, _rotation(0.45 * bend)), (up, _rotation())]
        spine += [(down, _rotation(0.55 * bend)), (hold, _rotation(0.55 * bend)), (up, _rotation())]
        neck += [(down, _rotation(0.2)), (hold, _rotation(0.2)), (up, _rotation())]
        root += [(down, _vec(0.0, -0.08 * bend)), (hold, _vec(0.0, -0.08 * bend)), (up, _vec(0, 0))]
        hands += [
            (t0 + 0.3 * u, front if together else HANDS_REST),
            (down, low),
            (hold, low),
            (up, front if together else HANDS_REST),
        ]
    hands += [(ch.duration - 0.05, HANDS_REST)]
    for name, keys in (
        ("pelvis_tilt", tilt),
        ("spine", spine),
        ("neck", neck),
        ("root_xz", root),
        ("hands", hands),
    ):
        ch.key(name, keys)
    return ch.track()


def _stretch(p: ActionParams, fps: float) -> PoseTrack:
    """Stretch: reach both arms overhead, bend sideways with the arms up, or twist with the arms out."""
    u = 1.0 / p.speed
    overhead = SHOULDERS + np.array([[0.02, 0.58, 0.04], [-0.02, 0.58, 0.04]])
    out = SHOULDERS + np.array([[0.58, 0.03, 0.05], [-0.58, 0.03, 0.05]])
    up_poles = np.array([[1.0, 0.0, -0.3], [-1.0, 0.0, -0.3]])
    amount = 0.25 + 0.25 * p.amplitude
    if p.style == "overhead":
        cycle = (2.0 + 0.8 * p.amplitude) * u
        ch = Choreography(0.1 + p.count * cycle + 0.2, fps)
        hands, spine, neck = [(0.0, HANDS_REST)], [(0.0, _rotation())], [(0.0, _rotation())]
        for rep in range(p.count):
            t0 = 0.1 + rep * cycle
            hands += [(t0 + 0.8 * u, overhead), (t0 + cycle - 0.8 * u, overhead), (t0 + cycle, HANDS_REST)]
            spine += [
                (t0 + 0.8 * u, _rotation(-0.6 * amount)),
                (t0 + cycle - 0.8 * u, _rotation(-0.6 * amount)),
                (t0 + cycle, _rotation()),
            ]
            neck += [
                (t0 + 0.8 * u, _rotation(-0.3)),
                (t0 + cycle - 0.8 * u, _rotation(-0.3)),
                (t0 + cycle, _rotation()),
            ]
        ch.key("hands", hands)
        ch.key("spine", spine)
        ch.key("neck", neck)
        ch.key("elbow_poles", [(0.0, ch.get("elbow_poles")[0]), (0.5 * u, up_poles)])
        return ch.track()
    # Side bends (left, right or both ways in turn) and twists (both ways in turn) hold the arms still.
    if p.style == "side_bend":
        ways = [side_sign(p.side)] if p.side in ("left", "right") else [1.0, -1.0]
    else:
        ways = [1.0, -1.0]
    bends = [way for _ in range(p.count) for way in ways]
    hold_pose = overhead if p.style == "side_bend" else out
    bend_time = 1.3 * u
    ch = Choreography(0.8 * u + len(bends) * bend_time + 0.9 * u, fps)
    end = ch.duration
    ch.key(
        "hands",
        [(0.0, HANDS_REST), (0.8 * u, hold_pose), (end - 0.8 * u, hold_pose), (end - 0.05, HANDS_REST)],
    )
    ch.key(
        "elbow_poles",
        [
            (0.0, ch.get("elbow_poles")[0]),
            (
                0.5 * u,
                up_poles if p.style == "side_bend" else np.array([[0.0, -1.0, -0.5], [0.0, -1.0, -0.5]]),
            ),
        ],
    )
    spine, root = [(0.0, _rotation()), (0.8 * u, _rotation())], [(0.0, _vec(0, 0)), (0.8 * u, _vec(0, 0))]
    for n, way in enumerate(bends):
        t = 0.8 * u + (n + 0.5) * bend_time
        if p.style == "side_bend":
            # Leaning to the left is a negative roll; the hips shift the other way to keep balance.
            spine.append((t, _rotation(roll=-way * (0.35 + 0.35 * p.amplitude))))
            root.append((t, _vec(-way * 0.05, 0.0)))
        else:
            spine.append((t, _rotation(twist=way * (0.5 + 0.5 * p.amplitude))))
            root.append((t, _vec(0.0, 0.0)))
    spine += [(end - 0.8 * u, _rotation())]
    root += [(end - 0.8 * u, _vec(0, 0))]
    ch.key("spine", spine)
    ch.key("root_xz", root)
    return ch.track()


def _throw(p: ActionParams, fps: float) -> PoseTrack:
    """Throw something with one hand, overhand or underhand, stepping forward with the other foot."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    sign = side_sign(p.side)
    front = 1 - k
    effort = 0.5 + 0.5 * p.amplitude
    ch = Choreography(2.6 * u, fps)
    wind, release, follow, recover, back = 0.55 * u, 0.8 * u, 1.0 * u, 1.6 * u, 2.4 * u
    step = REST_ANKLES[front] + _vec(0.0, 0.0, 0.2 + 0.15 * p.amplitude)
    ch.key(
        "ankles",
        _step_keys(REST_ANKLES[front], step, 0.25 * u, wind, 0.07)
        + _step_keys(step, REST_ANKLES[front], recover + 0.1 * u, back, 0.06),
        front,
    )
    ch.key(
        "root_xz",
        [
            (0.0, _vec(0, 0)),
            (wind, _vec(0.0, 0.0)),
            (follow, _vec(0.0, step[2] * 0.6)),
            (recover + 0.1 * u, _vec(0.0, step[2] * 0.6)),
            (back, _vec(0, 0)),
        ],
    )
    if p.style == "underhand":
        poses = (
            SHOULDERS[k] + _vec(sign * 0.08, -0.45, -0.25),
            SHOULDERS[k] + _vec(-sign * 0.02, -0.15, 0.45),
            SHOULDERS[k] + _vec(-sign * 0.06, 0.25, 0.4),
        )
        pole = _vec(sign * 0.3, -1.0, -0.3)
    else:
        poses = (
            SHOULDERS[k] + _vec(sign * 0.15, 0.25, -0.3),
            SHOULDERS[k] + _vec(-sign * 0.04, 0.25, 0.42),
            SHOULDERS[k] + _vec(-sign * 0.2, -0.3, 0.32),
        )
        pole = _vec(sign * 1.0, -0.3, -0.4)
    ch.key(
        "hands",
        [
            (0.0, HANDS_REST[k]),
            (wind, poses[0]),
            (release, poses[1]),
            (follow, poses[2]),
            (recover, HANDS_REST[k]),
        ],
        k,
    )
    balance = SHOULDERS[front] + _vec(-sign * 0.25, -0.05, 0.3)
    ch.key(
        "hands",
        [
            (0.0, HANDS_REST[front]),
            (wind, balance),
            (follow, HANDS_REST[front] + _vec(0, 0.1, -0.1)),
            (recover, HANDS_REST[front]),
        ],
        front,
    )
    ch.key("elbow_poles", [(0.0, ch.get("elbow_poles")[0, k]), (0.3 * u, pole)], k)
    turn = 0.45 * effort
    ch.key(
        "spine",
        [
            (0.0, _rotation()),
            (wind, _rotation(-0.1, sign * turn)),
            (release, _rotation(0.15, -sign * turn)),
            (follow, _rotation(0.3, -sign * turn)),
            (recover, _rotation()),
        ],
    )
    ch.key(
        "pelvis_tilt",
        [
            (0.0, _rotation()),
            (wind, _rotation(0.0, sign * 0.3 * effort)),
            (follow, _rotation(0.15, -sign * 0.3 * effort)),
            (recover, _rotation()),
        ],
    )
    return ch.track()


# ------------------------------------------------------------------------------------------------------------
# Violent actions


def _fight_stance(ch: Choreography, lead: int, t_in: float, t_out: float, u: float) -> float:
    """Step into a fighting stance (the `lead` foot forward, fists up, body turned) over [t_in, t_in + 0.4u],
    hold it, and step back out ending at t_out. Returns the body twist of the stance."""
    lead_sign = 1.0 if lead == 0 else -1.0
    forward = REST_ANKLES[lead] + _vec(0.0, 0.0, 0.24)
    ch.key(
        "ankles",
        _step_keys(REST_ANKLES[lead], forward, t_in, t_in + 0.4 * u, 0.06)
        + _step_keys(forward, REST_ANKLES[lead], t_out - 0.4 * u, t_out, 0.05),
        lead,
    )
    twist = -lead_sign * 0.3
    ch.key(
        "foot_yaw",
        [
            (t_in, FEET_YAW_REST),
            (t_in + 0.4 * u, FEET_YAW_REST + twist),
            (t_out - 0.4 * u, FEET_YAW_REST + twist),
            (t_out, FEET_YAW_REST),
        ],
    )
    ch.key(
        "root_xz",
        [
            (t_in, _vec(0, 0)),
            (t_in + 0.4 * u, _vec(0.0, 0.09)),
            (t_out - 0.4 * u, _vec(0.0, 0.09)),
            (t_out, _vec(0, 0)),
        ],
    )
    ch.key(
        "pelvis_height",
        [
            (t_in, STAND_HEIGHT),
            (t_in + 0.4 * u, STAND_HEIGHT - 0.04),
            (t_out - 0.4 * u, STAND_HEIGHT - 0.04),
            (t_out, STAND_HEIGHT),
        ],
    )
    return twist


def _punch(p: ActionParams, fps: float) -> PoseTrack:
    """Punch `count` times from a fighting stance: jabs, crosses, hooks or a left-right combination."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    lead = k if p.style in ("jab", "combo") else 1 - k
    cycle = 0.55 * u
    start = 0.5 * u
    ch = Choreography(start + p.count * cycle + 0.9 * u, fps)
    end = ch.duration - 0.05
    stance_twist = _fight_stance(ch, lead, 0.05, end, u)
    guard = guard_hands()
    hands: list[list[tuple[float, np.ndarray]]] = [[(0.0, HANDS_REST[s]), (start, guard[s])] for s in (0, 1)]
    spine = [(0.0, _rotation()), (start, _rotation(0.05, stance_twist * 0.5))]
    poles: list[list[tuple[float, np.ndarray]]] = [
        [(0.0, ch.get("elbow_poles")[0, s]), (start, GUARD_POLES[s])] for s in (0, 1)
    ]
    for n in range(p.count):
        hand = k if p.style != "combo" else (k if n % 2 == 0 else 1 - k)
        sign = 1.0 if hand == 0 else -1.0
        t0 = start + n * cycle
        hit, back = t0 + 0.16 * u, t0 + 0.42 * u
        if p.style == "hook":
            twist = -sign * 0.5
            wind = SHOULDERS[hand] + _vec(sign * 0.1, 0.05, 0.2)
            strike = _heading_reach(hand, twist + stance_twist * 0.5, 0.34, 0.08, 0.2)
            hands[hand] += [(t0 + 0.06 * u, wind), (hit, strike), (back, guard[hand])]
            poles[hand] += [(t0 + 0.06 * u, _vec(sign * 1.0, 0.3, -0.2)), (back, GUARD_POLES[hand])]
        else:
            twist = -sign * (0.15 if hand == lead else 0.4)
            strike = _heading_reach(hand, twist + stance_twist * 0.5, 0.58, 0.05, 0.1)
            hands[hand] += [(hit, strike), (hit + 0.06 * u, strike), (back, guard[hand])]
            poles[hand] += [(hit, _vec(sign * 0.6, -1.0, 0.0)), (back, GUARD_POLES[hand])]
        spine += [
            (hit, _rotation(0.08, stance_twist * 0.5 + twist)),
            (back, _rotation(0.05, stance_twist * 0.5)),
        ]
    spine += [(end - 0.3 * u, _rotation()), (end, _rotation())]
    for s in (0, 1):
        ch.key("hands", hands[s] + [(end - 0.3 * u, guard[s]), (end, HANDS_REST[s])], s)
        ch.key("elbow_poles", poles[s] + [(end, ch.get("elbow_poles")[0, s])], s)
    ch.key("spine", spine)
    return ch.track()


def _key_one_arm_strike(
    ch: Choreography,
    k: int,
    hand: list[tuple[float, np.ndarray]],
    pole: list[tuple[float, np.ndarray]],
    spine: list[tuple[float, np.ndarray]],
    guard: np.ndarray,
    start: float,
    end: float,
    u: float,
) -> None:
    """Key a one-arm strike: the striking arm's keys, then rest; the other hand holds a guard."""
    ch.key("hands", hand + [(end - 0.3 * u, guard[k]), (end, HANDS_REST[k])], k)
    off_hand = [
        (0.0, HANDS_REST[1 - k]),
        (start, guard[1 - k]),
        (end - 0.3 * u, guard[1 - k]),
        (end, HANDS_REST[1 - k]),
    ]
    ch.key("hands", off_hand, 1 - k)
    ch.key("elbow_poles", pole + [(end, ch.get("elbow_poles")[0, k])], k)
    rest_pole = ch.get("elbow_poles")[0, 1 - k]
    ch.key("elbow_poles", [(0.0, rest_pole), (start, GUARD_POLES[1 - k]), (end, rest_pole)], 1 - k)
    ch.key("spine", spine + [(end - 0.3 * u, _rotation()), (end, _rotation())])


def _uppercut(p: ActionParams, fps: float) -> PoseTrack:
    """Uppercuts: the fist drops to the waist and drives up in front of the chin, the knees pushing up."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    sign = side_sign(p.side)
    cycle = 0.8 * u
    start = 0.5 * u
    ch = Choreography(start + p.count * cycle + 0.9 * u, fps)
    end = ch.duration - 0.05
    stance_twist = _fight_stance(ch, 1 - k, 0.05, end, u)
    guard = guard_hands()
    low = SHOULDERS[k] + _vec(-sign * 0.06, -0.32, 0.2)
    high = SHOULDERS[k] + _vec(-sign * 0.14, 0.17, 0.33)
    hand = [(0.0, HANDS_REST[k]), (start, guard[k])]
    pole = [(0.0, ch.get("elbow_poles")[0, k]), (start, GUARD_POLES[k])]
    spine = [(0.0, _rotation()), (start, _rotation(0.05, stance_twist * 0.5))]
    height = [(0.0, STAND_HEIGHT), (start, STAND_HEIGHT - 0.04)]
    for n in range(p.count):
        t0 = start + n * cycle
        dip, hit, back = t0 + 0.25 * u, t0 + 0.42 * u, t0 + 0.7 * u
        hand += [(dip, low), (hit, high), (hit + 0.06 * u, high), (back, guard[k])]
        pole += [
            (dip, _vec(sign * 0.2, -1.0, -0.6)),
            (hit, _vec(sign * 0.1, -1.0, -0.2)),
            (back, GUARD_POLES[k]),
        ]
        spine += [
            (dip, _rotation(0.2, sign * 0.25)),
            (hit, _rotation(-0.05, -sign * 0.35)),
            (back, _rotation(0.05, stance_twist * 0.5)),
        ]
        height += [(dip, STAND_HEIGHT - 0.12), (hit, STAND_HEIGHT - 0.02), (back, STAND_HEIGHT - 0.04)]
    _key_one_arm_strike(ch, k, hand, pole, spine, guard, start, end, u)
    # The fighting stance already keys the pelvis height; the dips come on top of it.
    ch.key("pelvis_height", height + [(end - 0.4 * u, STAND_HEIGHT - 0.04), (end, STAND_HEIGHT)])
    return ch.track()


def _elbow_strike(p: ActionParams, fps: float) -> PoseTrack:
    """Horizontal elbow strikes: the bent arm swings across at face height, driven by the turning body."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    sign = side_sign(p.side)
    cycle = 0.75 * u
    start = 0.5 * u
    ch = Choreography(start + p.count * cycle + 0.9 * u, fps)
    end = ch.duration - 0.05
    stance_twist = _fight_stance(ch, 1 - k, 0.05, end, u)
    guard = guard_hands()
    cocked = SHOULDERS[k] + _vec(sign * 0.02, 0.06, 0.1)
    across = SHOULDERS[k] + _vec(-sign * 0.3, 0.05, 0.08)
    hand = [(0.0, HANDS_REST[k]), (start, guard[k])]
    pole = [(0.0, ch.get("elbow_poles")[0, k]), (start, GUARD_POLES[k])]
    spine = [(0.0, _rotation()), (start, _rotation(0.05, stance_twist * 0.5))]
    for n in range(p.count):
        t0 = start + n * cycle
        load, hit, back = t0 + 0.2 * u, t0 + 0.38 * u, t0 + 0.65 * u
        hand += [(load, cocked), (hit, across), (hit + 0.06 * u, across), (back, guard[k])]
        pole += [
            (load, _vec(sign * 1.0, 0.1, -0.6)),
            (hit, _vec(sign * 0.2, 0.05, 1.0)),
            (back, GUARD_POLES[k]),
        ]
        spine += [
            (load, _rotation(0.0, sign * 0.3)),
            (hit, _rotation(0.1, -sign * 0.6)),
            (back, _rotation(0.05, stance_twist * 0.5)),
        ]
    _key_one_arm_strike(ch, k, hand, pole, spine, guard, start, end, u)
    return ch.track()


def _kick_frame(
    ch: Choreography,
    k: int,
    u: float,
    count: int,
    cycle: float,
    start: float,
    keys_of: Callable[[float], list[tuple[float, np.ndarray, float, np.ndarray]]],
) -> float:
    """Key a kicking leg: the weight goes over the other foot, then `count` kicks of `cycle` s each, each
    given by `keys_of(t0)` as (time, ankle target, foot pitch, knee pole) keys between two moments of rest.
    Returns the end time."""
    support = 1 - k
    over = _vec(REST_ANKLES[support, 0] * 0.75, -0.03)
    end = start + count * cycle + 0.35 * u
    ankle = [(0.0, REST_ANKLES[k])]
    pitch = [(0.0, PLANTED_PITCH[k])]
    pole = [(0.0, ch.get("knee_poles")[0, k])]
    for n in range(count):
        t0 = start + n * cycle
        ankle.append((t0, REST_ANKLES[k]))
        pitch.append((t0, PLANTED_PITCH[k]))
        for time, target, foot_pitch, knee in keys_of(t0):
            ankle.append((time, target))
            pitch.append((time, foot_pitch))
            pole.append((time, knee))
        ankle.append((t0 + cycle - 0.08 * u, REST_ANKLES[k]))
        pitch.append((t0 + cycle - 0.08 * u, PLANTED_PITCH[k]))
    ch.key("ankles", ankle, k)
    ch.key("foot_pitch", pitch, k)
    ch.key("knee_poles", pole, k)
    ch.key("root_xz", [(0.0, _vec(0, 0)), (start - 0.05 * u, over), (end - 0.3 * u, over), (end, _vec(0, 0))])
    ch.key(
        "pelvis_height",
        [
            (0.0, STAND_HEIGHT),
            (start, STAND_HEIGHT - 0.03),
            (end - 0.3 * u, STAND_HEIGHT - 0.03),
            (end, STAND_HEIGHT),
        ],
    )
    return end


def _guard_arms(ch: Choreography, start: float, end: float, u: float) -> None:
    guard = guard_hands(-0.05)
    ch.key("hands", [(0.0, HANDS_REST), (start, guard), (end - 0.3 * u, guard), (end, HANDS_REST)])
    ch.key(
        "elbow_poles",
        [(0.0, ch.get("elbow_poles")[0]), (start, GUARD_POLES), (end, ch.get("elbow_poles")[0])],
    )


def _kick_height(amplitude: float) -> float:
    """Ankle height (m) at full extension of a kick: knee height at amplitude 0, head height at 1."""
    return 0.5 + 0.95 * amplitude


def _front_kick(p: ActionParams, fps: float) -> PoseTrack:
    """Front kicks: knee up, the foot snaps forward at a height (amplitude), back to the chamber, down."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    sign = side_sign(p.side)
    cycle = 1.15 * u
    start = 0.35 * u
    height = _kick_height(p.amplitude)
    ch = Choreography(start + p.count * cycle + 0.45 * u, fps)
    hip_y = STAND_HEIGHT - 0.09
    forward = float(np.sqrt(max(0.76**2 - (height - hip_y) ** 2, 0.1)))
    chamber = _vec(sign * 0.1, 0.42 + 0.2 * p.amplitude, 0.3)
    strike = _vec(sign * 0.06, height, forward)
    up_knee = _vec(0.0, 0.5, 1.0)

    def keys(t0: float) -> list[tuple[float, np.ndarray, float, np.ndarray]]:
        return [
            (t0 + 0.3 * u, chamber, 0.7, up_knee),
            (t0 + 0.45 * u, strike, -0.6 * p.amplitude, up_knee),
            (t0 + 0.55 * u, strike, -0.6 * p.amplitude, up_knee),
            (t0 + 0.75 * u, chamber, 0.7, up_knee),
        ]

    end = _kick_frame(ch, k, u, p.count, cycle, start, keys)
    _guard_arms(ch, start, end, u)
    lean: list[tuple[float, np.ndarray]] = [(0.0, _rotation())]
    for n in range(p.count):
        t0 = start + n * cycle
        lean += [
            (t0 + 0.3 * u, _rotation(-0.05)),
            (t0 + 0.45 * u, _rotation(-0.1 - 0.3 * p.amplitude)),
            (t0 + 0.55 * u, _rotation(-0.1 - 0.3 * p.amplitude)),
            (t0 + 0.8 * u, _rotation()),
        ]
    ch.key("pelvis_tilt", lean + [(end, _rotation())])
    return ch.track()


def _side_kick(p: ActionParams, fps: float) -> PoseTrack:
    """Side kicks: the body turns and leans away while the leg thrusts out sideways (amplitude: height)."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    sign = side_sign(p.side)
    cycle = 1.25 * u
    start = 0.35 * u
    height = _kick_height(p.amplitude) - 0.1
    ch = Choreography(start + p.count * cycle + 0.45 * u, fps)
    hip_y = STAND_HEIGHT - 0.09
    out = float(np.sqrt(max(0.76**2 - (height - hip_y) ** 2, 0.1)))
    chamber = _vec(sign * 0.02, 0.45 + 0.15 * p.amplitude, 0.15)
    strike = _vec(sign * (0.08 + out), height, 0.05)
    knee = _vec(sign * 0.3, 0.5, 1.0)

    def keys(t0: float) -> list[tuple[float, np.ndarray, float, np.ndarray]]:
        return [
            (t0 + 0.3 * u, chamber, 0.3, knee),
            (t0 + 0.48 * u, strike, 0.2, _vec(0.0, 0.2, 1.0)),
            (t0 + 0.6 * u, strike, 0.2, _vec(0.0, 0.2, 1.0)),
            (t0 + 0.82 * u, chamber, 0.3, knee),
        ]

    end = _kick_frame(ch, k, u, p.count, cycle, start, keys)
    _guard_arms(ch, start, end, u)
    # Turned away from the kick (the kicking side opens) and leaning away over the support leg.
    tilt: list[tuple[float, np.ndarray]] = [(0.0, _rotation())]
    for n in range(p.count):
        t0 = start + n * cycle
        lean = _rotation(0.0, -sign * 0.5, sign * (0.25 + 0.35 * p.amplitude))
        tilt += [
            (t0 + 0.3 * u, _rotation(0.0, -sign * 0.4, sign * 0.1)),
            (t0 + 0.48 * u, lean),
            (t0 + 0.6 * u, lean),
            (t0 + 0.95 * u, _rotation()),
        ]
    ch.key("pelvis_tilt", tilt + [(end, _rotation())])
    support = 1 - k
    ch.key(
        "foot_yaw",
        [
            (0.0, FEET_YAW_REST[support]),
            (start + 0.3 * u, FEET_YAW_REST[support] - sign * 0.6),
            (end - 0.4 * u, FEET_YAW_REST[support] - sign * 0.6),
            (end, FEET_YAW_REST[support]),
        ],
        support,
    )
    return ch.track()


def _roundhouse_kick(p: ActionParams, fps: float) -> PoseTrack:
    """Roundhouse kicks: the hips turn over the pivoting support foot and the leg whips round in an arc."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    sign = side_sign(p.side)
    cycle = 1.4 * u
    start = 0.35 * u
    height = _kick_height(p.amplitude)
    ch = Choreography(start + p.count * cycle + 0.45 * u, fps)
    chamber = _vec(sign * 0.4, 0.5 + 0.15 * p.amplitude, -0.05)
    strike = _vec(-sign * 0.05, height, 0.68)
    through = _vec(-sign * 0.45, height - 0.1, 0.45)
    out_knee = _vec(sign * 1.0, 0.6, 0.3)

    def keys(t0: float) -> list[tuple[float, np.ndarray, float, np.ndarray]]:
        return [
            (t0 + 0.3 * u, chamber, 0.9, out_knee),
            (t0 + 0.5 * u, strike, 0.9, _vec(sign * 0.6, 1.0, 0.2)),
            (t0 + 0.65 * u, through, 0.9, _vec(sign * 0.3, 1.0, 0.0)),
            (t0 + 0.9 * u, chamber, 0.9, out_knee),
        ]

    end = _kick_frame(ch, k, u, p.count, cycle, start, keys)
    _guard_arms(ch, start, end, u)
    tilt: list[tuple[float, np.ndarray]] = [(0.0, _rotation())]
    spine: list[tuple[float, np.ndarray]] = [(0.0, _rotation())]
    for n in range(p.count):
        t0 = start + n * cycle
        tilt += [
            (t0 + 0.3 * u, _rotation(0.0, -sign * 0.4, sign * 0.15)),
            (t0 + 0.55 * u, _rotation(-0.1, -sign * 0.9, sign * 0.35)),
            (t0 + 1.1 * u, _rotation()),
        ]
        spine += [(t0 + 0.55 * u, _rotation(0.0, sign * 0.4)), (t0 + 1.1 * u, _rotation())]
    ch.key("pelvis_tilt", tilt + [(end, _rotation())])
    ch.key("spine", spine + [(end, _rotation())])
    support = 1 - k
    ch.key(
        "foot_yaw",
        [
            (0.0, FEET_YAW_REST[support]),
            (start + 0.3 * u, FEET_YAW_REST[support] - sign * 0.9),
            (end - 0.4 * u, FEET_YAW_REST[support] - sign * 0.9),
            (end, FEET_YAW_REST[support]),
        ],
        support,
    )
    return ch.track()


def _stomp(p: ActionParams, fps: float) -> PoseTrack:
    """Stomps: the knee comes up high and the foot is driven down hard on the floor in front."""
    u = 1.0 / p.speed
    k = side_index(p.side)
    sign = side_sign(p.side)
    cycle = 0.9 * u
    start = 0.4 * u
    ch = Choreography(start + p.count * cycle + 0.8 * u, fps)
    end = ch.duration - 0.05
    raised = _vec(sign * 0.1, 0.42 + 0.2 * p.amplitude, 0.22)
    down = _vec(sign * 0.1, ANKLE_HEIGHT, 0.3)
    ankle = [(0.0, REST_ANKLES[k])]
    pitch = [(0.0, PLANTED_PITCH[k])]
    height = [(0.0, STAND_HEIGHT)]
    lean = [(0.0, _rotation())]
    for n in range(p.count):
        t0 = start + n * cycle
        ankle += [(t0 + 0.4 * u, raised), (t0 + 0.55 * u, down), (t0 + 0.75 * u, down)]
        pitch += [(t0 + 0.4 * u, 0.2), (t0 + 0.55 * u, PLANTED_PITCH[k]), (t0 + 0.75 * u, PLANTED_PITCH[k])]
        height += [
            (t0 + 0.4 * u, STAND_HEIGHT),
            (t0 + 0.55 * u, STAND_HEIGHT - 0.02),
            (t0 + 0.62 * u, STAND_HEIGHT - 0.1),
            (t0 + 0.75 * u, STAND_HEIGHT - 0.04),
        ]
        lean += [
            (t0 + 0.4 * u, _rotation(0.1, 0.0, sign * -0.05)),
            (t0 + 0.6 * u, _rotation(0.3)),
            (t0 + 0.75 * u, _rotation(0.2)),
        ]
    last = start + p.count * cycle
    ankle += _step_keys(down, REST_ANKLES[k], last, last + 0.4 * u, 0.06)
    ch.key("ankles", ankle, k)
    ch.key("foot_pitch", pitch + [(last, PLANTED_PITCH[k])], k)
    ch.key("pelvis_height", height + [(last + 0.3 * u, STAND_HEIGHT)])
    ch.key("pelvis_tilt", lean + [(last + 0.4 * u, _rotation())])
    over = _vec(-sign * 0.05, 0.0)
    ch.key("root_xz", [(0.0, _vec(0, 0)), (start, over), (last, over), (last + 0.4 * u, _vec(0, 0))])
    ch.key(
        "neck", [(0.0, _rotation()), (start, _rotation(0.35)), (last, _rotation(0.35)), (end, _rotation())]
    )
    arms = SHOULDERS + np.array([[0.25, -0.3, 0.15], [-0.25, -0.3, 0.15]])
    ch.key("hands", [(0.0, HANDS_REST), (start, arms), (last, arms), (end, HANDS_REST)])
    return ch.track()


def idle(duration: float, fps: float, phase: float = 0.0) -> PoseTrack:
    """Standing still, breathing: the padding before, between and after actions (not an action family)."""
    ch = Choreography(duration, fps)
    breath = np.sin(2 * np.pi * (ch.times / 3.5 + phase))
    ch.set("spine", np.stack([0.015 * breath, np.zeros(ch.frames), np.zeros(ch.frames)], axis=-1))
    ch.set("hands", HANDS_REST + (0.01 * breath)[:, None, None] * _vec(0.0, 1.0, 0.0))
    return ch.track()


_LR = ("left", "right")

FAMILIES: tuple[ActionFamily, ...] = (
    # Not violent.
    ActionFamily(
        "walk",
        (),
        _walk,
        directions=("forward",) * 4 + ("backward", "left", "right", "curve_left", "curve_right"),
        counts=(4, 10),
        weight=4.0,
    ),
    ActionFamily(
        "run",
        (),
        _run,
        directions=("forward", "forward", "curve_left", "curve_right"),
        counts=(6, 12),
        weight=2.0,
    ),
    ActionFamily("jump", ("jump_leap_hop",), _jump, directions=("up", "forward"), counts=(1, 3), weight=1.5),
    ActionFamily("hop", ("jump_leap_hop",), _hop, sides=_LR, directions=("up", "forward"), counts=(2, 6)),
    ActionFamily("squat", ("duck_squat",), _squat, styles=("arms_forward", "hands_on_hips"), counts=(1, 3)),
    ActionFamily("sit_down_stand_up", (), _sit_down_stand_up, weight=1.2),
    ActionFamily("wave", (), _wave, sides=("left", "right", "right", "both"), counts=(2, 6)),
    ActionFamily(
        "raise_arms",
        (),
        _raise_arms,
        sides=("both", "both", "left", "right"),
        styles=("up", "forward", "sideways"),
        counts=(1, 2),
    ),
    ActionFamily("turn", (), _turn, sides=_LR, styles=("quarter", "half", "half", "full"), weight=1.5),
    ActionFamily("bow", (), _bow, styles=("hands_at_sides", "hands_together"), counts=(1, 2)),
    ActionFamily("clap", (), _clap, styles=("in_front", "in_front", "overhead"), counts=(3, 8)),
    ActionFamily(
        "stretch",
        (),
        _stretch,
        sides=("left", "right", "both"),
        styles=("overhead", "side_bend", "twist"),
        counts=(1, 2),
    ),
    ActionFamily("dance_step", (), _dance_step, sides=_LR, counts=(4, 8)),
    ActionFamily(
        "throw", ("throw",), _throw, sides=("left", "right", "right"), styles=("overhand", "underhand")
    ),
    ActionFamily("zombie_walk", ("zombie",), _zombie_walk, counts=(4, 8), weight=0.7),
    ActionFamily("pick_up", (), _pick_up, sides=("both", "both", "left", "right"), styles=("squat", "stoop")),
    # Violent.
    ActionFamily("front_kick", ("violence", "kick"), _front_kick, sides=_LR, counts=(1, 3), weight=1.5),
    ActionFamily("side_kick", ("violence", "kick"), _side_kick, sides=_LR, counts=(1, 3)),
    ActionFamily("roundhouse_kick", ("violence", "kick"), _roundhouse_kick, sides=_LR, counts=(1, 2)),
    ActionFamily("stomp", ("violence", "kick"), _stomp, sides=_LR, counts=(1, 3), weight=0.7),
    ActionFamily(
        "punch",
        ("violence", "punch_jab_box_hit_beat"),
        _punch,
        sides=_LR,
        styles=("jab", "cross", "hook", "combo", "combo"),
        counts=(1, 5),
        weight=1.5,
    ),
    ActionFamily("uppercut", ("violence", "punch_jab_box_hit_beat"), _uppercut, sides=_LR, counts=(1, 3)),
    ActionFamily(
        "elbow_strike",
        ("violence", "punch_jab_box_hit_beat"),
        _elbow_strike,
        sides=_LR,
        counts=(1, 3),
        weight=0.7,
    ),
)
"""Every action family; the captions module words each of them. No family crawls, so the HMU concept
`crawl_creep_slide` never occurs in the generated data."""

FAMILIES_BY_NAME: Mapping[str, ActionFamily] = MappingProxyType({family.name: family for family in FAMILIES})
