"""Pure pieces without a server: durations and sizes as typed, natscli templates, the header parser the
session installs (same results as nats-py's), message rows."""
from __future__ import annotations

import re

import pytest
from nats.aio.client import Client

from pynats_lab import frames, templates
from pynats_lab.errors import LabError
from pynats_lab.headers import parse_header_block, parse_header_lines
from pynats_lab.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("30s", 30), ("1h30m", 5400), ("7d", 604800),
                                          ("1.5s", 1.5), ("2", 2), (3, 3), ("1w", 604800), ("250us", 0.00025)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "1h30", "h", "-"])
def test_bad_durations_say_what_works(bad):
    with pytest.raises(LabError, match="use e.g. 500ms"):
        parse_duration(bad)


def test_sizes_and_formatting():
    assert parse_size("10KB") == 10_000 and parse_size("1MiB") == 1 << 20 and parse_size("-1") == -1
    assert parse_size("512") == 512 and parse_size("1.5GB") == 1_500_000_000
    with pytest.raises(LabError):
        parse_size("lots")
    assert format_duration(5400) == "1h30m0s" and format_duration(0.25) == "250ms"


def test_templates_render_per_message():
    bodies = [templates.render("n={{Count}} {{ ID }} {{Random 3 3}} {{Unix}}", i) for i in (1, 2)]
    assert bodies[0].startswith("n=1 ") and bodies[1].startswith("n=2 ")
    ids = [b.split()[1] for b in bodies]
    assert ids[0] != ids[1] and all(len(i) == 22 for i in ids)
    assert all(re.fullmatch(r"[A-Za-z0-9]{3}", b.split()[2]) for b in bodies)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", templates.render("{{TimeStamp}}", 1))
    with pytest.raises(LabError, match="unknown template function 'Nope'"):
        templates.render("{{Nope}}", 1)
    assert not templates.has_templates('{"a": {"b": 1}}')


@pytest.mark.parametrize("raw", [
    b"Nats-Stream: S\r\nNats-Sequence: 12\r\nNats-Time-Stamp: 2026-01-01T00:00:00.1Z\r\n\r\n",
    b"A:b\r\nBad Name: x\r\n Lead : v \r\nNoColon\r\nK:\r\nU: \xc3\xa9\xff\r\nX-Y:1:2\r\n\r\n",
    b"\xff\xfe: nope\r\nok: yes\r\n\r\n",
])
def test_header_parser_matches_nats_py(raw):
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)
    # A stored block (STREAM.MSG.GET's hdrs) reads the same as the message nats-py would have received.
    assert parse_header_block(b"NATS/1.0\r\n" + raw) == Client._parse_header_lines(raw)


def test_stored_rows_strip_direct_get_metadata_and_size_headers():
    hdrs = {"Nats-Stream": "S", "Nats-Sequence": "1", "Nats-Subject": "a", "Nats-Time-Stamp": "x",
            "Nats-Msg-Id": "m1", "k": "v"}
    df = frames.stored_frame([1], ["2026-01-01T00:00:00.123456789Z"], ["a"], [b"\xff{"], [hdrs])
    row = df.iloc[0]
    assert row["headers"] == {"Nats-Msg-Id": "m1", "k": "v"} and row["msg_id"] == "m1"
    assert row["data"] == "\\xff{" and row["size"] == 2 + len("NATS/1.0\r\nNats-Msg-Id: m1\r\nk: v\r\n\r\n")
    assert df["time"].iloc[0].nanosecond == 789 and str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert frames.pretty(b'{"a":1}') == '{\n  "a": 1\n}' and frames.pretty("[1") is None
