"""Authentication from the configuration file: tokens, users, bcrypt, nkeys, no_auth_user — on every server kind."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import bcrypt
import nats
import nkeys
import pytest

from tests.raw import RawClient

USER_SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"
USER_NKEY = nkeys.from_seed(USER_SEED.encode()).public_key.decode()
OTHER_SEED = "SUAGMJH5XLGZKQQWAWKRZJIGMOU4HPFUYLXJMXOO5NLFEO2OOQJ5LPRDPM"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def bcrypt_2a(password: str) -> str:
    """A bcrypt hash with nats-server's `$2a$` prefix (so it may stay unquoted in a config file)."""
    return "$2a$" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()[4:]


async def can_connect(url: str, **kwargs) -> bool:
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **kwargs)
    except (nats.errors.Error, OSError, asyncio.TimeoutError):
        return False
    await nc.close()
    return True


def assert_refused(server, **connect_fields):
    with RawClient(server) as c:
        if "nkey_seed" in connect_fields:
            c.connect_nkey(connect_fields.pop("nkey_seed"), **connect_fields)
        else:
            c.connect(**connect_fields)
        c.send("PING\r\n")
        assert c.expect_closed() == ["-ERR 'Authorization Violation'"]


def test_token(start_server):
    srv = start_server(config="authorization { token: s3cr3t }\n")
    with RawClient(srv) as c:
        assert c.info["auth_required"] is True
        c.connect(auth_token="s3cr3t")
        assert c.ping() == []
    assert_refused(srv, auth_token="wrong")
    assert_refused(srv)
    assert run(can_connect(srv.url, token="s3cr3t"))
    assert not run(can_connect(srv.url, token="nope"))


def test_single_user_and_password(start_server):
    srv = start_server(config="authorization {\n  user: derek\n  password: T0pS3cr3t\n}\n")
    with RawClient(srv) as c:
        c.connect(user="derek", **{"pass": "T0pS3cr3t"})
        assert c.ping() == []
    assert_refused(srv, user="derek", **{"pass": "wrong"})
    assert_refused(srv, user="other", **{"pass": "T0pS3cr3t"})
    assert run(can_connect(srv.url, user="derek", password="T0pS3cr3t"))


def test_users_with_plain_and_bcrypt_passwords(start_server):
    hashed = bcrypt_2a("b-pass")
    srv = start_server(config=f"""
authorization {{
  users = [
    {{user: alice, password: a-pass}}
    {{user: bob, password: {hashed}}}
    {{user: carol, password: "{bcrypt_2a('c-pass')}"}}
  ]
}}
""")
    assert run(can_connect(srv.url, user="alice", password="a-pass"))
    assert run(can_connect(srv.url, user="bob", password="b-pass"))
    assert run(can_connect(srv.url, user="carol", password="c-pass"))
    assert not run(can_connect(srv.url, user="bob", password=hashed))  # the hash itself is not the password
    assert_refused(srv, user="alice", **{"pass": "b-pass"})
    assert_refused(srv, user="nobody", **{"pass": "a-pass"})
    assert_refused(srv)


def test_nkey_users_sign_the_nonce(start_server):
    srv = start_server(config=f"authorization {{ users = [ {{nkey: {USER_NKEY}}} ] }}\n")
    with RawClient(srv) as c:
        assert len(c.info["nonce"]) == 15
        c.connect_nkey(USER_SEED)
        assert c.ping() == []
    assert_refused(srv, nkey_seed=OTHER_SEED)  # a key that is not configured
    with RawClient(srv) as c:  # the configured public key, but the nonce signed by another seed
        c.connect_nkey(OTHER_SEED, as_key=USER_NKEY)
        c.send("PING\r\n")
        assert c.expect_closed() == ["-ERR 'Authorization Violation'"]
    assert_refused(srv, nkey=USER_NKEY)  # no signature at all
    assert run(can_connect(srv.url, nkeys_seed_str=USER_SEED))
    assert not run(can_connect(srv.url, nkeys_seed_str=OTHER_SEED))


def test_no_auth_user_lets_anonymous_clients_in_as_that_user(start_server):
    srv = start_server(config="""
authorization {
  users = [
    {user: admin, password: pw}
    {user: guest, password: guest, permissions: {publish: "public.>", subscribe: "public.>"}}
  ]
}
no_auth_user: guest
""")
    with RawClient(srv) as c:
        assert c.info.get("auth_required") is not True
        c.connect()
        c.send("SUB public.news 1\r\nPUB public.news 2\r\nhi\r\n")
        assert c.read_msg() == ("public.news", b"hi")
        c.send("PUB private.x 0\r\n\r\n")
        assert c.ping() == ["-ERR 'Permissions Violation for Publish to \"private.x\"'"]
    assert_refused(srv, user="admin", **{"pass": "wrong"})  # wrong credentials are not anonymous
    assert run(can_connect(srv.url, user="admin", password="pw"))


def test_no_auth_user_must_be_a_configured_user(start_server, server_kind, tmp_path):
    with pytest.raises(RuntimeError, match="no_auth_user"):
        start_server(config="authorization { users = [ {user: a, password: b} ] }\nno_auth_user: ghost\n")


@pytest.mark.parametrize("config,message", [
    ("authorization { user: a, password: b, token: c }\n", "Cannot have a user/pass and token"),
    ("authorization { users = [ {password: b} ] }\n", "User entry requires a user"),
    ("authorization { users = [ {nkey: UABC} ] }\n", "Not a valid public nkey for a user"),
    ("authorization { users = [ {user: a, password: b}, {user: a, password: c} ] }\n", 'Duplicate user "a"'),
    ("authorization { users = [ {user: a, permissions: {publish: {allow: \"a..b\"}}} ] }\n",
     'subject "a..b" is not a valid subject'),
    ("authorization { bogus: 1 }\n", 'unknown field "bogus"'),
])
def test_bad_authorization_blocks_are_refused_at_start(start_server, config, message):
    with pytest.raises(RuntimeError, match=message):
        start_server(config=config)


def test_a_refused_login_is_closed_as_an_authentication_failure(start_server):
    """nats-server answers a bad CONNECT with -ERR 'Authorization Violation' and records the connection as closed
    for "Authentication Failure" (its AuthenticationViolation state); /connz shows that reason."""
    srv = start_server("-m", "-1", config="authorization { token: s3cr3t }\n")
    assert_refused(srv, auth_token="wrong", name="intruder")
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/connz?state=closed", timeout=10) as r:
            closed = [c for c in json.loads(r.read())["connections"] if c.get("name") == "intruder"]
        if closed or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [c["reason"] for c in closed] == ["Authentication Failure"]
