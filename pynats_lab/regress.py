"""Run papermill regression notebooks against one NATS server and report the outcome.

`regress()` executes each notebook with `server_url` (and any other parameters) injected, in parallel worker
processes, and returns a `RegressReport`: a summary DataFrame, an HTML report and JUnit XML for CI systems.
With no server URL it starts the embedded server (JetStream on, temporary storage) for the run.
"""
from __future__ import annotations

import html
import os
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

PASSED, FAILED, ERROR = "passed", "failed", "error"


@dataclass
class NotebookResult:
    """The outcome of one notebook: `failed` is an exception raised in a cell, `error` anything else
    (the kernel died, a cell timed out, the notebook could not be read)."""

    notebook: str
    status: str
    seconds: float
    output: str
    error: str = ""
    cell: int | None = None
    traceback: str = ""
    source: str = ""


@dataclass
class RegressReport:
    server_url: str
    results: list[NotebookResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == PASSED for r in self.results)

    def DataFrame(self) -> pd.DataFrame:  # noqa: N802 - JupySQL's spelling for "give me the table"
        columns = ["notebook", "status", "seconds", "cell", "source", "error", "output"]
        rows = [{c: getattr(r, c) for c in columns} for r in self.results]
        return pd.DataFrame(rows, columns=columns).astype({"cell": "Int64"})

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_html(self) -> str:
        colour = {PASSED: "#1a7f37", FAILED: "#cf222e", ERROR: "#9a6700"}
        rows = []
        for r in self.results:
            link = f'<a href="{html.escape(r.output)}">{html.escape(r.notebook)}</a>'
            rows.append(
                f"<tr><td>{link}</td><td style='color:{colour[r.status]};font-weight:bold'>{r.status}</td>"
                f"<td>{r.seconds:.1f}</td><td>{'' if r.cell is None else r.cell}</td>"
                f"<td><code>{html.escape(r.source)}</code></td><td><pre>{html.escape(r.error)}</pre></td></tr>")
        passed = sum(r.status == PASSED for r in self.results)
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>pynats-lab regress</title>"
            "<style>body{font-family:sans-serif}td,th{padding:4px 10px;text-align:left;vertical-align:top}"
            "pre{margin:0;white-space:pre-wrap}</style></head><body>"
            f"<h1>pynats-lab regress</h1><p>server: <code>{html.escape(self.server_url)}</code> — "
            f"{passed} of {len(self.results)} passed</p>"
            "<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>cell</th><th>code</th><th>error</th></tr>"
            + "".join(rows) + "</table></body></html>")

    def to_junit(self) -> str:
        suite = ET.Element(
            "testsuite", name="pynats-lab regress", tests=str(len(self.results)),
            failures=str(sum(r.status == FAILED for r in self.results)),
            errors=str(sum(r.status == ERROR for r in self.results)),
            time=f"{sum(r.seconds for r in self.results):.3f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="server_url", value=self.server_url)
        for r in self.results:
            case = ET.SubElement(suite, "testcase", classname="regression", name=r.notebook,
                                 time=f"{r.seconds:.3f}")
            if r.status != PASSED:
                tag = "failure" if r.status == FAILED else "error"
                detail = ET.SubElement(case, tag, message=r.error, type=r.error.split(":", 1)[0])
                where = f"In [{r.cell}]: {r.source}\n\n" if r.cell is not None else ""
                detail.text = where + (r.traceback or r.error)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def parse_parameter(text: str) -> tuple[str, object]:
    """`name=value` as papermill's `-p` reads it: True/False/None, int, float, else the string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"parameter {text!r} is not name=value")
    value: object = raw
    if raw in ("True", "False", "None"):
        value = {"True": True, "False": False, "None": None}[raw]
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
    return name.strip(), value


def discover(paths: list[str | Path]) -> list[Path]:
    """Notebooks named directly, and every *.ipynb under the named folders, in a stable order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(x for x in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in x.parts))
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"no notebook or folder at {p}")
    return list(dict.fromkeys(x.resolve() for x in found))


def _failing_line(executed: Path) -> str:
    """The first line of code of the cell that raised, from the executed notebook (for the summary)."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:
        return ""
    for cell in nb.cells:
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            lines = [line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")]
            return lines[0].strip() if lines else ""
    return ""


# papermill waits 60 s for a kernel by default; several starting at once on a busy CI runner can take longer.
KERNEL_START_TIMEOUT = 180


def ipc_kernel_manager(directory: str) -> type:
    """A jupyter_client AsyncKernelManager class (what nbclient and papermill drive) whose kernels talk over
    Unix sockets in `directory`.

    Over TCP, jupyter_client picks free ports and lets them go before the kernel binds them; on a busy
    machine (other kernels, servers and their clients taking ports) one is taken meanwhile, and the kernel
    dies with "Address already in use" while its notebook waits a minute for it. Sockets in a directory of
    our own cannot be taken."""
    from jupyter_client.manager import AsyncKernelManager

    # Async as nbclient's own default: a blocking KernelManager called from nbclient's loop runs its work
    # on a helper thread, which a worker process forked afterwards inherits as dead, and then waits forever.
    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**{"transport": "ipc", "ip": os.path.join(directory, "kernel"), **kwargs})

    return IpcKernelManager


def run_notebook(nb: Path, output: Path, parameters: dict, kernel_name: str | None,
                 timeout: float) -> NotebookResult:
    """Execute one notebook with papermill; never raises, the outcome is in the result."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    name = str(nb)
    try:
        with tempfile.TemporaryDirectory(prefix="pynats-kernel-") as sockets:
            papermill.execute_notebook(
                str(nb), str(output), parameters=parameters, kernel_name=kernel_name,
                progress_bar=False, cwd=str(nb.parent), execution_timeout=timeout,
                start_timeout=KERNEL_START_TIMEOUT, kernel_manager_class=ipc_kernel_manager(sockets))
    except PapermillExecutionError as exc:
        tb = _ANSI.sub("", "\n".join(exc.traceback))
        return NotebookResult(name, FAILED, time.monotonic() - start, str(output),
                              f"{exc.ename}: {exc.evalue}", exc.exec_count, tb, _failing_line(output))
    except Exception as exc:  # the kernel died, a cell timed out, the file is not a notebook ...
        return NotebookResult(name, ERROR, time.monotonic() - start, str(output),
                              f"{type(exc).__name__}: {_ANSI.sub('', str(exc)).strip()}")
    return NotebookResult(name, PASSED, time.monotonic() - start, str(output))


def _embedded_server(stack: ExitStack) -> tuple[str, str]:
    """A fresh embedded server for the run: its client URL and its monitoring URL."""
    from embedded_server import EmbeddedServer

    store = stack.enter_context(tempfile.TemporaryDirectory(prefix="pynats-regress-"))
    srv = stack.enter_context(EmbeddedServer(jetstream=True, store_dir=store, http_port=-1, mode="process"))
    return srv.client_url, f"http://127.0.0.1:{srv.http_port}"


@contextmanager
def _environment(**values: str | None):
    """Set environment variables for the notebooks' kernels (they inherit them), and put them back after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def regress(paths: list[str | Path], server: str | None = None, parameters: dict | None = None,
            out: str | Path = "regress-out", junit: str | Path | None = None, jobs: int | None = None,
            timeout: float = 600, kernel_name: str | None = None, progress: bool = True,
            creds: str | Path | None = None, monitor: str | None = None) -> RegressReport:
    """Run the regression notebooks under `paths` against `server` (default: a fresh embedded server).

    `creds` (a .creds file) is how the notebooks log in to `server`, `monitor` its monitoring URL(s) for the
    notebooks that read the servers themselves (`server_health`); both reach the notebooks' kernels as
    natscli's NATS_CREDS and the lab's NATS_MONITOR.

    Writes the executed notebooks and `report.html` under `out`, JUnit XML to `junit` if given, and returns
    the report; `report.ok` is False when any notebook failed.
    """
    from tqdm.auto import tqdm

    notebooks = discover(paths)
    if not notebooks:
        raise FileNotFoundError("no notebooks found in " + ", ".join(map(str, paths)))
    out = Path(out).resolve()
    # Names (and output paths) keep the folder the notebooks sit in: "regression/limits.ipynb".
    base = Path(os.path.commonpath([p.parent for p in notebooks])).parent
    names = {nb: os.path.relpath(nb, base) for nb in notebooks}
    if creds and not Path(creds).expanduser().is_file():
        raise FileNotFoundError(f"credentials file not found: {creds}")
    with ExitStack() as stack:
        if server:
            url = server
        else:
            url, monitor = _embedded_server(stack)
        stack.enter_context(_environment(NATS_CREDS=str(Path(creds).expanduser().resolve()) if creds else None,
                                         NATS_MONITOR=monitor))
        params = {**(parameters or {}), "server_url": url}
        report = RegressReport(url)
        workers = max(1, min(jobs or os.cpu_count() or 1, len(notebooks)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_notebook, nb, out / names[nb], params, kernel_name, timeout)
                       for nb in notebooks]
            for fut in tqdm(as_completed(futures), total=len(futures), desc="notebooks",
                            unit="nb", disable=not progress):
                report.results.append(fut.result())
    order = {str(nb): i for i, nb in enumerate(notebooks)}
    report.results.sort(key=lambda r: order[r.notebook])
    for r in report.results:
        r.notebook = names[Path(r.notebook)]
        r.output = os.path.relpath(r.output, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(report.to_html())
    if junit:
        Path(junit).parent.mkdir(parents=True, exist_ok=True)
        Path(junit).write_text(report.to_junit())
    return report
