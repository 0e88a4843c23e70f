"""benchmark.unlearning.closed_form: UCE's closed-form weight and RECE's adversarial embeddings, checked
against independent computations on tiny problems (float64 throughout)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from benchmark.unlearning.closed_form import (
    ClosedFormError,
    UCESettings,
    adversarial_embeddings,
    apply_uce,
    encode_edit_texts,
    erasure_values,
    layer_output,
    uce_weight,
)

D = torch.float64


def _problem(
    seed: int = 0, out: int = 5, width: int = 7, forget: int = 3, retain: int = 4
) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=D)

    return {
        "weight": draw(out, width),
        "bias": draw(out),
        "forget": draw(forget, width),
        "targets": draw(1, width).expand(forget, width).clone(),  # one target text, as the methods use it
        "retain": draw(retain, width),
    }


def _by_hand_values(weight: Tensor, bias: Tensor, forget: Tensor, targets: Tensor) -> Tensor:
    rows = []
    for c_f, c_t in zip(forget, targets, strict=True):
        y = weight @ c_f + bias
        u = y / torch.linalg.vector_norm(y)
        t = weight @ c_t + bias
        rows.append(t - torch.dot(u, t) * u)
    return torch.stack(rows)


def _least_squares(
    weight: Tensor,
    forget: Tensor,
    forget_out: Tensor,
    retain: Tensor,
    retain_out: Tensor,
    lamb: float,
    eta: float,
    p: float,
) -> Tensor:
    """argmin λ‖X − W‖² + η Σ‖X c_f − y_f‖² + p Σ‖X c_r − y_r‖², by stacking the rows and lstsq."""
    eye = torch.eye(weight.shape[1], dtype=D)
    a = torch.cat([lamb**0.5 * eye, eta**0.5 * forget, p**0.5 * retain])
    b = torch.cat([lamb**0.5 * weight.T, eta**0.5 * forget_out, p**0.5 * retain_out])
    return torch.linalg.lstsq(a, b).solution.T


def test_erasure_values_remove_the_concept_direction() -> None:
    problem = _problem()
    weight, bias, forget, targets = (problem[k] for k in ("weight", "bias", "forget", "targets"))
    values = erasure_values(weight, bias, forget, targets)
    assert torch.allclose(values, _by_hand_values(weight, bias, forget, targets), atol=1e-12)
    source = layer_output(weight, bias, forget)
    # Orthogonal to the concept's own output, which includes the bias.
    assert torch.allclose((values * source).sum(1), torch.zeros(len(forget), dtype=D), atol=1e-10)


@pytest.mark.parametrize("bias_handling", ["output", "hmu"])
def test_uce_weight_is_the_least_squares_minimiser(bias_handling: str) -> None:
    problem = _problem(seed=1)
    weight, bias, forget, targets, retain = problem.values()
    lamb, eta, p = 0.1, 0.3, 0.7
    values = _by_hand_values(weight, bias, forget, targets)
    kept = retain @ weight.T
    if bias_handling == "output":  # the layer's outputs (W'c + b) hit v* and keep W c_r + b
        forget_out, retain_out = values - bias, kept
    else:  # the HMU code fits outputs with the bias to W'c alone
        forget_out, retain_out = values, kept + bias
    expected = _least_squares(weight, forget, forget_out, retain, retain_out, lamb, eta, p)
    new = uce_weight(
        weight,
        bias,
        forget,
        targets,
        retain,
        lamb=lamb,
        erase_scale=eta,
        preserve_scale=p,
        bias_handling=bias_handling,
    )
    assert new.dtype == weight.dtype
    assert torch.allclose(new, expected, atol=1e-10)


def test_uce_weight_keeps_float32() -> None:
    problem = {key: value.float() for key, value in _problem().items()}
    new = uce_weight(*problem.values(), lamb=0.1, erase_scale=0.1, preserve_scale=0.5)
    assert new.dtype == torch.float32


def test_huge_preserve_scale_keeps_the_retain_outputs() -> None:
    weight, bias, forget, targets, retain = _problem(seed=2).values()
    before = layer_output(weight, bias, retain)
    kept = uce_weight(weight, bias, forget, targets, retain, lamb=0.1, erase_scale=0.1, preserve_scale=1e9)
    assert torch.allclose(layer_output(kept, bias, retain), before, atol=1e-6)
    # The HMU code's fit counts the bias twice: the retain outputs move by b instead of staying put.
    hmu = uce_weight(
        weight,
        bias,
        forget,
        targets,
        retain,
        lamb=0.1,
        erase_scale=0.1,
        preserve_scale=1e9,
        bias_handling="hmu",
    )
    assert torch.allclose(layer_output(hmu, bias, retain), before + bias, atol=1e-6)


def test_huge_erase_scale_moves_the_forget_outputs_to_their_targets() -> None:
    weight, bias, forget, targets, retain = _problem(seed=3).values()
    values = _by_hand_values(weight, bias, forget, targets)
    erased = uce_weight(weight, bias, forget, targets, retain, lamb=0.1, erase_scale=1e9, preserve_scale=0.0)
    assert torch.allclose(layer_output(erased, bias, forget), values, atol=1e-6)
    hmu = uce_weight(
        weight,
        bias,
        forget,
        targets,
        retain,
        lamb=0.1,
        erase_scale=1e9,
        preserve_scale=0.0,
        bias_handling="hmu",
    )
    assert torch.allclose(layer_output(hmu, bias, forget), values + bias, atol=1e-6)


def test_default_scales_move_the_forget_outputs_towards_their_targets() -> None:
    weight, bias, forget, targets, retain = _problem(seed=4).values()
    values = _by_hand_values(weight, bias, forget, targets)
    new = uce_weight(weight, bias, forget, targets, retain, lamb=0.1, erase_scale=0.1, preserve_scale=0.5)
    before = (layer_output(weight, bias, forget) - values).norm(dim=1)
    after = (layer_output(new, bias, forget) - values).norm(dim=1)
    assert bool((after < before).all())


def _edited_pair(seed: int, out: int, width: int) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """Two layers edited by UCE: (original weights, edited weights, forget embeddings)."""
    originals, edited = [], []
    for offset in range(2):
        weight, bias, forget, targets, retain = _problem(seed + offset, out=out, width=width).values()
        originals.append(weight)
        edited.append(
            uce_weight(weight, bias, forget, targets, retain, lamb=0.1, erase_scale=1.0, preserve_scale=0.5)
        )
    return originals, edited, _problem(seed, out=out, width=width)["forget"]


def test_pre_edit_adversarial_embedding_reproduces_the_erased_output() -> None:
    # 2 layers x 3 outputs < 8 inputs (as the small model: 2 x 128 < 384): the edited layers can reproduce
    # the pre-edit output of c_f exactly, up to the pull towards 0.
    originals, edited, forget = _edited_pair(seed=5, out=3, width=8)
    adversarial = adversarial_embeddings(edited, originals, forget, regularisation=1e-9)
    for new, old in zip(edited, originals, strict=True):
        assert torch.allclose(adversarial @ new.T, forget @ old.T, atol=1e-6)
        # c_f itself no longer gets that output through the edited layer: the edit did something.
        assert (forget @ new.T - forget @ old.T).norm() > 0.1
    # With the default λ_r the reproduction is approximate but far closer than c_f's.
    default = adversarial_embeddings(edited, originals, forget, regularisation=1e-3)
    miss = sum((default @ new.T - forget @ old.T).norm() for new, old in zip(edited, originals, strict=True))
    plain = sum((forget @ new.T - forget @ old.T).norm() for new, old in zip(edited, originals, strict=True))
    assert miss < 0.05 * plain


def test_adversarial_embedding_solves_its_normal_equations() -> None:
    # More outputs than inputs (as the published model: 2 x 384 > 512): no exact reproduction, the
    # least-squares solution: Σ E_lᵀ(E_l c − R_l c_f) + λ_r c = 0.
    originals, edited, forget = _edited_pair(seed=7, out=6, width=4)
    adversarial = adversarial_embeddings(edited, originals, forget, regularisation=1e-3)
    gradient = 1e-3 * adversarial
    for new, old in zip(edited, originals, strict=True):
        gradient = gradient + (adversarial @ new.T - forget @ old.T) @ new
    assert torch.allclose(gradient, torch.zeros_like(gradient), atol=1e-10)


def test_edited_weights_as_reference_give_back_the_forget_embedding() -> None:
    # The HMU code passes the edited weights as reference: the coefficient is (λ_r I + G)⁻¹ G ≈ I when G
    # has full rank, so c_adv ≈ c_f, whereas the pre-edit reference gives a different embedding.
    originals, edited, forget = _edited_pair(seed=9, out=6, width=4)
    same = adversarial_embeddings(edited, edited, forget, regularisation=1e-3)
    pre = adversarial_embeddings(edited, originals, forget, regularisation=1e-3)
    assert torch.allclose(same, forget, rtol=1e-2, atol=1e-2)
    assert (pre - forget).norm() > 10 * (same - forget).norm()
    # Rank-deficient G (outputs < inputs): c_adv is c_f's part in G's row space, with the same outputs.
    originals, edited, forget = _edited_pair(seed=11, out=3, width=8)
    same = adversarial_embeddings(edited, edited, forget, regularisation=1e-9)
    for new in edited:
        assert torch.allclose(same @ new.T, forget @ new.T, atol=1e-6)


def test_bad_arguments_name_the_field() -> None:
    weight, bias, forget, targets, retain = _problem().values()
    with pytest.raises(ClosedFormError, match="'lamb'"):
        uce_weight(weight, bias, forget, targets, retain, lamb=0.0, erase_scale=0.1, preserve_scale=0.5)
    with pytest.raises(ClosedFormError, match="'preserve_scale'"):
        UCESettings(preserve_scale=-1.0)
    with pytest.raises(ClosedFormError, match="'bias_handling'"):
        UCESettings(bias_handling="twice")  # type: ignore[arg-type]
    with pytest.raises(ClosedFormError, match="'retain'"):
        uce_weight(
            weight, bias, forget, targets, retain[:, :3], lamb=0.1, erase_scale=0.1, preserve_scale=0.5
        )
    with pytest.raises(ClosedFormError, match="'targets'"):
        erasure_values(weight, bias, forget, targets[:1])
    with pytest.raises(ClosedFormError, match="'lambda_reg'"):
        adversarial_embeddings([weight], [weight], forget, regularisation=0.0)


class _FakeEncoder:
    """Deterministic 4-d features per text (a MiniLM stand-in: no model to load)."""

    name, dim, normalised, device = "fake", 4, False, torch.device("cpu")

    def identity(self) -> dict[str, object]:
        return {"encoder": self.name, "dim": self.dim}

    def encode(self, texts: list[str]) -> Tensor:
        return torch.stack([torch.tensor([len(t), t.count("a"), t.count("e"), 1.0]) for t in texts])


def test_edit_texts_drop_retain_words_that_are_keywords() -> None:
    embeddings = encode_edit_texts(_FakeEncoder(), ["kick", "punch"], ["walk", "kick", "walk", "sit"], "")
    assert embeddings.forget_texts == ("kick", "punch")
    assert embeddings.retain_texts == ("walk", "sit")
    assert embeddings.forget.shape == (2, 4) and embeddings.retain.shape == (2, 4)
    assert torch.equal(embeddings.targets, torch.tensor([[0.0, 0, 0, 1]] * 2))
    with pytest.raises(ClosedFormError, match=r"'retain_words\[1\]'"):
        encode_edit_texts(_FakeEncoder(), ["kick"], ["walk", ""], "")


def test_apply_uce_edits_the_weights_in_place_and_keeps_the_biases() -> None:
    torch.manual_seed(0)
    layers = {"a": nn.Linear(4, 3), "b": nn.Linear(4, 3)}
    before = {
        name: (layer.weight.detach().clone(), layer.bias.detach().clone()) for name, layer in layers.items()
    }
    embeddings = encode_edit_texts(_FakeEncoder(), ["kick"], ["walk", "sit"], "")
    apply_uce(layers, embeddings.forget, embeddings.targets, embeddings.retain, UCESettings())
    for name, layer in layers.items():
        weight, bias = before[name]
        expected = uce_weight(
            weight,
            bias,
            embeddings.forget,
            embeddings.targets,
            embeddings.retain,
            lamb=0.1,
            erase_scale=0.1,
            preserve_scale=0.5,
        )
        assert torch.equal(layer.weight.detach(), expected)
        assert torch.equal(layer.bias.detach(), bias)
