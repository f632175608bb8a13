"""The sdist carries what it needs to run its own tests.

Built here as a release builds it (``python -m build --sdist``), then its
file list is checked against this tree: every test module and helper
(``conftest.py``, ``__init__.py``, the fake server, the CLI runner), the
scripts that set the tests up, the benchmarks the smoke tests run, the docs
whose examples the tests execute, the demo, the change log and every file of
the package. ``scripts/check-sdist.sh`` (run by ``.ci/run``) goes further: it
unpacks the sdist and runs its tests there.
"""

from __future__ import annotations

import email.parser
import subprocess
import sys
import tarfile
from pathlib import Path

import trove_classifiers

ROOT = Path(__file__).resolve().parent.parent

#: Where tests read from besides the package: all of it must ship.
NEEDED = ("tests", "scripts", "benchmarks", "docs")


def _tree_files() -> set[str]:
    wanted = {"CHANGELOG.md", "CONTRIBUTING.md", "README.md", "LICENSE", "demo.py", "setup.cfg"}
    wanted |= {"pyproject.toml", ".ci/run"}
    for top in (*NEEDED, "beanstalkt"):
        for path in (ROOT / top).rglob("*"):
            relative = path.relative_to(ROOT)
            skipped = {"__pycache__", "_build"} & set(relative.parts)
            if path.is_file() and not skipped and path.suffix not in (".pyc", ".pyo"):
                wanted.add(relative.as_posix())
    return wanted


def test_the_sdist_ships_everything_its_tests_need(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (archive,) = tmp_path.glob("beanstalkt-*.tar.gz")
    with tarfile.open(archive) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        top = archive.name.removesuffix(".tar.gz")
        stream = sdist.extractfile(f"{top}/PKG-INFO")
        assert stream is not None
        metadata = email.parser.Parser().parsestr(stream.read().decode())
    missing = sorted(_tree_files() - names)
    assert missing == []
    for helper in ("tests/__init__.py", "tests/conftest.py", "tests/fake_server.py"):
        assert helper in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    # What PyPI shows: classifiers it accepts (it refuses unknown ones), and links.
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert [c for c in classifiers if c not in trove_classifiers.classifiers] == []
    assert "Documentation, https://beanstalkt.readthedocs.io/" in (
        metadata.get_all("Project-URL") or []
    )
