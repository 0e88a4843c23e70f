"""Shared by the container tests: the real Docker engine (or a loud skip), the images built once per test
process, a tiny model, request folders, and test methods that misbehave on purpose.

The engine: without one the container tests skip with the reason, and fail when CI is set (CI must exercise
the real engine; `ci/start-docker.sh` starts it). The images are content-tagged, so a second test run reuses
them in seconds.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.backbone.config import BackboneConfig
from benchmark.backbone.generation import Prompt, write_prompts
from benchmark.backbone.model import Backbone, save_model
from benchmark.harness.docker import DockerCLI
from benchmark.harness.images import ImageBuildSettings, ImageSet, build_images
from benchmark.text.encoders import build_text_encoder

PROMPTS = [
    Prompt("walk", "a person walks forward", 24, repeats=2, seed=1),
    Prompt("kick", "a person kicks with the right leg", 17, repeats=1, seed=2),
]
SETTINGS = {"timesteps": 2, "batch_size": 4}
"""Fewer decoding steps than MoMask's 10: the contract does not depend on the count."""


def require_engine() -> DockerCLI:
    """The engine's client; skips (loudly) without an engine, fails when CI is set."""
    docker = DockerCLI()
    why = docker.why_not()
    if why is not None:
        message = f"no Docker engine for the container tests: {why} (start one with: bash ci/start-docker.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return docker


@functools.cache
def _built() -> ImageSet:
    began = time.perf_counter()
    images = build_images(ImageBuildSettings.for_checkout(), ["original"])
    took = time.perf_counter() - began
    built = [image.reference for image in images.all() if not image.reused]
    print(
        f"\n[container tests] images ready in {took:.1f} s; built: {built or 'none (all reused)'}",
        file=sys.stderr,
    )
    return images


def built_images() -> ImageSet:
    """Base, method base, `original` and evaluator images: built on first use in this process, reused
    after (by content tag, also across runs)."""
    require_engine()
    return _built()


def readable(path: Path) -> Path:
    """Let the container user (uid 1000, not the owner) read a folder tree the tests made as root (pytest's
    temporary folders are 0700)."""
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    return path


def tiny_model(path: Path) -> Path:
    """A random small backbone saved as a model folder (MiniLM text features, 263-d motions)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    backbone = Backbone(BackboneConfig.small(), rng.normal(size=263), rng.uniform(0.5, 2.0, size=263))
    with torch.no_grad():  # an untrained RVQ has all-zero codebooks: every code would decode alike
        for codebook in backbone.rvq.codebooks:
            codebook.normal_()
    save_model(
        backbone,
        path,
        text_encoder_identity=build_text_encoder("minilm").identity(),
        dataset={"name": "embedded", "fps": 20.0, "feature_dim": 263},
        provenance={"kind": "trained", "recipe": "random"},
    )
    return path


def unlearn_input(folder: Path, model: Path) -> Path:
    """A request folder for `unlearn`: the model copied in, an empty data folder, relative paths only (the
    same folder works at /hmu/input and on the host)."""
    folder.mkdir(parents=True)
    shutil.copytree(model, folder / "base_model")
    (folder / "data").mkdir()
    request = {
        "schema": "hmu.unlearn-request/1",
        "task": {"name": "embedded_violence", "version": 1},
        "concept": {"name": "violence", "keywords": ["kick", "punch"]},
        "base_model": "base_model",
        "data_dir": "data",
        "forget": {"motion_ids": ["000001"], "prompts": ["a person kicks"]},
        "retain": {"motion_ids": ["000002"], "prompts": ["a person walks"]},
        "seed": 0,
        "device": "cpu",
    }
    (folder / "request.json").write_text(json.dumps(request))
    return readable(folder)


def generate_input(folder: Path, model: Path) -> Path:
    """A request folder for `generate`: the model copied in, the prompt file, relative paths only."""
    folder.mkdir(parents=True)
    shutil.copytree(model, folder / "model")
    write_prompts(folder / "prompts.json", PROMPTS)
    request = {
        "schema": "hmu.generate-request/1",
        "model": "model",
        "prompts": "prompts.json",
        "settings": SETTINGS,
        "device": "cpu",
    }
    (folder / "request.json").write_text(json.dumps(request))
    return readable(folder)


# ----------------------------------------------------------------------------- misbehaving methods

BAD_METHODS: dict[str, str] = {
    "sleeper": """
import time
from benchmark.api import Method


class Sleeper(Method):
    def unlearn(self, model, request, workdir):
        time.sleep(600)
""",
    "hog": """
import numpy as np
from benchmark.api import Method


class Hog(Method):
    def unlearn(self, model, request, workdir):
        blocks = []
        for _ in range(256):  # 8 GiB at most, touched page by page (np.ones writes every byte)
            blocks.append(np.ones(32 * 2**20, dtype=np.uint8))
        raise RuntimeError("the memory limit did not stop the hog")
""",
    "nan_honest": """
import numpy as np
from benchmark.api import Method, UnlearnOutcome


class NanHonest(Method):
    def unlearn(self, model, request, workdir):
        return UnlearnOutcome(backbone=model.backbone)

    def generate(self, model, prompts, request):
        return {key: np.full((p.length, 263), np.nan, np.float32) for p in prompts for key in p.keys()}
""",
    "nan_liar": """
import json
import os
import sys

import numpy as np
from benchmark.api import Method, UnlearnOutcome


class NanLiar(Method):
    \"\"\"Writes NaN motions and a forged 'ok' result.json, then exits 0 past the entrypoint's checks.\"\"\"

    def unlearn(self, model, request, workdir):
        return UnlearnOutcome(backbone=model.backbone)

    def generate(self, model, prompts, request):
        out = sys.argv[sys.argv.index("--output") + 1] if "--output" in sys.argv else "/hmu/output"
        motions = {key: np.full((p.length, 263), np.nan, np.float32) for p in prompts for key in p.keys()}
        np.savez(os.path.join(out, "motions.npz"), **motions)
        result = {
            "schema": "hmu.method-result/1", "status": "ok", "verb": "generate", "method": "nan_liar",
            "method_version": 1, "interface_version": 1, "wall_seconds": 0.1, "device": "cpu",
            "parameters": {}, "messages": [], "outputs": ["motions.npz"], "num_motions": len(motions),
        }
        with open(os.path.join(out, "result.json"), "w") as stream:
            json.dump(result, stream)
        os._exit(0)
""",
    "linker": """
import os
import sys

from benchmark.api import Method, UnlearnOutcome


class Linker(Method):
    def unlearn(self, model, request, workdir):
        out = sys.argv[sys.argv.index("--output") + 1] if "--output" in sys.argv else "/hmu/output"
        os.symlink("/etc/passwd", os.path.join(out, "passwd"))
        return UnlearnOutcome(backbone=model.backbone)
""",
    "network": """
import socket

from benchmark.api import Method


class Network(Method):
    def unlearn(self, model, request, workdir):
        socket.create_connection(("1.1.1.1", 53), timeout=5).close()
        raise RuntimeError("the network answered")
""",
    "exit3": """
import sys

from benchmark.api import Method


class Exit3(Method):
    def unlearn(self, model, request, workdir):
        sys.exit(3)  # SystemExit passes the entrypoint's `except Exception`: no result.json
""",
}


def bad_methods(root: Path) -> Path:
    """A methods folder holding every method of BAD_METHODS (readable by the container user)."""
    for name, source in BAD_METHODS.items():
        folder = root / name
        folder.mkdir(parents=True)
        class_name = source.split("class ", 1)[1].split("(", 1)[0]
        (folder / "method.yaml").write_text(
            f"name: {name}\nversion: 1\ndescription: A method that misbehaves.\nclass: method:{class_name}\n"
            "defaults: {}\nresources: {gpu: none}\n"
        )
        (folder / "method.py").write_text(source)
        (folder / "README.md").write_text(f"# {name}\n")
    return readable(root)
