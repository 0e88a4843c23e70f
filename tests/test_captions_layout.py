"""Caption lines and split files: parsing, round trips, and errors that name the file and line."""

from __future__ import annotations

import math

import pytest

from benchmark.data.captions import Caption, Token, parse_caption_line, read_captions, write_captions
from benchmark.data.layout import read_split_ids, write_split_ids
from benchmark.errors import DataFormatError


def test_parses_a_humanml3d_line_with_segment_times() -> None:
    caption = parse_caption_line("a man kicks with his left leg.#a/DET man/NOUN kick/VERB with/ADP#1.5#4.0")
    assert caption.text == "a man kicks with his left leg."
    assert caption.tokens[2] == Token("kick", "VERB")
    assert (caption.start, caption.end) == (1.5, 4.0)
    assert not caption.is_whole_clip
    assert caption.frame_range(fps=20, num_frames=200) == (30, 80)


def test_nan_times_mean_the_whole_clip() -> None:
    caption = parse_caption_line("a person walks.#a/DET person/NOUN walk/VERB#nan#nan")
    assert caption.is_whole_clip
    assert caption.frame_range(fps=20, num_frames=57) == (0, 57)


def test_segment_end_is_clipped_to_the_motion() -> None:
    caption = Caption("x", (), start=1.0, end=20.0)
    assert caption.frame_range(fps=20, num_frames=100) == (20, 100)


def test_round_trip_through_a_file(tmp_path) -> None:
    captions = [
        Caption("a person jumps.", (Token("a", "DET"), Token("person", "NOUN"), Token("jump", "VERB"))),
        Caption("someone hops twice", (Token("someone", "PRON"),), start=0.5, end=2.0),
    ]
    path = tmp_path / "000001.txt"
    write_captions(path, captions)
    assert read_captions(path) == captions


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a man walks#a/DET man/NOUN#0.0", "expected 4 '#'-separated fields"),
        ("a man walks#a/DET man#0.0#0.0", "token 'man' is not of the form word/POS"),
        ("a man walks#a/DET#zero#0.0", "time 'zero' is not a number"),
        ("  #a/DET#0.0#0.0", "empty caption"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line: str, expected: str) -> None:
    path = tmp_path / "000002.txt"
    path.write_text("a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0\n" + line + "\n")
    with pytest.raises(DataFormatError) as info:
        read_captions(path)
    assert f"{path}:2: " in str(info.value)
    assert expected in str(info.value)


def test_missing_and_empty_caption_files_are_errors(tmp_path) -> None:
    with pytest.raises(DataFormatError, match="caption file is missing"):
        read_captions(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataFormatError, match="holds no caption"):
        read_captions(empty)


def test_real_split_files_have_the_published_sizes(reference_dir) -> None:
    sizes = {name: len(read_split_ids(reference_dir / f"{name}.txt")) for name in ("train", "val", "test")}
    assert sizes == {"train": 23384, "val": 1460, "test": 4384}
    test_ids = read_split_ids(reference_dir / "test.txt")
    mirrored = [i for i in test_ids if i.startswith("M")]
    assert len(mirrored) * 2 == len(test_ids)
    assert math.isclose(len(read_split_ids(reference_dir / "all.txt")), 29228)


def test_split_round_trip_and_duplicates(tmp_path) -> None:
    path = tmp_path / "test.txt"
    write_split_ids(path, ["000001", "M000001"])
    assert read_split_ids(path) == ["000001", "M000001"]
    path.write_text("000001\n\n000002\n000001\n")
    with pytest.raises(DataFormatError, match=r"test.txt:4: id '000001' repeats line 1"):
        read_split_ids(path)
