"""Replies recorded from beanstalkd 1.13, byte for byte, for the pure parser tests.

The test suite's servers are the machine's beanstalkd (1.12 on Debian 12);
1.13 is what Debian 13, Ubuntu 25.10 and Alpine 3.23 ship. Its replies have
the same shape, but ``stats`` quotes ``hostname``, ``os`` and ``platform``,
``stats-tube`` quotes ``name`` and ``stats-job`` quotes ``tube`` (prot.c's
format strings; ``version`` was quoted already, ``id`` and ``state`` are
not). These were read over a plain socket from beanstalkd 1.13 built from its
release tag (``beanstalkd -l 127.0.0.1``: a tube ``my-tube`` with one job of
priority 100 and TTR 60, then a tube named ``$_();+/.-``, then one named
``123``), so the tests check the parser against what that server says rather
than against what we think it says.
"""

from __future__ import annotations

STATS = (
    b"OK 961\r\n---\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 1\ncurrent-jobs-reserved: 0\n"
    b"current-jobs-delayed: 0\ncurrent-jobs-buried: 0\ncmd-put: 1\ncmd-peek: 0\n"
    b"cmd-peek-ready: 0\ncmd-peek-delayed: 0\ncmd-peek-buried: 0\ncmd-reserve: 0\n"
    b"cmd-reserve-with-timeout: 0\ncmd-delete: 0\ncmd-release: 0\ncmd-use: 1\ncmd-watch: 0\n"
    b"cmd-ignore: 0\ncmd-bury: 0\ncmd-kick: 0\ncmd-touch: 0\ncmd-stats: 1\ncmd-stats-job: 0\n"
    b"cmd-stats-tube: 0\ncmd-list-tubes: 0\ncmd-list-tube-used: 0\ncmd-list-tubes-watched: 0\n"
    b"cmd-pause-tube: 0\njob-timeouts: 0\ntotal-jobs: 1\nmax-job-size: 65535\ncurrent-tubes: 2\n"
    b"current-connections: 1\ncurrent-producers: 1\ncurrent-workers: 0\ncurrent-waiting: 0\n"
    b'total-connections: 1\npid: 9718\nversion: "1.13"\nrusage-utime: 0.000972\n'
    b"rusage-stime: 0.000000\nuptime: 0\nbinlog-oldest-index: 0\nbinlog-current-index: 0\n"
    b"binlog-records-migrated: 0\nbinlog-records-written: 0\nbinlog-max-size: 10485760\n"
    b'draining: false\nid: fea0fba38ebef001\nhostname: "vm"\nos: "#1 SMP PREEMPT_DYNAMIC @0"\n'
    b'platform: "x86_64"\n\r\n'
)

STATS_TUBE = (
    b'OK 267\r\n---\nname: "my-tube"\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 1\n'
    b"current-jobs-reserved: 0\ncurrent-jobs-delayed: 0\ncurrent-jobs-buried: 0\n"
    b"total-jobs: 1\ncurrent-using: 1\ncurrent-watching: 0\ncurrent-waiting: 0\n"
    b"cmd-delete: 0\ncmd-pause-tube: 0\npause: 0\npause-time-left: 0\n\r\n"
)

STATS_TUBE_ODD_NAME = (
    b'OK 269\r\n---\nname: "$_();+/.-"\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 1\n'
    b"current-jobs-reserved: 0\ncurrent-jobs-delayed: 0\ncurrent-jobs-buried: 0\n"
    b"total-jobs: 1\ncurrent-using: 1\ncurrent-watching: 0\ncurrent-waiting: 0\n"
    b"cmd-delete: 0\ncmd-pause-tube: 0\npause: 0\npause-time-left: 0\n\r\n"
)

# A tube named like a number: quoted by the server, text for the client.
STATS_TUBE_NUMERIC_NAME = (
    b'OK 263\r\n---\nname: "123"\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\n'
    b"current-jobs-reserved: 0\ncurrent-jobs-delayed: 0\ncurrent-jobs-buried: 0\n"
    b"total-jobs: 0\ncurrent-using: 0\ncurrent-watching: 1\ncurrent-waiting: 0\n"
    b"cmd-delete: 0\ncmd-pause-tube: 0\npause: 0\npause-time-left: 0\n\r\n"
)

STATS_JOB = (
    b'OK 148\r\n---\nid: 1\ntube: "my-tube"\nstate: ready\npri: 100\nage: 0\ndelay: 0\n'
    b"ttr: 60\ntime-left: 0\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\n"
    b"kicks: 0\n\r\n"
)

STATS_JOB_ODD_TUBE = (
    b'OK 148\r\n---\nid: 1\ntube: "$_();+/.-"\nstate: ready\npri: 0\nage: 0\ndelay: 0\n'
    b"ttr: 60\ntime-left: 0\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\n"
    b"kicks: 0\n\r\n"
)

# list-tubes and list-tubes-watched are not quoted in 1.13 either.
LIST_TUBES = b"OK 24\r\n---\n- default\n- my-tube\n\r\n"
LIST_TUBES_ODD_NAME = b"OK 26\r\n---\n- default\n- $_();+/.-\n\r\n"
LIST_TUBES_WATCHED = b"OK 14\r\n---\n- default\n\r\n"

# `reserve-with-timeout 2147483648` (one more than 2**31-1): 1.13 refuses it.
RESERVE_TIMEOUT_TOO_LONG = b"BAD_FORMAT\r\n"


def body(reply: bytes) -> bytes:
    """The YAML document of an ``OK <bytes>`` reply (what the YAML reader is given)."""
    line, _, rest = reply.partition(b"\r\n")
    size = int(line.split()[1])
    assert rest[size:] == b"\r\n", "a recorded reply is not framed by its length"
    return rest[:size]
