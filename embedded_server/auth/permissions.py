"""Publish/subscribe permissions: what a user may do, and the per-connection checker the hot path asks.

As nats-server: `allow`/`deny` lists (deny wins), queue-qualified subscribe entries (`"foo v1"`),
`allow_responses` (publish to the reply subjects of requests this client received), a per-subject cache of
publish decisions, and a delivery-time filter for wildcard subscriptions that overlap a subscribe deny.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

DEFAULT_ALLOW_RESPONSE_MAX_MSGS = 1
DEFAULT_ALLOW_RESPONSE_EXPIRATION = 120.0  # seconds (2m)
_MAX_PUB_CACHE = 128  # nats-server's maxPermCacheSize
_PRUNE = 32
_MAX_DENY_CACHE = 256
_REPLY_PRUNE_COUNT = 4096
_REPLY_PRUNE_SECONDS = 1.0


@dataclass
class SubjectPermission:
    """`allow` None means "everything"; an empty allow list (set by allow_responses) means "nothing"."""
    allow: list[str] | None = None
    deny: list[str] | None = None


@dataclass
class ResponsePermission:
    max_msgs: int = DEFAULT_ALLOW_RESPONSE_MAX_MSGS
    expires: float = DEFAULT_ALLOW_RESPONSE_EXPIRATION  # seconds; <= 0 means no expiry


@dataclass
class Permissions:
    publish: SubjectPermission | None = None
    subscribe: SubjectPermission | None = None
    response: ResponsePermission | None = None

    def validated(self) -> "Permissions":
        """nats-server's validateResponsePermissions: responses imply a publish allow list (empty if unset)."""
        if self.response is not None:
            if self.publish is None:
                self.publish = SubjectPermission()
            if self.publish.allow is None:
                self.publish.allow = []
            if self.response.max_msgs == 0:
                self.response.max_msgs = DEFAULT_ALLOW_RESPONSE_MAX_MSGS
            if self.response.expires == 0:
                self.response.expires = DEFAULT_ALLOW_RESPONSE_EXPIRATION
        return self


# -- subjects ---------------------------------------------------------------------------------------------------
def is_valid_subject(subject: str) -> bool:
    """nats-server's IsValidSubject: non-empty tokens, no whitespace, `>` only as the last token."""
    if not subject:
        return False
    tokens = subject.split(".")
    for i, t in enumerate(tokens):
        if not t:
            return False
        if t == ">" and i != len(tokens) - 1:
            return False
        if any(c in t for c in " \t\n\r\f"):
            return False
    return True


def split_subject_queue(entry: str) -> tuple[str, str | None]:
    """A subscribe permission entry "subject [queue]"; ValueError with nats-server's text if malformed."""
    parts = entry.split()
    if not parts or len(parts) > 2 or not is_valid_subject(parts[0]) or (
            len(parts) == 2 and not is_valid_subject(parts[1])):
        raise ValueError(f"invalid subject-queue {_go_quote(entry)}")
    return parts[0], parts[1] if len(parts) == 2 else None


def check_subjects(subjects: list[str], allow_queue: bool) -> None:
    """nats-server's checkPermSubjectArray, with its error texts."""
    for s in subjects:
        if is_valid_subject(s):
            continue
        if not allow_queue:
            raise ValueError(f"subject {_go_quote(s)} is not a valid subject")
        parts = s.split()
        if len(parts) != 2:
            raise ValueError(f"subject {_go_quote(s)} is not a valid subject")
        if not is_valid_subject(parts[0]):
            raise ValueError(f"subject {_go_quote(parts[0])} is not a valid subject")
        if not is_valid_subject(parts[1]):
            raise ValueError(f"queue {_go_quote(parts[1])} is not a valid queue")


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pattern_matches(pattern: list[str], tokens: list[str]) -> bool:
    """Does a permission pattern match a subject whose tokens count as literals (as a sublist lookup does)?"""
    n = len(tokens)
    for i, p in enumerate(pattern):
        if p == ">":
            return n > i
        if i >= n or (p != "*" and p != tokens[i]):
            return False
    return n == len(pattern)


def subjects_collide(a: str, b: str) -> bool:
    """Could some literal subject match both a and b (nats-server's SubjectsCollide)?"""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == ">" or y == ">":
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != y and x != "*" and y != "*":
            return False
    return True


def _queue_matches(queue: str, queues: list[str]) -> bool:
    """nats-server's queueMatches: a literal queue name, or a wildcard queue pattern that covers it."""
    qt = queue.split(".")
    for q in queues:
        if q == queue:
            return True
        if ("*" in q.split(".") or ">" in q.split(".")) and _subset_match(qt, q.split(".")):
            return True
    return False


def _subset_match(tokens: list[str], test: list[str]) -> bool:
    for i, t2 in enumerate(test):
        if i >= len(tokens) or not t2:
            return False
        if t2 == ">":
            return True
        t1 = tokens[i]
        if not t1 or t1 == ">":
            return False
        if t1 == "*":
            if t2 != "*":
                return False
            continue
        if t2 != "*" and t1 != t2:
            return False
    return len(tokens) == len(test)


class _Patterns:
    """A list of permission entries, split into plain subjects and queue-qualified ones."""

    def __init__(self, entries: list[str], queues: bool):
        self.plain: list[list[str]] = []
        self.queued: list[tuple[list[str], str]] = []
        self.entries = list(entries)
        for e in entries:
            if queues:
                try:
                    subject, queue = split_subject_queue(e)
                except ValueError:
                    continue
            else:
                subject, queue = e, None
                if not is_valid_subject(e):
                    parts = e.split()
                    if not parts or not is_valid_subject(parts[0]):
                        continue
                    subject = parts[0]
            if queue is None:
                self.plain.append(subject.split("."))
            else:
                self.queued.append((subject.split("."), queue))

    def match(self, tokens: list[str]) -> tuple[bool, list[str]]:
        """(any plain entry matches, queue names of the queue entries that match). A subject with an empty token
        matches nothing, as in nats-server's sublist: an allow list refuses it, a deny list lets it through."""
        if "" in tokens:
            return False, []
        plain = any(pattern_matches(p, tokens) for p in self.plain)
        queues = [q for p, q in self.queued if pattern_matches(p, tokens)]
        return plain, queues


class ClientPermissions:
    """The permissions of one connection, compiled for cheap checks on every PUB, SUB and delivery."""

    __slots__ = ("perms", "pub_allow", "pub_deny", "sub_allow", "sub_deny", "resp", "pub_cache", "wire_cache",
                 "replies", "_replies_since_prune", "_last_prune", "deny_filter", "_deny_cache")

    def __init__(self, perms: Permissions):
        self.perms = perms
        pub, sub = perms.publish, perms.subscribe
        self.pub_allow = _Patterns(pub.allow, False) if pub and pub.allow is not None else None
        self.pub_deny = _Patterns(pub.deny, False) if pub and pub.deny else None
        self.sub_allow = _Patterns(sub.allow, True) if sub and sub.allow else None
        self.sub_deny = _Patterns(sub.deny, True) if sub and sub.deny else None
        self.resp = perms.response
        self.pub_cache: dict[str, bool] = {}
        self.wire_cache: dict[bytes, bool] = {}  # the same decisions keyed by the subject as received
        self.replies: dict[str, list] = {}  # reply subject -> [received at, responses sent]
        self._replies_since_prune = 0
        self._last_prune = time.monotonic()
        self.deny_filter = False  # set once a subscription can overlap a subscribe deny entry
        self._deny_cache: dict[tuple[str, str | None], bool] = {}

    # -- publish --------------------------------------------------------------------------------
    @property
    def checks_publish(self) -> bool:
        return self.pub_allow is not None or self.pub_deny is not None

    def can_publish(self, subject: str) -> bool:
        """May this client publish to `subject`? Cached per subject, except decisions made by responses."""
        allowed = self.pub_cache.get(subject)
        if allowed is None:
            allowed = self._remember(self.pub_cache, subject, self._static_publish(subject))
        if not allowed and self.resp is not None:
            return self._response_allowed(subject)
        return allowed

    def can_publish_wire(self, subject: bytes) -> bool:
        """can_publish for the subject bytes of a PUB: a cache hit costs one dict lookup, no decoding."""
        allowed = self.wire_cache.get(subject)
        if allowed is None:
            text = subject.decode("utf-8", "surrogateescape")
            allowed = self._remember(self.wire_cache, subject, self._static_publish(text))
            if not allowed and self.resp is not None:
                return self._response_allowed(text)
            return allowed
        if not allowed and self.resp is not None:
            return self._response_allowed(subject.decode("utf-8", "surrogateescape"))
        return allowed

    def _static_publish(self, subject: str) -> bool:
        """The allow/deny lists' decision (what nats-server caches per subject)."""
        if not self.checks_publish:
            return True
        tokens = subject.split(".")
        allowed = True
        if self.pub_allow is not None:
            allowed = self.pub_allow.match(tokens)[0]
        if allowed and self.pub_deny is not None:
            allowed = not self.pub_deny.match(tokens)[0]
        return allowed

    @staticmethod
    def _remember(cache: dict, key, allowed: bool) -> bool:
        cache[key] = allowed
        if len(cache) > _MAX_PUB_CACHE:
            for old in list(itertools.islice(cache, _PRUNE)):
                del cache[old]
        return allowed

    def _response_allowed(self, subject: str) -> bool:
        entry = self.replies.get(subject)
        if entry is None:
            return False
        entry[1] += 1
        if self.resp.max_msgs > 0 and entry[1] > self.resp.max_msgs:
            del self.replies[subject]
            return False
        if self.resp.expires > 0 and time.monotonic() - entry[0] > self.resp.expires:
            del self.replies[subject]
            return False
        return True

    def track_reply(self, reply: str | bytes) -> None:
        """A message with this reply subject is being delivered to the client: it may answer (allow_responses)."""
        if self.resp is None or not reply:
            return
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "surrogateescape")
        if self.can_publish(reply):
            return
        now = time.monotonic()
        self.replies[reply] = [now, 0]
        self._replies_since_prune += 1
        if self._replies_since_prune > _REPLY_PRUNE_COUNT or now - self._last_prune > _REPLY_PRUNE_SECONDS:
            mm, ttl = self.resp.max_msgs, self.resp.expires
            for key, (t, n) in list(self.replies.items()):
                if (mm > 0 and n >= mm) or (ttl > 0 and now - t > ttl):
                    del self.replies[key]
            self._replies_since_prune = 0
            self._last_prune = now

    # -- subscribe ------------------------------------------------------------------------------
    def can_subscribe(self, subject: str, queue: str | None = None) -> bool:
        """nats-server's canSubscribe; also arms the delivery filter when a wildcard or queue subscription
        could receive subjects a deny entry forbids."""
        tokens = subject.split(".")
        allowed = True
        if self.sub_allow is not None:
            plain, queues = self.sub_allow.match(tokens)
            allowed = plain
            if queue and queues:
                allowed = _queue_matches(queue, queues)
        if allowed and self.sub_deny is not None:
            plain, queues = self.sub_deny.match(tokens)
            allowed = not plain
            if allowed and queue and queues:
                allowed = not _queue_matches(queue, queues)
        if allowed and not self.deny_filter and self.sub_deny is not None and (
                queue or "*" in tokens or ">" in tokens):
            if any(subjects_collide(e.split()[0], subject) for e in self.sub_deny.entries if e.split()):
                self.deny_filter = True
        return allowed

    def delivery_denied(self, subject: str | bytes, queue: str | None) -> bool:
        """At delivery: is this subject denied to a subscription that was allowed by a wider pattern?"""
        if not self.deny_filter:
            return False
        if isinstance(subject, bytes):
            subject = subject.decode("utf-8", "surrogateescape")
        key = (subject, queue)
        denied = self._deny_cache.get(key)
        if denied is None:
            plain, queues = self.sub_deny.match(subject.split("."))
            denied = plain or bool(queue and queues and _queue_matches(queue, queues))
            if len(self._deny_cache) >= _MAX_DENY_CACHE:
                for k in list(itertools.islice(self._deny_cache, _PRUNE)):
                    del self._deny_cache[k]
            self._deny_cache[key] = denied
        return denied


def compile_permissions(perms: Permissions | None) -> ClientPermissions | None:
    return ClientPermissions(perms) if perms is not None else None
