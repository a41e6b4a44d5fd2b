"""The server: listener, INFO, accounts, routing a published message to its subscribers, internal subscriptions.

Routing is the hot path: a PUB is matched through a per-account cache of delivery plans (rebuilt when the
account's subscriptions change), each matching client gets the MSG appended to its outbound buffer, and every
buffer touched during one read is written once at the end of that read (`flush`).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import os
import platform
import random
import secrets
import time
import traceback
from itertools import islice
from typing import Callable

from embedded_server import msgtrace
from embedded_server import reload as config_reload
from embedded_server.auth import hook
from embedded_server.client import Client, decode_subject, encode_subject
from embedded_server.errors import SERVER_SHUTDOWN, StartError
from embedded_server.gojson import compact_json
from embedded_server.protocol import go_quote, msg_frame, msg_tail
from embedded_server.logger import Logger
from embedded_server.options import DEFAULT_PORT, FEATURE_FLAGS, Options, join_host_port
from embedded_server.subjects import Sublist, Subscription
from embedded_server.version import API_LEVEL, PROTOCOL_VERSION, VERSION

GLOBAL_ACCOUNT = "$G"
# A plan keeps a receiver list per choice of queue group members (Plan.routes) up to this many choices, and only
# while those lists hold at most _ROUTES_GROWTH times the plan's own entries (plus _ROUTES_SLACK): the memory of
# the cached plans stays within a few times what their subscriptions take.
_MAX_ROUTES = 64
_ROUTES_GROWTH = 4
_ROUTES_SLACK = 64
SYSTEM_ACCOUNT = "$SYS"
# Delivery plans kept per account; once full, the oldest PLANS_EVICT make room (clearing all 4,096 at once was a
# 0.5-0.8 ms pause every 4,096 new subjects, such as a request's unique reply subject; see subjects.CACHE_EVICT).
MAX_PLANS = 4096
PLANS_EVICT = 64
# Tallies kept per account for routes yet to be made (Route): beyond this many the next route starts afresh.
_MAX_TALLIES = 4096


class Plan:
    """Where a message published to one subject goes.

    `psubs`: each matching plain subscription as (sub, client, prefix) in nats-server's order, `client` None for
    an internal subscription, `prefix` the subscription's b"MSG <subject> <sid> " (protocol.msg_prefix);
    `qgroups`: a tuple of such entries per queue group. `plain`: `psubs` again when each of them is a client
    connection that needs nothing checked per message (no permissions, no auto-unsubscribe limit), else None: a
    message without headers or tracing goes to them with one `Server.deliver` and no test per subscriber; only a
    queue group's member, picked per message, is looked at, and joins that deliver (`Server.route`). `fast`: `plain` when
    there is also no queue group (the whole plan is one `deliver`), else None. `routes`: see `_routes`; a batch
    of publishes (`Server.route_batch`) takes them without a call per message; `choices`: how many (0 for None).
    A plan is only valid until the account's subscriptions change: anything that could
    alter it (SUB, UNSUB, an UNSUB with a limit, a connection closing, new permissions) drops the account's plans.
    """

    __slots__ = ("psubs", "qgroups", "plain", "fast", "routes", "single", "choices", "bits", "made", "raw",
                 "raw_h", "raw_hs", "raw_fs")

    def __init__(self, psubs: tuple, qgroups: tuple):
        self.psubs = psubs
        self.qgroups = qgroups
        # `raw`, `raw_h`, `raw_hs`, `raw_fs`: the shortcuts of the one internal subscription that is the whole plan
        # (Subscription.raw).
        only = psubs[0][0] if len(psubs) == 1 and not qgroups and psubs[0][1] is None else None
        self.raw = only.raw if only is not None else None
        self.raw_h = only.raw_h if only is not None else None
        self.raw_hs = only.raw_hs if only is not None else None
        self.raw_fs = only.raw_fs if only is not None else None
        plain = all(c is not None and not s.max and c.perms is None for s, c, _ in psubs)
        self.plain = psubs if plain else None
        self.fast = psubs if plain and not qgroups else None
        # `routes`, `single` and `choices` are made when a batch first takes the plan (`made` then True): most
        # plans never see a batch of publishes (a request's unique reply subject, say, gets a plan of its own for
        # one answer). (Not with a __getattr__: a class that has one gets none of the interpreter's fast
        # attribute loads, about 30 ns more for every attribute of every plan a message looks at.)
        self.routes = self.single = None
        self.choices = self.bits = 0
        self.made = False

    def make_routes(self, account: Account) -> None:
        """Make `routes`, `single` and `choices` (route_batch, once per plan of `account`)."""
        routes = self._routes(self.psubs, self.qgroups, account.tallies) if self.plain is not None else None
        if routes is not None:
            account.routed(routes)
        self.routes = routes
        self.single = routes[0] if routes is not None and len(routes) == 1 else None
        self.choices = choices = len(routes) if routes is not None else 0
        # 2, 4, ... 64 routes: `bits` random bits pick one (exactly uniform, one call); else 0.
        self.bits = choices.bit_length() - 1 if choices > 1 and not choices & (choices - 1) else 0
        self.made = True

    @staticmethod
    def _routes(psubs: tuple, qgroups: tuple, tallies: dict) -> tuple | None:
        """`routes`: every receiver list a message without headers may take, when none of the receivers needs a
        check, as a `Route` each: one without queue groups (then also `single`); with them, one per choice of a
        member in each group (the plain subscribers, then each group's member: nats-server's order). A message
        picks one at random, which picks each group's member uniformly and independently, as route() does. None
        when a member needs a check (internal, permissions, an auto-unsubscribe limit) or the choices would take
        too much memory (then `route` picks the members per message)."""
        routes = [psubs]
        choices = 1
        for group in qgroups:
            choices *= len(group)
        if choices > _MAX_ROUTES or choices * (len(psubs) + len(qgroups)) > \
                _ROUTES_GROWTH * (len(psubs) + sum(len(group) for group in qgroups)) + _ROUTES_SLACK:
            return None
        for group in qgroups:
            for sub, client, _ in group:
                if client is None or sub.max or client.perms is not None:
                    return None
            routes = [targets + ((sub, client, prefix),) for targets in routes for sub, client, prefix in group]
        return tuple(Route(targets, tallies) for targets in routes)


class Route:
    """One receiver list of a plan (`Plan.routes`) as `Server.route_batch` takes it: `pairs`, each receiver's
    (output list, MSG prefix) in delivery order; `subs`, the same receivers' subscriptions; `msgs`, the messages
    sent this way that their `delivered` counters do not have yet (they take them when something is about to
    read them or the plan goes: `Account.settle_subs`); `tally`, the `Tally` of the receivers' connections,
    shared by every route of the account with the same connections in the same order."""

    __slots__ = ("pairs", "subs", "msgs", "tally")

    def __init__(self, targets: tuple, tallies: dict):
        self.pairs = tuple((client.out, prefix) for sub, client, prefix in targets)
        self.subs = tuple(sub for sub, _, _ in targets)
        self.msgs = 0
        clients = tuple(client for _, client, _ in targets)
        tally = tallies.get(clients)
        if tally is None:
            if len(tallies) >= _MAX_TALLIES:
                tallies.clear()   # the routes made before keep theirs; only sharing is lost
            tally = tallies[clients] = Tally(clients)
        self.tally = tally


class Tally:
    """What a batch of publishes (`Server.route_batch`) sent to one list of connections (`clients`, a connection
    once per subscription of it that received): `msgs` messages, `size` payload bytes in all, added to their
    counters (and dirty marks) once per batch (`Server._settle`), 0 at any other time. Routes to the same
    connections share one, so that a batch settles a few tallies rather than every route it took."""

    __slots__ = ("clients", "msgs", "size")

    def __init__(self, clients: tuple):
        self.clients = clients
        self.msgs = self.size = 0


class Account:
    """An isolated subject space: its own subscriptions and statistics. `$G` is the global (default) account."""

    def __init__(self, name: str):
        self.name = name
        self.sublist = Sublist()
        # Delivery plans per published subject (and per (deliver subject, stored subject) for JetStream).
        self.plans: dict = {}
        # The connection lists of the plans' routes, each with its Tally (Route), and the plans' routes made
        # (Plan.routes), whose counts the subscriptions take when read (settle_subs).
        self.tallies: dict = {}
        self.routes: list = []
        # Plans of JetStream ack subjects per `$JS.ACK.<stream>.<consumer>` (see plan).
        self.ack_plans: dict[bytes, Plan | None] = {}
        self.sublist.on_change = self.drop_plans
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.slow_consumers = 0
        # The account's subject mappings (transform.AccountMappings), applied to its clients' publishes.
        self.mappings = None
        # (destination, sampling %) for messages with a sampled `traceparent` header (msgtrace.py), or None.
        self.trace_dest = None
        # One-shot callbacks for the next change of subscriptions (push consumers waiting for a subscriber).
        self.interest_watchers: list = []

    def drop_plans(self) -> None:
        """Forget the delivery plans: the subscriptions, or what a subscriber needs checked, changed."""
        self.settle_subs()
        self.plans.clear()
        self.tallies.clear()
        self.routes.clear()
        self.ack_plans.clear()
        if self.interest_watchers:
            watchers, self.interest_watchers = self.interest_watchers, []
            for watcher in watchers:
                watcher()

    def plan(self, subject: bytes) -> Plan:
        """The delivery plan of a published subject (built and kept when not known yet)."""
        plan = self.plans.get(subject)
        if plan is None and subject.startswith(b"$JS.ACK."):
            plan = self._ack_plan(subject)
        if plan is None:
            result = self.sublist.match(decode_subject(subject))
            # (b"MSG <subject> <sid> ", protocol.msg_prefix, built inline: a request's reply subject is unique,
            # so its plan is built once per answer.)
            head = b"MSG " + subject + b" "
            plan = Plan(tuple([(s, s.client, head + s.sid + b" ") for s in result.psubs]),
                        tuple([tuple([(s, s.client, head + s.sid + b" ") for s in group])
                               for group in result.qsubs]) if result.qsubs else ())
            self._keep_plan(subject, plan)
        return plan

    def _keep_plan(self, key: bytes, plan: Plan) -> None:
        """Keep `plan` under `key`; once MAX_PLANS are kept, the oldest PLANS_EVICT make room."""
        plans = self.plans
        if len(plans) >= MAX_PLANS:
            for old in list(islice(plans, PLANS_EVICT)):
                del plans[old]
        plans[key] = plan

    def routed(self, routes: tuple) -> None:
        """Keep a plan's new `routes` for settle_subs (Plan.make_routes)."""
        kept = self.routes
        if len(kept) >= 2 * MAX_PLANS:
            # Plans evicted since the last drop_plans: their routes' counts go to the subscriptions now.
            self.settle_subs()
            kept[:] = [plan.routes for plan in self.plans.values() if plan.routes is not None]
        kept.append(routes)

    def settle_subs(self) -> None:
        """Give the subscriptions the deliveries the plans' routes still hold (Route.msgs): before anything reads
        `Subscription.delivered` (monitoring, an UNSUB with a limit) and before the plans go."""
        for routes in self.routes:
            for route in routes:
                n = route.msgs
                if n:
                    route.msgs = 0
                    for sub in route.subs:
                        sub.delivered += n

    def shown_as(self, plan: Plan, subject: bytes, msg_subject: bytes) -> Plan:
        """The plan of deliver subject `subject` with receivers seeing `msg_subject` in the MSG line (a JetStream
        delivery), kept with the plans so a pull batch or a push consumer rewrites it once."""
        key = (subject, msg_subject)
        rewritten = self.plans.get(key)
        if rewritten is None:
            cut = 4 + len(subject)
            rewritten = Plan(tuple((s, c, b"MSG " + msg_subject + p[cut:]) for s, c, p in plan.psubs),
                             tuple(tuple((s, c, b"MSG " + msg_subject + p[cut:]) for s, c, p in g)
                                   for g in plan.qgroups))
            self._keep_plan(key, rewritten)
        return rewritten

    def _ack_plan(self, subject: bytes) -> tuple | None:
        """An ack subject is unique per delivery: rather than matching and caching each one, the plan of its
        `$JS.ACK.<stream>.<consumer>` prefix serves them all while only internal subscriptions (the consumer's
        `>`) can receive them. None when that does not hold (then the subject is matched as any other)."""
        parts = subject.split(b".", 4)
        rest = parts[-1]
        if len(parts) != 5 or not (parts[2] and parts[3] and rest) or b".." in rest or rest[:1] == b"." \
                or rest[-1:] == b".":
            return None
        prefix = subject[:len(subject) - len(rest) - 1]
        plans = self.ack_plans
        if prefix in plans:
            plan = plans[prefix]
        else:
            subs = self.sublist.prefix_match([decode_subject(p) for p in parts[:4]])
            plan = None
            if subs is not None and all(sub.client is None for sub in subs):
                plan = Plan(tuple((sub, None, b"") for sub in subs), ())
            if len(plans) >= 1024:
                plans.clear()
            plans[prefix] = plan
        if plan is not None:
            self.sublist.matches += 1
        return plan

    def __repr__(self) -> str:
        return f"<Account {self.name}>"


def _routed(tails: list, last: bytes) -> int:
    """How many messages of a batch were routed, `last` (a tail of the batch) being the last of them."""
    return next(i for i, tail in enumerate(tails) if tail is last) + 1


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def new_server_id() -> str:
    """A random public server nkey (56 characters starting with N), the form nats-server uses for its ID."""
    raw = bytes([13 << 3]) + secrets.token_bytes(32)
    crc = _crc16(raw)
    return base64.b32encode(raw + bytes([crc & 0xFF, crc >> 8])).decode().rstrip("=")


class Server:
    """A NATS server on an asyncio event loop. Construct with Options, then `await start()`."""

    def __init__(self, options: Options | None = None, logger: Logger | None = None, command_line=None):
        self.options = options or Options()
        self.command_line = command_line   # the flags, applied again over a reloaded config file
        self.logger = logger or Logger()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server_id = new_server_id()
        self.server_name = self.options.server_name or self.server_id
        self.events = None           # the system account's services (events.py), from start()
        self.jetstream = None
        self.msg_trace = None        # the msgtrace.MsgTrace of the message being routed, if it is traced
        self.system_account_name = ""
        self.accounts: dict[str, Account] = {}
        self.global_account = self.register_account(GLOBAL_ACCOUNT)
        self.clients: dict[int, Client] = {}
        self.dirty: list = []        # clients with queued output, written at the end of the current read
        # Called once before queued output is next written (a file store's held records: FileStore.hold_writes).
        self.before_output: list = []
        self._batch = 0
        self._cid = 0
        self.auth_required = self.options.auth_required
        self.info_auth_required = self.auth_required
        # Hooks for auth/ (see docs/architecture.md): replace to authenticate users, nkeys, JWTs.
        self.authenticator: Callable | None = None
        self.nonce_required = False
        self.jetstream = None
        self.monitor = None
        self.start_time = time.time()
        self.config_load_time = self.start_time
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.slow_consumers = 0
        self.stale_connections = 0
        self.stalls = 0
        self.total_connections = 0
        self.reading: Client | None = None   # the connection whose read is being processed
        self.port = 0
        self.http_port = 0
        self._listener: asyncio.AbstractServer | None = None
        self.ready = asyncio.Event()
        self._stopped: asyncio.Event | None = None
        self.shutting_down = False
        # Set by auth/hook.py (operator mode, account imports), events.py and lameduck.py.
        self.operator = None
        self.account_import_subs: list = []
        self.lame_duck = False
        self._install_auth()

    def _install_auth(self) -> None:
        hook.install(self)

    # -- logging shortcuts ---------------------------------------------------------------------------------
    def notice(self, text: str) -> None:
        self.logger.notice(text)

    def warn(self, text: str) -> None:
        self.logger.warn(text)

    def error(self, text: str) -> None:
        self.logger.error(text)

    def debug(self, text: str) -> None:
        if self.logger.debug_enabled:
            self.logger.debug(text)

    # -- accounts and clients ------------------------------------------------------------------------------
    def register_account(self, name: str) -> Account:
        acc = self.accounts.get(name)
        if acc is None:
            acc = self.accounts[name] = Account(name)
            if self.events is not None:
                self.events.account_registered(acc)
            if self.jetstream is not None and hasattr(self.jetstream, "account_registered"):
                self.jetstream.account_registered(acc)
        return acc

    def lookup_account(self, name: str) -> Account | None:
        return self.accounts.get(name)

    def settle_deliveries(self) -> None:
        """Bring every subscription's `delivered` counter up to date (Account.settle_subs): monitoring reads them."""
        for account in self.accounts.values():
            account.settle_subs()

    def next_client_id(self) -> int:
        self._cid += 1
        return self._cid

    def add_client(self, client: Client) -> None:
        self.clients[client.cid] = client
        self.total_connections += 1

    def remove_client(self, client: Client, subs: tuple = ()) -> None:
        """`client` closed; `subs`, the subscriptions it had (already removed), for /connz?state=closed."""
        self.clients.pop(client.cid, None)
        if self.monitor is not None:
            self.monitor.closed_client(client, subs)
        if self.events is not None and client.announced:
            # Published after the close has written what the client was owed (its last -ERR), as nats-server
            # queues events to its internal send loop.
            self._soon(self.events.client_disconnected, client)

    def client_connected(self, client: Client) -> None:
        """A client passed CONNECT: the system account announces it ($SYS.ACCOUNT.<acc>.CONNECT)."""
        if self.events is not None:
            client.announced = True
            self._soon(self.events.client_connected, client)

    def auth_failed(self, client: Client) -> None:
        """A CONNECT was refused: the system account reports it ($SYS.SERVER.<id>.CLIENT.AUTH.ERR)."""
        if self.events is not None and not getattr(client, "announced", False):
            self._soon(self.events.auth_error, client)

    def _soon(self, fn, *args) -> None:
        if self.loop is not None:
            self.loop.call_soon(fn, *args)
        else:
            fn(*args)

    # -- authentication (replaced by auth/) ----------------------------------------------------------------
    def authenticate(self, client: Client, connect_opts: dict) -> bool:
        """Check a CONNECT's credentials; may bind `client.account`, `client.perms`, `client.user`."""
        if self.authenticator is not None:
            return self.authenticator(client, connect_opts)
        opts = self.options
        if opts.authorization:
            return hmac.compare_digest(str(connect_opts.get("auth_token") or ""), opts.authorization)
        if opts.username:
            ok = hmac.compare_digest(str(connect_opts.get("user") or ""), opts.username) and \
                hmac.compare_digest(str(connect_opts.get("pass") or ""), opts.password)
            if ok:
                client.user = opts.username
            return ok
        return True

    # -- INFO ----------------------------------------------------------------------------------------------
    def info_json(self, client: Client | None, connect_info: bool = False) -> bytes:
        opts = self.options
        info = {
            "server_id": self.server_id,
            "server_name": self.server_name,
            "version": PROTOCOL_VERSION,
            "proto": 1,
            "go": f"python{platform.python_version()}",
            "host": opts.host,
            "port": self.port,
            "headers": True,
        }
        if self.info_auth_required:
            info["auth_required"] = True
        info["max_payload"] = opts.max_payload
        if self.jetstream is not None:
            info["jetstream"] = True
        if client is not None:
            info["client_id"] = client.cid
            if client.host:
                info["client_ip"] = client.host
            if self.nonce_required and not connect_info:
                client.nonce = base64.urlsafe_b64encode(secrets.token_bytes(11)).decode().rstrip("=")
                info["nonce"] = client.nonce
        if opts.jetstream_domain:
            info["domain"] = opts.jetstream_domain
        if connect_info and client is not None:
            info["connect_info"] = True
            info["remote_account"] = client.account.name
            if client.account.name == (self.system_account_name or SYSTEM_ACCOUNT):
                info["acc_is_sys"] = True
        info["api_lvl"] = API_LEVEL  # with or without JetStream, as nats-server
        # nats-server writes a space between the JSON and the CRLF.
        return b"INFO " + compact_json(info) + b" \r\n"

    # -- routing and delivery (the hot path) ------------------------------------------------------------------
    def deliver(self, targets, tail: bytes, count: int, size: int, skip=None, mid: bytes = b"") -> None:
        """The one place messages reach client connections (nats-server's deliverMsg).

        For each (sub, client, head) of `targets` except the connection `skip`: queue head + mid + tail on the
        client (a frame, or `count` frames, built in protocol.py), count `count` messages of `size` payload and
        header bytes on the subscription and the client, and mark the client to be written at the end of the
        current read, when its account's and the server's totals take them too (`Client.tally_out`). Checks
        that differ per message (permissions, auto-unsubscribe limits, header support, tracing) were made by
        the caller (`_deliver_checked`); a plan's `fast` entries need none. `route_batch` and `_settle` hold the
        one inlined copy of this loop (for a batch of publishes): a change here belongs there too."""
        dirty = self.dirty
        for sub, client, head in targets:
            if client is skip:
                continue
            out = client.out
            out.append(head)
            if mid:
                out.append(mid)
            out.append(tail)
            sub.delivered += count
            client.out_msgs += count
            client.out_bytes += size
            if not client.dirty:
                client.dirty = True
                dirty.append(client)

    def route_batch(self, account: Account, producer, subjects: list, tails: list, sizes: list) -> int:
        """Route a batch of publishes without reply or headers from one connection (protocol.PUBB), the i-th with
        subjects[i], tails[i], sizes[i]. Where the subject's plan has `routes`, the message takes one of them (a
        random one when there are queue groups): its MSG is queued on each receiver here, as `deliver` would,
        in one loop for the whole batch, and counted on the route and on its connections' `Tally`; the
        connections' counters (and dirty marks) take each tally's count once, at the end of the batch or before
        anything else runs (`_settle`), the subscriptions' counters the routes' when they are next read
        (`Account.settle_subs`). Anything else goes through `route`. Returns how many messages were
        routed: all of them, unless routing one closed the producer (the rest is then dropped, as a closed
        connection's reads are)."""
        if not producer.echo:
            return self._route_batch_no_echo(account, producer, subjects, tails, sizes)
        plans = account.plans
        getrandbits = random.getrandbits
        used: list = []
        try:
            for subject, plan, tail, size in zip(subjects, map(plans.get, subjects), tails, sizes):
                if plan is None:
                    plan = account.plan(subject)
                route = plan.single
                if route is None:
                    routes = plan.routes
                    if routes is None and not plan.made:
                        plan.make_routes(account)
                        route = plan.single
                        routes = plan.routes
                    if route is None:
                        if routes is None:
                            if used:
                                self._settle(used)
                            self.route(account, producer, subject, None, tail, len(tail) - size - 2)
                            if producer.closed:
                                return _routed(tails, tail)
                            continue
                        # (Else 32 random bits modulo at most _MAX_ROUTES choices: uniform within 2**-26.)
                        bits = plan.bits
                        route = routes[getrandbits(bits)] if bits else routes[getrandbits(32) % plan.choices]
                route.msgs += 1
                tally = route.tally
                n = tally.msgs
                if not n:
                    used.append(tally)
                tally.msgs = n + 1
                tally.size += size
                for out, prefix in route.pairs:
                    out.append(prefix)
                    out.append(tail)
        finally:
            if used:
                self._settle(used)
        return len(sizes)

    def _settle(self, used: list) -> None:
        """Count what a batch sent to each of `used` (Tallies) on its connections, mark them to be written, and
        clear the tallies (and `used`). (The subscriptions' counters take theirs later: Account.settle_subs.)"""
        dirty = self.dirty
        for tally in used:
            n = tally.msgs
            size = tally.size
            tally.msgs = tally.size = 0
            for client in tally.clients:
                client.out_msgs += n
                client.out_bytes += size
                if not client.dirty:
                    client.dirty = True
                    dirty.append(client)
        used.clear()

    def _route_batch_no_echo(self, account: Account, producer, subjects: list, tails: list, sizes: list) -> int:
        """route_batch for a connection that does not want its own messages back (CONNECT echo false)."""
        for subject, tail, size in zip(subjects, tails, sizes):
            plan = account.plans.get(subject)
            if plan is None:
                plan = account.plan(subject)
            if plan.fast is not None:
                self.deliver(plan.fast, tail, 1, size, producer)
                continue
            self.route(account, producer, subject, None, tail, len(tail) - size - 2)
            if producer.closed:
                return _routed(tails, tail)
        return len(sizes)

    def route(self, account: Account, producer, subject: bytes, reply: bytes | None, tail: bytes, body_at: int,
              hdr_len: int = 0, msg_subject: bytes | None = None) -> bool:
        """Deliver one message to every matching subscription of `account`. True if anyone received it.

        `tail` is the message as sent after "MSG <subject> <sid> [reply] " (see protocol.py): the size field(s),
        CRLF, the body (`hdr_len` bytes of headers, then the payload) from `tail[body_at:]`, and a final CRLF.
        With `msg_subject`, matching uses `subject` but receivers see `msg_subject` (JetStream deliveries).
        """
        plan = account.plans.get(subject)
        if plan is None:
            plan = account.plan(subject)
        if msg_subject is not None:
            plan = account.shown_as(plan, subject, msg_subject)
            subject = msg_subject
        skip = producer if producer is not None and not producer.echo else None
        plain = plan.plain
        # Nothing to check per message (no headers to strip, no tracing): the plain subscribers and each queue
        # group's chosen member, when it needs no check either, take it with one deliver.
        unchecked = plain is not None and hdr_len == 0 and self.msg_trace is None and not self.logger.trace_enabled
        qgroups = plan.qgroups
        if unchecked:
            mid = reply + b" " if reply else b""
            delivered = bool(plain) and (skip is None or any(client is not skip for _, client, _ in plain))
            if qgroups:
                # Each group's member picked at random joins the same deliver when it needs no check either;
                # otherwise that group and the ones after it go the general way below, after this deliver (a
                # connection's messages stay in nats-server's order: plain subscriptions, then queue groups).
                targets = list(plain)
                random_ = random.random
                for done, group in enumerate(qgroups):
                    n = len(group)
                    entry = group[int(random_() * n)] if n > 1 else group[0]
                    sub, client, _ = entry
                    if client is None or client is skip or sub.closed or client.closed or sub.max \
                            or client.perms is not None:
                        qgroups = qgroups[done:]
                        break
                    targets.append(entry)
                    delivered = True
                else:
                    qgroups = ()
                self.deliver(targets, tail, 1, len(tail) - body_at - 2, skip, mid)
            elif plain:
                self.deliver(plain, tail, 1, len(tail) - body_at - 2, skip, mid)
            if not qgroups:
                return delivered
        else:
            delivered = False
            for sub, client, prefix in plan.psubs:
                if client is None:
                    self.call_internal(sub, producer, subject, reply, tail, body_at, hdr_len)
                    delivered = True
                elif client is not skip and not sub.closed and not client.closed \
                        and self._deliver_checked(account, sub, client, prefix, subject, reply, tail, body_at,
                                                  hdr_len):
                    delivered = True
                elif client is skip and self.msg_trace is not None:
                    self.msg_trace.egress(client, sub, account, msgtrace.NO_ECHO)
        for group in qgroups:
            n = len(group)
            first = int(random.random() * n) if n > 1 else 0
            for i in range(n):
                sub, client, prefix = group[(first + i) % n]
                if client is None:
                    if not sub.closed:
                        self.call_internal(sub, producer, subject, reply, tail, body_at, hdr_len)
                        delivered = True
                        break
                    continue
                if client is skip or sub.closed or client.closed:
                    continue
                if unchecked and not sub.max and client.perms is None:
                    self.deliver(((sub, client, prefix),), tail, 1, len(tail) - body_at - 2, None, mid)
                    delivered = True
                    break
                if self._deliver_checked(account, sub, client, prefix, subject, reply, tail, body_at, hdr_len):
                    delivered = True
                    break
        return delivered

    def route_run(self, account: Account, producer, subject: bytes, head: bytes, segment: bytes, count: int,
                  total: int) -> bool:
        """Deliver a run of plain publishes (protocol.PUBS) to subscribers that need nothing per message: one
        bytes.replace of the "PUB <subject> " heads by the subscriber's "MSG <subject> <sid> " each.

        False when something needs the messages one by one (queue groups, internal or limited subscriptions,
        permissions, a connection with two matching subscriptions, or the head also occurring inside a
        payload): the caller then routes them singly."""
        plan = account.plans.get(subject)
        if plan is None:
            plan = account.plan(subject)
        fast = plan.fast
        if fast is None or self.logger.trace_enabled:
            return False
        if len(fast) > 1 and len({client for _, client, _ in fast}) < len(fast):
            # (A client with two matching subscriptions gets each message twice, interleaved.)
            return False
        if fast and segment.count(head) != count:
            return False
        skip = producer if not producer.echo else None
        self.deliver([(sub, client, segment.replace(head, prefix)) for sub, client, prefix in fast
                      if client is not skip], b"", count, total)
        return True

    def _deliver_checked(self, account: Account, sub: Subscription, client: Client, prefix: bytes, subject: bytes,
                         reply: bytes | None, tail: bytes, body_at: int, hdr_len: int) -> bool:
        """Deliver to one subscription, honouring its auto-unsubscribe limit and the subscriber's permissions
        (a deny that a wider subscription could not exclude, allow_responses), the client's header support,
        and tracing. False if it was not delivered."""
        perms = client.perms
        trace = self.msg_trace
        if perms is not None and perms.delivery_denied(subject, sub.queue):
            if trace is not None:
                trace.egress(client, sub, account, msgtrace.SUB_DENY)
            return False
        n = sub.delivered + 1
        if sub.max and n > sub.max:
            client.remove_subscription(sub)
            if trace is not None:
                trace.egress(client, sub, account, msgtrace.AUTO_UNSUB_EXCEEDED)
            return False
        if trace is not None:
            trace.egress(client, sub, account)
            if trace.only:
                return True
        head, body = msg_frame(prefix, reply, tail, body_at, hdr_len, client.headers)
        self.deliver(((sub, client, head),), body, 1, len(tail) - body_at - 2)
        if self.logger.trace_enabled:
            line = (b"H" if hdr_len and client.headers else b"") + prefix + (reply + b" " if reply else b"")
            client.trace(f"->> [{decode_subject(line)}{tail[:body_at - 2].decode()}]")
            client.trace(f"->> MSG_PAYLOAD: [{go_quote(tail[body_at:-2])}]")
        if sub.max and n >= sub.max:
            client.remove_subscription(sub)
        if perms is not None and reply:
            perms.track_reply(reply)
        return True

    def single_receiver(self, account: Account, subject: bytes) -> tuple | None:
        """The plan entry (sub, client, prefix) when `subject` reaches exactly one client subscription that needs
        nothing per message (a plan's `fast`, no tracing); else None. A JetStream pull batch to such a receiver
        is framed at once (protocol.stored_msg_frame) and queued with one `deliver`."""
        plan = account.plans.get(subject)
        if plan is None:
            plan = account.plan(subject)
        fast = plan.fast
        if fast is None or len(fast) != 1 or self.logger.trace_enabled:
            return None
        return fast[0]

    def call_internal(self, sub: Subscription, producer, subject: bytes, reply: bytes | None, tail: bytes,
                      body_at: int, hdr_len: int) -> None:
        """Hand a message to an internal subscription's callback (JetStream, system services)."""
        if sub.closed:
            return
        hdr = tail[body_at:body_at + hdr_len] if hdr_len else None
        try:
            sub.callback(sub, producer, decode_subject(subject), decode_subject(reply) if reply else None,
                         hdr, tail[body_at + hdr_len:-2])
        except Exception:
            self.error(f"Internal subscription on \"{sub.subject}\" failed:\n{traceback.format_exc().rstrip()}")

    def flush(self) -> None:
        """Write every client's queued output (once per read, or after an internal publish)."""
        if self._batch:
            return
        self.write_out()

    def write_out(self) -> None:
        """Write every client's queued output now, also in the middle of a read (a fast batch's flow ack: its
        publisher waits for it before it sends more)."""
        if self.before_output:
            self.run_before_output()
        dirty = self.dirty
        while dirty:
            clients = dirty[:]
            dirty.clear()
            for client in clients:
                client.flush()

    def run_before_output(self) -> None:
        calls, self.before_output = self.before_output, []
        for call in calls:
            try:
                call()
            except Exception:
                self.error(f"Writing held data failed:\n{traceback.format_exc().rstrip()}")

    # -- internal subscriptions (the seams for JetStream and system services) -------------------------------
    def subscribe_internal(self, account: Account, subject: str, callback: Callable,
                           queue: str | None = None) -> Subscription:
        """Subscribe on behalf of the server: `callback(sub, client, subject, reply, hdr, payload)` runs on the
        loop thread during routing; `client` is the publishing connection or None for internal publishes."""
        sub = Subscription(None, subject, queue, b"", callback=callback, account=account)
        account.sublist.insert(sub)
        return sub

    def unsubscribe_internal(self, sub: Subscription) -> None:
        if not sub.closed:
            sub.closed = True
            sub.account.sublist.remove(sub)

    def send_internal(self, account: Account, subject: str, reply: str | None, hdr: bytes | None,
                      payload: bytes, msg_subject: str | None = None) -> bool:
        """Publish as the server, routed exactly as a client's PUB/HPUB. Safe to call from a callback: what it
        delivers is queued and written at the end of the current read (or at once outside of one)."""
        tail, body_at, hdr_len = msg_tail(hdr, payload)
        self._batch += 1
        try:
            delivered = self.route(account, None, encode_subject(subject), encode_subject(reply) if reply else None,
                                   tail, body_at, hdr_len,
                                   encode_subject(msg_subject) if msg_subject is not None else None)
        finally:
            self._batch -= 1
        if not self._batch:
            self.flush()
        return delivered

    def answer(self, account: Account, subject: str, payload: bytes) -> None:
        """send_internal(account, subject, None, None, payload): an answer without headers or reply (a PubAck) to
        a request's reply subject. That subject is usually unique to the request, so when it has no plan yet and
        its receivers are client subscriptions that need nothing checked (no permissions, no auto-unsubscribe
        limit, no queue group, no tracing), the answer is queued on them at once, the frame route() would
        queue, without building and keeping a plan used once. Anything else is send_internal."""
        subject_b = encode_subject(subject)
        if subject_b not in account.plans and self.msg_trace is None and not self.logger.trace_enabled:
            result = account.sublist.match(subject)
            psubs = result.psubs
            if psubs and not result.qsubs:
                for sub in psubs:
                    client = sub.client
                    if client is None or sub.max or client.perms is not None:
                        break
                else:
                    lead = b"%d\r\n" % len(payload)
                    head = b"MSG " + subject_b + b" "
                    self._batch += 1
                    try:
                        self.deliver([(sub, sub.client, head + sub.sid + b" ") for sub in psubs],
                                     lead + payload + b"\r\n", 1, len(payload))
                    finally:
                        self._batch -= 1
                    if not self._batch:
                        self.flush()
                    return
        self.send_internal(account, subject, None, None, payload)

    @contextlib.contextmanager
    def batched(self):
        """Internal sends inside the block are written once per client at its end (JetStream delivers a
        whole pull batch this way, as a client's read is written once)."""
        self._batch += 1
        try:
            yield
        finally:
            self._batch -= 1
            if not self._batch:
                self.flush()

    def deliver_internal(self, account: Account, deliver_subject: str, subject: str, reply: str | None,
                         hdr: bytes | None, payload: bytes) -> bool:
        """Like send_internal, routed by `deliver_subject` while receivers see `subject` in the MSG line, as
        JetStream consumers deliver a stored message (nats-server's jsPubMsg dsubj/subj)."""
        return self.send_internal(account, deliver_subject, reply, hdr, payload, msg_subject=subject)

    def has_interest(self, account: Account, subject: str) -> bool:
        return account.sublist.has_interest(subject)

    # -- life cycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind, start monitoring and JetStream, log 'Server is ready'. Raises StartError."""
        try:
            await self._start()
        except BaseException:
            await self._abort_start()
            raise

    async def _abort_start(self) -> None:
        # What a failed start left behind goes, without the shutdown log lines (nats-server exits at once).
        if self._listener is not None:
            self._listener.close()
        if self.monitor is not None:
            await self.monitor.stop()
        if self.jetstream is not None:
            try:
                self.jetstream.shutdown()
            except Exception:
                pass
        if self.options.pid_file and os.path.exists(self.options.pid_file):
            try:
                os.unlink(self.options.pid_file)
            except OSError:
                pass
        if self._stopped is not None:
            self._stopped.set()

    async def _start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        opts = self.options
        self.start_time = time.time()
        self.notice("Starting pynats-server")
        self.notice(f"  Version:  {PROTOCOL_VERSION} (embedded_server {VERSION})")
        self.notice(f"  Python:   {platform.python_version()} ({self.loop_kind()})")
        self.notice(f"  Name:     {self.server_name}")
        self.notice(f"  ID:       {self.server_id}")
        if opts.feature_flags:  # as nats-server 2.14's printFeatureFlags
            self._log_feature_flags(opts.feature_flags)
        if opts.config_file:
            self.notice(f"Using configuration file: {opts.config_file}")
        if opts.pid_file:
            try:
                with open(opts.pid_file, "w") as f:
                    f.write(str(os.getpid()))
            except OSError as e:
                raise StartError(f"Could not write pidfile: {e}") from None
        self.monitor_docs()
        if opts.http_port:
            await self.monitor.start()
        # As nats-server: -1 picks a free port, 0 means the default 4222.
        host, port = opts.host, {-1: 0, 0: DEFAULT_PORT}.get(opts.port, opts.port)
        try:
            self._listener = await self.loop.create_server(
                lambda: Client(self), host, port, reuse_address=True, backlog=1024, start_serving=False)
        except OSError as e:
            hp = join_host_port(host, port)
            reason = e.strerror or str(e)
            if e.errno == 98:
                reason = "bind: address already in use"
            raise StartError(f'Error listening on port: {hp}, "listen tcp {hp}: {reason.lower()}"') from None
        self.port = self._listener.sockets[0].getsockname()[1]
        self._start_system_account()
        if opts.jetstream:
            self._enable_jetstream()
        self.notice(f"Listening for client connections on {join_host_port(host, self.port)}")
        await self._listener.start_serving()
        self.notice("Server is ready")
        self.ready.set()

    def monitor_docs(self):
        """The monitoring documents (monitor.Monitor), also when no HTTP port serves them."""
        if self.monitor is None:
            from embedded_server.monitor import Monitor
            self.monitor = Monitor(self)
        return self.monitor

    def _start_system_account(self) -> None:
        """The system account (`system_account`, the operator's, or `$SYS`) and its services (events.py)."""
        from embedded_server import events
        operator = self.operator
        name = ""
        if operator is not None:
            name = operator.system_account
        if not name:
            name = self.options.system_account or SYSTEM_ACCOUNT
        self.system_account_name = name
        self.events = events.SystemServices(self, self.register_account(name))
        self.events.start()

    def _enable_jetstream(self) -> None:
        # Imported here so that a core-only server never loads JetStream.
        from embedded_server import jetstream
        try:
            self.jetstream = jetstream.enable(self)
        except jetstream.JetStreamError as e:
            raise StartError(f"Can't start JetStream: {e}") from None

    def _log_feature_flags(self, flags: dict) -> None:
        """The configured feature flags as nats-server logs them: opt-in/opt-out against each default."""
        shown = []
        for name in sorted(k for k in flags if k in FEATURE_FLAGS):
            on, default = flags[name], FEATURE_FLAGS[name]
            state = ("enabled" if on else "opt-out") if default else ("opt-in" if on else "disabled")
            shown.append(f"{name} ({state})")
        self.notice("  Feature flags:")
        self.notice(f"    Configured:    {', '.join(shown) or 'none'}")
        unsupported = sorted(k for k in flags if k not in FEATURE_FLAGS)
        if unsupported:
            self.notice(f"    Unsupported:   {', '.join(unsupported)}")

    @staticmethod
    def loop_kind() -> str:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return "asyncio"
        return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"

    async def shutdown(self) -> None:
        """Close the listener and every connection, stop JetStream and monitoring."""
        if self.shutting_down:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self.shutting_down = True
        self.notice("Initiating Shutdown...")
        if self.events is not None:
            self.events.stop()
        if self._listener is not None:
            self._listener.close()
        for client in list(self.clients.values()):
            client.close(SERVER_SHUTDOWN)
        if self.jetstream is not None:
            try:
                self.jetstream.shutdown()
            except Exception:
                self.error(f"JetStream shutdown failed:\n{traceback.format_exc().rstrip()}")
        if self.monitor is not None:
            await self.monitor.stop()
        if self._listener is not None:
            try:
                await asyncio.wait_for(self._listener.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):
                pass
        self.notice("Server Exiting..")
        if self._stopped is not None:
            self._stopped.set()

    async def wait_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()

    def reload(self) -> None:
        """Apply the configuration file again (SIGHUP). Raises ReloadError, keeping the running config."""
        config_reload.reload(self)
        self.config_load_time = time.time()

    # -- introspection -------------------------------------------------------------------------------------
    @property
    def num_subscriptions(self) -> int:
        return sum(acc.sublist.count for acc in self.accounts.values())

    @property
    def client_url(self) -> str:
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"nats://{join_host_port(host, self.port)}"


