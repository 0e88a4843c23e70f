"""Tasks: one YAML file per task under `tasks/`, loaded into frozen dataclasses and validated at load time.

A task names a dataset, the concept to forget (its keywords and the POS tags of ambiguous ones), the rule that
splits the dataset into forget and retain motions, and the prompt sets the unlearned model is evaluated on,
each with its metrics and their directions.

    >>> task = load_task("tasks/humanml3d_violence.yaml")
    >>> task.concept.keywords[:3], task.split.min_occurrences
    (('kick', 'punch', 'hit'), 2)
    >>> discover_tasks("tasks")["embedded_violence"]
    PosixPath('tasks/embedded_violence.yaml')

`include: <path>` (relative to the including file) loads another file first and lays this one over it:
mappings merge key by key, everything else (lists, scalars) is replaced. That keeps variants to a few lines:

    include: _base/humanml3d.yaml
    name: humanml3d_kick
    version: 1
    concept: {name: kick, keywords: [kick]}

`name` and `version` must be written in the task file itself, never inherited, so that two variants cannot
share a name and bumping a version is a decision about that file. Files under a folder whose name starts with
`_` (`tasks/_base/`, `tasks/_template/`) are fragments and templates, not tasks: `discover_tasks` skips them.
Any mistake (unknown or misspelt field, wrong type, missing field, empty keyword list, include cycle) raises
`ConfigError` naming the file that set the field and the field. Loading reads files and nothing else.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.data.captions import Caption
from benchmark.data.layout import SPLIT_NAMES
from benchmark.errors import ConfigError
from benchmark.splits import MATCH_MODES, UPOS_TAGS, KeywordMatcher, normalise_keyword

PROMPT_SOURCES: tuple[str, ...] = ("forget", "retain", "implicit", "list")
"""Where a prompt set's prompts come from; see `PromptSetSpec.source`."""

METRIC_DIRECTIONS: tuple[str, ...] = ("lower", "higher", "reference")
"""lower/higher is better, or `reference`: closer to the reference model (trained on retain data) wins."""

REQUIRED_PROMPT_SETS: tuple[str, ...] = ("forget_test", "retain_test")
"""Prompt sets every task defines: the forget test split's captions and the retain test split's captions."""

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_KEYWORD = re.compile(r"^[a-z]+$")


@dataclass(frozen=True)
class DatasetSpec:
    """The dataset a task splits."""

    name: str
    """Dataset id: `embedded` (the generated default), `humanml3d`, `motionx`."""
    fps: float
    """Frame rate of its motions (HumanML3D 20, Motion-X 30)."""


@dataclass(frozen=True)
class ConceptSpec:
    """The concept to forget and the words that name it."""

    name: str
    """Concept id: in split file names (`kw_splits/test-w-<name>.txt`) and in ground-truth labels."""
    keywords: tuple[str, ...]
    """Lower-case keywords; inflections and compounds match too (see `benchmark.splits`)."""
    pos: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Ambiguous keywords and the POS tags they must carry to count, e.g. `(("box", ("VERB",)),)`."""

    def allowed_pos(self, keyword: str) -> tuple[str, ...] | None:
        """The POS tags a keyword must carry, or None when any will do."""
        wanted = normalise_keyword(keyword)
        for name, tags in self.pos:
            if normalise_keyword(name) == wanted:
                return tags
        return None


@dataclass(frozen=True)
class SplitRule:
    """How the dataset's splits are divided into forget and retain motions."""

    min_occurrences: int
    """Caption lines of a motion that must mention the concept to forget it (HumanML3D 2, Motion-X 1)."""
    match: str = "words"
    """`words` (whole words, inflections, compounds, POS) or `legacy_substring` (the original grep)."""
    splits: tuple[str, ...] = ("train_val", "test")
    """Dataset splits to divide; each gets `<split>-w-<concept>.txt` and `<split>-wo-<concept>.txt`."""


@dataclass(frozen=True)
class MetricSpec:
    """A metric computed on a prompt set, and which way is better."""

    name: str
    """Metric id (`fid`, `mm_dist`, `mm_safe`, `diversity`, `r_precision_top1`, ...)."""
    direction: str
    """`lower`, `higher`, or `reference` (closer to the retain-only reference model is better)."""


@dataclass(frozen=True)
class PromptSetSpec:
    """Prompts the unlearned model generates from, with the metrics computed on its motions."""

    name: str
    """Prompt set id: `forget_test`, `forget_test_implicit`, `retain_test`, ..."""
    source: str
    """`forget`/`retain`: the captions of the split's forget/retain motions; `implicit`: descriptions of the
    concept that carry no keyword (the captions of ground-truth concept motions of `split` that no keyword
    matched, or the given `prompts`); `list`: the given `prompts`."""
    split: str | None
    """The dataset split the prompts come from (sources `forget`, `retain`, `implicit` without prompts)."""
    prompts: tuple[str, ...]
    """Given prompts (sources `list` and `implicit`); empty otherwise."""
    metrics: tuple[MetricSpec, ...]
    """Metrics computed on this prompt set."""


@dataclass(frozen=True)
class TaskSpec:
    """One task: a concept to forget from a dataset, how to split it, and how to evaluate."""

    name: str
    """Task id, unique under `tasks/` (conventionally the file name)."""
    version: int
    """Bumped whenever a change alters splits, prompts or metrics; results of different versions never mix."""
    description: str
    """One line for listings and the leaderboard."""
    dataset: DatasetSpec
    """The dataset the task splits."""
    concept: ConceptSpec
    """The concept to forget."""
    split: SplitRule
    """How the dataset is divided into forget and retain motions."""
    prompt_sets: tuple[PromptSetSpec, ...]
    """Evaluation prompt sets, in file order."""
    path: Path = field(compare=False)
    """The task file it was loaded from."""

    def prompt_set(self, name: str) -> PromptSetSpec:
        for prompt_set in self.prompt_sets:
            if prompt_set.name == name:
                return prompt_set
        raise KeyError(f"task {self.name} has no prompt set {name!r}")


# -----------------------------------------------------------------------------------------------------------
# Reading files and resolving `include:`


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(path, None, f"not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, None, "a task file must be a YAML mapping of fields")
    return data


def _record_origins(data: Mapping[Any, Any], prefix: str, path: Path, origins: dict[str, Path]) -> None:
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        origins[name] = path
        if isinstance(value, Mapping):
            _record_origins(value, name, path, origins)


def _merge(base: dict[Any, Any], override: Mapping[Any, Any]) -> None:
    """Lay `override` over `base` in place: mappings merge recursively, other values replace."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value


def _resolve(path: Path, chain: tuple[Path, ...]) -> tuple[dict[Any, Any], dict[str, Path]]:
    """The merged data of a file and its includes, and which file set each (dotted) field.

    `chain` holds the (resolved) files that include this one, to refuse a cycle.
    """
    data = _read_mapping(path)
    include = data.pop("include", None)
    merged: dict[Any, Any] = {}
    origins: dict[str, Path] = {}
    if include is not None:
        if not isinstance(include, str) or not include.strip():
            raise ConfigError(path, "include", "must be a path (relative to this file) to another YAML file")
        target = path.parent / include
        if not target.is_file():
            raise ConfigError(path, "include", f"included file {target} not found")
        chain = (*chain, path.resolve())
        if target.resolve() in chain:
            cycle = " -> ".join(str(p) for p in (*chain, target.resolve()))
            raise ConfigError(path, "include", f"include cycle: {cycle}")
        merged, origins = _resolve(target, chain)
    _merge(merged, data)
    _record_origins(data, "", path, origins)
    return merged, origins


# -----------------------------------------------------------------------------------------------------------
# Validation: every check raises ConfigError naming the file that set the field


@dataclass(frozen=True)
class _Checker:
    task_path: Path
    """The task file being loaded."""
    origins: Mapping[str, Path]
    """Which file set each dotted field (after includes)."""

    def error(self, name: str, message: str) -> ConfigError:
        """An error about field `name` (`a.b[2]`), blamed on the file that set it or its nearest parent."""
        probe = name.split("[", 1)[0]
        while probe:
            if probe in self.origins:
                return ConfigError(self.origins[probe], name, message)
            probe = probe.rpartition(".")[0]
        return ConfigError(self.task_path, name, message)

    def fields(
        self, data: Any, prefix: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> Mapping[str, Any]:
        """`data` as a mapping with only `allowed` keys and all `required` ones."""
        if not isinstance(data, Mapping):
            raise self.error(prefix, f"must be a mapping with fields {', '.join(allowed)}")
        for key in data:
            name = f"{prefix}.{key}" if prefix else str(key)
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise self.error(name, f"unknown field; {hint}allowed: {', '.join(allowed)}")
        for key in required:
            if key not in data:
                raise self.error(f"{prefix}.{key}" if prefix else key, "missing required field")
        return data

    def string(self, value: Any, name: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.error(name, f"{value!r} is not {what}")
        return value

    def choice(self, value: Any, name: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(name, f"{value!r} is not one of {', '.join(choices)}{hint}")
        return str(value)

    def integer(self, value: Any, name: str, minimum: int) -> int:
        # bool is an int in Python; `min_occurrences: yes` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(name, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def number(self, value: Any, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self.error(name, f"must be a positive number, got {value!r}")
        return float(value)

    def string_list(self, value: Any, name: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(name, f"must be a non-empty list, got {value!r}")
        return tuple(self.string(item, f"{name}[{i}]") for i, item in enumerate(value))


_TASK_FIELDS = ("name", "version", "description", "dataset", "concept", "split", "prompt_sets")
_REQUIRED_TASK_FIELDS = ("name", "version", "dataset", "concept", "split", "prompt_sets")
_DATASET_FIELDS = ("name", "fps")
_CONCEPT_FIELDS = ("name", "keywords", "pos")
_SPLIT_FIELDS = ("min_occurrences", "match", "splits")
_PROMPT_SET_FIELDS = ("source", "split", "prompts", "metrics")


def _dataset(check: _Checker, data: Any) -> DatasetSpec:
    data = check.fields(data, "dataset", _DATASET_FIELDS, _DATASET_FIELDS)
    return DatasetSpec(
        name=check.string(data["name"], "dataset.name", _IDENTIFIER, "a lower-case identifier"),
        fps=check.number(data["fps"], "dataset.fps"),
    )


def _concept(check: _Checker, data: Any) -> ConceptSpec:
    data = check.fields(data, "concept", _CONCEPT_FIELDS, ("name", "keywords"))
    name = check.string(data["name"], "concept.name", _IDENTIFIER, "a lower-case identifier")
    keywords = check.string_list(data["keywords"], "concept.keywords")
    seen: dict[str, str] = {}
    for i, keyword in enumerate(keywords):
        check.string(keyword, f"concept.keywords[{i}]", _KEYWORD, "a lower-case word (letters a-z only)")
        normal = normalise_keyword(keyword)
        if normal in seen:
            raise check.error(f"concept.keywords[{i}]", f"{keyword!r} repeats {seen[normal]!r}")
        seen[normal] = keyword
    pos: list[tuple[str, tuple[str, ...]]] = []
    raw_pos = data.get("pos", {})
    if not isinstance(raw_pos, Mapping):
        raise check.error("concept.pos", "must be a mapping keyword -> list of POS tags, e.g. {box: [VERB]}")
    for keyword, tags in raw_pos.items():
        name_of = f"concept.pos.{keyword}"
        if not isinstance(keyword, str) or normalise_keyword(keyword) not in seen:
            raise check.error(name_of, f"{keyword!r} is not one of the keywords ({', '.join(keywords)})")
        tags = check.string_list(tags, name_of)
        for j, tag in enumerate(tags):
            check.choice(tag, f"{name_of}[{j}]", tuple(sorted(UPOS_TAGS)))
        pos.append((keyword, tags))
    return ConceptSpec(name=name, keywords=keywords, pos=tuple(pos))


def _split_rule(check: _Checker, data: Any) -> SplitRule:
    data = check.fields(data, "split", _SPLIT_FIELDS, ("min_occurrences",))
    splits = SplitRule.splits
    if "splits" in data:
        splits = check.string_list(data["splits"], "split.splits")
        for i, split in enumerate(splits):
            check.choice(split, f"split.splits[{i}]", SPLIT_NAMES)
        if len(set(splits)) != len(splits):
            raise check.error("split.splits", "lists a split twice")
    return SplitRule(
        min_occurrences=check.integer(data["min_occurrences"], "split.min_occurrences", 1),
        match=check.choice(data.get("match", SplitRule.match), "split.match", MATCH_MODES),
        splits=splits,
    )


def _metrics(check: _Checker, data: Any, prefix: str) -> tuple[MetricSpec, ...]:
    if not isinstance(data, Mapping) or not data:
        raise check.error(prefix, "must be a non-empty mapping metric -> direction, e.g. {fid: lower}")
    return tuple(
        MetricSpec(
            name=check.string(metric, f"{prefix}.{metric}", _IDENTIFIER, "a lower-case identifier"),
            direction=check.choice(direction, f"{prefix}.{metric}", METRIC_DIRECTIONS),
        )
        for metric, direction in data.items()
    )


def _prompt_set(
    check: _Checker, name: str, data: Any, rule: SplitRule, concept: ConceptSpec
) -> PromptSetSpec:
    prefix = f"prompt_sets.{name}"
    check.string(name, prefix, _IDENTIFIER, "a lower-case identifier")
    data = check.fields(data, prefix, _PROMPT_SET_FIELDS, ("source", "metrics"))
    source = check.choice(data["source"], f"{prefix}.source", PROMPT_SOURCES)
    has_split, has_prompts = "split" in data, "prompts" in data
    # Which of split/prompts a source takes: forget/retain a split, list prompts, implicit one of the two.
    if source in ("forget", "retain") and not has_split:
        raise check.error(f"{prefix}.split", f"missing required field (source {source} takes a split)")
    if source == "list" and not has_prompts:
        raise check.error(f"{prefix}.prompts", "missing required field (source list takes prompts)")
    if source == "implicit" and has_split == has_prompts:
        raise check.error(prefix, "source implicit takes either split (ground truth) or prompts, not both")
    if has_split and source not in ("forget", "retain", "implicit"):
        raise check.error(f"{prefix}.split", f"source {source} takes no split")
    if has_prompts and source not in ("list", "implicit"):
        raise check.error(f"{prefix}.prompts", f"source {source} takes no prompts")

    split = None
    if has_split:
        split = check.choice(data["split"], f"{prefix}.split", rule.splits)
    prompts: tuple[str, ...] = ()
    if has_prompts:
        prompts = check.string_list(data["prompts"], f"{prefix}.prompts")
    if source == "implicit" and prompts:
        # An implicit prompt that names the concept would test keyword filtering, not unlearning.
        matcher = KeywordMatcher.from_concept(concept)
        for i, prompt in enumerate(prompts):
            words = matcher.explain(Caption(prompt, ()))
            if words:
                raise check.error(
                    f"{prefix}.prompts[{i}]",
                    f"implicit prompt {prompt!r} names the concept ({', '.join(words)}); "
                    "rephrase it without the keywords",
                )
    return PromptSetSpec(
        name=name,
        source=source,
        split=split,
        prompts=prompts,
        metrics=_metrics(check, data["metrics"], f"{prefix}.metrics"),
    )


def _task(check: _Checker, data: Mapping[Any, Any]) -> TaskSpec:
    data = check.fields(data, "", _TASK_FIELDS, _REQUIRED_TASK_FIELDS)
    for key in ("name", "version"):
        if check.origins.get(key) != check.task_path:
            inherited = check.origins[key]
            raise check.error(key, f"must be set in the task file itself, not inherited from {inherited}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise check.error("description", f"must be a string, got {description!r}")
    concept = _concept(check, data["concept"])
    rule = _split_rule(check, data["split"])
    raw_sets = data["prompt_sets"]
    if not isinstance(raw_sets, Mapping) or not raw_sets:
        raise check.error("prompt_sets", "must map prompt set names to {source, split|prompts, metrics}")
    prompt_sets = tuple(_prompt_set(check, str(n), d, rule, concept) for n, d in raw_sets.items())
    for required in REQUIRED_PROMPT_SETS:
        if required not in raw_sets:
            raise check.error(f"prompt_sets.{required}", "missing required prompt set")
    return TaskSpec(
        name=check.string(data["name"], "name", _IDENTIFIER, "a lower-case identifier"),
        version=check.integer(data["version"], "version", 1),
        description=description.strip(),
        dataset=_dataset(check, data["dataset"]),
        concept=concept,
        split=rule,
        prompt_sets=prompt_sets,
        path=check.task_path,
    )


def load_task(path: Path | str) -> TaskSpec:
    """Load and validate one task file (following `include:`). Raises ConfigError naming file and field."""
    path = Path(path)
    data, origins = _resolve(path, ())
    return _task(_Checker(path, origins), data)


def _is_task_file(path: Path, tasks_dir: Path) -> bool:
    """Whether a YAML file under `tasks_dir` is a task: not inside a `_...` folder (fragments, templates)."""
    return not any(part.startswith(("_", ".")) for part in path.relative_to(tasks_dir).parts[:-1])


def discover_tasks(tasks_dir: Path | str) -> dict[str, Path]:
    """Task name -> file for every `*.yaml` under `tasks_dir` (recursively), skipping `_*` folders.

    Only each file's `name` is read here (use `load_task` to validate a task); a file without one, or two
    files with the same name, raise ConfigError.
    """
    tasks_dir = Path(tasks_dir)
    if not tasks_dir.is_dir():
        raise ConfigError(tasks_dir, None, "tasks folder not found")
    found: dict[str, Path] = {}
    for path in sorted(tasks_dir.rglob("*.yaml")):
        if not _is_task_file(path, tasks_dir):
            continue
        name = _read_mapping(path).get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(
                path,
                "name",
                "missing: every task file sets its own name (shared fragments for include: belong in a "
                "folder whose name starts with '_', such as tasks/_base/)",
            )
        if name in found:
            raise ConfigError(path, "name", f"task name {name!r} is also used by {found[name]}")
        found[name] = path
    return found


def find_task(name_or_path: str, tasks_dir: Path | str) -> Path:
    """The file of a task given as a path to a YAML file or as a task name under `tasks_dir`."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(candidate, None, "task file not found")
        return candidate
    tasks = discover_tasks(tasks_dir)
    if name_or_path not in tasks:
        close = difflib.get_close_matches(name_or_path, list(tasks), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(tasks))}"
        raise ConfigError(tasks_dir, None, f"no task named {name_or_path!r}{hint}")
    return tasks[name_or_path]
