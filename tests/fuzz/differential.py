"""What the differential fuzzers share: a pair of servers (nats-server and the embedded one), one event loop to
drive them from hypothesis' synchronous tests, masks for what may differ (ids, times), and the corpus.

The corpus (tests/fuzz/corpus/*.json) holds the cases found so far; every run replays them before hypothesis
generates new ones. A run is seeded (FUZZ_SEED, default 11) and bounded (FUZZ_EXAMPLES, default small for CI;
set it to thousands for a long run). A case that differs is printed as a corpus line to add.
"""
from __future__ import annotations

import asyncio
import difflib
import json
import os
import threading
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
SEED = int(os.environ.get("FUZZ_SEED", "11"))


def examples(default: int) -> int:
    """How many new cases hypothesis generates: `default` in CI, FUZZ_EXAMPLES for a longer run."""
    return int(os.environ.get("FUZZ_EXAMPLES", default))


def load_corpus(name: str) -> list[dict]:
    return json.loads((CORPUS / f"{name}.json").read_text())


def corpus_line(case: dict) -> str:
    return json.dumps(case, ensure_ascii=False)


def difference(nats_answer, embedded_answer) -> str:
    """The lines where two answers differ, nats-server's first."""
    a = json.dumps(nats_answer, indent=1, sort_keys=True, default=repr).splitlines()
    b = json.dumps(embedded_answer, indent=1, sort_keys=True, default=repr).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "nats-server", "embedded", n=1, lineterm=""))


class Loop:
    """One event loop in a thread, so synchronous hypothesis tests can drive async connections."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


MASKED_KEYS = {"created", "ts", "first_ts", "last_ts", "time", "last_active", "_nats.ver", "_nats.level",
               "cluster", "pause_remaining", "Nats-Time-Stamp"}
# Go's JSON syntax errors are worded differently from Python's (docs/differences.md): compare only the code.
GO_SYNTAX_ERRORS = ("invalid character", "unexpected end of JSON input", "exceeded max depth")


def mask(value):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in MASKED_KEYS:
                out[k] = "<masked>"
            elif k == "description" and isinstance(v, str) and v.startswith("invalid JSON: ") and \
                    any(s in v for s in GO_SYNTAX_ERRORS + ("Expecting", "Unterminated", "Invalid", "Extra data")):
                out[k] = "invalid JSON: <syntax error>"
            else:
                out[k] = mask(v)
        return out
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value
