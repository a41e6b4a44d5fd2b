"""Subjects: validation, wildcard matching, and the subscription trie (`Sublist`) with its match cache.

Subjects are dot-separated tokens; `*` matches one token and `>` the rest (one or more tokens). The trie and
its delivery order follow nats-server's sublist.go, so a message reaches matching subscriptions in the same order.
"""
from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable

PWC = "*"
FWC = ">"
_WHITESPACE = frozenset(" \t\n\r\f")

# Cached match results are kept for at most this many subjects, keeping memory bounded (nats-server:
# slCacheMax). Once full, the oldest CACHE_EVICT results make room (nats-server sweeps down to slCacheSweep,
# 256, dropping entries in Go's map order: here that sweep, 768 entries at once, was a 0.2-0.4 ms pause every
# 768 new subjects, such as a request's unique reply subject; a few at a time cost the same per subject, and
# fewer than one at a time, whose search for the oldest walks the holes the ones before it left).
CACHE_MAX = 1024
CACHE_EVICT = 32
CACHE_RESULT_MAX = 1024  # a cached match with more plain subscriptions is not extended by a wildcard insert


def is_valid_subject(subject: str) -> bool:
    """A subject a subscription may use: non-empty tokens, nothing after `>`, no whitespace."""
    if not subject:
        return False
    after_fwc = False
    for token in subject.split("."):
        if not token or after_fwc:
            return False
        if len(token) > 1:
            if not _WHITESPACE.isdisjoint(token):
                return False
        elif token == FWC:
            after_fwc = True
        elif token in _WHITESPACE:
            return False
    return True


def is_valid_literal_subject(subject: str) -> bool:
    """A subject a message may be published to (nats-server's pedantic check): non-empty tokens, no wildcards."""
    for token in subject.split("."):
        if not token or token == PWC or token == FWC:
            return False
    return True


def is_valid_publish_subject(subject: str) -> bool:
    return is_valid_subject(subject) and subject_is_literal(subject)


def subject_is_literal(subject: str) -> bool:
    for token in subject.split("."):
        if token == PWC or token == FWC:
            return False
    return True


def matches(filter_subject: str, subject: str) -> bool:
    """Whether the literal `subject` is matched by `filter_subject` (which may contain wildcards)."""
    ftoks = filter_subject.split(".")
    stoks = subject.split(".")
    for i, ft in enumerate(ftoks):
        if ft == FWC:
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ft != PWC and ft != stoks[i]:
            return False
    return len(ftoks) == len(stoks)


def subset_match(subject: str, filter_subject: str) -> bool:
    """Whether every subject matched by `subject` (possibly a wildcard) is also matched by `filter_subject`."""
    stoks = subject.split(".")
    ftoks = filter_subject.split(".")
    for i, ft in enumerate(ftoks):
        if i >= len(stoks):
            return False
        st = stoks[i]
        if ft == FWC:
            return True
        if st == FWC:
            return False
        if ft == PWC:
            continue
        if st == PWC or st != ft:
            return False
    return len(ftoks) == len(stoks)


class InvalidSubject(ValueError):
    """Raised by Sublist.insert for a subject nats-server would refuse ('Invalid Subject')."""


class Subscription:
    """One interest in a subject: a client's SUB, or an internal subscription with a callback."""

    __slots__ = ("client", "subject", "queue", "sid", "max", "delivered", "callback", "closed",
                 "account", "raw", "raw_h", "raw_hs", "raw_fs", "__weakref__")

    def __init__(self, client, subject: str, queue: str | None, sid: bytes,
                 callback: Callable | None = None, account=None):
        self.client = client
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.max = 0          # auto-unsubscribe after this many deliveries (0: no limit)
        self.delivered = 0
        self.callback = callback
        self.closed = False
        self.account = account
        # An internal subscription's shortcut for a client's PUB with a reply when it is the only receiver
        # (server.Plan.raw): raw(subject, reply, payload) as bytes, True if it took the message.
        self.raw = None
        # The same for a client's HPUB without a reply: raw_h(subject, hdr, payload) as bytes.
        self.raw_h = None
        # And for a run of them (protocol.HPUBS): (take, record), `record` the match of the pattern a message of
        # such a run must fit (Parser.hpub_runs), take(subject, records) how many of the run it took (the rest is
        # offered one by one).
        self.raw_hs = None
        # And for a run of PUBs with a fast batch's reply (protocol.PUBF): raw_fs(subject, buf, items, start), the
        # index of the first item from `start` on it did not take (the caller offers that one alone to `raw`).
        self.raw_fs = None

    def __repr__(self) -> str:
        q = f" queue={self.queue}" if self.queue else ""
        return f"<Subscription {self.subject}{q} sid={self.sid!r}>"


class SublistResult:
    """Matches of one subject: plain subscriptions, and queue subscriptions grouped by queue name.

    A cached result holds lists, which a new matching subscription is appended to in place (O(1), where a
    copy per subscription made a storm of SUBs on a published subject O(n²)); callers copy what they keep."""

    __slots__ = ("psubs", "qsubs")

    def __init__(self, psubs=(), qsubs=()):
        self.psubs = psubs
        self.qsubs = qsubs

    def __bool__(self) -> bool:
        return bool(self.psubs or self.qsubs)


EMPTY_RESULT = SublistResult()


class _Node:
    __slots__ = ("next", "psubs", "qsubs")

    def __init__(self):
        self.next: _Level | None = None
        self.psubs: dict[Subscription, None] = {}
        self.qsubs: dict[str, dict[Subscription, None]] = {}

    def is_empty(self) -> bool:
        return not self.psubs and not self.qsubs and (self.next is None or self.next.is_empty())


class _Level:
    __slots__ = ("nodes", "pwc", "fwc")

    def __init__(self):
        self.nodes: dict[str, _Node] = {}
        self.pwc: _Node | None = None
        self.fwc: _Node | None = None

    def is_empty(self) -> bool:
        return not self.nodes and self.pwc is None and self.fwc is None


def _add_node(node: _Node, psubs: list, qsubs: list, qindex: dict) -> None:
    if node.psubs:
        psubs.extend(node.psubs)
    for qname, members in node.qsubs.items():
        if not members:
            continue
        slot = qindex.get(qname)
        if slot is None:
            qindex[qname] = len(qsubs)
            qsubs.append(list(members))
        else:
            qsubs[slot].extend(members)


def _match_level(level: _Level | None, tokens: list[str], psubs: list, qsubs: list, qindex: dict) -> None:
    # Same walk as nats-server's matchLevel, so delivery order matches: `>` first, then `*`, then literals.
    pwc = node = None
    for i, token in enumerate(tokens):
        if level is None:
            return
        if level.fwc is not None:
            _add_node(level.fwc, psubs, qsubs, qindex)
        pwc = level.pwc
        if pwc is not None:
            _match_level(pwc.next, tokens[i + 1:], psubs, qsubs, qindex)
        node = level.nodes.get(token)
        level = node.next if node is not None else None
    if node is not None:
        _add_node(node, psubs, qsubs, qindex)
    if pwc is not None:
        _add_node(pwc, psubs, qsubs, qindex)


class Sublist:
    """The subscription trie of one account, with a cache of match results per literal subject.

    `genid` changes on every insert and remove, so callers can keep derived caches of their own.
    """

    def __init__(self):
        self._root = _Level()
        self._cache: dict[str, SublistResult] = {}
        self.count = 0
        self.genid = 0
        self.matches = 0
        self.cache_hits = 0
        self.inserts = 0
        self.removes = 0
        self.on_change: Callable[[], None] | None = None   # called after every insert and remove

    # -- changes ----------------------------------------------------------------------------------------
    def insert(self, sub: Subscription) -> None:
        subject = sub.subject
        tokens = subject.split(".")
        level = self._root
        node = None
        for i, token in enumerate(tokens):
            if not token or (token == FWC and i != len(tokens) - 1):
                raise InvalidSubject(subject)
        for token in tokens:
            if token == PWC:
                node = level.pwc
                if node is None:
                    node = level.pwc = _Node()
            elif token == FWC:
                node = level.fwc
                if node is None:
                    node = level.fwc = _Node()
            else:
                node = level.nodes.get(token)
                if node is None:
                    node = level.nodes[token] = _Node()
            if node.next is None:
                node.next = _Level()
            level = node.next
        if sub.queue is None:
            node.psubs[sub] = None
        else:
            node.qsubs.setdefault(sub.queue, {})[sub] = None
        self.count += 1
        self.inserts += 1
        self._changed()
        self._add_to_cache(subject, sub)

    def remove(self, sub: Subscription) -> bool:
        """Remove `sub`; False if it was not in the trie."""
        subject = sub.subject
        tokens = subject.split(".")
        path: list[tuple[_Level, _Node, str]] = []
        level = self._root
        node = None
        for token in tokens:
            if level is None:
                return False
            if token == PWC:
                node = level.pwc
            elif token == FWC:
                node = level.fwc
            else:
                node = level.nodes.get(token)
            if node is None:
                return False
            path.append((level, node, token))
            level = node.next
        if sub.queue is None:
            if sub not in node.psubs:
                return False
            del node.psubs[sub]
        else:
            members = node.qsubs.get(sub.queue)
            if not members or sub not in members:
                return False
            del members[sub]
            if not members:
                del node.qsubs[sub.queue]
        # Prune empty nodes bottom-up so the trie does not grow with churn.
        for level, node, token in reversed(path):
            if node.psubs or node.qsubs or (node.next is not None and not node.next.is_empty()):
                break
            if token == PWC:
                level.pwc = None
            elif token == FWC:
                level.fwc = None
            else:
                level.nodes.pop(token, None)
        self.count -= 1
        self.removes += 1
        self._changed()
        self._remove_from_cache(subject)
        return True

    def _changed(self) -> None:
        self.genid += 1
        if self.on_change is not None:
            self.on_change()

    def _add_to_cache(self, subject: str, sub: Subscription) -> None:
        # As nats-server: a new subscription is appended to the cached results it matches, rather than those
        # being dropped, so the order of deliveries to overlapping subscriptions is the order of its cache
        # (a subject published before its subscriptions existed delivers in subscription order).
        cache = self._cache
        if not cache:
            return
        literal = subject_is_literal(subject)
        keys = ([subject] if subject in cache else []) if literal else [k for k in cache if matches(subject, k)]
        for key in keys:
            r = cache[key]
            if not literal and len(r.psubs) >= CACHE_RESULT_MAX:
                # A wildcard storm would grow every cached result it matches (memory times the cache size):
                # a big one is dropped and matched afresh when next published to.
                del cache[key]
                continue
            if r is EMPTY_RESULT:
                r = cache[key] = SublistResult([], [])
            if sub.queue is None:
                r.psubs.append(sub)
                continue
            for group in r.qsubs:
                if group[0].queue == sub.queue:
                    group.append(sub)
                    break
            else:
                r.qsubs.append([sub])

    def _remove_from_cache(self, subject: str) -> None:
        cache = self._cache
        if not cache:
            return
        if subject_is_literal(subject):
            cache.pop(subject, None)
        else:
            for key in [k for k in cache if matches(subject, k)]:
                del cache[key]

    # -- queries ----------------------------------------------------------------------------------------
    def match(self, subject: str) -> SublistResult:
        """All subscriptions matching a literal subject (an invalid subject matches nothing)."""
        self.matches += 1
        cached = self._cache.get(subject)
        if cached is not None:
            self.cache_hits += 1
            return cached
        tokens = subject.split(".")
        if "" in tokens:
            return EMPTY_RESULT
        psubs: list = []
        qsubs: list = []
        _match_level(self._root, tokens, psubs, qsubs, {})
        result = SublistResult(psubs, [list(q) for q in qsubs]) if psubs or qsubs else EMPTY_RESULT
        cache = self._cache
        if len(cache) >= CACHE_MAX:
            for key in list(islice(cache, CACHE_EVICT)):
                del cache[key]
        cache[subject] = result
        return result

    def prefix_match(self, tokens: list[str]) -> list[Subscription] | None:
        """The plain subscriptions matching every subject made of `tokens` and one or more tokens more, when
        that depends on `tokens` only: no `*` on the way and no subscription below the prefix other than a `>`
        (and no queue group); otherwise None. A consumer's ack subjects are unique (`$JS.ACK.<stream>.
        <consumer>.` and the sequences) and all end in its `>` subscription: routing them through this answer
        keeps them out of the match cache."""
        level = self._root
        psubs: list[Subscription] = []
        for token in tokens:
            if level.pwc is not None:
                return None
            fwc = level.fwc
            if fwc is not None:
                if fwc.qsubs:
                    return None
                psubs.extend(fwc.psubs)
            node = level.nodes.get(token)
            if node is None or node.next is None:
                return psubs
            level = node.next
        fwc = level.fwc
        if level.pwc is not None or level.nodes or (fwc is not None and fwc.qsubs):
            return None
        if fwc is not None:
            psubs.extend(fwc.psubs)
        return psubs

    def has_interest(self, subject: str) -> bool:
        return bool(self.match(subject))

    def cache_count(self) -> int:
        return len(self._cache)

    def all(self) -> list[Subscription]:
        """Every subscription in the trie."""
        out: list[Subscription] = []

        def walk(level: _Level) -> None:
            nodes: Iterable[_Node] = list(level.nodes.values()) + [n for n in (level.pwc, level.fwc) if n]
            for node in nodes:
                out.extend(node.psubs)
                for members in node.qsubs.values():
                    out.extend(members)
                if node.next is not None:
                    walk(node.next)

        walk(self._root)
        return out

    def stats(self) -> dict:
        """nats-server's SublistStats field names (for /subsz and /varz)."""
        hit_rate = self.cache_hits / self.matches if self.matches else 0.0
        fanouts = [len(r.psubs) + len(r.qsubs) for r in self._cache.values()]
        return {
            "num_subscriptions": self.count,
            "num_cache": len(self._cache),
            "num_inserts": self.inserts,
            "num_removes": self.removes,
            "num_matches": self.matches,
            "cache_hit_rate": hit_rate,
            "max_fanout": max(fanouts, default=0),
            "avg_fanout": sum(fanouts) / len(fanouts) if fanouts else 0.0,
        }
