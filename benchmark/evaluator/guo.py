"""The standard text-motion evaluator of Guo et al. (2022), loaded from its released files.

MoMask, T2M-GPT, HMU and most HumanML3D papers report FID, R-precision and MM-Dist in the embedding space of
this evaluator; with the same files, `GuoEvaluator` gives numbers comparable with their tables. Nothing
downloads: the files come from the user's disk, in the layout of the original repositories:

    checkpoints/t2m/text_mot_match/model/finest.tar   text_encoder, motion_encoder, movement_encoder weights
    checkpoints/t2m/Comp_v6_KLD005/opt.txt            options (unit_length, hidden sizes, dataset_name)
    checkpoints/t2m/Comp_v6_KLD005/meta/mean.npy      normalisation of the 263-d features (feat_bias applied)
    checkpoints/t2m/Comp_v6_KLD005/meta/std.npy
    glove/our_vab_data.npy                            (V, 300) word vectors
    glove/our_vab_words.pkl                           list of V words (sos, eos, unk, ...)
    glove/our_vab_idx.pkl                             dict word -> row

The networks keep the original module and parameter names, so the checkpoint's state dicts load as they are;
a missing, unexpected or mis-shaped key is an `EvaluatorError` naming the file and the key.

    >>> evaluator = GuoEvaluator.load("checkpoints/t2m", glove_dir="glove")
    >>> text = evaluator.encode_texts(captions)       # word/POS tokens, GloVe + 15 POS classes, BiGRU
    >>> motion = evaluator.encode_motions(features)   # (T_i, 263) raw features, movement conv + BiGRU

`write_guo_files` writes files of the same names and shapes with random weights, for tests and for smoke
runs where the released files are absent.
"""

from __future__ import annotations

import dataclasses
import pickle
import pickletools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from benchmark.backbone.checkpoints import CheckpointError, read_opt_txt, write_opt_txt
from benchmark.data.captions import Caption, Token
from benchmark.errors import ConfigError
from benchmark.evaluator.base import (
    EvaluatorError,
    array_sha256,
    check_captions,
    check_motions,
    load_state_strict,
    load_statistic,
    state_dict_sha256,
)

POS_CLASSES: tuple[str, ...] = (
    "VERB",
    "NOUN",
    "DET",
    "ADP",
    "NUM",
    "AUX",
    "PRON",
    "ADJ",
    "ADV",
    "Loc_VIP",
    "Body_VIP",
    "Obj_VIP",
    "Act_VIP",
    "Desc_VIP",
    "OTHER",
)
"""The 15 part-of-speech classes of the text encoder's one-hot input, in index order (`POS_enumerator`)."""

VIP_WORDS: dict[str, frozenset[str]] = {
    "Loc_VIP": frozenset(
        """left right clockwise counterclockwise anticlockwise forward back backward up down straight
        curve""".split()
    ),
    "Body_VIP": frozenset("arm chin foot feet face hand mouth leg waist eye knee shoulder thigh".split()),
    "Obj_VIP": frozenset("stair dumbbell chair window floor car ball handrail baseball basketball".split()),
    "Act_VIP": frozenset(
        """walk run swing pick bring kick put squat throw hop dance jump turn stumble stop sit lift
        lower raise wash stand kneel stroll rub bend balance flap jog shuffle lean rotate spin spread
        climb""".split()
    ),
    "Desc_VIP": frozenset(
        "slowly carefully fast careful slow quickly happy angry sad happily angrily sadly".split()
    ),
}
"""Words that take a VIP class instead of their spaCy POS (checked in this order, as `VIP_dict`)."""

SPECIAL_WORDS: tuple[str, ...] = ("sos", "eos", "unk")
"""Vocabulary words the text input needs: sentence start, end, and unknown word / padding."""

DIM_WORD = 300
"""Width of the GloVe vectors."""
FOOT_CONTACT_DIMS = 4
"""The movement encoder reads the features without their last 4 (foot-contact) dims."""
FEATURE_DIMS: dict[str, int] = {"t2m": 263, "HumanML3D": 263, "Motion-X": 263, "kit": 251}
"""Feature width per `dataset_name` of the opt.txt (HMU's fork names t2m `HumanML3D`)."""

CHECKPOINT_PATH = Path("text_mot_match", "model", "finest.tar")
OPT_NAME = "Comp_v6_KLD005"
VOCAB_PREFIX = "our_vab"

# The evaluator wrapper (`EvaluatorModelWrapper`) fixes these, whatever the opt.txt says.
MAX_MOTION_LENGTH = 196
DIM_MOTION_HIDDEN = 1024
DIM_COEMB_HIDDEN = 512
MAX_TEXT_LEN = 20


@dataclass(frozen=True)
class GuoConfig:
    """The evaluator's sizes and input handling, from the opt.txt and the wrapper's fixed values."""

    dataset_name: str = "t2m"
    """The opt's `dataset_name` (t2m: HumanML3D, 263-d)."""
    dim_pose: int = 263
    """Feature width of a motion frame."""
    dim_movement_enc_hidden: int = 512
    """Movement conv encoder hidden width (opt)."""
    dim_movement_latent: int = 512
    """Movement conv encoder output width (opt)."""
    dim_text_hidden: int = 512
    """Text BiGRU width (wrapper: it overrides the opt's value, 512 in the released file)."""
    dim_motion_hidden: int = DIM_MOTION_HIDDEN
    """Motion BiGRU width (wrapper)."""
    dim_coemb_hidden: int = DIM_COEMB_HIDDEN
    """Width of the shared embedding (wrapper)."""
    unit_length: int = 4
    """Frames per movement token: lengths are rounded down to multiples of it (opt)."""
    max_text_len: int = MAX_TEXT_LEN
    """Tokens kept from a caption, before the sos/eos wrapper (wrapper)."""
    max_motion_length: int = MAX_MOTION_LENGTH
    """Longest motion read, in frames (a longer one is cut to its first frames)."""

    @classmethod
    def from_opt(cls, opt: Mapping[str, Any], path: str | Path) -> GuoConfig:
        """The config of a Comp_v6_KLD005 opt.txt (read with `read_opt_txt`); a missing key or a wrong type
        is a `ConfigError` naming the file and the key."""

        def get(key: str, default: int | None = None) -> int:
            if key not in opt:
                if default is None:
                    raise ConfigError(path, key, "missing")
                return default
            value = opt[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(path, key, f"expected a positive integer, got {value!r}")
            return value

        name = opt.get("dataset_name")
        if name not in FEATURE_DIMS:
            raise ConfigError(path, "dataset_name", f"expected one of {sorted(FEATURE_DIMS)}, got {name!r}")
        return cls(
            dataset_name=str(name),
            dim_pose=FEATURE_DIMS[str(name)],
            dim_movement_enc_hidden=get("dim_movement_enc_hidden"),
            dim_movement_latent=get("dim_movement_latent"),
            unit_length=get("unit_length", 4),
        )


# ------------------------------------------------------------------------ networks (networks/modules.py)


class MovementConvEncoder(nn.Module):
    """(B, T, dim_pose - 4) normalised features to (B, T // 4, latent) movement features."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(inputs.permute(0, 2, 1)).permute(0, 2, 1))


class BiGRUCo(nn.Module):
    """A bidirectional GRU from a learned initial state; the two final states go through `output_net`."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden_size * 2, hidden_size),
            nn.LayerNorm(hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, output_size),
        )
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def encode(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden.repeat(1, inputs.shape[0], 1)
        # enforce_sorted=False sorts inside, so the caller's order is kept (the original sorts by hand).
        packed = pack_padded_sequence(
            self.input_emb(inputs), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, last = self.gru(packed, hidden)
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class MotionEncoderBiGRUCo(BiGRUCo):
    """(B, T/4, latent) movement features and their lengths to (B, dim_coemb_hidden)."""

    def forward(self, movements: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encode(movements, lengths)


class TextEncoderBiGRUCo(BiGRUCo):
    """(B, L, 300) word vectors, (B, L, 15) POS one-hots and sentence lengths to (B, dim_coemb_hidden)."""

    def __init__(self, word_size: int, pos_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(
        self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        return self.encode(word_embs + self.pos_emb(pos_onehot), lengths)


@dataclass(frozen=True, eq=False)
class GuoNetworks:
    """The three networks of `text_mot_match`, under the checkpoint's key names."""

    text_encoder: TextEncoderBiGRUCo
    motion_encoder: MotionEncoderBiGRUCo
    movement_encoder: MovementConvEncoder

    @classmethod
    def build(cls, config: GuoConfig) -> GuoNetworks:
        return cls(
            text_encoder=TextEncoderBiGRUCo(
                DIM_WORD, len(POS_CLASSES), config.dim_text_hidden, config.dim_coemb_hidden
            ),
            motion_encoder=MotionEncoderBiGRUCo(
                config.dim_movement_latent, config.dim_motion_hidden, config.dim_coemb_hidden
            ),
            movement_encoder=MovementConvEncoder(
                config.dim_pose - FOOT_CONTACT_DIMS,
                config.dim_movement_enc_hidden,
                config.dim_movement_latent,
            ),
        )

    def modules(self) -> dict[str, nn.Module]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: module.state_dict() for name, module in self.modules().items()}

    def weights_sha256(self) -> str:
        flat = {
            f"{name}.{key}": value
            for name, state in self.state_dicts().items()
            for key, value in state.items()
        }
        return state_dict_sha256(flat)


# ------------------------------------------------------------------ vocabulary (utils/word_vectorizer.py)


@dataclass(frozen=True, eq=False)
class WordVectorizer:
    """GloVe vectors of the evaluator's vocabulary and the POS one-hot of each token."""

    vectors: np.ndarray
    """(V, 300) float32 word vectors."""
    index: Mapping[str, int]
    """Word -> row of `vectors`."""

    def __post_init__(self) -> None:
        missing = [word for word in SPECIAL_WORDS if word not in self.index]
        if missing:
            raise EvaluatorError(f"the GloVe vocabulary lacks the special words {missing}")

    @classmethod
    def load(cls, glove_dir: str | Path, prefix: str = VOCAB_PREFIX) -> WordVectorizer:
        """Read `<prefix>_data.npy`, `<prefix>_words.pkl` and `<prefix>_idx.pkl` from `glove_dir`,
        checking that the three agree (every listed word has an in-range row)."""
        glove_dir = Path(glove_dir)
        data_path = glove_dir / f"{prefix}_data.npy"
        words_path = glove_dir / f"{prefix}_words.pkl"
        index_path = glove_dir / f"{prefix}_idx.pkl"
        try:
            vectors = np.load(data_path, allow_pickle=False)
        except FileNotFoundError:
            raise EvaluatorError(f"{data_path}: file is missing (the GloVe vectors)") from None
        except (ValueError, OSError, EOFError) as error:
            raise EvaluatorError(f"{data_path}: not a readable .npy array ({error})") from None
        if vectors.ndim != 2 or vectors.shape[1] != DIM_WORD or not np.issubdtype(vectors.dtype, np.floating):
            raise EvaluatorError(
                f"{data_path}: expected (V, {DIM_WORD}) float vectors, got {vectors.dtype} {vectors.shape}"
            )
        words = _read_plain_pickle(words_path)
        index = _read_plain_pickle(index_path)
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise EvaluatorError(f"{words_path}: expected a list of words")
        if not isinstance(index, dict) or not all(
            isinstance(word, str) and isinstance(row, int) for word, row in index.items()
        ):
            raise EvaluatorError(f"{index_path}: expected a dict word -> row")
        for word in words:
            row = index.get(word)
            if row is None:
                raise EvaluatorError(f"{index_path}: word {word!r} of {words_path.name} has no row")
            if not 0 <= row < len(vectors):
                raise EvaluatorError(
                    f"{index_path}: word {word!r} has row {row}, outside 0..{len(vectors) - 1}"
                )
        # The original keeps exactly the listed words (`word2vec = {w: vectors[word2idx[w]] for w in words}`).
        return cls(vectors.astype(np.float32), {word: index[word] for word in words})

    def sha256(self) -> str:
        words = sorted(self.index)
        return array_sha256(self.vectors, np.array(words), np.array([self.index[word] for word in words]))

    def lookup(self, token: Token) -> tuple[int, int]:
        """(vector row, POS class) of a token: a VIP word takes its VIP class, an unknown POS is OTHER, and an
        out-of-vocabulary word reads as `unk` with OTHER."""
        row = self.index.get(token.word)
        if row is None:
            return self.index["unk"], POS_CLASSES.index("OTHER")
        pos = next((name for name, words in VIP_WORDS.items() if token.word in words), token.pos)
        return row, POS_CLASSES.index(pos) if pos in POS_CLASSES else POS_CLASSES.index("OTHER")

    def encode_tokens(self, tokens: Sequence[Token], max_text_len: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(max_text_len + 2, 300) word vectors, (max_text_len + 2, 15) POS one-hots and the sentence length:
        the first `max_text_len` tokens between `sos/OTHER` and `eos/OTHER`, padded with `unk/OTHER`."""
        wrapped = [Token("sos", "OTHER"), *tokens[:max_text_len], Token("eos", "OTHER")]
        length = len(wrapped)
        wrapped += [Token("unk", "OTHER")] * (max_text_len + 2 - length)
        rows, classes = zip(*(self.lookup(token) for token in wrapped), strict=True)
        onehot = np.zeros((len(wrapped), len(POS_CLASSES)), dtype=np.float32)
        onehot[np.arange(len(wrapped)), classes] = 1.0
        return self.vectors[list(rows)], onehot, length


def _read_plain_pickle(path: Path) -> Any:
    """Unpickle a file that may only hold plain lists, dicts, strings and numbers (no object is built from a
    class, so a crafted file cannot run code)."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise EvaluatorError(f"{path}: file is missing (the GloVe vocabulary)") from None
    try:
        for opcode, _, _ in pickletools.genops(content):
            if opcode.name in (
                "GLOBAL",
                "STACK_GLOBAL",
                "INST",
                "OBJ",
                "NEWOBJ",
                "NEWOBJ_EX",
                "REDUCE",
                "BUILD",
            ):
                raise EvaluatorError(
                    f"{path}: the pickle builds objects ({opcode.name}); expected plain data only"
                )
        return pickle.loads(content)
    except (pickle.UnpicklingError, ValueError, EOFError) as error:
        raise EvaluatorError(f"{path}: not a readable pickle ({error})") from None


# ----------------------------------------------------------------------------- files


@dataclass(frozen=True)
class GuoFiles:
    """Where the evaluator's files are."""

    checkpoint: Path
    """`text_mot_match/model/finest.tar`."""
    opt: Path
    """`Comp_v6_KLD005/opt.txt`."""
    mean: Path
    """`Comp_v6_KLD005/meta/mean.npy`."""
    std: Path
    """`Comp_v6_KLD005/meta/std.npy`."""
    glove_dir: Path
    """The folder of `our_vab_data.npy`, `our_vab_words.pkl`, `our_vab_idx.pkl`."""

    @classmethod
    def locate(cls, checkpoints_dir: str | Path, glove_dir: str | Path | None = None) -> GuoFiles:
        """The files under a checkpoint root: MoMask's `checkpoints/t2m` (or `checkpoints`, holding `t2m/`).
        Without `glove_dir`, the `glove` folder beside `checkpoints/` (the repositories' layout)."""
        root = Path(checkpoints_dir)
        if not (root / "text_mot_match").is_dir() and (root / "t2m" / "text_mot_match").is_dir():
            root = root / "t2m"
        if glove_dir is None:
            candidates = [root.parent / "glove", root.parent.parent / "glove", root / "glove"]
            glove_dir = next((path for path in candidates if path.is_dir()), candidates[0])
        meta = root / OPT_NAME / "meta"
        return cls(
            root / CHECKPOINT_PATH,
            root / OPT_NAME / "opt.txt",
            meta / "mean.npy",
            meta / "std.npy",
            Path(glove_dir),
        )


def _load_checkpoint(path: Path, networks: GuoNetworks) -> dict[str, Any]:
    """Load the three state dicts of `finest.tar` into `networks` strictly; returns the other entries."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EvaluatorError(f"{path}: file is missing (the text_mot_match checkpoint)") from None
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise EvaluatorError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(checkpoint, dict):
        raise EvaluatorError(f"{path}: expected a dict, got {type(checkpoint).__name__}")
    for name, module in networks.modules().items():
        if name not in checkpoint:
            raise EvaluatorError(f"{path}: key {name!r} is missing (keys: {sorted(checkpoint)})")
        load_state_strict(module, checkpoint[name], path, prefix=f"{name}.")
    return {key: value for key, value in checkpoint.items() if key in ("epoch", "iter")}


# ----------------------------------------------------------------------------- evaluator


class GuoEvaluator:
    """The Guo et al. evaluator: implements `benchmark.evaluator.Evaluator` with 512-d embeddings.

    Motions: cut to the first 196 frames, rounded down to a multiple of 4, normalised with the meta mean/std,
    zero-padded to 196 frames (the movement convolution sees the zeros after the end, as in the original);
    the movement encoder reads all but the last 4 dims and the motion BiGRU `length // 4` movement tokens.
    Captions: their word/POS tokens (a caption without tokens is an error).
    """

    name = "guo"

    def __init__(
        self,
        networks: GuoNetworks,
        vectorizer: WordVectorizer,
        mean: np.ndarray,
        std: np.ndarray,
        config: GuoConfig,
        *,
        files: GuoFiles | None = None,
        checkpoint_info: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 128,
    ) -> None:
        if mean.shape != (config.dim_pose,) or std.shape != (config.dim_pose,):
            raise EvaluatorError(f"mean and std must be ({config.dim_pose},), got {mean.shape}, {std.shape}")
        if not (std > 0).all():
            raise EvaluatorError(f"std must be > 0; dims {np.flatnonzero(std <= 0)[:10].tolist()} are not")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.config = config
        self.device = torch.device(device)
        self.networks = networks
        for module in networks.modules().values():
            module.to(self.device).eval().requires_grad_(False)
        self.vectorizer = vectorizer
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.files = files
        self.checkpoint_info = dict(checkpoint_info or {})
        self.batch_size = batch_size
        self.embed_dim = config.dim_coemb_hidden
        self._weights_sha256 = networks.weights_sha256()

    @classmethod
    def load(
        cls,
        checkpoints_dir: str | Path,
        *,
        glove_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 128,
    ) -> GuoEvaluator:
        """Read the evaluator's files (see `GuoFiles.locate` for where they are looked for)."""
        files = GuoFiles.locate(checkpoints_dir, glove_dir)
        if not files.opt.is_file():
            raise EvaluatorError(f"{files.opt}: file is missing (the Comp_v6_KLD005 options)")
        try:
            opt = read_opt_txt(files.opt)
        except CheckpointError as error:
            raise EvaluatorError(str(error)) from None
        config = GuoConfig.from_opt(opt, files.opt)
        networks = GuoNetworks.build(config)
        info = _load_checkpoint(files.checkpoint, networks)
        mean = load_statistic(files.mean, config.dim_pose)
        std = load_statistic(files.std, config.dim_pose)
        if not (std > 0).all():
            raise EvaluatorError(
                f"{files.std}: std must be > 0; dims {np.flatnonzero(std <= 0)[:10].tolist()} are not"
            )
        vectorizer = WordVectorizer.load(files.glove_dir)
        return cls(
            networks,
            vectorizer,
            mean,
            std,
            config,
            files=files,
            checkpoint_info=info,
            device=device,
            batch_size=batch_size,
        )

    def __repr__(self) -> str:
        where = self.files.checkpoint if self.files is not None else "in memory"
        return f"GuoEvaluator({where}, device={self.device})"

    def identity(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "config": dataclasses.asdict(self.config),
            "weights_sha256": self._weights_sha256,
            "checkpoint": {
                "file": self.files.checkpoint.name if self.files is not None else None,
                **self.checkpoint_info,
            },
            "normalisation": {
                "mean_std_sha256": array_sha256(self.mean, self.std),
                "source": f"{OPT_NAME}/meta",
            },
            "vocabulary": {"words": len(self.vectorizer.index), "sha256": self.vectorizer.sha256()},
        }

    @torch.no_grad()
    def encode_texts(self, captions: Sequence[Caption]) -> np.ndarray:
        captions = check_captions(captions)
        for index, caption in enumerate(captions):
            if not caption.tokens:
                raise EvaluatorError(
                    f"encode_texts(): caption {index} ({caption.text!r}) has no word/POS tokens, which "
                    "the Guo evaluator reads"
                )
        out = np.zeros((len(captions), self.embed_dim), dtype=np.float32)
        for start in range(0, len(captions), self.batch_size):
            chunk = captions[start : start + self.batch_size]
            encoded = [
                self.vectorizer.encode_tokens(caption.tokens, self.config.max_text_len) for caption in chunk
            ]
            words = torch.from_numpy(np.stack([item[0] for item in encoded])).to(self.device)
            pos = torch.from_numpy(np.stack([item[1] for item in encoded])).to(self.device)
            lengths = torch.tensor([item[2] for item in encoded])
            out[start : start + len(chunk)] = self.networks.text_encoder(words, pos, lengths).cpu().numpy()
        return out

    @torch.no_grad()
    def encode_motions(self, motions: Sequence[np.ndarray]) -> np.ndarray:
        motions = check_motions(motions, self.config.dim_pose)
        unit, frames = self.config.unit_length, self.config.max_motion_length
        lengths = [min(len(motion), frames) // unit * unit for motion in motions]
        for index, length in enumerate(lengths):
            if length == 0:
                raise EvaluatorError(
                    f"encode_motions(): motion {index} has {len(motions[index])} frames, "
                    f"fewer than one unit of {unit}"
                )
        out = np.zeros((len(motions), self.embed_dim), dtype=np.float32)
        for start in range(0, len(motions), self.batch_size):
            index = range(start, min(start + self.batch_size, len(motions)))
            batch = np.zeros((len(index), frames, self.config.dim_pose), dtype=np.float32)
            for row, i in enumerate(index):
                batch[row, : lengths[i]] = (motions[i][: lengths[i]] - self.mean) / self.std
            motion = torch.from_numpy(batch[..., :-FOOT_CONTACT_DIMS]).to(self.device)
            movements = self.networks.movement_encoder(motion)
            tokens = torch.tensor([lengths[i] // unit for i in index])
            out[start : start + len(index)] = self.networks.motion_encoder(movements, tokens).cpu().numpy()
        return out


# ----------------------------------------------------------------------------- writing files


def write_guo_files(
    checkpoints_dir: str | Path,
    glove_dir: str | Path,
    words: Sequence[str],
    *,
    config: GuoConfig = GuoConfig(),
    seed: int = 0,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> GuoFiles:
    """Write the evaluator's files with seeded random weights and word vectors under `checkpoints_dir` (the
    `checkpoints/t2m` level) and `glove_dir`: the released names, keys and shapes, for tests and smoke runs.
    `words` is the vocabulary after `sos`, `eos`, `unk`; `mean`/`std` default to 0 and 1."""
    checkpoints_dir, glove_dir = Path(checkpoints_dir), Path(glove_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        networks = GuoNetworks.build(config)
    files = GuoFiles.locate(checkpoints_dir, glove_dir)
    files.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {**networks.state_dicts(), "opt_text_encoder": {}, "opt_motion_encoder": {}, "epoch": 0, "iter": 0},
        files.checkpoint,
    )
    files.mean.parent.mkdir(parents=True, exist_ok=True)
    opt = {
        "dataset_name": config.dataset_name,
        "dim_movement_enc_hidden": config.dim_movement_enc_hidden,
        "dim_movement_latent": config.dim_movement_latent,
        "dim_text_hidden": config.dim_text_hidden,
        "max_text_len": config.max_text_len,
        "unit_length": config.unit_length,
        "feat_bias": 5,
        "name": OPT_NAME,
    }
    write_opt_txt(files.opt, opt)
    np.save(
        files.mean, np.zeros(config.dim_pose, np.float32) if mean is None else np.asarray(mean, np.float32)
    )
    np.save(files.std, np.ones(config.dim_pose, np.float32) if std is None else np.asarray(std, np.float32))
    vocabulary = list(dict.fromkeys([*SPECIAL_WORDS, *words]))
    vectors = np.random.default_rng(seed).normal(size=(len(vocabulary), DIM_WORD)).astype(np.float32)
    glove_dir.mkdir(parents=True, exist_ok=True)
    np.save(glove_dir / f"{VOCAB_PREFIX}_data.npy", vectors)
    (glove_dir / f"{VOCAB_PREFIX}_words.pkl").write_bytes(pickle.dumps(vocabulary))
    (glove_dir / f"{VOCAB_PREFIX}_idx.pkl").write_bytes(
        pickle.dumps({word: row for row, word in enumerate(vocabulary)})
    )
    return files
