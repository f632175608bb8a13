"""TLS: the library, the CLI and the operations tools through stunnel in front of a real beanstalkd.

The terminator is Debian's ``stunnel4`` (installed by ``scripts/setup.sh test``),
run with the configuration the operations guide shows. A throwaway CA, server and
client certificates are made once per session with the ``openssl`` command
line (EC keys: milliseconds). What reached beanstalkd is always checked on a
plain connection to beanstalkd itself, behind the terminator's back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

import beanstalkt
from beanstalkt.cli import tls
from beanstalkt.errors import BeanstalkConnectionError, ConnectFailed
from beanstalkt.ops.exporter import Exporter
from beanstalkt.ops.web.live import Monitor
from beanstalkt.testing import BeanstalkdServer, free_port

from .cli_runner import cli
from .doc_sources import DOCS, section_block

# How long stunnel may take to start listening before the test fails (a guard, not an assertion).
START_GUARD = 10.0


@dataclass(frozen=True)
class Certificates:
    """PEM files of one throwaway PKI."""

    directory: Path
    ca: Path  # the CA that signed everything below
    server_cert: Path  # for localhost and 127.0.0.1
    server_key: Path
    wrong_name_cert: Path  # signed by the CA, but for queue.example only
    wrong_name_key: Path
    client_cert: Path  # a client certificate for mutual TLS
    client_key: Path
    client_combined: Path  # client certificate and key in one file
    other_ca: Path  # a CA that signed nothing here


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign",
        cwd=directory,
    )  # fmt: skip


def _make_signed(directory: Path, name: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions + "\n")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA, server certificates (right and wrong name), a client certificate, another CA."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is needed to make the test certificates")
    directory = tmp_path_factory.mktemp("pki")
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    _make_signed(directory, "server", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    _make_signed(directory, "wrong-name", "subjectAltName=DNS:queue.example")
    _make_signed(directory, "client", "extendedKeyUsage=clientAuth")
    combined = directory / "client-combined.pem"
    combined.write_bytes(
        (directory / "client.pem").read_bytes() + (directory / "client.key").read_bytes()
    )
    return Certificates(
        directory=directory,
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        wrong_name_cert=directory / "wrong-name.pem",
        wrong_name_key=directory / "wrong-name.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        client_combined=combined,
        other_ca=directory / "other-ca.pem",
    )


class Stunnel:
    """One stunnel process terminating TLS on ``port`` in front of a beanstalkd.

    ``client_ca`` turns on mutual TLS: clients must present a certificate
    signed by it. :meth:`stop` and :meth:`start` again keep the same port.
    """

    def __init__(
        self,
        backend: BeanstalkdServer,
        directory: Path,
        cert: Path,
        key: Path,
        client_ca: Optional[Path] = None,
    ) -> None:
        executable = shutil.which("stunnel4") or shutil.which("stunnel")
        if executable is None:
            pytest.fail("stunnel4 is not installed: run scripts/setup.sh test (it installs it)")
        self.executable = executable
        self.port = free_port()
        self.config = directory / f"stunnel-{self.port}.conf"
        self.log = directory / f"stunnel-{self.port}.log"
        # The operations guide's server side configuration, with test paths and ports.
        lines = [
            "foreground = yes",
            "pid =",
            "[beanstalkd]",
            f"accept = 127.0.0.1:{self.port}",
            f"connect = {backend.address}:{backend.port}",
            f"cert = {cert}",
            f"key = {key}",
        ]
        if client_ca is not None:
            lines += [f"CAfile = {client_ca}", "verifyChain = yes", "requireCert = yes"]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> Stunnel:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.executable, str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_GUARD
        while True:  # listening once a TCP connect succeeds
            assert self.process.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, "stunnel did not start listening"
                time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture()
def terminator(beanstalkd: BeanstalkdServer, certificates: Certificates) -> Iterator[Stunnel]:
    """stunnel with the server certificate (for localhost and 127.0.0.1) in front of beanstalkd."""
    stunnel = Stunnel(
        beanstalkd, certificates.directory, certificates.server_cert, certificates.server_key
    ).start()
    yield stunnel
    stunnel.stop()


@pytest.fixture()
def mutual_terminator(
    beanstalkd: BeanstalkdServer, certificates: Certificates
) -> Iterator[Stunnel]:
    """stunnel that also requires a client certificate signed by the test CA."""
    stunnel = Stunnel(
        beanstalkd,
        certificates.directory,
        certificates.server_cert,
        certificates.server_key,
        client_ca=certificates.ca,
    ).start()
    yield stunnel
    stunnel.stop()


def trusting(certificates: Certificates) -> ssl.SSLContext:
    """A client context that trusts the test CA (and verifies, as by default)."""
    return ssl.create_default_context(cafile=str(certificates.ca))


async def server_stats(server: BeanstalkdServer) -> Any:
    """``stats`` asked of beanstalkd directly (not through the terminator)."""
    async with beanstalkt.Client(server.address, server.port) as plain:
        return await plain.stats()


async def jobs_ready(server: BeanstalkdServer) -> int:
    """current-jobs-ready, asked of beanstalkd directly."""
    ready: int = (await server_stats(server))["current-jobs-ready"]
    return ready


@pytest.fixture()
async def tls_client(
    terminator: Stunnel, certificates: Certificates
) -> AsyncIterator[beanstalkt.Client]:
    client = beanstalkt.Client("127.0.0.1", terminator.port, ssl=trusting(certificates))
    await client.connect()
    yield client
    await client.close()


# --------------------------------------------------------------------------
# The library.


async def test_everyday_commands_over_verified_tls(
    tls_client: beanstalkt.Client, beanstalkd: BeanstalkdServer
) -> None:
    job_id = await tls_client.put(b"over tls", ttr=5)
    assert await jobs_ready(beanstalkd) == 1
    job = await tls_client.reserve(timeout=0)
    assert (job.id, job.body) == (job_id, b"over tls")
    await tls_client.delete(job)
    assert (await tls_client.stats())["current-jobs-ready"] == 0
    assert await jobs_ready(beanstalkd) == 0


async def test_pipelined_puts_over_tls(
    tls_client: beanstalkt.Client, beanstalkd: BeanstalkdServer
) -> None:
    bodies = [f"job {n}".encode() for n in range(1000)]
    ids = await asyncio.gather(*(tls_client.put(body) for body in bodies))
    assert len(set(ids)) == 1000 and ids == sorted(ids)
    assert await jobs_ready(beanstalkd) == 1000
    first = await tls_client.peek(ids[0])
    last = await tls_client.peek(ids[-1])
    assert (first.body, last.body) == (b"job 0", b"job 999")


async def test_host_name_is_verified_as_a_dns_name_too(
    terminator: Stunnel, certificates: Certificates
) -> None:
    async with beanstalkt.Client("localhost", terminator.port, ssl=trusting(certificates)) as c:
        assert await c.list_tube_used() == "default"


async def test_unknown_ca_is_refused_with_a_clear_error(
    terminator: Stunnel, certificates: Certificates, beanstalkd: BeanstalkdServer
) -> None:
    connections = (await server_stats(beanstalkd))["total-connections"]
    for context in (
        ssl.create_default_context(),  # the system's CAs: they never signed the test CA
        ssl.create_default_context(cafile=str(certificates.other_ca)),
    ):
        client = beanstalkt.Client("127.0.0.1", terminator.port, ssl=context)
        with pytest.raises(ConnectFailed) as failure:
            await client.connect()
        message = str(failure.value)
        assert message.startswith(f"cannot connect to beanstalkd at 127.0.0.1:{terminator.port}: ")
        assert "certificate verify failed" in message
        await client.close()
    # Nothing reached beanstalkd: stunnel connects to it only after a handshake.
    assert (await server_stats(beanstalkd))["total-connections"] == connections + 1


async def test_host_name_mismatch_is_refused(
    beanstalkd: BeanstalkdServer, certificates: Certificates
) -> None:
    stunnel = Stunnel(
        beanstalkd,
        certificates.directory,
        certificates.wrong_name_cert,
        certificates.wrong_name_key,
    ).start()
    try:
        client = beanstalkt.Client("127.0.0.1", stunnel.port, ssl=trusting(certificates))
        with pytest.raises(ConnectFailed) as failure:
            await client.connect()
        assert "certificate verify failed" in str(failure.value)
        assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in str(failure.value)
        await client.close()
    finally:
        stunnel.stop()


async def test_mutual_tls_with_a_client_certificate(
    mutual_terminator: Stunnel, certificates: Certificates, beanstalkd: BeanstalkdServer
) -> None:
    context = trusting(certificates)
    context.load_cert_chain(str(certificates.client_cert), str(certificates.client_key))
    async with beanstalkt.Client("127.0.0.1", mutual_terminator.port, ssl=context) as client:
        job_id = await client.put(b"mutual")
        job = await client.reserve(timeout=0)
        assert (job.id, job.body) == (job_id, b"mutual")
        await client.delete(job)
    assert await jobs_ready(beanstalkd) == 0


async def test_mutual_tls_without_a_client_certificate_gets_nothing_through(
    mutual_terminator: Stunnel, certificates: Certificates, beanstalkd: BeanstalkdServer
) -> None:
    # With TLS 1.3 the client finishes its handshake before the server has
    # checked the client's (missing) certificate: the refusal may arrive only
    # after connect() returned. Either way, no command gets through.
    client = beanstalkt.Client(
        "127.0.0.1", mutual_terminator.port, ssl=trusting(certificates), disconnected_timeout=0
    )
    with pytest.raises(BeanstalkConnectionError):
        await client.connect()
        await client.put(b"never")
    await client.close()
    assert await jobs_ready(beanstalkd) == 0


async def test_mutual_tls_refusal_names_the_missing_certificate(
    mutual_terminator: Stunnel, certificates: Certificates
) -> None:
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    # A busy application: every loop turn blocks a little, so the refusal has
    # arrived before the put is sent.
    busy = True

    def hog() -> None:
        if busy:
            time.sleep(0.05)
            loop.call_soon(hog)

    client = beanstalkt.Client(
        "127.0.0.1", mutual_terminator.port, ssl=trusting(certificates), disconnected_timeout=0
    )
    try:
        loop.call_soon(hog)
        with pytest.raises(BeanstalkConnectionError) as failure:
            await client.connect()
            await client.put(b"never")
        busy = False
        assert "certificate required" in str(failure.value)
        assert escaped == []
    finally:
        busy = False
        await client.close()
        loop.set_exception_handler(None)


class _Reconnections(logging.Handler):
    """Sets ``lost`` when the client logs that it lost its connection."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "reconnecting every" in record.getMessage():
            self.lost.set()


async def test_reconnects_after_the_terminator_restarts(
    terminator: Stunnel, certificates: Certificates, beanstalkd: BeanstalkdServer
) -> None:
    watcher = _Reconnections()
    library_logger = logging.getLogger("beanstalkt")
    library_logger.addHandler(watcher)
    reconnected = asyncio.Event()
    client = beanstalkt.Client(
        "127.0.0.1", terminator.port, ssl=trusting(certificates), reconnect_interval=0.05
    )
    client.set_reconnect_callback(reconnected.set)
    try:
        await client.connect()
        await client.watch("after")
        await client.ignore("default")
        before = await client.put(b"before")
        terminator.stop()
        await watcher.lost.wait()
        # Sent while the terminator is down: the put waits for the new connection.
        waiting = client.put(b"after the restart", tube="after")
        terminator.start()
        await reconnected.wait()
        after = await waiting
        assert after > before
        job = await client.reserve(timeout=0)  # the watch list was restored over TLS
        assert (job.id, job.body) == (after, b"after the restart")
        await client.delete(job)
        assert await jobs_ready(beanstalkd) == 1  # "before" remains
    finally:
        library_logger.removeHandler(watcher)
        await client.close()


def test_tls_is_refused_for_a_unix_socket(certificates: Certificates) -> None:
    with pytest.raises(ValueError, match="TCP address"):
        beanstalkt.Client("unix:/run/beanstalkd.sock", 0, ssl=trusting(certificates))


# --------------------------------------------------------------------------
# The shared command line options.


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tls.add_tls_arguments(parser)
    return parser.parse_args(argv)


def test_no_tls_option_means_plain_tcp() -> None:
    assert tls.context_from_arguments(parse()) is None
    assert tls.context_from_arguments(argparse.Namespace()) is None  # a parser without them


def test_tls_alone_verifies_with_the_system_cas() -> None:
    context = tls.context_from_arguments(parse("--tls"))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_tls_options_make_a_verifying_context(certificates: Certificates) -> None:
    context = tls.context_from_arguments(
        parse(
            "--tls-ca", str(certificates.ca),
            "--tls-cert", str(certificates.client_cert),
            "--tls-key", str(certificates.client_key),
        )
    )  # fmt: skip
    assert context is not None  # --tls is implied
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [cert["subject"] for cert in context.get_ca_certs()] == [((("commonName", "ca"),),)]
    # A certificate and its key in one file.
    assert tls.context_from_arguments(parse("--tls-cert", str(certificates.client_combined)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-ca", "{dir}/missing.pem"], "--tls-ca {dir}/missing.pem: no such file"),
        (["--tls-ca", "{dir}"], "--tls-ca {dir}: is a directory, not a PEM file"),
        (["--tls-ca", "{dir}/client.ext"], "--tls-ca {dir}/client.ext: no usable CA certificate"),
        (["--tls-key", "{dir}/client.key"], "--tls-key needs --tls-cert"),
        (["--tls-cert", "{dir}/client.pem"], "--tls-cert {dir}/client.pem: no private key in it"),
        (
            ["--tls-cert", "{dir}/client.pem", "--tls-key", "{dir}/server.key"],
            "--tls-key {dir}/server.key is not the private key of the certificate",
        ),
    ],
)
def test_bad_tls_options_are_named(
    certificates: Certificates, options: list[str], message: str
) -> None:
    directory = str(certificates.directory)
    with pytest.raises(tls.TLSOptionError) as failure:
        tls.context_from_arguments(parse(*(o.format(dir=directory) for o in options)))
    assert str(failure.value).startswith(message.format(dir=directory))


def test_an_encrypted_key_is_refused_without_a_prompt(
    certificates: Certificates, tmp_path: Path
) -> None:
    encrypted = tmp_path / "encrypted.key"
    _openssl(
        "pkey", "-in", str(certificates.client_key), "-aes256", "-passout", "pass:secret",
        "-out", str(encrypted),
        cwd=tmp_path,
    )  # fmt: skip
    with pytest.raises(tls.TLSOptionError, match="the private key is encrypted"):
        tls.make_context(cert=str(certificates.client_cert), key=str(encrypted))


# --------------------------------------------------------------------------
# The command line tools.


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS``, in this process (tests/cli_runner.py), no BEANSTALKD_*."""
    return cli(None, *args, module=module)


def test_cli_through_tls(terminator: Stunnel, certificates: Certificates) -> None:
    where = ["--tls", "--tls-ca", str(certificates.ca), "--host", "127.0.0.1"]
    where += ["--port", str(terminator.port)]
    put = run("beanstalkt.cmd", *where, "put", "x")
    assert (put.returncode, put.stderr) == (0, "")
    job_id = int(put.stdout)
    stats = run("beanstalkt.cmd", *where, "stats")
    assert (stats.returncode, stats.stderr) == (0, "")
    assert '"current-jobs-ready": 1' in stats.stdout
    raw = run("beanstalkt.cmd", *where, "stats-job", "--raw", str(job_id))
    assert (raw.returncode, raw.stderr) == (0, "")
    assert raw.stdout.startswith(f"---\nid: {job_id}\ntube: default\nstate: ready\n")


def test_cli_tls_with_server_flags(terminator: Stunnel, certificates: Certificates) -> None:
    tls = ["--tls", "--tls-ca", str(certificates.ca)]
    one = ["--server", f"127.0.0.1:{terminator.port}"]
    put = run("beanstalkt.cmd", *tls, *one, "put", "through --server")
    assert (put.returncode, put.stderr) == (0, "")
    # Two names of the one terminator: a pool, every client through TLS.
    two = [*one, "--server", f"localhost:{terminator.port}"]
    stats = run("beanstalkt.cmd", *tls, *two, "stats")
    assert (stats.returncode, stats.stderr) == (0, "")
    assert json.loads(stats.stdout)["total"]["current-jobs-ready"] == 2  # counted twice


def test_cli_mutual_tls(mutual_terminator: Stunnel, certificates: Certificates) -> None:
    where = ["--host", "localhost", "--port", str(mutual_terminator.port)]
    where += ["--tls-ca", str(certificates.ca)]
    client = [
        "--tls-cert",
        str(certificates.client_cert),
        "--tls-key",
        str(certificates.client_key),
    ]
    put = run("beanstalkt.cmd", *where, *client, "put", "mutual")
    assert (put.returncode, put.stderr) == (0, "")
    refused = run("beanstalkt.cmd", *where, "put", "no certificate")
    assert refused.returncode == 3
    assert refused.stdout == ""
    # Exit status 3 and one line naming the server and the reason, whichever
    # way the refusal surfaced (at connect or at the first command).
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "certificate required" in refused.stderr
    last = refused.stderr.splitlines()[-1]
    assert last.startswith("beanstalkt: ")
    assert f"localhost:{mutual_terminator.port}" in last


def test_cli_wrong_ca_is_one_clear_line(terminator: Stunnel, certificates: Certificates) -> None:
    where = ["--host", "127.0.0.1", "--port", str(terminator.port)]
    for command in (["stats"], ["stats", "--raw"]):
        refused = run("beanstalkt.cmd", "--tls-ca", str(certificates.other_ca), *where, *command)
        assert refused.returncode == 3
        assert refused.stdout == ""
        assert refused.stderr.startswith(
            f"beanstalkt: cannot connect to beanstalkd at 127.0.0.1:{terminator.port}: "
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        )
        assert refused.stderr.count("\n") == 1


@pytest.mark.parametrize("module", ["beanstalkt.cmd", "beanstalkt.top", "beanstalkt.exporter"])
def test_cli_tls_usage_errors(module: str, certificates: Certificates) -> None:
    command = ["stats"] if module == "beanstalkt.cmd" else []
    missing = run(module, "--tls-ca", "/nonexistent/ca.pem", *command)
    assert missing.returncode == 2
    assert "error: --tls-ca /nonexistent/ca.pem: no such file" in missing.stderr
    server = ["--host"] if module != "beanstalkt.exporter" else ["--server"]
    unix = run(module, "--tls", *server, "unix:/run/beanstalkd.sock", *command)
    assert unix.returncode == 2
    assert "error: --tls needs TCP addresses, not the Unix socket unix:/run/beanstalkd.sock" in (
        unix.stderr
    )


def test_top_once_through_tls(terminator: Stunnel, certificates: Certificates) -> None:
    subprocess.run(
        [sys.executable, "-m", "beanstalkt.cmd", "--tls-ca", str(certificates.ca), "--host",
         "127.0.0.1", "--port", str(terminator.port), "put", "-u", "emails", "hello"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    shown = run(
        "beanstalkt.top", "--once", "--interval", "0", "--tls-ca", str(certificates.ca),
        "--server", f"127.0.0.1:{terminator.port}",
    )  # fmt: skip
    assert (shown.returncode, shown.stderr) == (0, "")
    rows = {line.split()[0]: line.split() for line in shown.stdout.splitlines() if line.strip()}
    assert "emails" in rows
    assert rows["emails"][1] == "1"  # one ready job


# ssl= is the spelling of every class; ssl_context= is the operations classes' old one.
SPELLINGS = pytest.mark.parametrize("spelling", ["ssl", "ssl_context"])


@SPELLINGS
async def test_exporter_scrapes_through_tls(
    terminator: Stunnel, certificates: Certificates, beanstalkd: BeanstalkdServer, spelling: str
) -> None:
    async with beanstalkt.Client(beanstalkd.address, beanstalkd.port) as plain:
        await plain.put(b"waiting", tube="emails")
    address = f"127.0.0.1:{terminator.port}"
    tls: dict[str, Any] = {spelling: trusting(certificates)}
    exporter = Exporter([address], timeout=5, **tls)
    try:
        text = (await exporter.render()).decode()
    finally:
        await exporter.close()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("beanstalkd_up", (("server", address),))] == 1
    key = (
        "beanstalkd_tube_current_jobs",
        (("server", address), ("state", "ready"), ("tube", "emails")),
    )
    assert samples[key] == 1


async def test_exporter_with_an_untrusted_server_is_down(
    terminator: Stunnel, certificates: Certificates
) -> None:
    address = f"127.0.0.1:{terminator.port}"
    context = ssl.create_default_context(cafile=str(certificates.other_ca))
    exporter = Exporter([address], timeout=5, ssl_context=context)
    try:
        text = (await exporter.render()).decode()
    finally:
        await exporter.close()
    assert f'beanstalkd_up{{server="{address}"}} 0.0' in text


@SPELLINGS
async def test_web_console_monitor_through_tls(
    terminator: Stunnel, certificates: Certificates, spelling: str
) -> None:
    tls: dict[str, Any] = {spelling: trusting(certificates)}
    monitor = Monitor([("127.0.0.1", terminator.port)], **tls)
    server = monitor.servers[0]
    try:
        await server.poll_once()
        assert server.up, server.error
        assert [tube["name"] for tube in server.snapshot["tubes"]] == ["default"]
    finally:
        await monitor.stop()


# --------------------------------------------------------------------------
# The operations guide's TLS section, run as written (paths, host and port
# substituted). Its Python example is marked "skip" for tests/test_docs.py
# (which runs examples against a plain beanstalkd): this test runs it.

OPERATIONS_GUIDE = DOCS / "guides" / "operations.rst"


def guide_tls_blocks() -> tuple[str, str]:
    config = section_block(OPERATIONS_GUIDE, "TLS", "ini")
    example = section_block(OPERATIONS_GUIDE, "TLS", "python")
    return config, example


async def test_guide_stunnel_configuration_and_example(
    beanstalkd: BeanstalkdServer, certificates: Certificates
) -> None:
    config, example = guide_tls_blocks()
    stunnel = Stunnel(
        beanstalkd, certificates.directory, certificates.server_cert, certificates.server_key
    )
    for old, new in (
        ("0.0.0.0:11301", f"127.0.0.1:{stunnel.port}"),
        ("127.0.0.1:11300", f"{beanstalkd.address}:{beanstalkd.port}"),
        ("/etc/stunnel/beanstalkd.pem", str(certificates.server_cert)),
        ("/etc/stunnel/beanstalkd.key", str(certificates.server_key)),
        ("/etc/stunnel/clients-ca.pem", str(certificates.ca)),
    ):
        assert old in config
        config = config.replace(old, new)
    stunnel.config.write_text("foreground = yes\npid =\n" + config)
    for old, new in (
        ('"queue.example.com", 11301', f'"localhost", {stunnel.port}'),
        ("/etc/beanstalkt/ca.pem", str(certificates.ca)),
        ("/etc/beanstalkt/client.pem", str(certificates.client_cert)),
        ("/etc/beanstalkt/client.key", str(certificates.client_key)),
    ):
        assert old in example
        example = example.replace(old, new)
    stunnel.start()
    try:
        ran = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", example],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (ran.returncode, ran.stderr) == (0, "")
        assert ran.stdout == "put job 1\n"
        # The configuration requires a client certificate: without one, nothing lands.
        no_certificate = example.replace("context.load_cert_chain(", "(")
        refused = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", no_certificate],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode != 0
        assert await jobs_ready(beanstalkd) == 1
    finally:
        stunnel.stop()


async def test_a_worker_works_through_tls(terminator: Stunnel, certificates: Certificates) -> None:
    from beanstalkt.worker import ReservedJob, Worker

    done: list[bytes] = []

    async def handle(job: ReservedJob) -> None:
        done.append(job.body)

    worker = Worker(
        {"secure": handle},
        host="127.0.0.1",
        port=terminator.port,
        ssl=trusting(certificates),
        concurrency=2,
    )
    async with beanstalkt.Client("127.0.0.1", terminator.port, ssl=trusting(certificates)) as c:
        await c.put_many([b"one", b"two", b"three"], tube="secure")
        await worker.start()
        try:
            deadline = time.monotonic() + 15
            while len(done) < 3:
                assert time.monotonic() < deadline, done
                await asyncio.sleep(0.02)
        finally:
            await worker.stop()
        assert sorted(done) == [b"one", b"three", b"two"]
        assert (await c.stats_tube("secure"))["current-jobs-ready"] == 0


def test_the_worker_cli_takes_the_tls_options(certificates: Certificates) -> None:
    refused = run("beanstalkt.worker", "x:y", "--tls-cert", str(certificates.client_cert))
    assert refused.returncode == 2
    assert "--tls-cert needs --tls-key" in refused.stderr or "--tls-key" in refused.stderr
