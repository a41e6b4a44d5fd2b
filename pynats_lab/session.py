"""The session: one background asyncio loop thread that owns the nats-py connection.

Magics and the Python API call into it synchronously (`Session.run`), so the same code works in JupyterLab,
plain IPython, scripts and papermill. With no URL and no NATS_URL the session starts the embedded server
(JetStream on, 127.0.0.1, storage in a per-user data directory) and stops it with the kernel.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import logging
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from .errors import LabError, as_lab_error, describe, reraise
from .headers import parse_header_lines
from .notes import note as _note

T = TypeVar("T")


async def flush(nc, timeout: float = 10) -> None:
    """Return once the server has processed everything sent on `nc` so far (a SUB just made included).

    nats-py's flush() writes its PING straight to the socket, ahead of commands still waiting for its
    flusher task, so its PONG can come back before the server has read a SUB made just before: a message
    sent right after from another connection then finds no subscriber. While the first round trip is out,
    the flusher writes those commands; the second PING follows them, so its PONG answers for them.
    """
    await nc.flush(timeout)
    await nc.flush(timeout)


class _QuietTLSClose(logging.Filter):
    """asyncio logs a warning each time a TLS connection nats-py made is closed: noise, not news, under a
    cell whose `%nats disconnect` went well."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietTLSClose())


def data_dir() -> Path:
    """Per-user data directory: $XDG_DATA_HOME/pynats-lab (default ~/.local/share/pynats-lab)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "pynats-lab"




_SCHEMES = ("nats", "tls", "ws", "wss")


def _server_urls(url: str) -> list[str]:
    """The comma-separated servers of a URL, each checked for a scheme nats-py speaks."""
    from urllib.parse import urlparse

    servers = [u.strip() for u in url.split(",") if u.strip()]
    if not servers:
        raise LabError(f"invalid URL {url!r}: use e.g. nats://127.0.0.1:4222")
    for u in servers:
        if "://" not in u:
            continue
        try:
            parsed = urlparse(u)
            parsed.port
        except ValueError as exc:
            raise LabError(f"invalid URL {u!r}: {exc}") from None
        if parsed.scheme not in _SCHEMES:
            raise LabError(f"unsupported URL scheme {parsed.scheme!r} in {u}: use nats://, tls://, ws:// or wss://")
    return servers


def _check_tls(url: str, nc, wants_tls: bool) -> None:
    info = nc._server_info or {}
    if wants_tls and info and not info.get("tls_required"):
        if info.get("tls_available"):
            raise LabError(f"secure connection not available: {url} offers TLS only as an option, and "
                           "nats-py starts TLS only with servers that require it")
        raise LabError(f"secure connection not available: {url} does not offer TLS "
                       "(use nats:// for a plain connection)")


def _has_userinfo(u: str) -> bool:
    from urllib.parse import urlparse

    return "://" in u and bool(urlparse(u).username)


def connect_failure(url: str, exc: BaseException, attempts: list[BaseException], *, credentials_given: bool,
                    timeout: float) -> str:
    """Why a first connect failed, in one line, from the error and what each attempt reported."""
    import nats.errors as ne

    if isinstance(exc, LabError):
        return str(exc)
    seen = [exc, *reversed(attempts)]
    for err in seen:
        if isinstance(err, ne.AuthorizationError) or "authorization violation" in str(err).lower():
            if credentials_given:
                return f"authorization violation: {url} refused the credentials given"
            return (f"authorization violation: {url} wants credentials "
                    "(--user/--password, --token, --creds, --nkey or --context)")
    for err in seen:
        if isinstance(err, ssl.SSLError):
            reason = getattr(err, "verify_message", None) or getattr(err, "reason", None) or str(err)
            hint = " (--tls-ca FILE: the CA that signed its certificate)" \
                if isinstance(err, ssl.SSLCertVerificationError) else ""
            return f"could not connect to {url}: TLS failed: {reason}{hint}"
        if isinstance(err, ConnectionRefusedError):
            return f"could not connect to {url}: connection refused (is a server running there?)"
        if isinstance(err, socket.gaierror):
            return f"could not connect to {url}: unknown host"
        if isinstance(err, (asyncio.TimeoutError, TimeoutError)):
            return f"could not connect to {url}: no answer within {timeout:g}s"
    for err in seen:
        if not isinstance(err, ne.NoServersError):
            return f"could not connect to {url}: {describe(err)}"
    return f"could not connect to {url}: no server reachable at that address"


class Session:
    """One NATS connection (and possibly the embedded server behind it), driven from a private loop thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.nc = None
        self.js = None
        self.url: str | None = None
        self._embedded: Embedded | None = None
        self._closing = False
        self._last_error: str | None = None
        self._drop_reason: str | None = None
        # Subjects whose permission errors are expected and said otherwise (a bulk read trying a consumer).
        self.quiet_denials: set[str] = set()
        self._options: dict = {}
        self.events: list[tuple[float, str]] = []
        # Where %server and %nats subs read the servers' monitoring documents (see monitoring.py).
        self.monitor_urls: list[str] | None = None
        self._monitor_names: dict[str, dict] = {}
        self._system_user: tuple[int, bool] | None = None
        self._server_count: int | None = None
        self._system_nc = None  # the embedded default's system-account connection, opened when first needed
        # The running tutorial (tutorials.py): what the lab creates carries its marker.
        self.tutorial: str | None = None
        self.tutorial_names: list = []

    # -- the loop thread ------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None or not self._thread or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=main, name="pynats-lab-loop", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future:
        """Schedule a coroutine on the loop thread; returns a concurrent Future (for widgets)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop thread and wait for its result; Ctrl-C cancels it."""
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("Session.run called from the session's own loop thread; await instead")
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except KeyboardInterrupt:
            fut.cancel()
            raise
        except Exception as exc:
            # Since 3.11 a concurrent TimeoutError is also the TimeoutError a request inside the coroutine
            # raised: that one is the coroutine's own outcome, not this wait running out.
            if isinstance(exc, concurrent.futures.TimeoutError) and not fut.done():
                fut.cancel()
                raise LabError(f"timed out after {timeout:g}s") from None
            reraise(exc)

    # -- connecting -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def ensure(self) -> "Session":
        """Connect to the default (NATS_URL, else the embedded server) unless a connection is open."""
        if self.nc is None or self.nc.is_closed:
            self.connect()
        return self

    def connect(self, url: str | None = None, *, creds: str | None = None, user: str | None = None,
                password: str | None = None, token: str | None = None, nkey: str | None = None,
                tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                context: str | None = None, name: str = "pynats-lab", timeout: float = 5.0,
                monitor: Any = None, fresh: bool = False) -> "Session":
        """Connect, replacing the current connection only once the new one works (a failed connect
        leaves the session as it was). See `pynats_lab.connect` for the arguments."""
        from . import notes
        from .contexts import load_context
        from .monitoring import monitor_urls

        monitors = monitor_urls(monitor or os.environ.get("NATS_MONITOR"))

        notes.install()
        options: dict[str, Any] = {}
        if context:
            options.update(load_context(context))
        explicit = dict(url=url, creds=creds, user=user, password=password, token=token, nkey=nkey,
                        tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
        options.update({k: v for k, v in explicit.items() if v})
        if fresh and (options.get("url") or context):
            raise LabError("--fresh starts a private embedded server: it takes no URL and no --context")
        # fresh: the embedded server even where NATS_URL names another, since the notebook asked for it.
        url = options.pop("url", None) or (None if fresh else os.environ.get("NATS_URL"))
        if url and not any(options.get(k) for k in ("creds", "nkey", "user", "token")) \
                and os.environ.get("NATS_CREDS"):
            # natscli's variable: a server given by URL is reached with these credentials.
            options["creds"] = os.environ["NATS_CREDS"]
        if user and not options.get("password") and ":" in user:
            options["user"], options["password"] = user.split(":", 1)
        old = self._embedded
        embedded = None
        if not url:
            reuse = old is not None and old.running and not fresh
            embedded = old if reuse else Embedded.start(fresh=fresh)
            url = embedded.url
        try:
            nc, kwargs = self.run(self._open(url, name=name, timeout=timeout, **options))
        except BaseException:
            if embedded is not None and embedded is not old:
                embedded.stop()
            raise
        previous, self.nc = self.nc, nc
        self.js = nc.jetstream(timeout=5.0)
        self._options = kwargs
        self.url = url
        self._closing = False
        self._last_error = self._drop_reason = None
        self._monitor_names.clear()
        self._system_user = self._server_count = None
        self._close_system_connection()
        self.monitor_urls = monitors or (embedded.monitor_urls if embedded is not None else None)
        if previous is not None:
            try:
                self.run(previous.close(), timeout=5)
            except Exception:
                pass
        if old is not None and old is not embedded:
            old.stop()
        self._embedded = embedded
        if embedded is not None and embedded is not old:
            # Exit hooks run last-registered first: this one now runs before the embedded server's own, so
            # the connection closes before the server stops and the end of a run is not a "disconnected".
            atexit.unregister(self.close)
            atexit.register(self.close)
        return self

    async def open_connection(self, name: str = "pynats-lab"):
        """Another nats-py connection to the same server with the same credentials (for benchmarks)."""
        import nats

        nc = nats.aio.client.Client()
        nc._parse_header_lines = parse_header_lines
        opts = dict(self._options)
        opts.pop("error_cb", None)
        await nc.connect(**{**opts, "name": name, "allow_reconnect": False, "max_reconnect_attempts": 1})
        return nc

    async def _open(self, url: str, *, name: str, timeout: float, creds=None, user=None, password=None,
                    token=None, nkey=None, tls_ca=None, tls_cert=None, tls_key=None, **ignored):
        import nats

        servers = _server_urls(url)
        files = {"credentials file": creds, "NKey seed file": nkey, "CA certificate": tls_ca,
                 "client certificate": tls_cert, "client key": tls_key}
        for what, path in files.items():
            if path and not os.path.isfile(os.path.expanduser(path)):
                raise LabError(f"{what} not found: {path}")
        kwargs: dict[str, Any] = dict(
            servers=servers, name=name, connect_timeout=timeout,
            max_reconnect_attempts=-1, reconnect_time_wait=1, allow_reconnect=True,
        )
        nc = nats.aio.client.Client()
        nc._parse_header_lines = parse_header_lines
        attempts: list[BaseException] = []

        # Events of a client that is not (yet, or any more) the session's own are not the user's news;
        # errors while it connects explain a failed connect.
        def mine(handler):
            async def callback(*args):
                if self.nc is nc:
                    await handler(*args)
                elif handler == self._on_error:
                    attempts.append(args[0])
            return callback

        kwargs.update(error_cb=mine(self._on_error), disconnected_cb=mine(self._on_disconnected),
                      reconnected_cb=mine(self._on_reconnected), closed_cb=mine(self._on_closed))
        if creds:
            kwargs["user_credentials"] = os.path.expanduser(creds)
        if nkey:
            kwargs["nkeys_seed"] = os.path.expanduser(nkey)
        if user:
            kwargs["user"], kwargs["password"] = user, password or ""
        if token:
            kwargs["token"] = token
        wants_tls = bool(tls_ca or tls_cert) or any(u.startswith(("tls://", "wss://")) for u in servers)
        try:
            if wants_tls:
                ctx = ssl.create_default_context(cafile=os.path.expanduser(tls_ca) if tls_ca else None)
                if tls_cert:
                    try:
                        ctx.load_cert_chain(os.path.expanduser(tls_cert),
                                            os.path.expanduser(tls_key) if tls_key else None)
                    except ssl.SSLError as exc:
                        given = f"{tls_cert} with --tls-key {tls_key}" if tls_key else f"{tls_cert} (no --tls-key)"
                        why = re.sub(r"^\[\w+\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(exc.args[-1]))
                        raise LabError(f"client certificate not usable: {given}: {why} "
                                       "(--tls-key FILE: its private key)") from None
                kwargs["tls"] = ctx
            # The first attempt fails fast and clearly; only a drop after that reconnects forever.
            await nc.connect(**{**kwargs, "max_reconnect_attempts": 1, "reconnect_time_wait": 0.1,
                                "allow_reconnect": False})
            _check_tls(url, nc, wants_tls)
        except BaseException as exc:
            try:
                # nats-py's close() never returns after a failed TLS handshake: bound it.
                await asyncio.wait_for(nc.close(), 2)
            except Exception:
                pass
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
                raise
            # nats-py speaks TLS only to a server that requires it; a refusal there is about TLS first.
            _check_tls(url, nc, wants_tls)
            given = bool(creds or nkey or user or token) or any(_has_userinfo(u) for u in servers)
            line = connect_failure(url, exc, attempts, credentials_given=given, timeout=timeout)
            lab = as_lab_error(exc, line)
            raise (lab if isinstance(lab, LabError) else LabError(line)) from None
        nc.options.update(allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=1)
        return nc, {k: v for k, v in kwargs.items() if not k.endswith("_cb")}

    async def _on_error(self, exc: Exception) -> None:
        import nats.errors as ne

        if self._closing:
            return
        text = describe(exc)
        # A dropped connection, and each failed attempt to reconnect, is said once by the disconnected note.
        if isinstance(exc, (ne.UnexpectedEOF, ne.StaleConnectionError, OSError)) or not self.nc.is_connected:
            self._drop_reason = self._drop_reason or text
            return
        if any(f'"{subject.lower()}"' in text.lower() for subject in self.quiet_denials):  # nats-py lowercases -ERR
            return
        if text != self._last_error:
            self._last_error = text
            _note(f"error: {text}", problem=True)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            why = f" ({self._drop_reason})" if self._drop_reason else ""
            self._event(f"disconnected from {self.url}{why}; reconnecting", problem=True)

    async def _on_reconnected(self) -> None:
        self._last_error = self._drop_reason = None
        url = self.nc.connected_url.geturl() if self.nc and self.nc.connected_url else self.url
        self._event(f"reconnected to {url}")

    async def _on_closed(self) -> None:
        if not self._closing:
            self._event("connection closed", problem=True)

    def _event(self, text: str, problem: bool = False) -> None:
        import time

        _note(text, problem=problem)  # first: whoever waits on `events` then finds the note already shown
        self.events.append((time.time(), text))

    # -- closing --------------------------------------------------------------------------------
    async def system_connection(self):
        """A connection of the embedded default's own system-account user (None for other servers)."""
        import nats

        embedded = self._embedded
        if embedded is None or not embedded.system_user or not embedded.running:
            return None
        if self._system_nc is None or self._system_nc.is_closed:
            user, password = embedded.system_user
            nc = nats.aio.client.Client()
            await nc.connect(servers=[embedded.url], user=user, password=password, name="pynats-lab-system",
                             allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=5)
            self._system_nc = nc
        return self._system_nc

    def _close_system_connection(self) -> None:
        nc, self._system_nc = self._system_nc, None
        if nc is not None and self._loop is not None and self._thread and self._thread.is_alive():
            try:
                self.run(nc.close(), timeout=5)
            except Exception:
                pass

    def close(self) -> None:
        """Close the connection and stop the embedded server if this session started it."""
        self._close_system_connection()
        self._closing = True
        nc, self.nc, self.js = self.nc, None, None
        if nc is not None and self._loop is not None and self._thread and self._thread.is_alive():
            try:
                self.run(nc.close(), timeout=5)
            except Exception:
                pass
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            embedded.stop()
        self.url = None

    @property
    def server(self):
        """The EmbeddedServer this session started, or None."""
        return self._embedded.server if self._embedded else None

    @property
    def store_dir(self) -> Path | None:
        return self._embedded.store_dir if self._embedded else None

    def server_info(self) -> dict:
        self.ensure()
        return dict(self.nc._server_info or {})

    def __repr__(self) -> str:
        if not self.nc:
            return "<pynats-lab session: not connected>"
        info = self.nc._server_info or {}
        kind = "embedded server" if self.server else info.get("server_name", "server")
        js = "JetStream on" if info.get("jetstream") else "no JetStream"
        return f"connected to {self.url} ({kind}, version {info.get('version', '?')}, {js})"


class Embedded:
    """The embedded default: an EmbeddedServer child process and the JetStream store it owns."""

    def __init__(self, server, store_dir: Path, lock, temporary: bool, conf_dir: Path | None = None,
                 system_user: tuple[str, str] | None = None):
        self.server, self.store_dir, self._lock, self._temporary = server, store_dir, lock, temporary
        self._conf_dir = conf_dir
        # A user of the server's system account, known only to this session: %server and connection events.
        self.system_user = system_user

    @property
    def url(self) -> str:
        return self.server.client_url

    @property
    def running(self) -> bool:
        return bool(getattr(self.server, "running", True))

    @property
    def monitor_urls(self) -> list[str] | None:
        port = getattr(self.server, "http_port", None)
        return [f"http://127.0.0.1:{port}"] if port else None

    @classmethod
    def start(cls, fresh: bool = False) -> "Embedded":
        """Start on 127.0.0.1 with JetStream, storing in the per-user data directory, unless another kernel
        holds it: then in a private temporary directory, said out loud. `fresh`: always in a new private
        temporary directory (empty, deleted when the server stops)."""
        import fcntl

        from embedded_server import EmbeddedServer
        base = data_dir()
        base.mkdir(parents=True, exist_ok=True)
        lock = None if fresh else open(base / "jetstream.lock", "a+")
        try:
            if lock is None:
                raise OSError("a fresh store was asked for")
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            store, temporary = base / "jetstream", False
        except OSError:
            if lock is not None:
                lock.close()
            lock, store, temporary = None, Path(tempfile.mkdtemp(prefix="pynats-lab-")), True
            if not fresh:
                _note(f"{base / 'jetstream'} is in use by another kernel; this kernel's embedded server keeps "
                      f"its JetStream data in {store} (deleted when the kernel ends)")
        conf_dir, system_user = _system_account_config()
        server = EmbeddedServer(host="127.0.0.1", port=-1, jetstream=True, store_dir=str(store),
                                http_port=-1, config_file=str(conf_dir / "server.conf"), mode="process")
        self = cls(server, store, lock, temporary, conf_dir, system_user)
        try:
            server.start()
        except Exception as exc:
            self.stop()
            raise LabError(f"the embedded server did not start: {exc}") from None
        kept = "a fresh private JetStream store, deleted when it stops" if fresh else f"JetStream store {store}"
        _note(f"started the embedded server at {server.client_url} ({kept})")
        return self

    def stop(self) -> None:
        try:
            self.server.stop()
        except Exception:
            pass
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._temporary:
            shutil.rmtree(self.store_dir, ignore_errors=True)
        if self._conf_dir is not None:
            shutil.rmtree(self._conf_dir, ignore_errors=True)


def _system_account_config() -> tuple[Path, tuple[str, str]]:
    """The embedded default's configuration: clients that give no credentials land in the global account as
    before (`no_auth_user`), and a system account `SYS` has one user whose random password only this session
    knows. Written to a private folder, deleted when the server stops."""
    import secrets

    folder = Path(tempfile.mkdtemp(prefix="pynats-lab-conf-"))
    user, password = "pynats-lab-system", secrets.token_urlsafe(24)
    conf = folder / "server.conf"
    conf.write_text(f"""# written by pynats-lab for its embedded default (deleted when the server stops)
authorization {{ users [{{user: "pynats-lab", password: "{secrets.token_urlsafe(24)}"}}] }}
no_auth_user: "pynats-lab"
accounts {{ SYS {{ users [{{user: "{user}", password: "{password}"}}] }} }}
system_account: SYS
""")
    conf.chmod(0o600)
    return folder, (user, password)


_session: Session | None = None
_session_lock = threading.Lock()


def get_session() -> Session:
    """The process-wide session every magic and API function uses by default."""
    global _session
    with _session_lock:
        if _session is None:
            _session = Session()
            atexit.register(_session.close)
        return _session


def in_session(fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Turn `async def fn(session, ...)` into a blocking API function with an optional `session=`."""
    @functools.wraps(fn)
    def call(*args: Any, session: Session | None = None, **kwargs: Any) -> T:
        s = (session or get_session()).ensure()
        return s.run(fn(s, *args, **kwargs))

    return call
