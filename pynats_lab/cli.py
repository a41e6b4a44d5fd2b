"""The `pynats-lab` command: `lab` starts JupyterLab on the notebooks, `regress` runs regression notebooks,
`server` runs the embedded server."""
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


def cmd_regress(args: argparse.Namespace, extra: list[str]) -> int:
    from pynats_lab.regress import parse_parameter, regress

    if extra:
        print(f"pynats-lab regress: unknown arguments: {' '.join(extra)}", file=sys.stderr)
        return 2
    try:
        params = dict(parse_parameter(p) for p in args.parameter)
        report = regress(args.paths or ["notebooks/regression"], server=args.server, parameters=params,
                         out=args.out, junit=args.junit, jobs=args.jobs, timeout=args.timeout,
                         kernel_name=args.kernel, creds=args.creds, monitor=args.monitor)
    except (ValueError, FileNotFoundError) as exc:
        print(f"pynats-lab regress: {exc}", file=sys.stderr)
        return 2
    print(report.DataFrame().drop(columns=["output"]).to_string(index=False))
    failed = [r for r in report.results if r.status != "passed"]
    print(f"\n{len(report.results) - len(failed)} passed, {len(failed)} failed — report: "
          f"{Path(args.out) / 'report.html'}" + (f", JUnit: {args.junit}" if args.junit else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pynats-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="start JupyterLab on the tutorials (extra arguments go to jupyter lab)")
    lab.add_argument("--notebooks", help="folder to open (default: ./notebooks)")
    lab.add_argument("--server", help="NATS URL for the notebooks (default: the embedded server)")
    lab.set_defaults(func=cmd_lab)
    srv = sub.add_parser("server", help="run the embedded NATS server (nats-server's flags)", add_help=False)
    srv.set_defaults(func=cmd_server)
    reg = sub.add_parser("regress", help="run regression notebooks with papermill and report",
                         description="Run papermill regression notebooks against one NATS server.")
    reg.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/regression)")
    reg.add_argument("--server", help="NATS URL (default: start the embedded server for the run)")
    reg.add_argument("--creds", metavar="FILE", help="credentials file the notebooks log in with (NATS_CREDS)")
    reg.add_argument("--monitor", metavar="URL", help="the servers' monitoring URL(s), comma-separated, for "
                     "server_health when the credentials are not a system-account user's (NATS_MONITOR)")
    reg.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="notebook parameter, as papermill's -p (repeatable)")
    reg.add_argument("--junit", help="write JUnit XML here")
    reg.add_argument("--out", default="regress-out", help="folder for executed notebooks and report.html")
    reg.add_argument("--jobs", type=int, help="notebooks run in parallel (default: number of CPUs)")
    reg.add_argument("--timeout", type=float, default=600, help="seconds a cell may run (default 600)")
    reg.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's)")
    reg.set_defaults(func=cmd_regress)
    args, extra = parser.parse_known_args(argv)
    return args.func(args, extra)


if __name__ == "__main__":
    sys.exit(main())
