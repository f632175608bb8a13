"""Every example in the documentation's guides runs, as written, against a real beanstalkd.

The guides (``docs/**/*.rst``) hold three kinds of checked blocks:

- ``.. code-block:: python``: run in an interpreter of its own, whose ``Client``
  defaults point at a fresh throwaway server (the examples use the default
  address, localhost:11300, as a reader's would). It must exit 0. When the
  next block is a ``.. code-block:: text`` with ``:caption: Output``, the
  program's output must be exactly that.
- ``.. code-block:: console``: a shell session; each ``$ `` line runs through
  bash (``python`` is this interpreter; ``BEANSTALKD_HOST``/``BEANSTALKD_PORT``
  and ``BEANSTALKD_SERVERS`` name a fresh server) and its output must be
  exactly the lines that follow.
- ``sh``, ``ini``, ``yaml``... blocks are illustrations (install commands,
  unit files) and are not run.

A comment right before a block changes how it is run:

- ``.. test: file PATH``: the block is written to PATH in the page's working
  directory (importable by the page's later blocks) instead of being run;
- ``.. test: sigterm-after TEXT``: the program runs until it prints TEXT, then
  gets SIGTERM, and must still exit 0 (a service's shutdown path);
- ``.. test: skip REASON``: not run, for a block that needs what a test
  machine does not have; the reason is required and shown.

This module needs no Sphinx: the blocks are read from the reStructuredText
source (by ``tests/doc_sources.py``). The Sphinx build itself (``-W``) is a step of ``.ci/run``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from beanstalkt.testing import BeanstalkdServer

from .doc_sources import DOCS, Block, blocks, section_blocks

PAGES = sorted(path for path in DOCS.rglob("*.rst") if "_build" not in path.parts)

# Points Client's default host and port at the test server, nothing else.
PRELUDE = """\
import os, beanstalkt
_defaults = beanstalkt.Client.__init__.__defaults__
beanstalkt.Client.__init__.__defaults__ = (
    os.environ["TEST_BEANSTALKD_HOST"], int(os.environ["TEST_BEANSTALKD_PORT"])
) + _defaults[2:]
del _defaults
"""


def checked(block: Block) -> bool:
    return block.language in ("python", "console")


def test_the_guides_have_checked_examples() -> None:
    """The collector finds the examples: a guide without any would be a broken parser."""
    guides = [page for page in PAGES if page.parent.name == "guides"]
    assert len(guides) >= 8
    counted = {page.stem: sum(checked(b) for b in blocks(page)) for page in guides}
    assert counted["getting-started"] >= 3, counted
    assert sum(counted.values()) >= 20, counted


def test_test_comments_are_known() -> None:
    for page in PAGES:
        for block in blocks(page):
            assert block.instruction in ("", "file", "sigterm-after", "skip"), block.where
            if block.instruction:
                assert block.argument, f"{block.where}: '.. test: {block.instruction}' needs text"
            if block.output is not None:
                assert block.language == "python"


def environment(server: BeanstalkdServer, workdir: Path) -> dict[str, str]:
    return {
        "PATH": f"{workdir / '.bin'}{os.pathsep}/usr/bin:/bin:/usr/sbin:/sbin",
        "PYTHONPATH": str(workdir),
        "HOME": str(workdir),
        "TEST_BEANSTALKD_HOST": server.host,
        "TEST_BEANSTALKD_PORT": str(server.port),
        "BEANSTALKD_HOST": server.host,
        "BEANSTALKD_PORT": str(server.port),
        "BEANSTALKD_SERVERS": f"{server.host}:{server.port}",
    }


def run_python(block: Block, workdir: Path) -> str:
    """Run one Python block against a fresh server; its standard output."""
    with BeanstalkdServer() as server:
        env = environment(server, workdir)
        command = [sys.executable, "-c", PRELUDE + block.code]
        if block.instruction == "sigterm-after":
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            printed: list[str] = []
            try:
                for line in process.stdout:  # blocks until the program prints
                    printed.append(line)
                    if block.argument in line:
                        process.send_signal(signal.SIGTERM)
                        break
                rest, errors = process.communicate(timeout=60)
            finally:
                process.kill()
            stdout = "".join(printed) + rest
            assert block.argument in stdout, (block.where, stdout, errors)
            returncode = process.returncode
        else:
            finished = subprocess.run(
                command, cwd=workdir, env=env, capture_output=True, text=True, timeout=60
            )
            stdout, errors, returncode = finished.stdout, finished.stderr, finished.returncode
    assert returncode == 0, f"{block.where} failed:\n{errors}"
    if block.output is not None:
        assert stdout == block.output, f"{block.where}: output differs\n{stdout}\n{errors}"
    return stdout


def run_console(block: Block, workdir: Path) -> None:
    with BeanstalkdServer() as server:
        env = environment(server, workdir)
        for step in re.split(r"^\$ ", block.code, flags=re.M)[1:]:
            command, _, expected = step.partition("\n")
            finished = subprocess.run(
                ["bash", "-c", command],
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=60,
            )
            assert finished.stdout.decode() == expected, f"{block.where}: $ {command}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    """Each checked block of the page, in order, in one working directory."""
    # `python` in the sessions is this interpreter. A wrapper, not a symlink:
    # a symlinked venv interpreter would lose the venv.
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    for block in blocks(page):
        if block.instruction == "skip":
            continue
        if block.instruction == "file":
            target = tmp_path / block.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            for package in target.relative_to(tmp_path).parents:
                if str(package) != ".":
                    (tmp_path / package / "__init__.py").touch()
            target.write_text(block.code)
        elif block.language == "python":
            run_python(block, tmp_path)
        elif block.language == "console":
            run_console(block, tmp_path)


def test_pool_guide_example(tmp_path: Path) -> None:
    """The pool guide's example, over BEANSTALKD_SERVERS: its output names the server's port."""
    (block,) = section_blocks(DOCS / "guides" / "pool.rst", "A pool in code", "python")
    assert block.instruction == "skip"  # left out of the loop above, run here
    stdout = run_python(block, tmp_path)
    assert re.fullmatch(r"put job 1 on 127\.0\.0\.1:\d+\n", stdout), stdout


def test_the_client_reference_table_names_every_method() -> None:
    """The hand-written table of docs/reference/client.rst cannot fall behind the class."""
    import beanstalkt

    table = (DOCS / "reference" / "client.rst").read_text(encoding="utf-8")
    methods = {
        name
        for name, member in vars(beanstalkt.Client).items()
        if callable(member) and not name.startswith("_")
    }
    missing = {name for name in methods if f"``{name}(" not in table and f".{name}()" not in table}
    assert missing == set()
