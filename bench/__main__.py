"""`python -m bench SUITE [args]`: run one benchmark suite (a module of this package with main(argv)),
or `all` of them with their defaults."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def suites() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m bench {{{','.join(suites() + ['all'])}}} [suite arguments]")
        return 0 if argv else 2
    names = suites() if argv[0] == "all" else [argv[0]]
    rc = 0
    for name in names:
        if name not in suites():
            print(f"unknown suite {name!r}; known: {', '.join(suites())}", file=sys.stderr)
            return 2
        rc |= importlib.import_module(f"bench.{name}").main(argv[1:] if name == argv[0] else [])
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
