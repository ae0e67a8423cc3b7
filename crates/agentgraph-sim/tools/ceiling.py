#!/usr/bin/env python3
"""How many of a report's wrong parents could any inference have got right?

For a simulated dump, compares each wrong parent the analyzer reported with the truth under the
simulator's own timing model (the scenario file): for every group of parents whose reported
calls differ from their true calls, it computes the likelihood of the calls' start times and
the parents' answers given both assignments, exactly as `agentgraph simulate` generates them
(think times, steps taken or skipped, parallel and sequential calls, calls to external APIs
the flows do not show). Each group is then:

  favours the report  the report is at least as likely as the truth: an inference knowing the
                      scenario's timing exactly would make the same choice (unavoidable);
  close call          the truth is likelier, by less than 20 times: only an inference that
                      knows the timing closely gets it right;
  clear miss          the truth is more than 20 times likelier.

"best possible" is the parent accuracy with every close call and clear miss put right, the
groups that favour the report staying wrong: an estimate of the most any inference could get
from these flows, and only with the scenario's exact timing. (An estimate: another report may
go wrong, or right, in other places.)

    python3 crates/agentgraph-sim/tools/ceiling.py report.json sim/truth.json [--details]

`report.json` is `agentgraph analyze --format json`; the scenario is the built-in one named in
`truth.json` (or `--scenario FILE`). Approximations: the network delay is its mean, clock skew
is ignored (the truth's times are the true times), and the time taken by external calls is
integrated by Monte Carlo (seeded: the output is reproducible). Standard library only (Python
3.11 or later, for tomllib).
"""

import argparse
import bisect
import calendar
import collections
import json
import math
import os
import random
import time
import tomllib

SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios")
LOG_ZERO = -50.0  # ln of "impossible", kept finite so impossible groups still compare
CLEAR = math.log(20.0)
MATCH_NS = 5_000_000  # a reported call matches the true call of the same edge starting this close


def ns(stamp):
    whole, frac = stamp.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac.ljust(9, "0"))


def ln(x):
    return math.log(x) if x > 0 else LOG_ZERO


class Model:
    """The scenario's timing, as `sim.rs` (`Simulator::call`) draws it."""

    def __init__(self, scenario):
        self.agents = {f"{a['namespace']}/{a['name']}": a for a in scenario["agents"]}
        by_name = {a["name"]: f"{a['namespace']}/{a['name']}" for a in scenario["agents"]}
        lo, hi = scenario.get("network_ms", [0.2, 1.5])
        self.net_ms = (hi - lo) / math.log(hi / lo)  # mean of the log-uniform delay
        self.timeout_ms = scenario.get("client_timeout_ms", 30_000.0)
        self.rng = random.Random(1)
        self.sums = {}
        self.counts = {}
        for agent in self.agents.values():
            for step in agent.get("calls", []):
                to = step["to"]
                step["_kind"] = None if to.startswith("external:") else (by_name[to], step.get("path", "/v1/task"))

    def log_uniform(self, lo, hi):
        return math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * self.rng.random())

    def count_pmf(self, step):
        key = id(step)
        if key not in self.counts:
            lo, hi = step.get("count", [1, 1])
            alpha = step.get("count_alpha")
            if alpha is None:
                self.counts[key] = {n: 1.0 / (hi - lo + 1) for n in range(lo, hi + 1)}
            else:  # the bounded Pareto of rng.rs, tabulated by sampling
                tally = collections.Counter()
                draws = 200_000
                for _ in range(draws):
                    u, l, h = self.rng.random(), max(lo, 1), hi + 1.0
                    x = (-(u * h**alpha - u * l**alpha - h**alpha) / (h**alpha * l**alpha)) ** (-1 / alpha)
                    tally[min(max(int(x), lo), hi)] += 1
                self.counts[key] = {n: k / draws for n, k in tally.items()}
        return self.counts[key]

    def density(self, pieces, x):
        """Density (per ms) at `x` ms of a sum of independent delays: ("lu", lo, hi) log-uniform,
        ("u", lo, hi) uniform, ("ext", n) n external calls of 1 ms + log-uniform [50, 800]."""
        if len(pieces) == 1 and pieces[0][0] in ("lu", "u"):
            kind, lo, hi = pieces[0]
            if not lo <= x <= hi:
                return 0.0
            return 1.0 / (hi - lo) if kind == "u" else 1.0 / (x * math.log(hi / lo))
        if x <= 0:
            return 0.0
        if pieces not in self.sums:
            width = 0.01  # bins of 1 % in ln(x)
            tally = collections.Counter()
            draws = 300_000
            for _ in range(draws):
                total = 0.0
                for p in pieces:
                    if p[0] == "lu":
                        total += self.log_uniform(p[1], p[2])
                    elif p[0] == "u":
                        total += p[1] + (p[2] - p[1]) * self.rng.random()
                    else:
                        total += sum(1.0 + self.log_uniform(50.0, 800.0) for _ in range(p[1]))
                tally[math.floor(math.log(total) / width)] += 1
            self.sums[pieces] = (tally, draws, width)
        tally, draws, width = self.sums[pieces]
        b = math.floor(math.log(x) / width)
        return tally.get(b, 0) / draws / (math.exp((b + 1) * width) - math.exp(b * width))

    def log_likelihood(self, parent, calls):
        """ln p(the calls' starts and the parent's answer | the calls' ends, the parent's start),
        summed over the steps the parent may have taken or skipped."""
        spec = self.agents.get(parent["server"])
        steps = spec.get("calls", []) if spec else []
        if not steps:
            return 0.0 if not calls else LOG_ZERO * 8
        a, b = spec.get("think_ms", [50.0, 400.0])
        think, half = ("lu", a, b), ("lu", a / 2, b / 2)
        start = parent["start_ns"] / 1e6 + self.net_ms
        end = parent["end_ns"] / 1e6 - self.net_ms
        calls = sorted(calls, key=lambda c: c["start_ns"])
        memo = {}

        def rest(i, j, anchor, pending):
            """Steps i.. with calls j.., the last anchor time and the delays since it."""
            key = (i, j, anchor, pending)
            if key in memo:
                return memo[key]
            if i == len(steps):
                value = ln(self.density(pending, end - anchor)) if j == len(calls) else LOG_ZERO * 4
                memo[key] = value
                return value
            step = steps[i]
            p = step.get("probability", 1.0)
            options = []
            if p < 1:
                options.append(math.log(1 - p) + rest(i + 1, j, anchor, pending))
            pmf = self.count_pmf(step)
            if step["_kind"] is None:  # external: unseen, only its time passes
                for n, q in pmf.items():
                    options.append(math.log(p) + math.log(q) + rest(i + 1, j, anchor, pending + (("ext", n), half)))
            else:
                n = 0
                while j + n < len(calls) and (calls[j + n]["server"], calls[j + n]["path"]) == step["_kind"]:
                    n += 1
                    if n not in pmf:
                        continue
                    run = calls[j : j + n]
                    value = math.log(p) + math.log(pmf[n]) + ln(self.density(pending, run[0]["start_ns"] / 1e6 - anchor))
                    if step.get("parallel"):
                        for x, y in zip(run, run[1:]):
                            value += ln(self.density((("u", 0.2, 3.0),), (y["start_ns"] - x["start_ns"]) / 1e6))
                        after = max([run[0]["start_ns"]] + [c["end_ns"] for c in run]) / 1e6
                        since = (half,)
                    else:
                        for x, y in zip(run, run[1:]):
                            value += ln(self.density((("u", 1.0, 30.0),), (y["start_ns"] - x["end_ns"]) / 1e6))
                        after = run[-1]["end_ns"] / 1e6
                        since = (("u", 1.0, 30.0), half)
                    options.append(value + rest(i + 1, j + n, after, since))
            best = max(options) if options else LOG_ZERO * 8
            value = best + math.log(sum(math.exp(o - best) for o in options)) if best > LOG_ZERO * 8 else best
            memo[key] = value
            return value

        return rest(0, 0, start, (think,))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="agentgraph analyze --format json output")
    ap.add_argument("truth", help="truth.json from agentgraph simulate")
    ap.add_argument("--scenario", help="scenario TOML (default: the built-in one truth.json names)")
    ap.add_argument("--details", action="store_true", help="print every group of wrong parents")
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    args = ap.parse_args()
    truth_doc = json.load(open(args.truth))
    report = json.load(open(args.report))
    path = args.scenario or os.path.join(SCENARIOS, f"{truth_doc['scenario']}.toml")
    with open(path, "rb") as f:
        model = Model(tomllib.load(f))

    truth, by_edge = {}, collections.defaultdict(list)
    for q in truth_doc["requests"]:
        for c in q["calls"]:
            s = ns(c["start"])
            ms = c["duration_ms"] if c["duration_ms"] is not None else model.timeout_ms
            truth[(q["id"], c["id"])] = dict(c, start_ns=s, end_ns=s + int(ms * 1e6))
            by_edge[(c["client"], c["server"], c["path"])].append((s, (q["id"], c["id"])))
    for starts in by_edge.values():
        starts.sort()
    # Reported calls match true calls of the same edge: same start first, then the nearest
    # start within MATCH_NS (a start read on another node's clock), so that a near neighbour
    # never takes a call's exact match.
    taken, matched = set(), {}
    reported = [(q["id"], c) for q in report["requests"] for c in q["calls"]]
    for exact in (True, False):
        for qid, c in reported:
            if (qid, c["id"]) in matched:
                continue
            starts = by_edge.get((c["client"], c["server"], c["path"]), [])
            s = ns(c["start"])
            i = bisect.bisect_left(starts, (s - MATCH_NS,))
            near = [k for t, k in starts[i : i + 16] if abs(t - s) <= (0 if exact else MATCH_NS) and k not in taken]
            if near:
                best = min(near, key=lambda k: abs(truth[k]["start_ns"] - s))
                taken.add(best)
                matched[(qid, c["id"])] = best
    true_parent = {k: ((k[0], v["parent"]) if v["parent"] else None) for k, v in truth.items()}
    reported_parent = {}
    for q in report["requests"]:
        for c in q["calls"]:
            k = matched.get((q["id"], c["id"]))
            if k:
                reported_parent[k] = matched.get((q["id"], c["parent"])) if c["parent"] else None
    true_calls, reported_calls = collections.defaultdict(list), collections.defaultdict(list)
    for k, p in true_parent.items():
        if p:
            true_calls[p].append(k)
    for k, p in reported_parent.items():
        if p:
            reported_calls[p].append(k)

    wrong = [k for k in reported_parent if reported_parent[k] != true_parent[k]]
    seen, groups = set(), []
    for w in wrong:
        if w in seen:
            continue
        parents, calls = {p for p in (true_parent[w], reported_parent[w]) if p}, {w}
        grown = True
        while grown:  # every parent and call tied to this mistake
            grown = False
            for p in list(parents):
                for k in true_calls[p] + reported_calls[p]:
                    if k not in calls:
                        calls.add(k)
                        grown = True
            for k in list(calls):
                for p in (true_parent[k], reported_parent.get(k)):
                    if p and p not in parents:
                        parents.add(p)
                        grown = True
        seen |= calls
        n_wrong = sum(1 for k in calls if reported_parent.get(k) != true_parent[k])
        lt = {p: model.log_likelihood(truth[p], [truth[k] for k in true_calls[p]]) for p in parents}
        lr = {p: model.log_likelihood(truth[p], [truth[k] for k in reported_calls[p]]) for p in parents}
        delta = sum(lr.values()) - sum(lt.values())
        verdict = "favours the report" if delta >= 0 else "close call" if delta > -CLEAR else "clear miss"
        groups.append((verdict, n_wrong, delta, parents, calls, lt, lr))

    total = len(reported_parent)
    unavoidable = sum(g[1] for g in groups if g[0] == "favours the report")
    if args.json:
        count = {v: sum(g[1] for g in groups if g[0] == v) for v in ("favours the report", "close call", "clear miss")}
        print(json.dumps({
            "matched_calls": total,
            "wrong_parents": len(wrong),
            "favours_report": count["favours the report"],
            "close_calls": count["close call"],
            "clear_misses": count["clear miss"],
            "best_possible": 1 - unavoidable / max(total, 1),
        }))
        return
    print(f"{total} calls matched, {len(wrong)} wrong parents ({100 - 100 * len(wrong) / max(total, 1):.2f} % right)")
    for verdict in ("favours the report", "close call", "clear miss"):
        mine = [g for g in groups if g[0] == verdict]
        print(f"  {verdict:<19} {sum(g[1] for g in mine):5} wrong parents in {len(mine):3} groups")
    print(f"  best possible        {100 - 100 * unavoidable / max(total, 1):.2f} %")
    if args.details:
        for verdict, n_wrong, delta, parents, calls, lt, lr in sorted(groups, key=lambda g: g[2]):
            base = min(truth[p]["start_ns"] for p in parents)
            print(f"\n{verdict}: {n_wrong} wrong, ln(report/truth) = {delta:.1f}")
            for p in sorted(parents, key=lambda p: truth[p]["start_ns"]):
                P = truth[p]
                print(f"  {p[0]}/{p[1]} {P['server']} on {P['server_pod']}: "
                      f"{(P['start_ns'] - base) / 1e6:.1f}..{(P['end_ns'] - base) / 1e6:.1f} ms, "
                      f"ln p truth {lt[p]:.1f}, report {lr[p]:.1f}")
                for k in sorted(set(true_calls[p]) | set(reported_calls[p]), key=lambda k: truth[k]["start_ns"]):
                    K = truth[k]
                    tag = ("T" if k in true_calls[p] else "-") + ("R" if k in reported_calls[p] else "-")
                    print(f"    {tag} {K['server']:<24} {(K['start_ns'] - base) / 1e6:10.1f}..{(K['end_ns'] - base) / 1e6:.1f}  {k[0]}/{k[1]}")


if __name__ == "__main__":
    main()
