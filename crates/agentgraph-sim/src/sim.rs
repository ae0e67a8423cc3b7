//! The simulator: runs a scenario's agents request by request, producing the Hubble records each
//! call leaves at the client's egress and the server's ingress proxy (stamped with each node's
//! skewed clock), background noise, and the ground truth of every request.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use serde::Serialize;

use crate::hubble::{self, EndpointJson, HttpParts};
use crate::rng::Rng;
use crate::scenario::{Agent, CorrelationMode, Scenario, WorkloadKind};

const MS: f64 = 1e6;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    /// Stop after this many end-to-end requests.
    pub requests: Option<usize>,
    /// Requests started per second (Poisson arrivals); overrides the scenario's concurrency.
    pub rate: Option<f64>,
    /// Stop starting requests after this much simulated time (nanoseconds).
    pub duration: Option<i64>,
    pub correlation: Option<CorrelationMode>,
    pub concurrency: Option<f64>,
    /// Simulated time of the first request (nanoseconds since the epoch).
    pub start: i64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 1,
            requests: Some(100),
            rate: None,
            duration: None,
            correlation: None,
            concurrency: None,
            // 2026-11-25T10:00:00Z
            start: 1_795_600_800_000_000_000,
        }
    }
}

/// One call of the ground truth.
#[derive(Clone, Debug, Serialize)]
pub struct TruthCall {
    pub id: String,
    pub parent: Option<String>,
    pub client: String,
    pub server: String,
    pub client_pod: String,
    pub server_pod: String,
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    /// Request time as the client-side proxy stamped it (the server side when only it saw it).
    pub start: String,
    pub duration_ms: Option<f64>,
    pub request_bytes: Option<u64>,
    pub response_bytes: Option<u64>,
}

/// One end-to-end request of the ground truth.
#[derive(Clone, Debug, Serialize)]
pub struct TruthRequest {
    pub id: String,
    pub root: String,
    pub calls: Vec<TruthCall>,
}

/// Totals of a run.
#[derive(Clone, Debug, Default)]
pub struct SimSummary {
    pub requests: usize,
    pub calls: usize,
    pub flows: usize,
    pub http_records: usize,
    pub simulated_ns: i64,
}

/// Written in a call's path, replaced by a fresh id per call (`/v1/threads/{id}/runs`).
const PATH_ID: &str = "{id}";

fn uuid_from(h: &str) -> String {
    format!("{}-{}-4{}-8{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

struct AgentRuntime {
    spec: Agent,
    pods: Vec<EndpointJson>,
    identity: u32,
}

struct Cluster {
    agents: Vec<AgentRuntime>,
    hosts: Vec<EndpointJson>,
    prometheus: EndpointJson,
    kube_dns: EndpointJson,
    world: EndpointJson,
    next_endpoint_id: u32,
    next_ip: u32,
}

fn pod_labels(agent: &Agent, job: bool) -> Vec<String> {
    let mut labels = vec![
        if job { format!("k8s:agent-role={}", agent.name) } else { format!("k8s:app={}", agent.name) },
        format!("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={}", agent.namespace),
        "k8s:io.cilium.k8s.policy.cluster=default".to_string(),
        format!("k8s:io.cilium.k8s.policy.serviceaccount={}", agent.name),
        format!("k8s:io.kubernetes.pod.namespace={}", agent.namespace),
    ];
    labels.extend(agent.labels.iter().map(|(k, v)| format!("k8s:{k}={v}")));
    labels.sort();
    labels
}

impl Cluster {
    fn build(s: &Scenario, rng: &mut Rng) -> Self {
        let mut c = Cluster {
            agents: Vec::new(),
            hosts: (0..s.nodes).map(|n| EndpointJson::reserved(1, "host", format!("172.18.0.{}", n + 2), n)).collect(),
            prometheus: EndpointJson::reserved(0, "x", String::new(), 0),
            kube_dns: EndpointJson::reserved(0, "x", String::new(), 0),
            world: EndpointJson::reserved(2, "world", "203.0.113.10".into(), usize::MAX),
            next_endpoint_id: 100,
            next_ip: 0,
        };
        for (i, a) in s.agents.iter().enumerate() {
            let identity = 20_000 + i as u32 * 17;
            let mut rt = AgentRuntime { spec: a.clone(), pods: Vec::new(), identity };
            if a.kind != WorkloadKind::Job {
                let hash = rng.k8s_suffix(10);
                for r in 0..a.replicas {
                    let (pod_name, kind) = match a.kind {
                        WorkloadKind::StatefulSet => (format!("{}-{r}", a.name), "StatefulSet"),
                        WorkloadKind::DaemonSet => (format!("{}-{}", a.name, rng.k8s_suffix(5)), "DaemonSet"),
                        _ => (format!("{}-{hash}-{}", a.name, rng.k8s_suffix(5)), "Deployment"),
                    };
                    let node = (i + r) % s.nodes;
                    let pod = c.make_pod(a, &pod_name, (&a.name.clone(), kind), identity, node, false);
                    rt.pods.push(pod);
                }
            }
            c.agents.push(rt);
        }
        let monitoring = Agent { name: "prometheus".into(), namespace: "monitoring".into(), ..s.agents[0].clone() };
        c.prometheus = c.make_pod(&monitoring, "prometheus-0", ("prometheus", "StatefulSet"), 9000, 0, false);
        let dns = Agent { name: "coredns".into(), namespace: "kube-system".into(), ..s.agents[0].clone() };
        c.kube_dns = c.make_pod(
            &dns,
            &format!("coredns-{}-{}", rng.k8s_suffix(10), rng.k8s_suffix(5)),
            ("coredns", "Deployment"),
            9001,
            0,
            false,
        );
        c
    }

    fn make_pod(
        &mut self,
        a: &Agent,
        pod_name: &str,
        workload: (&str, &str),
        identity: u32,
        node: usize,
        job: bool,
    ) -> EndpointJson {
        self.next_endpoint_id += 1;
        self.next_ip += 1;
        let ip = format!("10.244.{}.{}", node, 2 + self.next_ip % 250);
        EndpointJson::pod(
            self.next_endpoint_id,
            identity,
            &a.namespace,
            &pod_labels(a, job),
            pod_name,
            workload,
            ip,
            node,
            format!("{}/{}", a.namespace, a.name),
        )
    }
}

struct SimCall {
    parent: Option<usize>,
    client: EndpointJson,
    server: EndpointJson,
    method: String,
    path: String,
    host: String,
    start: i64,
    server_start: i64,
    server_end: i64,
    end: i64,
    answered: bool,
    status: u16,
    request_bytes: u64,
    response_bytes: u64,
    client_port: u16,
    span: String,
    request_id: String,
    /// What the client calls itself: an agent runtime, Prometheus, the kubelet's probe.
    user_agent: &'static str,
    egress_copy: bool,
    ingress_copy: bool,
}

/// A record waiting to be written in time order.
struct Pending {
    time: i64,
    seq: u64,
    node: usize,
    body: Body,
}

/// What a waiting record holds.
enum Body {
    /// A finished line.
    Line(String),
    /// An L7 HTTP record, written when it leaves in time order: a response's `latency_ns` and
    /// `trace_context` depend on what its node's Cilium agent saw before it (see [`L7Cache`]).
    Http(Box<PendingHttp>),
}

struct PendingHttp {
    uuid: String,
    /// The packet's source and destination (the responder is the source of a response).
    src: EndpointJson,
    dst: EndpointJson,
    sport: u16,
    dport: u16,
    response: bool,
    egress: bool,
    method: String,
    url: String,
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// The trace id of a request's `traceparent` header.
    trace_id: Option<String>,
    request_id: String,
}

/// What a node's Cilium agent remembers of the HTTP requests it saw, as Hubble's L7 parser
/// does: each request's time and trace context under its `X-Request-Id` (the latest request
/// with an id replaces the entry; at most 10,000 ids, the oldest forgotten first). A response
/// with that id takes its `latency_ns` and `trace_context` from the entry and removes it. So the
/// second proxy copy of a call between two pods of one node gets neither, and when one id goes
/// through several hops on a node (a propagated request id) a response may get another call's
/// latency.
#[derive(Default)]
struct L7Cache {
    /// By a hash of the request id (ids are random UUIDs: distinct ones do not collide): the
    /// request's time and trace id, and when the entry was made.
    entries: HashMap<u64, (i64, Option<String>, u64)>,
    /// Ids with when they were remembered, oldest first; a position is stale once its entry
    /// was taken or remembered again.
    order: VecDeque<(u64, u64)>,
    made: u64,
}

impl L7Cache {
    const CAPACITY: usize = 10_000;

    fn key(request_id: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(request_id)
    }

    fn remember(&mut self, request_id: &str, time: i64, trace_id: Option<String>) {
        let key = Self::key(request_id);
        self.made += 1;
        self.entries.insert(key, (time, trace_id, self.made));
        self.order.push_back((key, self.made));
        while self.entries.len() > Self::CAPACITY {
            let Some((oldest, made)) = self.order.pop_front() else { break };
            if self.entries.get(&oldest).is_some_and(|e| e.2 == made) {
                self.entries.remove(&oldest);
            }
        }
        if self.order.len() > 2 * Self::CAPACITY {
            // Stale positions linger in `order`; drop them now and then.
            let entries = &self.entries;
            self.order.retain(|(id, made)| entries.get(id).is_some_and(|e| e.2 == *made));
        }
    }

    fn take(&mut self, request_id: &str) -> Option<(i64, Option<String>)> {
        self.entries.remove(&Self::key(request_id)).map(|(time, trace, _)| (time, trace))
    }
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

/// The simulator's state while it runs.
pub struct Simulator<'s> {
    scenario: &'s Scenario,
    opts: SimOptions,
    correlation: CorrelationMode,
    rng: Rng,
    cluster: Cluster,
    skew: Vec<i64>,
    pending: BinaryHeap<Reverse<Pending>>,
    /// Per node, what its Cilium agent remembers of HTTP requests.
    l7_caches: Vec<L7Cache>,
    seq: u64,
    next_port: u16,
    /// Ids written into paths (see [`PATH_ID`]).
    path_ids: Rng,
    summary: SimSummary,
}

impl<'s> Simulator<'s> {
    pub fn new(scenario: &'s Scenario, opts: SimOptions) -> Self {
        let mut rng = Rng::new(opts.seed);
        let cluster = Cluster::build(scenario, &mut rng.fork(1));
        let mut skew_rng = rng.fork(2);
        let skew = (0..scenario.nodes)
            .map(|n| {
                if n == 0 { 0 } else { (skew_rng.uniform(-scenario.clock_skew_ms, scenario.clock_skew_ms) * MS) as i64 }
            })
            .collect();
        let correlation = opts.correlation.unwrap_or(scenario.correlation);
        let path_ids = Rng::new(opts.seed ^ 0x7061_7468_5f69_6473);
        Simulator {
            scenario,
            opts,
            correlation,
            rng,
            cluster,
            skew,
            pending: BinaryHeap::new(),
            l7_caches: (0..scenario.nodes).map(|_| L7Cache::default()).collect(),
            seq: 0,
            next_port: 32768,
            path_ids,
            summary: SimSummary::default(),
        }
    }

    /// Runs the simulation, handing each flow line (with its node) and each truth request to
    /// the callbacks, lines in stamped-time order.
    pub fn run(
        mut self,
        mut flows: impl FnMut(usize, &str) -> std::io::Result<()>,
        mut truth: impl FnMut(&TruthRequest) -> std::io::Result<()>,
    ) -> std::io::Result<SimSummary> {
        let concurrency = self.opts.concurrency.unwrap_or(self.scenario.concurrency);
        // Mean request duration, from a pilot run on a separate random stream, sets the arrival
        // rate that gives the requested concurrency.
        let mean_duration = if self.opts.rate.is_none() && concurrency > 1.0 {
            let mut pilot =
                Simulator::new(self.scenario, SimOptions { seed: self.opts.seed ^ 0x5eed, ..self.opts.clone() });
            let mut total = 0i64;
            for i in 0..30 {
                let (req, end) = pilot.request(i, 0);
                total += end;
                drop(req);
            }
            total as f64 / 30.0
        } else {
            0.0
        };
        let max_skew = (self.scenario.clock_skew_ms * MS) as i64 + 1_000_000;
        let start = self.opts.start;
        let mut t = start;
        let mut noise_t = start;
        let mut i = 0usize;
        let mut last_end = start;
        loop {
            if self.opts.requests.is_some_and(|n| i >= n) || self.opts.duration.is_some_and(|d| t >= start + d) {
                break;
            }
            self.noise(noise_t, t, &mut truth)?;
            noise_t = t;
            let (req, end) = self.request(i, t);
            last_end = last_end.max(end);
            truth(&req)?;
            self.summary.requests += 1;
            self.summary.calls += req.calls.len();
            i += 1;
            // Records of later requests are stamped no earlier than `t - max_skew`.
            self.flush(Some(t - max_skew), &mut flows)?;
            t = if let Some(rate) = self.opts.rate {
                t + (self.rng.exponential(1.0 / rate) * 1e9) as i64
            } else if concurrency <= 1.0 {
                end + (self.rng.log_uniform(self.scenario.gap_ms) * MS) as i64
            } else {
                t + (self.rng.exponential(mean_duration / concurrency)) as i64
            };
        }
        self.flush(None, &mut flows)?;
        // From the first request's start to the last one's end (not to the next arrival, which
        // at a low --rate may lie far beyond the traffic).
        self.summary.simulated_ns = last_end - start;
        Ok(self.summary)
    }

    fn flush(
        &mut self,
        before: Option<i64>,
        flows: &mut impl FnMut(usize, &str) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        while let Some(Reverse(p)) = self.pending.peek() {
            if before.is_some_and(|b| p.time >= b) {
                break;
            }
            let Reverse(p) = self.pending.pop().expect("peeked");
            match p.body {
                Body::Line(line) => flows(p.node, &line)?,
                Body::Http(h) => flows(p.node, &self.http_line(p.time, p.node, *h))?,
            }
        }
        Ok(())
    }

    /// The line of an HTTP record leaving in time order, through its node's [`L7Cache`].
    fn http_line(&mut self, time: i64, node: usize, mut h: PendingHttp) -> String {
        let cache = &mut self.l7_caches[node];
        let (latency_ns, trace_id) = if h.response {
            cache.take(&h.request_id).map_or((0, None), |(t, trace)| ((time - t).max(0), trace))
        } else {
            (0, h.trace_id.take())
        };
        let parts = HttpParts {
            response: h.response,
            egress: h.egress,
            method: &h.method,
            url: &h.url,
            status: h.status,
            latency_ns,
            headers: &h.headers,
            trace_id: trace_id.as_deref(),
        };
        let mut line = String::with_capacity(2600);
        hubble::http_line(&mut line, time, &h.uuid, node, &h.src, &h.dst, h.sport, h.dport, &parts);
        line.pop();
        if !h.response {
            self.l7_caches[node].remember(&h.request_id, time, trace_id);
        }
        line
    }

    /// Queues a record stamped by `node`'s clock: a line written now, or an HTTP record.
    fn emit(&mut self, true_time: i64, node: usize, write: impl FnOnce(&mut String, i64, &str)) {
        self.queue(true_time, node, |time, uuid| {
            let mut line = String::with_capacity(2600);
            write(&mut line, time, &uuid);
            // The writers end each line with a newline; callbacks get the line without it.
            line.pop();
            Body::Line(line)
        });
    }

    fn queue(&mut self, true_time: i64, node: usize, body: impl FnOnce(i64, String) -> Body) {
        let time = true_time + self.skew[node];
        let uuid = {
            let h = self.rng.hex(32);
            format!("{}-{}-4{}-a{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
        };
        self.seq += 1;
        self.summary.flows += 1;
        let body = body(time, uuid);
        self.pending.push(Reverse(Pending { time, seq: self.seq, node, body }));
    }

    fn port(&mut self) -> u16 {
        self.next_port = if self.next_port >= 60999 { 32768 } else { self.next_port + 1 };
        self.next_port
    }

    /// Simulates one end-to-end request starting at `t`; returns its truth and its end time.
    fn request(&mut self, index: usize, t: i64) -> (TruthRequest, i64) {
        let entry = self.scenario.entry.clone();
        let from = self.agent_index(&entry.from);
        let to = self.agent_index(&entry.to);
        let client = self.pick_pod(from);
        let trace_id = self.rng.hex(32);
        let request_id = self.uuid();
        let mut calls: Vec<SimCall> = Vec::new();
        let bytes = entry.request_bytes;
        let end = self.call(&mut calls, None, client, to, "POST", &entry.path, bytes, t, &request_id);
        let truth = self.finish_request(index, &calls, &trace_id, &request_id);
        (truth, end)
    }

    fn uuid(&mut self) -> String {
        uuid_from(&self.rng.hex(32))
    }

    /// A call's path with each `{id}` replaced by a fresh id. The ids come from a stream of
    /// their own, so a scenario with ids in its paths runs exactly as the one without.
    fn path_with_ids(&mut self, path: &str) -> String {
        let mut out = path.to_string();
        while let Some(at) = out.find(PATH_ID) {
            let id = uuid_from(&self.path_ids.hex(32));
            out.replace_range(at..at + PATH_ID.len(), &id);
        }
        out
    }

    fn agent_index(&self, name: &str) -> usize {
        self.cluster.agents.iter().position(|a| a.spec.name == name).expect("validated scenario")
    }

    fn pick_pod(&mut self, agent: usize) -> EndpointJson {
        let a = &self.cluster.agents[agent];
        if a.spec.kind == WorkloadKind::Job {
            let spec = a.spec.clone();
            let identity = a.identity;
            let name = format!("{}-{}", spec.name, self.rng.k8s_suffix(5));
            let job = format!("{}-run-{}", spec.name, self.rng.hex(8));
            let node = self.rng.int(0, self.scenario.nodes - 1);
            return self.cluster.make_pod(&spec, &name, (&job, "Job"), identity, node, true);
        }
        let i = self.rng.int(0, a.pods.len() - 1);
        a.pods[i].clone()
    }

    /// Simulates a call from `client` to an agent, with everything the server does to answer
    /// it; returns the time the client sees the response (or gives up).
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        calls: &mut Vec<SimCall>,
        parent: Option<usize>,
        client: EndpointJson,
        agent: usize,
        method: &str,
        path: &str,
        request_bytes: [f64; 2],
        t0: i64,
        request_id: &str,
    ) -> i64 {
        let server = self.pick_pod(agent);
        let spec = self.cluster.agents[agent].spec.clone();
        let net = |rng: &mut Rng, s: &Scenario| (rng.log_uniform(s.network_ms) * MS) as i64;
        let server_start = t0 + net(&mut self.rng, self.scenario);
        let idx = calls.len();
        let rid = if self.correlation == CorrelationMode::RequestId { request_id.to_string() } else { self.uuid() };
        let span = self.rng.hex(16);
        let port = self.port();
        calls.push(SimCall {
            parent,
            client: client.clone(),
            server: server.clone(),
            method: method.into(),
            path: self.path_with_ids(path),
            host: spec.name.clone(),
            start: t0,
            server_start,
            server_end: server_start,
            end: t0,
            answered: true,
            status: 200,
            request_bytes: self.rng.log_uniform(request_bytes) as u64,
            response_bytes: self.rng.log_uniform(spec.response_bytes) as u64,
            client_port: port,
            span,
            request_id: rid,
            user_agent: "agent-runtime/1.4",
            egress_copy: true,
            ingress_copy: self.scenario.both_copies,
        });
        self.per_call_noise(&client, &server, agent, port, t0);
        let mut t = server_start;
        if spec.calls.is_empty() {
            t += (self.rng.log_uniform(spec.latency_ms) * MS) as i64;
        } else {
            t += (self.rng.log_uniform(spec.think_ms) * MS) as i64;
            for step in &spec.calls {
                if !self.rng.chance(step.probability) {
                    continue;
                }
                let n = match step.count_alpha {
                    Some(alpha) => self.rng.pareto_int(step.count[0], step.count[1], alpha),
                    None => self.rng.int(step.count[0], step.count[1]),
                };
                if let Some(host) = step.to.strip_prefix("external:") {
                    for _ in 0..n {
                        t = self.external_call(&server, host, t);
                    }
                    continue;
                }
                let target = self.agent_index(&step.to);
                // Parallel calls start a few milliseconds apart and the step ends with the
                // slowest; sequential ones each start shortly after the previous answer.
                let mut latest = t;
                let mut next_start = t;
                for _ in 0..n {
                    let start = if step.parallel { next_start } else { t };
                    let e = self.call(
                        calls,
                        Some(idx),
                        server.clone(),
                        target,
                        &step.method,
                        &step.path,
                        step.request_bytes,
                        start,
                        request_id,
                    );
                    if step.parallel {
                        latest = latest.max(e);
                        next_start += (self.rng.uniform(0.2, 3.0) * MS) as i64;
                    } else {
                        t = e + (self.rng.uniform(1.0, 30.0) * MS) as i64;
                    }
                }
                if step.parallel {
                    t = latest;
                }
                t += (self.rng.log_uniform(spec.think_ms) * MS * 0.5) as i64;
            }
        }
        let c = &mut calls[idx];
        c.server_end = t.max(c.server_start);
        if self.rng.chance(spec.timeout_rate) {
            c.answered = false;
            c.end = t0 + (self.scenario.client_timeout_ms * MS) as i64;
            return c.end;
        }
        if self.rng.chance(spec.error_rate) {
            c.status = if self.rng.chance(0.5) { 503 } else { 500 };
        }
        c.end = c.server_end + net(&mut self.rng, self.scenario);
        c.end
    }

    /// An API outside the cluster: DNS lookup, then a TCP connection seen only at L3/L4; the
    /// caller waits for it.
    fn external_call(&mut self, client: &EndpointJson, host: &str, t: i64) -> i64 {
        let (sport, dport) = (self.port(), 53);
        let dns = self.cluster.kube_dns.clone();
        let query = format!("{host}.");
        let node = client.node;
        let c = client.clone();
        let world = self.cluster.world.clone();
        self.emit(t, node, |out, time, uuid| {
            hubble::dns_line(out, time, uuid, node, &c, &dns, sport, dport, &query, &world.ip, false)
        });
        let c = client.clone();
        let dns2 = self.cluster.kube_dns.clone();
        let q2 = query.clone();
        self.emit(t + 800_000, node, |out, time, uuid| {
            hubble::dns_line(out, time, uuid, node, &dns2, &c, dport, sport, &q2, &world.ip, true)
        });
        let port = self.port();
        let c = client.clone();
        self.emit(t + 1_000_000, node, |out, time, uuid| {
            hubble::syn_line(out, time, uuid, node, &c, &world, port, 443, hubble::SynFate::Traced, Some(host))
        });
        t + 1_000_000 + (self.rng.log_uniform([50.0, 800.0]) * MS) as i64
    }

    /// The DNS lookup of a call's service (sometimes) and its connection's first packet, sent
    /// to the client's L7 proxy on the call's own ports (sometimes: some calls reuse a
    /// connection).
    fn per_call_noise(&mut self, client: &EndpointJson, server: &EndpointJson, agent: usize, port: u16, t: i64) {
        let noise = self.scenario.noise.clone();
        if client.pod.is_empty() {
            return;
        }
        if self.rng.chance(noise.dns_per_call) {
            let spec = &self.cluster.agents[agent].spec;
            let query = format!("{}.{}.svc.cluster.local.", spec.name, spec.namespace);
            let (sport, dns, node) = (self.port(), self.cluster.kube_dns.clone(), client.node);
            let answer = service_ip(agent);
            let c = client.clone();
            self.emit(t - 2_000_000, node, |o, time, u| {
                hubble::dns_line(o, time, u, node, &c, &dns, sport, 53, &query, &answer, false)
            });
            let c = client.clone();
            self.emit(t - 1_500_000, node, |o, time, u| {
                hubble::dns_line(o, time, u, node, &dns, &c, 53, sport, &query, &answer, true)
            });
        }
        if self.rng.chance(noise.tcp_per_call) {
            let node = client.node;
            let (c, s) = (client.clone(), server.clone());
            self.emit(t - 500_000, node, |o, time, u| {
                hubble::syn_line(o, time, u, node, &c, &s, port, 8080, hubble::SynFate::ToProxy, None)
            });
        }
    }

    /// Background traffic between `from` and `to`: scrapes and health checks (one-call requests
    /// in the truth) and policy drops.
    fn noise(
        &mut self,
        from: i64,
        to: i64,
        truth: &mut impl FnMut(&TruthRequest) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let noise = self.scenario.noise.clone();
        for (rate, kind) in
            [(noise.scrapes_per_second, 0), (noise.health_checks_per_second, 1), (noise.policy_drops_per_second, 2)]
        {
            if rate <= 0.0 {
                continue;
            }
            let mut t = from + (self.rng.exponential(1.0 / rate) * 1e9) as i64;
            while t < to {
                let agent = self.rng.int(0, self.cluster.agents.len() - 1);
                if self.cluster.agents[agent].spec.kind == WorkloadKind::Job {
                    t += (self.rng.exponential(1.0 / rate) * 1e9) as i64;
                    continue;
                }
                let target = self.pick_pod(agent);
                match kind {
                    2 => {
                        let src = self.cluster.prometheus.clone();
                        let (sport, node) = (self.port(), src.node);
                        self.emit(t, node, |o, time, u| {
                            hubble::syn_line(
                                o,
                                time,
                                u,
                                node,
                                &src,
                                &target,
                                sport,
                                5432,
                                hubble::SynFate::Dropped,
                                None,
                            )
                        });
                    }
                    _ => {
                        let (client, path, ingress_only, user_agent) = if kind == 0 {
                            (self.cluster.prometheus.clone(), "/metrics", false, "Prometheus/2.53.1")
                        } else {
                            (self.cluster.hosts[target.node].clone(), "/healthz", true, "kube-probe/1.31")
                        };
                        let rid = self.uuid();
                        let port = self.port();
                        let latency = (self.rng.log_uniform([1.0, 40.0]) * MS) as i64;
                        let call = SimCall {
                            parent: None,
                            client,
                            server: target.clone(),
                            method: "GET".into(),
                            path: path.into(),
                            // Scrapes and probes address the pod by its IP, not a Service name.
                            host: target.ip.clone(),
                            start: t,
                            server_start: t + 300_000,
                            server_end: t + 300_000 + latency,
                            end: t + 600_000 + latency,
                            answered: true,
                            status: 200,
                            request_bytes: 0,
                            response_bytes: self.rng.log_uniform([500.0, 50_000.0]) as u64,
                            client_port: port,
                            span: self.rng.hex(16),
                            request_id: rid.clone(),
                            user_agent,
                            egress_copy: !ingress_only,
                            ingress_copy: ingress_only || self.scenario.both_copies,
                        };
                        let calls = vec![call];
                        let index = self.summary.requests + 1_000_000;
                        let req = self.finish_request_with(index, &calls, None, &rid, true);
                        truth(&req)?;
                        self.summary.calls += 1;
                    }
                }
                t += (self.rng.exponential(1.0 / rate) * 1e9) as i64;
            }
        }
        Ok(())
    }

    fn finish_request(&mut self, index: usize, calls: &[SimCall], trace_id: &str, request_id: &str) -> TruthRequest {
        let traced = (self.correlation == CorrelationMode::TraceContext).then_some(trace_id);
        self.finish_request_with(index, calls, traced, request_id, false)
    }

    /// Emits the Hubble records of a request's calls and builds its truth.
    fn finish_request_with(
        &mut self,
        index: usize,
        calls: &[SimCall],
        trace_id: Option<&str>,
        _request_id: &str,
        noise: bool,
    ) -> TruthRequest {
        let mut truth_calls = Vec::with_capacity(calls.len());
        // Truth ids follow the client-side start order, like the analyzer's.
        let mut order: Vec<usize> = (0..calls.len()).collect();
        order.sort_by_key(|&i| (self.stamped_client_start(&calls[i]), i));
        let mut id_of = vec![0usize; calls.len()];
        for (pos, &i) in order.iter().enumerate() {
            id_of[i] = pos;
        }
        for &i in &order {
            let c = &calls[i];
            self.emit_call(c, trace_id);
            let (start, duration) = if c.egress_copy {
                (c.start + self.skew[c.client.node], c.answered.then(|| (c.end - c.start) as f64 / MS))
            } else {
                (
                    c.server_start + self.skew[c.server.node],
                    c.answered.then(|| (c.server_end - c.server_start) as f64 / MS),
                )
            };
            truth_calls.push(TruthCall {
                id: format!("c{}", id_of[i]),
                parent: c.parent.map(|p| format!("c{}", id_of[p])),
                client: c.client.agent.clone(),
                server: c.server.agent.clone(),
                client_pod: c.client.pod.clone(),
                server_pod: c.server.pod.clone(),
                method: c.method.clone(),
                path: c.path.clone(),
                status: c.answered.then_some(c.status),
                start: agentgraph_proto::time::format_rfc3339_nanos(start),
                duration_ms: duration,
                request_bytes: (c.method != "GET").then_some(c.request_bytes),
                response_bytes: c.answered.then_some(c.response_bytes),
            });
        }
        let root = calls.first().map(|c| c.server.agent.clone()).unwrap_or_default();
        TruthRequest {
            id: if noise { format!("noise-{index}") } else { format!("r{index}") },
            root,
            calls: truth_calls,
        }
    }

    fn stamped_client_start(&self, c: &SimCall) -> i64 {
        if c.egress_copy { c.start + self.skew[c.client.node] } else { c.server_start + self.skew[c.server.node] }
    }

    fn emit_call(&mut self, c: &SimCall, trace_id: Option<&str>) {
        let url = format!("http://{}:8080{}", c.host, c.path);
        let mut req_headers: Vec<(&'static str, String)> = Vec::with_capacity(6);
        if c.method != "GET" {
            req_headers.push(("Content-Length", c.request_bytes.to_string()));
            req_headers.push(("Content-Type", "application/json".into()));
        }
        if let Some(t) = trace_id {
            req_headers.push(("Traceparent", format!("00-{t}-{}-01", c.span)));
        }
        req_headers.push(("User-Agent", c.user_agent.into()));
        req_headers.push(("X-Request-Id", c.request_id.clone()));
        let resp_headers: Vec<(&'static str, String)> = vec![
            ("Content-Length", c.response_bytes.to_string()),
            ("Content-Type", "application/json".into()),
            ("X-Request-Id", c.request_id.clone()),
        ];
        let server_port = 8080u16;
        let copies = [
            (true, c.egress_copy, c.client.node, c.start, c.end),
            (false, c.ingress_copy, c.server.node, c.server_start, c.server_end),
        ];
        for (egress, present, node, req_t, resp_t) in copies {
            if !present {
                continue;
            }
            self.summary.http_records += 1;
            let request = |uuid: String| PendingHttp {
                uuid,
                src: c.client.clone(),
                dst: c.server.clone(),
                sport: c.client_port,
                dport: server_port,
                response: false,
                egress,
                method: c.method.clone(),
                url: url.clone(),
                status: 0,
                headers: req_headers.clone(),
                trace_id: trace_id.map(str::to_string),
                request_id: c.request_id.clone(),
            };
            self.queue(req_t, node, |_, uuid| Body::Http(Box::new(request(uuid))));
            if c.answered {
                self.summary.http_records += 1;
                let response = |uuid: String| PendingHttp {
                    uuid,
                    src: c.server.clone(),
                    dst: c.client.clone(),
                    sport: server_port,
                    dport: c.client_port,
                    response: true,
                    egress,
                    method: c.method.clone(),
                    url: url.clone(),
                    status: c.status,
                    headers: resp_headers.clone(),
                    trace_id: None,
                    request_id: c.request_id.clone(),
                };
                self.queue(resp_t, node, |_, uuid| Body::Http(Box::new(response(uuid))));
            }
        }
    }
}

/// The ClusterIP (in 10.96.0.0/16) of the Service of the scenario's `agent`-th agent: what an
/// in-cluster DNS lookup of `<name>.<namespace>.svc.cluster.local` answers.
fn service_ip(agent: usize) -> String {
    format!("10.96.{}.{}", agent / 250, agent % 250 + 2)
}

/// Writes the truth document (`agentgraph.truth/v1`) request by request.
pub struct TruthWriter<W: std::io::Write> {
    out: W,
    first: bool,
}

impl<W: std::io::Write> TruthWriter<W> {
    pub fn new(mut out: W, scenario: &str, seed: u64, correlation: CorrelationMode) -> std::io::Result<Self> {
        write!(
            out,
            "{{\"schema\":\"agentgraph.truth/v1\",\"scenario\":{},\"seed\":{seed},\"correlation\":\"{}\",\"requests\":[",
            serde_json::to_string(scenario).unwrap_or_default(),
            correlation.as_str()
        )?;
        Ok(TruthWriter { out, first: true })
    }

    pub fn request(&mut self, r: &TruthRequest) -> std::io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, r).map_err(std::io::Error::other)
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(b"]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}
