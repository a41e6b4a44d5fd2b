"""JetStream per account: with accounts configured, only those with `jetstream: enabled` have it, and each
account's streams are its own."""
import nats

from .helpers import api, connected, error_of, run

CONFIG = """
jetstream { store_dir: "%s" }
accounts {
  A: { jetstream: enabled, users: [ {user: a, password: a} ] }
  B: { users: [ {user: b, password: b} ] }
  C: { jetstream: { max_mem: 1M }, users: [ {user: c, password: c} ] }
}
"""


def test_only_accounts_with_jetstream_get_it(start_server, tmp_path):
    server = start_server(config=CONFIG % (tmp_path / "store"))

    async def as_user(user):
        async with connected(server, user=user, password=user) as (nc, js):
            info = await api(nc, "$JS.API.INFO")
            try:
                create = await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"],
                                                                     "storage": "memory"})
            except nats.errors.NoRespondersError:
                create = "no responders"
            names = await api(nc, "$JS.API.STREAM.NAMES") if create != "no responders" else None
            return info, create, names

    a_info, a_create, a_names = run(as_user("a"))
    b_info, b_create, _ = run(as_user("b"))
    c_info, c_create, c_names = run(as_user("c"))
    assert "error" not in a_info and a_create["config"]["name"] == "S" and a_names["streams"] == ["S"]
    assert error_of(b_info) == (503, 10039, "JetStream not enabled for account")
    assert b_info["type"] == "io.nats.jetstream.api.v1.account_info_response"
    assert error_of(b_create) == (503, 10039, "JetStream not enabled for account")
    assert "error" not in c_info and c_create["config"]["name"] == "S" and c_names["streams"] == ["S"]


def test_a_system_account_alone_leaves_jetstream_to_the_global_account(start_server, tmp_path):
    """Only a system account configured (with a user of its own): the server is still "global account only"
    for JetStream, as nats-server's globalAccountOnly has it; anonymous clients (no_auth_user in $G) keep
    JetStream, the system account gets none."""
    server = start_server(config=f"""
jetstream {{ store_dir: "{tmp_path / 'store'}" }}
authorization {{ users [{{user: lab, password: lab}}] }}
no_auth_user: lab
accounts {{ SYS {{ users [{{user: ops, password: ops}}] }} }}
system_account: SYS
""")

    async def info(**auth):
        async with connected(server, **auth) as (nc, js):
            return await api(nc, "$JS.API.INFO")

    anonymous = run(info())
    assert "error" not in anonymous and anonymous["streams"] == 0, anonymous
    assert error_of(run(info(user="ops", password="ops"))) == (503, 10039, "JetStream not enabled for account")


def test_the_system_account_purges_an_accounts_jetstream(start_server, tmp_path):
    """`$JS.API.ACCOUNT.PURGE.<account>` from the system account (natscli `nats server account purge`): a lone
    nats-server deletes every stream of the account and its directory in the store, answers `initiated`, and the
    account goes on using JetStream; a name with a path separator is refused (10051)."""
    store = tmp_path / "store"
    server = start_server(config=f"""
jetstream {{ store_dir: "{store}" }}
accounts {{
  A: {{ jetstream: enabled, users: [ {{user: a, password: a}} ] }}
  SYS: {{ users: [ {{user: ops, password: ops}} ] }}
}}
system_account: SYS
""")

    async def scenario():
        async with connected(server, user="a", password="a") as (nc, js):
            for name in ("S", "T"):
                await api(nc, f"$JS.API.STREAM.CREATE.{name}", {"name": name, "subjects": [name.lower()]})
            await js.publish("s", b"x")
            await api(nc, "$JS.API.CONSUMER.CREATE.S.c", {"stream_name": "S", "config": {"durable_name": "c"}})
            async with connected(server, user="ops", password="ops") as (sys_nc, _):
                answers = [await api(sys_nc, f"$JS.API.ACCOUNT.PURGE.{name}") for name in ("A", "NOPE", "x/y")]
            gone = await api(nc, "$JS.API.STREAM.NAMES")
            account_dir = (store / "jetstream" / "A").exists()
            again = await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
            ack = await js.publish("s", b"y")
            return answers, gone, account_dir, again, ack

    answers, gone, account_dir, again, ack = run(scenario())
    purged = {"type": "io.nats.jetstream.api.v1.account_purge_response", "initiated": True}
    assert answers[:2] == [purged, purged]
    assert answers[2]["type"] == purged["type"] and "initiated" not in answers[2]
    assert error_of(answers[2]) == (500, 10051, "account name can not contain path separators")
    assert gone["streams"] is None and gone["total"] == 0 and account_dir is False
    assert again["state"]["messages"] == 0 and ack.seq == 1
    assert "Purge request for account A (streams: 2, hasAccount: true)" in server.logs
