"""`-t -c FILE` (check a configuration and exit), on both servers: what passes, and what fails and why."""
from __future__ import annotations

import subprocess

import pytest

from tests.servers import server_command, subprocess_env


def check(kind: str, tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "check.conf"
    path.write_text(text)
    return subprocess.run(server_command(kind) + ["-t", "-c", str(path)], capture_output=True, text=True,
                          timeout=30, env=subprocess_env(), cwd=tmp_path)


@pytest.mark.parametrize("text", [
    "port: 4222\nmax_payload: 2MB\nping_interval: \"2m\"\n",
    "authorization { users = [ {user: a, password: b, permissions: {publish: \"x.>\"}} ] }\n",
    "accounts { A: { users = [ {user: a, password: b} ] } }\n",
    "port: 4222\nfeature_flags { js_ack_fc_v2: true, a_future_flag: false }\n",
    "port: 4222\njetstream { limits { default_max_consumers: -1 } }\n",
])
def test_a_good_config_is_valid(server_kind, tmp_path, text):
    done = check(server_kind, tmp_path, text)
    assert done.returncode == 0, done.stderr
    assert "check.conf is valid (sha256:" in done.stderr


@pytest.mark.parametrize("text,message", [
    # nats-server counts columns from 0 on a file's first line and from 1 on the others
    ("ping_interval: 2m\n",
     'check.conf:1:0: invalid use of field "ping_interval": ping_interval should be converted to a duration'),
    ("port: 4222\nbogus: 1\n", 'check.conf:2:1: unknown field "bogus"'),
    ("authorization { users = [ {user: a} ], x: 1 }\n", 'check.conf:1:39: unknown field "x"'),
    ("port: 4222\nfeature_flags { js_ack_fc_v2: 1 }\n",
     'check.conf:2:17: error parsing feature flag "js_ack_fc_v2": expected bool, got int64'),
    ("port: 4222\njetstream {\n  limits { default_max_consumers: \"many\" }\n}\n",
     "check.conf:2:1: interface conversion: interface {} is string, not int64"),
])
def test_warnings_and_errors_fail_the_check(server_kind, tmp_path, text, message):
    done = check(server_kind, tmp_path, text)
    assert done.returncode == 1
    # printed as nats-server's PrintAndDie does: no log line, the error and an empty line
    assert done.stderr.startswith(("nats-server: ", "pynats-server: ")) and done.stderr.endswith(message + "\n\n")


def test_both_servers_report_the_same_config_digest(tmp_path):
    text = 'port: 4222\nPASS: "s3cr3t"\nauthorization { user: admin, password: $PASS }\nmax_payload: 1MB\n'
    digests = {kind: check(kind, tmp_path, text).stderr.split("(")[-1].strip().rstrip(")")
               for kind in ("nats-server", "embedded")}
    assert digests["embedded"].startswith("sha256:") and digests["embedded"] == digests["nats-server"]
