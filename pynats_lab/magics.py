"""`%nats`, `%stream`, `%consumer`, `%kv`, `%server`: argument parsing plus one call into the Python API each.

A magic returns what its API function returns (DataFrame, StreamInfo, widget, Done), so
`df = %stream view ORDERS` works. A wrong use prints one line (e.g. `%stream info: stream not found
(10059)`) and returns None: no traceback, and the session stays as it was.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from typing import Any, Callable

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand

from .errors import describe


class _Stop(Exception):
    """Help was printed; nothing else to do."""


class _Usage(Exception):
    """The command line itself is wrong."""


class Parser(argparse.ArgumentParser):
    """argparse that reports instead of exiting, and prints help to stdout."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise _Usage(f"{message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            raise _Usage(message.strip())
        raise _Stop()

    def print_help(self, file=None) -> None:
        sys.stdout.write(self.format_help())


def _commands(prog: str, description: str) -> tuple[Parser, Any]:
    parser = Parser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    return parser, sub


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def strip_comment(line: str) -> str:
    """`line` without a trailing `# comment`, as Python and a shell read one: a `#` that starts a word
    outside quotes begins the comment; a quoted `#` or one inside a word (`a#b`) stays."""
    quote = None
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


_TEMPLATE = re.compile(r"(\{\{.*?\}\})")


def expand(line: str, namespace: dict) -> str:
    """IPython's {expr} and $var expansion from the user's namespace, leaving {{template}} parts alone.
    A part that does not expand (e.g. JSON braces) stays as typed, as IPython itself does."""
    from IPython.utils.text import DollarFormatter

    formatter = DollarFormatter()
    out = []
    for part in _TEMPLATE.split(line):
        if _TEMPLATE.fullmatch(part):
            out.append(part)
            continue
        try:
            out.append(formatter.vformat(part, args=[], kwargs=dict(namespace)))
        except Exception:
            # JSON braces next to a {var} (e.g. '{"n": {{Count}}}' --count {n}): expand each field that
            # is an expression on its own, leave the rest as typed.
            out.append(_FIELD.sub(lambda m: _expand_field(formatter, m.group(0), namespace), part))
    return "".join(out)


_FIELD = re.compile(r"\{[^{}]*\}")


def _expand_field(formatter, field: str, namespace: dict) -> str:
    try:
        return formatter.vformat(field, args=[], kwargs=dict(namespace))
    except Exception:
        return field


def _monitor_flag(p: Parser) -> None:
    p.add_argument("--monitor", metavar="URL", help="monitoring URL(s), comma-separated for a cluster "
                   "(remembered for the session)")


# -- %nats -------------------------------------------------------------------------------------------
def nats_parser() -> Parser:
    p, sub = _commands("%nats", "Core NATS: connect, publish, subscribe, request, server info, latency, bench.")
    c = sub.add_parser("connect", help="connect to a server (no URL: NATS_URL, else the embedded server)",
                       description="Connect to URL (comma-separated for a cluster). Without a URL and without "
                       "NATS_URL the embedded server starts (JetStream on, 127.0.0.1).")
    c.add_argument("url", nargs="?")
    c.add_argument("--fresh", action="store_true",
                   help="an embedded server of this notebook's own on an empty store, deleted at disconnect")
    c.add_argument("--context", help="natscli context name or JSON file (~/.config/nats/context/NAME.json)")
    c.add_argument("--creds", metavar="FILE", help="user credentials file (JWT + seed)")
    c.add_argument("--nkey", metavar="FILE", help="NKey seed file")
    c.add_argument("--user", help="user name (or USER:PASSWORD)")
    c.add_argument("--password", help="password")
    c.add_argument("--token", help="authentication token")
    c.add_argument("--tls-ca", metavar="FILE", help="CA certificate to verify the server")
    c.add_argument("--tls-cert", metavar="FILE", help="client certificate")
    c.add_argument("--tls-key", metavar="FILE", help="client certificate key")
    c.add_argument("--monitor", metavar="URL", help="the servers' monitoring URL(s), comma-separated, for "
                   "%%server and %%nats subs when the user is not in the system account")
    sub.add_parser("disconnect", help="close the connection (and stop the embedded server if started)")
    pub = sub.add_parser("pub", help="publish messages (also %%%%nats pub SUBJECT with the cell as payload)",
                         description="Publish to SUBJECT. PAYLOAD, SUBJECT and --msg-id may use natscli "
                         "templates: {{Count}} {{ID}} {{TimeStamp}} {{Unix}} {{UnixNano}} {{Time}} "
                         "{{Random MIN MAX}}.\n{python_expr} and $var still expand from your variables.")
    pub.add_argument("subject")
    pub.add_argument("payload", nargs="?", default="")
    pub.add_argument("--count", type=_int, default=1, help="publish N messages (default 1)")
    pub.add_argument("-H", "--header", action="append", metavar="K:V", help="add a header (repeatable)")
    pub.add_argument("--msg-id", help="Nats-Msg-Id header (for JetStream de-duplication)")
    pub.add_argument("--ttl", metavar="DUR", help="message TTL (Nats-TTL; the stream needs --allow-msg-ttl), "
                     "e.g. 30s, 1h, never")
    pub.add_argument("--incr", metavar="N", help="add N to a counter (Nats-Incr; the stream needs "
                     "--allow-msg-counter); no payload, acked, the new total in `val`")
    pub.add_argument("--batch", action="store_true", help="the --count messages as one atomic batch (the "
                     "stream needs allow_atomic): all stored or none; returns the commit's ack")
    pub.add_argument("--fast", action="store_true", help="the --count messages as one fast batch (the stream "
                     "needs allow_batched, nats-server 2.14+): stored as they arrive, acknowledged every --flow "
                     "messages, one ack at the commit")
    pub.add_argument("--flow", type=_int, default=100, metavar="N",
                     help="with --fast: ask the stream for a flow ack every N messages (default 100)")
    pub.add_argument("--schedule", metavar="WHEN", help="a message schedule (the stream needs "
                     "allow_msg_schedules): '@every 10s', '@at TIME', cron, @hourly, or a delay such as 30s")
    pub.add_argument("--target", metavar="SUBJECT", help="where a --schedule stores its message when due")
    pub.add_argument("-J", "--js", "--jetstream", dest="js", action="store_true",
                     help="publish to JetStream and wait for each ack (returns the acks)")
    pub.add_argument("--reply", help="reply subject")
    pub.add_argument("--sleep", metavar="DUR", help="pause between messages, e.g. 100ms")
    pub.add_argument("--no-templates", action="store_true", help="send {{...}} literally")
    s = sub.add_parser("sub", help="subscribe and collect messages into a DataFrame")
    s.add_argument("subject")
    s.add_argument("--count", type=_int, help="stop after N messages")
    s.add_argument("--timeout", default="2s", metavar="DUR", help="stop after this long (default 2s)")
    s.add_argument("--queue", help="queue group")
    s.add_argument("--raw", action="store_true", help="keep payloads as bytes")
    s.add_argument("--background", action="store_true",
                   help="return at once; the result keeps collecting (.df, .stop())")
    r = sub.add_parser("req", help="send a request, collect the reply (or replies)")
    r.add_argument("subject")
    r.add_argument("payload", nargs="?", default="")
    r.add_argument("--timeout", default="2s", metavar="DUR")
    r.add_argument("--replies", type=_int, default=1, help="wait for up to N replies")
    r.add_argument("-H", "--header", action="append", metavar="K:V")
    r.add_argument("--raw", action="store_true")
    sub.add_parser("info", help="server INFO and this connection")
    sb = sub.add_parser("subs", help="who would receive a message on SUBJECT (nothing is sent)",
                        description="Every subscription, on every server, that a message published on SUBJECT "
                        "would match: server, client (id, name, IP), subscription, queue group, messages so far. "
                        "Read through $SYS (system-account user) or the monitoring port.")
    sb.add_argument("subject")
    sb.add_argument("--account", metavar="A", help="only this account's subscriptions")
    _monitor_flag(sb)
    tr = sub.add_parser("trace", help="trace a message hop by hop through the servers (nats-server 2.11+)",
                        description="Publish on SUBJECT with Nats-Trace-Dest and, unless --deliver, "
                        "Nats-Trace-Only (nobody receives it), and show every server's trace: ingress, subject "
                        "mapping, stream export, service import, JetStream, egress; with a drawing of the route.")
    tr.add_argument("subject")
    tr.add_argument("payload", nargs="?", default="")
    tr.add_argument("-H", "--header", action="append", metavar="K:V", help="add a header (repeatable)")
    tr.add_argument("--deliver", action="store_true", help="really deliver the message (and store it)")
    tr.add_argument("--timeout", default="2s", metavar="DUR", help="wait this long for the servers' events")
    tr.add_argument("--no-chart", action="store_true", help="no drawing of the route")
    ev = sub.add_parser("events", help="JetStream advisories (and connection events) as a DataFrame",
                        description="Listen to $JS.EVENT.ADVISORY.> (and, for a system-account user, "
                        "$SYS.ACCOUNT.*.CONNECT/DISCONNECT): max_deliver, terminated, nak, consumer_action, "
                        "stream_action, api_audit, consumer_pause, client_connect, client_disconnect ...")
    ev.add_argument("--count", type=_int, help="stop after N events")
    ev.add_argument("--timeout", default="5s", metavar="DUR", help="stop after this long (default 5s)")
    ev.add_argument("--type", metavar="T", help="only these types (comma-separated, wildcards: consumer_*)")
    ev.add_argument("--background", action="store_true",
                    help="return at once; the result keeps collecting (.df, .stop())")
    ev.add_argument("--capture", metavar="STREAM",
                    help="also keep every advisory in STREAM from now on (created if missing)")
    ev.add_argument("--from", dest="source", metavar="STREAM", help="read the advisories STREAM kept instead")
    lat = sub.add_parser("latency", help="pub->sub, request/reply and JetStream publish latency + chart")
    lat.add_argument("--count", type=_int, default=200, help="samples per kind (default 200)")
    lat.add_argument("--size", default="128", help="payload size (default 128)")
    lat.add_argument("--no-js", action="store_true", help="skip the JetStream publish-ack kind")
    lat.add_argument("--no-chart", action="store_true")
    b = sub.add_parser("bench", help="throughput in the spirit of `nats bench` + chart")
    b.add_argument("subject", nargs="?", default="bench")
    b.add_argument("--pub", type=_int, default=1, help="publishers (default 1)")
    b.add_argument("--sub", type=_int, default=1, help="subscribers (default 1)")
    b.add_argument("--msgs", type=_int, default=10000, help="messages in total (default 10000)")
    b.add_argument("--size", default="128", help="message size (default 128)")
    b.add_argument("--js", action="store_true", help="publish to a temporary JetStream stream")
    b.add_argument("--no-chart", action="store_true")
    return p


# -- %stream -----------------------------------------------------------------------------------------
def _stream_settings(p: Parser, adding: bool) -> None:
    p.add_argument("--subjects", nargs="+", metavar="S", help="subjects the stream stores")
    p.add_argument("--description")
    if adding:
        p.add_argument("--storage", choices=["file", "memory"], default="file")
        p.add_argument("--retention", choices=["limits", "interest", "workqueue"], default="limits")
        p.add_argument("--replicas", type=_int, help="replicas (cluster only)")
    p.add_argument("--max-msgs", type=_int, metavar="N")
    p.add_argument("--max-bytes", metavar="SIZE", help="e.g. 1GB, -1 unlimited")
    p.add_argument("--max-age", metavar="DUR", help="e.g. 24h, 7d")
    p.add_argument("--max-msg-size", metavar="SIZE")
    p.add_argument("--max-msgs-per-subject", type=_int, metavar="N")
    p.add_argument("--dupe-window", metavar="DUR", help="de-duplication window, e.g. 2m")
    p.add_argument("--discard", choices=["old", "new"])
    p.add_argument("--allow-rollup", action="store_true", default=None)
    p.add_argument("--deny-delete", action="store_true", default=None)
    p.add_argument("--deny-purge", action="store_true", default=None)
    p.add_argument("--no-allow-direct", dest="allow_direct", action="store_false", default=None,
                   help="turn direct get off (default on; %%stream view is faster with it)")
    p.add_argument("--allow-msg-ttl", action="store_true", default=None,
                   help="messages may carry a TTL (Nats-TTL header; %%nats pub --ttl)")
    p.add_argument("--subject-delete-marker-ttl", "--subject-del-markers-ttl", dest="subject_delete_marker_ttl",
                   metavar="DUR", help="leave a delete marker this long when max age removes a subject's last message")
    p.add_argument("--transform", nargs=2, metavar=("SRC", "DEST"), help="subject transform of stored messages")
    p.add_argument("--transform-source", metavar="SRC", help="natscli's spelling: with --transform-destination")
    p.add_argument("--transform-destination", metavar="DEST")
    p.add_argument("--republish", nargs=2, metavar=("SRC", "DEST"), help="republish stored messages to DEST")
    p.add_argument("--republish-source", metavar="SRC", help="natscli's spelling: with --republish-destination")
    p.add_argument("--republish-destination", metavar="DEST")
    p.add_argument("--republish-headers-only", "--republish-headers", dest="republish_headers_only",
                   action="store_true", default=None, help="republish headers only, no bodies")
    p.add_argument("--metadata", action="append", metavar="K=V", help="stream metadata (repeatable)")
    if adding:
        p.add_argument("--mirror", nargs="+", metavar="ARG",
                       help="mirror another stream: STREAM [FILTER [DEST]] (no --subjects; DEST maps FILTER)")
        p.add_argument("--allow-msg-counter", "--allow-counter", dest="allow_msg_counter", action="store_true",
                       default=None, help="a counter stream: publishes carry Nats-Incr (%%nats pub --incr N)")
    p.add_argument("--allow-atomic", "--allow-batch", dest="allow_atomic", action="store_true", default=None,
                   help="atomic batch publish (%%nats pub --batch)")
    p.add_argument("--allow-fast", dest="allow_batched", action="store_true", default=None,
                   help="fast batch publish, nats-server 2.14+ (%%nats pub --fast)")
    p.add_argument("--allow-msg-schedules", "--allow-schedules", dest="allow_msg_schedules", action="store_true",
                   default=None, help="message schedules (%%nats pub --schedule WHEN --target SUBJECT)")
    p.add_argument("--source", dest="sources", nargs="+", action="append", metavar="ARG",
                   help="copy from another stream: STREAM [FILTER [DEST]] (repeatable)")
    p.add_argument("--start-seq", type=_int, metavar="N", help="the mirror or sources begin at this sequence")
    p.add_argument("--source-consumer", metavar="NAME",
                   help="nats-server 2.14+: read the mirror (or the one source) through the origin's durable push "
                   "consumer NAME (%%consumer add ORIGIN NAME --push --target SUBJECT --ack flow_control)")
    p.add_argument("--source-deliver", metavar="SUBJECT", help="with --source-consumer: its deliver subject")
    p.add_argument("--start-time", metavar="TIME", help="... or at this time (ISO, or a duration ago: 2h)")
    if not adding:
        p.add_argument("--no-mirror", action="store_true", default=None,
                       help="promote a mirror: stop copying, keep its messages (then give it --subjects)")
        p.add_argument("--no-transform", action="store_true", default=None, help="remove the subject transform")
        p.add_argument("--no-republish", action="store_true", default=None, help="remove the republish")


def stream_parser() -> Parser:
    p, sub = _commands("%stream", "JetStream streams: add, ls, report, subjects, info, edit, rm, purge, rmm, get, view, backup, restore.")
    a = sub.add_parser("add", help="create a stream")
    a.add_argument("name")
    _stream_settings(a, adding=True)
    sub.add_parser("ls", aliases=["list"], help="list streams")
    rep = sub.add_parser("report", help="one row per stream: storage, replicas, consumers, messages, lag",
                         description="One row per stream (natscli's `nats stream report`): storage, retention, "
                         "replicas, consumers, messages, bytes, first/last sequence, deleted, subjects, lost; on "
                         "a cluster the leader and each replica's lag. Read-only.")
    rep.add_argument("--subject", metavar="FILTER", help="only streams that listen on this subject")
    rep.add_argument("--sort", default="name", metavar="FIELD",
                     help="name (default), messages, bytes, consumers, storage, subjects, deleted, lag")
    sj = sub.add_parser("subjects", help="subjects in a stream with their message counts, and a bar chart",
                        description="Subjects stored in a stream with their message counts, most first, and a "
                        "bar chart of the top ones. From the stream info (subjects_filter): no message is read.")
    sj.add_argument("name")
    sj.add_argument("filter", nargs="?", help="only subjects matching this (wildcards allowed)")
    sj.add_argument("--sort", choices=["messages", "subject"], default="messages")
    sj.add_argument("--top", type=_int, default=20, metavar="N", help="subjects in the chart (default 20)")
    sj.add_argument("--no-chart", action="store_true")
    i = sub.add_parser("info", help="configuration and state of a stream")
    i.add_argument("name")
    e = sub.add_parser("edit", help="change a stream's settings")
    e.add_argument("name")
    _stream_settings(e, adding=False)
    rm = sub.add_parser("rm", aliases=["delete"], help="delete a stream")
    rm.add_argument("name")
    rm.add_argument("-f", "--force", action="store_true", help="accepted for natscli habits; no prompt here")
    pu = sub.add_parser("purge", help="remove messages (all, by subject, keep the newest N)")
    pu.add_argument("name")
    pu.add_argument("--subject", help="only messages on this subject")
    pu.add_argument("--keep", type=_int, help="keep the newest N (0 or more)")
    pu.add_argument("--seq", type=_int, help="remove messages before this sequence (1 or more)")
    pu.add_argument("-f", "--force", action="store_true", help="accepted for natscli habits")
    rmm = sub.add_parser("rmm", help="remove one message by sequence (erased)")
    rmm.add_argument("name")
    rmm.add_argument("seq", type=_int)
    rmm.add_argument("-f", "--force", action="store_true", help="accepted for natscli habits")
    g = sub.add_parser("get", help="one message by sequence (or the last on a subject)")
    g.add_argument("name")
    g.add_argument("seq", nargs="?", type=_int)
    g.add_argument("--last-for", metavar="SUBJECT")
    g.add_argument("--raw", action="store_true")
    v = sub.add_parser("view", help="a page of messages as a DataFrame, read-only (works on work queues)")
    v.add_argument("name")
    v.add_argument("--id", type=_int, metavar="SEQ", help="start at this sequence")
    v.add_argument("--since", metavar="DUR", help="start at messages newer than this (e.g. 2h) or an ISO time")
    v.add_argument("--subject", metavar="FILTER", help="only messages on this subject (wildcards allowed)")
    v.add_argument("--page-size", type=_int, default=100, metavar="N", help="messages per page (default 100)")
    v.add_argument("--last", action="store_true", help="show the newest page")
    v.add_argument("--follow", action="store_true",
                   help="keep showing new messages (a live StreamViewer in Jupyter, a tail in a terminal)")
    v.add_argument("--interval", metavar="DUR", help="with --follow: look for new messages this often (default 1s)")
    v.add_argument("--timeout", metavar="DUR", help="with --follow in a terminal: stop after this long")
    v.add_argument("--raw", action="store_true", help="keep payloads as bytes")
    bk = sub.add_parser("backup", help="save config, consumers and messages to a directory")
    bk.add_argument("name")
    bk.add_argument("dir")
    bk.add_argument("--snapshot", action="store_true",
                    help="the server's snapshot in natscli's layout (stream.tar.s2, backup.json): sequences, times "
                         "and consumer state come back exactly; `nats stream restore` reads it")
    bk.add_argument("--no-consumers", action="store_true", help="with --snapshot: leave the consumers out")
    bk.add_argument("--chunk-size", metavar="SIZE", help="with --snapshot: bytes per chunk (server default 128KiB)")
    bk.add_argument("--window-size", metavar="SIZE", help="with --snapshot: bytes in flight (server default 8MiB)")
    bk.add_argument("--no-progress", action="store_true")
    rs = sub.add_parser("restore", help="recreate a stream from a backup directory (readable files or a snapshot, "
                                        "found out from the files)")
    rs.add_argument("dir")
    rs.add_argument("--name", help="restore under a new name (readable backups only)")
    rs.add_argument("--subjects", nargs="+", metavar="S", help="new subjects (needed beside the original)")
    rs.add_argument("--no-progress", action="store_true")
    return p


# -- %consumer ---------------------------------------------------------------------------------------
def consumer_parser() -> Parser:
    p, sub = _commands("%consumer", "JetStream consumers: add, ls, report, why, watch, acks, info, edit, pause, resume, next, unpin, reset, sub, rm.")
    a = sub.add_parser("add", help="create a durable consumer")
    a.add_argument("stream")
    a.add_argument("name")
    kind = a.add_mutually_exclusive_group()
    kind.add_argument("--pull", action="store_true", help="pull consumer (default)")
    kind.add_argument("--push", action="store_true", help="push consumer (needs --target)")
    a.add_argument("--target", metavar="SUBJECT", help="push: the subject messages are delivered to")
    a.add_argument("--deliver", default="all",
                   help="all, last, new, last-per-subject, a start sequence, or a duration like 1h")
    a.add_argument("--ack", choices=["explicit", "none", "all", "flow_control"], default="explicit",
                   help="ack policy (default explicit); flow_control (nats-server 2.14+, push only): acked by the "
                   "flow control replies, 1s heartbeat, no --ack-wait/--max-deliver; what --source-consumer reads")
    a.add_argument("--replay", choices=["instant", "original"], default="instant")
    a.add_argument("--filter", action="append", metavar="SUBJECT", help="only these subjects (repeatable)")
    a.add_argument("--max-deliver", type=_int, metavar="N")
    a.add_argument("--ack-wait", metavar="DUR")
    a.add_argument("--max-pending", type=_int, metavar="N", help="max ack pending")
    a.add_argument("--max-waiting", type=_int, metavar="N", help="pull: max waiting requests")
    a.add_argument("--heartbeat", metavar="DUR", help="push: idle heartbeat")
    a.add_argument("--flow-control", action="store_true", default=None, help="push: flow control")
    a.add_argument("--deliver-group", metavar="GROUP", help="push: queue group")
    a.add_argument("--description")
    a.add_argument("--priority-policy", choices=["none", "overflow", "pinned_client", "prioritized"],
                   help="pull: priority groups (nats-server 2.11+), needs --priority-group")
    a.add_argument("--priority-group", action="append", metavar="G", help="a priority group (repeatable)")
    a.add_argument("--priority-timeout", metavar="DUR",
                   help="pinned_client: how long a pin lasts without requests (default 2m)")
    ls = sub.add_parser("ls", aliases=["list"], help="the consumers of a stream")
    ls.add_argument("stream")
    rep = sub.add_parser("report", help="one row per consumer: mode, ack policy, pending, redelivered, paused",
                         description="One row per consumer of STREAM (natscli's `nats consumer report`): pull/"
                         "push, ack policy and wait, num_pending, num_ack_pending, redelivered, waiting, ack "
                         "floor, last delivery, paused. Read-only.")
    rep.add_argument("stream")
    rep.add_argument("--sort", default="name", metavar="FIELD",
                     help="name (default), pending, ack-pending, redelivered, waiting, last-delivery")
    ed = sub.add_parser("edit", help="change a consumer's settings; prints what changed",
                        description="Change the settings a consumer allows to change (natscli's `consumer edit`); "
                        "prints each change, old -> new. The server refuses the others with its error.")
    ed.add_argument("stream")
    ed.add_argument("name")
    ed.add_argument("--description")
    ed.add_argument("--ack-wait", metavar="DUR")
    ed.add_argument("--max-deliver", type=_int, metavar="N")
    ed.add_argument("--max-pending", type=_int, metavar="N", help="max ack pending")
    ed.add_argument("--max-waiting", type=_int, metavar="N", help="pull: max waiting requests")
    ed.add_argument("--filter", action="append", metavar="SUBJECT", help="filter subject(s) (repeatable)")
    ed.add_argument("--heartbeat", metavar="DUR", help="push: idle heartbeat")
    ed.add_argument("--inactive-threshold", metavar="DUR")
    ed.add_argument("--backoff", nargs="+", metavar="DUR", help="redelivery delays, e.g. 1s 5s 30s")
    ed.add_argument("--metadata", action="append", metavar="K=V", help="add metadata (repeatable)")
    ed.add_argument("--sample", type=_int, metavar="PERCENT", help="sample this %% of acks (0-100) for %%consumer acks")
    ed.add_argument("--target", metavar="SUBJECT", help="push: a new deliver subject")
    pa = sub.add_parser("pause", help="pause a consumer until a time or for a duration",
                        description="Pause a consumer (nats-server 2.11+): it delivers nothing until then.")
    pa.add_argument("stream")
    pa.add_argument("name")
    pa.add_argument("until_arg", nargs="?", metavar="UNTIL", help="as --until")
    pa.add_argument("--until", metavar="TIME|DUR",
                    help="a duration from now (2h) or a time (ISO, or '2026-01-02 15:04:05'; UTC)")
    rs = sub.add_parser("resume", help="resume a paused consumer now")
    rs.add_argument("stream")
    rs.add_argument("name")
    wa = sub.add_parser("watch", help="num_pending, ack pending, redelivered, waiting over time (LagChart)",
                        description="Read the consumers of STREAM (or one) every --interval: a live LagChart in "
                        "Jupyter, a line per consumer per reading in a terminal. Read-only.")
    wa.add_argument("stream")
    wa.add_argument("name", nargs="?")
    wa.add_argument("--interval", default="1s", metavar="DUR", help="how often to read (default 1s)")
    wa.add_argument("--timeout", metavar="DUR", help="stop after this long (default: until stopped)")
    ak = sub.add_parser("acks", help="sampled ack times (delivery to ack) and redeliveries, with a chart",
                        description="Listen to the ack samples the server publishes for a consumer with sample_freq\n"
                        "($JS.EVENT.METRIC.CONSUMER.ACK.STREAM.NAME): per sampled ack, how long the message took from\n"
                        "its delivery to its ack (ack_time) and at which delivery it was acked. Under the chart:\n"
                        "p50/p90/p99 per first delivery and redelivery. A p99 near ack_wait means messages that were\n"
                        "only slow get redelivered; many acks at a redelivery mean work that fails or times out.\n"
                        "Turn sampling on with: %consumer edit STREAM NAME --sample 100 (every ack; explicit-ack\n"
                        "consumers only). natscli and NUI have no such view. Read-only.")
    ak.add_argument("stream")
    ak.add_argument("name")
    ak.add_argument("--for", "--timeout", dest="timeout", default="10s", metavar="DUR",
                    help="listen this long (default 10s)")
    ak.add_argument("--count", type=_int, metavar="N", help="stop after N samples")
    ak.add_argument("--background", action="store_true",
                    help="return at once; the result keeps collecting (.df, .stop())")
    ak.add_argument("--no-chart", action="store_true")
    why = sub.add_parser("why", help="why a consumer delivers nothing (or twice): findings and what to do",
                         description="Findings (finding, severity, detail, what to do) from the consumer's and "
                         "stream's info: paused, max_ack_pending reached, nobody pulling, max_waiting reached, push without "
                         "subscriber, a filter that matches nothing, a start past the end, max_deliver "
                         "exhausted, ack_wait shorter than processing, messages removed by another consumer; "
                         "or healthy. Read-only.")
    why.add_argument("stream")
    why.add_argument("name")
    why.add_argument("--idle", default="30s", metavar="DUR",
                     help="no delivery for this long counts as nobody pulling (default 30s)")
    why.add_argument("--processing", metavar="DUR", help="how long a message takes to process, if known")
    for name, text in (("info", "configuration and state (pending, ack pending, redelivered)"),
                       ("rm", "delete a consumer")):
        x = sub.add_parser(name, help=text, aliases=["delete"] if name == "rm" else [])
        x.add_argument("stream")
        x.add_argument("name")
        if name == "rm":
            x.add_argument("-f", "--force", action="store_true", help="accepted for natscli habits")
    n = sub.add_parser("next", help="pull the next messages from a pull consumer")
    n.add_argument("stream")
    n.add_argument("name")
    n.add_argument("--count", type=_int, default=1)
    act = n.add_mutually_exclusive_group()
    act.add_argument("--no-ack", dest="action", action="store_const", const="none", help="leave unacknowledged")
    act.add_argument("--nak", dest="action", action="store_const", const="nak", help="ask for redelivery")
    act.add_argument("--term", dest="action", action="store_const", const="term", help="never redeliver")
    n.add_argument("--timeout", default="2s", metavar="DUR")
    n.add_argument("--raw", action="store_true")
    n.add_argument("--group", metavar="G", help="the priority group to pull for (consumers with priority groups)")
    n.add_argument("--min-pending", type=_int, metavar="N", help="overflow: only while N or more are pending")
    n.add_argument("--min-ack-pending", type=_int, metavar="N",
                   help="overflow: only while N or more wait for their ack")
    n.add_argument("--priority", type=_int, metavar="N", help="prioritized: 0-9, lower is served first")
    n.add_argument("--pin-id", metavar="ID", help="pinned_client: the Nats-Pin-Id of earlier messages")
    un = sub.add_parser("unpin", help="release the pinned client of a priority group",
                        description="Release the pin of a pinned_client consumer's group: the next pull request "
                        "without an id takes it (nats-server 2.11+).")
    un.add_argument("stream")
    un.add_argument("name")
    un.add_argument("--group", required=True, metavar="G")
    rz = sub.add_parser("reset", help="deliver again from the ack floor, or from a stream sequence",
                        description="Move the consumer back to its ack floor, or to --seq N as its deliver policy "
                        "allows; what it had delivered and not acknowledged comes again (nats-server 2.14+).")
    rz.add_argument("stream")
    rz.add_argument("name")
    rz.add_argument("--seq", type=_int, metavar="N", help="the stream sequence to deliver from next")
    s = sub.add_parser("sub", help="receive from a push or pull consumer for a while")
    s.add_argument("stream")
    s.add_argument("name")
    s.add_argument("--count", type=_int)
    s.add_argument("--timeout", default="2s", metavar="DUR")
    s.add_argument("--no-ack", dest="action", action="store_const", const="none", default="ack")
    s.add_argument("--raw", action="store_true")
    r = sub.add_parser("replay", help="replay a stream through a temporary consumer (ConsumerReplay widget)")
    r.add_argument("stream")
    r.add_argument("--deliver", default="all")
    r.add_argument("--replay", choices=["instant", "original"], default="original")
    r.add_argument("--filter", metavar="SUBJECT")
    r.add_argument("--count", type=_int)
    return p


# -- %kv ---------------------------------------------------------------------------------------------
def kv_parser() -> Parser:
    p, sub = _commands("%kv", "Key-value buckets: add, ls, put, create, update, get, del, history, watch, rm.")
    a = sub.add_parser("add", help="create a bucket")
    a.add_argument("bucket")
    a.add_argument("--history", type=_int, default=1, help="revisions kept per key (1-64)")
    a.add_argument("--ttl", metavar="DUR", help="how long values live")
    a.add_argument("--max-value-size", metavar="SIZE")
    a.add_argument("--max-bytes", metavar="SIZE")
    a.add_argument("--storage", choices=["file", "memory"], default="file")
    a.add_argument("--replicas", type=_int, default=1)
    a.add_argument("--description")
    a.add_argument("--priority-policy", choices=["none", "overflow", "pinned_client", "prioritized"],
                   help="pull: priority groups (nats-server 2.11+), needs --priority-group")
    a.add_argument("--priority-group", action="append", metavar="G", help="a priority group (repeatable)")
    a.add_argument("--priority-timeout", metavar="DUR",
                   help="pinned_client: how long a pin lasts without requests (default 2m)")
    ls = sub.add_parser("ls", aliases=["list"], help="buckets, or the keys of one bucket")
    ls.add_argument("bucket", nargs="?")
    writes = {
        "put": ("set a value (also %%%%kv put BUCKET KEY with the cell as value)", None),
        "create": ("set a key only if it has no value (also %%%%kv create BUCKET KEY)",
                   "Set KEY only if it has no value (never set, deleted or purged). "
                   "Refused with the server's 'wrong last sequence' if it has one."),
        "update": ("set a key only if it is still at --revision N (compare-and-set)",
                   "Set KEY only if its latest revision is still N, the one you read. "
                   "Refused with the server's 'wrong last sequence' if anyone changed it since."),
    }
    for name, (text, description) in writes.items():
        w = sub.add_parser(name, help=text, description=description)
        w.add_argument("bucket")
        w.add_argument("key")
        w.add_argument("value", nargs="?", default="")
        if name == "update":
            w.add_argument("--revision", type=_int, required=True, metavar="N", help="the revision you read")
    g = sub.add_parser("get", help="the current value of a key")
    g.add_argument("bucket")
    g.add_argument("key")
    g.add_argument("--revision", type=_int)
    d = sub.add_parser("del", aliases=["delete"], help="delete a key")
    d.add_argument("bucket")
    d.add_argument("key")
    d.add_argument("--purge", action="store_true", help="also remove its history")
    d.add_argument("-f", "--force", action="store_true", help="accepted for natscli habits")
    h = sub.add_parser("history", help="every kept revision of a key")
    h.add_argument("bucket")
    h.add_argument("key")
    w = sub.add_parser("watch", help="watch a bucket for a while")
    w.add_argument("bucket")
    w.add_argument("key", nargs="?", default=">")
    w.add_argument("--count", type=_int)
    w.add_argument("--timeout", default="2s", metavar="DUR")
    w.add_argument("--history", action="store_true", help="start with all kept history")
    rm = sub.add_parser("rm", help="delete a bucket")
    rm.add_argument("bucket")
    rm.add_argument("-f", "--force", action="store_true", help="accepted for natscli habits")
    return p


# -- %server -----------------------------------------------------------------------------------------
_SERVER_SOURCE = ("Read through $SYS.REQ.SERVER.PING when the connection is a system-account user (every "
                  "server of a cluster answers), else through the monitoring port: --monitor URL (a "
                  "comma-separated list for a cluster; remembered for the session). The embedded default's "
                  "own monitoring port is known.")


def server_parser() -> Parser:
    p, sub = _commands("%server", "The servers themselves: ls, report, health, watch (read-only).\n"
                       + _SERVER_SOURCE)

    def command(name: str, help: str, description: str) -> Parser:
        c = sub.add_parser(name, help=help, description=description + "\n" + _SERVER_SOURCE)
        _monitor_flag(c)
        return c

    ls = command("ls", "one row per server", "One row per server: version, cluster, connections, subscriptions, "
                 "messages and bytes in/out, slow consumers, memory, cpu, uptime, JetStream streams/consumers/"
                 "storage.")
    ls.add_argument("--sort", help="name, cluster (default), conns, subs, mem, cpu, slow, uptime, in-msgs, "
                    "out-msgs, streams, storage")
    r = sub.add_parser("report", help="connections, jetstream or accounts, as nats server report")
    rsub = r.add_subparsers(dest="report", metavar="REPORT", parser_class=Parser)
    rc = rsub.add_parser("connections", aliases=["conns"], help="every client connection of every server",
                         description="Every client connection of every server.\n" + _SERVER_SOURCE)
    rc.add_argument("--sort", default="subs", help="subs (default), in-msgs, out-msgs, in-bytes, out-bytes, "
                    "uptime, cid, name, account, pending, idle, rtt, server")
    rc.add_argument("--top", type=_int, default=1000, metavar="N", help="only the first N (default 1000)")
    rc.add_argument("--account", metavar="A", help="only this account's connections")
    rc.add_argument("--state", choices=["open", "closed", "all"], default="open",
                    help="open (default), closed (those the servers remember), or all")
    rj = rsub.add_parser("jetstream", aliases=["js"], help="JetStream use per server",
                         description="JetStream per server: streams, consumers, storage against limits, API "
                         "requests and errors, the meta leader.\n" + _SERVER_SOURCE)
    ra = rsub.add_parser("accounts", help="connections and traffic per account",
                         description="Per account: connections, subscriptions, messages and bytes in/out.\n"
                         + _SERVER_SOURCE)
    ra.add_argument("--sort", default="subs", help="subs (default), conns, in-msgs, out-msgs, in-bytes, "
                    "out-bytes, account")
    ra.add_argument("--top", type=_int, default=1000, metavar="N", help="only the first N (default 1000)")
    for x in (rc, rj, ra):
        _monitor_flag(x)
    h = command("health", "each server's health check", "Each server's /healthz: ok, or what is wrong.")
    h.add_argument("--js-enabled-only", action="store_true", help="only check that JetStream is enabled")
    w = command("watch", "live msgs/s, bytes/s, connections, slow consumers per server",
                "Live charts, one line per server, updated in place (a ServerMonitor widget in Jupyter, a "
                "table per interval in a terminal).")
    w.add_argument("--interval", metavar="DUR", help="how often to read the servers (default 1s)")
    w.add_argument("--timeout", metavar="DUR", help="stop after this long (default: until stopped; 10s "
                   "outside Jupyter)")
    return p


def run_server(a: argparse.Namespace, cell: str | None) -> Any:
    import pynats_lab as lab

    c = a.command
    if c == "ls":
        return lab.server_ls(sort=a.sort, monitor=a.monitor)
    if c == "report":
        if a.report in ("connections", "conns"):
            return lab.server_report_connections(sort=a.sort, top=a.top, account=a.account, state=a.state,
                                                 monitor=a.monitor)
        if a.report in ("jetstream", "js"):
            return lab.server_report_jetstream(monitor=a.monitor)
        if a.report == "accounts":
            return lab.server_report_accounts(sort=a.sort, top=a.top, monitor=a.monitor)
        raise _Usage("which report? connections, jetstream or accounts")
    if c == "health":
        return lab.server_health(js_enabled_only=a.js_enabled_only, monitor=a.monitor)
    if c == "watch":
        if _in_kernel():
            return lab.ServerMonitor(interval=a.interval, timeout=a.timeout, monitor=a.monitor)
        return lab.server_watch(interval=a.interval, timeout=a.timeout or "10s", monitor=a.monitor)
    raise _Usage("missing command")


def _pair_flags(a: argparse.Namespace, name: str) -> Any:
    """--NAME SRC DEST, or natscli's --NAME-source SRC --NAME-destination DEST."""
    both = getattr(a, name)
    src, dest = getattr(a, f"{name}_source"), getattr(a, f"{name}_destination")
    if (src is None) != (dest is None):
        raise _Usage(f"--{name}-source and --{name}-destination go together")
    if both and src:
        raise _Usage(f"give --{name} SRC DEST or --{name}-source/--{name}-destination, not both")
    return both or ([src, dest] if src else None)


def _stream_options(a: argparse.Namespace) -> dict:
    keys = ("description", "storage", "retention", "replicas", "max_msgs", "max_bytes", "max_age", "max_msg_size",
            "max_msgs_per_subject", "dupe_window", "discard", "allow_rollup", "deny_delete", "deny_purge",
            "allow_direct", "allow_msg_ttl", "subject_delete_marker_ttl", "republish_headers_only", "metadata",
            "no_transform", "no_republish", "no_mirror", "mirror", "sources", "start_seq", "start_time",
            "source_consumer", "source_deliver", "allow_msg_counter",
            "allow_atomic", "allow_batched", "allow_msg_schedules")
    out = {k: getattr(a, k) for k in keys if getattr(a, k, None) is not None}
    for name in ("transform", "republish"):
        pair = _pair_flags(a, name)
        if pair:
            out[name] = pair
    return out


def _in_kernel() -> bool:
    from IPython import get_ipython

    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _show(obj: Any) -> None:
    from IPython.display import display

    display(obj)


# -- dispatch ----------------------------------------------------------------------------------------
def run_nats(a: argparse.Namespace, cell: str | None) -> Any:
    import pynats_lab as lab

    if a.command == "connect":
        return lab.connect(a.url, context=a.context, creds=a.creds, nkey=a.nkey, user=a.user,
                           password=a.password, token=a.token, tls_ca=a.tls_ca, tls_cert=a.tls_cert,
                           tls_key=a.tls_key, monitor=a.monitor, fresh=a.fresh)
    if a.command == "disconnect":
        return lab.disconnect()
    if a.command == "pub":
        payload = cell.rstrip("\n") if cell is not None else a.payload
        return lab.publish(a.subject, payload, count=a.count, headers=a.header, msg_id=a.msg_id, js=a.js,
                           reply=a.reply, sleep=a.sleep, use_templates=not a.no_templates, ttl=a.ttl,
                           incr=a.incr, batch=a.batch, fast=a.fast, flow=a.flow, schedule=a.schedule,
                           target=a.target)
    if a.command == "sub":
        if a.background:
            return lab.subscribe_background(a.subject, queue=a.queue, raw=a.raw)
        return lab.subscribe(a.subject, count=a.count, timeout=a.timeout, queue=a.queue, raw=a.raw)
    if a.command == "req":
        return lab.request(a.subject, cell.rstrip("\n") if cell is not None else a.payload, timeout=a.timeout,
                           replies=a.replies, headers=a.header, raw=a.raw)
    if a.command == "info":
        return lab.server_info()
    if a.command == "subs":
        return lab.interest(a.subject, account=a.account, monitor=a.monitor)
    if a.command == "trace":
        df = lab.trace(a.subject, cell.rstrip("\n") if cell is not None else a.payload, headers=a.header,
                       deliver=a.deliver, timeout=a.timeout)
        if not a.no_chart:
            _show(lab.charts.trace_figure(df))
        return df
    if a.command == "events":
        if a.source:
            if a.background or a.capture or a.count:
                raise _Usage("--from reads a stream; it goes with --type only")
            return lab.events_from(a.source, type=a.type)
        if a.background:
            return lab.events_background(type=a.type, capture=a.capture)
        return lab.events(count=a.count, timeout=a.timeout, type=a.type, capture=a.capture)
    if a.command == "latency":
        df = lab.latency(count=a.count, size=a.size, jetstream=not a.no_js)
        if not a.no_chart:
            _show(lab.charts.latency_figure(df))
        return df
    if a.command == "bench":
        df = lab.bench(a.subject, pubs=a.pub, subs=a.sub, msgs=a.msgs, size=a.size, js=a.js)
        if not a.no_chart:
            _show(lab.charts.bench_figure(df))
        return df
    raise _Usage("missing command")


def run_stream(a: argparse.Namespace, cell: str | None) -> Any:
    import pynats_lab as lab

    c = a.command
    if c == "add":
        return lab.stream_add(a.name, a.subjects, **_stream_options(a))
    if c in ("ls", "list"):
        return lab.stream_ls()
    if c == "report":
        return lab.stream_report(subject=a.subject, sort=a.sort)
    if c == "subjects":
        if a.top < 1:
            raise _Usage(f"--top must be at least 1, not {a.top}")
        df = lab.stream_subjects(a.name, a.filter, sort=a.sort)
        if not len(df):
            print(f"no subjects in {a.name} match {a.filter or '>'}")
        elif not a.no_chart:
            _show(lab.charts.subjects_figure(df, top=a.top))
        return df
    if c == "info":
        return lab.stream_info(a.name)
    if c == "edit":
        opts = _stream_options(a)
        if a.subjects:
            opts["subjects"] = a.subjects
        return lab.stream_edit(a.name, **opts)
    if c in ("rm", "delete"):
        return lab.stream_rm(a.name)
    if c == "purge":
        return lab.stream_purge(a.name, subject=a.subject, keep=a.keep, seq=a.seq)
    if c == "get":
        return lab.stream_get(a.name, a.seq, last_for=a.last_for, raw=a.raw)
    if c == "rmm":
        return lab.stream_rmm(a.name, a.seq)
    if c == "view":
        if a.interval is not None and not a.follow:
            raise _Usage("--interval goes with --follow")
        if a.follow:
            if _in_kernel():
                return lab.StreamViewer(a.name, subject=a.subject, start_seq=a.id, since=a.since,
                                        page_size=a.page_size, follow=True, last=True, interval=a.interval)
            return lab.stream_tail(a.name, subject=a.subject, since=a.since, start_seq=a.id,
                                   timeout=a.timeout, interval=a.interval, raw=a.raw)
        return lab.stream_view(a.name, id=a.id, since=a.since, subject=a.subject, page_size=a.page_size,
                               raw=a.raw, last=a.last)
    if c == "backup":
        return lab.stream_backup(a.name, a.dir, snapshot=a.snapshot, consumers=not a.no_consumers,
                                 chunk_size=a.chunk_size, window_size=a.window_size, progress=not a.no_progress)
    if c == "restore":
        return lab.stream_restore(a.dir, name=a.name, subjects=a.subjects, progress=not a.no_progress)
    raise _Usage("missing command")


def run_consumer(a: argparse.Namespace, cell: str | None) -> Any:
    import pynats_lab as lab

    c = a.command
    if c == "add":
        return lab.consumer_add(a.stream, a.name, pull=not a.push, target=a.target, deliver=a.deliver,
                                ack=a.ack, replay=a.replay, filter=a.filter, max_deliver=a.max_deliver,
                                ack_wait=a.ack_wait, max_ack_pending=a.max_pending, max_waiting=a.max_waiting,
                                heartbeat=a.heartbeat, flow_control=a.flow_control,
                                deliver_group=a.deliver_group, description=a.description,
                                priority_policy=a.priority_policy, priority_groups=a.priority_group,
                                priority_timeout=a.priority_timeout)
    if c in ("ls", "list"):
        return lab.consumer_ls(a.stream)
    if c == "report":
        return lab.consumer_report(a.stream, sort=a.sort)
    if c == "edit":
        sample = f"{a.sample}%" if a.sample is not None else None
        return lab.consumer_edit(a.stream, a.name, description=a.description, ack_wait=a.ack_wait,
                                 max_deliver=a.max_deliver, max_pending=a.max_pending, max_waiting=a.max_waiting,
                                 filter=a.filter, heartbeat=a.heartbeat, inactive_threshold=a.inactive_threshold,
                                 backoff=a.backoff, metadata=a.metadata, sample=sample, target=a.target)
    if c == "pause":
        if (a.until is None) == (a.until_arg is None):
            raise _Usage("give the time once: --until TIME|DUR (e.g. --until 2h)")
        return lab.consumer_pause(a.stream, a.name, a.until or a.until_arg)
    if c == "resume":
        return lab.consumer_resume(a.stream, a.name)
    if c == "watch":
        if _in_kernel():
            return lab.LagChart(a.stream, a.name, interval=a.interval, timeout=a.timeout)
        return lab.consumer_watch(a.stream, a.name, interval=a.interval, timeout=a.timeout)
    if c == "why":
        df = lab.consumer_why(a.stream, a.name, idle=a.idle, processing=a.processing)
        if _in_kernel():
            from IPython.display import Markdown

            _show(Markdown(df.attrs["explanation"]))
        else:
            print(df.attrs["explanation"].replace("**", "").replace("*", ""))
        return df
    if c == "acks":
        if a.background:
            if a.count:
                raise _Usage("--background collects until .stop(); --count goes without it")
            return lab.consumer_acks_background(a.stream, a.name)
        df = lab.consumer_acks(a.stream, a.name, timeout=a.timeout, count=a.count)
        if len(df) and not a.no_chart:
            _show(lab.charts.latency_figure(lab.acks.chart_samples(df), f"Ack time: {a.stream} > {a.name}"))
        return df
    if c == "info":
        return lab.consumer_info(a.stream, a.name)
    if c in ("rm", "delete"):
        return lab.consumer_rm(a.stream, a.name)
    if c == "next":
        return lab.consumer_next(a.stream, a.name, count=a.count, action=a.action or "ack", timeout=a.timeout,
                                 raw=a.raw, group=a.group, min_pending=a.min_pending,
                                 min_ack_pending=a.min_ack_pending, priority=a.priority, pin_id=a.pin_id)
    if c == "unpin":
        return lab.consumer_unpin(a.stream, a.name, a.group)
    if c == "reset":
        return lab.consumer_reset(a.stream, a.name, seq=a.seq)
    if c == "sub":
        return lab.consumer_sub(a.stream, a.name, count=a.count, timeout=a.timeout, action=a.action, raw=a.raw)
    if c == "replay":
        return lab.ConsumerReplay(a.stream, deliver=a.deliver, replay=a.replay, filter=a.filter, count=a.count)
    raise _Usage("missing command")


def run_kv(a: argparse.Namespace, cell: str | None) -> Any:
    import pynats_lab as lab

    c = a.command
    if c == "add":
        return lab.kv_add(a.bucket, history=a.history, ttl=a.ttl, max_value_size=a.max_value_size,
                          max_bytes=a.max_bytes, storage=a.storage, replicas=a.replicas, description=a.description)
    if c in ("ls", "list"):
        return lab.kv_ls(a.bucket)
    if c == "put":
        return lab.kv_put(a.bucket, a.key, cell.rstrip("\n") if cell is not None else a.value)
    if c == "create":
        return lab.kv_create(a.bucket, a.key, cell.rstrip("\n") if cell is not None else a.value)
    if c == "update":
        return lab.kv_update(a.bucket, a.key, cell.rstrip("\n") if cell is not None else a.value, last=a.revision)
    if c == "get":
        return lab.kv_get(a.bucket, a.key, revision=a.revision)
    if c in ("del", "delete"):
        return lab.kv_del(a.bucket, a.key, purge=a.purge)
    if c == "history":
        return lab.kv_history(a.bucket, a.key)
    if c == "watch":
        return lab.kv_watch(a.bucket, a.key, count=a.count, timeout=a.timeout, include_history=a.history)
    if c == "rm":
        return lab.kv_rm(a.bucket)
    raise _Usage("missing command")


_PARSERS: dict[str, Callable[[], Parser]] = {"nats": nats_parser, "stream": stream_parser,
                                             "consumer": consumer_parser, "kv": kv_parser,
                                             "server": server_parser}
_RUNNERS = {"nats": run_nats, "stream": run_stream, "consumer": run_consumer, "kv": run_kv, "server": run_server}
_CELL_COMMANDS = {"nats": ("pub", "req", "trace"), "kv": ("put", "create", "update")}


def invoke(magic: str, line: str, cell: str | None = None) -> Any:
    """Parse and run one magic line; any failure becomes one line on stderr and a None result."""
    parser = _PARSERS[magic]()
    where = f"%{magic}"
    first = line.split(None, 1)[0] if line.strip() else ""
    if first in parser._subparsers._group_actions[0].choices:
        where = f"%{magic} {first}"
    try:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise _Usage(f"cannot split the line: {exc}") from None
        if not argv:
            parser.print_help()
            return None
        args = parser.parse_args(argv)
        if cell is not None and args.command not in _CELL_COMMANDS.get(magic, ()):
            raise _Usage(f"%%{magic} {args.command} takes no cell body")
        return _RUNNERS[magic](args, cell)
    except _Stop:
        return None
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return None
    except _Usage as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return None
    except Exception as exc:
        print(f"{where}: {describe(exc)}", file=sys.stderr)
        return None


@magics_class
class NatsMagics(Magics):
    """The magics. Variables expand as usual ({expr}, $var), but natscli templates ({{Count}}) pass
    through untouched: IPython's own expansion would eat their braces. A trailing `# comment` is ignored."""

    def _expand(self, line: str) -> str:
        # Every magic's line passes here: a trailing comment goes before any {var} in it could expand.
        return expand(strip_comment(line), self.shell.user_ns)

    @no_var_expand
    @line_cell_magic
    def nats(self, line: str, cell: str | None = None) -> Any:
        return invoke("nats", self._expand(line), cell)

    @no_var_expand
    @line_magic
    def stream(self, line: str) -> Any:
        return invoke("stream", self._expand(line))

    @no_var_expand
    @line_magic
    def consumer(self, line: str) -> Any:
        return invoke("consumer", self._expand(line))

    @no_var_expand
    @line_cell_magic
    def kv(self, line: str, cell: str | None = None) -> Any:
        return invoke("kv", self._expand(line), cell)

    @no_var_expand
    @line_magic
    def server(self, line: str) -> Any:
        return invoke("server", self._expand(line))
