"""Sphinx configuration of the beanstalkt documentation.

Build it with ``sphinx-build -W -b html docs docs/_build`` (warnings are errors).
The API reference is generated from the docstrings and the CLI reference from
the argument parsers, so neither can drift from the code. Two checks run at
the end of every build and warn (so fail under ``-W``) when a public name of
the package has no entry in the reference.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, Optional, ParamSpec, TypeVar

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

# argparse wraps help to the terminal's width: fix it, so builds are identical.
os.environ["COLUMNS"] = "88"

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import beanstalkt  # noqa: E402

project = "beanstalkt"
author = "the beanstalkt authors"
copyright = "the beanstalkt authors, Apache License 2.0"
release = beanstalkt.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]

# Every reference must resolve: a class name that renders as plain text is a
# build error (under -W). The names below are the only exceptions: the
# standard library's and third parties' (Tornado, prometheus_client), which
# resolve only through intersphinx, and intersphinx is off in local and CI
# builds (see intersphinx_mapping). A name of beanstalkt never goes here:
# document it, or fix the reference.
nitpicky = True
nitpick_ignore = [
    ("py:class", name)
    for name in (
        # The standard library, as type hints spell it.
        "_asyncio.Future",  # asyncio.Future, by the name of its C implementation
        "asyncio.Future",
        "asyncio.TimeoutError",
        "argparse.ArgumentParser",
        "argparse.Namespace",
        "argparse._ArgumentGroup",
        "collections.abc.AsyncGenerator",
        "collections.abc.Awaitable",
        "collections.abc.Callable",
        "collections.abc.Coroutine",
        "collections.abc.Iterable",
        "collections.abc.Iterator",
        "collections.abc.Mapping",
        "collections.abc.Sequence",
        "concurrent.futures.Executor",
        "contextlib.AbstractContextManager",
        "datetime.datetime",
        "datetime.timedelta",
        "datetime.tzinfo",
        "enum.Enum",
        "enum.IntEnum",
        "ssl.SSLContext",
        "socket.socket",
        "SSLContext",  # ssl.SSLContext, unqualified by autodoc
        # Tornado.
        "Application",  # tornado.web.Application, unqualified by autodoc
        "tornado.httputil.HTTPServerRequest",
        "tornado.web.Application",
        "tornado.web.RequestHandler",
        # prometheus_client.
        "CollectorRegistry",  # prometheus_client.CollectorRegistry, unqualified by autodoc
        "prometheus_client.metrics_core.Metric",
        # taskiq (the taskiq extra).
        "taskiq.AckableMessage",
        "taskiq.AsyncBroker",
        "taskiq.abc.broker.AsyncBroker",
        "taskiq.acks.AckableMessage",
        "taskiq.message.BrokerMessage",
    )
] + [
    ("py:mod", "tornado.testing"),
    ("py:func", "time.monotonic"),
    ("py:meth", "asyncio.AbstractEventLoop.add_signal_handler"),
]
# The guides' code blocks are Python unless they say otherwise.
highlight_language = "python3"

html_theme = "alabaster"
html_title = f"beanstalkt {release}"
html_theme_options = {
    "description": "An async, pipelined beanstalkd client for Tornado and asyncio",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"show-inheritance": True}
autoclass_content = "both"

# Links into Python's and Tornado's documentation need their inventories, which
# are fetched over the network. Read the Docs has one; a local or CI build does
# not, and a failed fetch is a warning (an error under -W). So intersphinx is
# on where the build can reach them: on Read the Docs, or when asked for.
if os.environ.get("READTHEDOCS") or os.environ.get("BEANSTALKT_DOCS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "tornado": ("https://www.tornadoweb.org/en/stable/", None),
    }
else:
    intersphinx_mapping = {}

# The modules with an API page. A module added to the package gets a page by
# being added here and to docs/reference/ (the lead adds pool and tls when they
# land); the check below fails the build when a public name has no entry.
DOCUMENTED_MODULES = [
    "beanstalkt",
    "beanstalkt.client",
    "beanstalkt.pool",
    "beanstalkt.address",
    "beanstalkt.pipeline",
    "beanstalkt.protocol",
    "beanstalkt.errors",
    "beanstalkt.models",
    "beanstalkt.producer",
    "beanstalkt.worker",
    "beanstalkt.tasks",
    "beanstalkt.taskiq",
    "beanstalkt.testing",
    "beanstalkt.ops.metrics",
    "beanstalkt.ops.exporter",
    "beanstalkt.ops.top",
    "beanstalkt.ops.monitor",
    "beanstalkt.cli.tls",
    "beanstalkt.cli.common",
    "beanstalkt.ops.web",
]


class PublicNames(SphinxDirective):
    """``.. public-names::``: a table of every name in ``beanstalkt.__all__``, linked."""

    def run(self) -> list[nodes.Node]:
        lines = [".. list-table::", "   :header-rows: 1", "", "   * - name", "     - kind"]
        for name in sorted(beanstalkt.__all__, key=str.lower):
            obj = getattr(beanstalkt, name)
            kind = (
                "exception"
                if isinstance(obj, type) and issubclass(obj, BaseException)
                else "class"
                if isinstance(obj, type)
                else "function"
                if callable(obj)
                else "constant"
            )
            lines += [f"   * - :py:obj:`~beanstalkt.{name}`", f"     - {kind}"]
        return _parse(self, lines, "public-names")


def _parse(directive: SphinxDirective, lines: list[str], source: str) -> list[nodes.Node]:
    container = nodes.container()
    directive.state.nested_parse(StringList(lines, source=source), 0, container)
    return list(container.children)


class ExceptionTree(SphinxDirective):
    """``.. exception-tree::``: the exception classes as a tree, from the code itself."""

    def run(self) -> list[nodes.Node]:
        from beanstalkt import errors

        public = {getattr(errors, name) for name in errors.__all__}
        lines: list[str] = []

        def walk(cls: type, depth: int) -> None:
            indent = "   " * depth
            summary = _first_paragraph(cls.__doc__)
            lines.append(f"{indent}* :py:exc:`~beanstalkt.{cls.__name__}`: {summary}")
            lines.append("")
            children = sorted(
                (sub for sub in cls.__subclasses__() if sub in public), key=lambda c: c.__name__
            )
            for child in children:
                walk(child, depth + 1)

        walk(errors.BeanstalkException, 0)
        return _parse(self, lines, "exception-tree")


class CommandFailures(SphinxDirective):
    """``.. command-failures::``: per command, the reply words that fail it and their exceptions.

    Read from the protocol's command table, the one the client itself uses.
    """

    def run(self) -> list[nodes.Node]:
        from beanstalkt import errors, protocol

        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 20 15 65",
            "",
            "   * - command",
            "     - success",
            "     - failure reply → exception",
        ]
        for name, spec in protocol.COMMANDS.items():
            failures = [
                f"``{word.decode()}`` → :py:exc:`~beanstalkt.{cls.__name__}`"
                for word, cls in spec.failures.items()
            ]
            if spec.acts_on_reservation:
                failures.append(
                    f"(not sent) → :py:exc:`~beanstalkt.{errors.ReservationLost.__name__}` "
                    "when given a ``Job`` whose connection was lost"
                )
            lines += [
                f"   * - ``{name}``",
                f"     - ``{spec.success.decode()}``",
                "     - " + ("; ".join(failures) or "none of its own"),
            ]
        return _parse(self, lines, "command-failures")


class ProgramHelp(SphinxDirective):
    """``.. program-help:: module:function``: what ``-h`` prints, for a program and its commands.

    The function returns the program's :class:`argparse.ArgumentParser`. Each
    sub-command gets a section of its own (a heading, then its ``-h``), so
    that the page has an entry per command and the text is exactly the
    program's own.
    """

    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {"prog": str}

    def run(self) -> list[nodes.Node]:
        module_name, _, function = self.arguments[0].partition(":")
        build = getattr(importlib.import_module(module_name), function)
        parser: argparse.ArgumentParser = build()
        if "prog" in self.options:
            parser.prog = self.options["prog"]
        output: list[nodes.Node] = [self._help(parser)]
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                continue
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias
                    continue
                seen.add(id(sub))
                section = nodes.section(ids=[nodes.make_id(f"{parser.prog}-{name}")])
                section += nodes.title(text=f"{parser.prog} {name}")
                section += self._help(sub)
                output.append(section)
        return output

    @staticmethod
    def _help(parser: argparse.ArgumentParser) -> nodes.Node:
        text = parser.format_help().rstrip()
        return nodes.literal_block(text, text, language="none")


def _first_paragraph(docstring: Optional[str]) -> str:
    """A docstring's first paragraph on one line (its first line alone may stop mid-sentence)."""
    paragraph = inspect.cleandoc(docstring or "").split("\n\n")[0]
    return " ".join(paragraph.split())


def _lookup(dotted: str) -> tuple[bool, object]:
    """(found, object) for a dotted name of the package: a module, or attributes of one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        if not module_name.startswith("beanstalkt"):
            return False, None
        try:
            obj: object = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return False, None
        return True, obj
    return False, None


def _public_object(
    target: str, module: Optional[str], class_name: Optional[str] = None
) -> Optional[tuple[str, object]]:
    """The (last name, object) a reference means, when it names something of the package.

    ``beanstalkt.Client``, ``beanstalkt.worker.worker.Worker`` (where the class
    is defined, as type hints spell it) and a bare ``Client`` in a page or
    docstring of a beanstalkt module all mean one object.
    """
    # A ParamSpec's parts, as autodoc spells them in a signature: "typing.~P".
    target = target.removeprefix("typing.~").removeprefix("~")
    candidates = [target]
    if module and not target.startswith("beanstalkt"):
        candidates.insert(0, f"{module}.{target}")
        # A name of the module that defines the class being documented (the
        # class may be documented where it is re-exported).
        known, documented_class = _lookup(f"{module}.{class_name}") if class_name else (False, None)
        defining = getattr(documented_class, "__module__", None) if known else None
        if isinstance(defining, str) and defining != module:
            candidates.insert(1, f"{defining}.{target}")
    if not target.startswith("beanstalkt"):
        candidates.append(f"beanstalkt.{target}")
    for candidate in candidates:
        found, obj = _lookup(candidate)
        if found and _of_the_package(obj):
            return candidate.rpartition(".")[2], obj
    return None


def _of_the_package(obj: object) -> bool:
    """Whether an object reached through a beanstalkt module is beanstalkt's own.

    ``beanstalkt.cli.common.argparse.ArgumentParser`` is reachable, but it is
    the standard library's, which the ignore list (or intersphinx) decides.
    """
    if inspect.ismodule(obj):
        return obj.__name__.startswith("beanstalkt")
    if isinstance(obj, (type, TypeVar, ParamSpec)) or inspect.isroutine(obj):
        return str(getattr(obj, "__module__", "")).startswith("beanstalkt")
    return True  # data, such as a type alias: matched by identity below


def resolve_public_names(
    app: Sphinx, env: Any, node: Any, contnode: nodes.Node
) -> Optional[nodes.Node]:
    """Link a reference to a package name to the entry that documents that object.

    The reference documents each class once, in the module a reader would
    look in (``beanstalkt.client.Client``, ``beanstalkt.worker.Worker``), while
    the guides and the type hints name it as users import it
    (``beanstalkt.Client``) or where it is defined (``beanstalkt.worker.worker``).
    Every such spelling is resolved here to the one documented entry -- the
    same object, not merely the same last name -- and anything else stays
    unresolved, which nitpicky mode makes a build error.
    """
    if node.get("refdomain") != "py":
        return None
    found = _public_object(node["reftarget"], node.get("py:module"), node.get("py:class"))
    if found is None:
        return None
    name, obj = found
    if isinstance(obj, (TypeVar, ParamSpec)) or name.startswith("_"):
        # A signature's type variable, or a private helper class in a return
        # type, has no entry on purpose: shown as its name, without a link.
        return contnode
    domain = env.get_domain("py")
    for full, entry in domain.objects.items():
        if not (full == f"beanstalkt.{name}" or full.endswith(f".{name}")):
            continue
        if entry.aliased or not full.startswith("beanstalkt."):
            continue
        known, documented = _lookup(full)
        if known and documented is obj:
            result: Optional[nodes.Node] = domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], full, node, contnode
            )
            if result is None:  # a role of another kind (:class: for data): any kind
                matches = domain.resolve_any_xref(
                    env, node["refdoc"], app.builder, full, node, contnode
                )
                result = matches[0][1] if matches else None
            return result
    return None


def _documented_as(name: str, documented: set[str]) -> bool:
    """Whether the reference has an entry for this public name, in any beanstalkt module."""
    return any(
        full == f"beanstalkt.{name}"
        or (full.startswith("beanstalkt.") and full.endswith(f".{name}"))
        for full in documented
    )


def check_public_names(app: Sphinx, env: Any) -> None:
    """Warn for each public name (package ``__all__``, each module's ``__all__``) not documented."""
    log = logging.getLogger("beanstalkt.docs")
    documented = set(env.get_domain("py").objects)
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        if f"{module_name}" not in documented:
            log.warning("module %s has no entry in the API reference", module_name)
        for name in getattr(module, "__all__", ()):
            if not _documented_as(name, documented):
                log.warning("public name %s.%s is not in the API reference", module_name, name)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("public-names", PublicNames)
    app.add_directive("exception-tree", ExceptionTree)
    app.add_directive("command-failures", CommandFailures)
    app.add_directive("program-help", ProgramHelp)
    app.connect("env-check-consistency", check_public_names)
    app.connect("missing-reference", resolve_public_names)
    return {"parallel_read_safe": True}
