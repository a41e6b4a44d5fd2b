"""Accounts in the configuration file, on every server kind: isolated subject spaces, stream and service
exports/imports, and users moved between accounts by a reload."""
from __future__ import annotations

import asyncio
import json

import nats
import pytest

from pynats_lab.session import flush
from tests.raw import RawClient

ACCOUNTS = """
accounts {
  SHOP: {
    users = [ {user: shop, password: pw}, {user: shop2, password: pw} ]
    exports = [
      {stream: "orders.>"}
      {service: "price.get"}
      {stream: "private.>", accounts: [NOBODY]}
    ]
  }
  BILLING: {
    users = [ {user: billing, password: pw} ]
    imports = [
      {stream: {account: SHOP, subject: "orders.>"}, prefix: "shop"}
      {service: {account: SHOP, subject: "price.get"}, to: "shop.price"}
    ]
  }
  NOBODY: { users = [ {user: nobody, password: pw} ] }
}
"""


def login(srv, user: str) -> RawClient:
    c = RawClient(srv)
    c.connect(user=user, **{"pass": "pw"})
    assert c.ping() == []
    return c


@pytest.fixture
def srv(start_server):
    return start_server(config=ACCOUNTS)


def test_accounts_have_separate_subject_spaces(srv):
    with login(srv, "shop") as shop, login(srv, "shop2") as shop2, login(srv, "billing") as billing:
        for c in (shop2, billing):
            c.send("SUB news 1\r\n")
            assert c.ping() == []
        shop.send("PUB news 5\r\nhello\r\n")
        assert shop2.read_msg() == ("news", b"hello")
        assert billing.ping() == []


def test_a_stream_import_delivers_under_its_prefix(srv):
    with login(srv, "shop") as shop, login(srv, "billing") as billing:
        billing.send("SUB shop.orders.* 1\r\nSUB orders.* 2\r\n")
        assert billing.ping() == []
        shop.send("PUB orders.new 3\r\n#42\r\n")
        assert billing.read_msg() == ("shop.orders.new", b"#42")
        assert billing.ping() == []  # nothing under the original subject


def test_a_service_import_answers_requests_across_accounts(srv):
    async def scenario():
        shop = await nats.connect(srv.url, user="shop", password="pw")
        billing = await nats.connect(srv.url, user="billing", password="pw")

        async def price(msg):
            await msg.respond(b"9.99 for " + msg.data)

        await shop.subscribe("price.get", cb=price)
        await flush(shop)
        reply = await billing.request("shop.price", b"apple", timeout=10)
        await shop.close()
        await billing.close()
        return reply.data

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == b"9.99 for apple"


CHAINED = """
accounts {
  A: { users = [ {user: a, password: pw} ], exports = [ {service: "svc.>"} ] }
  B: { users = [ {user: b, password: pw} ], imports = [ {service: {account: A, subject: "svc.>"}} ],
       exports = [ {service: "svc.>"} ] }
  C: { users = [ {user: c, password: pw} ], imports = [ {service: {account: B, subject: "svc.>"}} ] }
}
"""


@pytest.mark.parametrize("requester, expected", [("b", {"acc": "B"}), ("c", {"acc": "C", "svc": "B"})])
def test_a_service_import_tells_the_responder_who_asked(start_server, requester, expected):
    """nats-server adds Nats-Request-Info (the requesting account, its RTT; on a chained import the account
    whose import it crossed next) to every request that crosses a service import, replacing one sent."""
    srv = start_server(config=CHAINED)

    async def scenario():
        a = await nats.connect(srv.url, user="a", password="pw")
        asker = await nats.connect(srv.url, user=requester, password="pw")
        seen = []

        async def serve(msg):
            seen.append(msg.headers.get("Nats-Request-Info") if msg.headers else None)
            await msg.respond(b"ok")

        await a.subscribe("svc.x", cb=serve)
        await flush(a)
        await asker.request("svc.x", b"q", timeout=10, headers={"Nats-Request-Info": '{"acc":"forged"}'})
        await a.close()
        await asker.close()
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert len(seen) == 1 and seen[0] is not None
    info = json.loads(seen[0])
    assert isinstance(info.pop("rtt", 0), int)
    assert info == expected


@pytest.mark.parametrize("config,message", [
    ("accounts { A: { imports = [ {stream: {account: B, subject: x}} ] } }\n",
     '"B" account not defined for stream import'),
    ("accounts { A: {}, B: { imports = [ {service: {account: A, subject: x}} ] } }\n",
     "service import not authorized"),
    ("accounts { A: { users = [ {user: u, password: p} ] }, B: { users = [ {user: u, password: q} ] } }\n",
     'Duplicate user "u" detected'),
    ('accounts { "$G": {} }\n', '"\\$G" is a Reserved Account'),
])
def test_bad_account_configs_are_refused(start_server, config, message):
    with pytest.raises(RuntimeError, match=message):
        start_server(config=config)


def test_reload_moving_a_user_to_another_account_closes_its_connection(start_server):
    config = "accounts {\n  A: { users = [ {user: u, password: pw}, {user: stay, password: pw} ] }\n  B: {}\n}\n"
    srv = start_server(config=config)
    with login(srv, "u") as moved, login(srv, "stay") as stay:
        (srv.workdir / "server.conf").write_text(
            "accounts {\n  A: { users = [ {user: stay, password: pw} ] }\n"
            "  B: { users = [ {user: u, password: pw} ] }\n}\n")
        srv.reload()
        assert moved.expect_closed() == []
        assert stay.ping() == []
    with login(srv, "u") as again, login(srv, "stay") as stay:
        again.send("SUB x 1\r\n")
        assert again.ping() == []
        stay.send("PUB x 1\r\n!\r\n")
        assert stay.ping() == []
        assert again.ping() == []  # u now lives in B


def test_a_service_import_without_a_responder_fails_fast(srv):
    async def scenario():
        billing = await nats.connect(srv.url, user="billing", password="pw")
        try:
            with pytest.raises(nats.errors.NoRespondersError):
                await billing.request("shop.price", b"apple", timeout=10)
        finally:
            await billing.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


LIMITED = """
accounts {
  L: { users: [{user: l, password: pw}], limits: { max_connections: 1, max_subscriptions: 1, max_payload: 4 } }
}
"""


def test_account_limits_block(start_server):
    """An account's `limits` block: connections, subscriptions per connection and payload, as nats-server."""
    srv = start_server(config=LIMITED)
    with login(srv, "l") as first, RawClient(srv) as second:
        second.connect(user="l", **{"pass": "pw"})
        assert_account_limits(first, second)


def assert_account_limits(first: RawClient, second: RawClient) -> None:
    """With `first` connected to an account limited to 1 connection, 1 subscription and 4-byte payloads, and
    `second` sending its CONNECT: nats-server's errors for each limit."""
    second.send("PING\r\n")
    assert second.expect_closed() == ["-ERR 'maximum account active connections exceeded'"]
    first.send("SUB a 1\r\nSUB b 2\r\n")
    assert first.ping() == ["-ERR 'maximum subscriptions exceeded'"]
    first.send("PUB a 5\r\nfive!\r\n")
    assert first.expect_closed() == ["-ERR 'Maximum Payload Violation'"]
