"""Benchmarks, run on demand side by side on the embedded server and nats-server; never part of the tests.

`python -m bench NAME` runs one suite (`python -m bench all` runs every suite); each suite is a module
here with `main(argv) -> int`.
"""
