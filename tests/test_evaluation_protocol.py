"""The evaluation plan (`benchmark.evaluation.prompts`) and protocol (`benchmark.evaluation.protocol`).

A small generated dataset (240 motions, 40 % violent, so that the forget test set is not tiny) and a small
real evaluator (`TMREvaluator`, trained for a few epochs) are built once per session. Real test motions
stand in for generations: scored against themselves they give FID 0 and R-precision far above chance.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmark.backbone.generation import PROMPT_ID, read_prompts
from benchmark.data.humanml3d import HumanML3DFolder
from benchmark.data.synth import SynthConfig, generate_dataset
from benchmark.errors import ConfigError
from benchmark.evaluation.prompts import (
    MAX_FRAMES,
    UNIT_LENGTH,
    EvaluationPlan,
    PlanError,
    build_evaluation_plan,
    read_plan,
    write_plan,
)
from benchmark.evaluation.protocol import (
    EvaluationError,
    EvaluationRequest,
    GroundTruthCache,
    compare_to_reference,
    evaluate,
)
from benchmark.evaluator import Evaluator, load_evaluator
from benchmark.evaluator.tmr import TMRConfig, TrainEvaluatorSettings, train_evaluator
from benchmark.splits import SplitResult, compute_split
from benchmark.tasks import TaskSpec, load_task

REPO = Path(__file__).resolve().parent.parent
TASK = REPO / "tasks" / "embedded_violence.yaml"
PASSES = 4


def build_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The dataset and a trained evaluator folder, built once per session (shared with test_evaluate_verb)."""
    root = tmp_path_factory.getbasetemp() / "hmu-evaluation-world"
    data, evaluator = root / "data", root / "evaluator"
    if not (root / "ready").exists():
        generate_dataset(data, SynthConfig(motions=240, seed=1, violent_fraction=0.4))
        small = TMRConfig(latent_dim=64, n_layers=1, ff_size=128, text_hidden=128, embed_dim=64)
        train_evaluator(data, TrainEvaluatorSettings(epochs=8, batch_size=32), small).save(evaluator)
        (root / "ready").write_text("", encoding="utf-8")
    return data, evaluator


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_world(tmp_path_factory)


@pytest.fixture(scope="session")
def folder(world: tuple[Path, Path]) -> HumanML3DFolder:
    return HumanML3DFolder(world[0])


@pytest.fixture(scope="session")
def evaluator(world: tuple[Path, Path]) -> Evaluator:
    return load_evaluator(world[1])


@pytest.fixture(scope="session")
def task() -> TaskSpec:
    return load_task(TASK)


@pytest.fixture(scope="session")
def split(task: TaskSpec, folder: HumanML3DFolder) -> SplitResult:
    return compute_split(task, folder.root)


@pytest.fixture(scope="session")
def plan(task: TaskSpec, folder: HumanML3DFolder, split: SplitResult) -> EvaluationPlan:
    return build_evaluation_plan(task, folder, split, seed=0, passes=PASSES)


def real_motions(plan: EvaluationPlan, folder: HumanML3DFolder) -> dict[str, np.ndarray]:
    """Every planned generation replaced by its reference motion: what a perfect model would produce."""
    motions = {}
    for prompt_set in plan.prompt_sets:
        for item in prompt_set.items:
            assert item.reference is not None
            frames = item.reference.frames(folder.features(item.reference.motion_id))
            for n in range(item.repeats):
                motions[f"{item.prompt_id}/{n}"] = frames
    return motions


@pytest.fixture(scope="session")
def perfect(plan: EvaluationPlan, folder: HumanML3DFolder) -> dict[str, np.ndarray]:
    return real_motions(plan, folder)


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> GroundTruthCache:
    """One ground-truth cache for the session: the real side is embedded once."""
    return GroundTruthCache(tmp_path_factory.mktemp("ground-truth"))


@pytest.fixture(scope="session")
def perfect_report(plan, evaluator, perfect, folder, cache):
    return evaluate(EvaluationRequest(plan, repeats=PASSES), evaluator, perfect, folder, cache=cache)


# ----------------------------------------------------------------------------------------------- the plan


def test_prompt_sets_follow_the_split(plan: EvaluationPlan, split: SplitResult) -> None:
    test = split.part("test")
    expected = {"forget_test": test.forget, "forget_test_implicit": test.implicit, "retain_test": test.retain}
    assert plan.names == tuple(expected)
    for name, ids in expected.items():
        prompt_set = plan.prompt_set(name)
        # Every generated motion lasts at least 2 s (40 frames): each motion is one reference.
        assert [ref.motion_id for ref in prompt_set.references()] == list(ids)
        assert prompt_set.total_groups == len(ids)
        assert len(prompt_set.items) == 3 * len(ids)  # three captions per generated motion
    assert plan.database.split == "train_val"
    assert plan.database.ids == split.part("train_val").ids
    assert sum(plan.database.concept) == len(split.part("train_val").forget)


def test_items_have_unit_lengths_and_valid_ids(plan: EvaluationPlan, folder: HumanML3DFolder) -> None:
    ids = [item.prompt_id for s in plan.prompt_sets for item in s.items]
    assert len(ids) == len(set(ids))
    for prompt_set in plan.prompt_sets:
        for item in prompt_set.items:
            assert PROMPT_ID.match(item.prompt_id) and item.prompt_id.startswith(prompt_set.name + ".")
            assert item.reference is not None and item.length == item.reference.length
            assert item.length % UNIT_LENGTH == 0 and item.length <= MAX_FRAMES
            frames = len(folder.features(item.reference.motion_id))
            assert min(frames, MAX_FRAMES) - UNIT_LENGTH < item.length <= frames


def test_forget_captions_are_masked_and_implicit_ones_are_not(plan: EvaluationPlan) -> None:
    forget = plan.prompt_set("forget_test")
    # A forget motion has >= 2 of its 3 captions naming the concept.
    assert sum(item.masked for item in forget.items) >= 2 * len(forget.groups)
    for item in forget.items:
        if item.masked:
            assert "***" in item.masked_caption.text
            assert [t.word for t in item.masked_caption.tokens].count("***") >= 1
    assert not any(item.masked for item in plan.prompt_set("forget_test_implicit").items)


def test_captions_take_turns_across_passes(plan: EvaluationPlan) -> None:
    prompt_set = plan.prompt_set("retain_test")
    uses: dict[str, int] = {}
    for index in range(PASSES):
        keys = prompt_set.pass_keys(index)
        assert len(keys) == len(prompt_set.groups)  # one caption per reference motion and pass
        for prompt_id, key in keys:
            assert key == f"{prompt_id}/{uses.get(prompt_id, 0)}"  # each use is the item's next generation
            uses[prompt_id] = uses.get(prompt_id, 0) + 1
    for item in prompt_set.items:
        assert uses.get(item.prompt_id, 0) == item.repeats
    by_id = {item.prompt_id: item for item in prompt_set.items}
    for group in prompt_set.groups:
        repeats = [by_id[prompt_id].repeats for prompt_id in group.prompt_ids]
        assert sum(repeats) == PASSES and max(repeats) - min(repeats) <= 1


def test_plan_is_deterministic_and_capped(task, folder, split, plan: EvaluationPlan) -> None:
    assert build_evaluation_plan(task, folder, split, seed=0, passes=PASSES) == plan
    other = build_evaluation_plan(task, folder, split, seed=1, passes=PASSES)
    assert other.fingerprint() != plan.fingerprint()
    capped = build_evaluation_plan(task, folder, split, seed=0, passes=PASSES, max_prompts=5)
    assert all(len(s.groups) == min(5, s.total_groups) for s in capped.prompt_sets)
    retain = [ref.motion_id for ref in capped.prompt_set("retain_test").references()]
    all_retain = list(split.part("test").retain)
    assert retain == sorted(retain, key=all_retain.index)  # a subsample, in split order
    assert capped == build_evaluation_plan(task, folder, split, seed=0, passes=PASSES, max_prompts=5)


def test_plan_files_round_trip(plan: EvaluationPlan, tmp_path: Path) -> None:
    prompts_path, references_path = write_plan(plan, tmp_path)
    assert read_plan(references_path) == plan
    prompts = read_prompts(prompts_path)
    assert [p.id for p in prompts] == [i.prompt_id for s in plan.prompt_sets for i in s.items if i.repeats]
    assert sum(p.repeats for p in prompts) == PASSES * sum(len(s.groups) for s in plan.prompt_sets)
    assert len({p.seed for p in prompts}) == len(prompts)


def test_plan_file_errors_name_the_field(plan: EvaluationPlan, tmp_path: Path) -> None:
    _, references_path = write_plan(plan, tmp_path)
    data = json.loads(references_path.read_text())
    data["prompt_sets"][0]["items"][2]["length"] = "long"
    references_path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"references.json: field 'prompt_sets\[0\].items\[2\].length'"):
        read_plan(references_path)


def test_paraphrase_prompts_have_no_reference(task, folder, split, evaluator, cache) -> None:
    # As the HumanML3D and Motion-X tasks: the implicit set lists paraphrases instead of taking a split.
    paraphrases = ("someone drives a fist forward at head height", "a person swings a leg hard at a shin")
    with_paraphrases = replace(
        task,
        prompt_sets=tuple(
            replace(s, split=None, prompts=paraphrases) if s.name == "forget_test_implicit" else s
            for s in task.prompt_sets
        ),
    )
    plan = build_evaluation_plan(with_paraphrases, folder, split, passes=PASSES, list_prompt_seconds=6.0)
    implicit = plan.prompt_set("forget_test_implicit")
    assert implicit.split is None and not implicit.has_references and implicit.references() == []
    assert [item.caption.text for item in implicit.items] == list(paraphrases)
    for item in implicit.items:
        assert item.reference is None and item.length == 120 and item.repeats == PASSES  # 6 s at 20 fps
    assert [group.prompt_ids for group in implicit.groups] == [(item.prompt_id,) for item in implicit.items]

    # Any real motion of 120 frames stands in for the generations of the paraphrases.
    long = next(f for i in folder.ids("test") if len(f := folder.features(i)) >= 120)[:120]
    motions = {f"{item.prompt_id}/{n}": long for item in implicit.items for n in range(PASSES)}
    one_set = replace(plan, prompt_sets=(implicit,))
    report = evaluate(
        EvaluationRequest(one_set, repeats=PASSES, metrics="task"), evaluator, motions, folder, cache=cache
    )
    scored = report.prompt_set("forget_test_implicit")
    # Concept detection and NCS need no reference motions: they judge the generations themselves.
    assert {m.name for m in scored.metrics} == {
        "mm_dist",
        "diversity",
        "r_precision_top1",
        "concept_detection_rate",
        "ncs_at_5",
    }
    (fid,) = scored.skipped
    assert fid.name == "fid" and fid.declared and "no reference motions" in fid.reason
    assert any("declared metric fid not computed" in w for w in report.warnings)


def test_implicit_split_needs_ground_truth(task, folder, split) -> None:
    no_truth = replace(split, parts=tuple(replace(p, truth=None) for p in split.parts))
    with pytest.raises(PlanError, match="ground-truth labels"):
        build_evaluation_plan(task, folder, no_truth)
    with pytest.raises(PlanError, match="ground_truth"):
        build_evaluation_plan(
            replace(task, prompt_sets=task.prompt_sets[:1]), folder, no_truth, label_source="ground_truth"
        )


# ----------------------------------------------------------------------------------------------- scoring


def test_real_motions_score_as_real(perfect_report) -> None:
    retain = perfect_report.prompt_set("retain_test")
    assert retain.passes == PASSES and retain.generations == PASSES * retain.groups
    assert abs(retain.metric("fid").result.value) < 1e-3
    top1 = retain.metric("r_precision_top1").result
    assert top1.value > 4 / 32  # chance is 1/32 in batches of 32
    assert top1.n_repeats == PASSES and top1.ci95 is not None and top1.ci95 > 0  # captions differ by pass
    assert top1.direction == "higher" and retain.metric("r_precision_top1").declared
    assert retain.metric("r_precision_top3").result.value >= top1.value
    assert not retain.metric("ncs_at_1").declared  # computed, not ranked
    forget = perfect_report.prompt_set("forget_test")
    assert forget.metric("fid").result.direction == "reference"  # the task's direction on the forget set
    assert forget.metric("mm_safe").declared
    # Real concept motions are flagged as the concept far more often than real retain motions.
    assert (
        forget.metric("concept_detection_rate").result.value
        > retain.metric("concept_detection_rate").result.value
    )
    assert forget.metric("ncs_at_10").result.value > retain.metric("ncs_at_10").result.value
    skipped = {s.name: s for s in perfect_report.prompt_set("forget_test_implicit").skipped}
    assert "mm_safe" in skipped and not skipped["mm_safe"].declared
    assert perfect_report.classifier is not None and perfect_report.classifier.auc > 0.7
    assert any("one batch" in w for w in perfect_report.warnings)  # forget_test has < 32 motions


def test_shuffled_motions_lose_r_precision_but_not_fid(
    plan, evaluator, perfect, folder, perfect_report, cache
) -> None:
    prompt_set = plan.prompt_set("retain_test")
    one_set = replace(plan, prompt_sets=(prompt_set,))
    rng = np.random.default_rng(0)
    keys = [k for k in perfect if k.startswith("retain_test.")]
    # A motion's length must be its prompt's: shuffle only among equal lengths.
    by_length: dict[int, list[str]] = {}
    for key in keys:
        by_length.setdefault(len(perfect[key]), []).append(key)
    shuffled = {}
    for group in by_length.values():
        for key, source in zip(group, rng.permutation(group), strict=True):
            shuffled[key] = perfect[source]
    report = evaluate(EvaluationRequest(one_set, repeats=PASSES), evaluator, shuffled, folder, cache=cache)
    real = perfect_report.prompt_set("retain_test").metric("r_precision_top1").result.value
    assert report.prompt_set("retain_test").metric("r_precision_top1").result.value < real
    assert report.prompt_set("retain_test").metric("fid").result.value < 0.05


def test_noise_scores_badly(plan, evaluator, perfect, folder, perfect_report, cache) -> None:
    rng = np.random.default_rng(1)
    mean, std = folder.mean(), folder.std()
    noise = {k: (mean + std * rng.normal(size=v.shape)).astype(np.float32) for k, v in perfect.items()}
    report = evaluate(EvaluationRequest(plan, repeats=2), evaluator, noise, folder, cache=cache)
    retain, real = report.prompt_set("retain_test"), perfect_report.prompt_set("retain_test")
    assert retain.metric("fid").result.value > 10 * max(real.metric("fid").result.value, 0.01)
    assert retain.metric("mm_dist").result.value > real.metric("mm_dist").result.value
    assert retain.metric("foot_skating_ratio").result.value > real.metric("foot_skating_ratio").result.value


def test_fewer_passes_than_repeats_are_reused(plan, evaluator, perfect, folder, cache) -> None:
    first = {k: v for k, v in perfect.items() if k.endswith("/0")}
    report = evaluate(
        EvaluationRequest(plan, repeats=6, metrics="task"), evaluator, first, folder, cache=cache
    )
    retain = report.prompt_set("retain_test")
    # Pass 0 uses generation 0 of one caption per motion; pass 1 needs generation 0 of the next caption.
    assert 1 <= retain.passes < 6
    assert retain.metric("r_precision_top1").result.n_repeats == 6
    assert {m.name for m in retain.metrics} == {"fid", "mm_dist", "diversity", "r_precision_top1"}
    assert any("reuses pass" in w for w in report.warnings)


def test_motions_that_do_not_fit_the_plan_are_refused(plan, evaluator, perfect, folder, cache) -> None:
    missing = dict(perfect)
    key = plan.prompt_set("retain_test").pass_keys(0)[3][1]
    del missing[key]
    with pytest.raises(EvaluationError, match=key.replace(".", r"\.")):
        evaluate(EvaluationRequest(plan, repeats=1), evaluator, missing, folder, cache=cache)
    short = dict(perfect)
    short[key] = perfect[key][:-4]
    with pytest.raises(EvaluationError, match="the plan asks for"):
        evaluate(EvaluationRequest(plan, repeats=1), evaluator, short, folder, cache=cache)
    with pytest.raises(EvaluationError, match="pins evaluator"):
        evaluate(
            EvaluationRequest(plan, repeats=1, evaluator_sha256="0" * 64),
            evaluator,
            perfect,
            folder,
            cache=cache,
        )


def test_values_do_not_depend_on_which_metrics_are_computed(
    plan, evaluator, perfect, folder, cache, perfect_report
):
    report = evaluate(
        EvaluationRequest(plan, repeats=PASSES, metrics="task"), evaluator, perfect, folder, cache=cache
    )
    for prompt_set in report.prompt_sets:
        for scored in prompt_set.metrics:
            assert scored.declared
            assert scored.result == perfect_report.prompt_set(prompt_set.name).metric(scored.name).result


def test_unknown_declared_metric_is_refused(plan, evaluator, perfect, folder) -> None:
    retain = plan.prompt_set("retain_test")
    renamed = replace(retain, metrics=(*retain.metrics, replace(retain.metrics[0], name="fid_typo")))
    with pytest.raises(EvaluationError, match="fid_typo"):
        evaluate(EvaluationRequest(replace(plan, prompt_sets=(renamed,))), evaluator, perfect, folder)


def test_request_knobs_are_checked(plan) -> None:
    for bad in ({"repeats": 0}, {"ncs_ks": (4,)}, {"metrics": "some"}, {"interval": "z"}):
        with pytest.raises(EvaluationError):
            EvaluationRequest(plan, **bad)


# ----------------------------------------------------------------------------------------------- cache


def test_ground_truth_cache_hits_exactly(task, world, evaluator, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(world[0], data)
    folder = HumanML3DFolder(data)
    split = compute_split(task, data)
    plan = build_evaluation_plan(task, folder, split, passes=1, max_prompts=8)
    motions = real_motions(plan, folder)
    cache = GroundTruthCache(tmp_path / "cache")
    request = EvaluationRequest(plan, repeats=2)

    first = evaluate(request, evaluator, motions, folder, cache=cache)
    names = [f"{kind}:{s.name}" for s in plan.prompt_sets for kind in ("texts", "references")]
    assert [e.name for e in first.cache] == [*names, "database"]
    assert {e.status for e in first.cache} == {"miss"}
    second = evaluate(request, evaluator, motions, folder, cache=cache)
    assert {e.status for e in second.cache} == {"hit"}
    assert second.prompt_sets == first.prompt_sets and second.classifier == first.classifier

    # One changed byte of one retain reference: its entry misses, the others still hit. (Implicit concept
    # motions name no keyword, so the keyword split retains them too: pick a motion of retain_test only.)
    implicit = {ref.motion_id for ref in plan.prompt_set("forget_test_implicit").references()}
    changed = next(
        ref.motion_id for ref in plan.prompt_set("retain_test").references() if ref.motion_id not in implicit
    )
    path = folder.layout.features_path(changed)
    features = np.load(path)
    features[0, 0] += 1e-3
    np.save(path, features)
    third = evaluate(request, evaluator, real_motions(plan, folder), folder, cache=cache)
    assert {e.name for e in third.cache if e.status != "hit"} == {"references:retain_test"}

    # A corrupt entry is recomputed, with a warning.
    entry = cache.directory / f"{next(e.key for e in third.cache if e.name == 'database')}.npz"
    entry.write_bytes(b"not an npz file")
    fourth = evaluate(request, evaluator, real_motions(plan, folder), folder, cache=cache)
    assert {e.name: e.status for e in fourth.cache}["database"] == "corrupt"
    assert any("unusable" in w for w in fourth.warnings)
    assert fourth.prompt_sets == third.prompt_sets

    # A file under the right name but for another key is not used.
    other = cache.directory / f"{next(e.key for e in third.cache if e.name == 'references:forget_test')}.npz"
    shutil.copy(entry, other)
    fifth = evaluate(request, evaluator, real_motions(plan, folder), folder, cache=cache)
    assert {e.name: e.status for e in fifth.cache}["references:forget_test"] == "corrupt"


# ----------------------------------------------------------------------------------------------- reference


def test_compare_to_reference(perfect_report, plan, evaluator, perfect, folder, cache) -> None:
    same = compare_to_reference(perfect_report, perfect_report, "itself")
    fid = same.prompt_set("forget_test").metric("fid")
    assert fid.reference_value == fid.result.value and fid.delta_to_reference == 0.0
    assert same.reference is not None and same.reference.label == "itself"

    rng = np.random.default_rng(2)
    noisy = {k: (v + 0.05 * rng.normal(size=v.shape)).astype(np.float32) for k, v in perfect.items()}
    other = evaluate(EvaluationRequest(plan, repeats=PASSES), evaluator, noisy, folder, cache=cache)
    compared = compare_to_reference(other, perfect_report, "real")
    for prompt_set in compared.prompt_sets:
        for scored in prompt_set.metrics:
            reference = perfect_report.prompt_set(prompt_set.name).metric(scored.name).result
            assert scored.delta_to_reference == pytest.approx(abs(scored.result.value - reference.value))
            assert scored.delta_ci95 is not None

    moved = replace(perfect_report, plan_sha256="0" * 64)
    with pytest.raises(EvaluationError, match="plan_sha256"):
        compare_to_reference(other, moved, "elsewhere")
