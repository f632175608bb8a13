"""The bookkeeping of batch puts, pure where it can be.

``Client.put_many``: where a batch is cut into slices, and one future for them
all. ``Pool.put_many``: how much of a batch fits a server, and what each
server's share came to (value-tested in tests/test_pool_failures.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

from .errors import (
    BeanstalkException,
    BufferFull,
    ConnectionLost,
    Draining,
    NotConnected,
    UnexpectedResponse,
)
from .models import Body
from .pipeline import BatchResult

if TYPE_CHECKING:
    from .client import Client
    from .pool import PoolBatchResult

Future = asyncio.Future

#: Bytes of a batch put's commands sent as one slice.
BATCH_SLICE = 256 * 1024


def slice_bounds(commands: Sequence[bytes]) -> list[tuple[int, int]]:
    """Where to cut encoded commands into slices of about :data:`BATCH_SLICE` bytes.

    Each slice takes commands until it reaches the size (at least one each):
    ``(start, end)`` pairs covering every command, in order.
    """
    bounds = []
    start = 0
    while start < len(commands):
        end, size = start, 0
        while end < len(commands) and (size < BATCH_SLICE or end == start):
            size += len(commands[end])
            end += 1
        bounds.append((start, end))
        start = end
    return bounds


def joined_batches(
    loop: asyncio.AbstractEventLoop, slices: list[Future[list[BatchResult]]], counts: list[int]
) -> Future[list[BatchResult]]:
    """One future for the slices of a batch put: every job's result, in order.

    A slice that failed as a whole (never sent: ``BufferFull``,
    ``NotConnected``...) gives its exception to each of its jobs. Cancelling
    the joined future cancels the slices (those not yet written are never sent).
    """
    if len(slices) == 1:
        return slices[0]
    joined: Future[list[BatchResult]] = loop.create_future()
    if not slices:
        joined.set_result([])
        return joined
    remaining = [len(slices)]

    def slice_done(_done: Future[list[BatchResult]]) -> None:
        remaining[0] -= 1
        if remaining[0] or joined.done():
            return
        results: list[BatchResult] = []
        for part, count in zip(slices, counts, strict=True):
            if part.cancelled():
                joined.cancel()
                return
            error = part.exception()
            if error is None:
                results.extend(part.result())
            else:
                assert isinstance(error, BeanstalkException)
                results.extend([error] * count)
        joined.set_result(results)

    def joined_done(_joined: Future[list[BatchResult]]) -> None:
        if joined.cancelled():
            for part in slices:
                part.cancel()

    for part in slices:
        part.add_done_callback(slice_done)
    joined.add_done_callback(joined_done)
    return joined


def fitting_prefix(sizes: Sequence[int], room: int) -> int:
    """How many of the first ``sizes`` fit in ``room`` bytes (a batch is cut at that point)."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > room:
            return count
    return len(sizes)


def settle_batch_part(
    indices: Sequence[int], outcomes: Sequence[object], retry_unknown: bool
) -> tuple[dict[int, Union[int, BeanstalkException]], list[int]]:
    """What one server's share of a pool ``put_many`` came to: the settled results, and
    the indices to place on another server.

    An id is settled: the job is stored, and is never placed again, whatever
    else happened (the reason the batch's combined future is never read as
    "not written"). ``NotConnected`` (never sent) and ``Draining`` (refused)
    go elsewhere; ``ConnectionLost`` and ``UnexpectedResponse`` (outcome
    unknown: the job may exist) go elsewhere only with ``retry_unknown``;
    any other failure (``JobTooBig``, ``BufferFull``, ``Buried``...) is that job's result.
    """
    settled: dict[int, Union[int, BeanstalkException]] = {}
    again: list[int] = []
    for index, outcome in zip(indices, outcomes, strict=True):
        if isinstance(outcome, int) and not isinstance(outcome, bool):
            settled[index] = outcome
        elif isinstance(outcome, (NotConnected, Draining)) or (
            retry_unknown and isinstance(outcome, (ConnectionLost, UnexpectedResponse))
        ):
            again.append(index)
        elif isinstance(outcome, BeanstalkException):
            settled[index] = outcome
        else:
            raise TypeError(f"not a put outcome: {outcome!r}")
    return settled, again


def batch_outcomes(future: asyncio.Future[list[Any]], count: int) -> list[object]:
    """One outcome per job of a client's ``put_many`` future."""
    if future.cancelled():
        # Not by us (a caller's cancellation re-raises before this): unknown.
        return [ConnectionLost(command="put", message="put cancelled; outcome unknown")] * count
    error = future.exception()
    if error is None:
        return list(future.result())
    if isinstance(error, BeanstalkException):
        return [error] * count
    raise error


def fit(
    batch: Batch, client: Client[Any], address: str, part: list[int]
) -> tuple[list[int], Optional[BufferFull]]:
    """The longest head of ``part`` that fits in ``client``'s buffer; the rest refused.

    Refused jobs get ``BufferFull`` as their result, and so will every later
    job of the batch (the caller's loop): a suffix, never a hole in the middle.
    """
    pipeline = client._connection.pipeline
    limit = pipeline.max_pending_bytes
    if limit is None:
        return part, None
    room = limit - pipeline.pending_bytes
    fits = fitting_prefix([batch.sizes[index] for index in part], room)
    if fits == len(part):
        return part, None
    refused = BufferFull(
        command="put",
        message=f"'put' not sent: {address} has room for {max(0, room)} more bytes "
        f"(max_pending_bytes={limit}); this job and every later one of the batch are "
        "refused (retry them in order)",
    )
    for index in part[fits:]:
        batch.results[index] = refused
    return part[:fits], refused


class Batch:
    """A put_many under way: the bodies, their sizes, their options, one result slot each."""

    __slots__ = ("bodies", "options", "results", "sizes")

    def __init__(
        self,
        bodies: Sequence[Body],
        sizes: Sequence[int],
        options: tuple[int, int, int, Optional[str]],
    ) -> None:
        self.bodies = bodies
        self.sizes = sizes
        self.options = options
        self.results: list[Optional[PoolBatchResult]] = [None] * len(bodies)
