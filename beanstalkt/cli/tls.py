"""TLS options of every command line: ``--tls``, ``--tls-ca``, ``--tls-cert``, ``--tls-key``.

beanstalkd speaks no TLS itself; it is reached through a TLS terminator
(stunnel, haproxy) in front of it. Each tool adds the same flags with
:func:`add_tls_arguments` and turns them into the ``ssl=`` of
:class:`beanstalkt.Client` with :func:`context_from_arguments`::

    parser = argparse.ArgumentParser()
    add_tls_arguments(parser)
    args = parser.parse_args()
    try:
        context = context_from_arguments(args)  # None: plain TCP
    except TLSOptionError as exc:
        parser.error(str(exc))
    client = Client(host, port, ssl=context)

The server's certificate is always verified, and its name checked against the
host the client connects to; there is deliberately no flag to turn that off
(use ``--tls-ca`` with the CA that signed a private or self-signed certificate).
"""

from __future__ import annotations

import argparse
import os
import ssl
import textwrap
from collections.abc import Iterable
from typing import Any, Optional

from ..address import unix_socket_path

__all__ = [
    "TLSOptionError",
    "add_tls_arguments",
    "context_from_arguments",
    "context_or_usage_error",
    "make_context",
]


class TLSOptionError(ValueError):
    """A TLS option that cannot be used: a missing or unreadable file, a key that does not fit."""


def add_tls_arguments(
    parser: argparse.ArgumentParser, *, suppress_defaults: bool = False
) -> argparse._ArgumentGroup:
    """Add ``--tls``, ``--tls-ca``, ``--tls-cert`` and ``--tls-key`` to ``parser``.

    Returns the argument group they were added to. The values land in
    ``args.tls``, ``args.tls_ca``, ``args.tls_cert`` and ``args.tls_key``.
    ``suppress_defaults``: an option not given sets nothing (for a
    sub-command's parser repeating its program's options, so that a value given
    before the sub-command's name stays).
    """
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress_defaults else {}
    # Filled here: some tools print their help texts as written (RawDescriptionHelpFormatter).
    group = parser.add_argument_group(
        "TLS",
        textwrap.fill(
            "for beanstalkd behind a TLS terminator (stunnel, haproxy); the server's "
            "certificate is always verified against its host name. Any --tls-* option "
            "implies --tls.",
            78,
        ),
    )
    group.add_argument(
        "--tls",
        action="store_true",
        **unset,
        help="connect with TLS, trusting the system's certificate authorities",
    )
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        **unset,
        help="trust the certificate authorities in this PEM file instead (a private CA)",
    )
    group.add_argument(
        "--tls-cert",
        metavar="FILE",
        **unset,
        help="client certificate (PEM) for mutual TLS; may hold the private key too",
    )
    group.add_argument(
        "--tls-key",
        metavar="FILE",
        **unset,
        help="the client certificate's private key (PEM, not encrypted)",
    )
    return group


def context_from_arguments(args: argparse.Namespace) -> Optional[ssl.SSLContext]:
    """The TLS context the parsed options ask for, or ``None`` for plain TCP.

    Raises :class:`TLSOptionError`, with a message naming the option, for a
    file that is missing, unreadable or not PEM, a key without a certificate,
    a certificate without a key, or a key that does not match its certificate.
    """
    ca: Optional[str] = getattr(args, "tls_ca", None)
    cert: Optional[str] = getattr(args, "tls_cert", None)
    key: Optional[str] = getattr(args, "tls_key", None)
    if not (getattr(args, "tls", False) or ca or cert or key):
        return None
    return make_context(ca=ca, cert=cert, key=key)


def context_or_usage_error(
    parser: argparse.ArgumentParser, args: argparse.Namespace, hosts: Iterable[str] = ()
) -> Optional[ssl.SSLContext]:
    """:func:`context_from_arguments`, with a bad option reported by ``parser.error``.

    ``hosts`` are the servers the tool will reach: a ``unix:/path`` among them
    is refused when TLS is asked for (TLS runs over TCP only).
    """
    try:
        context = context_from_arguments(args)
    except TLSOptionError as exc:
        parser.error(str(exc))
    if context is not None:
        for host in hosts:
            if unix_socket_path(host) is not None:
                parser.error(f"--tls needs TCP addresses, not the Unix socket {host}")
    return context


def make_context(
    *, ca: Optional[str] = None, cert: Optional[str] = None, key: Optional[str] = None
) -> ssl.SSLContext:
    """A verifying client context: ``ca`` (else the system's CAs), and a client certificate.

    ``cert`` and ``key`` are PEM files; ``key`` may be left out when ``cert``
    holds the private key as well. Errors as in :func:`context_from_arguments`.
    """
    if key is not None and cert is None:
        raise TLSOptionError("--tls-key needs --tls-cert (the certificate the key belongs to)")
    for option, path in (("--tls-ca", ca), ("--tls-cert", cert), ("--tls-key", key)):
        if path is not None:
            _check_readable(option, path)
    try:
        context = ssl.create_default_context(cafile=ca)
    except ssl.SSLError as exc:
        raise TLSOptionError(
            f"--tls-ca {ca}: no usable CA certificate in it ({_why(exc)})"
        ) from None
    if cert is not None:
        _load_client_certificate(context, cert, key)
    return context


def _check_readable(option: str, path: str) -> None:
    """Fail with the option's name before ssl says only "[Errno 2] No such file"."""
    if not os.path.exists(path):
        raise TLSOptionError(f"{option} {path}: no such file")
    if os.path.isdir(path):
        raise TLSOptionError(f"{option} {path}: is a directory, not a PEM file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TLSOptionError(f"{option} {path}: cannot read it: {exc.strerror}") from None


def _load_client_certificate(context: ssl.SSLContext, cert: str, key: Optional[str]) -> None:
    def no_password() -> str:
        # Without this, OpenSSL would prompt on the terminal for a pass phrase.
        raise TLSOptionError(
            f"{'--tls-key ' + key if key else '--tls-cert ' + cert}: the private key is "
            "encrypted; give an unencrypted key file"
        )

    try:
        context.load_cert_chain(cert, key, password=no_password)
    except TLSOptionError:
        raise
    except ssl.SSLError as exc:
        reason = _why(exc)
        if key is None:
            raise TLSOptionError(
                f"--tls-cert {cert}: no private key in it; give it with --tls-key ({reason})"
            ) from None
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise TLSOptionError(
                f"--tls-key {key} is not the private key of the certificate in --tls-cert {cert}"
            ) from None
        raise TLSOptionError(
            f"--tls-cert {cert} / --tls-key {key}: not a usable PEM certificate and key ({reason})"
        ) from None


def _why(exc: ssl.SSLError) -> str:
    """OpenSSL's reason without the source location: "[PEM] no start line"."""
    return str(exc.reason or exc).lower().replace("_", " ")
