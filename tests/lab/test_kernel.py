"""The magics and widgets in a real Jupyter kernel, executed cell by cell through nbclient: what a
notebook user sees in the outputs (tables, one-line errors on stderr, widget views with static copies).
One kernel serves the whole module; each test connects it to its own server."""
from __future__ import annotations

import re
import threading

import nbformat
import pytest
from nbclient import NotebookClient

from pynats_lab.regress import ipc_kernel_manager
from tests.servers import REPO, subprocess_env


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """Run cells in one live kernel: kernel(source) -> that cell's outputs. As under papermill, a cell
    asks for no stdin, unless kernel(source, interactive=True) (as JupyterLab does)."""
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True,
                            kernel_manager_class=ipc_kernel_manager(str(tmp_path_factory.mktemp("kernel-ipc"))))
    env = subprocess_env()
    env["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("kernel-data"))
    env.pop("NATS_URL", None)
    with client.setup_kernel(env=env, cwd=str(tmp_path_factory.mktemp("kernel-cwd"))):
        def run(source: str, interactive: bool = False) -> list[dict]:
            cell = nbformat.v4.new_code_cell(source)
            nb.cells.append(cell)
            client.kc.allow_stdin = interactive
            try:
                client.execute_cell(cell, len(nb.cells) - 1)
            finally:
                client.kc.allow_stdin = False
            return cell.outputs

        run("%load_ext pynats_lab")
        yield run


def _text(outputs, name="stdout") -> str:
    return "".join(o.get("text", "") for o in _own(outputs) if o["output_type"] == "stream" and o["name"] == name)


def _own(outputs) -> list:
    """A cell's outputs without connection notes ("nats: disconnected ...") that a previous test's server,
    stopped meanwhile, may print into whichever cell runs next."""
    return [o for o in outputs if not (o["output_type"] == "stream" and o.get("text", "").startswith("nats: "))]


def _notes(outputs, name="stderr") -> list[str]:
    """The connection notes a cell shows on stderr (problems) or stdout (news)."""
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream" and o["name"] == name)
    return [line for line in text.splitlines() if line.startswith("nats: ")]


def _data(outputs) -> dict:
    merged = {}
    for o in outputs:
        if o["output_type"] in ("execute_result", "display_data"):
            merged.update(o["data"])
    return merged


def test_stream_magics_show_tables_in_a_kernel(kernel, js_server):
    kernel(f"%nats connect {js_server.url}")
    kernel("%stream add ORDERS --subjects orders.>")
    kernel("%nats pub orders.new '{\"n\": {{Count}}}' --count 7 --js")
    out = kernel("df = %stream view ORDERS --page-size 5\ndf")
    html = _data(out)["text/html"]
    assert html.count("orders.new") == 5 and "msg_id" in html
    assert _text(kernel("print(df['seq'].tolist(), df['time'].dt.tz)")) == "[1, 2, 3, 4, 5] UTC\n"
    info = _data(kernel("%stream info ORDERS"))
    assert "Stream ORDERS" in info["text/html"] and "max_msgs" in info["text/plain"]


def test_a_wrong_use_is_one_stderr_line_not_an_error(kernel, js_server):
    kernel(f"%nats connect {js_server.url}")
    out = kernel("%stream info NOPE")
    assert [o["output_type"] for o in _own(out)] == ["stream"]
    assert _text(out, "stderr") == "%stream info: stream not found (10059)\n"
    out = kernel("%consumer next NOPE x --count=abc")
    assert _text(out, "stderr").count("\n") == 1 and not any(o["output_type"] == "error" for o in out)
    assert "published 1 message" in _data(kernel("%nats pub ok.still x"))["text/plain"]


def test_help_prints_usage(kernel):
    assert _text(kernel("%kv put --help")).startswith("usage: %kv put")


def test_widgets_render_as_widget_views_with_static_copies(kernel, js_server):
    kernel(f"%nats connect {js_server.url}")
    kernel("%stream add W --subjects w.>\n%nats pub w.x hello-{{Count}} --count 3 --js")
    viewer = _data(kernel("import pynats_lab\npynats_lab.StreamViewer('W', page_size=2)"))
    assert "application/vnd.jupyter.widget-view+json" in viewer
    assert "hello-1" in viewer["text/html"] and "hello-3" not in viewer["text/html"]
    follow = _data(kernel("v = %stream view W --follow --interval 250ms\nv"))
    assert "application/vnd.jupyter.widget-view+json" in follow and "hello-3" in follow["text/html"]
    assert _text(kernel("print(v.interval, v.follow_toggle.value)")) == "0.25 True\n"
    kernel("v.close()")
    chart = _data(kernel("pynats_lab.LatencyChart(count=20, rounds=2, wait=True)"))
    assert "application/vnd.jupyter.widget-view+json" in chart
    assert chart["image/png"] and "p90" in chart["text/html"] and "p99" not in chart["text/html"]


def test_latency_magic_shows_a_chart(kernel, server):
    kernel(f"%nats connect {server.url}")
    out = kernel("lat = %nats latency --count 10")
    assert any("image/png" in o.get("data", {}) for o in out)
    assert _text(kernel("print(sorted(set(lat['kind'])))")) == "['pub-sub', 'request-reply']\n"


ACKS_WHILE_LISTENING = """import threading, pynats_lab
worker = threading.Timer(0.2, pynats_lab.consumer_next, ("A", "w"), {"count": 20})
worker.start()
acks = %consumer acks A w --count 20 --for 20s
worker.join()"""


def test_consumer_acks_shows_a_chart_and_percentiles_or_one_line(kernel, js_server):
    kernel(f"%nats connect {js_server.url}")
    kernel("%stream add A --subjects a --storage memory\n%consumer add A w --pull\n%nats pub a x --count 20 --js")
    off = kernel("%consumer acks A w --for 100ms")
    assert _text(off, "stderr") == ("%consumer acks: A > w has no sample_freq, so the server publishes no ack "
                                    "samples for it: turn sampling on with %consumer edit A w --sample 100\n")
    kernel("%consumer edit A w --sample 100")
    out = kernel(ACKS_WHILE_LISTENING)
    assert _text(out, "stderr") == "" and not any(o["output_type"] == "error" for o in out), out
    assert any("image/png" in o.get("data", {}) for o in out), "the ack time chart"
    shown = _data(kernel("acks"))["text/html"]
    assert "20 ack samples of A &gt; w" in shown and "p90 ms" in shown and "first delivery" in shown
    assert _text(kernel("print(acks['stream_seq'].tolist() == list(range(1, 21)))")) == "True\n"


PUBLISH_DENIED = """authorization { users = [
  {user: a, password: b, permissions: {publish: {deny: ["admin.>"]}}}
] }"""

WAIT_FOR_DISCONNECT = """import time
s, t = pynats_lab.get_session(), time.monotonic()
while not any("disconnected" in text for _, text in s.events[seen:]) and time.monotonic() - t < 10:
    time.sleep(0.05)"""


def test_connection_notes_show_under_the_cell_where_they_happen(kernel, start_server):
    srv = start_server(config=PUBLISH_DENIED)
    connected = kernel(f"%nats connect {srv.url} --user a --password b\n"
                       "import pynats_lab\nseen = len(pynats_lab.get_session().events)")
    denied = kernel("%nats pub admin.reset x")
    assert _notes(denied) == ['nats: error: permissions violation for publish to "admin.reset"']
    allowed = kernel("%nats pub orders.new x")
    threading.Timer(0.3, srv.stop).start()
    waited = kernel(WAIT_FOR_DISCONNECT)
    [dropped] = _notes(waited)
    assert dropped.startswith(f"nats: disconnected from {srv.url}") and dropped.endswith("; reconnecting")
    # (The connect cell may open with the note that a previous test's server went away meanwhile.)
    earlier = [n for n in _notes(connected) + _notes(allowed) if srv.url in n or "admin.reset" in n]
    assert earlier == [], "no note lands under an earlier cell"
    assert _notes(kernel("1 + 1")) == [], "failed attempts to reconnect are not listed one by one"


def test_a_headless_run_shows_a_widget_with_its_work_done(kernel, js_server):
    kernel(f"%nats connect {js_server.url}")
    kernel("%stream add SLOW --subjects slow\n%nats pub slow s{{Count}} --count 3 --sleep 300ms --js")
    replay = _data(kernel("import pynats_lab\npynats_lab.ConsumerReplay('SLOW', replay='original')"))
    assert "application/vnd.jupyter.widget-view+json" in replay
    assert all(f"s{i}" in replay["text/html"] for i in (1, 2, 3)), "the static copy holds the whole replay"
    check = "from pynats_lab.widgets.base import headless\nprint(headless())"
    assert _text(kernel(check)) == "True\n"
    assert _text(kernel(check, interactive=True)) == "False\n", "a live frontend is never kept waiting"


def readme_notebook_block(heading: str = "In a notebook") -> str:
    """The code block under one of the README's headings, exactly as a newcomer would paste it."""
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    return section.split("```\n", 2)[1]


def test_the_readme_block_runs_verbatim_on_a_fresh_store(kernel):
    block = readme_notebook_block()
    assert "  # " in block, "the README's lines carry trailing comments, as a newcomer pastes them"
    kernel("%nats disconnect\nimport pandas as pd")  # from an earlier test's server, whose going away is noted here, not below
    out = kernel(block)
    assert not any(o["output_type"] == "error" for o in out), out
    assert _text(out, "stderr") == "" and _notes(out) == [], "every line of the README works, no error box"
    [started] = _notes(out, "stdout")
    assert started.startswith("nats: started the embedded server at nats://127.0.0.1:"), "a quiet line"
    assert _text(kernel("print(isinstance(df, pd.DataFrame), len(df), df['seq'].iloc[0])")) == "True 50 1\n"
    # Then the ops block ("Debugging and operating a server") on what the first block made.
    ops = readme_notebook_block("Debugging and operating a server")
    assert "%consumer why ORDERS worker" in ops
    out = kernel(ops)
    assert not any(o["output_type"] == "error" for o in out), out
    assert _text(out, "stderr") == "", "every ops line of the README works, no error box"
    kernel("%nats disconnect")


def test_a_trailing_comment_is_ignored_and_a_quoted_hash_kept(kernel, server):
    kernel(f"%nats connect {server.url}   # a comment after the URL")
    kernel("got = %nats sub hash.> --background   # collect")
    out = kernel("%nats pub hash.a '#1 in quotes' # the comment\n"
                 "%nats pub hash.b \"# also\"#tail-in-a-word --count 2   # {undefined_name} is not expanded")
    assert _text(out, "stderr") == ""
    shown = kernel("print(got.stop()['data'].tolist())")
    assert _text(shown) == "['#1 in quotes', '# also#tail-in-a-word', '# also#tail-in-a-word']\n"


def _rows(html: str) -> int:
    return html.count("<tr")


def test_tables_read_well_keep_their_data_and_say_why_they_are_empty(kernel, js_server):
    kernel(f"%nats connect {js_server.url}")
    added = _data(kernel("%stream add T --subjects t.>"))
    assert added["text/plain"].startswith("stream T: subjects t.>, file storage, limits retention, 0 messages")
    assert "max_msgs" not in added["text/html"], "one line, the full info one call away"
    fields = ", ".join(f'"k{i}": {i}' for i in range(40))
    acks = _data(kernel("%nats pub t.json '{" + fields + "}' --count 30 --js -H who:lab"))
    assert acks["text/html"].startswith("<p>30 messages stored in T seq 1..30; ack ")
    view = _data(kernel("df = %stream view T --page-size 5\ndf"))["text/html"]
    assert view.startswith("<p>T: 5 messages, seq 1..5 (the stream holds 30, seq 1..30); next page: "
                           "%stream view T --id 6</p>")
    assert re.search(r"<td>\d\d:\d\d:\d\d\.\d{3}</td>", view) and "+00:00" not in view, "a compact time"
    assert re.search(r'"k\d+": \d+ …</td>', view), "a JSON payload is cut between values"
    assert "who: lab" in view and "{}" not in view and _rows(view) == 6
    kept = kernel("print(df['time'].dtype, len(df['data'].iloc[0]) > 300, df['headers'].iloc[0])")
    assert _text(kept) == "datetime64[ns, UTC] True {'who': 'lab'}\n", "the data stays whole"
    past = _data(kernel("%stream view T --id 999999"))["text/html"]
    assert "no message at or after seq 999999; the stream ends at 30" in past
    nothing = _data(kernel("%stream view T --subject nope.x"))["text/html"]
    assert "no message on nope.x in T (its 30 messages are on t.&gt;" in nothing
    consumer = _data(kernel("%consumer add T w --pull"))["text/plain"]
    assert consumer.startswith("consumer w on T: pull, all subjects, deliver all, ack explicit, 30 pending")
    pulled = _data(kernel("%consumer next T w --count 3"))["text/html"]
    assert pulled.startswith("<p>3 messages from T &gt; w, acknowledged; 27 more pending</p>")
    assert "consumer_seq</th>" not in pulled and "also in the DataFrame: size, msg_id, consumer_seq, received" in pulled
    kernel("%stream add E --subjects e\n%consumer add E w --pull")
    empty = kernel("%consumer next E w --timeout 300ms")
    assert "no message for w within 0.3s: E holds no messages" in _data(empty)["text/plain"]
    assert _text(empty, "stderr") == ""
    lat = _data(kernel("%nats latency --count 10 --no-chart"))
    assert lat["text/html"].startswith("<p>30 latency samples (10 per kind")
    assert _rows(lat["text/html"]) == 4, "the percentiles of three kinds, not 30 samples"
    kernel("%stream rm T\n%stream rm E")


def test_a_wrong_call_in_python_shows_one_line_not_a_traceback(kernel, js_server):
    kernel(f"%nats connect {js_server.url}")
    out = kernel("import pynats_lab as lab\nlab.StreamViewer('NOPE')")
    [error] = [o for o in out if o["output_type"] == "error"]
    assert error["traceback"] == [f"{error['ename']}: stream not found (10059)"], "one line, no frames"


def test_long_work_shows_a_progress_bar_and_a_summary_short_work_none(kernel, server):
    kernel(f"%nats connect {server.url}")
    quick = kernel("%nats pub quick.x hi --count 3")
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in quick)
    # 150 pauses of 10 ms: over a second by construction, whatever the machine.
    slow = kernel("%nats pub slow.x hi --count 150 --sleep 10ms")
    bars = [o for o in slow if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert bars and "publishing to slow.x" in bars[0]["data"]["text/plain"]
    assert re.fullmatch(r"published 150 messages to slow\.x in \d+\.\d s \([\d,]+/s\)", _data(slow)["text/plain"]
                        .strip("'"))
    assert _text(slow, "stderr") == ""
