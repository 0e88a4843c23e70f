"""The embedded dataset: a procedural animator of human motion that writes a complete HumanML3D-layout dataset
(features, joints, captions, splits, Mean/Std) with ground-truth action labels, so the benchmark runs offline.

- `animator`: pose tracks (root, pelvis, spine, wrist and ankle targets) solved into 22 joint positions with
  exact bone lengths and feet on the floor;
- `choreography`: keyframes, footstep planning and shared poses;
- `actions`: the action families (walk, jump, squat, ..., front kick, punch, ...) and their concepts;
- `captions`: caption templates with word/POS tokens, explicit and implicit wording of each concept;
- `generator`: `SynthConfig` and `generate_dataset`.

    >>> from benchmark.data.synth import SynthConfig, generate_dataset
    >>> summary = generate_dataset("data/embedded", SynthConfig(motions=2000, seed=0))
"""

from benchmark.data.synth.generator import DATASET_NAME, SynthConfig, SynthSummary, generate_dataset

__all__ = ["DATASET_NAME", "SynthConfig", "SynthSummary", "generate_dataset"]
