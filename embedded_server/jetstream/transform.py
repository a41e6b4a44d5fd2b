"""Subject transforms for streams (`subject_transform`, `republish`, sources' `subject_transforms`): the core
transform (embedded_server/transform.py, every mapping function nats-server has), where an empty destination
means "no transform" as in nats-server's NewSubjectTransform.
"""
from __future__ import annotations

from embedded_server.transform import SubjectTransform as _Transform
from embedded_server.transform import TransformError

from . import filters

__all__ = ["SubjectTransform", "TransformError"]


class SubjectTransform:
    """A compiled source → destination mapping; `match(subject)` is the mapped subject or None."""

    def __init__(self, src: str, dest: str):
        self.src, self.dest = src or ">", dest
        self._tr = _Transform(src, dest) if dest else None
        if self._tr is None and not filters.is_valid_subject(self.src):
            raise TransformError("invalid subject")

    def match(self, subject: str) -> str | None:
        if self._tr is None:
            return subject if filters.matches(self.src, subject) else None
        return self._tr.match(subject)
