"""Every unlearning method moves the metrics the right way on a small trained model (the trained world of
unlearning_support: a generated dataset, a trained backbone, the real trained evaluator).

Each method runs through the entrypoint (unlearn, then generate, as its container would) and its motions are
scored against the `original` method's on the same plan:

- forget side: the concept detection rate and NCS@5 of the forget test prompts fall by more than the
  original's 95 % CI half-width (a fall within the noise of the evaluation does not count);
- retain side: the retain test prompts' FID grows by at most `fid` (a share of the original's) and their
  R-precision (top 1) drops by at most `r_precision` (absolute). The same tolerances are stated in each
  method's README.

A method that does not move a metric at this size says so with a strict xfail (its README explains why):
the test fails the day it starts to move it, so the claim is kept checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from unlearning_support import ScoredRun, TrainedWorld, run_and_score, state, trained_world

from benchmark.backbone.model import load_model

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Expectation:
    parameters: dict[str, Any]
    """Parameters of the run (the method's defaults where empty)."""
    fid: float
    """Largest growth of the retain FID allowed, as a share of the original's."""
    r_precision: float
    """Largest drop of the retain R-precision (top 1) allowed, absolute."""


EXPECTED: dict[str, Expectation] = {
    "lcr": Expectation({}, fid=0.10, r_precision=0.05),
    "uce": Expectation({}, fid=0.10, r_precision=0.05),
    "rece": Expectation({}, fid=0.10, r_precision=0.05),
    "code_ban": Expectation({}, fid=0.10, r_precision=0.05),
    "retrain": Expectation({}, fid=0.10, r_precision=0.05),
    "finetune": Expectation({}, fid=0.10, r_precision=0.05),
    "graddiff": Expectation({}, fid=0.10, r_precision=0.05),
}

NOT_MOVED = {
    "finetune": "fine-tuning on the retain set does not lower the forget metrics beyond the noise at this "
    "size (methods/finetune/README.md)",
}
"""Methods whose forget-side direction is not shown at this size, and why."""


SHOWN = (
    ("forget_test", "concept_detection_rate"),
    ("forget_test", "ncs_at_5"),
    ("retain_test", "fid"),
    ("retain_test", "r_precision_top1"),
)
"""The values printed for each run (`pytest -s`): the numbers the methods' READMEs quote."""


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> TrainedWorld:
    return trained_world(tmp_path_factory)


@pytest.fixture(scope="session")
def scored(world: TrainedWorld) -> Callable[[str], ScoredRun]:
    """Each method's run, made on first use and shared by the tests of the session."""
    runs: dict[str, ScoredRun] = {}

    def get(method: str) -> ScoredRun:
        if method not in runs:
            parameters = EXPECTED[method].parameters if method in EXPECTED else {}
            run = runs[method] = run_and_score(world, method, parameters)
            values = ", ".join(
                f"{prompt_set} {metric} {run.value(prompt_set, metric):.3f}" for prompt_set, metric in SHOWN
            )
            print(f"\n[direction] {method}: unlearn {run.seconds:.1f} s; {values}")  # pytest -s shows it
        return runs[method]

    return get


def _forget_params() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_MOVED[name]))
        if name in NOT_MOVED
        else name
        for name in EXPECTED
    ]


@pytest.mark.parametrize("method", _forget_params())
@pytest.mark.parametrize("metric", ["concept_detection_rate", "ncs_at_5"])
def test_forget_side_falls(scored: Callable[[str], ScoredRun], method: str, metric: str) -> None:
    original, run = scored("original"), scored(method)
    before = original.report.prompt_set("forget_test").metric(metric).result
    after = run.value("forget_test", metric)
    assert before.ci95 is not None  # the world evaluates several repeats
    message = f"{method}: forget {metric} {after:.3f}, original {before.value:.3f} ± {before.ci95:.3f}"
    assert after < before.value - before.ci95, message


@pytest.mark.parametrize("method", list(EXPECTED))
def test_retain_side_within_tolerance(scored: Callable[[str], ScoredRun], method: str) -> None:
    original, run = scored("original"), scored(method)
    expected = EXPECTED[method]
    fid, fid_before = run.value("retain_test", "fid"), original.value("retain_test", "fid")
    assert fid <= fid_before * (1 + expected.fid), (
        f"{method}: retain FID {fid:.3f}, original {fid_before:.3f}"
    )
    top1 = run.value("retain_test", "r_precision_top1")
    top1_before = original.value("retain_test", "r_precision_top1")
    assert top1 >= top1_before - expected.r_precision, (
        f"{method}: retain R-precision {top1:.3f}, original {top1_before:.3f}"
    )


# ----------------------------------------------------------------------------- what each method changed


def _changed(world: TrainedWorld, model: Path) -> set[str]:
    before, after = state(world.base), state(model)
    return {key for key in before if not torch.equal(before[key], after[key])}


def test_finetune_changes_the_transformers_only(world, scored) -> None:
    changed = _changed(world, scored("finetune").model)
    assert changed and all(
        key.split(".")[0] in ("mask_transformer", "residual_transformer") for key in changed
    )


def test_graddiff_changes_the_masked_transformer_only(world, scored) -> None:
    changed = _changed(world, scored("graddiff").model)
    assert changed and all(key.startswith("mask_transformer.") for key in changed)
    record = load_model(scored("graddiff").model).card.provenance["record"]
    assert record["final"]["forget_loss"] > record["final"]["retain_loss"]  # the ascent took hold


def test_code_ban_changes_no_weight(world, scored) -> None:
    run = scored("code_ban")
    assert _changed(world, run.model) == set()
    record = load_model(run.model).card.provenance["record"]
    assert record["mode"] == "forbid" and len(record["banned_codes"]) == 1 and record["banned_codes"][0]


def test_retrain_repeats_the_base_recipe_without_the_forget_set(world, scored) -> None:
    run = scored("retrain")
    trained = {name for name, _ in load_model(world.base).backbone.named_parameters()}
    assert trained <= _changed(world, run.model)  # every weight trained afresh
    base = load_model(world.base).card.provenance["parts"]
    record = load_model(run.model).card.provenance["record"]
    train_ids = (world.data / "train.txt").read_text().split()
    removed = len(set(train_ids) & set(world.forget))
    assert record["split"] == "train" and record["forget_ids_removed"] == removed > 0
    assert record["train_ids"] == len(train_ids) - removed and record["same_data_as_base"] is True
    for name, part in record["parts"].items():
        assert {**part["settings"], "seed": 3407} == base[name]["settings"]  # only the seed is the run's
        assert part["steps"] == base[name]["steps"] and part["split"] == "train"
    # The record is part of the model hash: no path that changes from run to run.
    assert "/" not in json.dumps(record)
