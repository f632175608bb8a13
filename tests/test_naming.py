"""Names settled: one spelling per concept, old spellings kept, references that resolve.

* ``ssl=`` is the TLS option of every class; ``ssl_context=``, the operations
  classes' old spelling, still works (the real TLS runs of both spellings are in
  ``tests/test_tls.py``), and giving both is refused.
* ``Reservation`` lives in ``models`` (where ``Job`` needs it), so the sans-I/O
  core has no import circle; ``beanstalkt.pipeline.Reservation`` still works.
* The core imports nothing from the layers below it (Internals: "The layers").
* Every ``beanstalkt.x.y`` a docstring or a page of the docs refers to exists.
* ``Client.connected`` is the connection state as a property, like the
  client's other state; ``closed()``, the original beanstalkt's method, stays.
* ``Client.put_many`` writes exactly what ``put`` would, through the protocol's
  one put encoder.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import re
import ssl
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import beanstalkt
from beanstalkt import models, pipeline, protocol
from beanstalkt._compat import ssl_or_old_spelling
from beanstalkt.cli import main as cli_main
from beanstalkt.ops import exporter, monitor
from beanstalkt.ops import web as console
from beanstalkt.ops.web import live
from beanstalkt.testing import BeanstalkdServer

from .fake_server import FakeServer

PACKAGE = Path(beanstalkt.__file__).parent
DOCS = PACKAGE.parent / "docs"

# --------------------------------------------------------------------------
# ssl= everywhere.


def test_ssl_or_its_old_spelling() -> None:
    context = ssl.create_default_context()
    assert ssl_or_old_spelling(context, None, "X") is context
    assert ssl_or_old_spelling(None, context, "X") is context
    assert ssl_or_old_spelling(True, None, "X") is True
    assert ssl_or_old_spelling(None, None, "X") is None
    with pytest.raises(TypeError, match=r"^X: give ssl= \(ssl_context= is its old spelling\)"):
        ssl_or_old_spelling(True, context, "X")


@pytest.mark.parametrize("spelling", ["ssl", "ssl_context"])
def test_either_spelling_is_the_tls_of_each_class(spelling: str) -> None:
    context = ssl.create_default_context()
    given: dict[str, Any] = {spelling: context}
    assert cli_main.Server("h", 1, **given).ssl is context
    assert live.ServerMonitor(0, "h", 1, **given).ssl is context
    assert live.Monitor([("h", 1), ("i", 2)], **given).servers[1].ssl is context
    # The watcher's clients are made at once; their TLS is the one given.
    watcher = monitor.ServerWatcher("h:1", **given)
    assert watcher._stats_client._connection.ssl_context is context
    scraper = exporter.Exporter(["h:1"], **given)
    assert scraper.watchers[0]._peek_client._connection.ssl_context is context


async def test_giving_both_spellings_is_refused() -> None:
    context = ssl.create_default_context()
    both: dict[str, Any] = {"ssl": context, "ssl_context": context}
    for make in (
        lambda: cli_main.Server("h", 1, **both),
        lambda: live.ServerMonitor(0, "h", 1, **both),
        lambda: live.Monitor([("h", 1)], **both),
        lambda: monitor.ServerWatcher("h:1", **both),
        lambda: exporter.Exporter(["h:1"], **both),
    ):
        with pytest.raises(TypeError, match="not both"):
            make()
    options = console.ConsoleOptions(read_only=True, token=None, basic_auth=None)
    with pytest.raises(TypeError, match=r"^serve: give ssl="):
        await console.serve(("127.0.0.1", 0), [("h", 1)], options, **both)


# --------------------------------------------------------------------------
# Reservation in models; the layers.


def test_reservation_lives_in_models_and_keeps_its_old_path() -> None:
    assert models.Reservation.__module__ == "beanstalkt.models"
    assert pipeline.Reservation is models.Reservation
    from beanstalkt.pipeline import Reservation

    assert Reservation is models.Reservation


def _module_level_imports(path: Path) -> set[str]:
    """What a module imports at import time (``if TYPE_CHECKING:`` blocks included).

    Imports inside functions are left out: they run only when called (the one
    in ``address.command_line_servers`` keeps an old name working).
    """
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    statements = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.If):
            statements.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            statements.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                statements.extend(handler.body)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


#: The sans-I/O core (Internals, "The layers").
CORE = ("protocol", "yaml", "pipeline", "models", "errors", "address", "producer")
#: What the core must not import: Tornado, the I/O layer, and every edge.
BELOW_THE_CORE = (
    "tornado",
    "beanstalkt.connection",
    "beanstalkt._tornado",
    "beanstalkt.client",
    "beanstalkt.pool",
    "beanstalkt.worker",
    "beanstalkt.ops",
    "beanstalkt.cli",
)


@pytest.mark.parametrize("name", CORE)
def test_the_core_imports_nothing_from_below_it(name: str) -> None:
    imports = _module_level_imports(PACKAGE / f"{name}.py")
    wrong = sorted(i for i in imports if i.startswith(BELOW_THE_CORE))
    assert wrong == []


def test_models_does_not_import_the_pipeline() -> None:
    assert "beanstalkt.models" in _module_level_imports(PACKAGE / "pipeline.py")
    assert not any(
        name.startswith("beanstalkt.pipeline")
        for name in _module_level_imports(PACKAGE / "models.py")
    )


# --------------------------------------------------------------------------
# References that resolve.

_REFERENCE = re.compile(
    r":(?:py:)?(?:func|class|meth|mod|data|exc|attr|obj):`~?(beanstalkt(?:\.\w+)+)`"
)


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` names something documented where it is named.

    A name in a module must be public there: in its ``__all__``, or (for a
    module without one) defined in it -- ``beanstalkt.pool.format_address``
    is importable, but Sphinx documents ``format_address`` in
    ``beanstalkt.address``, so a link to the pool's goes nowhere.
    """
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                # A documented instance attribute (``#:`` in __init__) is not on the class.
                init: Any = getattr(target, "__init__", None)
                return attribute in getattr(getattr(init, "__code__", None), "co_names", ())
            if isinstance(target, ModuleType) and not _public_in(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def _public_in(module: ModuleType, name: str) -> bool:
    if hasattr(module, "__all__"):
        return name in module.__all__
    value = getattr(module, name)
    home = getattr(value, "__module__", module.__name__)
    return isinstance(value, ModuleType) or home == module.__name__


def _references() -> list[tuple[str, str]]:
    files = [
        *sorted(PACKAGE.rglob("*.py")),
        *sorted(DOCS.rglob("*.rst")),
        DOCS.parent / "README.md",
    ]
    return [
        (str(path.relative_to(PACKAGE.parent)), reference)
        for path in files
        for reference in _REFERENCE.findall(path.read_text())
    ]


def test_every_reference_to_a_beanstalkt_name_resolves() -> None:
    references = _references()
    assert ("beanstalkt/address.py", "beanstalkt.cli.common.command_line_servers") in references
    broken = sorted({(where, name) for where, name in references if not _resolves(name)})
    assert broken == []


# --------------------------------------------------------------------------
# State as properties; closed(), the original's method, kept.


async def test_connected_is_the_property_and_closed_the_original_method(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    assert (client.connected, client.closed()) == (False, True)
    await client.connect()
    assert (client.connected, client.closed()) == (True, False)
    lost = asyncio.Event()
    client.set_disconnect_callback(lambda reason: lost.set())
    beanstalkd.stop()
    await asyncio.wait_for(lost.wait(), 30)
    assert (client.connected, client.closed()) == (False, True)
    await client.close()
    assert (client.connected, client.closed()) == (False, True)


# --------------------------------------------------------------------------
# put_many through the protocol's encoder.


async def test_put_many_writes_what_put_would() -> None:
    received = bytearray()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        next_id = 1
        while line := await reader.readline():
            received.extend(line)
            words = line.split()
            if words[0] == b"put":
                received.extend(await reader.readexactly(int(words[4]) + 2))
                writer.write(b"INSERTED %d\r\n" % next_id)
                next_id += 1
            else:
                writer.write(b"USING " + words[1] + b"\r\n")
            await writer.drain()

    bodies = [b"first", b"", b"with\r\nbreaks", "é".encode()]
    async with FakeServer(record) as server, beanstalkt.Client("127.0.0.1", server.port) as client:
        assert await client.put_many(bodies, priority=7, delay=3, ttr=9) == [1, 2, 3, 4]
    assert bytes(received) == b"".join(protocol.encode_put(body, 7, 3, 9) for body in bodies)


# --------------------------------------------------------------------------
# One word per concept: in flight (not answered yet) and owed (written, unanswered).


def test_in_flight_and_owed_are_two_counts_with_one_name_each() -> None:
    state = pipeline.Pipeline()
    state.send(object(), protocol.COMMANDS["stats"], b"stats\r\n")
    assert (state.in_flight, state.owed, state.pending) == (1, 0, 1)  # queued, not written
    state.connection_made()
    assert state.data_to_send() == b"stats\r\n"
    assert (state.in_flight, state.owed, state.pending) == (1, 1, 1)  # written, reply owed
    assert len(state.receive_data(b"OK 4\r\n---\n\r\n")) == 1
    assert (state.in_flight, state.owed, state.pending) == (0, 0, 0)
