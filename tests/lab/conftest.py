"""Lab fixtures: a real IPython shell with the extension loaded, connected to a test server of each kind."""
from __future__ import annotations

import pytest

import pynats_lab
from pynats_lab.session import get_session


@pytest.fixture(scope="session")
def shell():
    """One real InteractiveShell for the whole run, with `%load_ext pynats_lab` done."""
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "pynats_lab")
    return ip


def _connected(srv, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pynats_lab.connect(srv.url)
    yield srv
    get_session().close()


@pytest.fixture
def lab_js(js_server, shell, monkeypatch, tmp_path):
    """The session connected to a JetStream server of this test's kind."""
    yield from _connected(js_server, monkeypatch, tmp_path)


@pytest.fixture
def lab_core(server, shell, monkeypatch, tmp_path):
    """The session connected to a core (no JetStream) server of this test's kind."""
    yield from _connected(server, monkeypatch, tmp_path)


def magic(shell, line: str):
    """Run `%name args` through the shell as a user would; returns its value."""
    name, _, rest = line.lstrip("%").partition(" ")
    return shell.run_line_magic(name, rest)


def cell(shell, source: str):
    """Run a whole cell (so assignments and cell magics work); returns the ExecutionResult."""
    return shell.run_cell(source, store_history=False)


def eventually(condition, timeout: float = 20.0) -> None:
    """Wait until `condition()` is true (a loaded machine gets time); fail the test if it never is."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout:g}s: {getattr(condition, '__name__', condition)}")


def assert_one_line_errors(shell, capsys, cases: dict) -> None:
    """Each magic line fails with exactly one stderr line starting as given; no traceback, cell succeeds."""
    for line, start in cases.items():
        res = cell(shell, line)
        captured = capsys.readouterr()
        assert res.success and "Traceback" not in captured.err + captured.out, line
        assert captured.err.count("\n") == 1 and captured.err.startswith(start), (line, captured.err)


def assert_dedup_follows_the_window(df, window: float, margin: float = 0.3) -> None:
    """Each publish is a duplicate exactly when its id was accepted less than `window` ago (any subject);
    rows within `margin` of the window edge are not judged (timing on a loaded machine). Both outcomes
    must occur, so the check cannot pass vacuously."""
    accepted_at: dict[str, float] = {}
    judged = {"duplicate": 0, "accepted": 0}
    for row in df.itertuples():
        last = accepted_at.get(row.msg_id)
        gap = None if last is None else row.offset_s - last
        if gap is None or gap > window + margin:
            assert row.accepted, f"{row.msg_id} at {row.offset_s:.2f}s should be accepted (gap {gap})"
            judged["accepted"] += 1
        elif gap < window - margin:
            assert row.duplicate, f"{row.msg_id} at {row.offset_s:.2f}s should be a duplicate (gap {gap:.2f}s)"
            judged["duplicate"] += 1
        if row.accepted:
            accepted_at[row.msg_id] = row.offset_s
    assert judged["duplicate"] and judged["accepted"], judged
