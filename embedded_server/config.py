"""nats-server's configuration file format: parsing text into maps, arrays and scalars.

Follows nats-server's conf package rule for rule (its quirks included): `key: value`, `key = value`,
`key value`, maps, arrays, `#`/`//` comments, `include`, `$VARIABLES` (block scoped, then the environment),
sizes (`1K` = 1000, `1KB` = 1024), datetimes, booleans. What the keys mean is the options' business.
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Any, NamedTuple

from embedded_server import gotime

__all__ = ["ConfigError", "ConfMap", "ConfList", "Pos", "parse", "parse_file", "parse_duration"]

_EOF = ""
_KEY_SEPARATORS = "=:"
_NUMBER_SUFFIXES = "kKmMgGtTpPeE"
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_SIZE_MULTIPLIERS = {"": 1}
for _i, _letter in enumerate("kmgtpe", start=1):
    _SIZE_MULTIPLIERS[_letter] = 1000 ** _i
    for _tail in ("b", "i", "ib"):
        _SIZE_MULTIPLIERS[_letter + _tail] = 1024 ** _i
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_BCRYPT_PREFIX = "2a$"


class Pos(NamedTuple):
    """Where a key or value was written: file ('' for a string), line (from 1) and column as nats-server's
    lexer counts it: from 0 on a file's first line, from 1 on the others (its line start is the newline)."""
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file or '<config>'}:{self.line}:{self.col}"


class ConfigError(ValueError):
    """A configuration that cannot be used; str() reads `file:line:col: reason` like nats-server's errors."""

    def __init__(self, reason: str, pos: Pos | None = None):
        super().__init__(reason)
        self.reason = reason
        self.pos = pos

    def __str__(self) -> str:
        return f"{self.pos}: {self.reason}" if self.pos else self.reason


class ConfMap(dict):
    """A map of the config. `positions[key]` says where each key was written; `used` holds the keys that
    were referenced as `$variables` (nats-server does not call those unknown fields)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.positions: dict[str, Pos] = {}
        self.used: set[str] = set()

    def pos(self, key: str) -> Pos | None:
        return self.positions.get(key)


class ConfList(list):
    """An array of the config; `positions[i]` says where element i was written."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.positions: list[Pos] = []


class _Drop:
    """A value nats-server silently discards (an integer with an unknown size suffix such as `1kbb`)."""


_DROP = _Drop()


def parse(text: str, *, filename: str = "", env: dict[str, str] | None = None) -> ConfMap:
    """Parse configuration text. Includes resolve relative to `filename`'s folder (or the current one)."""
    return _Parser(text, filename, os.environ if env is None else env, set()).parse()


def parse_file(path: str | os.PathLike, *, env: dict[str, str] | None = None) -> ConfMap:
    """Parse a configuration file, as `nats-server -c path` does."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"error opening config file: {e.strerror or e}: {path}") from None
    return _Parser(text, path, os.environ if env is None else env, set()).parse()


class _Parser:
    """A recursive-descent reader that accepts exactly what nats-server's state-machine lexer accepts."""

    def __init__(self, text: str, filename: str, env, env_refs: set[str]):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.file = filename
        self.env = env
        self.env_refs = env_refs
        self.line = 1
        self.line_start = 0  # offset of the first character of the current line
        self.scopes: list[Any] = []  # maps and arrays being built, innermost last: variable scoping

    # -- characters -------------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.s[j] if j < self.n else _EOF

    def advance(self) -> str:
        c = self.s[self.i] if self.i < self.n else _EOF
        if c:
            self.i += 1
            if c == "\n":
                self.line += 1
                self.line_start = self.i
        return c

    def here(self) -> Pos:
        return Pos(self.file, self.line, self.i - self.line_start + (self.line > 1))

    def pos_at(self, offset: int) -> Pos:
        line = self.s.count("\n", 0, offset) + 1
        start = self.s.rfind("\n", 0, offset) + 1
        return Pos(self.file, line, offset - start + (line > 1))

    def error(self, reason: str, pos: Pos | None = None) -> ConfigError:
        return ConfigError(reason, pos or self.here())

    @staticmethod
    def show(c: str) -> str:
        return {"": "EOF", "\n": "\\n", "\r": "\\r"}.get(c, c)

    def skip_spaces(self, newlines: bool) -> None:
        while True:
            c = self.peek()
            if c in (" ", "\t") or (newlines and c.isspace() and c):
                self.advance()
            else:
                return

    def at_comment(self) -> bool:
        c = self.peek()
        return c == "#" or (c == "/" and self.peek(1) == "/")

    def skip_comment(self) -> None:
        while self.peek() not in ("\n", "\r", _EOF):
            self.advance()

    # -- structure --------------------------------------------------------------------------------
    def parse(self) -> ConfMap:
        top = ConfMap()
        self.scopes.append(top)
        self.top_level(top, in_block=False)
        return top

    def top_level(self, top: ConfMap, in_block: bool) -> bool:
        """Keys at the top, or inside the `{ ... }` that may wrap a whole file (JSON style).

        Returns True when the file ended (nats-server stops quietly at the end of the file wherever a key
        could start, even inside unclosed top-level braces)."""
        while True:
            self.skip_spaces(newlines=True)
            c = self.peek()
            if c == _EOF:
                return True
            if self.at_comment():
                self.skip_comment()
                continue
            if c == "/":
                raise self.error("Unexpected EOF.")
            if c == "{":
                self.advance()
                if self.top_level(top, in_block=True):
                    return True
                if in_block and self.block_end():
                    return False
                continue
            if c == "}" and in_block:
                self.advance()
                return False
            if self.key_value(top, in_map=False) is None:
                return True
            if self.value_end(in_block):
                return False

    def value_end(self, in_block: bool) -> bool:
        """After a top-level (or block-level) value. Returns True when a block's closing brace ended it."""
        while True:
            c = self.peek()
            if self.at_comment():
                self.skip_comment()
            elif c in (" ", "\t", "/"):
                self.advance()
            elif c in ("\n", "\r", ";", ","):
                self.advance()
                return False
            elif c == _EOF and not in_block:
                return False
            elif c == "}":
                self.advance()
                return in_block
            else:
                where = "block" if in_block else "top"
                raise self.error(f"Expected a {where}-level value to end with a new line, comment or EOF, "
                                 f"but got '{self.show(c)}' instead.")

    def block_end(self) -> bool:
        """After a nested `{ ... }` inside a top-level block. Returns True when the enclosing block ends too."""
        while True:
            c = self.peek()
            if self.at_comment():
                self.skip_comment()
                return False
            elif c and c in " \t\n\r/":
                self.advance()
            elif c in (";", ","):
                self.advance()
                return False
            elif c == "}":
                self.advance()
                return True
            else:
                raise self.error(f"Expected a block-level to end with a '}}', but got '{self.show(c)}' instead.")

    def read_key(self, in_map: bool) -> tuple[str | None, Pos, bool]:
        """Returns (key, where, is_include_keyword); key None at an opening quote that ends the file."""
        c = self.peek()
        if c and c in _KEY_SEPARATORS:
            raise self.error(f"Unexpected key separator '{c}'" + ("." if in_map else ""))
        pos = self.here()
        if c in ('"', "'"):
            self.advance()
            start = self.i
            while self.peek() != c:
                if self.peek() == _EOF:
                    if self.i == start and not in_map:
                        return None, pos, False  # nats-server ends the file quietly here
                    if in_map:
                        kind = "double quoted" if c == '"' else "quoted"
                        raise self.error(f"Unexpected EOF processing {kind} map key.")
                    raise self.error("Unexpected EOF.")
                self.advance()
            key = self.s[start:self.i]
            self.advance()
            return key, pos, False
        start = self.i
        while True:
            c = self.peek()
            if c == _EOF:
                if in_map:
                    raise self.error("Unexpected EOF processing map key.")
                break
            if c.isspace() or c in _KEY_SEPARATORS:
                break
            self.advance()
        key = self.s[start:self.i]
        return key, pos, self.peek().isspace() and key.lower() == "include"

    def key_value(self, ctx: ConfMap, in_map: bool) -> bool | None:
        """One `key value` (or include) into ctx; None when the file ended where nats-server stops quietly."""
        key, pos, include = self.read_key(in_map)
        if key is None:
            return None
        if include:
            self.include(ctx)
            return True
        while self.peek().isspace() and self.peek():
            self.advance()
        c = self.peek()
        if c and c in _KEY_SEPARATORS:
            self.advance()
            if in_map:
                self.skip_spaces(newlines=True)
        elif c == _EOF and not in_map:
            if key == "}":
                return None  # nats-server lets a stray closing brace end a file
            raise ConfigError("config is invalid", pos)
        elif in_map:
            self.skip_spaces(newlines=True)
        if in_map:
            c = self.peek()
            if c == ",":
                raise self.error("Unexpected map value terminator ','.")
            if c == "}":
                raise self.error(f"Expected a value for key {key!r}")
        value = self.value()
        if value is not _DROP:
            ctx[key] = value
            ctx.positions[key] = pos
            ctx.used.discard(key)
        return True

    def value(self) -> Any:
        self.skip_spaces(newlines=False)
        pos = self.here()
        c = self.peek()
        if c == "[":
            self.advance()
            return self.array(pos)
        if c == "{":
            self.advance()
            return self.map()
        if c == "'":
            self.advance()
            start = self.i
            while self.peek() != "'":
                if self.peek() == _EOF:
                    raise self.error("Unexpected EOF.")
                self.advance()
            text = self.s[start:self.i]
            self.advance()
            return text
        if c == '"':
            self.advance()
            return self.double_quoted()
        if c == "-":
            self.advance()
            return self.number(negative=True)
        if c == "(":
            self.advance()
            return self.block_string()
        if c.isdecimal():
            return self.number(negative=False)
        if c == ".":
            raise self.error("Floats must start with a digit")
        if c in ("\n", "\r"):
            raise self.error("Expected value but found new line")
        return self.unquoted(self.i, [], pos)

    def array(self, pos: Pos) -> ConfList:
        arr = ConfList()
        self.scopes.append(arr)
        while True:
            self.skip_spaces(newlines=True)
            c = self.peek()
            if self.at_comment():
                self.skip_comment()
                continue
            if c in (",", "/"):
                raise self.error("Unexpected array value terminator ','.")
            if c == "]":
                self.advance()
                break
            epos = self.here()
            v = self.value()
            if v is not _DROP:
                arr.append(v)
                arr.positions.append(epos)
            if self.array_value_end():
                break
        self.scopes.pop()
        return arr

    def array_value_end(self) -> bool:
        return self.element_end("]", (",", "\n", "\r", "/"), "an array value terminator \",\" or an array "
                                "terminator \"]\"")

    def map(self) -> ConfMap:
        m = ConfMap()
        self.scopes.append(m)
        while True:
            self.skip_spaces(newlines=True)
            c = self.peek()
            if c == "]":
                raise self.error("Unexpected array end ']' processing map.")
            if c == "}":
                self.advance()
                break
            if self.at_comment():
                self.skip_comment()
                continue
            if c == "/":
                self.advance()
            if self.peek() == _EOF:
                raise self.error("Unexpected EOF processing map.")
            self.key_value(m, in_map=True)
            if self.map_value_end():
                break
        self.scopes.pop()
        return m

    def map_value_end(self) -> bool:
        return self.element_end("}", (";", ",", "\n", "\r", "/"), "a map value terminator \",\" or a map "
                                "terminator \"}\"")

    def element_end(self, closer: str, separators: tuple[str, ...], expected: str) -> bool:
        """After a value in an array or map: True at the closing bracket, False at a separator."""
        while True:
            c = self.peek()
            if c in (" ", "\t"):
                self.advance()
            elif self.at_comment():
                self.skip_comment()
            elif c in separators:
                self.advance()
                return False
            elif c == closer:
                self.advance()
                return True
            else:
                raise self.error(f"Expected {expected}, but got '{self.show(c)}' instead.")

    # -- scalars ----------------------------------------------------------------------------------
    def escape(self, parts: list) -> None:
        """After a backslash in a double-quoted or unquoted string."""
        pos = self.here()
        c = self.advance()
        simple = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
        if c in simple and c:
            parts.append(simple[c])
            return
        if c != "x":
            raise self.error(f"Invalid escape character '{self.show(c)}'. Only the following escape characters "
                             "are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.", pos)
        digits = self.advance() + self.advance()
        if "\n" in digits or "\r" in digits:
            raise self.error("Expected two hexadecimal digits after '\\x', but hit end of line")
        try:
            parts.append(bytes.fromhex(digits))
        except ValueError:
            raise self.error(f"Expected two hexadecimal digits after '\\x', but got '{digits}'") from None

    @staticmethod
    def join(parts: list) -> str:
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
        raw = b"".join(p if isinstance(p, bytes) else p.encode("utf-8", "surrogateescape") for p in parts)
        return raw.decode("utf-8", "surrogateescape")

    def double_quoted(self) -> str:
        parts: list = []
        start = self.i
        while True:
            c = self.peek()
            if c == _EOF:
                raise self.error("Unexpected EOF.")
            if c == '"':
                parts.append(self.s[start:self.i])
                self.advance()
                return self.join(parts)
            self.advance()
            if c == "\\":
                parts.append(self.s[start:self.i - 1])
                self.escape(parts)
                start = self.i

    def unquoted(self, start: int, parts: list, pos: Pos) -> Any:
        """An unquoted string, boolean or $variable; `start` is where the token began."""
        escaped = bool(parts)
        while True:
            c = self.peek()
            if c == "\\":
                parts.append(self.s[start:self.i])
                self.advance()
                self.escape(parts)
                start = self.i
                escaped = True
                continue
            if c in ("\n", "\r", _EOF, ";", ",", "]", "}", " ", "\t"):
                parts.append(self.s[start:self.i])
                text = self.join(parts)
                if escaped:
                    return text
                if text.lower() in _BOOLS:
                    return _BOOLS[text.lower()]
                if text.startswith("$"):
                    return self.variable(text[1:], pos)
                return text
            if c == "'":
                parts.append(self.s[start:self.i])
                self.advance()
                return self.join(parts)
            self.advance()

    def block_string(self) -> str:
        """`( ... )` up to a `)` alone on its line; the text keeps its last newline."""
        start = self.i
        j = start
        while True:
            j = self.s.find("\n)", j)
            if j < 0:
                self.i = self.n
                raise self.error("Unexpected EOF processing block.")
            after = j + 2
            if after >= self.n or self.s[after] == "\n":
                break
            j += 1
        while self.i < j + 2:
            self.advance()
        return self.s[start:j + 1]

    def number(self, negative: bool) -> Any:
        """An integer (with size suffix), float, datetime, IP address, or a string that starts with a digit."""
        start = self.i - 1 if negative else self.i
        pos = self.pos_at(start)
        c = self.advance()
        if not c.isdecimal():
            if c == ".":
                raise self.error("Floats must start with a digit, not '.'.")
            raise self.error(f"Expected a digit but got '{self.show(c)}'.")
        while True:
            c = self.peek()
            if c.isdecimal():
                self.advance()
                continue
            if c == "-" and not negative:
                self.advance()
                if self.i - start != 5:
                    raise self.error("All ISO8601 dates must be in full Zulu form.")
                return self.datetime(start)
            if c == ".":
                self.advance()
                return self.fraction(start)
            if c and c in _NUMBER_SUFFIXES:
                self.advance()
                while self.peek() and self.peek() in "bBiI":
                    self.advance()
                nxt = self.peek()
                if nxt in ("\n", "\r", _EOF, "}", ";", ",", " ", "\t"):
                    return self.integer(self.s[start:self.i], pos)
                return self.unquoted(start, [], pos)
            if negative or c in ("\n", "\r", _EOF, "}", ";", ",", " ", "\t"):
                return self.integer(self.s[start:self.i], pos)
            # A digit run followed by anything else is a string; nats-server swallows that character first.
            self.advance()
            return self.unquoted(start, [], pos)

    def fraction(self, start: int) -> Any:
        c = self.advance()
        if not c.isdecimal():
            raise self.error(f"Floats must have a digit after the '.', but got '{self.show(c)}' instead.")
        while self.peek().isdecimal():
            self.advance()
        if self.peek() == ".":
            while (c := self.peek()) and (c.isdecimal() or c in ".:-"):
                self.advance()
            return self.s[start:self.i]
        text = self.s[start:self.i]
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise self.error(f"float '{text}' is out of the range")
        return value

    def integer(self, text: str, pos: Pos) -> Any:
        digits = len(text) - len(text.lstrip("-0123456789"))
        head, suffix = text[:digits], text[digits:].strip().lower()
        try:
            num = int(head)
        except ValueError:
            raise ConfigError(f"expected integer, but got '{text}'", pos) from None
        if not _INT64_MIN <= num <= _INT64_MAX:
            raise ConfigError(f"integer '{text}' is out of the range", pos)
        if suffix not in _SIZE_MULTIPLIERS:
            return _DROP
        # Go multiplies int64s and wraps around on overflow.
        num = (num * _SIZE_MULTIPLIERS[suffix] - _INT64_MIN) % (1 << 64) + _INT64_MIN
        return num

    def datetime(self, start: int) -> _dt.datetime:
        for expect in "00-00T00:00:00Z":
            c = self.peek()
            if expect == "0":
                if not (c.isdecimal()):
                    raise self.error(f"Expected digit in ISO8601 datetime, but found '{self.show(c)}' instead.")
            elif c != expect:
                raise self.error(f"Expected '{expect}' in ISO8601 datetime, but found '{self.show(c)}' instead.")
            self.advance()
        text = self.s[start:self.i]
        try:
            return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            raise self.error(f"expected Zulu formatted DateTime, but got '{text}'") from None

    # -- variables and includes -------------------------------------------------------------------
    def variable(self, name: str, pos: Pos) -> Any:
        if name.startswith(_BCRYPT_PREFIX):
            # An unquoted bcrypt hash ($2a$...) is a value, not a variable reference.
            return "$" + name
        for scope in reversed(self.scopes):
            if isinstance(scope, ConfMap) and name in scope:
                scope.used.add(name)
                return scope[name]
        if name in self.env_refs:
            raise ConfigError(f"variable reference for '{name}' on line {pos.line} could not be parsed: "
                              f"variable reference cycle for '{name}'", pos)
        if name not in self.env:
            raise ConfigError(f"variable reference for '{name}' on line {pos.line} can not be found", pos)
        self.env_refs.add(name)
        try:
            sub = _Parser(f"pk={self.env[name]}", "", self.env, self.env_refs).parse()
        except ConfigError as e:
            raise ConfigError(f"variable reference for '{name}' on line {pos.line} could not be parsed: "
                              f"{e.reason}", pos) from None
        finally:
            self.env_refs.discard(name)
        if "pk" not in sub:
            raise ConfigError(f"variable reference for '{name}' on line {pos.line} can not be found", pos)
        return sub["pk"]

    def include(self, ctx: ConfMap) -> None:
        self.skip_spaces(newlines=False)
        pos = self.here()
        c = self.peek()
        refuse = {"[": "start of an array", "{": "start of a map", "(": "start of a block",
                  "\\": "escape sequence", "\n": "new line", "\r": "new line"}
        if c in refuse and c:
            raise self.error(f"Expected include value but found {refuse[c]}")
        if c.isdecimal() or c == "-":
            raise self.error("Expected include value but found start of a number")
        if c in ('"', "'"):
            self.advance()
            start = self.i
            while self.peek() != c:
                if self.peek() == _EOF:
                    raise self.error("Unexpected EOF in " + ("double quoted" if c == '"' else "quoted") + " include")
                self.advance()
            name = self.s[start:self.i]
            self.advance()
        else:
            start = self.i
            while self.peek() not in ("\n", "\r", _EOF, ";", "}", " ", "\t", "'"):
                self.advance()
            name = self.s[start:self.i]
            if self.peek() == "'":
                self.advance()
        # Go's filepath.Join: the name is always taken relative to the including file's folder.
        path = os.path.normpath(os.path.join(os.path.dirname(self.file) or ".", name.lstrip("/")))
        try:
            included = parse_file(path, env=self.env)
        except ConfigError as e:
            raise ConfigError(f"error parsing include file '{name}', {e}", pos) from None
        for key, value in included.items():
            ctx[key] = value
            ctx.positions[key] = included.positions[key]
            if key in included.used:
                ctx.used.add(key)


# -- durations, as Go's time.ParseDuration -------------------------------------------------------------------
def parse_duration(text: str) -> float:
    """Seconds in a Go duration string ("1h30m", "500ms", "-1.5s"); ValueError with Go's message if bad."""
    return gotime.parse_duration(text) / 1e9
