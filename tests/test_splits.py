"""Keyword matching and concept splits (`benchmark.splits`) on hand-built captions and dataset folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.data.captions import Caption, parse_caption_line
from benchmark.errors import DataFormatError
from benchmark.splits import (
    EmptySplitError,
    KeywordMatcher,
    LegacySubstringMatcher,
    compute_split,
    inflections,
    write_split_files,
)
from benchmark.tasks import TaskSpec, load_task

VIOLENCE = ("kick", "punch", "hit", "beat", "boxe", "boxing", "jab", "uppercut", "hook")
VIOLENCE_POS = {"box": ("VERB",), "beat": ("VERB",)}


def tokenised(text: str, tokens: str) -> Caption:
    """A caption line as HumanML3D writes it: `text#word/POS ...#0.0#0.0`."""
    return parse_caption_line(f"{text}#{tokens}#0.0#0.0")


def plain(text: str) -> Caption:
    """A caption line without tokens (Motion-X style)."""
    return Caption(text, ())


def violence() -> KeywordMatcher:
    return KeywordMatcher(VIOLENCE, VIOLENCE_POS)


# --- the cases the issue names ------------------------------------------------------------------------------


def test_box_as_a_verb_is_the_concept_and_as_a_noun_is_not() -> None:
    boxes_verb = tokenised(
        "a person boxes with the right hand",
        "a/DET person/NOUN box/VERB with/ADP the/DET right/ADJ hand/NOUN",
    )
    boxes_noun = tokenised("a man picks up two boxes", "a/DET man/NOUN pick/VERB up/ADP two/NUM box/NOUN")
    assert violence().matches(boxes_verb)
    assert not violence().matches(boxes_noun)
    # The original grep finds "boxe" inside "boxes" in both.
    assert LegacySubstringMatcher(VIOLENCE).matches(boxes_verb)
    assert LegacySubstringMatcher(VIOLENCE).matches(boxes_noun)


def test_white_never_matches_hit() -> None:
    line = tokenised("a man in a white shirt waves", "a/DET man/NOUN in/ADP a/DET white/ADJ shirt/NOUN")
    assert not violence().matches(line)
    assert not violence().matches(plain("a man in a white shirt waves"))
    assert LegacySubstringMatcher(VIOLENCE).explain(line) == ("hit",)


def test_stable_never_matches_stab() -> None:
    weapons = ("sword", "stab", "slash", "weapon")
    line = plain("a person stands on a stable platform")
    assert not KeywordMatcher(weapons).matches(line)
    assert LegacySubstringMatcher(weapons).matches(line)
    assert KeywordMatcher(weapons).matches(plain("someone stabbed forward with a knife"))


@pytest.mark.parametrize(
    ("keyword", "word"),
    [
        ("kick", "kicks"), ("kick", "kicked"), ("kick", "kicking"),
        ("punch", "punches"), ("punch", "punched"), ("punch", "punching"),
        ("hit", "hits"), ("hit", "hitting"),
        ("box", "boxes"), ("box", "boxed"), ("box", "boxing"),
        ("jab", "jabs"), ("jab", "jabbed"), ("jab", "jabbing"),
        ("uppercut", "uppercuts"), ("uppercut", "uppercutting"),
        ("hook", "hooks"), ("hook", "hooked"),
        ("beat", "beats"), ("beat", "beating"), ("beat", "beaten"),
        ("jump", "jumped"), ("leap", "leapt"), ("leap", "leaped"),
        ("hop", "hopped"), ("hop", "hopping"),
        ("throw", "threw"), ("throw", "thrown"),
        ("slide", "slid"), ("slide", "sliding"), ("creep", "crept"),
        ("squat", "squatted"), ("squat", "squatting"), ("zombie", "zombies"), ("shoot", "shot"),
    ],
)  # fmt: skip
def test_inflections_match(keyword: str, word: str) -> None:
    assert word in inflections(keyword)
    assert KeywordMatcher((keyword,)).matches(plain(f"a person {word} twice"))


def test_consonant_doubling_follows_syllables() -> None:
    assert "hoping" not in inflections("hop") and "hoped" not in inflections("hop")  # hope, not hop
    assert {"uppercutting", "uppercuts"} <= inflections("uppercut")
    assert "kickking" not in inflections("kick") and "boxxing" not in inflections("box")
    assert "throwwing" not in inflections("throw")


@pytest.mark.parametrize(
    ("word", "keywords"),
    [
        ("kickboxing", ("kick",)),
        ("kickbox", ("kick",)),
        ("kickboxer", ("kick",)),
        ("sidekick", ("kick",)),
        ("dropkick", ("kick",)),
        ("shotgun", ("gun", "shoot", "firearm")),
        ("handgun", ("gun",)),
        ("swordsman", ("sword",)),
    ],
)
def test_closed_compounds_match(word: str, keywords: tuple[str, ...]) -> None:
    assert KeywordMatcher(keywords).matches(plain(f"a person does {word}"))
    assert KeywordMatcher(keywords).matches(tokenised(f"a {word}", f"a/DET {word}/NOUN"))


@pytest.mark.parametrize(
    ("word", "keywords"),
    [
        ("white", VIOLENCE),  # no whole word "hit"
        ("hitch", VIOLENCE),  # "ch" is not a compound part
        ("hooker", VIOLENCE),  # agent nouns in -er are derivations, not inflections
        ("boxer", VIOLENCE),
        ("jumper", ("jump",)),  # the sweater
        ("beatboxing", VIOLENCE),  # vocal percussion: NON_COMPOUNDS
        ("toolbox", VIOLENCE),  # "tool" is not a compound part
        ("deadlift", ("zombie", "dead")),  # "lift" is not a compound part
        ("undead", ("zombie", "dead")),  # "un" is too short to be a part
        ("hiphop", ("jump", "leap", "hop")),  # "hip" is not a compound part
    ],
)
def test_non_matches(word: str, keywords: tuple[str, ...]) -> None:
    assert not KeywordMatcher(keywords).matches(plain(f"a {word} in the room"))


def test_hyphenated_forms_are_two_words() -> None:
    assert KeywordMatcher(("kick",)).matches(plain("a side-kick to the left"))
    assert KeywordMatcher(("kick",)).matches(plain("kick-boxing moves"))


def test_matching_is_case_insensitive_and_legacy_is_not() -> None:
    line = plain("A person KICKS then Punches")
    assert violence().explain(line) == ("kicks", "punches")
    assert not LegacySubstringMatcher(VIOLENCE).matches(line)


def test_boxe_is_read_as_box_in_keywords_and_tokens() -> None:
    matcher = KeywordMatcher(("boxe",), {"boxe": ("VERB",)})
    assert matcher.keywords == ("box",)
    assert matcher.matches(tokenised("he boxes", "he/PRON boxe/VERB"))
    assert matcher.matches(plain("he boxes hard"))


def test_pos_restriction_on_beat_and_gerund_keyword() -> None:
    assert not violence().matches(tokenised("dances to the beat", "dance/VERB to/ADP the/DET beat/NOUN"))
    assert violence().matches(tokenised("beats the bag", "beat/VERB the/DET bag/NOUN"))
    # "boxing" is its own, unrestricted keyword in the HumanML3D list: the sport counts as a noun too.
    assert violence().matches(tokenised("practises boxing", "practise/VERB boxing/NOUN"))


def test_without_tokens_a_restricted_keyword_after_a_determiner_is_a_noun() -> None:
    assert not violence().matches(plain("a man picks up two boxes"))
    assert not violence().matches(plain("dances to the beat"))
    assert violence().matches(plain("a person boxes with the right hand"))
    assert violence().matches(plain("he beats the bag"))


def test_count_matching_lines_counts_lines_not_words() -> None:
    captions = [
        plain("a person kicks and kicks again"),
        plain("someone punches"),
        plain("a man walks"),
    ]
    assert violence().count_matching_lines(captions) == 2
    assert LegacySubstringMatcher(VIOLENCE).count_matching_lines(captions) == 2


def test_legacy_searches_the_whole_line_including_tokens() -> None:
    # The token field carries the lower-case lemma, so the original grep finds "Kicks" through "kick/VERB".
    line = tokenised("Kicks high", "kick/VERB high/ADV")
    assert LegacySubstringMatcher(("kick",)).matches(line)
    assert not LegacySubstringMatcher(("kick",)).matches(plain("Kicks high"))


# --- splits of a dataset folder -----------------------------------------------------------------------------

# id -> (caption, word/POS tokens) per line. Ground truth in LABELS.
CAPTIONS: dict[str, list[tuple[str, str]]] = {
    # train_val
    "000001": [("a person kicks forward.", "a/DET person/NOUN kick/VERB forward/ADV"),
               ("someone kicks with the leg.", "someone/PRON kick/VERB with/ADP the/DET leg/NOUN"),
               ("a man walks.", "a/DET man/NOUN walk/VERB")],
    "000002": [("a man walks in a circle.", "a/DET man/NOUN walk/VERB in/ADP a/DET circle/NOUN"),
               ("a person walks.", "a/DET person/NOUN walk/VERB")],
    "000003": [("a man in white waves.", "a/DET man/NOUN in/ADP white/ADJ wave/VERB"),
               ("a white figure waves.", "a/DET white/ADJ figure/NOUN wave/VERB")],
    "000004": [("a person punches.", "a/DET person/NOUN punch/VERB"),
               ("a person throws a punch.", "a/DET person/NOUN throw/VERB a/DET punch/NOUN")],
    # test
    "100001": [("a person boxes with the hand.", "a/DET person/NOUN box/VERB with/ADP the/DET hand/NOUN"),
               ("someone is boxing.", "someone/PRON be/AUX box/VERB")],
    "100002": [("a man picks up two boxes.", "a/DET man/NOUN pick/VERB up/ADP two/NUM box/NOUN"),
               ("he stacks the boxes.", "he/PRON stack/VERB the/DET box/NOUN")],
    "100003": [("a person strikes with a fist.", "a/DET person/NOUN strike/VERB with/ADP a/DET fist/NOUN"),
               ("someone attacks.", "someone/PRON attack/VERB")],
    "100004": [("a person kicks.", "a/DET person/NOUN kick/VERB"),
               ("a man walks.", "a/DET man/NOUN walk/VERB")],
    "100005": [("a person does kickboxing.", "a/DET person/NOUN do/VERB kickboxing/NOUN"),
               ("kickboxing moves.", "kickboxing/NOUN move/NOUN")],
    "100006": [("a person jogs.", "a/DET person/NOUN jog/VERB"),
               ("a person runs.", "a/DET person/NOUN run/VERB")],
}  # fmt: skip
SPLITS = {"train_val": ["000001", "000002", "000003", "000004"], "test": [f"10000{i}" for i in range(1, 7)]}
VIOLENT = {"000001", "000004", "100001", "100003", "100004", "100005"}
LABELS = {i: (["violence"] if i in VIOLENT else []) for i in CAPTIONS}


def write_dataset(root: Path, labels: dict[str, list[str]] | None = LABELS) -> Path:
    (root / "texts").mkdir(parents=True)
    for motion_id, lines in CAPTIONS.items():
        text = "".join(f"{caption}#{tokens}#0.0#0.0\n" for caption, tokens in lines)
        (root / "texts" / f"{motion_id}.txt").write_text(text, encoding="utf-8")
    for split, ids in SPLITS.items():
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    if labels is not None:
        records = [{"id": i, "actions": [], "concepts": c, "implicit_concepts": [], "mirrored": False}
                   for i, c in labels.items()]  # fmt: skip
        (root / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return root


def write_task(path: Path, keywords: tuple[str, ...] = VIOLENCE, min_occurrences: int = 1) -> TaskSpec:
    text = f"""
name: test_violence
version: 1
dataset: {{name: embedded, fps: 20}}
concept:
  name: violence
  keywords: [{", ".join(keywords)}]
  pos: {{box: [VERB]}}
split: {{min_occurrences: {min_occurrences}}}
prompt_sets:
  forget_test: {{source: forget, split: test, metrics: {{fid: reference}}}}
  retain_test: {{source: retain, split: test, metrics: {{fid: lower}}}}
"""
    if "box" not in keywords and "boxe" not in keywords:
        text = text.replace("  pos: {box: [VERB]}\n", "")
    path.write_text(text, encoding="utf-8")
    return load_task(path)


def test_split_with_min_occurrences_one(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    result = compute_split(write_task(tmp_path / "task.yaml"), data)
    train, test = result.part("train_val"), result.part("test")
    assert train.forget == ("000001", "000004")
    assert train.retain == ("000002", "000003")
    assert test.forget == ("100001", "100004", "100005")
    assert test.retain == ("100002", "100003", "100006")
    counts = {"100001": 2, "100002": 0, "100003": 0, "100004": 1, "100005": 2, "100006": 0}
    assert dict(test.line_counts) == counts


def test_min_occurrences_counts_caption_lines(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    test = compute_split(write_task(tmp_path / "task.yaml", min_occurrences=2), data).part("test")
    # 100004 mentions a kick in one of its two lines: retained, and reported as partial.
    assert test.forget == ("100001", "100005")
    assert test.partial == ("100004",)


def test_precision_recall_against_hand_computation(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    result = compute_split(write_task(tmp_path / "task.yaml", min_occurrences=2), data)
    assert result.labels_path == data / "labels.jsonl"
    test = result.part("test")
    # forget {100001, 100005}, truth {100001, 100003, 100004, 100005}: tp 2, precision 2/2, recall 2/4.
    assert test.truth == {"100001", "100003", "100004", "100005"}
    assert test.precision == pytest.approx(1.0)
    assert test.recall == pytest.approx(0.5)
    assert test.f1 == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert test.missed == ("100003", "100004")
    assert test.implicit == ("100003",)  # no caption line of 100003 names a keyword
    train = result.part("train_val")
    # 000001 (2 kick lines) and 000004 (2 punch lines) in forget; both violent.
    assert (train.precision, train.recall) == (1.0, 1.0)


def test_legacy_mode_reproduces_the_false_positives(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    task = write_task(tmp_path / "task.yaml")
    legacy = compute_split(task, data, mode="legacy_substring")
    words = compute_split(task, data)
    assert legacy.mode == "legacy_substring"
    assert "000003" in legacy.part("train_val").forget  # white -> hit
    assert "100002" in legacy.part("test").forget  # two boxes -> boxe
    assert "000003" not in words.part("train_val").forget
    assert "100002" not in words.part("test").forget
    test = legacy.part("test")
    # legacy forget {100001, 100002, 100004, 100005}: tp 3 of 4 forget, 3 of 4 truth.
    assert (test.precision, test.recall) == (0.75, 0.75)


def test_without_labels_no_precision(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", labels=None)
    result = compute_split(write_task(tmp_path / "task.yaml"), data)
    assert result.labels_path is None
    assert result.part("test").precision is None and result.part("test").missed == ()


def test_labels_not_naming_the_concept_give_no_precision(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", labels={i: ["walk"] for i in CAPTIONS})
    result = compute_split(write_task(tmp_path / "task.yaml"), data)
    assert result.labels_path is None and result.part("test").recall is None


def test_unlabelled_id_is_a_data_error(tmp_path: Path) -> None:
    labels = {i: c for i, c in LABELS.items() if i != "100006"}
    data = write_dataset(tmp_path / "data", labels=labels)
    with pytest.raises(DataFormatError, match="no label for 1 id"):
        compute_split(write_task(tmp_path / "task.yaml"), data)


def test_untokenised_lines_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_dataset(tmp_path / "data")
    untokenised = "a person jogs.##0.0#0.0\na man kicks.##0.0#0.0\n"
    (data / "texts" / "100006.txt").write_text(untokenised, encoding="utf-8")
    with caplog.at_level("INFO", logger="benchmark.splits"):
        result = compute_split(write_task(tmp_path / "task.yaml"), data)
    assert result.untokenised_lines == 2
    assert "100006" in result.part("test").forget
    assert "2 caption lines have no word/POS tokens" in caplog.text


def test_empty_forget_set_is_an_error(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    task = write_task(tmp_path / "task.yaml", keywords=("zombie",))
    message = "task test_violence: the forget set of split 'train_val' is empty"
    with pytest.raises(EmptySplitError, match=message):
        compute_split(task, data)


def test_empty_retain_set_is_an_error(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    (data / "train_val.txt").write_text("000001\n000004\n", encoding="utf-8")
    with pytest.raises(EmptySplitError, match="retain set of split 'train_val' is empty"):
        compute_split(write_task(tmp_path / "task.yaml"), data)


def test_files_written_with_the_original_names(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    result = compute_split(write_task(tmp_path / "task.yaml"), data)
    written = write_split_files(result)
    out = data / "kw_splits"
    assert [p.name for p in written] == [
        "train_val-w-violence.txt",
        "train_val-wo-violence.txt",
        "test-w-violence.txt",
        "test-wo-violence.txt",
    ]
    assert (out / "test-w-violence.txt").read_text() == "100001\n100004\n100005\n"
    assert (out / "test-wo-violence.txt").read_text() == "100002\n100003\n100006\n"
    elsewhere = tmp_path / "elsewhere"
    assert write_split_files(result, elsewhere)[0] == elsewhere / "train_val-w-violence.txt"
