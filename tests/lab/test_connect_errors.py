"""A connect that fails is one line in `%nats connect` and a LabError in Python, whatever the reason (a
refused login, a missing file, TLS asked of a plain server, nobody listening), on every server kind; and
errors a server answers with are LabErrors that stay nats-py's own error classes. A TLS server is reached
with its CA and refused, at once and in one line, without it."""
from __future__ import annotations

import shutil
import subprocess

import nats.errors
import nats.js.errors
import pytest

import pynats_lab
from pynats_lab import LabError
from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, magic


def test_a_refused_login_is_one_line_and_a_lab_error(start_server, lab_core, shell, capsys):
    secured = start_server("--user", "alice", "--pass", "s3cret")
    url = secured.url
    assert_one_line_errors(shell, capsys, {
        f"%nats connect {url} --user alice --password wrong":
            f"%nats connect: authorization violation: {url} refused the credentials given",
        f"%nats connect {url}": f"%nats connect: authorization violation: {url} wants credentials (",
    })
    with pytest.raises(LabError, match="^authorization violation: .* refused the credentials given$") as refused:
        pynats_lab.connect(url, user="alice", password="wrong")
    assert isinstance(refused.value, nats.errors.Error), "code catching nats-py's error keeps working"
    assert get_session().url == lab_core.url, "a refused login leaves the working connection as it was"
    assert magic(shell, f"%nats connect {url} --user alice --password s3cret").url == url


def test_every_way_a_connect_can_go_wrong_is_one_line(lab_core, shell, capsys, tmp_path):
    host = lab_core.url.split("://", 1)[1]
    assert_one_line_errors(shell, capsys, {
        f"%nats connect {lab_core.url} --creds {tmp_path}/nope.creds":
            f"%nats connect: credentials file not found: {tmp_path}/nope.creds",
        f"%nats connect {lab_core.url} --tls-ca {tmp_path}/ca.pem":
            f"%nats connect: CA certificate not found: {tmp_path}/ca.pem",
        f"%nats connect tls://{host}": f"%nats connect: secure connection not available: tls://{host} does not offer TLS",
        f"%nats connect foo://{host}": f"%nats connect: unsupported URL scheme 'foo' in foo://{host}",
        "%nats connect nats://[::1": "%nats connect: invalid URL 'nats://[::1'",
        "%nats connect nats://127.0.0.1:1":
            "%nats connect: could not connect to nats://127.0.0.1:1: connection refused (is a server running there?)",
    })
    for url in (f"tls://{host}", "nats://127.0.0.1:1"):
        with pytest.raises(LabError):
            pynats_lab.connect(url)
    assert get_session().url == lab_core.url


def _certificates(folder):
    """A throwaway CA and a certificate for 127.0.0.1 it signed, made with openssl: (ca, cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl makes the test certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=pynats-lab test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-out", "server.pem", "-extfile", "san.ext")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def test_tls_with_the_servers_ca_connects_and_without_it_is_one_line(server_kind, start_server, shell, capsys,
                                                                      caplog, tmp_path):
    if server_kind == "embedded":
        pytest.skip("the embedded server has no TLS (docs/differences.md)")
    ca, cert, key = _certificates(tmp_path)
    srv = start_server("--tls", "--tlscert", str(cert), "--tlskey", str(key))
    url = f"tls://127.0.0.1:{srv.port}"
    try:
        assert_one_line_errors(shell, capsys, {  # it used to hang: nats-py's close after a failed handshake
            f"%nats connect {url}": f"%nats connect: could not connect to {url}: TLS failed: ",
            f"%nats connect {url} --tls-ca {ca} --tls-cert {cert}":
                f"%nats connect: client certificate not usable: {cert} (no --tls-key): ",
        })
        assert magic(shell, f"%nats connect {url} --tls-ca {ca}").url == url
        assert str(magic(shell, "%nats pub over.tls x")) == "published 1 message to over.tls"
        assert str(magic(shell, "%nats disconnect")) == f"disconnected from {url}"
        # (In a notebook asyncio's warnings reach stderr; under pytest they are logged records.)
        assert capsys.readouterr().err == "" and "eof_received" not in caplog.text, "closing TLS is quiet"
    finally:
        get_session().close()


def test_server_answers_are_lab_errors_of_nats_py_classes(lab_js, shell):
    with pytest.raises(LabError, match=r"^stream not found \(10059\)$") as missing:
        pynats_lab.stream_info("NOPE")
    assert isinstance(missing.value, nats.js.errors.NotFoundError)
    assert missing.value.err_code == 10059 and missing.value.description == "stream not found"
    with pytest.raises(LabError, match="no responders on nobody.here"):
        pynats_lab.request("nobody.here", "x")
