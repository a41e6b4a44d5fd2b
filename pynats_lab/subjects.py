"""Subjects as the lab checks them before anything is sent: one that no server would route (`orders..x`,
`orders.*` to publish to) is refused in one line, and two stream subject filters can be tested for overlap."""
from __future__ import annotations

from .errors import LabError


def check_subject(subject: object, what: str = "subject", *, wildcards: bool = False) -> str:
    """`subject` if NATS can route it, else a LabError naming `what` and the problem. Publishing takes no
    wildcards; subscriptions and filters may use `*` for a token and `>` as the last one."""
    if not isinstance(subject, str) or not subject:
        raise LabError(f"{what} must be a non-empty string like orders.new, not {subject!r}")
    if any(ch.isspace() for ch in subject):
        raise LabError(f"invalid {what} {subject!r}: no spaces or tabs in a subject")
    tokens = subject.split(".")
    if "" in tokens:
        raise LabError(f"invalid {what} {subject!r}: an empty token (a leading, trailing or double dot)")
    for i, token in enumerate(tokens):
        if token in ("*", ">"):
            if not wildcards:
                raise LabError(f"invalid {what} {subject!r}: wildcards (* and >) are for subscribing, "
                               "not for publishing")
            if token == ">" and i != len(tokens) - 1:
                raise LabError(f"invalid {what} {subject!r}: > must be the last token")
    return subject


def subjects_overlap(a: str, b: str) -> bool:
    """Whether some subject matches both filters (wildcards on either side)."""
    x, y = a.split("."), b.split(".")
    for i in range(min(len(x), len(y))):
        if x[i] == ">" or y[i] == ">":
            return True
        if x[i] != y[i] and "*" not in (x[i], y[i]):
            return False
    return len(x) == len(y)
