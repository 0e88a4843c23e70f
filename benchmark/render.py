"""Stick-figure pictures of a motion, so a person can see what a clip does: a PNG strip or an animated GIF.

Drawn with Pillow only. The camera is orthographic and follows the root, so a figure stays the same size; the
floor grid is fixed in the world, so travel shows as the grid sliding under the figure, and the root's path is
drawn on the floor. Left limbs are blue, right limbs red, the spine and head dark grey.

    >>> import numpy as np
    >>> from benchmark.render import render_gif, render_strip
    >>> joints = np.load("data/embedded/new_joints/000001.npy")          # (T, 22, 3), or features (T, 263)
    >>> render_strip(joints, "000001.png", frames=8, caption="a person kicks with the right leg.")
    >>> render_gif(joints, "000001.gif", fps=20)
"""

from __future__ import annotations

import itertools
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmark.motion.features import joints_from_features
from benchmark.motion.skeleton import FEATURE_DIM, KINEMATIC_CHAINS, NUM_JOINTS

VIEWS: dict[str, tuple[float, float]] = {
    "three_quarter": (45.0, 12.0),
    "side": (90.0, 5.0),
    "front": (0.0, 8.0),
}
"""Camera (azimuth, elevation) in degrees. Azimuth 0 looks at the front of a figure facing +Z; 90 sees its
left side."""

_LEFT_COLOUR = (31, 119, 180)
_RIGHT_COLOUR = (214, 39, 40)
_TRUNK_COLOUR = (60, 60, 60)
_GRID_COLOUR = (215, 215, 215)
_PATH_COLOUR = (150, 150, 150)
_TEXT_COLOUR = (20, 20, 20)
_BACKGROUND = (255, 255, 255)
_VIEW_HEIGHT = 2.6
"""Metres of world shown over a panel's height; the floor is drawn at `_FLOOR_AT` of it, so a hand raised
above the head (about 2.2 m) stays in the picture."""
_FLOOR_AT = 0.86
_LEFT_CHAINS = (1, 4)  # indices into KINEMATIC_CHAINS: left leg, left arm
_RIGHT_CHAINS = (0, 3)


@dataclass(frozen=True)
class Camera:
    """An orthographic camera: screen axes in the world, and the pixel scale."""

    right: np.ndarray
    """(3,) world direction of screen x."""
    up: np.ndarray
    """(3,) world direction of screen y (upwards on screen)."""
    toward: np.ndarray
    """(3,) world direction from the scene to the camera (depth: larger is nearer)."""
    pixels_per_metre: float

    @classmethod
    def from_view(cls, view: str, pixels_per_metre: float) -> Camera:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; views are {sorted(VIEWS)}")
        azimuth, elevation = np.radians(VIEWS[view])
        toward = np.array(
            [np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)]
        )
        right = np.cross([0.0, 1.0, 0.0], toward)
        right /= np.linalg.norm(right)
        up = np.cross(toward, right)
        return cls(right, up, toward, pixels_per_metre)

    def project(self, points: np.ndarray, centre: np.ndarray, origin: tuple[float, float]) -> np.ndarray:
        """Pixel coordinates (..., 2) of world points (..., 3); `centre` (3,) maps to the pixel `origin`."""
        relative = points - centre
        x = relative @ self.right * self.pixels_per_metre + origin[0]
        y = origin[1] - relative @ self.up * self.pixels_per_metre
        return np.stack([x, y], axis=-1)


def as_joints(motion: np.ndarray) -> np.ndarray:
    """Joint positions (T, 22, 3) from joints (T, 22, 3) or 263-d features (T, 263)."""
    motion = np.asarray(motion)
    if motion.ndim == 2 and motion.shape[1] == FEATURE_DIM:
        return np.asarray(joints_from_features(motion.astype(np.float32)), dtype=np.float64)
    if motion.ndim == 3 and motion.shape[1:] == (NUM_JOINTS, 3):
        return motion.astype(np.float64)
    raise ValueError(f"expected joints (T, 22, 3) or features (T, {FEATURE_DIM}), got shape {motion.shape}")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _draw_floor(
    draw: ImageDraw.ImageDraw,
    camera: Camera,
    centre: np.ndarray,
    origin: tuple[float, float],
    path: np.ndarray,
) -> None:
    """A 0.5 m floor grid around the centre (fixed in the world, so it slides as the figure travels) and the
    root's path on the floor."""
    spacing, extent = 0.5, 1.5
    floor_centre = np.array([centre[0], 0.0, centre[2]])
    first_x = np.floor((centre[0] - extent) / spacing) * spacing
    first_z = np.floor((centre[2] - extent) / spacing) * spacing
    lines = np.arange(0, 2 * extent / spacing + 2) * spacing
    for offset in lines:
        for start, stop in (
            ((first_x + offset, 0.0, centre[2] - extent), (first_x + offset, 0.0, centre[2] + extent)),
            ((centre[0] - extent, 0.0, first_z + offset), (centre[0] + extent, 0.0, first_z + offset)),
        ):
            ends = camera.project(np.array([start, stop]), floor_centre, origin)
            draw.line([tuple(ends[0]), tuple(ends[1])], fill=_GRID_COLOUR, width=1)
    near = np.abs(path - floor_centre)[:, [0, 2]].max(axis=1) < extent
    if near.sum() >= 2:
        points = camera.project(path[near], floor_centre, origin)
        draw.line([tuple(point) for point in points], fill=_PATH_COLOUR, width=2)


def _draw_figure(
    draw: ImageDraw.ImageDraw,
    camera: Camera,
    pose: np.ndarray,
    centre: np.ndarray,
    origin: tuple[float, float],
) -> None:
    """One pose (22, 3): bones far from the camera first, so near limbs are drawn over far ones."""
    floor_centre = np.array([centre[0], 0.0, centre[2]])
    pixels = camera.project(pose, floor_centre, origin)
    depth = pose @ camera.toward
    width = max(2, int(round(camera.pixels_per_metre * 0.03)))
    bones: list[tuple[float, int, int, tuple[int, int, int]]] = []
    for index, chain in enumerate(KINEMATIC_CHAINS):
        colour = (
            _LEFT_COLOUR
            if index in _LEFT_CHAINS
            else _RIGHT_COLOUR
            if index in _RIGHT_CHAINS
            else _TRUNK_COLOUR
        )
        for parent, child in itertools.pairwise(chain):
            bones.append((float(depth[parent] + depth[child]), parent, child, colour))
    for _, parent, child, colour in sorted(bones):
        draw.line([tuple(pixels[parent]), tuple(pixels[child])], fill=colour, width=width)
        radius = width * 0.6
        x, y = pixels[child]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    head = pixels[15]
    radius = camera.pixels_per_metre * 0.09
    draw.ellipse(
        [head[0] - radius, head[1] - radius, head[0] + radius, head[1] + radius],
        outline=_TRUNK_COLOUR,
        width=width,
    )


def _frame_image(
    joints: np.ndarray, index: int, camera: Camera, size: tuple[int, int], centre: np.ndarray, label: str
) -> Image.Image:
    image = Image.new("RGB", size, _BACKGROUND)
    draw = ImageDraw.Draw(image)
    origin = (size[0] / 2, size[1] * _FLOOR_AT)
    _draw_floor(draw, camera, centre, origin, joints[:, 0] * np.array([1.0, 0.0, 1.0]))
    _draw_figure(draw, camera, joints[index], centre, origin)
    if label:
        draw.text((6, 4), label, fill=_TEXT_COLOUR, font=_font(max(10, size[1] // 24)))
    return image


def _caption_band(caption: str, width: int) -> Image.Image | None:
    if not caption:
        return None
    font = _font(14)
    lines = textwrap.wrap(caption, width=max(20, width // 8))
    band = Image.new("RGB", (width, 8 + 18 * len(lines)), _BACKGROUND)
    draw = ImageDraw.Draw(band)
    for number, line in enumerate(lines):
        draw.text((8, 4 + 18 * number), line, fill=_TEXT_COLOUR, font=font)
    return band


def render_strip(
    motion: np.ndarray,
    path: Path | str,
    frames: int = 8,
    fps: float = 20.0,
    caption: str = "",
    views: tuple[str, ...] = ("three_quarter",),
    panel_size: tuple[int, int] = (200, 280),
) -> Path:
    """Write a PNG of `frames` evenly spaced poses side by side (one row per view); return its path."""
    joints = as_joints(motion)
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    indices = np.linspace(0, len(joints) - 1, frames).round().astype(int)
    pixels_per_metre = panel_size[1] / _VIEW_HEIGHT
    rows = []
    for view in views:
        camera = Camera.from_view(view, pixels_per_metre)
        row = Image.new("RGB", (panel_size[0] * frames, panel_size[1]), _BACKGROUND)
        for column, index in enumerate(indices):
            label = f"{index / fps:.1f}s" + (f" {view}" if column == 0 and len(views) > 1 else "")
            panel = _frame_image(joints, int(index), camera, panel_size, joints[index, 0], label)
            row.paste(panel, (column * panel_size[0], 0))
        rows.append(row)
    band = _caption_band(caption, panel_size[0] * frames)
    parts = ([band] if band is not None else []) + rows
    image = Image.new("RGB", (panel_size[0] * frames, sum(part.height for part in parts)), _BACKGROUND)
    top = 0
    for part in parts:
        image.paste(part, (0, top))
        top += part.height
    path = Path(path)
    image.save(path, format="PNG")
    return path


def render_gif(
    motion: np.ndarray,
    path: Path | str,
    fps: float = 20.0,
    caption: str = "",
    view: str = "three_quarter",
    size: tuple[int, int] = (320, 400),
) -> Path:
    """Write an animated GIF of every frame (played at `fps`, looping); return its path."""
    joints = as_joints(motion)
    camera = Camera.from_view(view, size[1] / _VIEW_HEIGHT)
    # The camera follows a smoothed root so the picture does not jitter with the pelvis.
    kernel = np.ones(9) / 9
    padded = np.pad(joints[:, 0], ((4, 4), (0, 0)), mode="edge")
    centres = np.stack([np.convolve(padded[:, axis], kernel, mode="valid") for axis in range(3)], axis=-1)
    band = _caption_band(caption, size[0])
    images = []
    for index in range(len(joints)):
        # A label that changes every frame also keeps Pillow from merging identical consecutive frames.
        frame = _frame_image(joints, index, camera, size, centres[index], f"{index / fps:.2f}s")
        if band is not None:
            framed = Image.new("RGB", (size[0], size[1] + band.height), _BACKGROUND)
            framed.paste(band, (0, 0))
            framed.paste(frame, (0, band.height))
            frame = framed
        images.append(frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=64))
    path = Path(path)
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0
    )
    return path
