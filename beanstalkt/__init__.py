"""beanstalkt: an asynchronous, pipelined beanstalkd client for Tornado and asyncio.

>>> import beanstalkt
>>> async def main():
...     async with beanstalkt.Client() as client:
...         job_id = await client.put(b"hello")
...         job = await client.reserve(timeout=0)
...         await client.delete(job.id)
"""

from .address import parse_address
from .backoff import Backoff
from .client import Client
from .connection import RECONNECT_INTERVAL, RECONNECT_TIMEOUT, Keepalive
from .errors import (
    BadJob,
    BeanstalkConnectionError,
    BeanstalkException,
    BufferFull,
    Buried,
    CommandFailed,
    ConnectFailed,
    ConnectionLost,
    DeadlineSoon,
    Draining,
    ExpectedCRLF,
    JobTooBig,
    NotConnected,
    NotFound,
    NotIgnored,
    ReservationLost,
    ServerError,
    StaleJobRef,
    TimedOut,
    UndecodableBody,
    UnexpectedResponse,
    WrongEventLoop,
)
from .models import Job, Stats, StatsJob, StatsTube
from .pool import (
    NoServerAvailable,
    Pool,
    PoolJobRef,
    PoolKick,
    PoolStats,
    PoolTubes,
    ServerState,
)
from .producer import Priority
from .protocol import DEFAULT_PRIORITY, DEFAULT_TTR
from .servers import ServerSet
from .worker import ReservedJob, TubeCounters, Worker, WorkerServer, buried_tubes

__version__ = "1.0.0.dev0"

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_TTR",
    "RECONNECT_INTERVAL",
    "RECONNECT_TIMEOUT",
    "Backoff",
    "BadJob",
    "BeanstalkConnectionError",
    "BeanstalkException",
    "BufferFull",
    "Buried",
    "Client",
    "CommandFailed",
    "ConnectFailed",
    "ConnectionLost",
    "DeadlineSoon",
    "Draining",
    "ExpectedCRLF",
    "Job",
    "JobTooBig",
    "Keepalive",
    "NotConnected",
    "NotFound",
    "NotIgnored",
    "NoServerAvailable",
    "Pool",
    "PoolJobRef",
    "PoolKick",
    "PoolStats",
    "PoolTubes",
    "Priority",
    "ReservationLost",
    "StaleJobRef",
    "ReservedJob",
    "ServerError",
    "ServerSet",
    "ServerState",
    "Stats",
    "StatsJob",
    "StatsTube",
    "TimedOut",
    "TubeCounters",
    "UndecodableBody",
    "UnexpectedResponse",
    "Worker",
    "WorkerServer",
    "WrongEventLoop",
    "buried_tubes",
    "parse_address",
]
