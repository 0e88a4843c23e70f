"""The benchmark's container images, built offline and tagged by their content.

    hmu images build                                   # base, method base, every built-in method, evaluator
    hmu images build --method original                 # only that method's image (and what it stands on)
    hmu images build --base-image python:3.11-slim     # an official image instead of the debootstrap one
    hmu images ls

    >>> images = build_images(ImageBuildSettings.for_checkout())
    >>> images.method("original").reference             # 'hmu/method/original:3f5c...'
    >>> images.method("original").provenance()          # reference, image ID, content tag: for the records

Four kinds of image, each standing on the one before; each tag is a sha256 over what makes the image:
- `hmu/base`: Debian bookworm (debootstrap `minbase` + python3, venv, pip), imported with `docker import`;
  tag over the recipe (suite, variant, packages, architecture). Or the user's `--base-image`, as it is.
- `hmu/method-base`: `/opt/venv` with the `benchmark` wheel and its dependencies from the host-built
  wheelhouse (`containers/method-base/Dockerfile`); tag over the Dockerfile, every wheel (name and sha256)
  and the base image's ID.
- `hmu/method/<name>`: the method base plus `methods/<name>/` (`containers/method/Dockerfile`); tag over the
  Dockerfile, every file copied in and the method base's ID.
- `hmu/evaluator`: the method base with the `hmu evaluate` entrypoint (`containers/evaluator/Dockerfile`);
  tag over the Dockerfile and the method base's ID.

An image whose tag exists already is reused, so a change rebuilds only what it touches: a method's README
rebuilds that method's image; the benchmark's code rebuilds the method base and everything above it (its
dependency layer comes from Docker's own cache). Each build also tags `:latest`, for people typing `docker
run`; the harness uses the content tags and records the image IDs.

Offline, nothing is pulled: the base image comes from `debootstrap` against the Debian mirror the host's apt
is configured with (read from `/etc/apt/sources.list` and `/etc/apt/sources.list.d/` at run time), and every
Python package from `build/wheelhouse/`, made on the host with `pip wheel` (where the package index is
reachable) for the host's Python; the images install it with `pip install --no-index`. The wheelhouse pins
every package to the version installed in the running environment, so a stage run in a container computes
with the same libraries as the same stage run locally. Builds leave their logs in `build/images/logs/`.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from benchmark.api.contract import INTERFACE_VERSION
from benchmark.errors import HMUError
from benchmark.harness.docker import DockerCLI, DockerError

logger = logging.getLogger(__name__)

Role = Literal["base", "method-base", "method", "evaluator"]

BASE_REPOSITORY = "hmu/base"
METHOD_BASE_REPOSITORY = "hmu/method-base"
METHOD_REPOSITORY_PREFIX = "hmu/method/"
EVALUATOR_REPOSITORY = "hmu/evaluator"

LABEL_INTERFACE = "org.hmu.interface"
"""The contract version an image speaks (method base and everything on it)."""
LABEL_METHOD = "org.hmu.method"
"""The method an image runs (method images)."""
LABEL_ROLE = "org.hmu.role"
"""Which of the four kinds an image is (`hmu images ls` lists images carrying it)."""
LABEL_CONTENT = "org.hmu.content"
"""The image's content tag."""

DEFAULT_TORCH_SPEC = "torch==2.13.0"
"""The CPU wheel of torch (the Makefile's TORCH_SPEC); a looser pin would pull a multi-GB CUDA build."""

TAG_LENGTH = 20
"""Hex digits of the sha256 kept in a content tag (80 bits: no collision among a project's images)."""

_TAG_FORMAT = "hmu-images/1"
"""Changes whenever what goes into a content tag changes, so that old tags are never taken for new ones."""

_IGNORED_NAMES = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".DS_Store")
"""Never copied into an image nor hashed: caches that differ between machines but change nothing."""

_REPRODUCIBLE_EPOCH = "315532800"
"""SOURCE_DATE_EPOCH of the project wheel (1980-01-01, the earliest zip date): the same sources give the
same wheel bytes, hence the same content tag."""


class ImageBuildError(HMUError):
    """An image cannot be built; the message says which and where its log is."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class DebootstrapRecipe:
    """What the offline base image holds; its content tag is a hash of these fields."""

    suite: str = "bookworm"
    """The Debian release (bookworm ships Python 3.11, the project's)."""
    variant: str = "minbase"
    """debootstrap's smallest variant: essential packages and apt."""
    include: tuple[str, ...] = ("python3", "python3-venv", "python3-pip")
    """Extra packages: Python and what `python3 -m venv` needs."""
    architecture: str = field(default_factory=lambda: _dpkg_architecture())
    """Debian architecture name (`amd64`, `arm64`): the host's."""

    def content_tag(self) -> str:
        return _digest_tag([_TAG_FORMAT, "base", self.suite, self.variant, *self.include, self.architecture])


@dataclass(frozen=True)
class ImageBuildSettings:
    """Where a build reads and writes, and what it builds on."""

    project_root: Path
    """The source checkout: `containers/`, `methods/`, `pyproject.toml`, `benchmark/`."""
    build_dir: Path
    """Scratch space on the host (`build/`, git-ignored): wheelhouse, staged contexts, rootfs, logs."""
    base_image: str | None = None
    """An image to use instead of the debootstrap one (`python:3.11-slim`, a CUDA/PyTorch image with python3
    and its venv module); None: build `hmu/base` with debootstrap."""
    debian_mirror: str | None = None
    """The Debian mirror for debootstrap; None: the host apt's (`host_debian_mirror`)."""
    torch_spec: str = DEFAULT_TORCH_SPEC
    """The torch requirement of the wheelhouse."""
    recipe: DebootstrapRecipe = field(default_factory=DebootstrapRecipe)
    """The debootstrap base image's recipe."""

    @classmethod
    def for_checkout(cls, project_root: Path | None = None, **changes: Any) -> ImageBuildSettings:
        """Settings for a source checkout (default: the one this module lies in), building into its build/."""
        root = (project_root or Path(__file__).resolve().parents[2]).resolve()
        if not (root / "containers").is_dir() or not (root / "pyproject.toml").is_file():
            raise ImageBuildError(
                f"{root} is not an HMU-Bench source checkout (no containers/ or pyproject.toml): images are "
                "built from a checkout"
            )
        return cls(project_root=root, build_dir=root / "build", **changes)

    @property
    def wheelhouse(self) -> Path:
        return self.build_dir / "wheelhouse"

    @property
    def logs_dir(self) -> Path:
        return self.build_dir / "images" / "logs"

    def dockerfile(self, role: Literal["method-base", "method", "evaluator"]) -> Path:
        return self.project_root / "containers" / role / "Dockerfile"


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BuiltImage:
    """One image, built or reused: what the harness records as a stage's provenance."""

    role: Role
    """base, method-base, method or evaluator."""
    reference: str
    """`repository:content-tag` (for a user's base image: the reference as given)."""
    image_id: str
    """The engine's image ID (`sha256:...`): what actually ran."""
    content_tag: str
    """The tag computed from the content (for a user's base image: its ID's digits)."""
    reused: bool
    """True when the image existed already and nothing was built."""
    seconds: float
    """Wall-clock time spent on this image (building, or finding it)."""
    size_bytes: int
    """The image's size on the engine."""
    method: str | None = None
    """The method's name (method images)."""

    def provenance(self) -> dict[str, str]:
        """Reference, image ID and content tag, as plain JSON."""
        return {"reference": self.reference, "image_id": self.image_id, "content_tag": self.content_tag}


@dataclass(frozen=True)
class ImageSet:
    """The images of one `build_images` call."""

    base: BuiltImage
    """The base image (debootstrap or the user's)."""
    method_base: BuiltImage
    """The method base image."""
    methods: tuple[BuiltImage, ...]
    """One image per method built, in name order."""
    evaluator: BuiltImage | None
    """The evaluator image; None when not asked for."""

    def method(self, name: str) -> BuiltImage:
        """The image of method `name`."""
        for image in self.methods:
            if image.method == name:
                return image
        raise ImageBuildError(f"no image of method {name!r} in this set: {[m.method for m in self.methods]}")

    def all(self) -> tuple[BuiltImage, ...]:
        """Every image, bottom up."""
        top = (self.evaluator,) if self.evaluator is not None else ()
        return (self.base, self.method_base, *self.methods, *top)


@dataclass(frozen=True)
class ListedImage:
    """A row of `hmu images ls`."""

    reference: str
    """`repository:tag`."""
    image_id: str
    """The engine's image ID."""
    role: str
    """The `org.hmu.role` label."""
    method: str | None
    """The `org.hmu.method` label, if any."""
    created: str
    """When the engine made it (its own text)."""
    size: str
    """Its size (the engine's text)."""


# ----------------------------------------------------------------------------- content tags


def _digest_tag(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode()
        # Length-prefixed, so that ("ab", "c") and ("a", "bc") hash differently.
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()[:TAG_LENGTH]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ignored(name: str) -> bool:
    return name in _IGNORED_NAMES or name.endswith((".pyc", ".pyo"))


def tree_manifest(root: Path) -> list[str]:
    """One line per file under `root` (ignoring caches), sorted: relative path, executable bit, sha256.
    Links and special files are refused: an image holds what the folder holds, nothing it points to."""
    lines = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not _ignored(name))
        for name in sorted(filenames):
            if _ignored(name):
                continue
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                raise ImageBuildError(f"{path}: not a plain file (links and special files are not copied)")
            executable = "x" if os.access(path, os.X_OK) else "-"
            lines.append(f"{path.relative_to(root).as_posix()} {executable} {file_sha256(path)}")
        for name in dirnames:
            if (Path(folder) / name).is_symlink():
                raise ImageBuildError(f"{Path(folder) / name}: a link (links are not copied)")
    return sorted(lines)


def content_tag(dockerfile: Path, parent_id: str, manifest: Sequence[str], extra: Sequence[str] = ()) -> str:
    """The tag of an image built from `dockerfile` on the parent `parent_id` with a context whose files are
    `manifest` (`tree_manifest`); `extra` adds build arguments that change the result."""
    return _digest_tag([_TAG_FORMAT, dockerfile.read_text(encoding="utf-8"), parent_id, *extra, *manifest])


def stage_folder(source: Path, destination: Path) -> None:
    """Copy `source` to `destination` (replaced) without caches, with modes every user can read (0644,
    0755 for executables and folders): the container user is not the files' owner."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for folder, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(name for name in dirnames if not _ignored(name))
        target = destination / Path(folder).relative_to(source)
        target.mkdir(exist_ok=True, mode=0o755)
        for name in filenames:
            if _ignored(name):
                continue
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                raise ImageBuildError(f"{path}: not a plain file (links and special files are not copied)")
            shutil.copyfile(path, target / name)
            os.chmod(target / name, 0o755 if os.access(path, os.X_OK) else 0o644)
        os.chmod(target, 0o755)


# ----------------------------------------------------------------------------- the host's Debian mirror


@dataclass(frozen=True)
class AptSource:
    """One apt source entry (a line of a .list file, or a stanza of a .sources file)."""

    types: tuple[str, ...]
    """`deb`, `deb-src`."""
    uris: tuple[str, ...]
    """Mirror URIs."""
    suites: tuple[str, ...]
    """`bookworm`, `bookworm-updates`, ..."""
    components: tuple[str, ...]
    """`main`, `contrib`, ..."""
    enabled: bool = True
    """deb822 `Enabled: no` turns a stanza off."""
    origin: str = ""
    """The file it came from."""


def _parse_one_line(text: str, origin: str) -> list[AptSource]:
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # `deb [arch=amd64 signed-by=...] URI suite component...`: the options go.
        line = re.sub(r"\[[^\]]*\]", " ", line)
        words = line.split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        sources.append(AptSource((words[0],), (words[1],), (words[2],), tuple(words[3:]), True, origin))
    return sources


def _parse_deb822(text: str, origin: str) -> list[AptSource]:
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.lstrip().startswith("#"):
                continue
            if raw[:1].isspace() and key is not None:  # a continuation line (multi-line Signed-By)
                fields[key] += " " + raw.strip()
                continue
            if ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "types" not in fields or "uris" not in fields:
            continue
        sources.append(
            AptSource(
                tuple(fields["types"].split()),
                tuple(fields["uris"].split()),
                tuple(fields.get("suites", "").split()),
                tuple(fields.get("components", "").split()),
                fields.get("enabled", "yes").lower() not in ("no", "false", "0"),
                origin,
            )
        )
    return sources


def read_apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every apt source the host has: `sources.list`, then `sources.list.d/*.list` and `*.sources` (files
    with other endings, such as `.disabled`, are ignored, as apt does)."""
    sources = []
    main = apt_dir / "sources.list"
    if main.is_file():
        sources += _parse_one_line(main.read_text(encoding="utf-8", errors="replace"), str(main))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list" and path.is_file():
                sources += _parse_one_line(path.read_text(encoding="utf-8", errors="replace"), str(path))
            elif path.suffix == ".sources" and path.is_file():
                sources += _parse_deb822(path.read_text(encoding="utf-8", errors="replace"), str(path))
    return sources


def host_debian_mirror(suite: str = "bookworm", apt_dir: Path = Path("/etc/apt")) -> str:
    """The URI of the host's first enabled `deb` source serving `suite` with `main`: the mirror debootstrap
    uses. An ImageBuildError when there is none (pass --debian-mirror)."""
    sources = read_apt_sources(apt_dir)
    for source in sources:
        if (
            source.enabled
            and "deb" in source.types
            and suite in source.suites
            and "main" in source.components
        ):
            for uri in source.uris:
                if uri.startswith(("http://", "https://", "file:/")):
                    return uri
    seen = sorted({f"{' '.join(s.uris)} {' '.join(s.suites)}" for s in sources})
    raise ImageBuildError(
        f"no Debian mirror for {suite} (main) in the host's apt sources under {apt_dir} "
        f"(seen: {seen or 'none'}); pass --debian-mirror URL or --base-image REF"
    )


def _dpkg_architecture() -> str:
    dpkg = shutil.which("dpkg")
    if dpkg is not None:
        result = subprocess.run([dpkg, "--print-architecture"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


# ----------------------------------------------------------------------------- the wheelhouse


@dataclass(frozen=True)
class Wheelhouse:
    """The host-built wheels the method base installs: `deps/` (every dependency) and `project/` (the
    benchmark's own wheel). It is also that image's build context."""

    root: Path
    """`build/wheelhouse`."""
    python_tag: str
    """The interpreter the wheels are for (`cp311`)."""

    @property
    def deps(self) -> Path:
        return self.root / "deps"

    @property
    def project(self) -> Path:
        return self.root / "project"

    def manifest(self) -> list[str]:
        """The wheels' names and hashes (the content of the method base's build context)."""
        return [f"deps/{line}" for line in tree_manifest(self.deps)] + [
            f"project/{line}" for line in tree_manifest(self.project)
        ]


def _python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def _pip(args: Sequence[str], log: Any, env: Mapping[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"pip {args[0]} failed (exit {result.returncode}); see {log.name}")


def build_project_wheel(settings: ImageBuildSettings, destination: Path, log: Any) -> Path:
    """The benchmark's wheel, built from a clean copy of the sources (no stale build/ folder can slip old
    modules in) with fixed timestamps (the same sources give the same bytes). Replaces `destination`."""
    with tempfile.TemporaryDirectory(prefix="hmu-wheel-", dir=settings.build_dir) as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (settings.project_root / name).is_file():
                shutil.copyfile(settings.project_root / name, source / name)
        stage_folder(settings.project_root / "benchmark", source / "benchmark")
        out = Path(scratch) / "out"
        env = {**os.environ, "SOURCE_DATE_EPOCH": _REPRODUCIBLE_EPOCH}
        # No build isolation: the venv's setuptools builds it, offline and without fetching a new one.
        _pip(["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source)], log, env)
        wheels = list(out.glob("*.whl"))
        if len(wheels) != 1:
            raise ImageBuildError(
                f"pip wheel made {len(wheels)} project wheels, expected one; see {log.name}"
            )
        if destination.exists():
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        return Path(shutil.copy2(wheels[0], destination / wheels[0].name))


def _requirements(wheel: Path) -> list[str]:
    """The wheel's run-time requirements (Requires-Dist without extras)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
    requirements = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            requirement = line.split(":", 1)[1].strip()
            if "extra ==" not in requirement.replace('"', "'").replace("extra==", "extra =="):
                requirements.append(requirement)
    return requirements


def _environment_versions(exclude: str) -> dict[str, str]:
    """Normalised name -> version of every distribution in this interpreter's environment but `exclude`."""
    versions = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name and _normalise(name) != _normalise(exclude):
            versions[_normalise(name)] = distribution.version
    return versions


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_versions(folder: Path) -> dict[str, str]:
    """Normalised name -> version of the wheels in `folder` (from their file names)."""
    versions = {}
    for path in folder.glob("*.whl"):
        name, version = path.name.split("-")[:2]
        versions[_normalise(name)] = version
    return versions


def _reusable(stamp: Path, deps: Path, recipe: dict[str, Any], environment: Mapping[str, str]) -> bool:
    """True when `deps` was made for the same Python and requirements, and every package in it that this
    environment also holds has the environment's version (packages the environment gained or lost that
    the images do not hold change nothing)."""
    if not stamp.is_file() or not deps.is_dir():
        return False
    try:
        made = json.loads(stamp.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    if not isinstance(made, dict) or {key: made.get(key) for key in recipe} != recipe:
        return False
    present = _wheel_versions(deps)
    if present != made.get("wheels"):
        return False  # wheels removed or added by hand since
    return all(environment.get(name, version) == version for name, version in present.items())


def build_wheelhouse(settings: ImageBuildSettings, log: Any) -> Wheelhouse:
    """Make (or reuse) `build/wheelhouse`. The project wheel is rebuilt every time (seconds; byte for byte
    the same when nothing changed). The dependency wheels are pinned to this environment's versions, so
    that a stage computes with the same libraries in a container as locally, and made again only when the
    requirements, the torch pin or the version of a package they hold changes (`deps.json` records what they
    were made from)."""
    wheelhouse = Wheelhouse(settings.wheelhouse, _python_tag())
    wheelhouse.root.mkdir(parents=True, exist_ok=True)
    wheel = build_project_wheel(settings, wheelhouse.project, log)
    requirements = [settings.torch_spec, *_requirements(wheel)]
    recipe: dict[str, Any] = {"python": wheelhouse.python_tag, "requirements": requirements}
    # The torch pin wins over the environment's torch when they differ.
    torch_name = _normalise(re.split(r"[<>=!~ ;\[]", settings.torch_spec, maxsplit=1)[0])
    environment = {
        name: version
        for name, version in _environment_versions(exclude="hmu-bench").items()
        if name != torch_name
    }
    stamp = wheelhouse.root / "deps.json"
    if _reusable(stamp, wheelhouse.deps, recipe, environment):
        logger.info("wheelhouse: dependencies unchanged, reusing %s", wheelhouse.deps)
        return wheelhouse
    began = time.perf_counter()
    logger.info("wheelhouse: making %s (minutes the first time)", wheelhouse.deps)
    with tempfile.TemporaryDirectory(prefix="hmu-deps-", dir=settings.build_dir) as scratch:
        requirements_file = Path(scratch) / "requirements.txt"
        constraints_file = Path(scratch) / "constraints.txt"
        requirements_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        constraints_file.write_text(
            "".join(f"{name}=={version}\n" for name, version in sorted(environment.items())), encoding="utf-8"
        )
        deps = Path(scratch) / "deps"
        # `pip wheel` rather than `pip download`: openai-clip has only an sdist, built into a wheel here.
        _pip(
            [
                "wheel",
                "--wheel-dir",
                str(deps),
                "--requirement",
                str(requirements_file),
                "--constraint",
                str(constraints_file),
            ],
            log,
        )
        wrong = [
            path.name for path in deps.glob("*.whl") if not _installs_on(path.name, wheelhouse.python_tag)
        ]
        if wrong:
            raise ImageBuildError(f"wheels not for {wheelhouse.python_tag}: {wrong}")
        if wheelhouse.deps.exists():
            shutil.rmtree(wheelhouse.deps)
        shutil.move(str(deps), wheelhouse.deps)
    made = {**recipe, "wheels": _wheel_versions(wheelhouse.deps)}
    stamp.write_text(json.dumps(made, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    logger.info("wheelhouse: made in %.0f s", time.perf_counter() - began)
    return wheelhouse


def _installs_on(wheel_name: str, python_tag: str) -> bool:
    """True when a wheel's file name says it runs on `python_tag`: pure Python (ABI `none`), the stable ABI
    (`abi3`), or built for that very interpreter."""
    python, abi = wheel_name[: -len(".whl")].split("-")[-3:-1]
    return abi in ("none", "abi3") or python_tag in python.split(".")


# ----------------------------------------------------------------------------- building


@contextmanager
def _build_lock(build_dir: Path) -> Iterator[None]:
    """One image build at a time per checkout (two would overwrite each other's wheelhouse)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / "images.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _image_size(docker: DockerCLI, reference: str) -> int:
    data = docker.inspect("image", reference)
    return int(data["Size"]) if data else 0


def _found(
    docker: DockerCLI, role: Role, reference: str, tag: str, began: float, method: str | None
) -> BuiltImage | None:
    """The image `reference` if the engine has it (and `:latest` pointed at it), else None."""
    image_id = docker.image_id(reference)
    if image_id is None:
        return None
    docker.tag(reference, reference.rsplit(":", 1)[0] + ":latest")
    logger.info("%s: %s exists, reused", role if method is None else f"method {method}", reference)
    return BuiltImage(
        role,
        reference,
        image_id,
        tag,
        True,
        time.perf_counter() - began,
        _image_size(docker, reference),
        method,
    )


def _log_file(settings: ImageBuildSettings, name: str) -> Path:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    return settings.logs_dir / f"{name}.log"


def build_base_image(settings: ImageBuildSettings, docker: DockerCLI) -> BuiltImage:
    """The user's base image as it is (pulled if the engine lacks it), or `hmu/base:<tag>` made with
    debootstrap and `docker import` unless it exists."""
    began = time.perf_counter()
    if settings.base_image is not None:
        image_id = docker.image_id(settings.base_image)
        if image_id is None:
            logger.info("base: pulling %s", settings.base_image)
            try:
                docker.check(["pull", settings.base_image])
            except DockerError as error:
                raise ImageBuildError(
                    f"base image {settings.base_image} is not on the engine and: {error}"
                ) from error
            image_id = docker.image_id(settings.base_image)
        if image_id is None:
            raise ImageBuildError(f"base image {settings.base_image}: no image after pulling it")
        return BuiltImage(
            "base",
            settings.base_image,
            image_id,
            image_id.split(":")[-1][:TAG_LENGTH],
            True,
            time.perf_counter() - began,
            _image_size(docker, settings.base_image),
        )
    tag = settings.recipe.content_tag()
    reference = f"{BASE_REPOSITORY}:{tag}"
    found = _found(docker, "base", reference, tag, began, None)
    if found is not None:
        return found
    _debootstrap_and_import(settings, docker, reference, tag)
    image_id = docker.image_id(reference)
    if image_id is None:
        raise ImageBuildError(f"{reference}: docker import reported success but the image is missing")
    docker.tag(reference, f"{BASE_REPOSITORY}:latest")
    seconds = time.perf_counter() - began
    logger.info("base: built %s in %.0f s", reference, seconds)
    return BuiltImage("base", reference, image_id, tag, False, seconds, _image_size(docker, reference))


def _debootstrap_and_import(
    settings: ImageBuildSettings, docker: DockerCLI, reference: str, tag: str
) -> None:
    recipe = settings.recipe
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageBuildError(
            "debootstrap is not installed (ci/start-docker.sh installs it), or pass --base-image"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            "debootstrap needs root: run `hmu images build` as root, or pass --base-image REF"
        )
    mirror = settings.debian_mirror or host_debian_mirror(recipe.suite)
    log_path = _log_file(settings, f"base-{tag}")
    rootfs = settings.build_dir / "images" / f"rootfs-{tag}"
    _remove_rootfs(rootfs)  # a half-made root filesystem of an interrupted build
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    logger.info(
        "base: debootstrap %s (%s) from %s, log in %s (about a minute)",
        recipe.suite,
        recipe.variant,
        mirror,
        log_path,
    )
    with log_path.open("w", encoding="utf-8") as log:
        command = [
            debootstrap,
            f"--variant={recipe.variant}",
            f"--include={','.join(recipe.include)}",
            f"--arch={recipe.architecture}",
            recipe.suite,
            str(rootfs),
            mirror,
        ]
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        try:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                raise ImageBuildError(f"debootstrap failed (exit {result.returncode}); see {log_path}")
            # Package caches and indexes are only dead weight in a read-only image.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (rootfs / leftover).glob("*"):
                    if path.is_file():
                        path.unlink()
            _import_rootfs(docker, rootfs, reference, tag, log)
        finally:
            _remove_rootfs(rootfs)


def _remove_rootfs(rootfs: Path) -> None:
    """Delete a root filesystem debootstrap made, first unmounting what it mounted there (/proc, /sys): a
    debootstrap killed mid-way leaves them mounted, and deleting through them fails or reaches the host's."""
    if not rootfs.exists():
        return
    inside = str(rootfs.resolve()) + os.sep
    mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    points = [line.split()[1].replace("\\040", " ") for line in mounts if len(line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(inside)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    shutil.rmtree(rootfs, ignore_errors=True)


def _import_rootfs(docker: DockerCLI, rootfs: Path, reference: str, tag: str, log: Any) -> None:
    """`tar -C rootfs -c . | docker import - reference`, streamed."""
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
        f"LABEL {LABEL_ROLE}=base {LABEL_CONTENT}={tag}",
    ]
    args = ["import"] + [arg for change in changes for arg in ("--change", change)] + ["-", reference]
    log.write("$ tar --numeric-owner -C " + str(rootfs) + " -c . | docker " + " ".join(args) + "\n")
    log.flush()
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE, stderr=log
    )
    try:
        result = docker.run(args, stdin=tar.stdout, stdout=log, stderr=subprocess.STDOUT)
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar_status = tar.wait()
    if tar_status != 0 or result.returncode != 0:
        raise ImageBuildError(
            f"tar | docker import failed (tar {tar_status}, import {result.returncode}); see {log.name}"
        )


def _check_python(docker: DockerCLI, base: BuiltImage, wheelhouse: Wheelhouse) -> None:
    """The base image's Python must be the one the wheelhouse was made for."""
    probe = "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"
    result = docker.run(
        [
            "run",
            "--rm",
            "--network",
            "none",
            "--pull",
            "never",
            "--entrypoint",
            "python3",
            base.image_id,
            "-c",
            probe,
        ],
        timeout=300,
    )
    found = result.stdout.strip()
    if result.returncode != 0:
        raise ImageBuildError(
            f"base image {base.reference}: cannot run python3: {result.stderr.strip()[-500:]}"
        )
    if found != wheelhouse.python_tag:
        raise ImageBuildError(
            f"base image {base.reference} runs Python {found}, the wheelhouse is for {wheelhouse.python_tag} "
            "(the Python running hmu): use a base image with the same Python, or run hmu with that Python"
        )


def _build(
    settings: ImageBuildSettings,
    docker: DockerCLI,
    *,
    role: Role,
    repository: str,
    dockerfile: Path,
    context: Path,
    tag: str,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    method: str | None = None,
) -> BuiltImage:
    began = time.perf_counter()
    reference = f"{repository}:{tag}"
    found = _found(docker, role, reference, tag, began, method)
    if found is not None:
        return found
    log_path = _log_file(settings, f"{repository.replace('/', '-')}-{tag}")
    logger.info(
        "%s: building %s, log in %s", role if method is None else f"method {method}", reference, log_path
    )
    with log_path.open("w", encoding="utf-8") as log:
        try:
            docker.build(
                context,
                dockerfile,
                reference,
                build_args=build_args,
                labels={**labels, LABEL_ROLE: role, LABEL_CONTENT: tag},
                log=log,
            )
        except DockerError as error:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            raise ImageBuildError(f"{error}\n  " + "\n  ".join(tail)) from error
    image_id = docker.image_id(reference)
    if image_id is None:
        raise ImageBuildError(f"{reference}: docker build reported success but the image is missing")
    docker.tag(reference, f"{repository}:latest")
    seconds = time.perf_counter() - began
    logger.info("%s: built %s in %.0f s", role if method is None else f"method {method}", reference, seconds)
    return BuiltImage(role, reference, image_id, tag, False, seconds, _image_size(docker, reference), method)


def build_method_base(settings: ImageBuildSettings, docker: DockerCLI, base: BuiltImage) -> BuiltImage:
    """`hmu/method-base:<tag>` on `base`, from the wheelhouse (made or refreshed first)."""
    with _log_file(settings, "wheelhouse").open("w", encoding="utf-8") as log:
        wheelhouse = build_wheelhouse(settings, log)
    dockerfile = settings.dockerfile("method-base")
    tag = content_tag(dockerfile, base.image_id, wheelhouse.manifest())
    if docker.image_id(f"{METHOD_BASE_REPOSITORY}:{tag}") is None:
        _check_python(docker, base, wheelhouse)
    return _build(
        settings,
        docker,
        role="method-base",
        repository=METHOD_BASE_REPOSITORY,
        dockerfile=dockerfile,
        context=wheelhouse.root,
        tag=tag,
        # By ID: the tag a user passed could move to another image between here and the build.
        build_args={"BASE_IMAGE": base.image_id},
        labels={LABEL_INTERFACE: str(INTERFACE_VERSION)},
    )


def build_method_image(
    settings: ImageBuildSettings, docker: DockerCLI, method_base: BuiltImage, method_folder: Path
) -> BuiltImage:
    """`hmu/method/<name>:<tag>`: the method base plus the method's folder."""
    name = method_folder.name
    context = settings.build_dir / "images" / "contexts" / f"method-{name}"
    stage_folder(method_folder, context)
    dockerfile = settings.dockerfile("method")
    tag = content_tag(dockerfile, method_base.image_id, tree_manifest(context), extra=[f"METHOD={name}"])
    return _build(
        settings,
        docker,
        role="method",
        repository=f"{METHOD_REPOSITORY_PREFIX}{name}",
        dockerfile=dockerfile,
        context=context,
        tag=tag,
        build_args={"METHOD_BASE": method_base.image_id, "METHOD": name},
        labels={LABEL_METHOD: name},
        method=name,
    )


def build_evaluator_image(
    settings: ImageBuildSettings, docker: DockerCLI, method_base: BuiltImage
) -> BuiltImage:
    """`hmu/evaluator:<tag>`: the method base with the `hmu evaluate` entrypoint."""
    context = settings.build_dir / "images" / "contexts" / "evaluator"
    if context.exists():
        shutil.rmtree(context)
    context.mkdir(parents=True)  # empty: the Dockerfile copies nothing
    dockerfile = settings.dockerfile("evaluator")
    return _build(
        settings,
        docker,
        role="evaluator",
        repository=EVALUATOR_REPOSITORY,
        dockerfile=dockerfile,
        context=context,
        tag=content_tag(dockerfile, method_base.image_id, []),
        build_args={"METHOD_BASE": method_base.image_id},
        labels={"org.hmu.evaluator": "1"},
    )


def build_folder_image(
    settings: ImageBuildSettings, docker: DockerCLI, folder: Path, repository: str, parent: BuiltImage
) -> BuiltImage:
    """`<repository>:<tag>` from a folder holding its own `Dockerfile` (an external method such as
    `examples/external_method/`, a test image) built FROM `parent`, passed as the build argument
    METHOD_BASE. Tagged by content like the others (the Dockerfile, every file of the folder, the parent's
    ID), labelled `org.hmu.role=method`; its other labels (`org.hmu.method`, `org.hmu.interface`) are the
    Dockerfile's own."""
    if not (folder / "Dockerfile").is_file():
        raise ImageBuildError(f"{folder}: no Dockerfile")
    context = settings.build_dir / "images" / "contexts" / f"folder-{repository.replace('/', '-')}"
    stage_folder(folder, context)
    built = _build(
        settings,
        docker,
        role="method",
        repository=repository,
        dockerfile=context / "Dockerfile",
        context=context,
        tag=content_tag(context / "Dockerfile", parent.image_id, tree_manifest(context)),
        build_args={"METHOD_BASE": parent.image_id},
        labels={},
    )
    return replace(built, method=docker.image_labels(built.reference).get(LABEL_METHOD))


def build_images(
    settings: ImageBuildSettings,
    methods: Sequence[str] | None = None,
    *,
    evaluator: bool = True,
    docker: DockerCLI | None = None,
) -> ImageSet:
    """Build (or reuse) the base, the method base, the images of `methods` (None: every method folder under
    `methods/`) and the evaluator. An ImageBuildError says what failed and where its log is."""
    from benchmark.api.registry import discover_methods

    docker = docker or DockerCLI()
    why = docker.why_not()
    if why is not None:
        raise ImageBuildError(f"cannot build images: {why} (run ci/start-docker.sh)")
    registry = discover_methods(settings.project_root / "methods")
    names = list(methods) if methods is not None else list(registry.names())
    folders = [registry.get(name).folder for name in names]  # an unknown name fails before any build
    with _build_lock(settings.build_dir):
        base = build_base_image(settings, docker)
        method_base = build_method_base(settings, docker, base)
        built = tuple(build_method_image(settings, docker, method_base, folder) for folder in sorted(folders))
        top = build_evaluator_image(settings, docker, method_base) if evaluator else None
    return ImageSet(base, method_base, built, top)


def _labelled_rows(docker: DockerCLI) -> list[dict[str, Any]]:
    """`docker image ls` rows of every image carrying the `org.hmu.role` label: the tagged ones and the
    untagged build stages (a build stage inherits its base image's labels). Intermediate layers are not
    listed: the engine removes them with the last image standing on them."""
    result = docker.check(
        ["image", "ls", "--filter", f"label={LABEL_ROLE}", "--format", "{{json .}}"], timeout=60
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def list_images(docker: DockerCLI | None = None) -> list[ListedImage]:
    """Every tagged image on the engine carrying the `org.hmu.role` label, newest first."""
    docker = docker or DockerCLI()
    rows = []
    for row in _labelled_rows(docker):
        if row["Repository"] == "<none>":
            continue  # an intermediate build stage: not an image anyone runs
        labels = docker.image_labels(row["ID"])
        rows.append(
            ListedImage(
                reference=f"{row['Repository']}:{row['Tag']}",
                image_id=str(row["ID"]),
                role=labels.get(LABEL_ROLE, ""),
                method=labels.get(LABEL_METHOD),
                created=str(row.get("CreatedSince", "")),
                size=str(row.get("Size", "")),
            )
        )
    return rows


def remove_images(docker: DockerCLI | None = None, *, stale_only: bool = False) -> list[str]:
    """Remove the benchmark's images and their untagged build stages. With `stale_only`, only the tags no
    `:latest` points at (older content tags), and no build stage: the newest one is the layer cache that
    makes the next method base build take seconds. Returns the references and IDs removed."""
    docker = docker or DockerCLI()
    rows = _labelled_rows(docker)
    latest = {row["ID"] for row in rows if row["Tag"] == "latest"}
    targets = []
    for row in rows:
        dangling = row["Repository"] == "<none>"
        if stale_only and (dangling or row["ID"] in latest):
            continue
        targets.append(row["ID"] if dangling else f"{row['Repository']}:{row['Tag']}")
    removed = []
    # Children before parents: the engine lists newest first, and a child is always newer than its parent.
    for target in targets:
        result = docker.run(["image", "rm", target], timeout=300)
        if result.returncode == 0:
            removed.append(target)
        else:
            logger.warning("could not remove %s: %s", target, result.stderr.strip())
    return removed
