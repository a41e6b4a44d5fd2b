"""The `pynats-lab` command: `lab` starts JupyterLab on the notebooks, `server` runs the embedded server."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _notebooks_dir() -> Path:
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "notebooks"


def cmd_lab(args: argparse.Namespace, extra: list[str]) -> int:
    from jupyterlab.labapp import main as lab_main

    root = Path(args.notebooks) if args.notebooks else _notebooks_dir()
    if args.server:
        os.environ["NATS_URL"] = args.server
    argv = ["jupyter-lab", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        # Containers and CI machines often run as root; JupyterLab refuses that unless told.
        argv.append("--allow-root")
    sys.argv = argv + extra
    return lab_main() or 0


def cmd_server(args: argparse.Namespace, extra: list[str]) -> int:
    from embedded_server.__main__ import main as server_main

    return server_main(extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pynats-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="start JupyterLab on the tutorials (extra arguments go to jupyter lab)")
    lab.add_argument("--notebooks", help="folder to open (default: ./notebooks)")
    lab.add_argument("--server", help="NATS URL for the notebooks (default: the embedded server)")
    lab.set_defaults(func=cmd_lab)
    srv = sub.add_parser("server", help="run the embedded NATS server (nats-server's flags)", add_help=False)
    srv.set_defaults(func=cmd_server)
    args, extra = parser.parse_known_args(argv)
    return args.func(args, extra)


if __name__ == "__main__":
    sys.exit(main())
