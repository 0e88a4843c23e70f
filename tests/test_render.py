"""Stick-figure rendering: PNG strips and animated GIFs open, have the expected size and show a figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli.main import main
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.data.synth.actions import FAMILIES_BY_NAME, ActionParams
from benchmark.data.synth.animator import solve_joints
from benchmark.motion.features import features_from_joints
from benchmark.render import render_gif, render_strip


@pytest.fixture(scope="module")
def joints() -> np.ndarray:
    return solve_joints(
        FAMILIES_BY_NAME["front_kick"].animate(ActionParams(side="right", amplitude=0.8), 20.0)
    )


def _drawn(image: Image.Image) -> tuple[int, set[tuple[int, int, int]]]:
    """(pixels that are not background, colours used)."""
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    return int((pixels != 255).any(axis=1).sum()), {tuple(p) for p in np.unique(pixels, axis=0)}


def test_strip_png(joints: np.ndarray, tmp_path: Path) -> None:
    path = render_strip(joints, tmp_path / "kick.png", frames=6, panel_size=(100, 150))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (600, 150)
        drawn, colours = _drawn(image)
    assert drawn > 2000
    # Left limbs blue, right limbs red.
    assert (31, 119, 180) in colours and (214, 39, 40) in colours


def test_strip_with_caption_and_views(joints: np.ndarray, tmp_path: Path) -> None:
    path = render_strip(
        joints,
        tmp_path / "kick.png",
        frames=4,
        caption="a person kicks with the right leg.",
        views=("side", "front"),
        panel_size=(100, 150),
    )
    with Image.open(path) as image:
        assert image.width == 400 and image.height > 300  # a caption band above two rows


def test_gif_has_every_frame(joints: np.ndarray, tmp_path: Path) -> None:
    path = render_gif(joints[:30], tmp_path / "kick.gif", fps=20, size=(120, 160))
    with Image.open(path) as image:
        assert image.format == "GIF" and image.size == (120, 160)
        assert image.n_frames == 30
        assert image.info["duration"] == 50
        image.seek(15)
        drawn, _ = _drawn(image)
    assert drawn > 300


def test_features_are_accepted(joints: np.ndarray, tmp_path: Path) -> None:
    features = features_from_joints(joints)
    path = render_strip(features, tmp_path / "from_features.png", frames=3, panel_size=(80, 120))
    with Image.open(path) as image:
        assert image.size == (240, 120)
    with pytest.raises(ValueError, match="expected joints"):
        render_strip(np.zeros((10, 5)), tmp_path / "bad.png")


def test_cli_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    generate_dataset(data, SynthConfig(motions=2, seed=0, write_joints=False))
    out = tmp_path / "m.gif"
    assert main(["render", "--data", str(data), "--id", "M000001", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.n_frames == len(np.load(data / "new_joint_vecs" / "M000001.npy"))
    np.save(tmp_path / "f.npy", np.load(data / "new_joint_vecs" / "000000.npy"))
    assert main(["render", "--features", str(tmp_path / "f.npy"), "--out", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").exists()
    assert main(["render", "--data", str(data), "--id", "000000", "--out", str(tmp_path / "x.bmp")]) == 2
    assert main(["render", "--data", str(data), "--id", "999999", "--out", str(tmp_path / "y.png")]) == 2
    assert "wrote" in capsys.readouterr().out
