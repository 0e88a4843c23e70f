"""The pieces of the training-based methods (`benchmark.unlearning.training`: recipe, continued settings, the
time budget) and of `code_ban`'s sampling hook, on random small models; the methods end to end on a trained
model are test_method_direction.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from unlearning_support import REPO_METHODS, make_dataset, make_model, method_module, split_ids, write_request

from benchmark.api.entrypoint import EXIT_METHOD_FAILED, run_stage
from benchmark.api.method import MethodError
from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.model import load_model
from benchmark.backbone.transformers import MaskTransformer, SamplingStep
from benchmark.cli.main import main
from benchmark.errors import ConfigError
from benchmark.training import TrainSettings
from benchmark.unlearning.training import BudgetExceeded, TimeBudget, continued, recipe_settings

code_ban = method_module("code_ban")
graddiff = method_module("graddiff")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("training")
    data = make_dataset(root / "data")
    return {"root": root, "data": data, "model": make_model(root / "base", data)}


def _unlearn(world: dict[str, Path], method: str, run: str, **request: object) -> tuple[int, dict]:
    forget, retain = split_ids(world["data"])
    folder = write_request(world["root"] / f"in-{run}", world["model"], world["data"], forget, retain)
    data = json.loads((folder / "request.json").read_text())
    data.update(request)
    (folder / "request.json").write_text(json.dumps(data))
    output = world["root"] / f"out-{run}"
    code = run_stage("unlearn", method, folder, output, [REPO_METHODS])
    return code, json.loads((output / "result.json").read_text())


# ----------------------------------------------------------------------------- recipe


def test_settings_round_trip_through_the_provenance() -> None:
    settings = TrainSettings.small("mask")
    again = TrainSettings.from_provenance(settings.provenance(), "model.json", "provenance.parts.x.settings")
    assert again == settings
    with pytest.raises(ConfigError, match=r"field 'provenance.parts.x.settings.lr': missing"):
        data = settings.provenance()
        del data["lr"]
        TrainSettings.from_provenance(data, "model.json", "provenance.parts.x.settings")
    with pytest.raises(ConfigError, match=r"settings.rate': unknown field"):
        TrainSettings.from_provenance(
            {**settings.provenance(), "rate": 1}, "model.json", "provenance.parts.x.settings"
        )


def test_a_model_without_a_training_record_needs_a_named_recipe(world: dict[str, Path]) -> None:
    model = load_model(world["model"])  # made by hand: provenance {"kind": "trained", "recipe": "random"}
    with pytest.raises(MethodError, match="set the parameter recipe to small or published"):
        recipe_settings(model, "mask", "base")
    assert recipe_settings(model, "mask", "small") == TrainSettings.small("mask")
    assert recipe_settings(model, "rvq", "published") == TrainSettings.published("rvq")
    code, result = _unlearn(world, "retrain", "retrain-no-record")
    assert code == EXIT_METHOD_FAILED and "no training record of the rvq" in result["error"]


def test_continued_training_starts_where_the_schedule_ended() -> None:
    settings = continued(TrainSettings.small("mask"), 0.25, 2.0, 7, "cpu")
    # small mask: 1000 steps at 3e-3, one decay by 0.1 at step 800 -> 250 steps at 2 x 3e-4, flat, seeded 7.
    assert settings.steps == 250 and settings.lr == pytest.approx(6e-4)
    assert settings.warmup_steps == 0 and settings.milestones == () and settings.seed == 7
    published = continued(TrainSettings.published("residual"), 0.5, 1.0, 0, "cuda")
    assert published.epochs == 250 and published.steps is None and published.lr == pytest.approx(2e-5)
    with pytest.raises(MethodError, match="steps_fraction"):
        continued(TrainSettings.small("mask"), 0.0, 1.0, 0, "cpu")


# ----------------------------------------------------------------------------- time budget


def test_the_budget_stops_a_run_projected_past_it() -> None:
    budget = TimeBudget(100.0)
    hook = budget.hook("finetune mask")
    assert hook is not None and TimeBudget(None).hook("x") is None
    hook(5, 10_000, 1.0)  # too few steps timed to project
    hook(10, 50, 2.0)  # 0.2 s per step: 10 s more, well within
    with pytest.raises(BudgetExceeded, match=r"finetune mask: projected to end after \d+ s"):
        hook(10, 10_000, 2.0)  # 2,000 s more
    budget.started -= 99.0  # 99 s spent: past the usable 95 s whatever is left
    with pytest.raises(BudgetExceeded, match="99 s spent"):
        hook(1, 1, 0.1)


def test_a_training_method_stops_early_when_its_budget_cannot_hold(world: dict[str, Path]) -> None:
    """finetune with the small recipe (1,000 steps) and a 30-second budget: stopped at step 10, not
    killed at the limit."""
    code, result = _unlearn(world, "finetune", "budget", parameters={"recipe": "small"}, time_budget_s=30.0)
    assert code == EXIT_METHOD_FAILED and result["error_type"] == "BudgetExceeded"
    assert "finetune mask: projected to end after" in result["error"] and result["wall_seconds"] < 30


# ----------------------------------------------------------------------------- graddiff and code_ban


def test_paired_items_cycle_the_forget_side() -> None:
    retain, forget = list(range(7)), ["a", "b", "c"]
    pairs = graddiff.PairedItems(retain, forget)  # any sequences: the pairing is by index
    assert len(pairs) == 7 and [pairs[i] for i in (0, 3, 6)] == [(0, "a"), (3, "a"), (6, "a")]
    with pytest.raises(MethodError):
        graddiff.PairedItems(retain, [])


def test_banned_codes_are_never_sampled() -> None:
    torch.manual_seed(0)
    mask = MaskTransformer(BackboneConfig.small().mask).eval()
    cond = torch.randn(4, mask.cfg.cond_dim)
    free = mask.generate(cond, [12, 12, 8, 5], timesteps=3, generator=torch.Generator().manual_seed(0))
    banned = sorted({int(code) for code in free[free >= 0].tolist()})[:40]  # codes it does pick
    process = code_ban.ban_codes([banned], "forbid", None)
    ids = mask.generate(
        cond,
        [12, 12, 8, 5],
        timesteps=3,
        generator=torch.Generator().manual_seed(0),
        logits_processor=process,
    )
    assert not set(ids[ids >= 0].tolist()) & set(banned)


def test_the_processor_acts_on_the_listed_layers_only() -> None:
    logits = torch.zeros(1, 2, 6)
    step = SamplingStep(layer=0, step=0, num_steps=1, ids=torch.zeros(1, 2), padding_mask=torch.zeros(1, 2))
    forbid = code_ban.ban_codes([[1, 4]], "forbid", None)
    out = forbid(logits, step)
    assert torch.isinf(out[..., [1, 4]]).all() and (out[..., [0, 2, 3, 5]] == 0).all()
    assert (logits == 0).all()  # a copy: the caller's logits are untouched
    down = code_ban.ban_codes([[1], [2]], "downweight", 4.0)
    residual = SamplingStep(layer=1, step=0, num_steps=1, ids=step.ids, padding_mask=step.padding_mask)
    assert down(logits, residual)[0, 0].tolist() == [0, 0, -4, 0, 0, 0]
    above = SamplingStep(layer=2, step=0, num_steps=1, ids=step.ids, padding_mask=step.padding_mask)
    assert torch.equal(down(logits, above), logits)


def test_methods_validate() -> None:
    assert main(["methods", "validate", "retrain", "finetune", "graddiff", "code_ban"]) == 0
