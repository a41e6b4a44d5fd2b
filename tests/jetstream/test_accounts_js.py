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
