"""The subscription trie against a brute-force matcher: after any sequence of subscribes, unsubscribes and
matches, every match (cached or not) is what checking each subscription by hand gives; the delivery plans the
server derives from it follow along; validation agrees with nats-server's rules."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from embedded_server.server import Account
from embedded_server.subjects import (InvalidSubject, Sublist, Subscription, is_valid_literal_subject,
                                      is_valid_subject, matches)

TOKENS = ["a", "b", "c"]
literal = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4).map(".".join)


@st.composite
def filters(draw) -> str:
    toks = draw(st.lists(st.sampled_from(TOKENS + ["*"]), min_size=1, max_size=4))
    if draw(st.booleans()):
        toks = toks[:draw(st.integers(0, len(toks) - 1))] + [">"]
    return ".".join(toks)


def brute(subs, subject):
    plain = {s for s in subs if s.queue is None and matches(s.subject, subject)}
    groups: dict[str, set] = {}
    for s in subs:
        if s.queue is not None and matches(s.subject, subject):
            groups.setdefault(s.queue, set()).add(s)
    return plain, groups


def observed(result):
    plain = set(result.psubs)
    groups = {}
    for group in result.qsubs:
        assert len({s.queue for s in group}) == 1, "a queue slot mixes queue names"
        assert group[0].queue not in groups, "one queue name in two slots"
        groups[group[0].queue] = set(group)
    return plain, groups


class _Connection:
    """What a plan reads of a subscriber's connection: its permissions (none here) and its output list."""
    perms = None

    def __init__(self):
        self.out: list = []


class TrieMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.account = Account("A")
        self.sl = self.account.sublist
        self.subs: list[Subscription] = []
        self.n = 0

    @rule(subject=filters(), queue=st.sampled_from([None, None, "q1", "q2"]))
    def subscribe(self, subject, queue):
        self.n += 1
        sub = Subscription(_Connection(), subject, queue, b"%d" % self.n)
        self.sl.insert(sub)
        self.subs.append(sub)

    @rule(data=st.data())
    def unsubscribe(self, data):
        if not self.subs:
            return
        sub = data.draw(st.sampled_from(self.subs))
        assert self.sl.remove(sub)
        self.subs.remove(sub)
        assert not self.sl.remove(sub), "a removed subscription was removed twice"

    @rule(subject=literal)
    def match(self, subject):
        assert observed(self.sl.match(subject)) == brute(self.subs, subject)
        plan = self.account.plan(subject.encode())
        plain, groups = brute(self.subs, subject)
        assert {e[0] for e in plan.psubs} == plain
        assert {g[0][0].queue: {e[0] for e in g} for g in plan.qgroups} == groups
        # Nothing to check per message here (no permissions, no limits): the fast path serves any plan without
        # a queue group.
        assert plan.fast == (None if groups else plan.psubs)

    @invariant()
    def counts(self):
        assert self.sl.count == len(self.subs)
        assert set(self.sl.all()) == set(self.subs)


TestTrie = TrieMachine.TestCase
TestTrie.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_delivery_order_follows_nats_server():
    """`>` matches come first, then `*` ones, then the literal (nats-server's matchLevel walk)."""
    sl = Sublist()
    subs = [Subscription(None, s, None, b"%d" % i) for i, s in enumerate(["foo.bar", "*.*", "foo.>", ">"])]
    for s in subs:
        sl.insert(s)
    assert [s.subject for s in sl.match("foo.bar").psubs] == [">", "*.*", "foo.>", "foo.bar"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.*> \t", max_size=8))
def test_insert_refuses_exactly_what_nats_server_refuses(subject):
    sl = Sublist()
    tokens = subject.split(".")
    refused = any(t == "" for t in tokens) or any(t == ">" for t in tokens[:-1])
    try:
        sl.insert(Subscription(None, subject, None, b"1"))
    except InvalidSubject:
        assert refused
    else:
        assert not refused


def test_subject_validation():
    assert is_valid_subject("foo.*.>") and is_valid_subject("foo*") and is_valid_subject(">foo")
    assert not is_valid_subject("foo..bar") and not is_valid_subject("foo.>.bar") and not is_valid_subject("a b")
    assert is_valid_literal_subject("foo.bar") and not is_valid_literal_subject("foo.*")
    assert not is_valid_literal_subject("foo.") and is_valid_literal_subject("foo*")


def test_the_cache_stays_bounded():
    sl = Sublist()
    sl.insert(Subscription(None, ">", None, b"1"))
    for i in range(5000):
        assert sl.match(f"s.{i}").psubs
    assert sl.cache_count() <= 1024


@settings(max_examples=300, deadline=None)
@given(filters(), filters(), st.lists(literal, max_size=20))
def test_subset_match_means_every_matched_subject_is_matched_by_the_wider_filter(narrow, wide, samples):
    from embedded_server.subjects import subset_match
    if subset_match(narrow, wide):
        assert all(matches(wide, s) for s in samples if matches(narrow, s))
    assert subset_match(narrow, narrow) and subset_match(narrow, ">")
