#!/usr/bin/env python3
"""Generate the small, hand-designed Hubble flow fixtures under testdata/minimal/.

Usage:  python3 testdata/gen_fixtures.py [--out DIR]

Deterministic: every fixture uses its own fixed-seed random.Random, so running the
script twice gives byte-identical files.  Python 3.11 stdlib only.

Each *.jsonl line is a Hubble `GetFlowsResponse` exactly as `hubble observe -o json`
prints it (compact protojson, proto field names, .proto key order, 64-bit ints as
strings, RFC 3339 `Z` timestamps with 0/3/6/9 fraction digits, zero values omitted),
in the style of Cilium/Hubble 1.19 (uuid, emitter, node_labels, cluster_name,
workloads).  See ../../shared/reference/hubble-api.md sections 3, 5 and 6.

Beside every fixture <name>.jsonl a <name>.truth.json holds the ground truth: the
end-to-end requests and every HTTP call (one entry per exchange, even when both the
EGRESS and INGRESS proxy copies exist).  Agent names follow
../../shared/contracts/analysis-json-v1.md.
"""

import argparse
import calendar
import email.utils
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

EMITTER = {"name": "Hubble", "version": "1.19.1+gd0d0c879"}
BASE_S = calendar.timegm((2026, 11, 25, 10, 0, 0, 0, 0, 0))  # 2026-11-25T10:00:00Z
BASE_NS = BASE_S * 1_000_000_000

# Node -> pod subnet, and the clock skew applied to every timestamp stamped on that node.
NODE_SUBNET = {
    "kind-worker": "10.244.1.",
    "kind-worker2": "10.244.2.",
    "kind-worker3": "10.244.3.",
}
NODE_SKEW_NS = {"kind-worker": 0, "kind-worker2": 0, "kind-worker3": 0}  # set per fixture


def node_labels(node):
    return [
        "beta.kubernetes.io/arch=amd64",
        "beta.kubernetes.io/os=linux",
        "kubernetes.io/arch=amd64",
        "kubernetes.io/hostname=" + node,
        "kubernetes.io/os=linux",
    ]


# ---------------------------------------------------------------------------------------
# time formatting

def fmt_ts(ns):
    """protojson Timestamp: RFC 3339 UTC 'Z' with 0, 3, 6 or 9 fraction digits."""
    sec, nanos = divmod(ns, 1_000_000_000)
    y, mo, d, h, mi, s = __import__("time").gmtime(sec)[:6]
    head = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, h, mi, s)
    if nanos == 0:
        return head + "Z"
    if nanos % 1_000_000 == 0:
        return head + ".%03dZ" % (nanos // 1_000_000)
    if nanos % 1_000 == 0:
        return head + ".%06dZ" % (nanos // 1_000)
    return head + ".%09dZ" % nanos


def fmt_ts9(ns):
    """Contract style: always 9 fraction digits (used in the truth files)."""
    sec, nanos = divmod(ns, 1_000_000_000)
    y, mo, d, h, mi, s = __import__("time").gmtime(sec)[:6]
    return "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (y, mo, d, h, mi, s, nanos)


def http_date(ns):
    return email.utils.formatdate(ns // 1_000_000_000, usegmt=True)


def dumps(obj):
    """Compact JSON like Go's encoding/json (incl. its HTML escaping of < > &)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ---------------------------------------------------------------------------------------
# cluster inventory

class Agent:
    def __init__(self, ns, app, identity, labels, workload_kind, port=None, service=None,
                 sa=None, truth=None):
        self.ns = ns
        self.app = app
        self.identity = identity
        sa = sa or app
        base = [
            "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=" + ns,
            "k8s:io.cilium.k8s.policy.cluster=default",
            "k8s:io.cilium.k8s.policy.serviceaccount=" + sa,
            "k8s:io.kubernetes.pod.namespace=" + ns,
        ]
        self.labels = sorted(labels + base)
        self.workload_kind = workload_kind
        self.port = port
        self.service = service
        self.truth = truth or "%s/%s" % (ns, app)


AGENTS = {
    "gateway": Agent("ingress", "gateway", 24117, ["k8s:app=gateway"], "Deployment", 8080, "gateway"),
    "orchestrator": Agent("agents", "orchestrator", 31809, ["k8s:app=orchestrator"], "Deployment", 8080, "orchestrator"),
    "researcher": Agent("agents", "researcher", 40355, ["k8s:app=researcher"], "Deployment", 8080, "researcher"),
    "coder": Agent("agents", "coder", 12942, ["k8s:app=coder"], "Deployment", 8080, "coder"),
    "worker": Agent("agents", "worker", 57231, ["k8s:app=worker"], "Deployment", 8080, "worker"),
    "llm-gateway": Agent("llm", "llm-gateway", 18886, ["k8s:app=llm-gateway"], "Deployment", 4000, "llm-gateway"),
    "vectordb": Agent("data", "vectordb", 45117, ["k8s:app=vectordb"], "StatefulSet", 6333, "vectordb"),
    # Ephemeral Job pods, one Job per task: no app label, only agent-role.
    "summarizer": Agent("agents", "summarizer", 62014, ["k8s:agent-role=summarizer"], "Job", 8080, None,
                        truth="agents/summarizer"),
    "prometheus": Agent("monitoring", "prometheus", 33390,
                        ["k8s:app.kubernetes.io/component=prometheus", "k8s:app.kubernetes.io/name=prometheus"],
                        "StatefulSet", 9090, "prometheus"),
    "coredns": Agent("kube-system", "coredns", 9843, ["k8s:k8s-app=kube-dns"], "Deployment", 53, "kube-dns",
                     truth="kube-system/coredns"),
}


class Pod:
    def __init__(self, name, agent, node, octet, ep_id, workload=None, iface_idx=None, mac=None):
        self.name = name
        self.agent = AGENTS[agent]
        self.node = node
        self.ip = NODE_SUBNET[node] + str(octet)
        self.ep_id = ep_id
        self.workload = workload or self.agent.app
        self.iface = ("lxc%011x" % (ep_id * 7919 + octet))[:15]
        self.iface_idx = iface_idx or (10 + ep_id % 40)
        self.mac = mac or "%02x:%02x:%02x:%02x:%02x:%02x" % (
            0x0a | ((ep_id * 17) & 0xf0), (ep_id * 31) & 0xff, (ep_id * 53) & 0xff,
            (octet * 7) & 0xff, (ep_id >> 3) & 0xff, (octet * 29 + ep_id) & 0xff)

    @property
    def agent_name(self):
        return self.agent.truth

    def endpoint(self, reporting_node):
        d = {}
        if self.node == reporting_node:
            d["ID"] = self.ep_id
        d["identity"] = self.agent.identity
        d["cluster_name"] = "default"
        d["namespace"] = self.agent.ns
        d["labels"] = list(self.agent.labels)
        d["pod_name"] = self.name
        d["workloads"] = [{"name": self.workload, "kind": self.agent.workload_kind}]
        return d


P = {}


def _pod(key, *a, **kw):
    P[key] = Pod(*a, **kw)


_pod("gateway", "gateway-6c8b9f7d4-q9w2r", "gateway", "kind-worker", 23, 1287)
_pod("orchestrator", "orchestrator-7d9f8c6b5-x2k4q", "orchestrator", "kind-worker2", 41, 2243)
_pod("orchestrator-a", "orchestrator-7d9f8c6b5-aaaaa", "orchestrator", "kind-worker", 57, 3110)
_pod("orchestrator-b", "orchestrator-7d9f8c6b5-bbbbb", "orchestrator", "kind-worker2", 88, 611)
_pod("researcher", "researcher-5b7c9d8f6-m3n8p", "researcher", "kind-worker3", 19, 1764)
_pod("coder", "coder-6f4d8b9c7-t5v7z", "coder", "kind-worker", 102, 2901)
_pod("worker", "worker-78c5d9f4b-h6j2k", "worker", "kind-worker2", 134, 455)
_pod("worker-w3", "worker-78c5d9f4b-r8s4w", "worker", "kind-worker3", 77, 3388)
_pod("llm", "llm-gateway-5d8f7c9b6-p4l9x", "llm-gateway", "kind-worker3", 12, 1022)
_pod("llm-w1", "llm-gateway-5d8f7c9b6-z7c3v", "llm-gateway", "kind-worker", 145, 2675)
_pod("vectordb", "vectordb-0", "vectordb", "kind-worker", 66, 940)
_pod("summarizer-1", "summarizer-x7k2p", "summarizer", "kind-worker3", 201, 3577, workload="summarizer-run-5f8d2c")
_pod("summarizer-2", "summarizer-m9q4t", "summarizer", "kind-worker", 188, 1499, workload="summarizer-run-9b1e47")
_pod("prometheus", "prometheus-0", "prometheus", "kind-worker3", 9, 3021, workload="prometheus")
_pod("coredns-w1", "coredns-7db6d8ff4d-8xk2m", "coredns", "kind-worker", 3, 1812)
_pod("coredns-w2", "coredns-7db6d8ff4d-vq5lb", "coredns", "kind-worker2", 4, 274)
_pod("coredns-w3", "coredns-7db6d8ff4d-lm7bd", "coredns", "kind-worker3", 5, 1156)

HOST = {"kind-worker": "10.244.1.214", "kind-worker2": "10.244.2.97", "kind-worker3": "10.244.3.158"}

PATHS = {
    "orchestrator": "/v1/agent/execute",
    "researcher": "/v1/task",
    "coder": "/v1/task",
    "worker": "/v1/task",
    "summarizer": "/v1/summarize",
    "llm-gateway": "/v1/chat/completions",
    "vectordb": "/query",
}

UA = {
    "gateway": "Go-http-client/1.1",
    "orchestrator": "python-httpx/0.28.1",
    "researcher": "python-httpx/0.28.1",
    "coder": "python-httpx/0.28.1",
    "worker": "python-httpx/0.28.1",
    "summarizer": "python-httpx/0.28.1",
    "prometheus": "Prometheus/2.54.1",
}


def url_for(client, server, path):
    ag = server.agent
    if ag.service is None or path == "/metrics":
        host = server.ip  # pods without a Service (Job pods, scrape targets) are called by IP
    elif ag.ns == client.agent.ns:
        host = ag.service
    else:
        host = "%s.%s" % (ag.service, ag.ns)
    return "http://%s:%d%s" % (host, ag.port, path)


# ---------------------------------------------------------------------------------------
# scenario model

class Group:
    """One end-to-end request (what the truth file calls a request)."""

    def __init__(self, scn, mode):
        self.scn = scn
        self.mode = mode  # "traced" | "propagate" | "fresh"
        self.trace_id = scn.hex(32) if mode == "traced" else None
        self.xrid = scn.uuid() if mode == "propagate" else None
        self.calls = []

    @property
    def correlation(self):
        return {"traced": "trace_context", "propagate": "request_id", "fresh": "inferred"}[self.mode]


class Conn:
    def __init__(self, client, sport):
        self.client = client
        self.sport = sport


class Call:
    pass


class Scenario:
    def __init__(self, name, seed, base_offset_s, skew=None):
        self.name = name
        self.rng = random.Random(seed)
        self.base = BASE_NS + base_offset_s * 1_000_000_000
        self.skew = dict(NODE_SKEW_NS)
        self.skew.update(skew or {})
        self.groups = []
        self.records = []      # filled by build()
        self.noise = []        # (true_ns, node, builder)
        self.next_port = {}

    # -- randomness helpers (all from the fixture's own seeded RNG)
    def hex(self, n):
        return "%0*x" % (n, self.rng.getrandbits(n * 4))

    def uuid(self):
        h = "%032x" % self.rng.getrandbits(128)
        return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], "89ab"[int(h[16], 16) & 3], h[17:20], h[20:32])

    def t(self, ms):
        """scenario-relative milliseconds -> absolute true ns, with sub-ms jitter."""
        return self.base + int(round(ms * 1_000_000)) + self.rng.randint(1_000, 899_999)

    def conn(self, client):
        p = self.next_port.get(client.name)
        if p is None:
            p = 33000 + self.rng.randint(0, 26000)
        else:
            p += self.rng.randint(3, 60)
        self.next_port[client.name] = p
        return Conn(client, p)

    def group(self, mode):
        g = Group(self, mode)
        self.groups.append(g)
        return g

    def call(self, group, client, server, start_ms, end_ms, status=200, req_bytes=None, resp_bytes=512,
             parent=None, method="POST", path=None, conn=None, copies=("EGRESS",), evict=False,
             hidden_request=False, ua=None, req_ctype="application/json", resp_ctype="application/json",
             extra_req_headers=None, xrid=None):
        c = Call()
        c.group = group
        c.client = client
        c.server = server
        c.method = method
        c.path = path or PATHS[server.agent.app]
        c.url = url_for(client, server, c.path)
        c.t_req = self.t(start_ms)
        c.t_resp = None if end_ms is None else self.t(end_ms)
        c.status = status if end_ms is not None else None
        c.req_bytes = req_bytes
        c.resp_bytes = resp_bytes
        c.parent = parent
        c.conn = conn or self.conn(client)
        c.copies = copies
        c.evict = evict
        c.hidden_request = hidden_request
        c.ua = ua or UA.get(client.agent.app, "python-httpx/0.28.1")
        c.req_ctype = req_ctype
        c.resp_ctype = resp_ctype
        c.extra_req_headers = extra_req_headers or []
        c.xrid = xrid or group.xrid or self.uuid()
        c.span_id = self.hex(16) if group.trace_id else None
        c.note = None
        # server-side (INGRESS) copy is stamped inside the client-side view
        c.d_in_req = self.rng.randint(300_000, 1_000_000)
        c.d_in_resp = self.rng.randint(300_000, 1_000_000)
        group.calls.append(c)
        return c

    def add_noise(self, ms, node, builder):
        self.noise.append((self.t(ms), node, builder))
        return self.noise[-1][0]

    def add_noise_ns(self, t_ns, node, builder):
        """exact true time (no jitter), for events that must keep their order relative to others"""
        self.noise.append((t_ns, node, builder))
        return t_ns

    # -- record construction
    def build(self):
        recs = []
        for g in self.groups:
            for c in g.calls:
                for direction in c.copies:
                    node = c.client.node if direction == "EGRESS" else c.server.node
                    sk = self.skew[node]
                    if direction == "EGRESS":
                        tq, tr = c.t_req, c.t_resp
                    else:
                        tq = c.t_req + c.d_in_req
                        tr = None if c.t_resp is None else c.t_resp - c.d_in_resp
                    recs.append(dict(kind="http", call=c, rtype="REQUEST", direction=direction, node=node,
                                     t=tq + sk, hidden=c.hidden_request))
                    if tr is not None:
                        recs.append(dict(kind="http", call=c, rtype="RESPONSE", direction=direction,
                                         node=node, t=tr + sk, hidden=False))
        for (t, node, builder) in self.noise:
            recs.append(dict(kind="noise", node=node, t=t + self.skew[node], builder=builder, hidden=False))
        recs.sort(key=lambda r: r["t"])
        assert len({r["t"] for r in recs}) == len(recs), "timestamp collision"
        # Per-node simulation of the Hubble L7 parser's two LRU caches keyed by X-Request-Id
        # (cilium pkg/hubble/parser/seven: timestampCache -> latency_ns,
        # traceContextCache -> trace_context on responses; Get + Remove on response).
        ts_cache, tc_cache = {}, {}
        for r in recs:
            if r["kind"] != "http":
                continue
            c = r["call"]
            key = (r["node"], c.xrid)
            r["latency"] = 0
            r["trace_id"] = None
            if r["rtype"] == "REQUEST":
                r["trace_id"] = c.group.trace_id  # from the Traceparent request header
                if not c.evict:
                    ts_cache[key] = r["t"]
                    if c.group.trace_id:
                        tc_cache[key] = c.group.trace_id
            else:
                if key in ts_cache:
                    lat = r["t"] - ts_cache.pop(key)
                    r["latency"] = lat if lat > 0 else 0
                r["trace_id"] = tc_cache.pop(key, None)
        self.records = [r for r in recs if not r["hidden"]]
        self.hidden = [r for r in recs if r["hidden"]]
        for r in self.records:
            r["uuid"] = self.uuid()
            if r["kind"] == "http":
                r["obj"] = self.http_obj(r)
            else:
                r["obj"] = r["builder"](self, r)
            r["line"] = dumps(r["obj"])
        return self

    def http_obj(self, r):
        c = r["call"]
        node = r["node"]
        resp = r["rtype"] == "RESPONSE"
        cl, sv = c.client, c.server
        if not resp:
            src, dst, sp, dp = cl, sv, c.conn.sport, sv.agent.port
        else:
            src, dst, sp, dp = sv, cl, sv.agent.port, c.conn.sport
        f = {}
        f["time"] = fmt_ts(r["t"])
        f["uuid"] = r["uuid"]
        f["emitter"] = dict(EMITTER)
        f["verdict"] = "FORWARDED"
        f["IP"] = {"source": src.ip, "destination": dst.ip, "ipVersion": "IPv4"}
        f["l4"] = {"TCP": {"source_port": sp, "destination_port": dp}}
        f["source"] = src.endpoint(node)
        f["destination"] = dst.endpoint(node)
        f["Type"] = "L7"
        f["node_name"] = node
        f["node_labels"] = node_labels(node)
        l7 = {"type": r["rtype"]}
        if resp and r["latency"]:
            l7["latency_ns"] = str(r["latency"])
        http = {}
        if resp:
            http["code"] = c.status
        http["method"] = c.method
        http["url"] = c.url
        http["protocol"] = "HTTP/1.1"
        if not resp:
            h = [(":scheme", "http"), ("Accept", "application/json" if c.method != "GET" or c.path != "/metrics"
                                       else "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")]
            if c.req_bytes is not None:
                h.append(("Content-Length", str(c.req_bytes)))
            if c.method in ("POST", "PUT", "PATCH") and c.req_ctype:
                h.append(("Content-Type", c.req_ctype))
            if c.group.trace_id:
                h.append(("Traceparent", "00-%s-%s-01" % (c.group.trace_id, c.span_id)))
            h.append(("User-Agent", c.ua))
            h.append(("X-Request-Id", c.xrid))
            h.extend(c.extra_req_headers)
        else:
            h = [("Content-Length", str(c.resp_bytes)), ("Content-Type", c.resp_ctype),
                 ("Date", http_date(c.t_resp)), ("X-Request-Id", c.xrid)]
        h.sort(key=lambda kv: kv[0])
        http["headers"] = [{"key": k, "value": v} for k, v in h]
        l7["http"] = http
        f["l7"] = l7
        if resp:
            f["reply"] = True
        f["event_type"] = {"type": 129}
        f["traffic_direction"] = r["direction"]
        f["is_reply"] = resp
        if r["trace_id"]:
            f["trace_context"] = {"parent": {"trace_id": r["trace_id"]}}
        if resp:
            f["Summary"] = "HTTP/1.1 %d %dms (%s %s)" % (c.status, r["latency"] // 1_000_000, c.method, c.url)
        else:
            f["Summary"] = "HTTP/1.1 %s %s" % (c.method, c.url)
        return {"flow": f, "node_name": node, "time": f["time"]}

    def lines(self, pred=None):
        return [r["line"] for r in self.records if pred is None or pred(r)]

    # -- ground truth
    def truth(self, pred=None):
        recs = [r for r in self.records if r["kind"] == "http" and (pred is None or pred(r))]
        seen = {}
        for r in recs:
            seen.setdefault(id(r["call"]), {})[(r["direction"], r["rtype"])] = r
        # hidden requests (before the file start) only reveal themselves through the response latency
        out = []
        for g in self.groups:
            vis = []
            for c in g.calls:
                roles = seen.get(id(c))
                if not roles:
                    continue
                copy = "EGRESS" if any(k[0] == "EGRESS" for k in roles) else "INGRESS"
                rq = roles.get((copy, "REQUEST"))
                rs = roles.get((copy, "RESPONSE"))
                if rq is not None:
                    start = rq["t"]
                    dur = (rs["t"] - rq["t"]) if rs is not None else None
                else:  # orphan response: the request lies before the file start
                    start = rs["t"] - rs["latency"] if rs["latency"] else None
                    dur = rs["latency"] or None
                any_resp = rs or roles.get(("INGRESS", "RESPONSE")) or roles.get(("EGRESS", "RESPONSE"))
                vis.append(dict(call=c, start=start, dur=dur, rq=rq, rs=any_resp,
                                copies=sorted({k[0] for k in roles})))
            if not vis:
                continue
            vis.sort(key=lambda v: v["start"])
            ids = {}
            for i, v in enumerate(vis):
                ids[id(v["call"])] = "c%d" % i
            calls = []
            for v in vis:
                c = v["call"]
                par = ids.get(id(c.parent)) if c.parent is not None else None
                e = {
                    "id": ids[id(c)],
                    "parent": par,
                    "client": c.client.agent_name,
                    "server": c.server.agent_name,
                    "method": c.method,
                    "path": c.path,
                    "status": c.status if v["rs"] is not None else None,
                    "start": fmt_ts9(v["start"]),
                    "duration_ms": None if v["dur"] is None else round(v["dur"] / 1e6, 6),
                    "request_bytes": c.req_bytes if v["rq"] is not None else None,
                    "response_bytes": c.resp_bytes if v["rs"] is not None else None,
                    "client_pod": c.client.name,
                    "server_pod": c.server.name,
                    "source_port": c.conn.sport,
                    "x_request_id": c.xrid,
                    "copies": v["copies"],
                }
                if c.note:
                    e["note"] = c.note
                e["_iv"] = (v["start"], None if v["dur"] is None else v["start"] + v["dur"])
                calls.append(e)
            roots = [e for e in calls if e["parent"] is None]
            root = roots[0]
            # several parent-less calls happen for a client retry (same request id) or when the
            # connecting calls are not visible (single-node view): the request spans all of them
            r_start = min(e["_iv"][0] for e in roots)
            r_ends = [e["_iv"][1] for e in roots]
            r_dur = None if any(x is None for x in r_ends) else round((max(r_ends) - r_start) / 1e6, 6)
            req = {
                "id": g.trace_id,
                "expected_correlation": g.correlation,
                "root": root["server"],
                "start": fmt_ts9(r_start),
                "duration_ms": r_dur,
                "stats": stats(calls),
                "calls": calls,
            }
            out.append(req)
        out.sort(key=lambda q: q["start"])
        for q in out:
            for e in q["calls"]:
                del e["_iv"]
        return {"fixture": self.name, "requests": out}


def stats(calls):
    by_id = {e["id"]: e for e in calls}
    kids = {}
    for e in calls:
        if e["parent"] is not None:
            kids.setdefault(e["parent"], []).append(e)

    def depth(e):
        return 1 + max((depth(k) for k in kids.get(e["id"], [])), default=0)

    agents = set()
    for e in calls:
        agents.add(e["client"])
        agents.add(e["server"])
    conc_max = 0
    for pid, ks in kids.items():
        pend = by_id[pid]["_iv"][1]
        ev = []
        for k in ks:
            s, t = k["_iv"]
            if t is None:
                t = pend if pend is not None else float("inf")
            ev.append((s, 1))
            ev.append((t, -1))
        ev.sort(key=lambda x: (x[0], x[1]))  # an end before a start at the same instant
        cur = 0
        for _, d in ev:
            cur += d
            conc_max = max(conc_max, cur)
    known = [e["request_bytes"] for e in calls if e["request_bytes"] is not None]
    return {
        "calls": len(calls),
        "depth": max(depth(e) for e in calls if e["parent"] is None),
        "agents": len(agents),
        "fan_out_max": max((len(v) for v in kids.values()), default=0),
        "fan_out_concurrent_max": conc_max,
        "context_bytes": sum(known),
    }


# ---------------------------------------------------------------------------------------
# non-HTTP noise builders

FLAG_ORDER_JSON = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"]
FLAG_ORDER_SUMMARY = ["SYN", "ACK", "RST", "FIN", "PSH", "URG", "ECE", "CWR", "NS"]
OBS = {"TO_PROXY": 1, "TO_STACK": 3, "TO_OVERLAY": 4, "TO_ENDPOINT": 0, "FROM_ENDPOINT": 5}


def host_ep():
    return {"identity": 1, "labels": ["reserved:host"]}


def tcp_trace(src, dst, sport, dport, flags, obs, direction, reason, is_reply, src_ip=None, dst_ip=None):
    """L3/L4 trace event (event_type 4). src/dst: Pod or a dict endpoint (reserved)."""

    def build(scn, r):
        node = r["node"]
        f = {"time": fmt_ts(r["t"]), "uuid": r["uuid"], "emitter": dict(EMITTER), "verdict": "FORWARDED"}
        smac = src.mac if isinstance(src, Pod) else "9e:3b:51:0c:7d:22"
        dmac = dst.mac if isinstance(dst, Pod) else "72:6a:e1:94:b8:05"
        f["ethernet"] = {"source": smac, "destination": dmac}
        f["IP"] = {"source": src_ip or src.ip, "destination": dst_ip or dst.ip, "ipVersion": "IPv4"}
        fl = {k: True for k in FLAG_ORDER_JSON if k in flags}
        f["l4"] = {"TCP": {"source_port": sport, "destination_port": dport, "flags": fl}}
        f["source"] = src.endpoint(node) if isinstance(src, Pod) else dict(src)
        f["destination"] = dst.endpoint(node) if isinstance(dst, Pod) else dict(dst)
        f["Type"] = "L3_L4"
        f["node_name"] = node
        f["node_labels"] = node_labels(node)
        if is_reply:
            f["reply"] = True
        et = {"type": 4}
        if OBS[obs]:
            et["sub_type"] = OBS[obs]
        f["event_type"] = et
        f["traffic_direction"] = direction
        f["trace_observation_point"] = "TO_ENDPOINT" if obs == "TO_ENDPOINT" else obs
        f["trace_reason"] = reason
        f["is_reply"] = is_reply
        if obs in ("TO_ENDPOINT", "FROM_ENDPOINT"):
            lp = dst if obs == "TO_ENDPOINT" else src
            f["interface"] = {"index": lp.iface_idx, "name": lp.iface}
        f["Summary"] = "TCP Flags: " + ", ".join(k for k in FLAG_ORDER_SUMMARY if k in flags)
        return {"flow": f, "node_name": node, "time": f["time"]}

    return build


def dns_pair(scn, ms, client, dnspod, query, ip, sport, rtt_ms=0.8):
    """DNS request + response seen by the client's DNS proxy (L7 dns, UDP)."""

    def mk(resp):
        def build(s, r):
            node = r["node"]
            src, dst = (dnspod, client) if resp else (client, dnspod)
            sp, dp = (53, sport) if resp else (sport, 53)
            f = {"time": fmt_ts(r["t"]), "uuid": r["uuid"], "emitter": dict(EMITTER), "verdict": "FORWARDED"}
            f["IP"] = {"source": src.ip, "destination": dst.ip, "ipVersion": "IPv4"}
            f["l4"] = {"UDP": {"source_port": sp, "destination_port": dp}}
            f["source"] = src.endpoint(node)
            f["destination"] = dst.endpoint(node)
            f["Type"] = "L7"
            f["node_name"] = node
            f["node_labels"] = node_labels(node)
            if resp:
                dns = {"query": query, "ips": [ip], "ttl": 30, "observation_source": "proxy",
                       "qtypes": ["A"], "rrtypes": ["A"]}
            else:
                dns = {"query": query, "observation_source": "proxy", "qtypes": ["A"]}
            f["l7"] = {"type": "RESPONSE" if resp else "REQUEST", "dns": dns}
            if resp:
                f["reply"] = True
            f["event_type"] = {"type": 129}
            f["traffic_direction"] = "EGRESS"
            f["is_reply"] = resp
            if resp:
                f["Summary"] = 'DNS Answer "%s" TTL: 30 (Proxy %s A)' % (ip, query)
            else:
                f["Summary"] = "DNS Query %s A" % query
            return {"flow": f, "node_name": node, "time": f["time"]}
        return build

    t = scn.add_noise(ms, client.node, mk(False))
    scn.add_noise_ns(t + int(rtt_ms * 1_000_000) + 3_917, client.node, mk(True))


def prometheus_scrape(scn, ms, target, dur_ms, size):
    g = scn.group("fresh")
    return scn.call(g, P["prometheus"], target, ms, ms + dur_ms, method="GET", path="/metrics",
                    req_bytes=None, resp_bytes=size, resp_ctype="text/plain; version=0.0.4; charset=utf-8",
                    extra_req_headers=[("Accept-Encoding", "gzip"), ("X-Prometheus-Scrape-Timeout-Seconds", "10")])


# ---------------------------------------------------------------------------------------
# fixtures

def fx_traced_fanout():
    s = Scenario("traced-fanout", seed=101, base_offset_s=0)
    gw, orch, res, cod, wrk, llm, vdb = (P[k] for k in ("gateway", "orchestrator", "researcher", "coder",
                                                          "worker", "llm", "vectordb"))
    # ---- request A
    A = s.group("traced")
    a0 = s.call(A, gw, orch, 100.0, 2694.0, req_bytes=1843, resp_bytes=6211)
    a1 = s.call(A, orch, res, 315.0, 2434.0, req_bytes=48213, resp_bytes=15877, parent=a0)
    a2 = s.call(A, orch, cod, 495.0, 2165.0, req_bytes=1248511, resp_bytes=30412, parent=a0)
    a3 = s.call(A, orch, wrk, 635.0, 945.0, req_bytes=2310, resp_bytes=734, parent=a0)
    a4 = s.call(A, res, llm, 327.0, 1507.0, req_bytes=61422, resp_bytes=4120, parent=a1,
                ua="OpenAI/Python 1.54.4")
    s.call(A, res, vdb, 1516.0, 1554.0, req_bytes=312, resp_bytes=18733, parent=a1)
    res_llm_conn = a4.conn  # keep-alive: the second LLM call reuses the connection
    s.call(A, res, llm, 1569.0, 2409.0, req_bytes=412390, resp_bytes=6651, parent=a1, conn=res_llm_conn,
           ua="OpenAI/Python 1.54.4")
    s.call(A, cod, llm, 515.0, 2135.0, req_bytes=4873102, resp_bytes=9034, parent=a2, ua="OpenAI/Python 1.54.4")
    # ---- request B (2 s later; overlaps A on the same orchestrator pod)
    B = s.group("traced")
    b0 = s.call(B, gw, orch, 2100.0, 5290.0, req_bytes=2207, resp_bytes=7480)
    b1 = s.call(B, orch, res, 2280.0, 4960.0, req_bytes=52977, resp_bytes=13342, parent=b0)
    b2 = s.call(B, orch, cod, 2590.0, 3140.0, req_bytes=873340, resp_bytes=12206, parent=b0)
    s.call(B, orch, wrk, 2710.0, 3165.0, req_bytes=1984, resp_bytes=655, parent=b0)
    s.call(B, res, llm, 2292.0, 2932.0, req_bytes=70215, resp_bytes=3391, parent=b1, ua="OpenAI/Python 1.54.4")
    s.call(B, res, vdb, 2941.0, 2993.0, req_bytes=298, resp_bytes=22150, parent=b1)
    # keep-alive reuse across requests: A's researcher->llm connection is idle again since 2409 ms
    s.call(B, res, llm, 3005.0, 4935.0, req_bytes=2204311, resp_bytes=7702, parent=b1, conn=res_llm_conn,
           ua="OpenAI/Python 1.54.4")
    s.call(B, cod, llm, 2604.0, 3114.0, req_bytes=391870, resp_bytes=2893, parent=b2, ua="OpenAI/Python 1.54.4")
    add_background_noise(s, a0, orch_ms=1210.0, dns_ms=290.0)
    return s


def add_background_noise(s, root_call, orch_ms, dns_ms, dns_name="researcher.agents.svc.cluster.local.",
                         dns_ip="10.96.143.21"):
    gw, orch, wrk, res, llm = P["gateway"], P["orchestrator"], P["worker"], P["researcher"], P["llm"]
    # TCP SYN of the gateway's connection, seen when redirected to the egress proxy
    s.add_noise_ns(root_call.t_req - 350_113, gw.node,
                   tcp_trace(gw, orch, root_call.conn.sport, 8080, {"SYN"}, "TO_PROXY", "EGRESS", "NEW", False))
    # kubelet readiness probe to the worker (L3/L4 only)
    t = s.add_noise(dns_ms + 431.0, wrk.node,
                    tcp_trace(host_ep(), wrk, 51722, 8080, {"SYN"}, "TO_ENDPOINT", "INGRESS", "NEW", False,
                              src_ip=HOST[wrk.node]))
    s.add_noise_ns(t + 41_207, wrk.node,
                tcp_trace(wrk, host_ep(), 8080, 51722, {"SYN", "ACK"}, "TO_STACK", "INGRESS", "REPLY", True,
                          dst_ip=HOST[wrk.node]))
    # an old idle connection researcher -> llm-gateway being closed
    s.add_noise(orch_ms + 650.0, res.node,
                tcp_trace(res, llm, 41877, 4000, {"ACK", "FIN"}, "FROM_ENDPOINT", "EGRESS", "ESTABLISHED", False))
    # DNS lookup by the orchestrator
    dns_pair(s, dns_ms, orch, P["coredns-w2"], dns_name, dns_ip, 38211)
    # Prometheus scrape of the orchestrator: its own tiny request
    prometheus_scrape(s, orch_ms, orch, 7.4, 48213)


def fx_egress_ingress_dup():
    s = Scenario("egress-ingress-dup", seed=202, base_offset_s=300, skew={"kind-worker2": 2_000_000})
    gw, orch, wrk, llm = P["gateway"], P["orchestrator"], P["worker-w3"], P["llm-w1"]
    both = ("EGRESS", "INGRESS")
    G = s.group("traced")
    c0 = s.call(G, gw, orch, 100.0, 1855.0, req_bytes=1650, resp_bytes=5120, copies=both)
    c1 = s.call(G, orch, wrk, 250.0, 1735.0, req_bytes=38211, resp_bytes=2201, parent=c0, copies=both)
    s.call(G, wrk, llm, 260.0, 1710.0, req_bytes=402118, resp_bytes=3977, parent=c1, copies=both,
           ua="OpenAI/Python 1.54.4")
    return s


def fx_missing_response():
    s = Scenario("missing-response", seed=303, base_offset_s=600)
    gw, orch, wrk, llm, cod = P["gateway"], P["orchestrator"], P["worker"], P["llm"], P["coder"]
    M = s.group("traced")
    c0 = s.call(M, gw, orch, 200.0, 10352.0, status=504, req_bytes=1922, resp_bytes=118)
    c1 = s.call(M, orch, wrk, 330.0, 10345.0, status=504, req_bytes=27340, resp_bytes=96, parent=c0)
    c2 = s.call(M, wrk, llm, 342.0, None, req_bytes=318004, parent=c1, ua="OpenAI/Python 1.54.4")
    c2.note = "no response record (the worker gave up after 10 s)"
    # orphan: response of a call whose request (and the rest of its request) lies before the file start
    O = s.group("traced")
    o = s.call(O, cod, llm, 3100.0 - 8412.6, 3100.0, req_bytes=1733250, resp_bytes=8840, hidden_request=True,
               ua="OpenAI/Python 1.54.4")
    o.note = "orphan response: request before the file start; start = response time - latency_ns"
    # a response without latency_ns (agent's request-id cache lost the entry) whose request is in the file
    S = s.group("traced")
    st = s.call(S, gw, orch, 12000.0, 12045.3, method="GET", path="/v1/agent/runs/run-7f3a9c",
                req_bytes=None, resp_bytes=377, evict=True)
    st.note = "response has no latency_ns and no trace_context; pair by 5-tuple"
    return s


def fx_request_id():
    s = Scenario("request-id", seed=404, base_offset_s=900)
    gw, orch, wrk, llm = P["gateway"], P["orchestrator"], P["worker"], P["llm"]
    R1 = s.group("propagate")
    r0 = s.call(R1, gw, orch, 100.0, 2820.0, req_bytes=1577, resp_bytes=5390)
    s.call(R1, orch, llm, 130.0, 1030.0, req_bytes=22870, resp_bytes=2311, parent=r0, ua="OpenAI/Python 1.54.4")
    r2 = s.call(R1, orch, wrk, 1180.0, 2620.0, req_bytes=40112, resp_bytes=3020, parent=r0)
    s.call(R1, wrk, llm, 1195.0, 2595.0, req_bytes=96522, resp_bytes=4408, parent=r2, ua="OpenAI/Python 1.54.4")
    R2 = s.group("propagate")
    q0 = s.call(R2, gw, orch, 400.0, 403.8, status=503, req_bytes=1802, resp_bytes=57)
    q0.note = "first attempt, rejected (503); retried with the same X-Request-Id on the same connection"
    q1 = s.call(R2, gw, orch, 655.0, 2900.0, req_bytes=1802, resp_bytes=4977, conn=q0.conn)
    q1.note = "retry of the 503 attempt"
    s.call(R2, orch, llm, 690.0, 1790.0, req_bytes=25008, resp_bytes=2530, parent=q1, ua="OpenAI/Python 1.54.4")
    q3 = s.call(R2, orch, wrk, 1950.0, 2680.0, req_bytes=51876, resp_bytes=2760, parent=q1)
    s.call(R2, wrk, llm, 1962.0, 2662.0, req_bytes=118064, resp_bytes=3815, parent=q3, ua="OpenAI/Python 1.54.4")
    add_background_noise(s, r0, orch_ms=1420.0, dns_ms=1120.0, dns_name="worker.agents.svc.cluster.local.",
                         dns_ip="10.96.201.7")
    return s


def fx_untraced_nested():
    s = Scenario("untraced-nested", seed=505, base_offset_s=1200)
    gw, orch, res, llm, vdb = P["gateway"], P["orchestrator"], P["researcher"], P["llm"], P["vectordb"]
    plans = [  # (t0, vdb_start, vdb_dur, res_start, llm_dur, res_tail, orch_tail, bytes)
        (100.0, 240.0, 35.0, 435.0, 1300.0, 20.0, 180.0, (1710, 322, 30211, 58870)),
        (4100.0, 4310.0, 41.0, 4520.0, 880.0, 31.0, 240.0, (2044, 305, 41906, 77120)),
        (8100.0, 8235.0, 29.0, 8401.0, 1725.0, 17.0, 133.0, (1388, 341, 25577, 49733)),
    ]
    for (t0, vs, vd, rs, ld, rt, ot, (b0, bv, br, bl)) in plans:
        G = s.group("fresh")
        ls = rs + 15.0
        le = ls + ld
        re_ = le + rt
        oe = re_ + ot
        c0 = s.call(G, gw, orch, t0, oe, req_bytes=b0, resp_bytes=4090)
        s.call(G, orch, vdb, vs, vs + vd, req_bytes=bv, resp_bytes=14220, parent=c0)
        c2 = s.call(G, orch, res, rs, re_, req_bytes=br, resp_bytes=3305, parent=c0)
        s.call(G, res, llm, ls, le, req_bytes=bl, resp_bytes=2874, parent=c2, ua="OpenAI/Python 1.54.4")
    return s


def fx_concurrent_pods():
    s = Scenario("concurrent-pods", seed=606, base_offset_s=1500)
    gw, wrk, llm = P["gateway"], P["worker"], P["llm"]
    for (opod, spod, d, bb) in ((P["orchestrator-a"], P["summarizer-1"], 0.0, (1904, 20551, 33018, 88410, 70233)),
                                (P["orchestrator-b"], P["summarizer-2"], 0.4, (1877, 21960, 29440, 91025, 66109))):
        G = s.group("fresh")
        k = 1.0 if d == 0.0 else 1.013  # nearly identical timing: only pod identity tells them apart
        c0 = s.call(G, gw, opod, 100.0 + d, 2200.0 + 6 * d, req_bytes=bb[0], resp_bytes=5002)
        s.call(G, opod, llm, 220.0 + 5 * d, 220.0 + 5 * d + 800.0 * k, req_bytes=bb[1], resp_bytes=2219,
               parent=c0, ua="OpenAI/Python 1.54.4")
        s.call(G, opod, wrk, 1150.0 + 9 * d, 1750.0 + 11 * d, req_bytes=bb[2], resp_bytes=2980, parent=c0)
        c3 = s.call(G, opod, spod, 1160.0 + 8 * d, 2060.0 + 7 * d, req_bytes=bb[3], resp_bytes=3604, parent=c0)
        s.call(G, spod, llm, 1175.0 + 8 * d, 1995.0 + 12 * d, req_bytes=bb[4], resp_bytes=1736, parent=c3,
               ua="OpenAI/Python 1.54.4")
    return s


# ---------------------------------------------------------------------------------------
# derived fixtures

def out_of_order(lines_with_t, seed, bound_ns):
    rng = random.Random(seed)
    keyed = [(t + rng.uniform(0, bound_ns), i, line) for i, (t, line) in enumerate(lines_with_t)]
    keyed.sort()
    return [(lines_with_t[i][0], line) for (_, i, line) in keyed]


def camel(o):
    if isinstance(o, dict):
        out = {}
        for k, v in o.items():
            if "_" in k:
                parts = k.split("_")
                k = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
            out[k] = camel(v)
        return out
    if isinstance(o, list):
        return [camel(x) for x in o]
    return o


def build_malformed(scn):
    """Request A of traced-fanout with bad and unusual-but-valid lines inserted."""
    A = scn.groups[0]
    recs = [r for r in scn.records if r["kind"] == "http" and r["call"].group is A]
    rng = random.Random(808)

    def new_uuid():
        h = "%032x" % rng.getrandbits(128)
        return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], "89ab"[int(h[16], 16) & 3], h[17:20], h[20:32])

    gw, orch, wrk, res, llm = P["gateway"], P["orchestrator"], P["worker"], P["researcher"], P["llm"]

    def l34(t, node, src, dst, sport, dport, flags, obs, direction, reason, is_reply, src_ip=None):
        r = {"t": t, "node": node, "uuid": new_uuid()}
        return tcp_trace(src, dst, sport, dport, flags, obs, direction, reason, is_reply, src_ip=src_ip)(None, r)

    # pick the camelCase record (llm -> researcher response of the first LLM call) and the bare one
    def is_(r, client, server, rtype, nth=0):
        c = r["call"]
        return c.client is client and c.server is server and r["rtype"] == rtype

    camel_rec = [r for r in recs if is_(r, res, llm, "RESPONSE")][0]
    bare_rec = [r for r in recs if is_(r, orch, P["coder"], "REQUEST")][0]

    out = []  # list of (bytes, kind_or_None); kind set only for lines that must be skipped
    t_of = lambda i: recs[i]["t"]
    bad_inserts = {}
    good_inserts = {}

    def between(i):
        if i >= len(recs):
            return t_of(len(recs) - 1) + 1_000_000 + i * 1_013
        return (t_of(i - 1) + t_of(i)) // 2 if i > 0 else t_of(0) - 1_000_000

    # L3/L4 templates for bad lines (copies of a TCP trace flow, broken in one way each)
    tmpl = l34(between(3), wrk.node, host_ep(), wrk, 51744, 8080, {"SYN"}, "TO_ENDPOINT", "INGRESS", "NEW", False,
               src_ip=HOST[wrk.node])
    good_l34 = dumps(tmpl)
    trunc = dumps(l34(between(5), orch.node, orch, res, 45122, 8080, {"ACK", "PSH"}, "TO_PROXY", "EGRESS",
                      "ESTABLISHED", False))
    trunc = trunc[: len(trunc) // 2]
    tnum = l34(between(7), orch.node, orch, wrk, 45190, 8080, {"ACK"}, "TO_PROXY", "EGRESS", "ESTABLISHED", False)
    tnum["flow"]["time"] = (between(7)) // 1_000_000_000
    tnum["time"] = tnum["flow"]["time"]
    tstr = l34(between(9), res.node, res, llm, 40211, 4000, {"ACK"}, "FROM_ENDPOINT", "EGRESS", "ESTABLISHED", False)
    tstr["flow"]["time"] = "yesterday"
    tstr["time"] = "yesterday"
    notime = l34(between(12), gw.node, gw, orch, 39114, 8080, {"ACK"}, "TO_PROXY", "EGRESS", "ESTABLISHED", False)
    del notime["flow"]["time"]
    del notime["time"]
    unk = l34(between(14), wrk.node, orch, wrk, 45190, 8080, {"ACK"}, "TO_STACK", "EGRESS", "ESTABLISHED", False)
    unk["flow"]["verdict"] = "TELEPORTED"
    unk["flow"]["traffic_direction"] = "SIDEWAYS"
    unk["flow"]["future_field"] = {"x": 1}
    unk["future_wrapper_field"] = "ok"
    lost_t = between(10)
    lost = {"lost_events": {"source": "HUBBLE_RING_BUFFER", "num_events_lost": "12",
                            "first": fmt_ts(lost_t - 41_337_912), "last": fmt_ts(lost_t - 2_004_117)},
            "node_name": "kind-worker3", "time": fmt_ts(lost_t)}
    nst = {"node_status": {"state_change": "NODE_UNAVAILABLE", "node_names": ["kind-worker3"],
                           "message": "connection to kind-worker3 lost: rpc error: code = Unavailable"},
           "time": fmt_ts(between(len(recs)))}

    bad_inserts[1] = [(trunc.encode(), "truncated_json")]
    bad_inserts[2] = [(b"not json at all", "not_json")]
    bad_inserts[4] = [(b"[1,2,3]", "json_array")]
    bad_inserts[7] = [(dumps(tnum).encode(), "time_not_string")]
    bad_inserts[9] = [(dumps(tstr).encode(), "time_unparseable")]
    bad_inserts[11] = [(b"\xff\xfe{\"flow\":\xc3\x28 \xa0\xa1 invalid utf-8 \xed\xa0\x80", "invalid_utf8")]
    bad_inserts[12] = [(dumps(notime).encode(), "no_time")]
    bad_inserts[15] = [(b"{}", "empty_object")]
    good_inserts[3] = [good_l34.encode()]
    good_inserts[6] = [b""]
    good_inserts[10] = [dumps(lost).encode()]
    good_inserts[14] = [dumps(unk).encode()]
    good_inserts[len(recs)] = [dumps(nst).encode()]

    for i, r in enumerate(recs):
        for b in good_inserts.get(i, []):
            out.append((b, None))
        for b, kind in bad_inserts.get(i, []):
            out.append((b, kind))
        if r is camel_rec:
            out.append((dumps(camel(r["obj"])).encode(), None))
        elif r is bare_rec:
            out.append((dumps(r["obj"]["flow"]).encode(), None))
        else:
            out.append((r["line"].encode(), None))
    for b in good_inserts.get(len(recs), []):
        out.append((b, None))
    return out, recs


# ---------------------------------------------------------------------------------------
# writing and self-checks

def write_lines(path, lines):
    with open(path, "wb") as f:
        for l in lines:
            f.write((l.encode() if isinstance(l, str) else l) + b"\n")


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def event_time(line):
    o = json.loads(line)
    if "flow" in o:
        return o["flow"]["time"]
    return o.get("time")


def ts_to_ns(s):
    head, frac = s[:-1].split(".") if "." in s else (s[:-1], "0")
    sec = calendar.timegm(__import__("time").strptime(head, "%Y-%m-%dT%H:%M:%S"))
    return sec * 1_000_000_000 + int(frac.ljust(9, "0"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "minimal"))
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    written = []

    def emit(name, lines, truth):
        write_lines(os.path.join(out, name + ".jsonl"), lines)
        if truth is not None:
            truth = dict(truth)
            truth["fixture"] = name
            write_json(os.path.join(out, name + ".truth.json"), truth)
        written.append((name, len(lines)))

    scenarios = {}
    for fn in (fx_traced_fanout, fx_egress_ingress_dup, fx_missing_response, fx_request_id,
               fx_untraced_nested, fx_concurrent_pods):
        s = fn().build()
        scenarios[s.name] = s
        emit(s.name, s.lines(), s.truth())

    # per-node split of the egress/ingress scenario (multi-file merge case)
    eid = scenarios["egress-ingress-dup"]
    for node in NODE_SUBNET:
        emit("node-" + node, eid.lines(lambda r, n=node: r["node"] == n),
             eid.truth(lambda r, n=node: r["node"] == n))

    # out-of-order
    tf = scenarios["traced-fanout"]
    shuffled = out_of_order([(r["t"], r["line"]) for r in tf.records], seed=707, bound_ns=1_400_000_000)
    emit("out-of-order", [l for _, l in shuffled], tf.truth())

    # malformed
    mal, recsA = build_malformed(tf)
    ids_a = {id(r["call"]) for r in recsA}
    truth_mal = tf.truth(lambda r: id(r["call"]) in ids_a)
    emit("malformed", [b for b, _ in mal], truth_mal)
    with open(os.path.join(out, "malformed.expected-skips.txt"), "w") as f:
        for i, (b, kind) in enumerate(mal, 1):
            if kind:
                f.write("%d\t%s\n" % (i, kind))

    for name, n in written:
        print("%-28s %4d lines" % (name + ".jsonl", n))
    self_check(out)
    print("self-checks passed")


def _read(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")[:-1]


def _time_of(o):
    f = o.get("flow", o) if isinstance(o, dict) else {}
    t = f.get("time", o.get("time"))
    return ts_to_ns(t)


def self_check(out):
    """Re-read what was written and verify the properties the fixtures promise."""
    skips = {}
    with open(os.path.join(out, "malformed.expected-skips.txt")) as f:
        for line in f:
            n, kind = line.rstrip("\n").split("\t")
            skips[int(n)] = kind
    names = sorted(fn[:-6] for fn in os.listdir(out) if fn.endswith(".jsonl"))
    for name in names:
        raw = _read(os.path.join(out, name + ".jsonl"))
        times = []
        for i, b in enumerate(raw, 1):
            if name == "malformed" and i in skips:
                kind = skips[i]
                try:
                    o = json.loads(b.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    assert kind in ("truncated_json", "not_json", "invalid_utf8"), (i, kind)
                    continue
                if kind == "json_array":
                    assert isinstance(o, list)
                elif kind == "empty_object":
                    assert o == {}
                elif kind == "no_time":
                    assert "time" not in o and "time" not in o["flow"]
                elif kind == "time_not_string":
                    assert isinstance(o["flow"]["time"], int)
                elif kind == "time_unparseable":
                    assert o["flow"]["time"] == "yesterday"
                else:
                    raise AssertionError((i, kind))
                continue
            if b == b"":
                assert name == "malformed", (name, i)
                continue
            o = json.loads(b.decode("utf-8"))  # every other line must be valid JSON
            assert isinstance(o, dict) and o, (name, i)
            if "node_status" in o or "lost_events" in o:
                ts_to_ns(o["time"])
                continue
            if "flow" in o or "nodeName" in o or "node_name" in o:
                f = o.get("flow", o)
                assert o.get("time", f["time"]) == f["time"]
            times.append(_time_of(o))
        if name not in ("out-of-order", "malformed"):
            assert times == sorted(times), name + " is not time-ordered"
        truth = json.load(open(os.path.join(out, name + ".truth.json")))
        assert truth["requests"], name

    # out-of-order: same lines as traced-fanout, each within 1.5 s of its sorted position
    base = _read(os.path.join(out, "traced-fanout.jsonl"))
    shuf = _read(os.path.join(out, "out-of-order.jsonl"))
    assert sorted(base) == sorted(shuf) and base != shuf
    ts = [_time_of(json.loads(b)) for b in shuf]
    srt = sorted(ts)
    bound = 1_500_000_000
    moved = 0
    for j, t in enumerate(ts):
        assert abs(t - srt[j]) <= bound, ("displacement", j)
        assert max(ts[: j + 1]) - t <= bound, ("lateness", j)
        moved += t != srt[j]
    assert moved > len(ts) // 2
    # per-node files: their union is the combined file, and a time-merge reproduces its order
    comb = _read(os.path.join(out, "egress-ingress-dup.jsonl"))
    parts = []
    for node in NODE_SUBNET:
        p = _read(os.path.join(out, "node-%s.jsonl" % node))
        assert p and all(json.loads(b)["node_name"] == node for b in p)
        parts += p
    assert sorted(parts) == sorted(comb)
    assert sorted(parts, key=lambda b: _time_of(json.loads(b))) == comb


if __name__ == "__main__":
    main()
