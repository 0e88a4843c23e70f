"""Task files (`benchmark.tasks`): all YAML under tasks/ loads, include works, bad files name the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from benchmark.errors import ConfigError
from benchmark.tasks import discover_tasks, find_task, load_task

REPO_ROOT = Path(__file__).resolve().parent.parent
TASKS_DIR = REPO_ROOT / "tasks"

SHARED_CONCEPTS = ("kick", "crawl_creep_slide", "jump_leap_hop", "zombie")
ORIGINAL_TASKS = {
    *(
        f"humanml3d_{c}"
        for c in (*SHARED_CONCEPTS, "violence", "punch_jab_box_hit_beat", "duck_squat", "throw")
    ),
    *(
        f"motionx_{c}"
        for c in (*SHARED_CONCEPTS, "violence", "punch_jab_box_hit_beat", "weapons", "martial_arts")
    ),
    "motionx_gun_shoot",
    "embedded_violence",
    "embedded_kick",
    "embedded_jump_leap_hop",
}


# --- the shipped tasks -------------------------------------------------------------------------------------


def test_every_task_under_tasks_loads() -> None:
    tasks = discover_tasks(TASKS_DIR)
    assert len(tasks) > 0
    assert ORIGINAL_TASKS <= set(tasks)
    for name, path in tasks.items():
        task = load_task(path)
        assert task.name == name == path.stem
        assert task.concept.keywords
        assert {"forget_test", "retain_test"} <= {p.name for p in task.prompt_sets}


def test_every_yaml_file_is_a_task_a_template_or_an_included_fragment() -> None:
    files = sorted(TASKS_DIR.rglob("*.yaml"))
    assert len(files) > 0
    tasks = set(discover_tasks(TASKS_DIR).values())
    included = set()
    for task in tasks:
        path = task
        while "include" in (data := yaml.safe_load(path.read_text())):
            path = (path.parent / data["include"]).resolve()
            included.add(path)
    templates = [p for p in files if "_template" in p.parts]
    assert templates, "tasks/_template/ holds no template"
    for template in templates:
        load_task(template)  # a complete, valid example
    for path in files:
        assert path in tasks or path in templates or path.resolve() in included, f"{path} is used by nothing"


def test_each_task_file_starts_with_its_hmu_split_command() -> None:
    for name, path in discover_tasks(TASKS_DIR).items():
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any(f"hmu split --task tasks/{name}.yaml --data " in line for line in header), path


def test_original_keyword_lists() -> None:
    hml = load_task(TASKS_DIR / "humanml3d_violence.yaml")
    original = ("kick", "punch", "hit", "beat", "boxe", "boxing", "jab", "uppercut", "hook")
    assert hml.concept.keywords == original
    assert hml.split.min_occurrences == 2 and hml.dataset.fps == 20
    assert hml.concept.allowed_pos("boxe") == ("VERB",)  # "boxe" is read as "box"
    mx = load_task(TASKS_DIR / "motionx_violence.yaml")
    assert len(mx.concept.keywords) == 16 and mx.split.min_occurrences == 1 and mx.dataset.fps == 30
    assert "martial" not in mx.concept.keywords
    assert "martial" in load_task(TASKS_DIR / "motionx_martial_arts.yaml").concept.keywords
    embedded = load_task(TASKS_DIR / "embedded_violence.yaml")
    assert embedded.prompt_set("forget_test_implicit").source == "implicit"
    assert embedded.prompt_set("forget_test_implicit").split == "test"


def test_find_task_by_name_or_path() -> None:
    assert find_task("humanml3d_kick", TASKS_DIR) == TASKS_DIR / "humanml3d_kick.yaml"
    assert find_task(str(TASKS_DIR / "humanml3d_kick.yaml"), TASKS_DIR) == TASKS_DIR / "humanml3d_kick.yaml"
    with pytest.raises(ConfigError, match="did you mean 'humanml3d_kick'"):
        find_task("humanml3d_kik", TASKS_DIR)


# --- include -----------------------------------------------------------------------------------------------

BASE = """
dataset: {name: embedded, fps: 20}
split: {min_occurrences: 2, splits: [train_val, test]}
prompt_sets:
  forget_test: {source: forget, split: test, metrics: {fid: reference, mm_safe: lower}}
  retain_test: {source: retain, split: test, metrics: {fid: lower}}
"""

VARIANT = """
include: _base/base.yaml
name: my_kick
version: 3
concept: {name: kick, keywords: [kick]}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_include_lays_the_variant_over_the_base(tmp_path: Path) -> None:
    write(tmp_path / "_base" / "base.yaml", BASE)
    variant = VARIANT + "split: {min_occurrences: 1}\nprompt_sets: {forget_test: {metrics: {fid: lower}}}\n"
    task = load_task(write(tmp_path / "my_kick.yaml", variant))
    assert (task.name, task.version, task.concept.keywords) == ("my_kick", 3, ("kick",))
    # Mappings merge key by key: min_occurrences replaced, splits kept; forget_test keeps source and split.
    assert task.split.min_occurrences == 1 and task.split.splits == ("train_val", "test")
    forget = task.prompt_set("forget_test")
    assert (forget.source, forget.split) == ("forget", "test")
    # ...and the metrics mapping merges too: fid overridden, mm_safe kept.
    assert [(m.name, m.direction) for m in forget.metrics] == [("fid", "lower"), ("mm_safe", "lower")]


def test_include_chain_with_relative_paths(tmp_path: Path) -> None:
    write(tmp_path / "_base" / "base.yaml", BASE)
    write(tmp_path / "_base" / "kick.yaml", "include: base.yaml\nconcept: {name: kick, keywords: [kick]}\n")
    task = load_task(write(tmp_path / "sub" / "t.yaml", "include: ../_base/kick.yaml\nname: t\nversion: 1\n"))
    assert task.concept.name == "kick" and task.dataset.name == "embedded"


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "include: b.yaml\nname: a\nversion: 1\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle") as info:
        load_task(tmp_path / "a.yaml")
    assert (info.value.path, info.value.field) == (tmp_path / "b.yaml", "include")
    write(tmp_path / "self.yaml", "include: self.yaml\nname: s\nversion: 1\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_task(tmp_path / "self.yaml")


def test_missing_include_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "t.yaml", "include: nowhere.yaml\nname: t\nversion: 1\n")
    with pytest.raises(ConfigError, match="nowhere.yaml not found") as info:
        load_task(path)
    assert (info.value.path, info.value.field) == (path, "include")


def test_name_and_version_are_not_inherited(tmp_path: Path) -> None:
    write(tmp_path / "_base" / "base.yaml", BASE + "version: 1\n")
    text = "include: _base/base.yaml\nname: t\nconcept: {name: k, keywords: [kick]}\n"
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(ConfigError, match="must be set in the task file itself") as info:
        load_task(path)
    assert info.value.field == "version"


def test_loading_has_no_side_effects(tmp_path: Path) -> None:
    write(tmp_path / "_base" / "base.yaml", BASE)
    path = write(tmp_path / "my_kick.yaml", VARIANT)
    before = sorted(tmp_path.rglob("*"))
    load_task(path)
    discover_tasks(tmp_path)
    assert sorted(tmp_path.rglob("*")) == before


# --- bad files: ConfigError naming the file and the field --------------------------------------------------


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


GOOD = BASE + "name: t\nversion: 1\nconcept: {name: kick, keywords: [kick, box], pos: {box: [VERB]}}\n"

IMPLICIT = "  forget_test_implicit: {{source: implicit, {}, metrics: {{mm_dist: reference}}}}\n"

BAD_FILES = {
    "misspelt top-level field": (GOOD.replace("concept:", "consept:"), "consept", "did you mean 'concept'"),
    "the original's spelling": (
        _replace(GOOD, "min_occurrences: 2", "min_occurence: 2"),
        "split.min_occurence",
        "did you mean 'min_occurrences'",
    ),
    "unknown field": (GOOD + "seed: 3\n", "seed", "unknown field"),
    "wrong type": (
        _replace(GOOD, "min_occurrences: 2", "min_occurrences: two"),
        "split.min_occurrences",
        "integer",
    ),
    "bool is not an int": (
        _replace(GOOD, "min_occurrences: 2", "min_occurrences: yes"),
        "split.min_occurrences",
        "integer",
    ),
    "zero min_occurrences": (
        _replace(GOOD, "min_occurrences: 2", "min_occurrences: 0"),
        "split.min_occurrences",
        ">= 1",
    ),
    "negative fps": (_replace(GOOD, "fps: 20", "fps: -20"), "dataset.fps", "positive"),
    "version not an int": (_replace(GOOD, "version: 1", "version: one"), "version", "integer"),
    "missing required field": (_replace(GOOD, "keywords: [kick, box], ", ""), "concept.keywords", "missing"),
    "missing section": (_replace(GOOD, "dataset: {name: embedded, fps: 20}\n", ""), "dataset", "missing"),
    "empty keyword list": (
        _replace(GOOD, "[kick, box], pos: {box: [VERB]}", "[]"),
        "concept.keywords",
        "non-empty",
    ),
    "keyword with capitals": (
        _replace(GOOD, "[kick, box]", "[Kick, box]"),
        "concept.keywords[0]",
        "lower-case",
    ),
    "keyword phrase": (_replace(GOOD, "[kick, box]", "['kung fu', box]"), "concept.keywords[0]", "letters"),
    "repeated keyword": (
        _replace(GOOD, "[kick, box]", "[kick, box, boxe]"),
        "concept.keywords[2]",
        "repeats",
    ),
    "pos of a non-keyword": (
        _replace(GOOD, "{box: [VERB]}", "{hook: [VERB]}"),
        "concept.pos.hook",
        "not one of",
    ),
    "unknown POS tag": (
        _replace(GOOD, "{box: [VERB]}", "{box: [VRB]}"),
        "concept.pos.box[0]",
        "did you mean 'VERB'",
    ),
    "unknown match mode": (
        _replace(GOOD, "min_occurrences: 2,", "min_occurrences: 2, match: legacy,"),
        "split.match",
        "legacy_substring",
    ),
    "unknown split": (
        _replace(GOOD, "[train_val, test]", "[train_val, tset]"),
        "split.splits[1]",
        "did you mean",
    ),
    "prompt split outside the rule": (
        _replace(GOOD, "[train_val, test]", "[train_val]"),
        "prompt_sets.forget_test.split",
        "not one of train_val",
    ),
    "missing required prompt set": (
        _replace(GOOD, "  retain_test: {source: retain, split: test, metrics: {fid: lower}}\n", ""),
        "prompt_sets.retain_test",
        "missing required prompt set",
    ),
    "forget source without split": (
        _replace(GOOD, "{source: forget, split: test,", "{source: forget,"),
        "prompt_sets.forget_test.split",
        "takes a split",
    ),
    "bad metric direction": (
        _replace(GOOD, "mm_safe: lower", "mm_safe: down"),
        "prompt_sets.forget_test.metrics.mm_safe",
        "lower, higher, reference",
    ),
    "implicit prompt naming the concept": (
        _replace(
            GOOD,
            "  retain_test:",
            IMPLICIT.format("prompts: [a man walks, a man kicked a ball]") + "  retain_test:",
        ),
        "prompt_sets.forget_test_implicit.prompts[1]",
        "names the concept (kicked)",
    ),
    "implicit with split and prompts": (
        _replace(
            GOOD, "  retain_test:", IMPLICIT.format("split: test, prompts: [a man walks]") + "  retain_test:"
        ),
        "prompt_sets.forget_test_implicit",
        "not both",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_names_file_and_field(tmp_path: Path, case: str) -> None:
    text, field, message = BAD_FILES[case]
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_task(path)
    error = info.value
    assert (error.path, error.field) == (path, field)
    assert str(path) in str(error) and f"field '{field}'" in str(error) and message in str(error)


def test_good_file_is_good(tmp_path: Path) -> None:
    task = load_task(write(tmp_path / "t.yaml", GOOD))
    assert task.concept.pos == (("box", ("VERB",)),)


@pytest.mark.parametrize(
    ("text", "message"),
    [("name: [unclosed\n", "not valid YAML"), ("- a list\n", "must be a YAML mapping"), ("", "mapping")],
)
def test_unreadable_file_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_task(path)
    assert info.value.path == path


def test_error_in_the_base_names_the_base(tmp_path: Path) -> None:
    base = write(tmp_path / "_base" / "base.yaml", _replace(BASE, "fps: 20", "fps: fast"))
    with pytest.raises(ConfigError) as info:
        load_task(write(tmp_path / "my_kick.yaml", VARIANT))
    assert (info.value.path, info.value.field) == (base, "dataset.fps")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_task(tmp_path / "nowhere.yaml")


# --- discovery ---------------------------------------------------------------------------------------------


def test_discovery_skips_underscore_folders_and_finds_nested_tasks(tmp_path: Path) -> None:
    write(tmp_path / "_base" / "base.yaml", BASE)
    write(tmp_path / "_template" / "task.yaml", "name: my_task\nversion: 1\n")
    write(tmp_path / "group" / "my_kick.yaml", VARIANT.replace("_base/", "../_base/"))
    assert discover_tasks(tmp_path) == {"my_kick": tmp_path / "group" / "my_kick.yaml"}


def test_duplicate_task_names_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", "name: same\nversion: 1\n")
    second = write(tmp_path / "b.yaml", "name: same\nversion: 1\n")
    with pytest.raises(ConfigError) as info:
        discover_tasks(tmp_path)
    assert info.value.path == second and str(first) in str(info.value)


def test_task_without_a_name_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "fragment.yaml", BASE)
    with pytest.raises(ConfigError, match="tasks/_base/") as info:
        discover_tasks(tmp_path)
    assert (info.value.path, info.value.field) == (path, "name")
