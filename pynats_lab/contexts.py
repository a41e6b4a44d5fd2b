"""natscli contexts: `%nats connect --context NAME` reads ~/.config/nats/context/NAME.json.

The same files `nats context save` writes, so credentials stay out of notebooks. Only the connection
fields are used; settings the lab does not apply (e.g. a JetStream domain) are named in a note.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import LabError
from .notes import note

# natscli's JSON field -> Session.connect keyword
_FIELDS = {"url": "url", "token": "token", "user": "user", "password": "password", "creds": "creds",
           "nkey": "nkey", "cert": "tls_cert", "key": "tls_key", "ca": "tls_ca"}
_IGNORED_QUIETLY = {"description", "color_scheme", "nsc", "socks_proxy", "windows_cert_store",
                    "windows_cert_match_by", "windows_cert_match", "windows_ca_certs_match"}


def context_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nats" / "context"


def context_path(name: str) -> Path:
    """A context name (natscli's directory) or a path to a context JSON file."""
    if name.endswith(".json") or os.sep in name:
        return Path(os.path.expanduser(name))
    return context_dir() / f"{name}.json"


def list_contexts() -> list[str]:
    d = context_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def load_context(name: str) -> dict[str, str]:
    """The connection options stored in a natscli context, as keywords for Session.connect."""
    path = context_path(name)
    if not path.is_file():
        known = ", ".join(list_contexts()) or "none"
        raise LabError(f"no natscli context {name!r} at {path} (known contexts: {known})")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read natscli context {path}: {exc}") from None
    options = {ours: str(data[theirs]) for theirs, ours in _FIELDS.items() if data.get(theirs)}
    unused = sorted(k for k, v in data.items() if v and k not in _FIELDS and k not in _IGNORED_QUIETLY)
    if unused:
        note(f"context {name}: not applied by pynats-lab: {', '.join(unused)}")
    return options
