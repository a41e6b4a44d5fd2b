"""pynats-lab: NATS in a notebook. Magics, DataFrames, widgets and charts over nats-py.

The lab talks to servers only through the NATS protocol, so everything here works the same against the
bundled embedded server and a real nats-server or cluster.
"""
