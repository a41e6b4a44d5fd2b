"""Operator mode (decentralized JWT auth) on every server kind: the chain of trust operator → account → user,
with identities minted by pynats_lab.auth (seeds, JWTs, nsc-style .creds)."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json

import nats
import pytest

from pynats_lab.auth import Operator, encode_jwt
from pynats_lab.session import flush
from tests.raw import RawClient
from tests.test_accounts import assert_account_limits


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def trust():
    op = Operator.new("lab")
    app = op.new_account("APP")
    other = op.new_account("OTHER")
    return op, app, other


@pytest.fixture
def srv(start_server, trust):
    op, app, other = trust
    return start_server(config=op.server_config())


def refused(srv, jwt: str, seed: str) -> bool:
    """Does the server refuse this user (Authorization Violation, then close) rather than answer PING?"""
    with RawClient(srv) as c:
        c.connect_jwt(jwt, seed)
        c.send("PING\r\n")
        first = c.read_line()
        if first == "PONG":
            return False
        assert first == "-ERR 'Authorization Violation'", first
        assert c.expect_closed() == []
        return True


def test_info_carries_a_nonce_and_a_valid_user_connects(srv, trust, tmp_path):
    _, app, _ = trust
    alice = app.new_user("alice")
    with RawClient(srv) as c:
        assert c.info["auth_required"] is True and len(c.info["nonce"]) >= 11
        c.connect_jwt(alice.jwt, alice.seed)
        assert c.ping() == []

    async def with_creds():
        nc = await nats.connect(srv.url, user_credentials=str(alice.write_creds(tmp_path / "alice.creds")))
        sub = await nc.subscribe("hello")
        await nc.publish("hello", b"world")
        msg = await sub.next_msg(10)
        await nc.close()
        return msg.data

    assert run(with_creds()) == b"world"


def test_a_user_minted_after_start_connects_without_reload(srv, trust):
    _, app, _ = trust
    late = app.new_user("late-comer")  # the server never saw this user
    with RawClient(srv) as c:
        c.connect_jwt(late.jwt, late.seed)
        assert c.ping() == []


def test_a_user_of_an_unknown_account_is_refused(srv):
    stranger_op = Operator.new("elsewhere")
    user = stranger_op.new_account("X").new_user("eve")
    assert refused(srv, user.jwt, user.seed)


def test_an_account_not_known_to_the_server_is_refused(srv, trust):
    op, _, _ = trust
    unseen = op.new_account("UNSEEN")  # signed by the right operator, but never given to the server
    user = unseen.new_user("u")
    assert refused(srv, user.jwt, user.seed)


def test_a_tampered_jwt_is_refused(srv, trust):
    _, app, _ = trust
    user = app.new_user("mallory", pub_allow=["public.>"])
    header, body, sig = user.jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["nats"]["pub"] = {"allow": [">"]}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert refused(srv, f"{header}.{forged}.{sig}", user.seed)


def test_a_seed_that_does_not_match_the_jwt_is_refused(srv, trust):
    _, app, _ = trust
    alice, bob = app.new_user("alice"), app.new_user("bob")
    assert refused(srv, alice.jwt, bob.seed)


def test_a_user_signed_by_another_account_is_refused(srv, trust):
    op, app, other = trust
    user = app.new_user("u")
    claims = user.claims
    claims["nats"]["issuer_account"] = app.public_key
    forged = encode_jwt(claims, other.seed)  # OTHER signs a user that claims to belong to APP
    assert refused(srv, forged, user.seed)


def test_expired_and_not_yet_valid_users_are_refused(srv, trust):
    _, app, _ = trust
    old = app.new_user("old", expires=dt.timedelta(seconds=-10))
    early = app.new_user("early", not_before=dt.timedelta(hours=1))
    assert refused(srv, old.jwt, old.seed)
    assert refused(srv, early.jwt, early.seed)


def test_a_user_is_disconnected_when_its_jwt_expires(srv, trust):
    _, app, _ = trust
    brief = app.new_user("brief", expires=dt.timedelta(seconds=2))
    with RawClient(srv) as c:
        c.connect_jwt(brief.jwt, brief.seed)
        assert c.ping() == []
        assert c.expect_closed(6) == ["-ERR 'User Authentication Expired'"]


def test_permissions_come_from_the_jwt(srv, trust):
    _, app, _ = trust
    user = app.new_user("limited", pub_allow=["orders.>"], pub_deny=["orders.secret"], sub_allow=["orders.*"])
    with RawClient(srv) as c:
        c.connect_jwt(user.jwt, user.seed)
        c.send("SUB orders.new 1\r\nSUB payments 2\r\nPUB orders.secret 0\r\n\r\nPUB other 0\r\n\r\n")
        assert c.ping() == ["-ERR 'Permissions Violation for Subscription to \"payments\"'",
                            "-ERR 'Permissions Violation for Publish to \"orders.secret\"'",
                            "-ERR 'Permissions Violation for Publish to \"other\"'"]
        c.send("PUB orders.new 2\r\nok\r\n")
        assert c.read_msg() == ("orders.new", b"ok")


def test_accounts_are_isolated(srv, trust):
    _, app, other = trust
    a, b, a2 = app.new_user("a"), other.new_user("b"), app.new_user("a2")
    with RawClient(srv) as ca, RawClient(srv) as cb, RawClient(srv) as ca2:
        for conn, user in ((ca, a), (cb, b), (ca2, a2)):
            conn.connect_jwt(user.jwt, user.seed)
            conn.send("SUB shared 1\r\n")
            assert conn.ping() == []
        cb.send("PUB shared 6\r\nfrom-b\r\n")
        assert cb.read_msg() == ("shared", b"from-b")
        ca.send("PUB shared 6\r\nfrom-a\r\n")
        assert ca2.read_msg() == ("shared", b"from-a")
        assert ca.read_msg() == ("shared", b"from-a")
        assert cb.ping() == []  # b never saw a's message


def test_bearer_tokens_need_no_signature(srv, trust):
    _, app, _ = trust
    bearer = app.new_user("bearer", bearer=True)
    with RawClient(srv) as c:
        c.connect(jwt=bearer.jwt)
        assert c.ping() == []
    plain = app.new_user("plain")
    with RawClient(srv) as c:
        c.connect(jwt=plain.jwt)
        c.send("PING\r\n")
        assert c.expect_closed() == ["-ERR 'Authorization Violation'"]


def test_users_signed_by_an_account_signing_key(start_server):
    op = Operator.new("lab")
    app = op.new_account("APP")
    signing = app.add_signing_key()
    srv = start_server(config=op.server_config())
    user = app.new_user("delegated", signer=signing)
    with RawClient(srv) as c:
        c.connect_jwt(user.jwt, user.seed)
        assert c.ping() == []


def claims_update(srv, system_user, account) -> dict:
    """Push an account's current JWT to the server as nsc push does with the memory resolver."""
    with RawClient(srv) as c:
        c.connect_jwt(system_user.jwt, system_user.seed)
        subject = f"$SYS.REQ.ACCOUNT.{account.public_key}.CLAIMS.UPDATE"
        c.send(f"SUB _INBOX.claims 1\r\nPUB {subject} _INBOX.claims {len(account.jwt)}\r\n{account.jwt}\r\n")
        _, payload = c.read_msg()
        return json.loads(payload)


def test_revoking_a_user_disconnects_it_and_keeps_it_out(srv, trust):
    op, app, _ = trust
    admin = op.system_account().new_user("admin")
    alice, bob = app.new_user("alice"), app.new_user("bob")
    with RawClient(srv) as ca, RawClient(srv) as cb:
        for conn, user in ((ca, alice), (cb, bob)):
            conn.connect_jwt(user.jwt, user.seed)
            assert conn.ping() == []
        app.revoke(alice)
        answer = claims_update(srv, admin, app)
        assert answer["data"] == {"account": app.public_key, "code": 200, "message": "jwt updated"}
        assert ca.expect_closed() == ["-ERR 'User Authentication Revoked'"]
        assert cb.ping() == []
    assert refused(srv, alice.jwt, alice.seed)


def test_a_signing_key_added_at_run_time_is_trusted_without_restart(srv, trust):
    op, app, _ = trust
    admin = op.system_account().new_user("admin")
    first = app.new_user("first")
    with RawClient(srv) as c:  # the account is in use
        c.connect_jwt(first.jwt, first.seed)
        assert c.ping() == []
        signing = app.add_signing_key()
        delegated = app.new_user("delegated", signer=signing)
        assert refused(srv, delegated.jwt, delegated.seed)
        assert claims_update(srv, admin, app)["data"]["message"] == "jwt updated"
    with RawClient(srv) as c:
        c.connect_jwt(delegated.jwt, delegated.seed)
        assert c.ping() == []


def test_an_update_not_signed_by_the_operator_is_refused(srv, trust):
    op, app, other = trust
    admin = op.system_account().new_user("admin")
    user = app.new_user("u")
    with RawClient(srv) as c:
        c.connect_jwt(user.jwt, user.seed)
        assert c.ping() == []
        rogue = Operator.new("rogue")
        forged = encode_jwt(app.claims, rogue.seed)
        app.jwt = forged
        answer = claims_update(srv, admin, app)
        assert "error" in answer and answer["error"]["code"] == 500
        assert c.ping() == []


def test_user_limits_from_the_jwt(srv, trust):
    _, app, _ = trust
    one_sub = app.new_user("one-sub", subs=1)
    with RawClient(srv) as c:
        c.connect_jwt(one_sub.jwt, one_sub.seed)
        c.send("SUB a 1\r\nSUB b 2\r\n")
        assert c.ping() == ["-ERR 'maximum subscriptions exceeded'"]
    small = app.new_user("small", payload=4)
    with RawClient(srv) as c:
        c.connect_jwt(small.jwt, small.seed)
        c.send("PUB a 4\r\nfour\r\n")
        assert c.ping() == []
        c.send("PUB a 5\r\nfive!\r\n")
        assert c.expect_closed() == ["-ERR 'Maximum Payload Violation'"]


def test_source_networks_and_time_windows_from_the_jwt(srv, trust):
    _, app, _ = trust
    now = dt.datetime.now(dt.timezone.utc)

    def window(start: dt.datetime, end: dt.datetime):
        return [(start.strftime("%H:%M:%S"), end.strftime("%H:%M:%S"))]

    cases = [
        (app.new_user("local", src=["127.0.0.0/8"]), True),
        (app.new_user("remote", src=["10.0.0.0/8"]), False),
        (app.new_user("now", times=window(now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)),
                      times_location="UTC"), True),
        (app.new_user("later", times=window(now + dt.timedelta(hours=2), now + dt.timedelta(hours=3)),
                      times_location="UTC"), False),
    ]
    for user, allowed in cases:
        assert refused(srv, user.jwt, user.seed) is not allowed, user.name


def test_account_jwt_exports_and_imports(start_server):
    op = Operator.new("lab")
    shop = op.new_account("SHOP", exports=[
        {"name": "orders", "subject": "orders.>", "type": "stream"},
        {"name": "price", "subject": "price.get", "type": "service"}])
    billing = op.new_account("BILLING", imports=[
        {"name": "orders", "subject": "orders.>", "account": shop.public_key, "type": "stream",
         "local_subject": "shop.orders.>"},
        {"name": "price", "subject": "price.get", "account": shop.public_key, "type": "service",
         "local_subject": "shop.price"}])
    srv = start_server(config=op.server_config())
    seller, buyer = shop.new_user("seller"), billing.new_user("buyer")

    async def scenario():
        s = await nats.connect(srv.url, user_credentials=_creds(seller))
        b = await nats.connect(srv.url, user_credentials=_creds(buyer))

        async def price(msg):
            await msg.respond(b"9.99")

        await s.subscribe("price.get", cb=price)
        orders = await b.subscribe("shop.orders.>")
        await flush(s)
        await flush(b)
        await s.publish("orders.new", b"#42")
        got = await orders.next_msg(10)
        answer = await b.request("shop.price", b"apple", timeout=10)
        await s.close()
        await b.close()
        return got.subject, got.data, answer.data

    assert run(scenario()) == ("shop.orders.new", b"#42", b"9.99")


def _creds(user) -> str:
    import tempfile
    path = tempfile.mktemp(suffix=".creds")
    return str(user.write_creds(path))


def test_account_limits_from_the_jwt(start_server):
    """An account JWT's conn, subs and payload limits, on both servers: the second connection is refused with
    nats-server's error, and the account's subs/payload limits apply to a user that has none of its own."""
    op = Operator.new("lab")
    app = op.new_account("APP", limits={"conn": 1, "subs": 1, "payload": 4})
    srv = start_server(config=op.server_config())
    user = app.new_user("u")
    with RawClient(srv) as first:
        first.connect_jwt(user.jwt, user.seed)
        assert first.ping() == []
        with RawClient(srv) as second:
            second.connect_jwt(user.jwt, user.seed)
            assert_account_limits(first, second)


def test_jetstream_limits_from_the_account_jwt(start_server, tmp_path_factory):
    """An account JWT with JetStream limits gets JetStream (reported and enforced as nats-server does); one without
    them answers that JetStream is not enabled for it."""
    op = Operator.new("lab")
    js_acc = op.new_account("JS", limits={"mem_storage": -1, "disk_storage": 100000, "streams": 1, "consumer": -1,
                                          "disk_max_stream_bytes": 4096, "max_bytes_required": True})
    plain = op.new_account("PLAIN")
    srv = start_server("-js", "-sd", str(tmp_path_factory.mktemp("js")), config=op.server_config())

    async def scenario():
        out = []
        for account in (js_acc, plain):
            user = account.new_user("u")
            nc = await nats.connect(srv.url, user_credentials=_creds(user), allow_reconnect=False)
            info = json.loads((await nc.request("$JS.API.INFO", b"", timeout=5)).data)
            out.append(info.get("limits") or info["error"])
            for body in ({"name": "A", "subjects": ["a"]}, {"name": "A", "subjects": ["a"], "max_bytes": 1000},
                         {"name": "B", "subjects": ["b"], "max_bytes": 1000}):
                answer = json.loads((await nc.request(f"$JS.API.STREAM.CREATE.{body['name']}",
                                                      json.dumps(body).encode(), timeout=5)).data)
                out.append(answer["error"]["err_code"] if "error" in answer else answer["config"]["max_bytes"])
            await nc.close()
        return out

    out = run(scenario())
    assert out[0] == {"max_memory": -1, "max_storage": 100000, "max_streams": 1, "max_consumers": -1,
                      "max_ack_pending": -1, "memory_max_stream_bytes": -1, "storage_max_stream_bytes": 4096,
                      "max_bytes_required": True}
    assert out[1:4] == [10113, 1000, 10027]
    assert out[4]["err_code"] == 10039 and out[5:] == [10039, 10039, 10039]


def test_tiered_jetstream_limits_from_the_account_jwt(start_server, tmp_path_factory):
    """An account JWT with tiered_limits (R1): $JS.API.INFO reports zero top-level limits and an R1 tier with the
    limits and usage, and the R1 limits are enforced (streams, default max_ack_pending), as nats-server."""
    from pynats_lab.auth import decode_jwt_claims
    op = Operator.new("lab")
    acc = op.new_account("T")
    claims = decode_jwt_claims(acc.jwt)
    claims["nats"]["limits"]["tiered_limits"] = {"R1": {
        "mem_storage": -1, "disk_storage": 100000, "streams": 2, "consumer": -1, "max_ack_pending": 50,
        "mem_max_stream_bytes": 0, "disk_max_stream_bytes": 0, "max_bytes_required": False}}
    acc.jwt = encode_jwt(claims, op.seed)
    srv = start_server("-js", "-sd", str(tmp_path_factory.mktemp("js")), config=op.server_config())
    user = acc.new_user("u")

    async def scenario():
        nc = await nats.connect(srv.url, user_credentials=_creds(user), allow_reconnect=False)
        out = []
        for name in ("A", "B", "C"):
            answer = json.loads((await nc.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps(
                {"name": name, "subjects": [name.lower()]}).encode(), timeout=5)).data)
            out.append(answer.get("error", {}).get("err_code", "ok"))
        answer = json.loads((await nc.request("$JS.API.CONSUMER.CREATE.A.C", json.dumps(
            {"stream_name": "A", "config": {"durable_name": "C", "ack_policy": "explicit"}}).encode(), timeout=5)).data)
        out.append(answer["config"]["max_ack_pending"])
        info = json.loads((await nc.request("$JS.API.INFO", b"", timeout=5)).data)
        await nc.close()
        return out, info

    out, info = run(scenario())
    assert out == ["ok", "ok", 10027, 50]
    assert set(info["limits"].values()) == {0, False}
    tier = info["tiers"]["R1"]
    assert (tier["streams"], tier["consumers"]) == (2, 1)
    assert tier["limits"] == {"max_memory": -1, "max_storage": 100000, "max_streams": 2, "max_consumers": -1,
                              "max_ack_pending": 50, "memory_max_stream_bytes": -1, "storage_max_stream_bytes": -1,
                              "max_bytes_required": False}


def test_system_account_events_name_jwt_accounts_by_their_name(start_server):
    """In operator mode the CONNECT event's name_tag and ACCOUNT.<key>.STATZ's name are the account JWT's name."""
    op = Operator.new("lab")
    app = op.new_account("APP")
    system = op.system_account()
    srv = start_server(config=op.server_config())
    admin, user = system.new_user("admin"), app.new_user("u")

    async def scenario():
        sys_nc = await nats.connect(srv.url, user_credentials=_creds(admin), allow_reconnect=False)
        sub = await sys_nc.subscribe(f"$SYS.ACCOUNT.{app.public_key}.CONNECT")
        await flush(sys_nc)
        nc = await nats.connect(srv.url, user_credentials=_creds(user), allow_reconnect=False)
        event = json.loads((await sub.next_msg(timeout=10)).data)
        statz = json.loads((await sys_nc.request(f"$SYS.REQ.ACCOUNT.{app.public_key}.STATZ", b"", timeout=5)).data)
        await nc.close()
        await sys_nc.close()
        return event, statz

    event, statz = run(scenario())
    assert event["client"]["acc"] == app.public_key and event["client"]["name_tag"] == "APP"
    assert [(s["acc"], s["name"]) for s in statz["data"]["account_statz"]] == [(app.public_key, "APP")]
