"""Operations: watching servers and workers from outside.

* :mod:`beanstalkt.ops.monitor` -- a whole server's statistics in one snapshot;
* :mod:`beanstalkt.ops.metrics` -- the worker's Prometheus metrics (``metrics`` extra);
* :mod:`beanstalkt.ops.exporter` -- a Prometheus exporter of servers (``beanstalkt exporter``);
* :mod:`beanstalkt.ops.top` -- a terminal view of servers (``beanstalkt top``);
* :mod:`beanstalkt.ops.web` -- the web console (``beanstalkt web``).

Nothing here is imported by the core: the client, the pool and the worker run
without it.
"""
