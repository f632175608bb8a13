"""Old spellings kept working: one place that maps each onto its settled name.

The TLS option is ``ssl=`` everywhere (as for :class:`beanstalkt.Client`);
the operations classes once spelled it ``ssl_context=``, which still works.
"""

from __future__ import annotations

from .connection import SSLOption


def ssl_or_old_spelling(ssl: SSLOption, ssl_context: SSLOption, where: str) -> SSLOption:
    """``ssl``, or else ``ssl_context`` (its old spelling); both given is a ``TypeError``."""
    if ssl_context is None:
        return ssl
    if ssl is not None:
        raise TypeError(f"{where}: give ssl= (ssl_context= is its old spelling), not both")
    return ssl_context


__all__ = ["ssl_or_old_spelling"]
