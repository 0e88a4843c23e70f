"""Images: the host's Debian mirror, content tags, staged contexts, and the real images on the engine
(labels, entrypoints, the non-root user, reuse by content tag, `hmu images ls`).

Without a Docker engine the engine tests skip with the reason (they fail when CI is set).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from harness_support import built_images

from benchmark.cli.main import main
from benchmark.harness.docker import DockerCLI
from benchmark.harness.images import (
    DebootstrapRecipe,
    ImageBuildError,
    ImageBuildSettings,
    ImageSet,
    _installs_on,
    build_images,
    content_tag,
    host_debian_mirror,
    read_apt_sources,
    stage_folder,
    tree_manifest,
)

# ----------------------------------------------------------------------------- the host's Debian mirror


def _apt(tmp_path: Path, sources_list: str = "", parts: dict[str, str] | None = None) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(sources_list)
    for name, text in (parts or {}).items():
        (apt / "sources.list.d" / name).write_text(text)
    return apt


DEB822 = """\
Types: deb
# a comment inside the stanza
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.test/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    apt = _apt(tmp_path, parts={"debian.sources": DEB822})
    assert host_debian_mirror("bookworm", apt) == "http://mirror.test/debian"
    sources = read_apt_sources(apt)
    assert [s.suites for s in sources] == [("bookworm", "bookworm-updates"), ("bookworm-security",)]


def test_mirror_from_one_line_sources_with_options(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        "# deb http://commented.test/debian bookworm main\n"
        "deb-src http://src.test/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.test/debian bookworm main non-free\n",
    )
    assert host_debian_mirror("bookworm", apt) == "http://one.test/debian"


def test_mirror_skips_disabled_and_foreign_entries(tmp_path: Path) -> None:
    apt = _apt(
        tmp_path,
        parts={
            "a.sources": DEB822.replace("Types: deb\n#", "Types: deb\nEnabled: no\n#"),
            "b.list": "deb https://vendor.test/apt cloud-sdk-bookworm main\n",
            "c.list.disabled": "deb http://disabled.test/debian bookworm main\n",
            "d.list": "deb http://second.test/debian bookworm main\n",
        },
    )
    assert host_debian_mirror("bookworm", apt) == "http://second.test/debian"
    with pytest.raises(ImageBuildError, match="no Debian mirror for trixie"):
        host_debian_mirror("trixie", apt)


def test_this_host_has_a_mirror_for_the_base_image() -> None:
    if not Path("/etc/apt").is_dir():
        pytest.skip("not a Debian host: pass --debian-mirror or --base-image")
    assert host_debian_mirror("bookworm").startswith(("http://", "https://", "file:/"))


# ----------------------------------------------------------------------------- content tags


def _method_folder(root: Path) -> Path:
    folder = root / "demo"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "method.py").write_text("print('hi')\n")
    (folder / "method.yaml").write_text("name: demo\n")
    (folder / "__pycache__" / "method.cpython-311.pyc").write_bytes(b"\x00cache")
    (folder / "notes.pyc").write_bytes(b"\x00")
    return folder


def test_content_tag_follows_content_only(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x\n")
    tag = content_tag(dockerfile, "sha256:parent", tree_manifest(folder))
    assert len(tag) == 20 and tag == content_tag(dockerfile, "sha256:parent", tree_manifest(folder))
    # Caches change nothing; content, the parent, the Dockerfile and build arguments change the tag.
    (folder / "__pycache__" / "other.pyc").write_bytes(b"new")
    assert content_tag(dockerfile, "sha256:parent", tree_manifest(folder)) == tag
    assert content_tag(dockerfile, "sha256:other", tree_manifest(folder)) != tag
    assert content_tag(dockerfile, "sha256:parent", tree_manifest(folder), extra=["METHOD=x"]) != tag
    (folder / "method.py").write_text("print('changed')\n")
    assert content_tag(dockerfile, "sha256:parent", tree_manifest(folder)) != tag
    (folder / "method.py").write_text("print('hi')\n")
    os.chmod(folder / "method.py", 0o755)
    assert content_tag(dockerfile, "sha256:parent", tree_manifest(folder)) != tag
    dockerfile.write_text("FROM y\n")
    assert content_tag(dockerfile, "sha256:parent", tree_manifest(folder)) != tag


def test_staged_context_has_no_caches_and_readable_modes(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path)
    os.chmod(folder / "method.yaml", 0o600)
    stage_folder(folder, tmp_path / "staged")
    staged = sorted(p.relative_to(tmp_path / "staged").as_posix() for p in (tmp_path / "staged").rglob("*"))
    assert staged == ["method.py", "method.yaml"]
    assert (tmp_path / "staged" / "method.yaml").stat().st_mode & 0o777 == 0o644
    assert tree_manifest(tmp_path / "staged") == tree_manifest(folder)


def test_links_are_never_copied_into_an_image(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path)
    (folder / "secret").symlink_to("/etc/passwd")
    with pytest.raises(ImageBuildError, match="not a plain file"):
        tree_manifest(folder)
    with pytest.raises(ImageBuildError, match="not a plain file"):
        stage_folder(folder, tmp_path / "staged")


def test_base_recipe_tag_and_wheel_tags() -> None:
    assert DebootstrapRecipe().content_tag() == DebootstrapRecipe().content_tag()
    assert DebootstrapRecipe(suite="trixie").content_tag() != DebootstrapRecipe().content_tag()
    assert _installs_on("numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl", "cp311")
    assert _installs_on("six-1.0-py2.py3-none-any.whl", "cp311")
    assert _installs_on("tokenizers-0.23.3-cp310-abi3-manylinux_2_17_x86_64.whl", "cp311")
    assert not _installs_on("numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl", "cp311")


def test_settings_need_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="not an HMU-Bench source checkout"):
        ImageBuildSettings.for_checkout(tmp_path)


# ----------------------------------------------------------------------------- the real images


@pytest.fixture(scope="session")
def images() -> ImageSet:
    return built_images()


def test_images_are_labelled(images: ImageSet) -> None:
    docker = DockerCLI()
    method = docker.inspect("image", images.method("original").reference)
    labels = method["Config"]["Labels"]
    assert labels["org.hmu.interface"] == "1" and labels["org.hmu.method"] == "original"
    assert (
        labels["org.hmu.role"] == "method"
        and labels["org.hmu.content"] == images.method("original").content_tag
    )
    assert method["Config"]["Entrypoint"] == ["hmu", "method"] and method["Config"]["User"] == "1000:1000"
    evaluator = docker.inspect("image", images.evaluator.reference)["Config"]
    assert evaluator["Labels"]["org.hmu.evaluator"] == "1" and evaluator["Labels"]["org.hmu.interface"] == "1"
    assert evaluator["Entrypoint"] == ["hmu", "evaluate", "--input", "/hmu/input", "--output", "/hmu/output"]
    base = docker.inspect("image", images.method_base.reference)["Config"]
    assert (
        "OMP_NUM_THREADS=1" in base["Env"]
        and "HF_HUB_OFFLINE=1" in base["Env"]
        and "HOME=/tmp" in base["Env"]
    )
    # Each image stands on the one below it.
    assert images.method("original").reference.startswith("hmu/method/original:")
    for image in images.all():
        assert image.image_id.startswith("sha256:") and image.size_bytes > 0
        assert image.provenance()["image_id"] == image.image_id


def test_second_build_reuses_every_image(images: ImageSet) -> None:
    """Unchanged content: the same tags, nothing built, in seconds (the project wheel is reproducible)."""
    began = time.perf_counter()
    again = build_images(ImageBuildSettings.for_checkout(), ["original"])
    took = time.perf_counter() - began
    print(f"cached image build: {took:.1f} s")
    assert [image.reference for image in again.all()] == [image.reference for image in images.all()]
    assert all(image.reused for image in again.all())
    assert took < 60


def test_images_ls_lists_them(images: ImageSet, capsys) -> None:
    assert main(["images", "ls"]) == 0
    out = capsys.readouterr().out
    assert images.method("original").reference in out and images.evaluator.reference in out


def test_the_method_runs_in_its_image(images: ImageSet) -> None:
    """`docker run IMAGE describe`: the entrypoint, HMU_METHOD and the methods folder of the image."""
    result = DockerCLI().run(
        [
            "run",
            "--rm",
            "--network=none",
            "--read-only",
            "--tmpfs=/tmp",
            images.method("original").reference,
            "describe",
        ],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "original"' in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting /proc needs root (as debootstrap does)")
def test_an_interrupted_debootstraps_mounts_are_undone_before_its_rootfs_goes(tmp_path: Path) -> None:
    """A debootstrap killed mid-way leaves /proc mounted in its rootfs; the next build removes it safely."""
    import subprocess

    from benchmark.harness.images import _remove_rootfs

    rootfs = tmp_path / "rootfs-abc"
    (rootfs / "proc").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "hostname").write_text("half-made\n")
    subprocess.run(["mount", "-t", "proc", "proc", str(rootfs / "proc")], check=True)
    try:
        assert (rootfs / "proc" / "self").exists()
        _remove_rootfs(rootfs)
        assert not rootfs.exists()
    finally:
        subprocess.run(["umount", "--lazy", str(rootfs / "proc")], check=False, capture_output=True)
    assert str(rootfs) not in Path("/proc/mounts").read_text()
