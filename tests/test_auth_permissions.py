"""Publish/subscribe permissions from the configuration file, on every server kind: the exact -ERR texts,
that the connection stays open, and what is (not) delivered."""
from __future__ import annotations

import asyncio

import nats
import pytest

from pynats_lab.session import flush
from tests.raw import RawClient

PERMS_CONFIG = """
authorization {
  users = [
    {user: limited, password: pw, permissions: {
      publish: {allow: ["orders.>", "public.*"], deny: "orders.secret"}
      subscribe: {allow: ["orders.>", "public.*", "work.* workers"], deny: ["orders.private.>", "public.hidden"]}
    }}
    {user: bare, password: pw, permissions: {publish: "only.this", subscribe: ["only.*"]}}
    {user: admin, password: pw, permissions: {publish: ">", subscribe: ">"}}
    {user: defaulted, password: pw}
    {user: denied, password: pw, permissions: {publish: {deny: ["secret.>"]}}}
  ]
  default_permissions: {publish: "default.>", subscribe: "default.>"}
}
"""


def login(srv, user: str) -> RawClient:
    c = RawClient(srv)
    c.connect(user=user, **{"pass": "pw"})
    assert c.ping() == []
    return c


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def srv(start_server):
    return start_server(config=PERMS_CONFIG)


def test_publish_violations_keep_the_connection_open(srv):
    with login(srv, "admin") as watcher, login(srv, "limited") as c:
        watcher.send("SUB > 1\r\n")
        watcher.ping()
        c.send("PUB orders.secret 1\r\nx\r\nPUB other 1\r\ny\r\nPUB orders.new 2\r\nok\r\n")
        assert c.ping() == ["-ERR 'Permissions Violation for Publish to \"orders.secret\"'",
                            "-ERR 'Permissions Violation for Publish to \"other\"'"]
        assert watcher.read_msg() == ("orders.new", b"ok")
        assert watcher.ping() == []  # nothing else got through


def test_subscribe_violations_name_subject_and_queue(srv):
    with login(srv, "limited") as c:
        c.send("SUB secrets 1\r\nSUB orders.private.x 2\r\nSUB work.a other 3\r\nSUB work.a 4\r\n"
               "SUB work.a workers 5\r\nSUB public.x 6\r\n")
        assert c.ping() == [
            "-ERR 'Permissions Violation for Subscription to \"secrets\"'",
            "-ERR 'Permissions Violation for Subscription to \"orders.private.x\"'",
            "-ERR 'Permissions Violation for Subscription to \"work.a\" using queue \"other\"'",
            "-ERR 'Permissions Violation for Subscription to \"work.a\"'",
        ]
        c.send("PUB public.x 2\r\nhi\r\n")
        assert c.read_msg() == ("public.x", b"hi")


def test_a_subject_with_an_empty_token_matches_no_permission_entry(srv):
    """nats-server's sublist matches nothing for `a..b`: an allow list refuses it, a deny list lets it by."""
    with login(srv, "limited") as limited, login(srv, "denied") as denied:
        limited.send("PUB orders..secret 1\r\nx\r\nPUB orders.x. 1\r\nx\r\nSUB orders..x 1\r\n")
        assert limited.ping() == ["-ERR 'Permissions Violation for Publish to \"orders..secret\"'",
                                  "-ERR 'Permissions Violation for Publish to \"orders.x.\"'",
                                  "-ERR 'Permissions Violation for Subscription to \"orders..x\"'"]
        denied.send("PUB secret..x 1\r\nx\r\nPUB secret.x 1\r\nx\r\n")
        assert denied.ping() == ["-ERR 'Permissions Violation for Publish to \"secret.x\"'"]


def test_a_bare_list_means_allow(srv):
    with login(srv, "bare") as c:
        c.send("SUB only.a 1\r\nSUB nope 2\r\nPUB only.this 1\r\n1\r\nPUB only.that 1\r\n2\r\n")
        assert c.ping() == ["-ERR 'Permissions Violation for Subscription to \"nope\"'",
                            "-ERR 'Permissions Violation for Publish to \"only.that\"'"]


def test_default_permissions_apply_to_users_without_their_own(srv):
    with login(srv, "defaulted") as c:
        c.send("SUB default.x 1\r\nSUB orders.new 2\r\n")
        assert c.ping() == ["-ERR 'Permissions Violation for Subscription to \"orders.new\"'"]
        c.send("PUB default.x 1\r\nd\r\n")
        assert c.read_msg() == ("default.x", b"d")


def test_wildcard_subscription_does_not_receive_denied_subjects(srv):
    with login(srv, "admin") as pub, login(srv, "limited") as c:
        c.send("SUB orders.> 1\r\nSUB public.* 2\r\n")
        assert c.ping() == []
        pub.send("PUB orders.private.x 1\r\nA\r\nPUB public.hidden 1\r\nB\r\nPUB orders.ok 1\r\nC\r\n"
                 "PUB public.shown 1\r\nD\r\n")
        pub.ping()
        assert [c.read_msg() for _ in range(2)] == [("orders.ok", b"C"), ("public.shown", b"D")]
        assert c.ping() == []


def test_nats_py_sees_the_permission_errors(srv):
    async def scenario():
        errors = []

        async def on_error(e):
            errors.append(str(e))

        nc = await nats.connect(srv.url, user="limited", password="pw", error_cb=on_error)
        await nc.publish("orders.secret", b"x")
        await nc.subscribe("secrets")
        # nats-py hands each -ERR to error_cb before it reads the PONG behind it; the PONG also shows the
        # connection still open.
        await flush(nc)
        assert nc.is_connected
        await nc.close()
        return errors

    errors = run(scenario())
    # nats-py reports them in lower case.
    assert 'nats: permissions violation for publish to "orders.secret"' in errors
    assert 'nats: permissions violation for subscription to "secrets"' in errors


RESPONSES_CONFIG = """
authorization {
  users = [
    {user: client, password: pw}
    {user: svc, password: pw, permissions: {subscribe: "requests", allow_responses: %s}}
  ]
}
"""


@pytest.mark.parametrize("allow,replies", [("true", 1), ("{max: 2}", 2), ("{max: 2, expires: \"1m\"}", 2)])
def test_allow_responses_lets_a_service_answer_only_what_it_was_asked(start_server, allow, replies):
    srv = start_server(config=RESPONSES_CONFIG % allow)
    with login(srv, "client") as requester, RawClient(srv) as svc:
        svc.connect(user="svc", **{"pass": "pw"})
        svc.send("SUB requests 1\r\n")
        assert svc.ping() == []
        requester.send("SUB _INBOX.abc 1\r\nPUB requests _INBOX.abc 1\r\n?\r\n")
        requester.ping()
        line = svc.read_line()
        assert line == "MSG requests 1 _INBOX.abc 1", line
        svc.read_line()
        for i in range(replies):
            svc.send(f"PUB _INBOX.abc 1\r\n{i}\r\n")
        svc.send("PUB _INBOX.abc 1\r\nX\r\nPUB _INBOX.other 1\r\nY\r\n")
        assert svc.ping() == ["-ERR 'Permissions Violation for Publish to \"_INBOX.abc\"'",
                              "-ERR 'Permissions Violation for Publish to \"_INBOX.other\"'"]
        assert [requester.read_msg() for _ in range(replies)] == [("_INBOX.abc", str(i).encode())
                                                                  for i in range(replies)]
        assert requester.ping() == []


def test_request_reply_through_nats_py_with_allow_responses(start_server):
    srv = start_server(config=RESPONSES_CONFIG % "true")

    async def scenario():
        svc = await nats.connect(srv.url, user="svc", password="pw")
        client = await nats.connect(srv.url, user="client", password="pw")

        async def answer(msg):
            await msg.respond(b"pong:" + msg.data)

        await svc.subscribe("requests", cb=answer)
        await flush(svc)
        reply = await client.request("requests", b"ping", timeout=10)
        await svc.close()
        await client.close()
        return reply.data

    assert run(scenario()) == b"pong:ping"
