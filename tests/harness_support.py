"""Shared by the container tests: the real Docker engine (or a loud skip), the images built once per test
process, test methods and images that misbehave on purpose, and the tiny bench world. The tiny model and
its request folders are the library's (`benchmark.harness.tinyworld`), which `hmu check` runs on.

The engine: without one the container tests skip with the reason, and fail when CI is set (CI must exercise
the real engine; `ci/start-docker.sh` starts it). The images are content-tagged, so a second test run reuses
them in seconds.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from benchmark.harness.bench import BenchConfig
from benchmark.harness.docker import DockerCLI
from benchmark.harness.images import (
    BuiltImage,
    ImageBuildSettings,
    ImageSet,
    build_folder_image,
    build_images,
)
from benchmark.harness.spec import EvaluationSpec, ImageRef, RunSpec
from benchmark.harness.tinyworld import make_readable as readable


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


# ----------------------------------------------------------------------------- a tiny bench world


def tiny_bench(tmp_path_factory: pytest.TempPathFactory, results: str, **changes: Any) -> BenchConfig:
    """The tiny bench world (a 200-motion embedded dataset, a base model trained for two steps, an evaluator
    trained for one epoch, 2 repeats of 4 prompts per set): about a minute to prepare the first time. Its
    cache (prepared inputs and stages, keyed by their inputs) is shared by every bench of the test session;
    `results` names this bench's own results folder."""
    base = tmp_path_factory.getbasetemp()
    cache = changes.pop("cache_dir", readable(base) / "tiny-bench-cache")
    return BenchConfig.tiny(base / results, cache, **changes)


# ----------------------------------------------------------------------------- external method images

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "external_method"

BAD_IMAGES: dict[str, str] = {
    "crash": "unlearn raises before writing anything",
    "hang": "unlearn sleeps for an hour",
    "nan": "generate writes NaN motions behind an ok result.json",
    "write_outside": "unlearn writes into /opt",
    "link_out": "unlearn leaves a link to /etc/passwd in its model folder",
    "network": "unlearn connects to an outside address",
    "oversized": "unlearn leaves a 300 MiB file in its model folder",
    "describe": "describe prints a description without resources",
}
"""The deliberately bad images: the example method with one misbehaviour each."""

BAD_ENTRYPOINT = '''"""keyword_filter, misbehaving on purpose: {why}."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, "/opt/keyword_filter")
import keyword_filter

MODE = "{mode}"
verb = sys.argv[1] if len(sys.argv) > 1 else "describe"
out = "/hmu/output"
if MODE == "describe" and verb == "describe":
    print(json.dumps({{k: v for k, v in keyword_filter.DESCRIPTION.items() if k != "resources"}}))
    sys.exit(0)
if verb == "unlearn":
    if MODE == "crash":
        raise RuntimeError("crashed on purpose")
    if MODE == "hang":
        time.sleep(3600)
    if MODE == "network":
        socket.create_connection(("192.0.2.1", 443), timeout=5).close()
    if MODE == "write_outside":
        with open("/opt/keyword_filter/stolen.txt", "w") as stream:
            stream.write("outside the output")
code = keyword_filter.main(sys.argv)
if code == 0 and verb == "generate" and MODE == "nan":
    import numpy as np

    path = os.path.join(out, "motions.npz")
    with np.load(path) as archive:
        motions = {{key: np.full_like(archive[key], np.nan) for key in archive.files}}
    np.savez(path, **motions)
if code == 0 and verb == "unlearn" and MODE == "link_out":
    os.symlink("/etc/passwd", os.path.join(out, "model", "passwd"))
if code == 0 and verb == "unlearn" and MODE == "oversized":
    with open(os.path.join(out, "model", "padding.bin"), "wb") as stream:
        stream.truncate(300 * 2**20)  # sparse: instant, and 300 MiB to whoever counts sizes
sys.exit(code)
'''

BAD_DOCKERFILE = """ARG METHOD_BASE
FROM ${METHOD_BASE}
COPY bad.py /opt/bad/bad.py
ENTRYPOINT ["python3", "/opt/bad/bad.py"]
"""


@functools.cache
def _example() -> BuiltImage:
    images = built_images()
    return build_folder_image(
        ImageBuildSettings.for_checkout(),
        DockerCLI(),
        EXAMPLE,
        "hmu-example/keyword_filter",
        images.method_base,
    )


def example_image() -> BuiltImage:
    """`examples/external_method` built on the method base (content-tagged: reused when unchanged)."""
    require_engine()
    return _example()


def bad_image(mode: str, root: Path) -> BuiltImage:
    """The example with misbehaviour `mode` (BAD_IMAGES), built FROM the example image; `root` is a scratch
    folder for its build context."""
    folder = root / mode
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(BAD_DOCKERFILE)
    (folder / "bad.py").write_text(BAD_ENTRYPOINT.format(mode=mode, why=BAD_IMAGES[mode]))
    return build_folder_image(
        ImageBuildSettings.for_checkout(), DockerCLI(), folder, f"hmu-test/bad-{mode}", example_image()
    )


def run_spec(**changes: Any) -> RunSpec:
    """A run spec of `original` on embedded_violence with made-up hashes, for the store and tracking tests
    (which write run folders without running a bench)."""
    values: dict[str, Any] = {
        "method": "original",
        "method_version": 1,
        "sweep": "original",
        "parameters": {},
        "task": "embedded_violence",
        "task_version": 1,
        "task_hash": "t",
        "seed": 0,
        "base_model_hash": "m",
        "data_hash": "d",
        "split_hash": "s",
        "plan_hash": "p",
        "prompts_hash": "q",
        "method_image": ImageRef("local", "local:abc"),
        "evaluator_image": ImageRef("local", "local:def"),
        "evaluator_hash": "e",
        "generation": {},
        "evaluation": EvaluationSpec(repeats=2, passes=2, max_prompts=4),
        "reference": None,
    }
    return RunSpec(**{**values, **changes})
