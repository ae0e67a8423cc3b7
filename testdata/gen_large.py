#!/usr/bin/env python3
"""Stream a LARGE synthetic Hubble dump for throughput tests.

    python3 testdata/gen_large.py --flows 500000 --out /tmp/large.jsonl [--gzip] [--seed 1]

Writes `hubble observe -o json` style lines (GetFlowsResponse wrapper, proto field names,
Hubble 1.19-style flows with uuid, emitter, cluster_name, workloads, long label lists and
~16 node_labels), about 2.5 KB per line on average, in event-time order:

* ~70 % L7 HTTP request/response records (EGRESS copies) forming agent requests:
  gateway -> orchestrator -> planning call to llm-gateway, concurrent fan-out to 2..8
  workers (some also query vectordb) which call llm-gateway 1..3 times sequentially,
  a final llm-gateway call, then the response.  Many requests overlap (Poisson arrivals).
  50 % of the requests are traced (W3C Traceparent on every hop, trace_context on the
  records); the others propagate one X-Request-Id across all hops (no traceparent).
* ~30 % noise: L3/L4 TCP trace events (SYN to the proxy, ACK+FIN from the endpoint) and
  L7 DNS request/response pairs.

Deterministic for a given --seed (and --flows, --rate, --start).  The capture simply stops
after --flows lines, so the requests still in flight at the end are incomplete, like a
real capture window.  latency_ns is always the exact response-request difference (the
Cilium per-node request-id cache quirk that the minimal fixtures model is not simulated).

Python 3 stdlib only; string templates (no json.dumps per line) for speed.
"""

import argparse
import calendar
import gzip
import heapq
import json
import random
import queue
import sys
import threading
import time

EMITTER = '{"name":"Hubble","version":"1.19.1+gd0d0c879"}'
NS = 1_000_000_000
MS = 1_000_000


def parse_start(s):
    head = s.rstrip("Z")
    frac = 0
    if "." in head:
        head, f = head.split(".")
        frac = int(f.ljust(9, "0")[:9])
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) * NS + frac


class Clock:
    """Fast RFC 3339 formatting with a per-second prefix cache (always 9 digits here)."""

    def __init__(self):
        self.sec = -1
        self.prefix = ""

    def fmt(self, ns):
        sec = ns // NS
        if sec != self.sec:
            self.sec = sec
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
            self.date_hdr = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(sec))
        return "%s%09dZ" % (self.prefix, ns - sec * NS)


# ---------------------------------------------------------------------------------------
# topology

ZONES = ["europe-west1-b", "europe-west1-c", "europe-west1-d"]


def make_nodes(rng, n):
    nodes = []
    for i in range(n):
        name = "gke-prod-pool-1-%08x-%s" % (rng.getrandbits(32),
                                            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                                    for _ in range(4)))
        zone = ZONES[i % len(ZONES)]
        labels = sorted([  # 15 entries
            "beta.kubernetes.io/arch=amd64",
            "beta.kubernetes.io/instance-type=n2-standard-8",
            "beta.kubernetes.io/os=linux",
            "cloud.google.com/gke-nodepool=pool-1",
            "cloud.google.com/gke-os-distribution=cos",
            "cloud.google.com/machine-family=n2",
            "kubernetes.io/arch=amd64",
            "kubernetes.io/hostname=" + name,
            "kubernetes.io/os=linux",
            "node.kubernetes.io/instance-type=n2-standard-8",
            "pool=agents",
            "topology.gke.io/zone=" + zone,
            "topology.kubernetes.io/region=europe-west1",
            "topology.kubernetes.io/zone=" + zone,
            "workload-class=agents",
        ])
        nodes.append({"name": name, "labels_json": json.dumps(labels, separators=(",", ":")),
                      "subnet": "10.244.%d." % (i + 1), "next_ip": 10})
    return nodes


AGENT_SPECS = [
    # app, namespace, kind, replicas, port, identity, service account, component
    ("gateway", "ingress", "Deployment", 3, 8080, 24117, "gateway", "edge"),
    ("orchestrator", "agents", "Deployment", 8, 8080, 31809, "orchestrator", "agent"),
    ("worker", "agents", "Deployment", 24, 8080, 57231, "worker", "agent"),
    ("llm-gateway", "llm", "Deployment", 4, 4000, 18886, "llm-gateway", "model-proxy"),
    ("vectordb", "data", "StatefulSet", 3, 6333, 45117, "vectordb", "database"),
    ("coredns", "kube-system", "Deployment", 2, 53, 9843, "coredns", "dns"),
]

NS_LABELS = {
    "ingress": ["kubernetes.io/metadata.name=ingress", "team=platform"],
    "agents": ["kubernetes.io/metadata.name=agents", "team=ml-platform"],
    "llm": ["kubernetes.io/metadata.name=llm", "team=ml-platform"],
    "data": ["kubernetes.io/metadata.name=data", "team=data"],
    "kube-system": ["kubernetes.io/metadata.name=kube-system"],
}


def make_pods(rng, nodes):
    pods = {}
    ep_ids = set()
    for app, ns, kind, n, port, ident, sa, comp in AGENT_SPECS:
        if app == "coredns":
            labels = ["k8s:k8s-app=kube-dns"]
        else:
            labels = ["k8s:app=" + app,
                      "k8s:app.kubernetes.io/name=" + app,
                      "k8s:app.kubernetes.io/part-of=agent-platform"]
        labels += ["k8s:io.cilium.k8s.namespace.labels." + l for l in NS_LABELS[ns]]
        labels += ["k8s:io.cilium.k8s.policy.cluster=default",
                   "k8s:io.cilium.k8s.policy.serviceaccount=" + sa,
                   "k8s:io.kubernetes.pod.namespace=" + ns]
        labels_json = json.dumps(sorted(labels), separators=(",", ":"))
        rs_hash = "%x" % rng.getrandbits(36)
        lst = []
        for i in range(n):
            if kind == "StatefulSet":
                name = "%s-%d" % (app, i)
            else:
                name = "%s-%s-%s" % (app, rs_hash[:9], "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789")
                                                                for _ in range(5)))
            node = rng.choice(nodes)
            ip = node["subnet"] + str(node["next_ip"])
            node["next_ip"] += 1
            while True:
                eid = rng.randint(100, 4000)
                if eid not in ep_ids:
                    ep_ids.add(eid)
                    break
            body = ('"identity":%d,"cluster_name":"default","namespace":"%s","labels":%s,"pod_name":"%s",'
                    '"workloads":[{"name":"%s","kind":"%s"}]}') % (ident, ns, labels_json, name, app, kind)
            pod = {
                "app": app, "ns": ns, "name": name, "node": node["name"], "ip": ip, "port": port,
                "ep_local": '{"ID":%d,%s' % (eid, body),
                "ep_remote": "{" + body,
                "mac": "%02x:%02x:%02x:%02x:%02x:%02x" % tuple([0x0a] + [rng.getrandbits(8) for _ in range(5)]),
                "iface": "lxc%012x" % rng.getrandbits(48),
                "iface_idx": rng.randint(10, 200),
                "next_port": rng.randint(32768, 50000),
                "svc": app if app != "coredns" else "kube-dns",
            }
            if app in PATH:  # URL host = Service name (namespace-qualified from other namespaces)
                pod["url_in"] = "http://%s:%d%s" % (app, port, PATH[app])
                pod["url_out"] = "http://%s.%s:%d%s" % (app, ns, port, PATH[app])
            lst.append(pod)
        pods[app] = lst
    return pods


# ---------------------------------------------------------------------------------------
# line templates

HTTP_REQ = ('{"flow":{"time":"%s","uuid":"%s","emitter":' + EMITTER + ',"verdict":"FORWARDED",'
            '"IP":{"source":"%s","destination":"%s","ipVersion":"IPv4"},'
            '"l4":{"TCP":{"source_port":%d,"destination_port":%d}},"source":%s,"destination":%s,'
            '"Type":"L7","node_name":"%s","node_labels":%s,'
            '"l7":{"type":"REQUEST","http":{"method":"POST","url":"%s","protocol":"HTTP/1.1","headers":[%s]}},'
            '"event_type":{"type":129},"traffic_direction":"EGRESS","is_reply":false%s,'
            '"Summary":"HTTP/1.1 POST %s"},"node_name":"%s","time":"%s"}\n')

HTTP_RESP = ('{"flow":{"time":"%s","uuid":"%s","emitter":' + EMITTER + ',"verdict":"FORWARDED",'
             '"IP":{"source":"%s","destination":"%s","ipVersion":"IPv4"},'
             '"l4":{"TCP":{"source_port":%d,"destination_port":%d}},"source":%s,"destination":%s,'
             '"Type":"L7","node_name":"%s","node_labels":%s,'
             '"l7":{"type":"RESPONSE","latency_ns":"%d","http":{"code":%d,"method":"POST","url":"%s",'
             '"protocol":"HTTP/1.1","headers":[%s]}},"reply":true,'
             '"event_type":{"type":129},"traffic_direction":"EGRESS","is_reply":true%s,'
             '"Summary":"HTTP/1.1 %d %dms (POST %s)"},"node_name":"%s","time":"%s"}\n')

REQ_HDRS = ('{"key":":scheme","value":"http"},{"key":"Accept","value":"application/json"},'
            '{"key":"Accept-Encoding","value":"gzip, deflate"},{"key":"Content-Length","value":"%d"},'
            '{"key":"Content-Type","value":"application/json"},%s{"key":"User-Agent","value":"%s"},'
            '{"key":"X-Envoy-Expected-Rq-Timeout-Ms","value":"120000"},{"key":"X-Forwarded-Proto","value":"http"},'
            '{"key":"X-Request-Id","value":"%s"}')

RESP_HDRS = ('{"key":"Content-Length","value":"%d"},{"key":"Content-Type","value":"application/json"},'
             '{"key":"Date","value":"%s"},{"key":"Server","value":"uvicorn"},'
             '{"key":"X-Envoy-Upstream-Service-Time","value":"%d"},{"key":"X-Request-Id","value":"%s"}')

TCP_SYN = ('{"flow":{"time":"%s","uuid":"%s","emitter":' + EMITTER + ',"verdict":"FORWARDED",'
           '"ethernet":{"source":"%s","destination":"%s"},'
           '"IP":{"source":"%s","destination":"%s","ipVersion":"IPv4"},'
           '"l4":{"TCP":{"source_port":%d,"destination_port":%d,"flags":{"SYN":true}}},"source":%s,"destination":%s,'
           '"Type":"L3_L4","node_name":"%s","node_labels":%s,"event_type":{"type":4,"sub_type":1},'
           '"traffic_direction":"EGRESS","trace_observation_point":"TO_PROXY","trace_reason":"NEW","is_reply":false,'
           '"Summary":"TCP Flags: SYN"},"node_name":"%s","time":"%s"}\n')

TCP_FIN = ('{"flow":{"time":"%s","uuid":"%s","emitter":' + EMITTER + ',"verdict":"FORWARDED",'
           '"ethernet":{"source":"%s","destination":"%s"},'
           '"IP":{"source":"%s","destination":"%s","ipVersion":"IPv4"},'
           '"l4":{"TCP":{"source_port":%d,"destination_port":%d,"flags":{"FIN":true,"ACK":true}}},'
           '"source":%s,"destination":%s,'
           '"Type":"L3_L4","node_name":"%s","node_labels":%s,"event_type":{"type":4,"sub_type":5},'
           '"traffic_direction":"EGRESS","trace_observation_point":"FROM_ENDPOINT","trace_reason":"ESTABLISHED",'
           '"is_reply":false,"interface":{"index":%d,"name":"%s"},'
           '"Summary":"TCP Flags: ACK, FIN"},"node_name":"%s","time":"%s"}\n')

DNS_Q = ('{"flow":{"time":"%s","uuid":"%s","emitter":' + EMITTER + ',"verdict":"FORWARDED",'
         '"IP":{"source":"%s","destination":"%s","ipVersion":"IPv4"},'
         '"l4":{"UDP":{"source_port":%d,"destination_port":53}},"source":%s,"destination":%s,'
         '"Type":"L7","node_name":"%s","node_labels":%s,'
         '"l7":{"type":"REQUEST","dns":{"query":"%s","observation_source":"proxy","qtypes":["A"]}},'
         '"event_type":{"type":129},"traffic_direction":"EGRESS","is_reply":false,'
         '"Summary":"DNS Query %s A"},"node_name":"%s","time":"%s"}\n')

DNS_A = ('{"flow":{"time":"%s","uuid":"%s","emitter":' + EMITTER + ',"verdict":"FORWARDED",'
         '"IP":{"source":"%s","destination":"%s","ipVersion":"IPv4"},'
         '"l4":{"UDP":{"source_port":53,"destination_port":%d}},"source":%s,"destination":%s,'
         '"Type":"L7","node_name":"%s","node_labels":%s,'
         '"l7":{"type":"RESPONSE","dns":{"query":"%s","ips":["%s"],"ttl":30,"observation_source":"proxy",'
         '"qtypes":["A"],"rrtypes":["A"]}},"reply":true,'
         '"event_type":{"type":129},"traffic_direction":"EGRESS","is_reply":true,'
         '"Summary":"DNS Answer \\"%s\\" TTL: 30 (Proxy %s A)"},"node_name":"%s","time":"%s"}\n')

def compile_template(tmpl):
    """Turn a printf-style template into a function built on an f-string.

    f-strings concatenate pre-split constant pieces (BUILD_STRING) and are several times
    faster than %-formatting a 2-3 KB template.  Supports %s, %d and %0Nd."""
    import re
    parts = re.split(r"(%0?\d*[sd])", tmpl)
    src, n = [], 0
    for i, piece in enumerate(parts):
        if i % 2 == 0:
            src.append(piece.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}")
                       .replace("'", "\\'").replace("\n", "\\n"))
        else:
            spec = piece[1:-1]
            src.append("{a%d%s}" % (n, (":" + spec + "d") if spec else ""))
            n += 1
    code = "def _f(%s):\n    return f'%s'\n" % (", ".join("a%d" % i for i in range(n)), "".join(src))
    env = {}
    exec(code, env)
    return env["_f"]


HTTP_REQ = compile_template(HTTP_REQ)
HTTP_RESP = compile_template(HTTP_RESP)
REQ_HDRS = compile_template(REQ_HDRS)
RESP_HDRS = compile_template(RESP_HDRS)
TCP_SYN = compile_template(TCP_SYN)
TCP_FIN = compile_template(TCP_FIN)
DNS_Q = compile_template(DNS_Q)
DNS_A = compile_template(DNS_A)

PATH = {"orchestrator": "/v1/agent/execute", "worker": "/v1/task", "llm-gateway": "/v1/chat/completions",
        "vectordb": "/query"}
UA = {"gateway": "Go-http-client/1.1", "orchestrator": "python-httpx/0.28.1", "worker": "python-httpx/0.28.1"}
SVC_IP = {"orchestrator": "10.96.12.40", "worker": "10.96.87.3", "llm-gateway": "10.96.143.21",
          "vectordb": "10.96.201.7"}


# ---------------------------------------------------------------------------------------

class Gen:
    def __init__(self, args):
        self.rng = random.Random(args.seed)
        rng = self.rng
        self.nodes = make_nodes(rng, args.nodes)
        self.node_labels = {n["name"]: n["labels_json"] for n in self.nodes}
        self.pods = make_pods(rng, self.nodes)
        self.heap = []
        self.seq = 0
        self.clock = Clock()
        self.rate = args.rate
        self.now = parse_start(args.start)

    # -- helpers
    def ri(self, a, b):
        """uniform integer in [a, b] (much cheaper than random.randint)"""
        return a + int(self.rng.random() * (b - a + 1))

    def uuid(self):
        h = "%032x" % self.rng.getrandbits(128)
        return "%s-%s-4%s-a%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:])

    def xrid(self):
        return self.uuid()

    def push(self, t, kind, payload):
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, payload))

    def url(self, client, server):
        if client["ns"] == server["ns"]:
            return server["url_in"]
        return server["url_out"]

    def call(self, client, server, t0, t1, req_bytes, resp_bytes, trace, xrid, status=200):
        """Queue one exchange: request at t0, response at t1 (EGRESS copies on the client's node)."""
        rng = self.rng
        port = client["next_port"]
        client["next_port"] = port + 1 if port < 60999 else 32768
        c = (client, server, port, req_bytes, resp_bytes, trace, xrid or self.xrid(), status, t0, t1,
             "%016x" % rng.getrandbits(64) if trace else None)
        self.push(t0, 0, c)
        self.push(t1, 1, c)
        # ~0.86 noise lines per call -> ~30 % noise overall
        r = rng.random()
        if r < 0.22:
            self.push(t0 - self.ri(150_000, 600_000), 2, (client, server, port))
            self.push(t1 + self.ri(1 * MS, 40 * MS), 3, (client, server, port))
        elif r < 0.43:
            dns = rng.choice(self.pods["coredns"])
            q = "%s.%s.svc.cluster.local." % (server["svc"], server["ns"])
            tq = t0 - self.ri(2 * MS, 9 * MS)
            sport = self.ri(32768, 60999)
            self.push(tq, 4, (client, dns, sport, q, SVC_IP.get(server["app"], "10.96.0.10")))
            self.push(tq + self.ri(300_000, 2 * MS), 5, (client, dns, sport, q,
                                                          SVC_IP.get(server["app"], "10.96.0.10")))

    def request(self, t):
        """One end-to-end agent request starting at t."""
        rng = self.rng
        P = self.pods
        trace = "%032x" % rng.getrandbits(128) if rng.random() < 0.5 else None
        xrid = None if trace else self.xrid()  # untraced: one X-Request-Id propagated on every hop
        gw = rng.choice(P["gateway"])
        orch = rng.choice(P["orchestrator"])
        llm = P["llm-gateway"]
        ts = t + self.ri(20 * MS, 120 * MS)  # orchestrator think time before planning
        pe = ts + self.ri(300 * MS, 1500 * MS)
        self.call(orch, rng.choice(llm), ts, pe, self.ri(2_000, 60_000), self.ri(500, 4_000), trace, xrid)
        k = self.ri(2, 8)
        cur = pe + self.ri(10 * MS, 80 * MS)
        latest = cur
        for _ in range(k):
            w = rng.choice(P["worker"])
            ws = cur
            tt = ws + self.ri(2 * MS, 15 * MS)
            if rng.random() < 0.3:
                vdb = rng.choice(P["vectordb"])
                te = tt + self.ri(8 * MS, 90 * MS)
                self.call(w, vdb, tt, te, self.ri(280, 900), self.ri(2_000, 40_000), trace, xrid)
                tt = te + self.ri(2 * MS, 20 * MS)
            for _ in range(self.ri(1, 3)):
                te = tt + self.ri(150 * MS, 2500 * MS)
                self.call(w, rng.choice(llm), tt, te, self.ri(1_000, 2_000_000), self.ri(300, 8_000),
                          trace, xrid)
                tt = te + self.ri(3 * MS, 40 * MS)
            we = tt + self.ri(2 * MS, 30 * MS)
            status = 200 if rng.random() > 0.01 else 500
            self.call(orch, w, ws, we, self.ri(500, 300_000), self.ri(200, 20_000), trace, xrid, status)
            latest = max(latest, we)
            cur += self.ri(3 * MS, 60 * MS)  # concurrent fan-out, staggered
        fs = latest + self.ri(20 * MS, 300 * MS)
        fe = fs + self.ri(200 * MS, 1200 * MS)
        self.call(orch, rng.choice(llm), fs, fe, self.ri(5_000, 400_000), self.ri(500, 6_000), trace, xrid)
        end = fe + self.ri(5 * MS, 60 * MS)
        self.call(gw, orch, t, end, self.ri(300, 8_000), self.ri(500, 20_000), trace, xrid)

    # -- formatting
    def fmt(self, t, kind, p):
        ts = self.clock.fmt(t)
        u = self.uuid()
        if kind <= 1:
            cl, sv, port, rqb, rsb, trace, xrid, status, t0, t1, span = p
            node = cl["node"]
            nl = self.node_labels[node]
            src_ep = cl["ep_local"]
            dst_ep = sv["ep_local"] if sv["node"] == node else sv["ep_remote"]
            url = self.url(cl, sv)
            tc = ',"trace_context":{"parent":{"trace_id":"%s"}}' % trace if trace else ""
            if kind == 0:
                tp = '{"key":"Traceparent","value":"00-%s-%s-01"},' % (trace, span) if trace else ""
                hdrs = REQ_HDRS(rqb, tp, UA[cl["app"]], xrid)
                return HTTP_REQ(ts, u, cl["ip"], sv["ip"], port, sv["port"], src_ep, dst_ep, node, nl, url,
                                   hdrs, tc, url, node, ts)
            lat = t1 - t0
            hdrs = RESP_HDRS(rsb, self.clock.date_hdr, max(0, lat // MS - 1), xrid)
            return HTTP_RESP(ts, u, sv["ip"], cl["ip"], sv["port"], port, dst_ep, src_ep, node, nl, lat, status,
                                url, hdrs, tc, status, lat // MS, url, node, ts)
        if kind == 2 or kind == 3:
            cl, sv, port = p
            node = cl["node"]
            dst_ep = sv["ep_local"] if sv["node"] == node else sv["ep_remote"]
            if kind == 2:
                return TCP_SYN(ts, u, cl["mac"], sv["mac"], cl["ip"], sv["ip"], port, sv["port"], cl["ep_local"],
                                  dst_ep, node, self.node_labels[node], node, ts)
            return TCP_FIN(ts, u, cl["mac"], sv["mac"], cl["ip"], sv["ip"], port, sv["port"], cl["ep_local"],
                              dst_ep, node, self.node_labels[node], cl["iface_idx"], cl["iface"], node, ts)
        cl, dns, sport, q, ip = p
        node = cl["node"]
        dns_ep = dns["ep_local"] if dns["node"] == node else dns["ep_remote"]
        if kind == 4:
            return DNS_Q(ts, u, cl["ip"], dns["ip"], sport, cl["ep_local"], dns_ep, node, self.node_labels[node],
                            q, q, node, ts)
        return DNS_A(ts, u, dns["ip"], cl["ip"], sport, dns_ep, cl["ep_local"], node, self.node_labels[node],
                        q, ip, ip, q, node, ts)

    def run(self, n, write):
        rng = self.rng
        heap = self.heap
        pop = heapq.heappop
        fmt = self.fmt
        written = 0
        nbytes = 0
        buf = []
        t = self.now
        mean_gap = NS / self.rate
        while written < n:
            t += int(rng.expovariate(1.0) * mean_gap) + 1
            # a new request may queue records up to 10 ms before its start (DNS lookup, TCP SYN)
            horizon = t - 10 * MS
            while heap and heap[0][0] < horizon and written < n:
                tt, _, kind, p = pop(heap)
                line = fmt(tt, kind, p)
                buf.append(line)
                nbytes += len(line)
                written += 1
                if len(buf) >= 512:
                    write("".join(buf))
                    buf = []
            if written < n:
                self.request(t)
        if buf:
            write("".join(buf))
        return written, nbytes


def main():
    ap = argparse.ArgumentParser(description="Stream a large synthetic Hubble flow dump (NDJSON).")
    ap.add_argument("--flows", type=int, default=500_000, help="number of lines to write")
    ap.add_argument("--out", default="-", help="output path, '-' for stdout")
    ap.add_argument("--gzip", action="store_true", help="gzip the output (compresslevel 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=60.0, help="end-to-end requests started per second")
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--start", default="2026-11-25T10:00:00Z")
    a = ap.parse_args()

    g = Gen(a)
    t0 = time.perf_counter()
    if a.out == "-":
        raw = sys.stdout.buffer
        close = None
    else:
        raw = open(a.out, "wb")
        close = raw
    sink = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) if a.gzip else raw

    # Compression and file writes release the GIL: do them on a writer thread so that they
    # overlap with line generation.
    q = queue.Queue(maxsize=256)

    def writer():
        while True:
            b = q.get()
            if b is None:
                return
            sink.write(b)

    th = threading.Thread(target=writer, daemon=True)
    th.start()

    def write(s):
        q.put(s.encode("ascii"))

    n, nbytes = g.run(a.flows, write)
    q.put(None)
    th.join()
    if a.gzip:
        sink.close()
    if close:
        close.close()
    else:
        raw.flush()
    dt = time.perf_counter() - t0
    print("wrote %d lines, %d bytes (%.0f B/line avg, uncompressed) in %.1f s: %.0f lines/s, %.1f MB/s"
          % (n, nbytes, nbytes / max(n, 1), dt, n / dt, nbytes / dt / 1e6), file=sys.stderr)


if __name__ == "__main__":
    main()
