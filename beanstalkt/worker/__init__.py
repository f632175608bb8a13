"""The production worker: :class:`Worker`, the jobs it hands to handlers and the actions they take.

::

    from beanstalkt.worker import Worker, Release, Bury, Delete

The design (slots, several servers, the cost per job, how attempts are counted)
is described in :mod:`beanstalkt.worker.worker`, failure records in
:mod:`beanstalkt.worker.failures`; the command line
(``python -m beanstalkt.worker``, ``beanstalkt worker``) is :mod:`beanstalkt.cli.worker`.
"""

from ..cli.worker import build_parser, load_handler, main
from .actions import Bury, Delete, JobAction, Release, TimeLimitExceeded
from .counters import TubeCounters
from .job import ReservedJob
from .policy import Handler, TubePolicy
from .worker import Worker, WorkerServer, buried_tubes

__all__ = [
    "Bury",
    "Delete",
    "Handler",
    "JobAction",
    "Release",
    "ReservedJob",
    "TimeLimitExceeded",
    "TubeCounters",
    "TubePolicy",
    "Worker",
    "WorkerServer",
    "build_parser",
    "buried_tubes",
    "load_handler",
    "main",
]
