"""`pynats-lab regress`: papermill notebooks against a server, JUnit XML, HTML report, exit status."""
import subprocess
import sys
import xml.etree.ElementTree as ET

import nbformat
import pytest

from tests.servers import subprocess_env


def notebook(path, *cells, parameters="server_url = 'nats://127.0.0.1:4222'\ncount = 1"):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


ROUND_TRIP = """
import asyncio, nats
async def round_trip():
    nc = await nats.connect(server_url)
    sub = await nc.subscribe("regress.>")
    for i in range(count):
        await nc.publish(f"regress.{i}", b"x")
    got = [(await sub.next_msg(2)).subject for _ in range(count)]
    await nc.close()
    return got
got = await round_trip()
assert got == [f"regress.{i}" for i in range(count)], got
"""


def regress(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pynats_lab.cli", "regress", *args], cwd=cwd,
                          env=subprocess_env(), capture_output=True, text=True, timeout=240)


@pytest.fixture
def suite(tmp_path):
    folder = tmp_path / "regression"
    folder.mkdir()
    notebook(folder / "a_round_trip.ipynb", ROUND_TRIP)
    notebook(folder / "b_budget.ipynb", "assert count < 3, f'count {count} over budget'")
    return folder


def test_passing_and_failing_notebooks_are_reported(server, suite, tmp_path):
    junit = tmp_path / "junit.xml"
    out = tmp_path / "out"
    proc = regress(str(suite), "--server", server.url, "-p", "count=5", "--junit", str(junit),
                   "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed, 1 failed" in proc.stdout

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"regression/a_round_trip.ipynb", "regression/b_budget.ipynb"}
    assert cases["regression/a_round_trip.ipynb"].find("failure") is None
    failure = cases["regression/b_budget.ipynb"].find("failure")
    assert failure.get("message") == "AssertionError: count 5 over budget"
    assert failure.text.startswith("In [3]: assert count < 3, f'count {count} over budget'\n"), failure.text

    executed = nbformat.read(out / "regression" / "a_round_trip.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f"server_url = \"{server.url}\"" in injected[0].source
    assert "a_round_trip.ipynb" in (out / "report.html").read_text()


def test_all_passing_exits_zero(server, suite, tmp_path):
    proc = regress(str(suite), "--server", server.url, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed, 0 failed" in proc.stdout


def test_wrong_use_is_one_clear_line(tmp_path):
    proc = regress(str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"pynats-lab regress: no notebook or folder at {tmp_path / 'missing'}"]
    proc = regress("-p", "nonsense", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "is not name=value" in proc.stderr
