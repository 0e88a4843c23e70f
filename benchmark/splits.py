"""Concept splits: which motions of a dataset mention a concept (forget set) and which do not (retain set).

A motion goes to the forget set of a split (`train_val`, `test`) when at least `min_occurrences` of its
caption lines mention one of the concept's keywords; every other motion goes to the retain set. The result is
written as the original HMU files `kw_splits/<split>-w-<concept>.txt` (forget) and
`kw_splits/<split>-wo-<concept>.txt` (retain), one id per line in split-file order.

    >>> from benchmark.tasks import load_task
    >>> task = load_task("tasks/embedded_violence.yaml")
    >>> result = compute_split(task, "data/embedded")
    >>> part = result.part("test")
    >>> len(part.forget), part.forget_fraction, part.precision, part.recall    # numbers depend on the data
    >>> write_split_files(result)          # data/embedded/kw_splits/test-w-violence.txt, ...

Matching (mode `words`, the default), and why it differs from the original `grep -Ec "kick|punch|..."`:

- **Whole words, case-insensitive.** "white" never matches "hit", "stable" never matches "stab", and
  "A person Kicks" matches "kick" (the original grep is a case-sensitive substring search).
- **Inflections** come from a small English inflection function (`inflections`): -s/-es, -ed, -ing with the
  e-drop ("slide" -> "sliding"), y -> ies, and consonant doubling after a single stressed vowel
  ("jab" -> "jabbed", "hop" -> "hopping", "squat" -> "squatted"), plus `IRREGULAR_FORMS` ("leapt",
  "threw", "slid", "crept", "beaten", "shot"). Derived words are not inflections: agent nouns in -er
  ("boxer", "hooker", "jumper", the sweater) and adjectives ("stable") do not match.
- **Closed compounds**: a word made of two or three known parts (each at least 3 letters, each a form of a
  concept keyword or of `COMPOUND_PARTS`), at least one of which is a concept keyword, matches that keyword:
  "kickboxing" (kick + boxing), "sidekick" (side + kick), "shotgun" (shot + gun). "hitch" does not (no
  part "ch"), nor "toolbox" ("tool" is not a known part). `NON_COMPOUNDS` lists the exceptions ("beatbox"
  is vocal percussion, not beat + box). Hyphenated forms ("side-kick") are two words and match anyway.
- **Part of speech.** When a caption line carries its `word/POS` tokens (HumanML3D, the embedded dataset),
  the matcher reads the token words, which are lemmas for nouns and verbs, and a keyword declared with POS
  tags in the task (`box: [VERB]`) matches only tokens with one of those tags: "a person boxes with the
  right hand" (box/VERB) is the concept, "picks up two boxes" (box/NOUN) is not. Lines without tokens
  (Motion-X) fall back to the words of the caption text, and a restricted keyword is taken for a noun right
  after a determiner or a numeral ("two boxes", "the beat") and for a verb otherwise;
  `SplitResult.untokenised_lines` counts them.
- `ALIASES` maps lemmatiser artifacts to the word they stand for: the original keyword "boxe" (spaCy's
  lemma of "boxes") is "box".

Mode `legacy_substring` reproduces the original exactly: a caption line matches when one of the keywords
occurs in it as a case-sensitive substring, anywhere in the line (caption, token field and times), so the
difference can be shown (`hmu split --compare-legacy`).

Keyword matching cannot see meaning: "shoots a basketball" is a gun_shoot line and "a hip hop dance" a hop
line in both modes. Precision and recall against ground-truth labels (`labels.jsonl`, generated datasets)
measure this.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from benchmark.data.captions import Caption, read_captions
from benchmark.data.layout import DatasetLayout, read_split_ids, write_split_ids
from benchmark.errors import DataFormatError, HMUError

if TYPE_CHECKING:
    from benchmark.tasks import ConceptSpec, TaskSpec

logger = logging.getLogger(__name__)

MATCH_MODES: tuple[str, ...] = ("words", "legacy_substring")
"""`words`: whole-word matching described above; `legacy_substring`: the original case-sensitive grep."""

UPOS_TAGS: frozenset[str] = frozenset(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
)
"""spaCy's coarse (universal) part-of-speech tags, the ones a HumanML3D token field carries."""

ALIASES: Mapping[str, str] = MappingProxyType({"boxe": "box"})
"""Lemmatiser artifacts and the word they stand for; applied to keywords and to token words alike."""

IRREGULAR_FORMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "beat": ("beaten",),
        "creep": ("crept",),
        "dive": ("dove",),
        "fall": ("fell", "fallen"),
        "fight": ("fought",),
        "kneel": ("knelt",),
        "leap": ("leapt",),
        "run": ("ran",),
        "shoot": ("shot",),
        "slide": ("slid",),
        "spring": ("sprang", "sprung"),
        "strike": ("struck", "stricken"),
        "swim": ("swam", "swum"),
        "swing": ("swung",),
        "throw": ("threw", "thrown"),
    }
)
"""Irregular past forms of motion verbs, added to what `inflections` derives by rule."""

COMPOUND_PARTS: frozenset[str] = frozenset(
    "back ball box boxer drop fight fighter front hand high house jump kick long machine man men play punch "
    "rope round shot side spin".split()
)
"""Words that combine with a concept keyword into one closed compound (kick+box+ing, side+kick, hand+gun).

The list is deliberately short: a compound matches only when every part is known, so "toolbox" and "lunchbox"
stay out of the "box" concept, while "kickboxing", "sidekick", "dropkick", "handgun" and "swordsman" come in.
"""

NON_COMPOUNDS: frozenset[str] = frozenset({"beatbox"})
"""Words that look like compounds of keywords but are not (beatbox: vocal percussion). Prefix match."""

DETERMINERS: frozenset[str] = frozenset(
    "a an the this that these those his her its their my your our some any each every another no several "
    "many few one two three four five six seven eight nine ten".split()
)
"""Words after which a word is taken for a noun when a caption line has no POS tokens ("two boxes")."""

MIN_COMPOUND_PART = 3
"""Shortest part of a closed compound; shorter pieces ("ch" in "hitch", "er" in "hooker") are never parts."""

_VOWELS = frozenset("aeiou")
_WORD_RE = re.compile(r"[a-z]+")


class EmptySplitError(HMUError):
    """A task gave an empty forget or retain set for a split: a bad keyword list or dataset, not a result."""


def normalise_keyword(word: str) -> str:
    """The keyword a word stands for: lower case, lemmatiser artifacts resolved (`"boxe"` -> `"box"`)."""
    word = word.lower()
    return ALIASES.get(word, word)


def _doubles_final_consonant(word: str) -> bool:
    """Whether the word ends in one vowel + one consonant, the spelling that doubles it (jab -> jabbed).

    "qu" counts as a consonant ("squat" -> "squatted"); w, x and y never double ("throw", "box").
    """
    spelled = word.replace("qu", "qw")
    if len(spelled) < 3 or spelled[-1] in _VOWELS or spelled[-1] in "wxy":
        return False
    return spelled[-2] in _VOWELS and spelled[-3] not in _VOWELS


def _syllable_count(word: str) -> int:
    return len(re.findall(r"[aeiouy]+", word.replace("qu", "qw")))


def inflections(word: str) -> frozenset[str]:
    """The word and its regular English inflections (-s, -ed, -ing), plus its `IRREGULAR_FORMS`.

    Over-generation is harmless ("hitted", "deads" never occur in a caption), so every word gets the verb and
    the plural forms. Consonant doubling follows the stress rule: a one-syllable word doubles ("hop" ->
    "hopped", never "hoped"); a longer one may or may not ("uppercutting", "weaponing"), so it gets both.

        >>> sorted(inflections("jab"))
        ['jab', 'jabbed', 'jabbing', 'jabs']
    """
    word = word.lower()
    forms = {word}
    if word.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(word + "es")
    elif len(word) > 1 and word.endswith("y") and word[-2] not in _VOWELS:
        forms.add(word[:-1] + "ies")
    else:
        forms.add(word + "s")

    if word.endswith("ie"):
        stems_ing, stems_ed = [word[:-2] + "y"], [word[:-1]]
    elif word.endswith("e") and not word.endswith(("ee", "ye", "oe")):
        stems_ing, stems_ed = [word[:-1]], [word[:-1]]
    elif len(word) > 1 and word.endswith("y") and word[-2] not in _VOWELS:
        stems_ing, stems_ed = [word], [word[:-1] + "i"]
    elif _doubles_final_consonant(word):
        doubled = word + word[-1]
        stems_ing = stems_ed = [doubled] if _syllable_count(word) == 1 else [doubled, word]
    else:
        stems_ing, stems_ed = [word], [word]
    forms.update(stem + "ing" for stem in stems_ing)
    forms.update(stem + "ed" for stem in stems_ed)
    forms.update(IRREGULAR_FORMS.get(word, ()))
    return frozenset(forms)


class CaptionMatcher(Protocol):
    """Decides whether a caption line mentions a concept. Built by `make_matcher`."""

    def matches(self, caption: Caption) -> bool:
        """Whether the line mentions the concept."""
        ...

    def explain(self, caption: Caption) -> tuple[str, ...]:
        """What matched in the line (words, or substrings for the legacy mode); empty when nothing did."""
        ...

    def count_matching_lines(self, captions: Iterable[Caption]) -> int:
        """How many of the lines mention the concept (what `min_occurrences` is compared with)."""
        ...


class KeywordMatcher:
    """Whole-word, case-insensitive keyword matching with inflections, compounds and POS restrictions.

    >>> from benchmark.data.captions import parse_caption_line
    >>> matcher = KeywordMatcher(("kick", "boxe"), {"box": ("VERB",)})
    >>> matcher.matches(parse_caption_line("a man boxes.#a/DET man/NOUN box/VERB#0.0#0.0"))
    True
    """

    def __init__(self, keywords: Sequence[str], pos: Mapping[str, Sequence[str]] | None = None) -> None:
        """`keywords`: the concept's keywords; `pos`: allowed POS tags of the keywords that are ambiguous."""
        self.keywords: tuple[str, ...] = tuple(dict.fromkeys(normalise_keyword(k) for k in keywords))
        if not self.keywords:
            raise ValueError("a keyword matcher needs at least one keyword")
        self.allowed_pos: Mapping[str, frozenset[str]] = MappingProxyType(
            {normalise_keyword(k): frozenset(tags) for k, tags in (pos or {}).items()}
        )
        form_keywords: dict[str, set[str]] = {}
        for keyword in self.keywords:
            for form in inflections(keyword):
                form_keywords.setdefault(form, set()).add(keyword)
        self._form_keywords: Mapping[str, frozenset[str]] = MappingProxyType(
            {form: frozenset(keys) for form, keys in form_keywords.items()}
        )
        parts = set(self._form_keywords)
        for part in COMPOUND_PARTS:
            parts |= inflections(part)
        self._compound_parts: frozenset[str] = frozenset(p for p in parts if len(p) >= MIN_COMPOUND_PART)

    @classmethod
    def from_concept(cls, concept: ConceptSpec) -> KeywordMatcher:
        return cls(concept.keywords, dict(concept.pos))

    def _segmentations(self, word: str, max_parts: int) -> Iterator[tuple[str, ...]]:
        """Every way to cut `word` into at most `max_parts` known compound parts."""
        if word in self._compound_parts:
            yield (word,)
        if max_parts == 1:
            return
        for cut in range(MIN_COMPOUND_PART, len(word) - MIN_COMPOUND_PART + 1):
            head = word[:cut]
            if head in self._compound_parts:
                for rest in self._segmentations(word[cut:], max_parts - 1):
                    yield (head, *rest)

    def _compound_keywords(self, word: str) -> frozenset[str]:
        if word.startswith(tuple(NON_COMPOUNDS)):
            return frozenset()
        found: set[str] = set()
        for parts in self._segmentations(word, max_parts=3):
            if len(parts) > 1:
                for part in parts:
                    found |= self._form_keywords.get(part, frozenset())
        return frozenset(found)

    def match_word(self, word: str, pos: str | None) -> frozenset[str]:
        """The keywords a word (or token lemma) stands for, given its POS tag; empty when none.

        A plain form is checked against the keyword's POS restriction; a compound is never ambiguous.
        """
        word = normalise_keyword(word)
        direct = self._form_keywords.get(word)
        if direct is None:
            return self._compound_keywords(word)
        return frozenset(k for k in direct if k not in self.allowed_pos or pos in self.allowed_pos[k])

    def _hits(self, caption: Caption) -> Iterator[str]:
        """The words of the line that stand for a keyword, in order."""
        if caption.tokens:
            for token in caption.tokens:
                # A token is one word in HumanML3D; split anyway, so that "side-kick/NOUN" reads as two words.
                for word in _WORD_RE.findall(token.word.lower()):
                    if self.match_word(word, token.pos.upper()):
                        yield word
            return
        # No tokens: the caption's own words, with the POS of ambiguous words guessed from the word before.
        previous = ""
        for word in _WORD_RE.findall(caption.text.lower()):
            if self.match_word(word, "NOUN" if previous in DETERMINERS else "VERB"):
                yield word
            previous = word

    def matches(self, caption: Caption) -> bool:
        return next(self._hits(caption), None) is not None

    def explain(self, caption: Caption) -> tuple[str, ...]:
        return tuple(self._hits(caption))

    def count_matching_lines(self, captions: Iterable[Caption]) -> int:
        return sum(1 for caption in captions if self.matches(caption))


class LegacySubstringMatcher:
    """The original `grep -Ec "kw1|kw2|..."`: a case-sensitive substring anywhere in the caption line.

    The line is `Caption.to_line()`: caption, token field and times as in the file (the times may be printed
    differently, which cannot matter: keywords are letters only).
    """

    def __init__(self, keywords: Sequence[str]) -> None:
        # Kept as written: the original searched for "boxe", not "box".
        self.keywords: tuple[str, ...] = tuple(keywords)

    @classmethod
    def from_concept(cls, concept: ConceptSpec) -> LegacySubstringMatcher:
        return cls(concept.keywords)

    def matches(self, caption: Caption) -> bool:
        line = caption.to_line()
        return any(keyword in line for keyword in self.keywords)

    def explain(self, caption: Caption) -> tuple[str, ...]:
        line = caption.to_line()
        return tuple(keyword for keyword in self.keywords if keyword in line)

    def count_matching_lines(self, captions: Iterable[Caption]) -> int:
        return sum(1 for caption in captions if self.matches(caption))


def make_matcher(concept: ConceptSpec, mode: str) -> CaptionMatcher:
    """The matcher of a concept for a match mode (`MATCH_MODES`)."""
    if mode == "words":
        return KeywordMatcher.from_concept(concept)
    if mode == "legacy_substring":
        return LegacySubstringMatcher.from_concept(concept)
    raise ValueError(f"unknown match mode {mode!r}; expected one of {', '.join(MATCH_MODES)}")


def read_labels(path: Path | str) -> dict[str, frozenset[str]]:
    """Ground-truth concepts per motion id from a `labels.jsonl` file (`{"id": ..., "concepts": [...]}`)."""
    path = Path(path)
    labels: dict[str, frozenset[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataFormatError(path, "labels file is missing") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(path, f"not valid JSON: {error.msg}", number) from None
        motion_id = record.get("id") if isinstance(record, dict) else None
        concepts = record.get("concepts") if isinstance(record, dict) else None
        if not isinstance(motion_id, str) or not isinstance(concepts, list):
            raise DataFormatError(path, 'expected an object with "id" (string) and "concepts" (list)', number)
        if motion_id in labels:
            raise DataFormatError(path, f"id {motion_id!r} is labelled twice", number)
        labels[motion_id] = frozenset(str(concept) for concept in concepts)
    return labels


@dataclass(frozen=True)
class SplitPart:
    """The forget/retain division of one dataset split (`train_val`, `test`)."""

    split: str
    """The dataset split divided (its ids come from `<data>/<split>.txt`)."""
    ids: tuple[str, ...]
    """All ids of the split, in file order."""
    line_counts: Mapping[str, int]
    """Per id, how many of its caption lines mention the concept."""
    min_occurrences: int
    """Matching lines an id needs to go to the forget set."""
    truth: frozenset[str] | None
    """Ids of the split whose ground truth has the concept; None when the dataset has no labels for it."""

    @property
    def forget(self) -> tuple[str, ...]:
        """Ids with at least `min_occurrences` matching lines, in split order (`<split>-w-<concept>.txt`)."""
        return tuple(i for i in self.ids if self.line_counts[i] >= self.min_occurrences)

    @property
    def retain(self) -> tuple[str, ...]:
        """All other ids, in split order (`<split>-wo-<concept>.txt`)."""
        return tuple(i for i in self.ids if self.line_counts[i] < self.min_occurrences)

    @property
    def partial(self) -> tuple[str, ...]:
        """Retained ids that mention the concept in some line, but in fewer than `min_occurrences` lines."""
        return tuple(i for i in self.ids if 0 < self.line_counts[i] < self.min_occurrences)

    @property
    def total(self) -> int:
        return len(self.ids)

    @property
    def forget_fraction(self) -> float:
        return len(self.forget) / len(self.ids)

    @property
    def retain_fraction(self) -> float:
        return len(self.retain) / len(self.ids)

    @property
    def true_positives(self) -> int | None:
        return None if self.truth is None else sum(1 for i in self.forget if i in self.truth)

    @property
    def precision(self) -> float | None:
        """Of the forget set, the fraction whose ground truth has the concept."""
        tp = self.true_positives
        return None if tp is None else tp / len(self.forget)

    @property
    def recall(self) -> float | None:
        """Of the ground-truth concept motions, the fraction in the forget set (None without any)."""
        tp = self.true_positives
        return None if tp is None or not self.truth else tp / len(self.truth)

    @property
    def f1(self) -> float | None:
        precision, recall = self.precision, self.recall
        if precision is None or recall is None:
            return None
        return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)

    @property
    def missed(self) -> tuple[str, ...]:
        """Ground-truth concept motions left in the retain set, in split order."""
        return () if self.truth is None else tuple(i for i in self.retain if i in self.truth)

    @property
    def implicit(self) -> tuple[str, ...]:
        """Ground-truth concept motions none of whose captions mentions a keyword: the implicit prompts."""
        return () if self.truth is None else tuple(i for i in self.missed if self.line_counts[i] == 0)


@dataclass(frozen=True)
class SplitResult:
    """The concept split of a dataset for a task: one `SplitPart` per split of the task's split rule."""

    task: TaskSpec
    """The task whose concept and rule made the split."""
    data_dir: Path
    """The dataset folder."""
    mode: str
    """The match mode used (`MATCH_MODES`); the task's, unless overridden."""
    parts: tuple[SplitPart, ...]
    """One per split, in the order of `task.split.splits`."""
    untokenised_lines: int
    """Caption lines without word/POS tokens, matched on their text words (mode `words` only)."""
    labels_path: Path | None
    """The ground-truth file used for precision/recall; None when the dataset has none."""

    @property
    def concept(self) -> str:
        return self.task.concept.name

    def part(self, split: str) -> SplitPart:
        for part in self.parts:
            if part.split == split:
                return part
        raise KeyError(f"no split {split!r} in this result (has {', '.join(p.split for p in self.parts)})")


def compute_split(task: TaskSpec, data_dir: Path | str, mode: str | None = None) -> SplitResult:
    """Divide every split of the task's split rule into forget and retain ids.

    `mode` overrides the task's match mode (`"legacy_substring"` to reproduce the original). Ground truth is
    read from `<data>/labels.jsonl` when it exists and names the concept. An empty forget or retain set
    raises `EmptySplitError`.
    """
    data_dir = Path(data_dir)
    mode = mode or task.split.match
    matcher = make_matcher(task.concept, mode)
    layout = DatasetLayout(data_dir)
    concept = task.concept.name

    labels: dict[str, frozenset[str]] | None = None
    labels_path: Path | None = None
    if layout.labels_path.exists():
        labels = read_labels(layout.labels_path)
        if any(concept in concepts for concepts in labels.values()):
            labels_path = layout.labels_path
        else:
            logger.warning("%s never names concept %r: no precision/recall", layout.labels_path, concept)
            labels = None

    parts = []
    untokenised = 0
    for split in task.split.splits:
        ids = read_split_ids(layout.split_path(split))
        counts: dict[str, int] = {}
        for motion_id in ids:
            captions = read_captions(layout.text_path(motion_id))
            untokenised += sum(1 for caption in captions if not caption.tokens)
            counts[motion_id] = matcher.count_matching_lines(captions)
        truth = None
        if labels is not None:
            unlabelled = [i for i in ids if i not in labels]
            if unlabelled:
                raise DataFormatError(
                    layout.labels_path,
                    f"no label for {len(unlabelled)} id(s) of split {split!r}, e.g. {unlabelled[0]!r}",
                )
            truth = frozenset(i for i in ids if concept in labels[i])
        part = SplitPart(split, tuple(ids), MappingProxyType(counts), task.split.min_occurrences, truth)
        for kind, members in (("forget", part.forget), ("retain", part.retain)):
            if not members:
                raise EmptySplitError(
                    f"task {task.name}: the {kind} set of split {split!r} is empty ({len(part.forget)} of "
                    f"{len(ids)} motions have >= {part.min_occurrences} caption lines matching "
                    f"{', '.join(task.concept.keywords)} in mode {mode})"
                )
        parts.append(part)

    if mode == "words" and untokenised:
        logger.info(
            "%d caption lines have no word/POS tokens: matched on their text words, POS guessed", untokenised
        )
    return SplitResult(task, data_dir, mode, tuple(parts), untokenised if mode == "words" else 0, labels_path)


def split_file_names(split: str, concept: str) -> tuple[str, str]:
    """The original file names of a split's forget and retain lists: `<split>-w-<concept>.txt`, `-wo-`."""
    return f"{split}-w-{concept}.txt", f"{split}-wo-{concept}.txt"


def write_split_files(result: SplitResult, out_dir: Path | str | None = None) -> list[Path]:
    """Write each part's forget and retain ids into `out_dir` (default `<data>/kw_splits`); the paths."""
    out = Path(out_dir) if out_dir is not None else result.data_dir / "kw_splits"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for part in result.parts:
        forget_name, retain_name = split_file_names(part.split, result.concept)
        for name, ids in ((forget_name, part.forget), (retain_name, part.retain)):
            write_split_ids(out / name, list(ids))
            written.append(out / name)
    return written
