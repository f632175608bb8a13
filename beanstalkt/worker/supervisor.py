"""``--processes N``: N worker processes under one supervisor.

The supervisor starts N children, each the same worker command line without
``--processes`` (so each is a whole worker: its own connections, slots,
counters), and:

* restarts a child that dies (killed, crashed, lost its servers) with a
  capped exponential backoff (1 s, 2 s, 4 s ... 30 s; back to 1 s once a child
  has run for a minute), logging why;
* on SIGTERM or SIGINT, sends SIGTERM to every child, which stops gracefully
  (its running jobs get the grace period, then are released: nothing is left
  reserved); a second signal is passed on too (the children then release at
  once); a child still there ``grace_period + 15`` seconds later is killed;
* runs each child in a session of its own (a terminal's Ctrl-C reaches the
  supervisor only); a child whose supervisor died stops gracefully by itself;
* exits 0 after a graceful stop (or when every child finished by itself with
  0, as in burst mode), 2 when a child reported a usage error (nothing is
  restarted then), 1 when a child had to be killed.

Metrics and ``/healthz`` are per child: child ``i`` (0, 1, ...) serves them on
``--metrics-port`` + ``i`` (the environment variable ``BEANSTALKT_WORKER_CHILD``
tells a child its number).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Optional

logger = logging.getLogger("beanstalkt.worker")

#: The environment variable that tells a child its number.
CHILD_VARIABLE = "BEANSTALKT_WORKER_CHILD"
#: Restart backoff: first delay, cap, and how long a child must run to reset it.
RESTART_FIRST = 1.0
RESTART_CAP = 30.0
RESTART_RESET_AFTER = 60.0
#: Beyond the grace period, how long children get before they are killed.
KILL_MARGIN = 15.0
_POLL = 0.1


def restart_delay(failures: int) -> float:
    """Seconds before restarting a child that died ``failures`` times in a row (1, 2, ...)."""
    return float(min(RESTART_CAP, RESTART_FIRST * 2 ** min(max(failures, 1) - 1, 10)))


class _Child:
    __slots__ = ("failures", "index", "process", "restart_at", "started", "status")

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: Optional[float] = None
        # The exit status once it finished for good (not to be restarted).
        self.status: Optional[int] = None


class Supervisor:
    """Run ``command`` (a worker command line) ``processes`` times; see the module."""

    def __init__(self, command: Sequence[str], processes: int, grace_period: float) -> None:
        self.command = list(command)
        self.children = [_Child(index) for index in range(processes)]
        self.grace_period = grace_period
        self.stopping = False
        self.stop_deadline = 0.0
        self.killed = False
        self.usage_error = False

    def run(self) -> int:
        """Supervise until every child is done; returns the exit status."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for child in self.children:
                self._spawn(child)
            while any(child.status is None for child in self.children):
                time.sleep(_POLL)
                self._turn(time.monotonic())
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.usage_error:
            return 2
        if self.killed or any(child.status for child in self.children):
            return 1
        return 0

    def _turn(self, now: float) -> None:
        for child in self.children:
            if child.status is not None:
                continue
            process = child.process
            if process is None:
                if self.stopping:
                    child.status = 0  # never restarted: nothing to stop
                elif child.restart_at is not None and now >= child.restart_at:
                    self._spawn(child)
                continue
            code = process.poll()
            if code is None:
                if self.stopping and now > self.stop_deadline:
                    logger.error("worker process %d: still running; killing it", process.pid)
                    process.kill()
                    process.wait()
                    self.killed = True
                    child.status = 1
                continue
            self._ended(child, code, now)

    def _ended(self, child: _Child, code: int, now: float) -> None:
        child.process = None
        if self.stopping:
            child.status = 0 if code in (0, -signal.SIGTERM) else code
            return
        if code == 0:
            child.status = 0  # finished by itself (burst mode): done
            return
        if code == 2:
            logger.error("worker process %d: usage error; stopping", child.index)
            self.usage_error = True
            child.status = 2
            self._stop_all()
            return
        if now - child.started >= RESTART_RESET_AFTER:
            child.failures = 0
        child.failures += 1
        delay = restart_delay(child.failures)
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        logger.warning("worker process %d: %s; restarting it in %.0fs", child.index, how, delay)
        child.restart_at = now + delay

    def _spawn(self, child: _Child) -> None:
        environment = {**os.environ, CHILD_VARIABLE: str(child.index)}
        # A session of its own: a terminal's Ctrl-C reaches the supervisor only,
        # which passes one SIGTERM on (a child given both would take the second
        # as "release the running jobs at once").
        child.process = subprocess.Popen(self.command, env=environment, start_new_session=True)
        child.started = time.monotonic()
        child.restart_at = None
        logger.info("worker process %d started (pid %d)", child.index, child.process.pid)

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        del frame
        if not self.stopping:
            logger.info("%s: stopping every worker process", signal.Signals(signum).name)
        self._stop_all()

    def _stop_all(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.grace_period + KILL_MARGIN
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)


def child_command(argv: Sequence[str]) -> list[str]:
    """The worker command line of a child: ``argv`` without ``--processes``."""
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--processes":
            skip = True
            continue
        if word.startswith("--processes="):
            continue
        words.append(word)
    return [sys.executable, "-m", "beanstalkt.worker", *words]


def child_index() -> Optional[int]:
    """This process's child number under a supervisor (``None``: not a child)."""
    text = os.environ.get(CHILD_VARIABLE)
    return int(text) if text is not None and text.isdigit() else None


__all__ = ["CHILD_VARIABLE", "Supervisor", "child_command", "child_index", "restart_delay"]
