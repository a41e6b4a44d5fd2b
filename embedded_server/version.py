"""This package's own version, and the nats-server feature level it implements (sent in INFO as `version`;
clients such as nats-py enable features by it, e.g. JetStream consumer names from 2.9)."""
VERSION = "0.1.0"
PROTOCOL_VERSION = "2.11.0"
