"""HumanML3D caption lines: `caption#tok1/POS tok2/POS ...#start#end`.

`start`/`end` are seconds; `0.0#0.0` means the whole clip, otherwise the caption describes
`motion[int(start*fps):int(end*fps)]`. NaN times count as 0. Tokens are spaCy words (NOUN/VERB lemmatised)
with their coarse part-of-speech tag.

    >>> c = parse_caption_line("a man kicks.#a/DET man/NOUN kick/VERB#0.0#0.0")
    >>> c.words, c.is_whole_clip
    (('a', 'man', 'kick'), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import DataFormatError


@dataclass(frozen=True)
class Token:
    word: str
    """The word as written in the token field (lemmatised for NOUN and VERB in HumanML3D)."""
    pos: str
    """Coarse part-of-speech tag (spaCy's universal tags: NOUN, VERB, ADJ, ADP, DET, ...)."""


@dataclass(frozen=True)
class Caption:
    text: str
    """The caption as a person wrote it."""
    tokens: tuple[Token, ...]
    """Its word/POS tokens."""
    start: float = 0.0
    """Start of the described segment, in seconds (0 with end 0: the whole clip)."""
    end: float = 0.0
    """End of the described segment, in seconds."""

    @property
    def is_whole_clip(self) -> bool:
        return self.start == 0.0 and self.end == 0.0

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(token.word for token in self.tokens)

    def frame_range(self, fps: float, num_frames: int) -> tuple[int, int]:
        """The frames `[first, last)` this caption describes in a clip of `num_frames` frames."""
        if self.is_whole_clip:
            return 0, num_frames
        return int(self.start * fps), min(int(self.end * fps), num_frames)

    def to_line(self) -> str:
        tokens = " ".join(f"{t.word}/{t.pos}" for t in self.tokens)
        return f"{self.text}#{tokens}#{self.start}#{self.end}"


def _parse_time(field: str, path: Path | str, line_number: int | None) -> float:
    try:
        value = float(field)
    except ValueError:
        raise DataFormatError(path, f"time {field!r} is not a number", line_number) from None
    return 0.0 if math.isnan(value) else value


def parse_caption_line(line: str, path: Path | str = "<string>", line_number: int | None = None) -> Caption:
    """Parse one caption line; a malformed line raises DataFormatError naming the file and line."""
    fields = line.rstrip("\n").split("#")
    if len(fields) != 4:
        raise DataFormatError(
            path,
            f"expected 4 '#'-separated fields (caption#tokens#start#end), found {len(fields)}",
            line_number,
        )
    text, token_field, start, end = fields
    if not text.strip():
        raise DataFormatError(path, "empty caption", line_number)
    tokens = []
    for item in token_field.split():
        word, slash, pos = item.rpartition("/")
        if not slash or not word or not pos:
            raise DataFormatError(path, f"token {item!r} is not of the form word/POS", line_number)
        tokens.append(Token(word, pos))
    return Caption(
        text, tuple(tokens), _parse_time(start, path, line_number), _parse_time(end, path, line_number)
    )


def read_captions(path: Path | str) -> list[Caption]:
    """All caption lines of a `texts/<id>.txt` file (blank lines ignored). An empty file is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataFormatError(path, "caption file is missing") from None
    captions = [
        parse_caption_line(line, path, number) for number, line in enumerate(lines, 1) if line.strip()
    ]
    if not captions:
        raise DataFormatError(path, "caption file holds no caption")
    return captions


def write_captions(path: Path | str, captions: list[Caption]) -> None:
    Path(path).write_text("".join(caption.to_line() + "\n" for caption in captions), encoding="utf-8")
