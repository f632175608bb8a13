"""How long to wait before trying a server again: capped exponential backoff with jitter.

One small, pure object (redis-py's ``backoff.py`` is the model) used by every
retry path of the package: the server layer's first connects and re-admissions
(:mod:`beanstalkt.servers`), and the client's reconnects when it is given one.
The delay after the ``n``-th failure in a row is drawn from
``[ceiling * (1 - jitter), ceiling]`` with ``ceiling = min(cap, base * 2**(n-1))``,
so 500 workers that lost the same server at the same moment come back spread
over a second or more instead of in the same millisecond::

    >>> from random import Random
    >>> policy = Backoff(base=0.5, cap=8.0, jitter=0.0)
    >>> [policy.delay(failures) for failures in range(1, 7)]
    [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    >>> 2.0 <= Backoff(base=0.5, cap=8.0).delay(4, Random(1)) <= 4.0
    True
"""

from __future__ import annotations

import random as random_module
from dataclasses import dataclass
from typing import Optional, Protocol


class RandomSource(Protocol):
    """What :meth:`Backoff.delay` draws from: ``random``, or a seeded ``random.Random``."""

    def random(self) -> float:
        """A float in ``[0, 1)``."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter.

    :param base: the delay after the first failure (before jitter), seconds.
    :param cap: the longest delay, seconds.
    :param jitter: the fraction of each delay that is random: 0 for none,
        0.5 ("equal jitter": at least half the delay, the default), 1 for
        "full jitter" (anything from 0 to the ceiling).
    """

    base: float = 0.25
    cap: float = 10.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base must be a positive number of seconds, not {self.base!r}")
        if not self.cap >= self.base:
            raise ValueError(f"cap must be at least base ({self.base}), not {self.cap!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be from 0 to 1, not {self.jitter!r}")

    def ceiling(self, failures: int) -> float:
        """The delay after ``failures`` failures in a row, before jitter (0 for none)."""
        if failures <= 0:
            return 0.0
        # 2**64 times any positive base is past any cap: no overflow for huge counts.
        if failures > 64:
            return self.cap
        return min(self.cap, self.base * 2.0 ** (failures - 1))

    def delay(self, failures: int, rng: Optional[RandomSource] = None) -> float:
        """Seconds to wait after ``failures`` failures in a row (0 for none).

        ``rng`` is the random source (default: the ``random`` module); tests
        pass a seeded ``random.Random`` to get exact values.
        """
        ceiling = self.ceiling(failures)
        if not ceiling or not self.jitter:
            return ceiling
        draw: float = (rng if rng is not None else random_module).random()
        return ceiling * (1.0 - self.jitter) + ceiling * self.jitter * draw


#: The package's policy unless told otherwise: 0.25 s, doubling to 10 s, half of it random.
DEFAULT_BACKOFF = Backoff()

__all__ = ["DEFAULT_BACKOFF", "Backoff", "RandomSource"]
