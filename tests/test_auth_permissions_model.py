"""The permission checker (embedded_server.auth.permissions) against nats-server's decisions on a grid of
allow/deny patterns and subjects, wildcards and queues included. Cheap: one server, raw sockets."""
from __future__ import annotations

import itertools

import pytest

from embedded_server.auth.permissions import ClientPermissions, Permissions, SubjectPermission, pattern_matches
from tests.raw import RawClient
from tests.servers import RunningServer

RULES = [  # (allow, deny) for both publish and subscribe
    (["foo.*"], None), (["foo.>"], ["foo.bar.baz"]), (["foo.bar"], None), (["*.bar"], ["x.bar"]),
    ([">"], ["foo.*"]), (["foo.* q1", "bar"], None), ([">"], ["foo.bar q2"]), (["foo.> v.*"], None),
]
SUBJECTS = ["foo.>", "foo.*", "*.bar", "foo.bar", "*.*", ">", "foo", "foo.bar.baz", "x.bar", "bar"]
QUEUES = [None, "q1", "q2", "v.1"]


def _conf_list(items):
    return "[" + ", ".join(f'"{s}"' for s in items) + " ]" if items else "[]"


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    users = []
    for i, (allow, deny) in enumerate(RULES):
        perm = f"allow: {_conf_list(allow)}" + (f", deny: {_conf_list(deny)}" if deny else "")
        pub_allow = [a.split()[0] for a in allow]
        pub = f"allow: {_conf_list(pub_allow)}" + (f", deny: {_conf_list([d.split()[0] for d in deny])}"
                                                 if deny else "")
        users.append(f"{{user: u{i}, password: p, permissions: {{subscribe: {{{perm}}}, publish: {{{pub}}}}}}}")
    workdir = tmp_path_factory.mktemp("oracle")
    (workdir / "s.conf").write_text("authorization { users = [\n" + "\n".join(users) + "\n] }\n")
    srv = RunningServer("nats-server", ["-c", str(workdir / "s.conf")], workdir).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("rule", range(len(RULES)))
def test_subscribe_and_publish_decisions_match_nats_server(oracle, rule):
    allow, deny = RULES[rule]
    ours = ClientPermissions(Permissions(
        publish=SubjectPermission([a.split()[0] for a in allow], [d.split()[0] for d in deny] if deny else None),
        subscribe=SubjectPermission(allow, deny)))
    with RawClient(oracle) as c, RawClient(oracle) as p:
        for conn in (c, p):
            conn.connect(user=f"u{rule}", **{"pass": "p"})
            assert conn.ping() == []
        grid = list(itertools.product(SUBJECTS, QUEUES))
        c.send("".join(f"SUB {subject} {queue + ' ' if queue else ''}{sid}\r\n"
                       for sid, (subject, queue) in enumerate(grid)))
        refused = set(c.ping())
        for subject, queue in grid:
            err = f"-ERR 'Permissions Violation for Subscription to \"{subject}\"" + (
                f" using queue \"{queue}\"'" if queue else "'")
            assert ours.can_subscribe(subject, queue) == (err not in refused), (allow, deny, subject, queue)
        literals = [s for s in SUBJECTS if "*" not in s and ">" not in s]
        p.send("".join(f"PUB {subject} 0\r\n\r\n" for subject in literals))
        refused = set(p.ping())
        for subject in literals:
            err = f"-ERR 'Permissions Violation for Publish to \"{subject}\"'"
            assert ours.can_publish(subject) == (err not in refused), (allow, deny, subject)


@pytest.mark.parametrize("pattern,subject,expected", [
    ("foo.*", "foo.bar", True), ("foo.*", "foo.bar.baz", False), ("foo.>", "foo.bar.baz", True),
    ("foo.>", "foo", False), (">", "a", True), ("*", "a.b", False), ("a.*.c", "a.b.c", True),
    ("foo.*", "foo.>", True), ("foo.bar", "foo.*", False),
])
def test_pattern_matching_treats_the_subjects_tokens_literally(pattern, subject, expected):
    assert pattern_matches(pattern.split("."), subject.split(".")) is expected
