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


def error_lines(done: subprocess.CompletedProcess, tmp_path) -> list[str]:
    """The errors a failed check printed, one a line, with the file's path as `check.conf`."""
    return done.stderr.split(": ", 1)[1].replace(f"{tmp_path}/", "").strip().splitlines()


@pytest.mark.parametrize("text", [
    "port: 4222\nmax_payload: 2MB\nping_interval: \"2m\"\n",
    "authorization { users = [ {user: a, password: b, permissions: {publish: \"x.>\"}} ] }\n",
    "accounts { A: { users = [ {user: a, password: b} ] } }\n",
    "port: 4222\nfeature_flags { js_ack_fc_v2: true, a_future_flag: false }\n",
    "port: 4222\njetstream { limits { default_max_consumers: -1 } }\n",
    # every key nats-server 2.15.1 reads in these blocks (cluster ones do nothing on one server); keys defined
    # only to be used as $variables are not unknown fields; a domain with a dot passes (refused at start, below)
    "jetstream {\n  strict: true, sync: always, max_mem: 1G, max_file: \"2G\", domain: \"a.b\", enabled: true\n"
    "  unique_tag: az, extension_hint: x, max_outstanding_catchup: 64MB, max_buffered_size: \"1K\"\n"
    "  max_buffered_msgs: 5, request_queue_limit: 10, info_queue_limit: 10, meta_compact: 5\n"
    "  meta_compact_size: 1MB, meta_compact_sync: false, max_concurrent_io: 8, N: 7\n"
    "  limits { max_ack_pending: $N, max_ha_assets: 2, max_request_batch: 5, duplicate_window: \"1m\"\n"
    "    batch { max_inflight_per_stream: 5, max_inflight_total: 10, max_msgs: 100, timeout: \"5s\" } } }\n",
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
    # unknown keys of `jetstream {}`, `limits {}` and `batch {}` where they are written
    ('port: 4222\njetstream { store_dir: "/tmp/x"\n foo: 2 }\n', 'check.conf:3:2: unknown field "foo"'),
    ("port: 4222\nX: 5\njetstream { limits { foo: $X } }\n", 'check.conf:3:22: unknown field "foo"'),
    ("port: 4222\njetstream { limits { batch { foo: 1 } } }\n", 'check.conf:2:30: unknown field "foo"'),
    ("port: 4222\njetstream {\n  block_cache: 1MB\n  limits: 5\n}\n",
     "check.conf:4:3: Expected a map to define JetStreamLimits, got int64"),
    ('port: 4222\njetstream {\n  limits { batch { timeout: "soon" } }\n}\n', 'time: invalid duration "soon"'),
    ("port: 4222\njetstream {\n  limits { duplicate_window: 120 }\n}\n",
     "check.conf:2:1: interface conversion: interface {} is int64, not string"),
    ("port: 4222\njetstream {\n  max_concurrent_io: 2\n}\n",
     'check.conf:3:3: Expected an absolute size for "max_concurrent_io" between 4 and 8192, got 2'),
    ("port: 4222\njetstream {\n  strict: 1\n}\n",
     "check.conf:3:3: Expected 'true' or 'false' for bool value, got '%!s(int64=1)'"),
    ("port: 4222\njetstream {\n  max_outstanding_catchup: \"xK\"\n}\n",
     'check.conf:3:3: max_outstanding_catchup strconv.ParseInt: parsing "x": invalid syntax'),
])
def test_warnings_and_errors_fail_the_check(server_kind, tmp_path, text, message):
    done = check(server_kind, tmp_path, text)
    assert done.returncode == 1
    # printed as nats-server's PrintAndDie does: no log line, the error and an empty line
    assert done.stderr.startswith(("nats-server: ", "pynats-server: ")) and done.stderr.endswith(message + "\n\n")


def test_a_domain_that_is_not_one_subject_token_stops_the_start(server_kind, tmp_path):
    """`-t` only reads the file (a domain with a dot passes, above); a start checks that the domain makes one token
    of `$JS.<domain>.API.>` and exits with nats-server's line."""
    for domain, message in (("a.b", "invalid domain name: may not contain ., * or >"),
                            ("a b", 'invalid domain name: derived "$JS.a b.API.>" is not a valid subject')):
        path = tmp_path / "start.conf"
        path.write_text(f'jetstream {{ store_dir: "{tmp_path}/js", domain: "{domain}" }}\n')
        done = subprocess.run(server_command(server_kind) + ["-c", str(path), "-a", "127.0.0.1", "-p", "-1"],
                              capture_output=True, text=True, timeout=30, env=subprocess_env(), cwd=tmp_path)
        assert (done.returncode, done.stderr.split(": ", 1)[1]) == (1, message + "\n")


def test_every_unknown_jetstream_key_is_reported(server_kind, tmp_path):
    """nats-server lists them all (in its map order, so compared as a set), with the top level's."""
    text = "port: 4222\njetstream {\n  limits {\n    foo: 1\n    batch { bar: 1 }\n  }\n  baz: 3\n}\nqux: 1\n"
    done = check(server_kind, tmp_path, text)
    assert done.returncode == 1
    assert sorted(error_lines(done, tmp_path)) == ['check.conf:4:5: unknown field "foo"', 'check.conf:5:13: unknown field "bar"',
                             'check.conf:7:3: unknown field "baz"', 'check.conf:9:1: unknown field "qux"']


def test_store_encryption_is_refused_by_the_embedded_server(server_kind, tmp_path):
    """nats-server encrypts the store with `key`/`cipher`/`tpm`; the embedded server has no store encryption
    and refuses to start rather than keep in plaintext what the file asks to encrypt (docs/differences.md)."""
    text = ('port: -1\nK: "s3cr3t"\njetstream {\n  store_dir: "store"\n  ek: $K\n  cipher: aes\n'
            '  tpm { keys_file: "keys" }\n}\n')
    done = check(server_kind, tmp_path, text)
    if server_kind == "nats-server":
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 1
    why = "is not supported by the embedded server: it has no store encryption and would keep the messages in " \
          "plaintext (see docs/differences.md)"
    assert error_lines(done, tmp_path) == [
        f'check.conf:5:3: "ek" {why}', f'check.conf:6:3: "cipher" {why}', f'check.conf:7:3: "tpm" {why}']
    (tmp_path / "check.conf").write_text(text)
    started = subprocess.run(server_command(server_kind) + ["-c", "check.conf"], capture_output=True, text=True,
                             timeout=30, env=subprocess_env(), cwd=tmp_path)
    assert started.returncode == 1 and f'"ek" {why}' in started.stderr
    assert not (tmp_path / "store").exists()


def test_both_servers_report_the_same_config_digest(tmp_path):
    text = 'port: 4222\nPASS: "s3cr3t"\nauthorization { user: admin, password: $PASS }\nmax_payload: 1MB\n'
    digests = {kind: check(kind, tmp_path, text).stderr.split("(")[-1].strip().rstrip(")")
               for kind in ("nats-server", "embedded")}
    assert digests["embedded"].startswith("sha256:") and digests["embedded"] == digests["nats-server"]
