"""`Done`: what an action with no table to show returns (rm, purge, core publish).

A string that displays without quotes, with the numbers as attributes, so `r = %stream purge ORDERS`
shows 'purged 10 messages from ORDERS' and `r.count == 10`.
"""
from __future__ import annotations


class Done(str):
    def __new__(cls, text: str, **facts):
        self = super().__new__(cls, text)
        for k, v in facts.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return str(self)
