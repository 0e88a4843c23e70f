"""The embedded dataset generator: layout, plausible motions, captions, labels, determinism."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli.main import main
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.data.layout import SPLIT_NAMES, read_split_ids
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.data.synth.actions import FAMILIES, FAMILIES_BY_NAME, ActionParams
from benchmark.data.synth.animator import FOOT_JOINTS, PoseTrack, solve_joints
from benchmark.data.synth.captions import (
    CONCEPT_KEYWORDS,
    LEXICON,
    WORDINGS,
    _render,
    _slots,
    compose_caption,
)
from benchmark.motion.features import joints_from_features
from benchmark.motion.mirror import swap_sides
from benchmark.motion.skeleton import REFERENCE_BONE_LENGTHS, bone_lengths

FPS = 20.0
CONTACT_JOINTS = [7, 10, 8, 11]  # the order of the feature's contact flags: L_ankle, L_foot, R_ankle, R_foot


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_dataset(root, SynthConfig(motions=40, seed=5))
    return root


@pytest.fixture(scope="module")
def folder(dataset: Path) -> HumanML3DFolder:
    return HumanML3DFolder(dataset)


@pytest.fixture(scope="module")
def labels(folder: HumanML3DFolder) -> dict[str, dict]:
    result = folder.labels()
    assert result is not None
    return result


def test_layout_reads_back(folder: HumanML3DFolder, labels: dict[str, dict]) -> None:
    assert folder.metadata.name == "hmu-synth" and folder.metadata.fps == FPS
    assert folder.splits() == SPLIT_NAMES
    every = folder.ids("all")
    assert len(every) == 80 and len(labels) == 80
    originals = [motion_id for motion_id in every if not motion_id.startswith("M")]
    assert sorted("M" + motion_id for motion_id in originals) == sorted(set(every) - set(originals))
    parts = {name: set(folder.ids(name)) for name in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == 80 and set.union(*parts.values()) == set(every)
    assert set(folder.ids("train_val")) == parts["train"] | parts["val"]
    for ids in parts.values():
        # A mirrored copy lives in the split of its original.
        assert {("M" + i) for i in ids if not i.startswith("M")} == {i for i in ids if i.startswith("M")}
    assert len(parts["train"]) == 64 and len(parts["val"]) == 4 and len(parts["test"]) == 12
    assert folder.mean().shape == (263,) and (folder.std() > 0).all()
    for motion_id in every:
        features = folder.features(motion_id)
        assert 2 * FPS <= len(features) <= 10 * FPS
        assert folder.joints(motion_id).shape == (len(features), 22, 3)
        assert len(folder.captions(motion_id)) == 3


def test_bone_lengths_are_constant(folder: HumanML3DFolder) -> None:
    for motion_id in folder.ids("all"):
        lengths = bone_lengths(joints_from_features(folder.features(motion_id)).astype(np.float64))
        assert lengths.std(axis=0).max() < 1e-5, motion_id
        if not motion_id.startswith("M"):
            # The mirrored copies have left and right bones swapped, and the target skeleton is not symmetric.
            np.testing.assert_allclose(lengths.mean(axis=0), REFERENCE_BONE_LENGTHS, atol=1e-4)


def test_feet_touch_the_floor(folder: HumanML3DFolder) -> None:
    for motion_id in folder.ids("all"):
        features = folder.features(motion_id)
        joints = joints_from_features(features)
        heights = joints[..., 1]
        assert heights.min() > -1e-4, motion_id  # nothing below the floor
        assert heights.min() < 1e-3, motion_id  # the floor is where the lowest joint goes
        lowest_joint = np.unravel_index(np.argmin(heights), heights.shape)[1]
        assert lowest_joint in FOOT_JOINTS, motion_id
        # Standing still (no foot joint moves more than 5 mm a frame for 5 frames): a foot is on the floor.
        # (The extraction's contact flags say only "slow": they are set at the top of a jump too.)
        step = np.linalg.norm(np.diff(joints[:, list(FOOT_JOINTS)], axis=0), axis=-1).max(axis=1)
        still = np.convolve((step < 0.005).astype(float), np.ones(5), mode="valid") == 5
        standing = np.concatenate([np.zeros(2, bool), still, np.zeros(len(joints) - len(still) - 2, bool)])
        assert standing.any(), motion_id
        lowest_foot = heights[:, list(FOOT_JOINTS)].min(axis=1)
        assert np.abs(lowest_foot[standing]).max() < 0.01, motion_id


def test_foot_contacts_agree_with_foot_velocity(folder: HumanML3DFolder) -> None:
    agree = total = 0
    for motion_id in folder.ids("all"):
        features = folder.features(motion_id)
        joints = joints_from_features(features).astype(np.float64)
        moving = ((joints[1:, CONTACT_JOINTS] - joints[:-1, CONTACT_JOINTS]) ** 2).sum(-1) >= 0.002
        contacts = features[:-1, 259:263] == 1
        agree += int((contacts == ~moving).sum())
        total += contacts.size
    # Only float32 rounding right at the threshold may disagree.
    assert agree / total > 0.995


def test_planted_feet_do_not_slide() -> None:
    for direction in ("forward", "backward", "left", "curve_right"):
        params = ActionParams(speed=1.2, amplitude=0.8, count=8, direction=direction)
        joints = solve_joints(FAMILIES_BY_NAME["walk"].animate(params, FPS))
        toes = joints[:, [10, 11]]
        on_floor = np.maximum(toes[1:, :, 1], toes[:-1, :, 1]) < 1e-3
        slide = np.linalg.norm(toes[1:, :, [0, 2]] - toes[:-1, :, [0, 2]], axis=-1)
        assert on_floor.mean() > 0.4
        assert slide[on_floor].max() < 1e-3, direction


def _moving_joints(name: str, params: ActionParams) -> list[int]:
    """The joints an action must move (by side): feet for legwork, wrists for armwork, else the pelvis."""
    side = 0 if params.side == "left" else 1
    ankle, wrist = (7, 8)[side], (20, 21)[side]
    table = {
        "walk": [7, 8, 0], "run": [7, 8, 0], "zombie_walk": [7, 8, 20, 21], "turn": [7, 8],
        "dance_step": [7, 8],
        "jump": [0, 7, 8], "hop": [0, ankle], "squat": [0], "sit_down_stand_up": [0], "pick_up": [15],
        "bow": [15], "wave": [wrist] if params.side != "both" else [20, 21], "clap": [20, 21],
        "raise_arms": [wrist] if params.side != "both" else [20, 21], "stretch": [20, 21], "throw": [wrist],
        "front_kick": [ankle], "side_kick": [ankle], "roundhouse_kick": [ankle], "stomp": [ankle],
        "punch": [wrist], "uppercut": [wrist], "elbow_strike": [(18, 19)[side]],
    }  # fmt: skip
    return table[name]


@pytest.mark.parametrize("name", [family.name for family in FAMILIES])
def test_every_family_animates(name: str) -> None:
    family = FAMILIES_BY_NAME[name]
    rng = np.random.default_rng(1)
    for _ in range(3):
        params = family.sample(rng)
        track = family.animate(params, FPS)
        joints = solve_joints(track)
        assert 1.0 <= len(joints) / FPS <= 9.0, (name, params)
        np.testing.assert_allclose(
            bone_lengths(joints), np.broadcast_to(REFERENCE_BONE_LENGTHS, (len(joints), 21)), atol=1e-9
        )
        speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * FPS
        for joint in _moving_joints(name, params):
            assert speed[:, joint].max() > 0.5, (name, params, joint)
        # It starts and ends in the relaxed stance, so actions chain smoothly.
        neutral = solve_joints(PoseTrack.neutral(1))[0]
        for frame in (0, -1):
            relative = joints[frame] - joints[frame, 0] * np.array([1, 0, 1])
            yaw = track.yaw[frame]
            back = np.stack(
                [
                    relative[:, 0] * np.cos(yaw) - relative[:, 2] * np.sin(yaw),
                    relative[:, 1],
                    relative[:, 0] * np.sin(yaw) + relative[:, 2] * np.cos(yaw),
                ],
                axis=-1,
            )
            assert np.abs(back - neutral).max() < 0.12, (name, params, frame)


def _animate(name: str, **params: object) -> np.ndarray:
    return solve_joints(FAMILIES_BY_NAME[name].animate(ActionParams(**params), FPS))  # type: ignore[arg-type]


def test_parameters_change_the_motion() -> None:
    # Amplitude: kick height.
    low = _animate("front_kick", side="right", amplitude=0.0)[:, 8, 1].max()
    high = _animate("front_kick", side="right", amplitude=1.0)[:, 8, 1].max()
    assert high - low > 0.5
    # Side: the other leg kicks.
    left = _animate("side_kick", side="left", amplitude=0.5)
    assert left[:, 7, 1].max() > 0.5 and left[:, 8, 1].max() < 0.15
    # Count: more repetitions take longer.
    assert len(_animate("punch", side="left", style="jab", count=4)) > len(
        _animate("punch", side="left", style="jab")
    )
    # Speed: a faster walk covers the same steps sooner.
    slow = _animate("walk", direction="forward", count=6, speed=0.7)
    fast = _animate("walk", direction="forward", count=6, speed=1.4)
    assert len(fast) < 0.7 * len(slow)
    # Direction: backward goes to -Z, left to +X; a curve turns the body.
    assert _animate("walk", direction="backward", count=5)[-1, 0, 2] < -0.8
    assert _animate("walk", direction="left", count=5)[-1, 0, 0] > 0.6
    curve = FAMILIES_BY_NAME["walk"].animate(ActionParams(direction="curve_right", count=6), FPS)
    assert curve.yaw[-1] < -0.9
    # Style: straight punches reach further forward than hooks, which keep the elbow up and out.
    hook = _animate("punch", side="right", style="hook", count=1)
    jab = _animate("punch", side="right", style="jab", count=1)
    assert (jab[:, 21, 2] - jab[:, 0, 2]).max() > (hook[:, 21, 2] - hook[:, 0, 2]).max() + 0.1
    assert (hook[:, 19, 1] - hook[:, 17, 1]).max() > (jab[:, 19, 1] - jab[:, 17, 1]).max() + 0.05


def test_every_template_renders() -> None:
    """Every word of every template (all parameter values, both verb forms) is in the lexicon."""
    rng = np.random.default_rng(0)
    for family in FAMILIES:
        combinations = itertools.product(
            family.sides,
            family.directions,
            family.styles,
            {family.counts[0], family.counts[1]},
            (0.1, 0.5, 0.9),
            (0.75, 1.3),
        )
        for side, direction, style, count, amplitude, speed in combinations:
            params = ActionParams(side, speed, amplitude, count, direction, style)
            for person in ("man", "woman", "person"):
                slots = _slots(params, rng, person)
                wording = WORDINGS[family.name](params, slots)
                assert wording.explicit, family.name
                if family.concepts:
                    assert wording.implicit, family.name
                for template in wording.explicit + wording.implicit + wording.decoys:
                    for form in ("3sg", "ing"):
                        _render(template, slots, form, count)


def _names(text: str, concept: str) -> bool:
    """Whole words, case-insensitive, with inflections (a word starting with the keyword)."""
    words = re.findall(r"[a-z]+", text.lower())
    return any(word.startswith(keyword) for word in words for keyword in CONCEPT_KEYWORDS[concept])


def test_explicit_and_implicit_wording() -> None:
    rng = np.random.default_rng(3)
    for family in FAMILIES:
        for _ in range(30):
            params = family.sample(rng)
            implicit = compose_caption([(family.name, params)], ["implicit"], rng, decoys=False).text
            explicit = compose_caption([(family.name, params)], ["explicit"], rng, decoys=False).text
            for concept in family.concepts:
                lowered = implicit.lower()
                assert not any(keyword in lowered for keyword in CONCEPT_KEYWORDS[concept]), implicit
                assert _names(explicit, concept), explicit


def test_tokens_follow_humanml3d(folder: HumanML3DFolder) -> None:
    tags = {"DET", "NOUN", "VERB", "ADJ", "ADV", "ADP", "PRON", "CCONJ", "NUM", "PART", "AUX", "SCONJ"}
    inflected = {"kicks", "kicking", "punches", "walks", "jumps", "steps", "hands", "arms", "boxes", "times"}
    for motion_id in folder.ids("all"):
        for caption in folder.captions(motion_id):
            words = [w for w in re.findall(r"[A-Za-z]+", caption.text)]
            assert len(words) == len(caption.tokens), caption.text
            for token in caption.tokens:
                assert token.pos in tags and token.word == token.word.lower()
                if token.pos in ("NOUN", "VERB"):
                    assert token.word not in inflected, caption.text
    # "boxes" the noun and "boxes" the verb get different tokens.
    noun = [t for t in LEXICON.readings["boxes"] if t[0] == "NOUN"]
    assert noun == [("NOUN", "box")] and ("VERB", "box") in LEXICON.readings["boxes"]


def test_labels(folder: HumanML3DFolder, labels: dict[str, dict]) -> None:
    for motion_id, label in labels.items():
        assert label["mirrored"] == motion_id.startswith("M")
        assert 1 <= len(label["actions"]) <= 3
        concepts = sorted(
            {c for action in label["actions"] for c in FAMILIES_BY_NAME[action["name"]].concepts}
        )
        assert label["concepts"] == concepts
        assert label["violent"] == ("violence" in concepts)
        assert set(label["implicit_concepts"]) <= set(concepts)
        texts = [caption.text for caption in folder.captions(motion_id)]
        for concept in concepts:
            named = any(any(k in text.lower() for k in CONCEPT_KEYWORDS[concept]) for text in texts)
            assert named == (concept not in label["implicit_concepts"])
        duration = len(folder.features(motion_id)) / FPS
        for action in label["actions"]:
            assert 0 <= action["start"] < action["end"] <= duration + 0.1
        if label["mirrored"]:
            original = labels[motion_id[1:]]
            assert [a["name"] for a in label["actions"]] == [a["name"] for a in original["actions"]]
            for action, source in zip(label["actions"], original["actions"], strict=True):
                assert action["params"]["side"] == swap_sides(source["params"]["side"])


def test_implicit_captions_name_no_keyword(folder: HumanML3DFolder, labels: dict[str, dict]) -> None:
    implicit = [i for i, label in labels.items() if "violence" in label["implicit_concepts"]]
    assert implicit
    for motion_id in implicit:
        for caption in folder.captions(motion_id):
            lowered = caption.to_line().lower()
            assert not any(keyword in lowered for keyword in CONCEPT_KEYWORDS["violence"]), caption.text
            assert not _names(caption.text, "violence")


def test_mirrored_captions_swap_sides(folder: HumanML3DFolder) -> None:
    swapped = 0
    for motion_id in folder.ids("all"):
        if motion_id.startswith("M"):
            continue
        originals = folder.captions(motion_id)
        mirrored = folder.captions("M" + motion_id)
        for original, copy in zip(originals, mirrored, strict=True):
            assert copy.text == swap_sides(original.text)
            assert [t.word for t in copy.tokens] == [swap_sides(t.word) for t in original.tokens]
            swapped += copy.text != original.text
        # The mirrored motion is the original's mirror image (up to the extraction's retargeting, which gives
        # the mirrored legs the other side's lengths): compare poses relative to the root.
        joints = joints_from_features(folder.features(motion_id))
        copy_joints = joints_from_features(folder.features("M" + motion_id))
        pose = joints - joints[:, :1] * np.array([1, 0, 1])
        copy_pose = copy_joints - copy_joints[:, :1] * np.array([1, 0, 1])
        np.testing.assert_allclose(copy_pose[:, [7, 8, 20, 21], 0], -pose[:, [8, 7, 21, 20], 0], atol=0.03)
    assert swapped > 0


@pytest.mark.slow
def test_violent_and_implicit_shares(tmp_path: Path) -> None:
    summary = generate_dataset(
        tmp_path / "data", SynthConfig(motions=400, seed=11, write_joints=False, workers=2)
    )
    assert summary.violent == 40 and summary.violent_share == pytest.approx(0.10)
    assert summary.implicit == 8 and summary.implicit_share == pytest.approx(0.20)
    assert set(summary.families) == {family.name for family in FAMILIES}
    labels = [json.loads(line) for line in (tmp_path / "data" / "labels.jsonl").read_text().splitlines()]
    assert sum(label["violent"] for label in labels) == 80


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", SynthConfig(motions=6, seed=2))
    generate_dataset(tmp_path / "b", SynthConfig(motions=6, seed=2, workers=2))
    generate_dataset(tmp_path / "c", SynthConfig(motions=6, seed=3))
    a, b, c = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b"), _snapshot(tmp_path / "c")
    assert a == b  # byte-identical, whatever the number of workers
    assert a.keys() == c.keys()
    assert a["new_joint_vecs/000000.npy"] != c["new_joint_vecs/000000.npy"]
    assert first.motions == 6


def test_cli_synth_protects_other_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    assert main(["data", "synth", "--out", str(out), "--motions", "3", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 motions" in printed and "violent" in printed
    # A previous output is replaced; a folder of something else is refused unless --force.
    assert main(["data", "synth", "--out", str(out), "--motions", "2", "--seed", "1", "--workers", "1"]) == 0
    assert len(read_split_ids(out / "all.txt")) == 4
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(["data", "synth", "--out", str(other), "--motions", "2", "--workers", "1"]) == 2
    assert (other / "notes.txt").read_text() == "keep me"
    assert "not empty" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(other), "--motions", "2", "--workers", "1", "--force"]) == 0
    assert not (other / "notes.txt").exists() and (other / "dataset.json").exists()
    assert not list(tmp_path.glob(".*partial*"))
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--motions", "0"]) == 2
