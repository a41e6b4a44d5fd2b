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
