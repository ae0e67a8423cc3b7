#!/usr/bin/env python3
"""Print every panel query of the agentgraph Grafana dashboards, ready to run against Prometheus.

One line per panel target, tab-separated:

    <dashboard uid> <TAB> <panel title> <TAB> <refId> <TAB> <expr>

Grafana variables are substituted so the expression is plain PromQL:
`$__rate_interval` -> 1m, `$__range` -> 5m, `$agent` / `${agent}` -> the --agent value
(default agents/orchestrator). Whitespace (including newlines) in an expression is collapsed to
single spaces so each query stays on one line; tabs and newlines in titles are replaced too.

Usage:
    python3 dashboards/list_queries.py [--agent NAME] [--rate-interval 1m] [--range 5m] [FILE.json ...]

Without files it reads every *.json beside this script. Panels nested in collapsed rows are
included. Exit status is 1 if a target has an empty expr or no refId (after printing the rest).
"""
import argparse
import glob
import json
import os
import re
import sys


def iter_panels(panels):
    for p in panels or []:
        yield p
        # Collapsed rows keep their panels inside the row.
        yield from iter_panels(p.get("panels"))


def substitute(expr, agent, rate_interval, range_):
    expr = re.sub(r"\$\{__rate_interval\}|\$__rate_interval\b", rate_interval, expr)
    expr = re.sub(r"\$\{__range\}|\$__range\b(?!_)", range_, expr)
    expr = re.sub(r"\$\{agent(?::[a-z]+)?\}|\$agent\b|\[\[agent\]\]", lambda _: agent, expr)
    return " ".join(expr.split())


def one_line(text):
    return " ".join(str(text).split())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="dashboard JSON files (default: *.json beside this script)")
    ap.add_argument("--agent", default="agents/orchestrator", help="value for $agent (default %(default)s)")
    ap.add_argument("--rate-interval", default="1m", help="value for $__rate_interval (default %(default)s)")
    ap.add_argument("--range", dest="range_", default="5m", help="value for $__range (default %(default)s)")
    args = ap.parse_args(argv)

    files = args.files or sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*.json")))
    bad = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
        uid = dash.get("uid", os.path.basename(path))
        for panel in iter_panels(dash.get("panels")):
            for target in panel.get("targets") or []:
                expr = (target.get("expr") or "").strip()
                ref = target.get("refId") or ""
                title = one_line(panel.get("title", ""))
                if not expr or not ref:
                    print(f"{path}: panel {title!r} has a target without expr or refId", file=sys.stderr)
                    bad += 1
                    continue
                print("\t".join([uid, title, ref,
                                 substitute(expr, args.agent, args.rate_interval, args.range_)]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
