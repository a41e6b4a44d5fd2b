"""Tutorials must never destroy a user's data: the streams and buckets a tutorial makes carry a marker, and a
tutorial removes only what carries it.

`tutorial_start("03", streams=[...], buckets=[...], objects=[...])` runs in a tutorial's first cell. From then on
every stream, key-value bucket and object store the lab creates on that session (`%stream add`, `kv_add`,
`obj_add`, ...) gets the stream metadata `pynats-lab.tutorial: 03`. Names left by an earlier run (they carry the
marker) are removed; a name taken by anything else stops the tutorial with one line, and nothing is touched.
`tutorial_end()` in the last cell removes the tutorial's names again, but only those with the marker.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import nats.js.errors as jse

from .done import Done
from .errors import LabError
from .session import Session, in_session

MARKER = "pynats-lab.tutorial"


class TutorialConflict(LabError):
    """A name a tutorial needs belongs to something it did not make: the tutorial stops, nothing is removed."""


def marked(config) -> str | None:
    """The tutorial that made a stream (its config's marker), or None."""
    return (getattr(config, "metadata", None) or {}).get(MARKER)


def mark_config(s: Session, config):
    """`config` (a StreamConfig) with the session's tutorial marker added, if a tutorial is running."""
    tutorial = getattr(s, "tutorial", None)
    if tutorial is None:
        return config
    return dataclasses.replace(config, metadata={**(config.metadata or {}), MARKER: tutorial})


async def is_new(s: Session, stream: str) -> bool:
    """Whether `stream` does not exist yet, asked only while a tutorial runs (else False: nothing to mark). A
    bucket's create returns one that exists already: that one is not the tutorial's and must not be marked."""
    if getattr(s, "tutorial", None) is None:
        return False
    try:
        await s.js.stream_info(stream)
    except jse.NotFoundError:
        return True
    return False


async def mark_stream(s: Session, stream: str) -> None:
    """Add the session's tutorial marker to a stream it has just created (buckets: nats-py creates their stream
    without metadata)."""
    if getattr(s, "tutorial", None) is None:
        return
    cfg = (await s.js.stream_info(stream)).config
    meta = {k: v for k, v in (cfg.metadata or {}).items() if not k.startswith("_nats.")}
    if meta.get(MARKER) != s.tutorial:
        await s.js.update_stream(dataclasses.replace(cfg, metadata={**meta, MARKER: s.tutorial}))


def _called(tutorial: str) -> str:
    """How the lines name the run: `tutorial 03` for a numbered tutorial, else its id (a regression notebook's
    `regress/dedup_window`, a notebook of one's own)."""
    return f"tutorial {tutorial}" if tutorial[:2].isdigit() else tutorial


def _wanted(streams: Iterable[str], buckets: Iterable[str], objects: Iterable[str]) -> list[tuple[str, str, str]]:
    """(kind, name, stream) for every name a tutorial uses."""
    return ([("stream", n, n) for n in streams] + [("bucket", n, f"KV_{n}") for n in buckets]
            + [("object store", n, f"OBJ_{n}") for n in objects])


async def _existing(s: Session, wanted) -> dict[str, object]:
    """Stream name -> config of those of `wanted` that exist."""
    out = {}
    for _kind, _name, stream in wanted:
        try:
            out[stream] = (await s.js.stream_info(stream)).config
        except jse.NotFoundError:
            pass
    return out


async def _remove(s: Session, wanted, existing: dict) -> list[str]:
    removed = []
    for kind, name, stream in wanted:
        if stream in existing and marked(existing[stream]) is not None:
            try:
                await s.js.delete_stream(stream)
            except jse.NotFoundError:
                continue
            removed.append(f"{kind} {name}")
    return removed


@in_session
async def tutorial_start(s: Session, tutorial: str, *, streams: Iterable[str] = (), buckets: Iterable[str] = (),
                         objects: Iterable[str] = ()) -> Done:
    """Begin tutorial `tutorial` on this session: what it creates from now on carries its marker; the `streams`,
    key-value `buckets` and object stores (`objects`) it uses are removed if an earlier tutorial run left them
    (they carry the marker). If one of those names is taken by anything else, nothing is removed and
    `TutorialConflict` says which, so the tutorial stops before it could change someone's data."""
    tutorial = str(tutorial)
    wanted = _wanted(streams, buckets, objects)
    existing = await _existing(s, wanted)
    foreign = [f"{kind} {name}" for kind, name, stream in wanted
               if stream in existing and marked(existing[stream]) is None]
    if foreign:
        taken = ", ".join(foreign)
        its = "it was" if len(foreign) == 1 else "they were"
        raise TutorialConflict(
            f"{taken} already exist{'s' if len(foreign) == 1 else ''} on {s.url} and {its} not made by a tutorial: "
            f"left alone, {_called(tutorial)} stops here. Run it on the embedded server (server_url = None) or "
            f"on a server or account where {'that name is' if len(foreign) == 1 else 'those names are'} free")
    s.tutorial = tutorial
    s.tutorial_names = wanted
    removed = await _remove(s, wanted, existing)
    text = f"{_called(tutorial)}: " + (f"removed what an earlier run left ({', '.join(removed)})" if removed
                                       else "nothing left from an earlier run")
    return Done(text, removed=removed)


@in_session
async def tutorial_end(s: Session) -> Done:
    """Remove what the running tutorial made (only streams and buckets carrying its marker) and end it."""
    tutorial = getattr(s, "tutorial", None)
    if tutorial is None:
        raise LabError("no tutorial is running on this session: tutorial_start(...) begins one")
    wanted = getattr(s, "tutorial_names", [])
    existing = await _existing(s, wanted)
    removed = await _remove(s, wanted, existing)
    kept = [f"{kind} {name}" for kind, name, stream in wanted if stream in existing and marked(existing[stream])
            is None]
    s.tutorial = None
    s.tutorial_names = []
    text = f"{_called(tutorial)}: removed {', '.join(removed) if removed else 'nothing'}"
    if kept:
        text += f"; left alone {', '.join(kept)} (not made by a tutorial)"
    return Done(text, removed=removed, kept=kept)
