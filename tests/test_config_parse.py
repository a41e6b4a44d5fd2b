"""The configuration format: nats-server's documented forms, its quirks, and round trips of random configs."""
from __future__ import annotations

import datetime as dt
import math
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded_server.config import ConfigError, parse, parse_duration, parse_file
from embedded_server.gotime import seconds_string


def test_the_three_key_separators_and_optional_semicolons():
    assert parse("a: 1\nb = 2\nc 3\nd = 4;\ne: five; f = 6") == {
        "a": 1, "b": 2, "c": 3, "d": 4, "e": "five", "f": 6}


def test_documented_server_config():
    conf = parse("""
# Client port of 4222 on all interfaces
port: 4222

# HTTP monitoring port
monitor_port: 8222

// Another comment style
listen: 127.0.0.1:4222
max_payload: 1MB
ping_interval: "2m"
debug: true
trace: off
authorization: {
  users: [
    {user: a, password: "pw", permissions: {publish: "x.>", subscribe: {allow: ["y", "z.*"], deny: "y.z"}}}
    {user: b, password: b}
  ]
}
""")
    assert conf["port"] == 4222 and conf["monitor_port"] == 8222
    assert conf["listen"] == "127.0.0.1:4222"
    assert conf["max_payload"] == 1024 * 1024
    assert conf["ping_interval"] == "2m"
    assert conf["debug"] is True and conf["trace"] is False
    users = conf["authorization"]["users"]
    assert users[0] == {"user": "a", "password": "pw",
                        "permissions": {"publish": "x.>", "subscribe": {"allow": ["y", "z.*"], "deny": "y.z"}}}
    assert users[1] == {"user": "b", "password": "b"}


def test_maps_may_be_assigned_without_a_separator_and_nest():
    assert parse("cluster {\n  name my-cluster\n  routes = [\n nats://h1:6222\n nats://h2:6222 ]\n}") == {
        "cluster": {"name": "my-cluster", "routes": ["nats://h1:6222", "nats://h2:6222"]}}


def test_a_whole_file_may_be_json():
    assert parse('{"port": 4222, "authorization": {"token": "s3cr3t"}, "list": [1, 2.5, "x"]}') == {
        "port": 4222, "authorization": {"token": "s3cr3t"}, "list": [1, 2.5, "x"]}


@pytest.mark.parametrize("text,value", [
    ("1k", 1000), ("1K", 1000), ("1kb", 1024), ("1KB", 1024), ("1Ki", 1024), ("1KiB", 1024),
    ("2m", 2_000_000), ("2MB", 2 * 1024**2), ("1g", 10**9), ("1GB", 1024**3), ("1gib", 1024**3),
    ("1t", 10**12), ("1TB", 1024**4), ("1p", 10**15), ("1PB", 1024**5), ("1e", 10**18), ("-2k", -2000),
    ("0", 0), ("-17", -17), ("9223372036854775807", 2**63 - 1),
])
def test_sizes_as_nats_server_multiplies_them(text, value):
    assert parse(f"v: {text}\n")["v"] == value


@pytest.mark.parametrize("text,value", [
    ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("On", True),
    ("false", False), ("no", False), ("off", False), ("NO", False),
])
def test_booleans(text, value):
    assert parse(f"v = {text}")["v"] is value


@pytest.mark.parametrize("text,value", [
    ("2s", "2s"), ("1h30m", "1h30m"), ("500ms", "500ms"), ("10.0.0.1", "10.0.0.1"),
    ("127.0.0.1:4222", "127.0.0.1:4222"), ("4222a", "4222a"), ("1.5", 1.5), ("-0.25", -0.25),
    ("nats://localhost:4222", "nats://localhost:4222"), ("a#b", "a#b"), ("x'", "x"),
])
def test_unquoted_values(text, value):
    assert parse(f"v: {text}\n")["v"] == value


def test_an_unquoted_two_minutes_is_a_size_not_a_duration():
    """nats-server reads `2m` as 2,000,000 (then warns that ping_interval should be a duration)."""
    assert parse("ping_interval: 2m")["ping_interval"] == 2_000_000
    assert parse("ping_interval: '2m'")["ping_interval"] == "2m"


def test_string_escapes_and_quotes():
    conf = parse(r'''a: "tab\there\nnew \"q\" back\\slash \x41\xc3\xa9"
b: 'single $not_a_var \n raw'
c: un\x41quoted
d: "$NOT_A_VAR"
''')
    assert conf["a"] == 'tab\there\nnew "q" back\\slash Aé'
    assert conf["b"] == "single $not_a_var \\n raw"
    assert conf["c"] == "unAquoted"
    assert conf["d"] == "$NOT_A_VAR"


def test_datetime_and_block_strings():
    conf = parse("when: 2021-11-22T10:30:00Z\ntext: (\nline one\n  line (two)\n)\nafter: 1\n")
    assert conf["when"] == dt.datetime(2021, 11, 22, 10, 30, tzinfo=dt.timezone.utc)
    assert conf["text"] == "\nline one\n  line (two)\n"
    assert conf["after"] == 1


def test_a_key_may_have_its_value_on_the_next_line():
    assert parse("port\n\n  4222\n") == {"port": 4222}


def test_quoted_keys_and_keys_with_odd_characters():
    assert parse('"my key": 1\n\'other key\' = 2\nweird.key-1_2 3\n') == {
        "my key": 1, "other key": 2, "weird.key-1_2": 3}


def test_later_keys_win():
    assert parse("a: 1\na: 2") == {"a": 2}


def test_variables_are_block_scoped_keys():
    conf = parse("""
TOKEN: "s3cr3t"
PORT = 4333
port: $PORT
authorization {
  LOCAL = inner
  token: $TOKEN
  user: $LOCAL
}
other { v: $TOKEN }
""")
    assert conf["port"] == 4333
    assert conf["authorization"]["token"] == "s3cr3t"
    assert conf["authorization"]["user"] == "inner"
    assert conf["other"]["v"] == "s3cr3t"
    assert {"TOKEN", "PORT"} <= conf.used
    assert conf["authorization"].used == {"LOCAL"}


def test_a_variable_of_an_inner_block_is_not_visible_outside():
    with pytest.raises(ConfigError, match="variable reference for 'LOCAL' on line 2 can not be found"):
        parse("a { LOCAL = 1 }\nb = $LOCAL\n", env={})


def test_environment_variables_are_parsed_as_values():
    env = {"NATS_PORT": "4444", "SIZE": "2MB", "NAME": "hello", "CHAIN": "$NAME", "LOOP": "$LOOP"}
    conf = parse("port: $NATS_PORT\nsize: $SIZE\nname: $NAME\nchain: $CHAIN\n", env=env)
    assert conf == {"port": 4444, "size": 2 * 1024**2, "name": "hello", "chain": "hello"}
    with pytest.raises(ConfigError, match="variable reference cycle for 'LOOP'"):
        parse("x: $LOOP", env=env)


def test_a_config_variable_shadows_the_environment():
    assert parse("NAME: config\nname: $NAME", env={"NAME": "env"})["name"] == "config"


def test_unquoted_bcrypt_hashes_are_values_not_variables():
    h = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG"
    assert parse(f"password: {h}\n")["password"] == h


def test_include_is_relative_to_the_including_file(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "auth.conf").write_text("authorization { include 'users.conf' }\n")
    (tmp_path / "conf.d" / "users.conf").write_text("users = [ {user: a, password: b} ]\ntimeout: 2\n")
    (tmp_path / "main.conf").write_text("port: 4222\ninclude ./conf.d/auth.conf\nmax_payload: 1KB\n")
    conf = parse_file(tmp_path / "main.conf")
    assert conf == {"port": 4222, "authorization": {"users": [{"user": "a", "password": "b"}], "timeout": 2},
                    "max_payload": 1024}
    assert conf.pos("authorization").file.endswith("auth.conf")


def test_an_included_file_does_not_see_the_including_files_variables(tmp_path):
    (tmp_path / "inc.conf").write_text("b: $A\n")
    (tmp_path / "main.conf").write_text("A: 1\ninclude inc.conf\n")
    with pytest.raises(ConfigError, match=r"error parsing include file 'inc.conf', .*'A'.*can not be found"):
        parse_file(tmp_path / "main.conf", env={})


def test_a_missing_include_names_the_file(tmp_path):
    (tmp_path / "main.conf").write_text("include nope.conf\n")
    with pytest.raises(ConfigError, match="error parsing include file 'nope.conf', error opening config file"):
        parse_file(tmp_path / "main.conf")


@pytest.mark.parametrize("text,where,reason", [
    ("a = [1]\n", "2:1", "Expected an array value terminator"),  # nats-server reads `1]` as a string
    ("a = \n", "1:4", "Expected value but found new line"),
    ("port: 4222\nfoo = [1,\n", "3:1", "Expected an array value terminator"),
    ("a", "1:0", "config is invalid"),
    ("a = 1.5s\n", "1:7", "Expected a top-level value to end with a new line, comment or EOF, but got 's'"),
    ("x {\n  y = 1\n", "3:1", "Unexpected EOF processing map."),
    ("a = \"open\n", "2:1", "Unexpected EOF."),
    ("a = \"bad \\q\"\n", "1:10", "Invalid escape character 'q'"),
    ("a = .5\n", "1:4", "Floats must start with a digit"),
    ("a = 2021-1\n", "1:10", "Expected digit in ISO8601 datetime"),
    ("a = 12-3\n", "1:7", "All ISO8601 dates must be in full Zulu form."),
    ("= 1\n", "1:0", "Unexpected key separator '='"),
    ("m { a: 1, : 2 }\n", "1:10", "Unexpected key separator ':'."),
    ("m { a: 1 ] }\n", "1:9", "Expected a map value terminator"),
    ("a = $nope\n", "1:4", "variable reference for 'nope' on line 1 can not be found"),
    ("include [a]\n", "1:8", "Expected include value but found start of an array"),
])
def test_errors_say_file_line_and_column(tmp_path, text, where, reason):
    path = tmp_path / "bad.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        parse_file(path, env={})
    assert str(err.value).startswith(f"{path}:{where}: "), str(err.value)
    assert reason in str(err.value)


def test_positions_of_keys_and_array_elements():
    conf = parse("a: 1\nm {\n  k: [x,\n      y]\n}\n", filename="f.conf")
    assert tuple(conf.pos("m")) == ("f.conf", 2, 1)
    assert tuple(conf["m"].pos("k")) == ("f.conf", 3, 3)
    assert [tuple(p)[1:] for p in conf["m"]["k"].positions] == [(3, 7), (4, 7)]


@pytest.mark.parametrize("text,seconds", [
    ("0", 0), ("2s", 2), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("-1m", -60),
    ("1us", 1e-6), ("1µs", 1e-6), ("3ns", 3e-9), ("1h1m1s", 3661),
])
def test_durations_as_go(text, seconds):
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize("text,message", [
    ("", 'time: invalid duration ""'), ("2", 'time: missing unit in duration "2"'),
    ("2x", 'time: unknown unit "x" in duration "2x"'), ("s", 'time: invalid duration "s"'),
])
def test_bad_durations_fail_with_gos_message(text, message):
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize("seconds,text", [(120, "2m0s"), (5400, "1h30m0s"), (0.5, "500ms"), (2, "2s"), (0, "0s")])
def test_durations_print_as_go(seconds, text):
    assert seconds_string(seconds) == text


# -- round trips ----------------------------------------------------------------------------------------------
_BARE = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s.lower() not in {"true", "false", "yes", "no", "on", "off", "include"})
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " _-.:/*>$#{}[],;='\"\\\t\n", max_size=12)
_SCALARS = st.one_of(st.integers(-(2**40), 2**40), st.booleans(), _TEXT,
                     st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)).filter(
                         lambda f: f != int(f)))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_BARE, inner, max_size=4)), max_leaves=12)
_CONFIGS = st.dictionaries(_BARE, _VALUES, max_size=6)


def _render_string(s: str, draw) -> str:
    safe = s and all(c.isalnum() or c in "_" for c in s) and not s[0].isdigit() \
        and s.lower() not in {"true", "false", "yes", "no", "on", "off"}
    style = draw(st.sampled_from(["dq", "sq", "bare"]))
    if style == "bare" and safe:
        return s
    if style == "sq" and "'" not in s:
        return f"'{s}'"
    escaped = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _render_int(n: int, draw) -> str:
    if n and n % 1024 == 0 and draw(st.booleans()):
        return f"{n // 1024}{draw(st.sampled_from(['KB', 'kb', 'Ki', 'KiB']))}"
    if n and n % 1000 == 0 and draw(st.booleans()):
        return f"{n // 1000}{draw(st.sampled_from(['k', 'K']))}"
    return str(n)


def _render(value, draw, indent: str) -> str:
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "yes", "on", "TRUE"] if value else ["false", "no", "off", "False"]))
    if isinstance(value, int):
        return _render_int(value, draw)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _render_string(value, draw)
    if isinstance(value, list):
        sep = draw(st.sampled_from([", ", ",\n", "\n", " , "]))
        # A bare integer right before `]` is a string to nats-server; end arrays on a new line.
        return "[" + sep.join(_render(v, draw, indent + "  ") for v in value) + "\n" + indent + "]"
    return "{\n" + _render_body(value, draw, indent + "  ") + indent + "}"


def _render_body(mapping: dict, draw, indent: str) -> str:
    out = []
    for key, value in mapping.items():
        k = draw(st.sampled_from([key, f'"{key}"', f"'{key}'"]))
        sep = draw(st.sampled_from([": ", " = ", " ", ":", "="])) if not isinstance(value, dict) or \
            draw(st.booleans()) else " "
        end = draw(st.sampled_from(["\n", ";\n", " # note\n", " // note\n", ",\n"]))
        out.append(f"{indent}{k}{sep}{_render(value, draw, indent)}{end}")
        if draw(st.booleans()):
            out.append(f"{indent}# comment {{ [ ]\n")
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(conf=_CONFIGS, data=st.data())
def test_rendered_configs_parse_back_to_the_same_structure(conf, data):
    text = _render_body(conf, data.draw, "")
    if data.draw(st.booleans()):
        text = "{\n" + text + "}\n"
    assert parse(text, env={}) == conf, text
