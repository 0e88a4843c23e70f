"""Text-motion evaluators: text and motion encoders into one embedding space, read by every metric.

- `Evaluator` (`base`): the interface; `encode_texts(captions)` and `encode_motions(raw features)` give
  (N, d) float32 embeddings, `identity()` says what produced them.
- `TMREvaluator` (`tmr`): the project's own, trained contrastively by `train_evaluator`
  (`hmu train-evaluator`) on a HumanML3D-layout dataset, saved as a folder (`evaluator.json`,
  `weights.pt`, `mean.npy`, `std.npy`).
- `GuoEvaluator` (`guo`): the standard Guo et al. (2022) evaluator from the released files
  (`text_mot_match/model/finest.tar`, `Comp_v6_KLD005/{opt.txt,meta}`, `glove/our_vab_*`).
- `check_evaluator` (`check`): R-precision, MM-Dist, FID and concept AUC of real motions, a fitness check.

    >>> from benchmark.evaluator import load_evaluator, train_evaluator, TrainEvaluatorSettings
    >>> evaluator = train_evaluator("data/embedded", TrainEvaluatorSettings(epochs=10))
    >>> evaluator.save("runs/evaluator")
    >>> evaluator = load_evaluator("runs/evaluator")                     # or a MoMask checkpoints/t2m folder
    >>> motion_emb = evaluator.encode_motions([folder.features(i) for i in folder.ids("test")])

Importing this package loads torch; `load_evaluator` imports the implementation it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.evaluator.base import (
    Evaluator,
    EvaluatorError,
    array_sha256,
    check_captions,
    check_motions,
    identity_hash,
    state_dict_sha256,
)

if TYPE_CHECKING:
    from benchmark.evaluator.check import EvaluatorCheck, check_evaluator
    from benchmark.evaluator.guo import GuoEvaluator, write_guo_files
    from benchmark.evaluator.tmr import TMRConfig, TMREvaluator, TrainEvaluatorSettings, train_evaluator

__all__ = [
    "Evaluator",
    "EvaluatorCheck",
    "EvaluatorError",
    "GuoEvaluator",
    "TMRConfig",
    "TMREvaluator",
    "TrainEvaluatorSettings",
    "array_sha256",
    "check_captions",
    "check_evaluator",
    "check_motions",
    "identity_hash",
    "load_evaluator",
    "state_dict_sha256",
    "train_evaluator",
    "write_guo_files",
]

_LAZY = {
    "EvaluatorCheck": "benchmark.evaluator.check",
    "check_evaluator": "benchmark.evaluator.check",
    "GuoEvaluator": "benchmark.evaluator.guo",
    "write_guo_files": "benchmark.evaluator.guo",
    "TMRConfig": "benchmark.evaluator.tmr",
    "TMREvaluator": "benchmark.evaluator.tmr",
    "TrainEvaluatorSettings": "benchmark.evaluator.tmr",
    "train_evaluator": "benchmark.evaluator.tmr",
}


def __getattr__(name: str) -> Any:
    # The implementations pull in the text encoders (transformers); load them only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_evaluator(
    path: str | Path, *, device: str = "cpu", glove_dir: str | Path | None = None
) -> Evaluator:
    """The evaluator stored at `path`.

    - a folder with `evaluator.json`: a trained `TMREvaluator` (`TMREvaluator.load`);
    - a Guo et al. checkpoint root (MoMask's `checkpoints/t2m`, holding `text_mot_match/` and
      `Comp_v6_KLD005/`): a `GuoEvaluator` (`GuoEvaluator.load`), with the GloVe files from `glove_dir`
      (default: the `glove` folder beside `checkpoints/`, MoMask's repository layout).
    """
    path = Path(path)
    if (path / "evaluator.json").is_file():
        from benchmark.evaluator.tmr import TMREvaluator

        return TMREvaluator.load(path, device=device)
    if (path / "text_mot_match").is_dir() or (path / "t2m" / "text_mot_match").is_dir():
        from benchmark.evaluator.guo import GuoEvaluator

        return GuoEvaluator.load(path, glove_dir=glove_dir, device=device)
    raise EvaluatorError(
        f"{path}: not an evaluator: expected a trained evaluator folder (evaluator.json) or a Guo et al. "
        "checkpoint root (text_mot_match/ and Comp_v6_KLD005/)"
    )
