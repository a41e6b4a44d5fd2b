"""How the lab's DataFrames show in a notebook: a summary line over a table a person can read.

`LabFrame` is a pandas DataFrame that holds all its data, unchanged (full-precision times, whole payloads,
header dicts), and only renders differently: one summary line (or why it is empty), compact times, JSON
payloads clipped between values and never inside one, headers as `Key: value`, no `{}` for none, no
index (a column such as `seq` already names each row), and columns chosen for the eye with the rest named
below. Anything derived from it (`df[...]`, `df.head()`, `pd.concat`) is a plain DataFrame again.
"""
from __future__ import annotations

import html
from typing import Any, Callable

import pandas as pd
from nats.js.api import ConsumerInfo, StreamInfo

CLIP = 120          # characters of a payload shown in a table cell
EDGE_ROWS = 10      # a long table shows this many rows at each end


class LabFrame(pd.DataFrame):
    """A DataFrame with a summary line and a readable display; the data itself is what pandas holds."""

    _metadata = ["summary", "shown_columns", "body"]

    @property
    def _constructor(self):
        return pd.DataFrame

    # -- display ----------------------------------------------------------------------------------
    def _display(self) -> tuple[pd.DataFrame | None, str]:
        """The (strings-only) table to show and the footer line under it."""
        body = getattr(self, "body", None)
        if body is not None:
            return body(self), ""
        if not len(self):
            return None, ""
        cols = [c for c in (getattr(self, "shown_columns", None) or list(self.columns)) if c in self.columns]
        cols = [c for c in cols if not _all_empty(self[c])]
        hidden = [c for c in self.columns if c not in cols]
        frame = pd.DataFrame(self[cols])
        footer = []
        if len(frame) > 2 * EDGE_ROWS + 5:
            gap = pd.DataFrame([["…"] * len(cols)], columns=cols)
            shown = pd.concat([readable(frame.head(EDGE_ROWS)), gap, readable(frame.tail(EDGE_ROWS))],
                              ignore_index=True)
            footer.append(f"{len(self):,} rows: the first and last {EDGE_ROWS} shown")
        else:
            shown = readable(frame)
        if hidden:
            footer.append("also in the DataFrame: " + ", ".join(map(str, hidden)))
        return shown, "; ".join(footer)

    def _repr_html_(self) -> str:
        table, footer = self._display()
        out = []
        if getattr(self, "summary", None):
            out.append(f"<p>{html.escape(self.summary)}</p>")
        if table is not None:
            out.append(table.to_html(index=False, escape=True, na_rep=""))
        if footer:
            out.append(f"<p><small>{html.escape(footer)}</small></p>")
        return "\n".join(out) or "<p>(empty)</p>"

    def __repr__(self) -> str:
        table, footer = self._display()
        out = []
        if getattr(self, "summary", None):
            out.append(self.summary)
        if table is not None:
            out.append(table.to_string(index=False, na_rep=""))
        if footer:
            out.append(footer)
        return "\n".join(out) or "(empty DataFrame)"


def lab_frame(df: pd.DataFrame, summary: str | None = None, *, columns: list[str] | None = None,
              body: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> LabFrame:
    """`df` (same data, not copied) shown with `summary` over it; `columns` the ones worth the eye (the
    rest are named under the table), `body` a function giving another table to show instead (a summary
    of the data, e.g. percentiles)."""
    out = LabFrame(df)
    out.summary = summary
    out.shown_columns = columns
    out.body = body
    return out


def _all_empty(col: pd.Series) -> bool:
    if not len(col):
        return False
    return bool(col.map(lambda v: v is None or (isinstance(v, (dict, list, str, bytes)) and not v)
                        or (isinstance(v, float) and v != v)).all())


# -- cells ---------------------------------------------------------------------------------------------
def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the short text a person reads; the frame given is not changed."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(col):
            out[name] = compact_times(col)
        elif pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            out[name] = col.map(_cell)
        elif pd.api.types.is_float_dtype(col):
            out[name] = col.map(lambda v: "" if v != v else f"{v:,.3f}".rstrip("0").rstrip("."))
        else:
            out[name] = col.map(str)
    return pd.DataFrame(out, columns=list(frame.columns))


def compact_times(col: pd.Series) -> pd.Series:
    """Times to the millisecond; the date only when the column spans more than one day."""
    valid = col.dropna()
    if not len(valid):
        return col.map(lambda v: "")
    same_day = valid.dt.date.nunique() == 1
    fmt = "%H:%M:%S.%f" if same_day else "%Y-%m-%d %H:%M:%S.%f"
    return col.map(lambda t: "" if pd.isna(t) else t.strftime(fmt)[:-3])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (bytes, bytearray)):
        shown = bytes(value[:CLIP // 3]).hex(" ")
        return f"{len(value)} bytes: {shown}" + (" …" if len(value) > CLIP // 3 else "")
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return clip(str(value))


def clip(text: str, width: int = CLIP) -> str:
    """`text` up to about `width` characters, cut after a value (a comma or a space), never inside one."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text.rfind(", ", 0, width)          # after a whole value of a JSON object or list
    if cut <= width // 2:
        cut = text.rfind(" ", 0, width)      # else after a word
    if cut <= width // 2:
        cut = width
    return text[:cut].rstrip(",") + " …"


# -- what an add answers ---------------------------------------------------------------------------------
class AddedStream(StreamInfo):
    """What `stream_add` answers: the whole StreamInfo, shown as its `summary` line."""

    summary = ""


class AddedConsumer(ConsumerInfo):
    """What `consumer_add` answers: the whole ConsumerInfo, shown as its `summary` line."""

    summary = ""


def _value(v: Any) -> str:
    return str(getattr(v, "value", v))


def added_stream(info: StreamInfo) -> AddedStream:
    """`info`, kept whole, shown as one line; `%stream info` shows every field."""
    c, st = info.config, info.state
    info.__class__ = AddedStream
    info.summary = (f"stream {c.name}: subjects {', '.join(c.subjects or [])}, {_value(c.storage)} storage, "
                    f"{_value(c.retention)} retention, {st.messages:,} message{'s' if st.messages != 1 else ''} "
                    f"(every setting: %stream info {c.name})")
    return info


def added_consumer(info: ConsumerInfo) -> AddedConsumer:
    """`info`, kept whole, shown as one line; `%consumer info` shows every field."""
    c = info.config
    kind = f"push to {c.deliver_subject}" if c.deliver_subject else "pull"
    filters = c.filter_subject or ", ".join(c.filter_subjects or []) or "all subjects"
    info.__class__ = AddedConsumer
    policy = getattr(c, "priority_policy", None)
    groups = ", ".join(getattr(c, "priority_groups", None) or [])
    priority = f", priority {policy} (group {groups})" if policy else ""
    info.summary = (f"consumer {info.name} on {info.stream_name}: {kind}, {filters}, deliver "
                    f"{_value(c.deliver_policy)}, ack {_value(c.ack_policy)}{priority}, {info.num_pending:,} "
                    f"pending (every setting: %consumer info {info.stream_name} {info.name})")
    return info
