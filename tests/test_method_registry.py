"""Method discovery: folder scanning without imports, broken folders named, lazy loading, the template."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.api.entrypoint import describe_entry
from benchmark.api.registry import (
    ENV_METHODS_DIR,
    MethodFolderError,
    Registry,
    RegistryError,
    discover_methods,
    methods_dirs,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

YAML = """\
name: {name}
version: 1
description: A test method.
class: method:{cls}
defaults: {{strength: 1.0}}
sweep: {{strength: [0.5, 1.0]}}
resources: {{gpu: none}}
"""

PY = """\
from benchmark.api import Method, UnlearnOutcome


class {cls}(Method):
    def unlearn(self, model, request, workdir):
        return UnlearnOutcome(backbone=model.backbone)
"""


def make_method(
    root: Path, name: str, *, cls: str = "TestMethod", yaml: str | None = None, py: str | None = None
):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "method.yaml").write_text(yaml if yaml is not None else YAML.format(name=name, cls=cls))
    (folder / "method.py").write_text(py if py is not None else PY.format(cls=cls))
    (folder / "README.md").write_text(f"# {name}\n")
    return folder


# ----------------------------------------------------------------------------- the generic registry


def test_registry_names_duplicates_unknown_names_and_freezes() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("alpha", 1, origin="a.yaml")
    registry.register("beta", 2, origin="b.yaml")
    with pytest.raises(RegistryError, match="declared twice: in a.yaml and in c.yaml"):
        registry.register("alpha", 3, origin="c.yaml")
    with pytest.raises(
        RegistryError, match="unknown widget 'alpah' \\(did you mean 'alpha'\\?\\); known: alpha, beta"
    ):
        registry.get("alpah")
    assert registry.get("beta") == 2 and registry.origin("beta") == "b.yaml"
    assert list(registry) == ["alpha", "beta"] and len(registry) == 2 and "alpha" in registry
    assert registry.freeze() is registry and registry.frozen
    with pytest.raises(RegistryError, match="frozen"):
        registry.register("gamma", 3, origin="g.yaml")


# ----------------------------------------------------------------------------- discovery


def test_discovery_reads_folders_and_skips_private_ones(tmp_path: Path) -> None:
    make_method(tmp_path, "alpha")
    make_method(tmp_path, "beta")
    make_method(tmp_path, "_draft", yaml="not: [valid")  # skipped: never read
    (tmp_path / ".cache").mkdir()
    (tmp_path / "notes.txt").write_text("a file, not a method folder")
    registry = discover_methods(tmp_path)
    assert registry.names() == ("alpha", "beta") and registry.frozen
    entry = registry.get("alpha")
    assert entry.folder == tmp_path / "alpha" and entry.spec.class_ref == "method:TestMethod"
    assert [run.name for run in entry.spec.runs()] == ["alpha-strength0.5", "alpha-strength1.0"]


def test_discovery_imports_no_method_code(tmp_path: Path) -> None:
    make_method(tmp_path, "explosive", py="raise RuntimeError('imported too early')\n")
    entry = discover_methods(tmp_path).get("explosive")  # fine: only method.yaml is read
    with pytest.raises(MethodFolderError, match="explosive: importing method.py failed: RuntimeError"):
        entry.load()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: (make_method(root, "nodoc") / "README.md").unlink(), "nodoc: missing README.md"),
        (
            lambda root: make_method(root, "badyaml", yaml="name: [badyaml\n"),
            "badyaml/method.yaml: not valid YAML",
        ),
        (
            lambda root: make_method(root, "renamed", yaml=YAML.format(name="other", cls="TestMethod")),
            "renamed: method.yaml says name 'other', the folder is 'renamed'",
        ),
        (
            lambda root: make_method(
                root, "badfield", yaml=YAML.format(name="badfield", cls="X") + "gpu: none\n"
            ),
            "badfield/method.yaml: field 'gpu': unknown field",
        ),
        (
            lambda root: make_method(
                root, "nomodule", yaml=YAML.format(name="nomodule", cls="X").replace("method:X", "impl:X")
            ),
            "nomodule: impl.py",
        ),
    ],
    ids=["missing-file", "bad-yaml", "name-mismatch", "unknown-field", "missing-module"],
)
def test_broken_folder_is_named(tmp_path: Path, setup, message: str) -> None:
    make_method(tmp_path, "fine")
    setup(tmp_path)
    with pytest.raises(MethodFolderError, match="broken method folder") as caught:
        discover_methods(tmp_path)
    assert message in str(caught.value)
    assert "fine" not in str(caught.value)


def test_every_broken_folder_is_reported_at_once(tmp_path: Path) -> None:
    make_method(tmp_path, "one", yaml="name: [\n")
    make_method(tmp_path, "two", yaml=YAML.format(name="zwei", cls="TestMethod"))
    with pytest.raises(MethodFolderError) as caught:
        discover_methods(tmp_path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3 and "one/method.yaml" in lines[1] and "two:" in lines[2]


@pytest.mark.parametrize(
    ("py", "message"),
    [
        (
            "class Other:\n    pass\n",
            "method.py has no class 'TestMethod' (named by 'class' in method.yaml); it defines: Other",
        ),
        ("class TestMethod:\n    pass\n", "method:TestMethod is not a subclass of benchmark.api.Method"),
        ("TestMethod = 3\n", "is not a subclass"),
        (
            "from benchmark.api import Method\n\nclass TestMethod(Method):\n    pass\n",
            "method:TestMethod does not implement unlearn",
        ),
        ("import no_such_module_hmu\n", "importing method.py failed: ModuleNotFoundError"),
    ],
    ids=["class-missing", "wrong-base", "not-a-class", "abstract", "import-error"],
)
def test_bad_class_is_named_with_its_folder(tmp_path: Path, py: str, message: str) -> None:
    make_method(tmp_path, "broken", py=py)
    entry = discover_methods(tmp_path).get("broken")
    with pytest.raises(MethodFolderError) as caught:
        entry.load()
    assert str(tmp_path / "broken") in str(caught.value) and message in str(caught.value)


def test_a_failed_import_can_be_retried_after_a_fix(tmp_path: Path) -> None:
    folder = make_method(tmp_path, "flaky", py="raise ImportError('not yet')\n")
    entry = discover_methods(tmp_path).get("flaky")
    with pytest.raises(MethodFolderError, match="not yet"):
        entry.load()
    (folder / "method.py").write_text(PY.format(cls="TestMethod"))
    assert entry.load().__name__ == "TestMethod"


def test_methods_may_span_several_files_and_never_share_modules(tmp_path: Path) -> None:
    helper = "from benchmark.api import Method, UnlearnOutcome\nfrom .codes import CODES\n\n"
    helper += "class TestMethod(Method):\n    codes = CODES\n\n"
    helper += (
        "    def unlearn(self, model, request, workdir):\n        return UnlearnOutcome(model.backbone)\n"
    )
    for root, codes in ((tmp_path / "a", [1, 2]), (tmp_path / "b", [3])):
        folder = make_method(root, "split", py=helper)
        (folder / "codes.py").write_text(f"CODES = {codes}\n")
    first = discover_methods(tmp_path / "a").get("split").load()
    second = discover_methods(tmp_path / "b").get("split").load()
    assert (first.codes, second.codes) == ([1, 2], [3])
    assert discover_methods(tmp_path / "a").get("split").load() is first  # imported once


def test_a_name_in_two_methods_folders_is_an_error_naming_both(tmp_path: Path) -> None:
    make_method(tmp_path / "builtin", "lcr")
    make_method(tmp_path / "extra", "lcr")
    with pytest.raises(MethodFolderError, match="declared twice") as caught:
        discover_methods([tmp_path / "builtin", tmp_path / "extra"])
    assert str(tmp_path / "builtin" / "lcr") in str(caught.value)
    assert str(tmp_path / "extra" / "lcr") in str(caught.value)


def test_methods_dir_comes_from_the_argument_the_environment_or_the_checkout(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv(ENV_METHODS_DIR, raising=False)
    assert methods_dirs() == (REPO_ROOT / "methods",)
    monkeypatch.setenv(ENV_METHODS_DIR, f"{tmp_path / 'x'}:{tmp_path / 'y'}")
    assert methods_dirs() == (tmp_path / "x", tmp_path / "y")
    assert methods_dirs(tmp_path) == (tmp_path,)
    with pytest.raises(MethodFolderError, match="not a folder"):
        discover_methods()


def test_unknown_method_suggests_the_closest(tmp_path: Path) -> None:
    make_method(tmp_path, "original")
    with pytest.raises(RegistryError, match="did you mean 'original'"):
        discover_methods(tmp_path).get("orignal")


# ----------------------------------------------------------------------------- the repository's methods


def test_every_method_in_the_repository_is_valid() -> None:
    registry = discover_methods(REPO_ROOT / "methods")
    assert "original" in registry and len(registry) >= 1
    yamls = sorted((REPO_ROOT / "methods").rglob("method.yaml"))
    assert len(yamls) == len(registry) + 1  # every method.yaml, plus the template's
    for name in registry:
        assert describe_entry(registry.get(name)) == registry.get(name).spec.description_record()


def test_the_template_is_a_valid_method_once_copied(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "methods" / "_template", tmp_path / "my_method")
    entry = discover_methods(tmp_path).get("my_method")
    assert describe_entry(entry).name == "my_method"
    assert [run.name for run in entry.spec.runs()] == [
        "my_method-strength0.5",
        "my_method-strength1.0",
        "my_method-strength2.0",
    ]
    # Copied under another name, only the name in method.yaml changes.
    shutil.copytree(REPO_ROOT / "methods" / "_template", tmp_path / "other" / "ban_codes")
    yaml = tmp_path / "other" / "ban_codes" / "method.yaml"
    yaml.write_text(yaml.read_text().replace("name: my_method", "name: ban_codes"))
    assert describe_entry(discover_methods(tmp_path / "other").get("ban_codes")).name == "ban_codes"


def test_listing_methods_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from benchmark.cli.main import main\n"
        "assert main(['methods', 'ls', '--runs']) == 0\n"
        "import benchmark.api\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip().splitlines()[-1] == "NO TORCH"
    assert "original" in out.stdout


def test_cli_validate_reports_broken_methods(tmp_path: Path, capsys) -> None:
    from benchmark.cli.main import main

    make_method(tmp_path, "good")
    make_method(tmp_path, "bad", py="class Nothing:\n    pass\n")
    assert main(["methods", "validate", "--methods-dir", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "ok   good v1 (2 run(s))" in out.out
    assert "FAIL bad:" in out.out and "has no class 'TestMethod'" in out.out
    assert "1 method(s) failed validation" in out.err
