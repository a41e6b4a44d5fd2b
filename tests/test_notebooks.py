"""The notebooks, executed: every tutorial top to bottom on the embedded default (papermill, in parallel),
and every regression notebook on both servers through `pynats-lab regress`. A failure names the notebook,
the cell and its code. Tutorials also must not print a magic's one-line error where none is expected
(a magic that fails prints instead of raising), and must print one where the lesson shows one (cells tagged
`magic-error`); no other cell writes anything to stderr."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tests.servers import KINDS, REPO, subprocess_env

pytestmark = pytest.mark.notebooks

NOTEBOOKS = REPO / "notebooks"
TUTORIALS = sorted((NOTEBOOKS / "tutorials").glob("*.ipynb"))
REGRESSION = sorted((NOTEBOOKS / "regression").glob("*.ipynb"))
# The suite never asserts a time (performance is measured, not asserted): the latency budget notebook runs
# with budgets only a broken server misses, so it checks that every kind is measured and compared.
LOOSE_BUDGETS = ["-p", "request_reply_budget=100", "-p", "js_publish_budget=200"]
# Notebooks at a time. CI has two cores, but a notebook's kernel often waits (on timers in the lesson or the
# check: ack waits, schedules, windows; on its shutdown): a third runs meanwhile. The tutorials then end with
# their one long job in sequence (146 s -> 124 s and 130 s), the regression notebooks on both servers
# 74.3 s -> 59.6 s and 66.7 s (back to back on this machine, load 3-5).
JOBS = 3
CELL_TIMEOUT = 120

_MAGIC_ERROR = re.compile(r"^%(?:nats|stream|consumer|kv|server)(?: [\w-]+)?: .+$", re.M)


def code_line(cell) -> str:
    lines = [x for x in cell.source.splitlines() if x.strip() and not x.lstrip().startswith("#")]
    return lines[0].strip() if lines else ""


def magic_error_problems(nb) -> list[str]:
    """Cells that printed a magic's one-line error without the `magic-error` tag, and tagged cells that
    printed none (the lesson they teach did not happen)."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        stderr = "".join(o.get("text", "") for o in cell.get("outputs", [])
                         if o.get("output_type") == "stream" and o.get("name") == "stderr")
        found = _MAGIC_ERROR.findall(stderr)
        expected = "magic-error" in cell.metadata.get("tags", [])
        if found and not expected:
            problems.append(f"cell {index} `{code_line(cell)}` printed: {found[0]}")
        if expected and not found:
            problems.append(f"cell {index} `{code_line(cell)}` should show a magic's one-line error, showed none")
    return problems


def stderr_problems(nb) -> list[str]:
    """Cells that wrote to stderr (a notebook's pink error box) although they worked: a note is a quiet
    line on stdout. Only a cell whose lesson is an error may: tagged `magic-error` (a magic's line) or
    `expect-stderr` (a server's error or a dropped connection the lesson causes)."""
    problems = []
    for index, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or "magic-error" in tags or "expect-stderr" in tags:
            continue
        stderr = "".join(o.get("text", "") for o in cell.get("outputs", [])
                         if o.get("output_type") == "stream" and o.get("name") == "stderr")
        if stderr:
            problems.append(f"cell {index} `{code_line(cell)}` wrote to stderr: {stderr.strip()[:300]!r}")
    return problems


def embedded_has_jetstream() -> bool:
    return "embedded" in KINDS and importlib.util.find_spec("embedded_server.jetstream") is not None


def _run_tutorial(nb: Path, out: Path, workdir: Path, parameters: dict) -> dict:
    """In a worker process: one tutorial with papermill; a server of its own when the embedded default
    cannot serve it yet."""
    from pynats_lab.regress import run_notebook
    from pynats_lab.servers import start_server

    os.environ["XDG_DATA_HOME"] = str(workdir / "data")  # the embedded default's store, per tutorial
    os.environ.pop("NATS_URL", None)
    server = None
    if "server_url" in parameters and not embedded_has_jetstream():
        server = start_server("nats-server", jetstream=True)
        parameters = {**parameters, "server_url": server.url}
    try:
        result = run_notebook(nb, out, parameters, "python3", CELL_TIMEOUT)
    finally:
        if server:
            server.stop()
    problems = []
    if out.exists():
        executed = nbformat.read(out, as_version=4)
        problems = magic_error_problems(executed) + stderr_problems(executed)
    return {"status": result.status, "seconds": result.seconds, "cell": result.cell, "source": result.source,
            "error": result.error, "traceback": result.traceback, "problems": problems}


def readme_notebook(path: Path) -> Path:
    """The README's "In a notebook" block, verbatim (comments included), as a one-cell notebook."""
    block = (REPO / "README.md").read_text().split("## In a notebook", 1)[1].split("```\n", 2)[1]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("The README's example"), nbformat.v4.new_code_cell(block),
                nbformat.v4.new_code_cell("assert len(df) == 50 and df['seq'].iloc[0] == 1")]
    nbformat.write(nb, path)
    return path


def _run_in_sequence(notebooks: list[Path], out: Path, workdir: Path, kind: str) -> list[dict]:
    """In a worker process: the tutorials that take a `server_url`, one after the other on one server
    that keeps its JetStream data where the lab's embedded default does, then the README's block in a
    kernel that starts that default on the same store: whatever a tutorial left there, it meets."""
    from pynats_lab.regress import run_notebook

    os.environ["XDG_DATA_HOME"] = str(workdir / "data")
    os.environ.pop("NATS_URL", None)
    store = workdir / "data" / "pynats-lab" / "jetstream"
    results = []

    def run(nb: Path, params: dict) -> None:
        result = run_notebook(nb, out / nb.name, params, "python3", CELL_TIMEOUT)
        executed = out / nb.name
        problems = []
        if executed.exists():
            done = nbformat.read(executed, as_version=4)
            problems = magic_error_problems(done) + stderr_problems(done)
        results.append({"name": nb.name, "status": result.status, "cell": result.cell, "source": result.source,
                        "error": result.error, "problems": problems, "seconds": result.seconds})

    if kind == "embedded":
        from embedded_server import EmbeddedServer

        with EmbeddedServer(host="127.0.0.1", port=-1, jetstream=True, store_dir=str(store),
                            mode="process") as server:
            for nb in notebooks:
                run(nb, {"server_url": server.client_url})
    run(readme_notebook(workdir / "readme.ipynb"), {})
    return results


@pytest.fixture(scope="module")
def tutorial_runs(tmp_path_factory) -> dict[str, dict]:
    """Every tutorial, executed once, JOBS at a time, each on a store of its own; beside them, in one
    more job, the same tutorials in sequence on one shared server, then the README block (`"sequence"`)."""
    base = tmp_path_factory.mktemp("tutorials")
    own_kind = "embedded" if "embedded" in KINDS else "nats-server"
    for key, value in subprocess_env().items():
        os.environ.setdefault(key, value)
    os.environ["PYTHONPATH"] = subprocess_env()["PYTHONPATH"]
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=JOBS) as pool:
        futures = {}
        shared = [nb for nb in TUTORIALS if "server_url" in _parameters(nbformat.read(nb, as_version=4))]
        # Submitted first: the longest job, so the workers finish at about the same time.
        futures["sequence"] = pool.submit(_run_in_sequence, shared, base / "sequence-out",
                                          tmp_path_factory.mktemp("sequence"), own_kind)
        for nb in TUTORIALS:
            declared = _parameters(nbformat.read(nb, as_version=4))
            params = {k: v for k, v in {"server_url": None, "server_kind": own_kind}.items() if k in declared}
            futures[nb.name] = pool.submit(_run_tutorial, nb, base / "out" / nb.name, base / nb.stem, params)
        runs = {name: fut.result() for name, fut in futures.items()}
    seconds = {name: round(r["seconds"], 1) for name, r in runs.items() if name != "sequence"}
    seconds["in sequence"] = round(sum(r["seconds"] for r in runs["sequence"]), 1)
    print(f"\ntutorials: {time.monotonic() - started:.1f}s wall with {JOBS} jobs; per notebook: {seconds}")
    return runs


@pytest.mark.parametrize("name", [nb.name for nb in TUTORIALS])
def test_tutorial_runs_top_to_bottom(name, tutorial_runs):
    run = tutorial_runs[name]
    assert run["status"] == "passed", (
        f"{name} {run['status']} in cell In [{run['cell']}] `{run['source']}`: {run['error']}\n{run['traceback']}")
    assert not run["problems"], f"{name}: " + "; ".join(run["problems"])


def test_tutorials_in_sequence_on_one_server_then_the_readme_block(tutorial_runs):
    """A user's server is shared by every notebook: each tutorial leaves it as it found it, so the next
    one and then the README's own example (comments and all) run on it without a failure."""
    runs = tutorial_runs["sequence"]
    assert [r["name"] for r in runs][-1] == "readme.ipynb" and len(runs) >= 10
    for run in runs:
        assert run["status"] == "passed", (
            f"{run['name']} (after {[r['name'] for r in runs[:runs.index(run)]]}) {run['status']} in cell "
            f"In [{run['cell']}] `{run['source']}`: {run['error']}")
        assert not run["problems"], f"{run['name']}: " + "; ".join(run["problems"])


def _parameters(nb) -> dict[str, str]:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged `parameters`"
    return dict(re.findall(r"^(\w+)\s*=\s*(.+?)\s*(?:#.*)?$", cells[0].source, re.M))


@pytest.mark.parametrize("path", TUTORIALS + REGRESSION, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_saved_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown", "a notebook explains before it runs"
    parameters = _parameters(nb)
    if "server_url" in parameters:
        assert parameters["server_url"] == "None", "server_url = None (the embedded default)"
    else:
        assert path.parent.name == "tutorials", "a regression notebook takes server_url"
        assert "server_kind" in parameters or "cluster_size" in parameters, "it says which server it starts"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"saved with outputs: `{code_line(cell)}`"
    if path.parent.name == "tutorials":
        assert re.fullmatch(r"\d\d-[a-z0-9-]+\.ipynb", path.name)
    assert f"({path.parent.name}/{path.name})" in (NOTEBOOKS / "README.md").read_text(), "listed in the index"


def test_there_are_the_tutorials_and_regression_notebooks_the_index_promises():
    numbers = {p.name[:2] for p in TUTORIALS}
    assert {f"{n:02d}" for n in (*range(1, 15), 16, 17, 18)} <= numbers
    assert len(REGRESSION) >= 6


def test_regression_notebooks_pass_against_the_server(start_server, server_kind, tmp_path_factory, tmp_path):
    # server_health reads the server's own view: its monitoring port.
    js_server = start_server("-js", "-sd", str(tmp_path_factory.mktemp("jetstream")), "-m", "-1")
    junit = tmp_path / "junit.xml"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pynats_lab.cli", "regress", str(NOTEBOOKS / "regression"), "--server",
         js_server.url, "--monitor", f"http://127.0.0.1:{js_server.http_port}", "--jobs", str(JOBS),
         "--junit", str(junit), "--out", str(tmp_path / "out"),
         "--timeout", str(CELL_TIMEOUT), *LOOSE_BUDGETS],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    print(f"\nregression notebooks on {js_server.kind}: {time.monotonic() - started:.1f}s\n{proc.stdout}")
    failures = []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            for bad in list(case.iter("failure")) + list(case.iter("error")):
                failures.append(f"{case.get('name')}: {bad.text}")
    assert proc.returncode == 0, "\n\n".join(failures) or proc.stdout + proc.stderr
    assert f"{len(REGRESSION)} passed, 0 failed" in proc.stdout
