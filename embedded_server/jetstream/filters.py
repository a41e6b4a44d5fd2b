"""Subject filters as JetStream uses them: validity, matching a literal subject, and comparing two filters.

Streams and consumers compare their subject lists with each other (overlap between streams, consumer filters
inside the stream's subjects, work-queue uniqueness), which the core server's subscription trie does not do.
"""
from __future__ import annotations

from functools import lru_cache

_WHITESPACE = frozenset(" \t\n\r\f")


def is_valid_subject(subject: str) -> bool:
    """A subject, wildcards allowed, as nats-server's IsValidSubject."""
    if not subject:
        return False
    full_wildcard_seen = False
    for token in subject.split("."):
        if not token or full_wildcard_seen:
            return False
        if len(token) > 1:
            if not _WHITESPACE.isdisjoint(token):
                return False
            continue
        if token == ">":
            full_wildcard_seen = True
        elif token in _WHITESPACE:
            return False
    return True


def is_literal(subject: str) -> bool:
    return not any(t in ("*", ">") for t in subject.split("."))


def is_valid_publish_subject(subject: str) -> bool:
    return is_valid_subject(subject) and is_literal(subject)


@lru_cache(maxsize=4096)
def _tokens(subject: str) -> tuple[str, ...]:
    return tuple(subject.split("."))


def matches(filter_subject: str, subject: str) -> bool:
    """Does the literal `subject` match `filter_subject` (which may hold wildcards)?"""
    if filter_subject == subject or filter_subject == ">":
        return True
    if "*" not in filter_subject and ">" not in filter_subject:
        return False
    ftoks = _tokens(filter_subject)
    stoks = subject.split(".")
    for i, ft in enumerate(ftoks):
        if ft == ">":
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ft != "*" and ft != stoks[i]:
            return False
    return len(stoks) == len(ftoks)


def matches_any(filters, subject: str) -> bool:
    for f in filters:
        if matches(f, subject):
            return True
    return False


def is_subset(subject: str, of: str) -> bool:
    """Is every subject matched by `subject` also matched by `of`? (nats-server's subjectIsSubsetMatch)."""
    toks, test = _tokens(subject), _tokens(of)
    for i, t2 in enumerate(test):
        if i >= len(toks):
            return False
        if t2 == ">":
            return True
        t1 = toks[i]
        if t1 == ">":
            return False
        if t1 == "*":
            if t2 != "*":
                return False
            continue
        if t2 != "*" and t1 != t2:
            return False
    return len(toks) == len(test)


def collide(a: str, b: str) -> bool:
    """Could some literal subject match both `a` and `b`? (nats-server's SubjectsCollide)."""
    if a == b:
        return True
    ta, tb = _tokens(a), _tokens(b)
    wa = "*" in ta or ">" in ta
    wb = "*" in tb or ">" in tb
    if not wa and not wb:
        return False
    if not wa:
        return is_subset(a, b)
    if not wb:
        return is_subset(b, a)
    fa, fb = ta[-1] == ">", tb[-1] == ">"
    if not fa and not fb and len(ta) != len(tb):
        return False
    if len(ta) < len(tb) and not fa or len(tb) < len(ta) and not fb:
        return False
    for x, y in zip(ta, tb):
        if x in ("*", ">") or y in ("*", ">"):
            continue
        if x != y:
            return False
    return True
