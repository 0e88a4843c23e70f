"""The Guo et al. evaluator loader (`benchmark.evaluator.guo`) on files built with the documented names and
shapes (random weights, a tiny vocabulary): loading, the original computation, tokens, lengths, errors."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from benchmark.data.captions import Caption, Token, parse_caption_line
from benchmark.errors import ConfigError
from benchmark.evaluator import Evaluator, EvaluatorError, load_evaluator
from benchmark.evaluator.guo import (
    POS_CLASSES,
    GuoConfig,
    GuoEvaluator,
    GuoFiles,
    GuoNetworks,
    WordVectorizer,
    write_guo_files,
)

WORDS = ["a", "man", "person", "kick", "walk", "forward", "left", "leg", "slowly", "the", "with", "his"]

CAPTIONS = [
    "a man kicks.#a/DET man/NOUN kick/VERB#0.0#0.0",
    "a person walks forward slowly.#a/DET person/NOUN walk/VERB forward/ADV slowly/ADV#0.0#0.0",
    "the man kicks with his left leg.#the/DET man/NOUN kick/VERB with/ADP his/PRON left/ADJ leg/NOUN#0.0#0.0",
    "a zebra gallops.#a/DET zebra/NOUN gallop/VERB#0.0#0.0",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> GuoFiles:
    """MoMask's layout: <root>/checkpoints/t2m/{text_mot_match,Comp_v6_KLD005} and <root>/glove."""
    root = tmp_path_factory.mktemp("guo")
    rng = np.random.default_rng(0)
    mean = rng.normal(size=263).astype(np.float32)
    std = rng.uniform(0.5, 2.0, size=263).astype(np.float32)
    return write_guo_files(root / "checkpoints" / "t2m", root / "glove", WORDS, seed=0, mean=mean, std=std)


@pytest.fixture(scope="module")
def evaluator(files: GuoFiles) -> GuoEvaluator:
    return GuoEvaluator.load(files.checkpoint.parents[2])


def _motions(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(length, 263)).astype(np.float32) for length in (40, 77, 196, 120, 64)]


def test_documented_names_shapes_and_parameter_counts(files: GuoFiles) -> None:
    checkpoint = torch.load(files.checkpoint, weights_only=True)
    assert set(checkpoint) == {
        "text_encoder",
        "motion_encoder",
        "movement_encoder",
        "opt_text_encoder",
        "opt_motion_encoder",
        "epoch",
        "iter",
    }
    movement, motion, text = (checkpoint[k] for k in ("movement_encoder", "motion_encoder", "text_encoder"))
    assert movement["main.0.weight"].shape == (512, 259, 4)
    assert movement["main.3.weight"].shape == (512, 512, 4)
    assert movement["out_net.weight"].shape == (512, 512)
    assert motion["gru.weight_ih_l0"].shape == (3072, 1024)
    assert motion["gru.weight_hh_l0_reverse"].shape == (3072, 1024)
    assert motion["hidden"].shape == (2, 1, 1024)
    assert [motion[f"output_net.{i}.weight"].shape for i in (0, 1, 3)] == [(1024, 2048), (1024,), (512, 1024)]
    assert text["pos_emb.weight"].shape == (300, 15)
    assert text["input_emb.weight"].shape == (512, 300)
    assert text["hidden"].shape == (2, 1, 512)
    networks = GuoNetworks.build(GuoConfig())
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in networks.modules().items()}
    assert counts == {"movement_encoder": 1_842_688, "motion_encoder": 15_747_584, "text_encoder": 4_100_288}
    assert pickle.loads((files.glove_dir / "our_vab_words.pkl").read_bytes())[:3] == ["sos", "eos", "unk"]
    assert len(POS_CLASSES) == 15 and POS_CLASSES[9] == "Loc_VIP" and POS_CLASSES[14] == "OTHER"


def test_loads_and_encodes(evaluator: GuoEvaluator, files: GuoFiles) -> None:
    assert isinstance(evaluator, Evaluator)
    captions = [parse_caption_line(line) for line in CAPTIONS]
    text = evaluator.encode_texts(captions)
    motion = evaluator.encode_motions(_motions())
    assert text.shape == (4, 512) and motion.shape == (5, 512)
    assert text.dtype == motion.dtype == np.float32
    np.testing.assert_array_equal(motion, evaluator.encode_motions(_motions()))
    identity = evaluator.identity()
    assert identity["kind"] == "guo" and len(identity["weights_sha256"]) == 64
    assert identity["vocabulary"]["words"] == 3 + len(WORDS)
    # load_evaluator finds the glove folder beside checkpoints/, from either level of the root.
    for root in (files.checkpoint.parents[2], files.checkpoint.parents[3]):
        assert load_evaluator(root).identity() == identity


def _reference_embeddings(
    evaluator: GuoEvaluator, captions: list[Caption], motions: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The original pipeline: the dataset's padding to 196 frames and 22 tokens, then `get_co_embeddings`
    (sort by motion length, descending, packed GRUs with sorted lengths; text rows in the batch's order)."""
    networks, config = evaluator.networks, evaluator.config
    lengths = np.array([min(len(m), 196) // 4 * 4 for m in motions])
    padded = np.zeros((len(motions), 196, 263), np.float32)
    for i, m in enumerate(motions):
        padded[i, : lengths[i]] = (m[: lengths[i]] - evaluator.mean) / evaluator.std
    order = np.argsort(lengths)[::-1].copy()
    with torch.no_grad():
        movements = networks.movement_encoder(torch.from_numpy(padded[order][..., :-4]))
        encoder = networks.motion_encoder
        hidden = encoder.hidden.repeat(1, len(motions), 1)
        packed = pack_padded_sequence(encoder.input_emb(movements), lengths[order] // 4, batch_first=True)
        _, last = encoder.gru(packed, hidden)
        motion = encoder.output_net(torch.cat([last[0], last[1]], -1)).numpy()
        inverse = np.argsort(order)
        items = [evaluator.vectorizer.encode_tokens(c.tokens, config.max_text_len) for c in captions]
        text_order = np.argsort([-item[2] for item in items], kind="stable")
        words = torch.from_numpy(np.stack([items[i][0] for i in text_order]))
        pos = torch.from_numpy(np.stack([items[i][1] for i in text_order]))
        sent = [items[i][2] for i in text_order]
        te = networks.text_encoder
        packed = pack_padded_sequence(te.input_emb(words + te.pos_emb(pos)), sent, batch_first=True)
        _, last = te.gru(packed, te.hidden.repeat(1, len(captions), 1))
        text = te.output_net(torch.cat([last[0], last[1]], -1)).numpy()[np.argsort(text_order)]
    return text, motion[inverse]


def test_matches_the_original_computation(evaluator: GuoEvaluator) -> None:
    captions = [parse_caption_line(line) for line in CAPTIONS]
    motions = _motions(1)
    text, motion = _reference_embeddings(evaluator, captions, motions)
    np.testing.assert_allclose(evaluator.encode_texts(captions), text, atol=1e-5)
    np.testing.assert_allclose(evaluator.encode_motions(motions), motion, atol=1e-5)


def test_tokens_are_wrapped_padded_and_classed(evaluator: GuoEvaluator) -> None:
    vectorizer = evaluator.vectorizer
    onehot_class = POS_CLASSES.index
    tokens = parse_caption_line(CAPTIONS[2]).tokens
    words, onehot, length = vectorizer.encode_tokens(tokens, 20)
    assert words.shape == (22, 300) and onehot.shape == (22, 15) and length == 9
    classes = onehot.argmax(1).tolist()
    assert classes[:9] == [
        onehot_class(c)
        for c in ("OTHER", "DET", "NOUN", "Act_VIP", "ADP", "PRON", "Loc_VIP", "Body_VIP", "OTHER")
    ]
    assert classes[9:] == [onehot_class("OTHER")] * 13
    index = vectorizer.index
    np.testing.assert_array_equal(words[0], vectorizer.vectors[index["sos"]])
    np.testing.assert_array_equal(words[8], vectorizer.vectors[index["eos"]])
    np.testing.assert_array_equal(words[9:], np.repeat(vectorizer.vectors[[index["unk"]]], 13, axis=0))
    # Out of vocabulary: unk with OTHER; an unknown POS tag: OTHER.
    assert vectorizer.lookup(Token("zebra", "NOUN")) == (index["unk"], onehot_class("OTHER"))
    assert vectorizer.lookup(Token("man", "PROPN")) == (index["man"], onehot_class("OTHER"))
    # Long captions keep 20 tokens: 22 with the wrapper.
    long_tokens = tuple(Token("man", "NOUN") for _ in range(30))
    assert vectorizer.encode_tokens(long_tokens, 20)[2] == 22


def test_lengths_and_foot_contacts(evaluator: GuoEvaluator) -> None:
    rng = np.random.default_rng(2)
    motion = rng.normal(size=(230, 263)).astype(np.float32)
    np.testing.assert_allclose(evaluator.encode_motions([motion]), evaluator.encode_motions([motion[:196]]))
    np.testing.assert_allclose(
        evaluator.encode_motions([motion[:99]]), evaluator.encode_motions([motion[:96]])
    )
    changed = motion.copy()
    changed[:, -4:] = 1.0  # foot contacts are not read
    np.testing.assert_array_equal(evaluator.encode_motions([changed]), evaluator.encode_motions([motion]))
    with pytest.raises(EvaluatorError, match="motion 0 has 3 frames, fewer than one unit of 4"):
        evaluator.encode_motions([motion[:3]])
    with pytest.raises(EvaluatorError, match="has no word/POS tokens"):
        evaluator.encode_texts([Caption("a man kicks", ())])


def _copy(files: GuoFiles, tmp_path: Path) -> GuoFiles:
    root = files.checkpoint.parents[4]
    shutil.copytree(root, tmp_path / "copy")
    return GuoFiles.locate(tmp_path / "copy" / "checkpoints" / "t2m")


def test_a_wrong_checkpoint_key_is_named(files: GuoFiles, tmp_path: Path) -> None:
    copy = _copy(files, tmp_path)
    checkpoint = torch.load(copy.checkpoint, weights_only=True)
    del checkpoint["movement_encoder"]["out_net.bias"]
    torch.save(checkpoint, copy.checkpoint)
    with pytest.raises(
        EvaluatorError, match=r"finest\.tar: key 'movement_encoder\.out_net\.bias' is missing"
    ):
        GuoEvaluator.load(copy.checkpoint.parents[2])
    checkpoint["movement_encoder"]["out_net.bias"] = torch.zeros(256)
    torch.save(checkpoint, copy.checkpoint)
    with pytest.raises(EvaluatorError, match=r"'movement_encoder\.out_net\.bias' has shape \(256,\)"):
        GuoEvaluator.load(copy.checkpoint.parents[2])
    checkpoint["movement_encoder"]["out_net.bias"] = torch.zeros(512)
    checkpoint["movement_encoder"]["extra"] = torch.zeros(1)
    torch.save(checkpoint, copy.checkpoint)
    with pytest.raises(EvaluatorError, match=r"unexpected key 'movement_encoder\.extra'"):
        GuoEvaluator.load(copy.checkpoint.parents[2])
    del checkpoint["text_encoder"]
    torch.save(checkpoint, copy.checkpoint)
    with pytest.raises(EvaluatorError, match=r"key 'text_encoder' is missing"):
        GuoEvaluator.load(copy.checkpoint.parents[2])


def test_opt_and_vocabulary_errors(files: GuoFiles, tmp_path: Path) -> None:
    copy = _copy(files, tmp_path)
    root = copy.checkpoint.parents[2]
    lines = copy.opt.read_text().splitlines()
    # The public copy's `window_size = 64` line is skipped, not fatal.
    copy.opt.write_text("\n".join([*lines[:-1], "window_size = 64", lines[-1]]) + "\n")
    GuoEvaluator.load(root)
    copy.opt.write_text("\n".join(line for line in lines if not line.startswith("dim_movement_latent")))
    with pytest.raises(ConfigError, match=r"opt\.txt: field 'dim_movement_latent': missing"):
        GuoEvaluator.load(root)
    copy.opt.write_text("\n".join(lines) + "\n")

    (copy.glove_dir / "our_vab_words.pkl").write_bytes(pickle.dumps(["sos", "eos", "unk", "ghost"]))
    with pytest.raises(
        EvaluatorError, match=r"our_vab_idx\.pkl: word 'ghost' of our_vab_words\.pkl has no row"
    ):
        GuoEvaluator.load(root)
    (copy.glove_dir / "our_vab_words.pkl").write_bytes(pickle.dumps(Path("sos")))
    with pytest.raises(EvaluatorError, match=r"our_vab_words\.pkl: the pickle builds objects"):
        GuoEvaluator.load(root)
    (copy.glove_dir / "our_vab_words.pkl").unlink()
    with pytest.raises(EvaluatorError, match=r"our_vab_words\.pkl: file is missing"):
        GuoEvaluator.load(root)
    with pytest.raises(EvaluatorError, match="lacks the special words"):
        WordVectorizer(np.zeros((1, 300), np.float32), {"sos": 0})
    copy.mean.unlink()
    with pytest.raises(EvaluatorError, match=r"mean\.npy: file is missing"):
        GuoEvaluator.load(root, glove_dir=files.glove_dir)
