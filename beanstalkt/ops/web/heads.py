"""The next jobs of the tubes that open tube pages show: the live part of the tube page.

A tube page's tab asks the live feed for one tube; its server's
:class:`NextJobs` then *watches* that tube. After each poll the console peeks
at the head of each watched tube's ready, delayed and buried queues (on its own
connection, pipelined), takes each head's stats, a short body preview and, for
a buried job, its failure record, and keeps them. A tab is sent a head again
only when it changed; its age and time left come as small ticks. Tubes nobody
looks at cost nothing; at most :data:`MAX_WATCHED_TUBES` are watched per
server (more pages get their counts only).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Optional

from ...client import Client
from ...errors import NotFound
from ._tube_ops import TubeOps
from .render import view_body

#: Tubes per server whose next jobs are followed live (open tube pages); more get counts only.
MAX_WATCHED_TUBES = 100
#: Characters of a body sent to a live tube page (the page links to the job for all of it).
LIVE_BODY_CHARS = 2_000
#: Bytes of a binary body sent to a live tube page, as hex.
LIVE_BODY_BYTES = 512
#: Characters of a failure record's error sent to a live tube page.
LIVE_ERROR_CHARS = 1_000
#: Characters of a failure record's traceback sent to a live tube page (its last ones).
LIVE_TRACEBACK_CHARS = 2_000
#: Seconds the failure records of a tube may take to read (a connect and a reply).
FAILURE_READ_TIMEOUT = 7.0
#: Seconds before a buried head whose failure record was not found is looked up again.
FAILURE_RECHECK = 10.0
#: The queues whose head a tube page shows, in its order.
HEAD_STATES = ("ready", "delayed", "buried")
#: Job stats that change by themselves every second: sent as ticks, not as a new job.
_TICKING = ("age", "time-left")
#: The job stats a tube page shows.
_JOB_FIELDS = (
    "state", "tube", "pri", "age", "time-left", "delay", "ttr",
    "reserves", "timeouts", "releases", "buries", "kicks",
)  # fmt: skip

#: tube -> {state: the head job of that queue as a tube page shows it, or None}.
Heads = dict[str, dict[str, Optional[dict[str, Any]]]]


class NextJobs:
    """One server's watched tubes and the heads of their queues."""

    def __init__(self, server: Any) -> None:
        #: The :class:`~.live.LiveServer` (what a failure reader is given).
        self.server = server
        #: tube -> how many open tube pages look at it.
        self.watched: dict[str, int] = {}
        self.heads: Heads = {}
        #: Reads failure records (``make_app``'s hook); ``None``: the default reader.
        self.failure_reader: Optional[Callable[..., Any]] = None
        #: (tube, job id) -> (when read, failure, failure note) of buried heads.
        self._failures: dict[tuple[str, int], tuple[float, Any, str]] = {}

    def watch(self, tube: str, failure_reader: Optional[Callable[..., Any]] = None) -> bool:
        """An open tube page looks at ``tube``: follow its next jobs; False when at the cap."""
        if tube not in self.watched and len(self.watched) >= MAX_WATCHED_TUBES:
            return False
        self.watched[tube] = self.watched.get(tube, 0) + 1
        if failure_reader is not None:
            self.failure_reader = failure_reader
        return True

    def unwatch(self, tube: str) -> None:
        """One tube page fewer looks at ``tube`` (undoes one :meth:`watch`)."""
        left = self.watched.get(tube, 0) - 1
        if left > 0:
            self.watched[tube] = left
            return
        self.watched.pop(tube, None)
        self.heads.pop(tube, None)
        for key in [key for key in self._failures if key[0] == tube]:
            del self._failures[key]

    async def peek(self, client: Client[bytes], ops: TubeOps, tubes: Any) -> Heads:
        """The next ready, delayed and buried job of every watched tube (peeks, then stats-job).

        ``tubes`` holds the tubes that exist now; a watched tube not among them
        has no jobs. A server error other than "not found" is raised (the poll's).
        """
        names = [name for name in self.watched if name in tubes]
        peeks = [getattr(ops, f"peek_{state}")(name) for name in names for state in HEAD_STATES]
        peeked = await asyncio.gather(*peeks, return_exceptions=True)
        for outcome in peeked:
            if isinstance(outcome, BaseException) and not isinstance(outcome, NotFound):
                raise outcome
        found = [job for job in peeked if not isinstance(job, BaseException)]
        replies = await asyncio.gather(
            *(client.stats_job(job.id) for job in found), return_exceptions=True
        )
        job_stats: dict[int, Any] = {}
        for job, reply in zip(found, replies, strict=True):
            if isinstance(reply, NotFound):
                continue  # taken or deleted meanwhile: not a head any more
            if isinstance(reply, BaseException):
                raise reply
            job_stats[job.id] = reply
        heads: Heads = {name: dict.fromkeys(HEAD_STATES) for name in self.watched}
        places, made = [], []
        for position, job in enumerate(peeked):
            if isinstance(job, BaseException) or job.id not in job_stats:
                continue
            name = names[position // len(HEAD_STATES)]
            places.append((name, HEAD_STATES[position % len(HEAD_STATES)]))
            made.append(self._head(name, job.id, job.body, job_stats[job.id]))
        # At once: a buried head's failure records may take a round trip of their own.
        for (name, state), head in zip(places, await asyncio.gather(*made), strict=True):
            heads[name][state] = head
        return heads

    def keep(self, heads: Heads) -> None:
        """Keep the heads of a poll (a page may have closed meanwhile: only tubes still watched)."""
        self.heads = {name: head for name, head in heads.items() if name in self.watched}

    async def _head(self, tube: str, job_id: int, body: Any, stats: Any) -> dict[str, Any]:
        """One head job as a live tube page shows it (JSON-ready; every value checked)."""
        raw = body if isinstance(body, bytes) else str(body).encode("utf-8")
        shown = view_body(raw, LIVE_BODY_CHARS, LIVE_BODY_BYTES)
        head: dict[str, Any] = {"id": job_id}
        for key in _JOB_FIELDS:
            value = stats.get(key)
            if key in ("state", "tube"):
                head[key] = str(value)[:200] if value is not None else ""
            else:
                head[key] = value if type(value) is int else None
        head["body"] = {"kind": shown.kind, "text": shown.text, "info": shown.description}
        head["failure"], head["failure_note"] = None, ""
        if head["state"] == "buried":
            head["failure"], head["failure_note"] = await self._failure(tube, job_id, stats)
        return head

    async def _failure(self, tube: str, job_id: int, stats: Any) -> tuple[Any, str]:
        """The failure record of buried job ``job_id`` (cached: read when the head changes)."""
        cached = self._failures.get((tube, job_id))
        now = time.monotonic()
        if cached is not None and (cached[1] is not None or now - cached[0] < FAILURE_RECHECK):
            return cached[1], cached[2]
        from .failures import attach_failure  # failures imports live, which imports this

        panel = _Panel(job_id, dict(stats))
        try:
            # A slow record store must not make the server look down (the poll's own bound).
            await asyncio.wait_for(
                attach_failure(self.failure_reader, self.server, panel), FAILURE_READ_TIMEOUT
            )
        except asyncio.TimeoutError:
            panel.failure = None
            panel.failure_note = "The failure records could not be read: no answer in time."
        failure = _failure_fields(panel.failure) if panel.failure is not None else None
        for key in [key for key in self._failures if key[0] == tube]:
            del self._failures[key]  # one buried head per tube: only the current one is kept
        self._failures[(tube, job_id)] = (now, failure, panel.failure_note)
        return failure, panel.failure_note

    def message(self, name: str, up: bool, sent: dict[str, Any]) -> dict[str, Any]:
        """What a tube page's message adds about ``name``'s next jobs.

        ``sent`` is the tab's (state -> the head as last sent, without its ticking
        stats). A head sent before is sent again only when it changed; its age and
        time left come as ``ticks`` ``[state, id, age, time-left]``. ``jobs`` is a
        list of ``[state, job or None]``: a job that vanished is sent as None.
        ``jobs_live`` is False when the tube is not watched (the cap).
        """
        if name not in self.watched:
            return {"jobs_live": False}
        heads = self.heads.get(name)
        if heads is None or not up:
            return {}  # not peeked yet (the next poll does)
        jobs, ticks = [], []
        for state in HEAD_STATES:
            head = heads.get(state)
            fixed = None if head is None else {k: v for k, v in head.items() if k not in _TICKING}
            if state not in sent or sent[state] != fixed:
                sent[state] = fixed
                jobs.append([state, head])
            elif head is not None:
                ticks.append([state, head["id"], head["age"], head["time-left"]])
        return {"jobs": jobs, "ticks": ticks}


class _Panel:
    """What :func:`~.failures.attach_failure` fills in: a job's id, stats and failure."""

    def __init__(self, job_id: int, stats: dict[str, Any]) -> None:
        self.id = job_id
        self.stats = stats
        self.failure: Optional[dict[str, Any]] = None
        self.failure_note = ""


def _failure_fields(record: Any) -> dict[str, str]:
    """A failure record as short texts (a record is written by anyone who can put a job)."""
    record = record if isinstance(record, dict) else {}
    worker = record.get("worker")
    worker = worker if isinstance(worker, dict) else {}
    return {
        "error": str(record.get("error", ""))[:LIVE_ERROR_CHARS],
        "attempts": str(record.get("attempts", "?"))[:40],
        "failed_at": str(record.get("failed_at", "?"))[:80],
        "host": str(worker.get("host", ""))[:200],
        "pid": str(worker.get("pid", ""))[:40],
        # The end of a traceback says what failed: that is what is kept.
        "traceback": str(record.get("traceback", "") or "")[-LIVE_TRACEBACK_CHARS:],
    }


__all__ = ["HEAD_STATES", "LIVE_BODY_CHARS", "MAX_WATCHED_TUBES", "NextJobs"]
