"""Plugging auth/ into a Server: the CONNECT check, INFO's auth fields, and re-checking clients on reload.

`install(server)` builds an Authenticator from the server's options and sets the server's hooks
(docs/architecture.md); `reauthorize_all(server)` is what a reload runs after swapping the options.
"""
from __future__ import annotations

from embedded_server import errors
from embedded_server.auth.accounts import wire_accounts
from embedded_server.auth.authenticator import ANONYMOUS, Authenticator, Identity
from embedded_server.auth.permissions import ClientPermissions

GLOBAL_ACCOUNT = "$G"


def build(options) -> Authenticator:
    from embedded_server.configure import auth_config

    return Authenticator(auth_config(options))


def install(server) -> None:
    """Authenticate the server's clients through auth/ with its current options."""
    _set(server, build(server.options))
    server.authenticator = _authenticate
    conf = server.options.operator_mode
    server.operator = None
    if conf is not None:
        from embedded_server.auth.operator import OperatorMode

        server.operator = OperatorMode(conf)
    wire_accounts(server)
    if conf is not None:
        server.auth_required = server.info_auth_required = server.nonce_required = True
        from embedded_server.auth import claims

        claims.subscribe(server)


def _set(server, auth: Authenticator) -> None:
    server.auth = auth
    server.auth_required = auth.auth_required
    server.info_auth_required = auth.info_auth_required
    server.nonce_required = auth.nonce_required


def _authenticate(client, connect: dict) -> bool:
    server = client.server
    nonce = client.nonce
    if server.operator is not None:
        identity = server.operator.authenticate(connect, nonce, client.host)
    else:
        identity = server.auth.authenticate(connect, nonce)
    if identity is None:
        return False
    bind(client, identity)
    limits = _account_limits(server, identity.account)
    if limits:
        _cap_client(client, limits)
        limit = limits.get("conn", -1)
        if isinstance(limit, int) and limit >= 0:
            others = sum(1 for c in server.clients.values()
                         if c is not client and c.account is client.account and c.connect_received and not c.closed)
            if others >= limit:
                err = errors.ERR_MAX_ACCOUNT_CONNECTIONS
                client.queue_err(err)
                server.error(f"{client.label} - {err.text}")
                client.close(err.closes)
    return True


def bind(client, identity: Identity) -> None:
    """Give a client the identity it authenticated as: its name, permissions and account."""
    client.identity = identity
    client.user = identity.name
    client.perms = ClientPermissions(identity.permissions) if identity.permissions is not None else None
    if client.subs:
        # New permissions (a reload): what delivery to its subscriptions must check changed.
        client.account.drop_plans()
    account = identity.account or GLOBAL_ACCOUNT
    if client.account.name != account:
        client.tally_out()
        client.account = client.server.register_account(account)
    client.max_subs = identity.max_subs
    if identity.max_payload >= 0:
        client.parser.max_payload = min(client.parser.max_payload, identity.max_payload)
    _set_expiry(client, identity.expires_in)


def _account_limits(server, name: str | None) -> dict:
    """The account's conn/subs/payload limits: its JWT's in operator mode, else its `limits` block."""
    if not name:
        return {}
    operator = server.operator
    if operator is not None:
        return {"conn": operator.max_connections(name)}
    for cfg in server.options.accounts or []:
        if cfg.name == name:
            return cfg.limits
    return {}


def _cap_client(client, limits: dict) -> None:
    """An account's subs and payload limits cap the client's (the JWT's were applied by the operator)."""
    subs = limits.get("subs", -1)
    if isinstance(subs, int) and subs >= 0 and (client.max_subs < 0 or subs < client.max_subs):
        client.max_subs = subs
    payload = limits.get("payload", -1)
    if isinstance(payload, int) and payload >= 0 and hasattr(client, "parser"):
        client.parser.max_payload = min(client.parser.max_payload, payload)


def _set_expiry(client, seconds: float | None) -> None:
    """Disconnect with 'User Authentication Expired' when the credentials run out (JWT exp, time window)."""
    old = client.auth_expiry
    if old is not None:
        old.cancel()
    client.auth_expiry = None
    loop = client.server.loop
    if seconds is None or loop is None:
        return

    def expire() -> None:
        client.auth_expiry = None
        if client.closed:
            return
        err = errors.ERR_AUTHENTICATION_EXPIRED
        client.queue_err(err)
        client.server.debug(f"{client.label} - User Authentication Expired")
        client.close(err.closes)

    client.auth_expiry = loop.call_later(max(seconds, 0.0), expire)


def reauthorize_all(server) -> None:
    """After a reload: authenticate every client again, as nats-server's reloadAuthorization.

    A client whose user is gone (or moved account) is closed; one whose credentials no longer pass gets
    'Authorization Violation'; the others get their new permissions, and lose the subscriptions those no
    longer allow, each with a 'Permissions Violation for Subscription' error naming its sid."""
    auth = build(server.options)
    _set(server, auth)
    wire_accounts(server)
    if server.operator is not None:
        server.auth_required = server.info_auth_required = server.nonce_required = True
        return
    for client in list(server.clients.values()):
        if client.closed or not client.connect_received:
            continue
        identity = client.identity or ANONYMOUS
        if not auth.still_same_account(client.opts, identity):
            client.close(errors.CLIENT_CLOSED)
            continue
        new_identity = auth.authenticate(client.opts, client.nonce)
        if new_identity is None:
            client.auth_violation()
            continue
        bind(client, new_identity)
        _drop_unauthorized_subscriptions(server, client)
    server.flush()


def _drop_unauthorized_subscriptions(server, client) -> None:
    perms = client.perms
    if perms is None:
        return
    for sub in list(client.subs.values()):
        subject = _text(sub.subject)
        queue = _text(sub.queue) if sub.queue else None
        if perms.can_subscribe(subject, queue):
            continue
        client.remove_subscription(sub)
        sid = _text(sub.sid)
        if queue:
            client.send_err(errors.ERR_QUEUE_SUBSCRIPTION_REMOVED, subject, queue, sid)
            server.notice(f'Removed sub "{subject}" using queue "{queue}" (sid "{sid}") for {client.user} - '
                          "not authorized")
        else:
            client.send_err(errors.ERR_SUBSCRIPTION_REMOVED, subject, sid)
            server.notice(f'Removed sub "{subject}" (sid "{sid}") for {client.user} - not authorized')


def _text(v) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)
