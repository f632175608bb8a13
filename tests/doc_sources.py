"""Read code blocks and sections out of the README and the documentation sources.

One home for the tests that check what the documents show: ``test_readme.py``
and ``test_docs.py`` run the blocks, ``test_cmd.py``, ``test_tls.py`` and
``test_exporter.py`` take the one section they check. Markdown (```` ``` ````
fences, ``#`` headings) and reStructuredText (``.. code-block::``, underlined
headings) are both read; no Sphinx or Markdown library is needed.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

RST_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: *(\S+)\s*$")
RST_OPTION = re.compile(r"^\s+:(\w[\w-]*):\s*(.*)$")
RST_TEST_COMMENT = re.compile(r"^\s*\.\. test: (\S+) ?(.*)$")
RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1+\s*$")
MD_FENCE = re.compile(r"^```(\S*)\s*$")
MD_HEADING = re.compile(r"^(#+) +(.*?)\s*$")


@dataclass
class Block:
    """One code block of a document, with what its test comment (reST only) asks for."""

    page: Path
    line: int  # 1-based line of the block's opening (directive or fence)
    language: str
    code: str
    options: dict[str, str] = field(default_factory=dict)
    instruction: str = ""
    argument: str = ""
    output: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The code blocks of a ``.md`` or ``.rst`` file, in order."""
    lines = page.read_text().splitlines()
    return _markdown_blocks(page, lines) if page.suffix == ".md" else _rst_blocks(page, lines)


def _markdown_blocks(page: Path, lines: list[str]) -> list[Block]:
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = MD_FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        code = "\n".join(body) + "\n" if body else ""
        found.append(Block(page, start + 1, fence.group(1), code))
    return found


def _rst_blocks(page: Path, lines: list[str]) -> list[Block]:
    found: list[Block] = []
    index = 0
    while index < len(lines):
        directive = RST_DIRECTIVE.match(lines[index])
        if not directive:
            index += 1
            continue
        start, indent, language = index, len(directive.group(1)), directive.group(2)
        index += 1
        options: dict[str, str] = {}
        while index < len(lines):
            option = RST_OPTION.match(lines[index])
            if not option:
                break
            options[option.group(1)] = option.group(2)
            index += 1
        body: list[str] = []
        while index < len(lines):
            text = lines[index]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
            index += 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        block = Block(page, start + 1, language, code, options)
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        comment = RST_TEST_COMMENT.match(lines[previous]) if previous >= 0 else None
        if comment:
            block.instruction, block.argument = comment.group(1), comment.group(2).strip()
        found.append(block)
    # An output block belongs to the Python block right before it.
    for before, after in itertools.pairwise(found):
        if (
            before.language == "python"
            and after.language == "text"
            and after.options.get("caption") == "Output"
        ):
            before.output = after.code
    return found


def _headings(page: Path, lines: list[str]) -> list[tuple[int, int, str]]:
    """(0-based line, level, title) of every heading; a smaller level is a bigger heading."""
    headings: list[tuple[int, int, str]] = []
    if page.suffix == ".md":
        in_fence = False
        for number, text in enumerate(lines):
            if MD_FENCE.match(text):
                in_fence = not in_fence
            heading = None if in_fence else MD_HEADING.match(text)
            if heading:
                headings.append((number, len(heading.group(1)), heading.group(2)))
        return headings
    adornments: list[str] = []  # reST levels: in the order the underline styles appear
    for number in range(1, len(lines)):
        title, underline = lines[number - 1], lines[number]
        if (
            title.strip()
            and not title.startswith(" ")
            and RST_UNDERLINE.match(underline)
            and len(underline.rstrip()) >= len(title.rstrip())
        ):
            if underline[0] not in adornments:
                adornments.append(underline[0])
            headings.append((number - 1, adornments.index(underline[0]), title.strip()))
    return headings


def section_range(page: Path, title: str) -> tuple[int, int]:
    """1-based first and last line of the section with this heading, subsections included."""
    lines = page.read_text().splitlines()
    headings = _headings(page, lines)
    for position, (start, level, name) in enumerate(headings):
        if name == title:
            end = next(
                (line for line, other, _ in headings[position + 1 :] if other <= level),
                len(lines),
            )
            return start + 1, end
    raise AssertionError(f"{page.relative_to(ROOT)} has no section {title!r}")


def section_text(page: Path, title: str) -> str:
    """The text of one section (heading included)."""
    first, last = section_range(page, title)
    return "\n".join(page.read_text().splitlines()[first - 1 : last]) + "\n"


def section_blocks(page: Path, title: str, language: str) -> list[Block]:
    """The code blocks in this language in one section of a page."""
    first, last = section_range(page, title)
    return [b for b in blocks(page) if b.language == language and first <= b.line <= last]


def section_block(page: Path, title: str, language: str) -> str:
    """The one code block in this language in a section: its code."""
    found = section_blocks(page, title, language)
    assert len(found) == 1, f"{page.relative_to(ROOT)}, {title!r}: {len(found)} {language} blocks"
    return found[0].code


def write_examples(directory: Path) -> list[Path]:
    """Write the Python examples of the README and the docs under ``directory``; the folders.

    One folder per page, laid out as that page's test run lays it out: a block
    after ``.. test: file PATH`` at PATH (packages get an ``__init__.py``), every
    other block as ``example_LINE.py``. ``.ci/run`` type-checks each folder with
    ``mypy --strict``, as a reader's own code would be.
    """
    pages = [README, *sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.parts)]
    folders = []
    for page in pages:
        python = [block for block in blocks(page) if block.language == "python"]
        if not python:
            continue
        folder = directory / str(page.relative_to(ROOT)).replace("/", "_").replace(".", "_")
        for block in python:
            target = folder / (
                block.argument if block.instruction == "file" else f"example_{block.line}.py"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            for package in target.relative_to(folder).parents:
                if str(package) != ".":
                    (folder / package / "__init__.py").touch()
            target.write_text(block.code)
        folders.append(folder)
    return folders


if __name__ == "__main__":
    import sys

    for written in write_examples(Path(sys.argv[1])):
        print(written)
