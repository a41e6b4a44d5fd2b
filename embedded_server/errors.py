"""The core protocol's error table: every `-ERR` the server sends a client, in nats-server's words, and whether
the connection closes after it (with which ClosedState). JetStream's API errors have their own table
(jetstream/errors.py). Changing a text means changing it here, and nowhere else.
"""
from __future__ import annotations

from typing import NamedTuple

# Why a connection closed: nats-server's ClosedState strings (client.go), shown in logs and /connz.
CLIENT_CLOSED = "Client Closed"
AUTHENTICATION_TIMEOUT = "Authentication Timeout"
AUTHENTICATION_VIOLATION = "Authentication Failure"   # nats-server's AuthenticationViolation state
SLOW_CONSUMER = "Slow Consumer (Pending Bytes)"
WRITE_ERROR = "Write Error"
READ_ERROR = "Read Error"
PARSE_ERROR = "Parse Error"
STALE_CONNECTION = "Stale Connection"
PROTOCOL_VIOLATION = "Protocol Violation"
BAD_CLIENT_PROTOCOL = "Bad Client Protocol Version"
MAX_CONNECTIONS = "Maximum Connections Exceeded"
MAX_PAYLOAD = "Maximum Message Payload Exceeded"
MAX_CONTROL_LINE = "Maximum Control Line Exceeded"
SERVER_SHUTDOWN = "Server Shutdown"
AUTHENTICATION_EXPIRED = "Authentication Expired"
REVOCATION = "Revocation"
NO_RESPONDERS_NEEDS_HEADERS = "No Responders Requires Headers"
MAX_ACCOUNT_CONNECTIONS = "Maximum Account Connections Exceeded"


class Err(NamedTuple):
    """One `-ERR` of the core protocol: its text (with `{}` fields for `format`) and the ClosedState the
    connection is closed with after it, or None when the connection stays open."""
    text: str
    closes: str | None = None

    def format(self, *args) -> str:
        return self.text.format(*args) if args else self.text


# Errors that end the connection.
ERR_UNKNOWN_PROTOCOL = Err("Unknown Protocol Operation", PROTOCOL_VIOLATION)
ERR_MAX_CONTROL_LINE = Err("maximum control line exceeded", MAX_CONTROL_LINE)
ERR_MAX_PAYLOAD = Err("Maximum Payload Violation", MAX_PAYLOAD)
# nats-server sends "Authorization Violation" and records the close as AuthenticationViolation
# ("Authentication Failure"): both names are nats-server's own.
ERR_AUTHORIZATION_VIOLATION = Err("Authorization Violation", AUTHENTICATION_VIOLATION)
ERR_AUTHENTICATION_TIMEOUT = Err("Authentication Timeout", AUTHENTICATION_TIMEOUT)
ERR_AUTHENTICATION_EXPIRED = Err("User Authentication Expired", AUTHENTICATION_EXPIRED)
ERR_AUTHENTICATION_REVOKED = Err("User Authentication Revoked", REVOCATION)
ERR_STALE_CONNECTION = Err("Stale Connection", STALE_CONNECTION)
ERR_MAX_CONNECTIONS = Err("maximum connections exceeded", MAX_CONNECTIONS)
ERR_MAX_ACCOUNT_CONNECTIONS = Err("maximum account active connections exceeded", MAX_ACCOUNT_CONNECTIONS)
ERR_BAD_CLIENT_PROTOCOL = Err("invalid client protocol", BAD_CLIENT_PROTOCOL)
ERR_NO_RESPONDERS_NEEDS_HEADERS = Err("no responders requires headers support", NO_RESPONDERS_NEEDS_HEADERS)

# Errors after which the connection stays open.
ERR_INVALID_PUBLISH_SUBJECT = Err("Invalid Publish Subject")
ERR_INVALID_SUBJECT = Err("Invalid Subject")
ERR_MAX_SUBSCRIPTIONS = Err("maximum subscriptions exceeded")
ERR_PUBLISH_VIOLATION = Err('Permissions Violation for Publish to "{}"')
ERR_PUBLISH_REPLY_VIOLATION = Err('Permissions Violation for Publish with Reply of "{}"')
ERR_SUBSCRIPTION_VIOLATION = Err('Permissions Violation for Subscription to "{}"')
ERR_QUEUE_SUBSCRIPTION_VIOLATION = Err('Permissions Violation for Subscription to "{}" using queue "{}"')
# A reload took the permission away: the subscription is removed, its sid named.
ERR_SUBSCRIPTION_REMOVED = Err('Permissions Violation for Subscription to "{}" (sid "{}")')
ERR_QUEUE_SUBSCRIPTION_REMOVED = Err('Permissions Violation for Subscription to "{}" using queue "{}" (sid "{}")')


class StartError(Exception):
    """The server cannot start (port taken, bad store): the command line logs it as [FTL] and exits 1."""


class ReloadError(Exception):
    """A reload was refused; the server keeps running with its current configuration."""
