"""Text encoders behind one interface (`TextEncoder`): captions in, one feature vector per caption out.

`build_text_encoder("minilm")` (the default, all-MiniLM-L6-v2, 384-d, unit length, shipped by a package) or
`build_text_encoder("clip-vit-b32", weights=PATH)` (OpenAI CLIP ViT-B/32 text features as MoMask uses them,
512-d, not normalised). Nothing downloads. A model folder records `encoder.identity()`; `check_identity`
refuses to pair a model with another encoder.
"""

from benchmark.text.base import IDENTITY_KEYS, TextEncoder, TextEncoderError, check_identity
from benchmark.text.clip import ClipTextEncoder, ClipTextTower, ClipTokenizer
from benchmark.text.encoders import DEFAULT_ENCODER, ENCODER_NAMES, build_text_encoder
from benchmark.text.minilm import MiniLMEncoder

__all__ = [
    "DEFAULT_ENCODER",
    "ENCODER_NAMES",
    "IDENTITY_KEYS",
    "ClipTextEncoder",
    "ClipTextTower",
    "ClipTokenizer",
    "MiniLMEncoder",
    "TextEncoder",
    "TextEncoderError",
    "build_text_encoder",
    "check_identity",
]
