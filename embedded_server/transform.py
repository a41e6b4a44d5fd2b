"""Subject transforms and mappings (nats-server's subject_transform.go and the mapping part of accounts.go).

`SubjectTransform(src, dest)` compiles a destination of literal tokens, `$N` / `{{wildcard(N)}}` and the mapping
functions `partition`, `split`, `splitfromleft`, `splitfromright`, `slicefromleft`, `slicefromright`, `left`,
`right`, `random`; it is used by account `mappings`, stream `subject_transform`, republish and sources.
`Mapping(src, dests)` holds weighted destinations and picks one per message, as an account mapping does.
"""
from __future__ import annotations

import random as _random
import re

# Function kinds, in the order nats-server tries them.
NONE, WILDCARD, PARTITION, SPLIT_LEFT, SPLIT_RIGHT, SLICE_LEFT, SLICE_RIGHT, SPLIT, LEFT, RIGHT, RANDOM = range(11)

_FN = {kind: re.compile(r"{{\s*" + pattern + r"\s*\((.*)\)\s*}}") for kind, pattern in (
    (WILDCARD, "[wW]ildcard"), (PARTITION, "[pP]artition"), (SPLIT_LEFT, "[sS]plit[fF]rom[lL]eft"),
    (SPLIT_RIGHT, "[sS]plit[fF]rom[rR]ight"), (SLICE_LEFT, "[sS]lice[fF]rom[lL]eft"),
    (SLICE_RIGHT, "[sS]lice[fF]rom[rR]ight"), (SPLIT, "[sS]plit"), (LEFT, "[lL]eft"), (RIGHT, "[rR]ight"),
    (RANDOM, "[rR]andom"))}
_TRY_ORDER = (WILDCARD, PARTITION, SPLIT_LEFT, SPLIT_RIGHT, SLICE_LEFT, SLICE_RIGHT, RIGHT, LEFT, SPLIT, RANDOM)
_MAPPING_FNS = (PARTITION, WILDCARD, SPLIT_LEFT, SPLIT_RIGHT, SLICE_LEFT, SLICE_RIGHT, SPLIT, LEFT, RIGHT, RANDOM)
_COMMA = re.compile(r",\s*")
_MAX_INT32 = 2**31 - 1

INVALID_DEST = "invalid mapping destination"
NOT_ENOUGH_ARGS = f"{INVALID_DEST}: not enough arguments passed to the function"
TOO_MANY_ARGS = f"{INVALID_DEST}: too many arguments passed to the function"
INVALID_ARG = f"{INVALID_DEST}: function argument is invalid or in the wrong format"
UNKNOWN_FN = f"{INVALID_DEST}: unknown function"
OUT_OF_RANGE = f"{INVALID_DEST}: wildcard index out of range"
INVALID_TRANSFORM = f"{INVALID_DEST}: invalid transform"
NOT_ALL_WILDCARDS = f"{INVALID_DEST}: not using all of the token wildcard(s)"
ONLY_WILDCARD_FOR_IMPORT = f"{INVALID_DEST}: the only mapping function allowed for import transforms is {{{{Wildcard()}}}}"


class TransformError(ValueError):
    """A source or destination nats-server refuses; the text is nats-server's error."""


def _dest_error(reason: str, token: str = "") -> TransformError:
    return TransformError(f"{reason} in {token}" if token else reason)


def _subject_info(subject: str) -> tuple[bool, list[str], int, bool]:
    """nats-server's subjectInfo: (valid, tokens, number of '*', has '>')."""
    if not subject:
        return False, [], 0, False
    tokens = subject.split(".")
    pwcs, fwc = 0, False
    for i, tok in enumerate(tokens):
        if not tok or fwc or any(c in tok for c in " \t\r\n"):
            return False, tokens, 0, False
        if tok == "*":
            pwcs += 1
        elif tok == ">":
            if i != len(tokens) - 1:
                return False, tokens, 0, False
            fwc = True
    return True, tokens, pwcs, fwc


def _atoi(text: str) -> int:
    text = text.strip(" ")
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(text)
    return int(text)


def _two_args(token: str, args: list[str]) -> None:
    if len(args) < 2:
        raise _dest_error(NOT_ENOUGH_ARGS, token)
    if len(args) > 2:
        raise _dest_error(TOO_MANY_ARGS, token)


def _index_int_args(token: str, args: list[str], kind: int) -> tuple:
    _two_args(token, args)
    try:
        index = _atoi(args[0])
        value = _atoi(args[1])
    except ValueError:
        raise _dest_error(INVALID_ARG, token) from None
    if not -2**31 <= value <= _MAX_INT32:
        raise _dest_error(INVALID_ARG, token)
    return kind, [index], value, ""


def _fn_args(kind: int, token: str) -> list[str] | None:
    m = _FN[kind].search(token)
    return _COMMA.split(m.group(1)) if m else None


def index_placeholders(token: str) -> tuple[int, list[int], int, str]:
    """nats-server's indexPlaceHolders: (function kind, wildcard indexes, int argument, string argument)."""
    n = len(token)
    if n > 1 and token[0] == "$":
        try:
            return WILDCARD, [_atoi(token[1:])], -1, ""
        except ValueError:
            return NONE, [-1], -1, ""
    if n > 4 and token.startswith("{{") and token.endswith("}}"):
        for kind in _TRY_ORDER:
            args = _fn_args(kind, token)
            if args is None:
                continue
            if kind == WILDCARD:
                if len(args) == 1 and args[0] == "":
                    raise _dest_error(NOT_ENOUGH_ARGS, token)
                if len(args) > 1:
                    raise _dest_error(TOO_MANY_ARGS, token)
                try:
                    return WILDCARD, [_atoi(args[0])], -1, ""
                except ValueError:
                    raise _dest_error(INVALID_ARG, token) from None
            if kind == PARTITION:
                try:
                    buckets = _atoi(args[0])
                    indexes = [_atoi(a) for a in args[1:]]
                except ValueError:
                    raise _dest_error(INVALID_ARG, token) from None
                if buckets > _MAX_INT32:
                    raise _dest_error(INVALID_ARG, token)
                return PARTITION, indexes, buckets, ""
            if kind == SPLIT:
                _two_args(token, args)
                try:
                    index = _atoi(args[0])
                except ValueError:
                    raise _dest_error(INVALID_ARG, token) from None
                if " " in args[1] or "." in args[1]:
                    raise _dest_error(INVALID_ARG, token)
                return SPLIT, [index], -1, args[1]
            if kind == RANDOM:
                if len(args) != 1:
                    raise _dest_error(NOT_ENOUGH_ARGS, token)
                try:
                    top = _atoi(args[0])
                except ValueError:
                    raise _dest_error(INVALID_ARG, token) from None
                if top > _MAX_INT32:
                    raise _dest_error(INVALID_ARG, token)
                return RANDOM, [], top, ""
            return _index_int_args(token, args, kind)
        raise _dest_error(UNKNOWN_FN, token)
    return NONE, [-1], -1, ""


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


class SubjectTransform:
    """A compiled source → destination transform (nats-server's subjectTransform). `strict` is for imports:
    only wildcard functions, and every source wildcard used."""

    def __init__(self, src: str, dest: str, strict: bool = False):
        src = src or ">"
        self.src, self.dest = src, dest
        sv, stokens, npwcs, has_fwc = _subject_info(src)
        dv, dtokens, dnpwcs, d_has_fwc = _subject_info(dest)
        if not sv or not dv or dnpwcs > 0 or has_fwc != d_has_fwc:
            raise TransformError("invalid subject")
        self.stoks, self.dtoks = stokens, dtokens
        self.kinds: list[int] = []
        self.indexes: list[list[int]] = []
        self.ints: list[int] = []
        self.strs: list[str] = []
        if npwcs > 0 or has_fwc:
            star_at = {}
            for i, tok in enumerate(stokens):
                if tok == "*":
                    star_at[len(star_at) + 1] = i
            used = 0
            for tok in dtokens:
                kind, wild, num, text = index_placeholders(tok)
                if strict and kind not in (NONE, WILDCARD):
                    raise _dest_error(ONLY_WILDCARD_FOR_IMPORT, tok)
                if kind == NONE:
                    self._add(NONE, [-1], -1, "")
                elif kind == RANDOM:
                    self._add(RANDOM, [], num, "")
                else:
                    used += len(wild)
                    positions = []
                    for w in wild:
                        if w > npwcs:
                            raise _dest_error(OUT_OF_RANGE, f"{tok}: [{w}]")
                        positions.append(star_at.get(w, 0))
                    self._add(kind, positions, num, text)
            if strict and used < npwcs:
                raise _dest_error(NOT_ALL_WILDCARDS, dest)
        else:
            for tok in dtokens:
                kind, wild, num, text = index_placeholders(tok)
                if kind == NONE:
                    self._add(NONE, [-1], -1, "")
                elif kind in (RANDOM, PARTITION):
                    self._add(kind, [], num, "")
                else:
                    raise _dest_error(OUT_OF_RANGE, tok)
        self._literal = all(k == NONE for k in self.kinds) and not d_has_fwc
        self._identity = src == ">" and dest == ">"

    def _add(self, kind: int, indexes: list[int], num: int, text: str) -> None:
        self.kinds.append(kind)
        self.indexes.append(indexes)
        self.ints.append(num)
        self.strs.append(text)

    def match(self, subject: str) -> str | None:
        """The transformed subject, or None when `subject` does not match the source."""
        if self._identity:
            return subject
        tokens = subject.split(".")
        if not _is_subset_match(tokens, self.stoks):
            return None
        return self.transform_tokens(tokens)

    def transform(self, subject: str) -> str:
        return self.transform_tokens(subject.split("."))

    def transform_tokens(self, tokens: list[str]) -> str:
        if self._literal:
            return self.dest
        out: list[str] = []
        last = len(self.kinds) - 1
        for i, kind in enumerate(self.kinds):
            if kind == NONE:
                if self.dtoks[i] == ">":
                    break
                out.append(self.dtoks[i])
            elif kind == WILDCARD:
                idx = self.indexes[i]
                out.append(tokens[idx[0]] if idx and idx[0] < len(tokens) else "")
            elif kind == PARTITION:
                buckets = self.ints[i]
                if self.indexes[i]:
                    key = "".join(_token(tokens, j) for j in self.indexes[i])
                else:
                    key = ".".join(tokens)
                out.append(str(_fnv32a(key.encode()) % buckets) if buckets else "0")
            elif kind == RANDOM:
                top = self.ints[i]
                out.append(str(_random.getrandbits(31) % top) if top else "0")
            else:
                out.append(self._apply(kind, _token(tokens, self.indexes[i][0]), self.ints[i], self.strs[i]))
            if i < last:
                out.append(".")
        if self.dtoks[-1] == ">":
            out.append(".".join(tokens[len(self.stoks) - 1:]))
        return "".join(out)

    @staticmethod
    def _apply(kind: int, tok: str, n: int, sep: str) -> str:
        size = len(tok)
        if kind == SPLIT:
            parts = tok.split(sep)
            out = []
            for j, part in enumerate(parts):
                if part:
                    out.append(part)
                if j < len(parts) - 1 and parts[j + 1] and not (j == 0 and not part):
                    out.append(".")
            return "".join(out)
        if not 0 < n < size:
            return tok
        if kind == SPLIT_LEFT:
            return f"{tok[:n]}.{tok[n:]}"
        if kind == SPLIT_RIGHT:
            return f"{tok[:size - n]}.{tok[size - n:]}"
        if kind == LEFT:
            return tok[:n]
        if kind == RIGHT:
            return tok[size - n:]
        if kind == SLICE_LEFT:
            pieces = [tok[j:j + n] for j in range(0, size, n)]
            return ".".join(pieces)
        # SLICE_RIGHT
        rem = size % n
        pieces = ([tok[:rem]] if rem else []) + [tok[j:j + n] for j in range(rem, size, n)]
        return ".".join(pieces)


def _token(tokens: list[str], i: int) -> str:
    return tokens[i] if 0 <= i < len(tokens) else ""


def _is_subset_match(tokens: list[str], pattern: list[str]) -> bool:
    for i, p in enumerate(pattern):
        if i >= len(tokens):
            return False
        if p == ">":
            return True
        if p != "*" and p != tokens[i]:
            return False
    return len(tokens) == len(pattern)


def validate_mapping(src: str, dest: str) -> None:
    """nats-server's ValidateMapping (account mappings): the destination's tokens, then the transform itself."""
    if not dest:
        return
    after_fwc = False
    for tok in dest.split("."):
        if not tok or after_fwc:
            raise _dest_error(INVALID_TRANSFORM, tok)
        if len(tok) > 4 and tok.startswith("{{") and tok.endswith("}}"):
            if not any(_FN[k].search(tok) for k in _MAPPING_FNS):
                raise _dest_error(UNKNOWN_FN, tok)
            continue
        if tok == ">":
            after_fwc = True
        elif any(c in tok for c in "\t\n\f\r "):
            raise TransformError(INVALID_TRANSFORM)
    SubjectTransform(src, dest)


def tokenize_wildcards(subject: str) -> str:
    """nats-server's transformTokenize: foo.*.* → foo.$1.$2 (the implicit destination of the source itself)."""
    out, n = [], 0
    for tok in subject.split("."):
        if tok == "*":
            n += 1
            out.append(f"${n}")
        else:
            out.append(tok)
    return ".".join(out)


class Mapping:
    """One account mapping: a source and weighted destinations (cumulative weights up to 100). Cluster-scoped
    destinations are kept but, on a server without a cluster name, never chosen (nats-server falls back to
    the destinations without a cluster)."""

    def __init__(self, src: str, dests: list[tuple[str, int, str]]):
        """`dests`: (destination, weight 0..100, cluster)."""
        from embedded_server.subjects import is_valid_subject
        if not is_valid_subject(src):
            raise TransformError("invalid subject")
        self.src = src
        self.wild = any(t in ("*", ">") for t in src.split("."))
        self.stoks = src.split(".")
        seen = set()
        plain: list[list] = []
        clustered: dict[str, list[list]] = {}
        totals: dict[str, int] = {}
        for dest, weight, cluster in dests:
            if dest in seen:
                raise TransformError(f'duplicate entry for "{dest}"')
            seen.add(dest)
            if weight > 100:
                raise TransformError("individual weights need to be <= 100")
            totals[cluster] = totals.get(cluster, 0) + weight
            if totals[cluster] > 100:
                raise TransformError("total weight needs to be <= 100")
            validate_mapping(src, dest)
            entry = [SubjectTransform(src, dest), weight]
            (clustered.setdefault(cluster, []) if cluster else plain).append(entry)
        self.dests = self._cumulative(plain, src in seen)
        self.cluster_dests = {c: self._cumulative(d, src in seen) for c, d in clustered.items()}
        self.entries = [(d, w, c) for d, w, c in dests]

    def _cumulative(self, dests: list[list], have_src: bool) -> list[list]:
        total = sum(w for _, w in dests)
        if total != 100 and not have_src:
            dest = tokenize_wildcards(self.src) if self.wild else self.src
            dests.append([SubjectTransform(self.src, dest), 100 if not dests else 100 - total])
        dests.sort(key=lambda d: d[1])
        acc = 0
        for d in dests:
            d[1] += acc
            acc = d[1]
        return dests

    def matches(self, subject: str, tokens: list[str]) -> bool:
        return subject == self.src if not self.wild else _is_subset_match(tokens, self.stoks)

    def select(self, subject: str, tokens: list[str]) -> str:
        dests = self.dests
        if len(dests) == 1 and dests[0][1] == 100:
            chosen = dests[0][0]
        else:
            w = _random.randrange(100)
            chosen = next((tr for tr, cum in dests if w < cum), None)
            if chosen is None:
                return subject
        return chosen.transform_tokens(tokens if self.wild else [])


class AccountMappings:
    """The mappings of one account in the order they were added; `map(subject)` → the subject to route."""

    def __init__(self, mappings: list[Mapping]):
        self.mappings = mappings

    def map(self, subject: str) -> str:
        tokens = subject.split(".")
        for m in self.mappings:
            if m.matches(subject, tokens):
                return m.select(subject, tokens)
        return subject
