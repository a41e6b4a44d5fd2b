"""Subject filters as JetStream uses them: validity, matching a literal subject, and comparing two filters.

Streams and consumers compare their subject lists with each other (overlap between streams, consumer filters
inside the stream's subjects, work-queue uniqueness), which the core server's subscription trie does not do.
"""
from __future__ import annotations

from functools import lru_cache

from embedded_server.subjects import (is_valid_publish_subject, is_valid_subject,  # noqa: F401 (re-exported)
                                      subject_is_literal as is_literal, subset_match as is_subset)
from embedded_server.subjects import matches as _core_matches


@lru_cache(maxsize=4096)
def _tokens(subject: str) -> tuple[str, ...]:
    return tuple(subject.split("."))


def matches(filter_subject: str, subject: str) -> bool:
    """Does the literal `subject` match `filter_subject` (which may hold wildcards)?"""
    if filter_subject == subject or filter_subject == ">":
        return True
    if "*" not in filter_subject and ">" not in filter_subject:
        return False
    return _core_matches(filter_subject, subject)


def matches_any(filters, subject: str) -> bool:
    for f in filters:
        if matches(f, subject):
            return True
    return False


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
