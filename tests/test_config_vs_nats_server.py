"""The config parser against the oracle: `nats-server -t -c FILE` must accept exactly what we accept.

`server_name = VALUE` also tells the type nats-server read (a non-string makes it name the Go type), so the
value test compares types too.
"""
from __future__ import annotations

import datetime as dt
import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded_server.config import ConfigError, ConfList, ConfMap, parse
from tests.servers import nats_server_binary

_PARSE_FAILURES = ("Parse error on line", "config is invalid", "variable reference", "error parsing include file",
                   "is out of the range", "expected integer", "expected boolean", "expected Zulu")


def nats_server_check(tmp_path, text: str) -> str:
    path = tmp_path / "check.conf"
    path.write_text(text)
    done = subprocess.run([nats_server_binary(), "-t", "-c", str(path)], capture_output=True, text=True,
                          timeout=20, env={"PATH": "/usr/bin:/bin"})
    return done.stderr + done.stdout


def nats_server_parses(tmp_path, text: str) -> bool:
    out = nats_server_check(tmp_path, text)
    return not any(m in out for m in _PARSE_FAILURES)


def we_parse(text: str) -> bool:
    try:
        parse(text, env={})
    except ConfigError:
        return False
    return True


def nats_server_type(tmp_path, value: str) -> str:
    out = nats_server_check(tmp_path, f"server_name = {value}\n")
    if "is valid" in out or "spaces" in out:
        return "string"
    if m := re.search(r"interface \{\} is ([^,]+), not string", out):
        return {"map[string]interface {}": "map", "[]interface {}": "array"}.get(m.group(1), m.group(1))
    if "no values" in out:
        return "dropped"
    return "error"


def our_type(value: str) -> str:
    try:
        conf = parse(f"server_name = {value}\n", env={})
    except ConfigError:
        return "error"
    if set(conf) - {"server_name"}:
        return "error"
    if "server_name" not in conf:
        return "dropped"
    types = {str: "string", bool: "bool", int: "int64", float: "float64", dt.datetime: "time.Time",
             ConfMap: "map", ConfList: "array"}
    return types[type(conf["server_name"])]


@pytest.mark.parametrize("text", [
    "a = [1]\n", "a = [1 ]\n", "a = [1k]\n", "a { b: 1 }\n", "{ a: 1 }\n", "{{ a: 1 }}\n", "a = 1\n}\n",
    "a = '\n", '"', "a: 1.5s\n", "a = 1 / 2\n", "a // c\n", "a = (\nx\n)\n", "a = (\nx)\n", "include\n",
    "a = 2020-01-01T00:00:00Z\n", "a = 2020-01-01\n", "x = $y\n", "a = \"\\x4\"\n", "a\n=\n1\n", "{{", "{{a=1}\n",
])
def test_acceptance_matches_nats_server(tmp_path, text):
    assert we_parse(text) == nats_server_parses(tmp_path, text), text


@pytest.mark.parametrize("value", [
    "2mb", "2mb2", "1k", "1.5", "1.2.3", "127.0.0.1:4222", "12x", "500ms", "yes", "'yes'", "$2a$x",
    "[a, b]", "{a: 1}", "2021-11-22T10:30:00Z", "-5", "-5k", "1kbb", "0x10",
])
def test_value_types_match_nats_server(tmp_path, value):
    assert our_type(value) == nats_server_type(tmp_path, value), value


_PIECES = st.sampled_from(["a", " ", "\n", "\t", "=", ":", "{", "}", "[", "]", ",", ";", "#", "//", "/", '"',
                           "'", "1", "1k", "2mb", "-", ".", "x", "$a", "true", "\\n", "(", "\n)\n", "include",
                           "1.5", "127.0.0.1", "e", "2020-01-01T00:00:00Z"])


@settings(max_examples=40, deadline=None)
@given(text=st.lists(_PIECES, min_size=1, max_size=10).map("".join))
def test_random_token_soup_is_accepted_or_refused_like_nats_server(tmp_path_factory, text):
    assert we_parse(text) == nats_server_parses(tmp_path_factory.mktemp("soup"), text), repr(text)
