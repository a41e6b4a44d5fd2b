"""A pure-Python NATS server: the core protocol, auth, configuration and reload, monitoring and JetStream.

It speaks nats-server's wire protocol so that any NATS client works against it unchanged. It needs only the
standard library at run time and never imports pynats_lab.
"""

from embedded_server.version import PROTOCOL_VERSION, VERSION

__all__ = ["EmbeddedServer", "VERSION", "PROTOCOL_VERSION"]


def __getattr__(name: str):
    # Imported on first use: the command line does not need EmbeddedServer (subprocess, pathlib) to start.
    if name == "EmbeddedServer":
        from embedded_server.embedded import EmbeddedServer
        return EmbeddedServer
    raise AttributeError(f"module 'embedded_server' has no attribute {name!r}")
