"""A pure-Python NATS server: the core protocol, auth, configuration and reload, monitoring and JetStream.

It speaks nats-server's wire protocol so that any NATS client works against it unchanged. It needs only the
standard library at run time and never imports pynats_lab.
"""
