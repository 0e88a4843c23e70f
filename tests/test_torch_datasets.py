"""PyTorch datasets: MoMask's item rules (segments, lengths, crops, filters), seeding, windows, evaluation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from benchmark.data.captions import Caption, Token
from benchmark.data.humanml3d import DatasetMetadata, DatasetWriter, HumanML3DFolder
from benchmark.data.torch_datasets import (
    EvaluationMotionDataset,
    MotionWindowDataset,
    TrainingMotionDataset,
    collate_evaluation,
)

WALK = Caption("a person walks.", (Token("person", "NOUN"), Token("walk", "VERB")))
RUN = Caption("someone runs.", (Token("someone", "PRON"), Token("run", "VERB")))
KICK = Caption("then kicks.", (Token("then", "ADV"), Token("kick", "VERB")), 1.0, 3.5)  # frames 20..70
BLINK = Caption("a short wave.", (Token("wave", "NOUN"),), 0.0, 1.0)  # frames 0..20: too short
SEGMENT = Caption("sits down.", (Token("sit", "VERB"),), 0.5, 2.5)  # frames 10..50

MEAN = np.full(263, 0.5, np.float32)
STD = np.full(263, 2.0, np.float32)
LOGGER = "benchmark.data.torch_datasets"


def _motion(frames: int, number: int) -> np.ndarray:
    """Every value of frame t is number * 1000 + t, so a crop shows which frames it took."""
    return np.repeat((number * 1000 + np.arange(frames, dtype=np.float32))[:, None], 263, axis=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> HumanML3DFolder:
    writer = DatasetWriter(tmp_path_factory.mktemp("data") / "tiny", DatasetMetadata(name="tiny", fps=20.0))
    writer.add("long", _motion(150, 1), [WALK, RUN, KICK, BLINK])
    writer.add("short", _motion(30, 2), [WALK])
    writer.add("huge", _motion(250, 3), [RUN])
    writer.add("segonly", _motion(60, 4), [SEGMENT])
    return writer.finish()


IDS = ["long", "short", "huge", "segonly"]


def _frames(motion: torch.Tensor, length: int) -> np.ndarray:
    """The frame indices (value mod 1000) of a normalised, padded motion, checking the padding is zero."""
    assert torch.all(motion[length:] == 0)
    raw = motion[:length].numpy() * STD + MEAN
    assert np.allclose(raw, raw[:, :1])
    return np.round(raw[:, 0]).astype(int) % 1000


def test_training_items_follow_momask_rules(
    folder: HumanML3DFolder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dataset = TrainingMotionDataset(folder, IDS, MEAN, STD, seed=1)
    # long (whole), long's kick segment, segonly's segment; short and huge dropped, the 20-frame wave too.
    assert len(dataset) == 3
    assert "dropped 2 motions and 1 caption segments" in caplog.text

    seen_texts: set[str] = set()
    lengths: dict[str, set[int]] = {"long": set(), "kick": set(), "sit": set()}
    for epoch in range(60):
        dataset.set_epoch(epoch)
        for index in range(3):
            text, motion, length = dataset[index]
            assert motion.shape == (196, 263) and motion.dtype == torch.float32
            assert length % 4 == 0
            frames = _frames(motion, length)
            np.testing.assert_array_equal(np.diff(frames), 1)  # one contiguous crop
            seen_texts.add(text)
            if index == 0:
                assert text in (WALK.text, RUN.text) and 0 <= frames[0] and frames[-1] < 150
                lengths["long"].add(length)
            elif index == 1:
                assert text == KICK.text and 20 <= frames[0] and frames[-1] < 70  # inside its segment
                lengths["kick"].add(length)
            else:
                assert text == SEGMENT.text and 10 <= frames[0] and frames[-1] < 50
                lengths["sit"].add(length)
    assert seen_texts == {WALK.text, RUN.text, KICK.text, SEGMENT.text}
    # 150 frames round to 148 or one unit less; the 50-frame segment to 48 or 44, the 40-frame to 40 or 36.
    assert lengths == {"long": {148, 144}, "kick": {48, 44}, "sit": {40, 36}}


def test_one_unit_less_is_drawn_a_third_of_the_time(folder: HumanML3DFolder) -> None:
    dataset = TrainingMotionDataset(folder, ["long"], MEAN, STD, seed=0)
    shorter = 0
    for epoch in range(600):
        dataset.set_epoch(epoch)
        shorter += dataset[0].length == 144
    assert 0.28 < shorter / 600 < 0.39


def test_a_seed_gives_the_same_items(folder: HumanML3DFolder) -> None:
    def draws(seed: int, epoch: int) -> list[tuple[str, int, float]]:
        dataset = TrainingMotionDataset(folder, IDS, MEAN, STD, seed=seed)
        dataset.set_epoch(epoch)
        return [(item.text, item.length, float(item.motion[0, 0])) for item in (dataset[i] for i in range(3))]

    assert draws(7, 0) == draws(7, 0)
    assert draws(7, 0) != draws(7, 1)
    assert [draws(7, 0)] * 3 != [draws(seed, 0) for seed in (8, 9, 10)]


def test_long_motions_are_kept_and_cropped_when_asked(folder: HumanML3DFolder) -> None:
    dataset = TrainingMotionDataset(folder, ["huge"], MEAN, STD, max_source_length=None)
    starts = set()
    for epoch in range(20):
        dataset.set_epoch(epoch)
        text, motion, length = dataset[0]
        assert length in (196, 192)
        starts.add(int(_frames(motion, length)[0]))
    assert len(starts) > 5 and max(starts) <= 250 - 192


def test_bad_arguments(folder: HumanML3DFolder) -> None:
    with pytest.raises(ValueError, match="shape"):
        TrainingMotionDataset(folder, IDS, MEAN[:10], STD)
    with pytest.raises(ValueError, match="std finite and > 0"):
        TrainingMotionDataset(folder, IDS, MEAN, np.zeros(263))
    with pytest.raises(ValueError, match="multiple of unit_length"):
        TrainingMotionDataset(folder, IDS, MEAN, STD, max_motion_length=198)
    with pytest.raises(ValueError, match="min_motion_length"):
        TrainingMotionDataset(folder, IDS, MEAN, STD, min_motion_length=4)
    with pytest.raises(ValueError, match="both mean and std"):
        EvaluationMotionDataset(folder, IDS, MEAN)


def test_windows_cover_every_offset(folder: HumanML3DFolder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dataset = MotionWindowDataset(folder, IDS, MEAN, STD, window_size=64)
    assert "dropped 2 shorter than a 64-frame window" in caplog.text  # short (30) and segonly (60)
    assert len(dataset) == (150 - 64 + 1) + (250 - 64 + 1)
    first, last_of_long, first_of_huge, last = dataset[0], dataset[86], dataset[87], dataset[len(dataset) - 1]
    assert first.shape == (64, 263)
    assert _frames(first, 64)[0] == 0 and _frames(last_of_long, 64)[-1] == 149
    assert _frames(first_of_huge, 64)[0] == 0 and _frames(last, 64)[-1] == 249
    assert float(first_of_huge[0, 0]) * 2.0 + 0.5 == pytest.approx(3000.0)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_evaluation_items_are_caption_lines_in_order(folder: HumanML3DFolder) -> None:
    dataset = EvaluationMotionDataset(folder, IDS, MEAN, STD)
    keys = [
        (item.motion_id, item.caption_index, item.length)
        for item in (dataset[i] for i in range(len(dataset)))
    ]
    # long: walk, run (whole clip, 150 -> 148 frames), kick (segment, 50 -> 48); the wave is too short.
    assert keys == [("long", 0, 148), ("long", 1, 148), ("long", 2, 48), ("segonly", 0, 40)]
    kick = dataset[2]
    assert kick.caption == KICK and kick.caption.words == ("then", "kick")
    np.testing.assert_array_equal(_frames(kick.motion, 48), np.arange(20, 68))  # from the segment's start
    assert [dataset[0].motion.tolist()] == [
        EvaluationMotionDataset(folder, IDS, MEAN, STD)[0].motion.tolist()
    ]

    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_evaluation)))
    assert batch.motions.shape == (3, 196, 263)
    assert batch.lengths.tolist() == [148, 148, 48] and batch.lengths.dtype == torch.int64
    assert batch.motion_ids == ["long", "long", "long"] and batch.captions == [WALK, RUN, KICK]
    assert batch.caption_indices == [0, 1, 2]


def test_evaluation_without_normalisation_returns_stored_features(folder: HumanML3DFolder) -> None:
    item = EvaluationMotionDataset(folder, ["segonly"])[0]
    np.testing.assert_array_equal(item.motion[:40].numpy(), folder.features("segonly")[10:50])


def test_training_batches_collate_with_real_statistics(folder: HumanML3DFolder, reference_dir: Path) -> None:
    mean, std = np.load(reference_dir / "Mean.npy"), np.load(reference_dir / "Std.npy")
    dataset = TrainingMotionDataset(folder, IDS, mean, std, seed=3)
    text, motion, length = next(iter(DataLoader(dataset, batch_size=3)))
    assert len(text) == 3 and motion.shape == (3, 196, 263) and length.shape == (3,)
    raw = motion[0, : int(length[0])].numpy().astype(np.float64) * std + mean  # item 0 is "long"
    np.testing.assert_allclose(np.diff(raw[:, 100]), 1.0, atol=1e-3)
    assert 999.9 < raw[0, 100] and raw[-1, 100] < 1149.1
