"""Subject transforms for streams (`subject_transform`, `republish`): map a subject matching a source pattern to
a destination, carrying wildcard tokens over (`*`/`>` in order, `$N`, `{{wildcard(N)}}`) as nats-server does.

The other mapping functions of nats-server (partition, split, slice, left, right, random) are refused with a
clear error rather than mapped wrongly.
"""
from __future__ import annotations

import re

from . import filters

_WILDCARD_FN = re.compile(r"^\{\{\s*[wW]ildcard\s*\(\s*(\d+)\s*\)\s*\}\}$")
_DOLLAR = re.compile(r"^\$(\d+)$")


class TransformError(ValueError):
    pass


class SubjectTransform:
    """A compiled source → destination mapping."""

    def __init__(self, src: str, dest: str):
        src = src or ">"
        if not filters.is_valid_subject(src):
            raise TransformError(f"invalid subject {src}")
        self.src, self.dest = src, dest
        self.stoks = src.split(".")
        self._wild_positions = [i for i, t in enumerate(self.stoks) if t in ("*", ">")]
        self.parts: list[tuple[str, object]] = []
        if not dest:
            self.parts = [("all", None)]
            return
        positional = 0
        for tok in dest.split("."):
            if not tok:
                raise TransformError("invalid mapping destination subject")
            m = _WILDCARD_FN.match(tok) or _DOLLAR.match(tok)
            if m:
                n = int(m.group(1))
                if n < 1 or n > len(self._wild_positions):
                    raise TransformError(f"invalid mapping destination: wildcard index {n} out of range")
                self.parts.append(("wild", n))
            elif tok == ">":
                if self.stoks[-1] != ">":
                    raise TransformError("invalid mapping destination: the source has no '>'")
                self.parts.append(("wild", len(self._wild_positions)))
            elif tok == "*":
                stars = [n for n, i in enumerate(self._wild_positions, 1) if self.stoks[i] == "*"]
                positional += 1
                if positional > len(stars):
                    raise TransformError("invalid mapping destination: not enough wildcards in the source")
                self.parts.append(("wild", stars[positional - 1]))
            elif tok.startswith("{{"):
                raise TransformError(f"mapping function {tok} is not supported by this server")
            else:
                self.parts.append(("lit", tok))

    def match(self, subject: str) -> str | None:
        """The mapped subject, or None if `subject` does not match the source."""
        if not filters.matches(self.src, subject):
            return None
        if self.parts == [("all", None)]:
            return subject
        stoks = subject.split(".")
        wild = []
        for i in self._wild_positions:
            wild.append(".".join(stoks[i:]) if self.stoks[i] == ">" else stoks[i])
        out = []
        for kind, value in self.parts:
            out.append(value if kind == "lit" else wild[value - 1])
        return ".".join(out)
