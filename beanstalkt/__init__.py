"""beanstalkt: an asynchronous, pipelined beanstalkd client for Tornado and asyncio.

>>> import beanstalkt
>>> async def main():
...     async with beanstalkt.Client() as client:
...         job_id = await client.put(b"hello")
...         job = await client.reserve(timeout=0)
...         await client.delete(job.id)
"""

from .client import Client
from .connection import RECONNECT_TIMEOUT
from .errors import (
    BeanstalkConnectionError,
    BeanstalkException,
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
    ServerError,
    TimedOut,
    UnexpectedResponse,
)
from .models import Job, Stats, StatsJob, StatsTube
from .protocol import DEFAULT_PRIORITY, DEFAULT_TTR

__version__ = "1.0.0.dev0"

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_TTR",
    "RECONNECT_TIMEOUT",
    "BeanstalkConnectionError",
    "BeanstalkException",
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
    "NotConnected",
    "NotFound",
    "NotIgnored",
    "ServerError",
    "Stats",
    "StatsJob",
    "StatsTube",
    "TimedOut",
    "UnexpectedResponse",
]
