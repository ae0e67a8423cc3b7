//! Prometheus metrics of request graphs (prometheus-client, OpenMetrics text with exemplars).
//! Labels are agent names and small enums only; each family holds at most `max_series` label
//! sets — past it new series fold into `__overflow__` and are counted — and series idle longer
//! than `series_ttl` are removed.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agentgraph_core::RequestGraph;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

const OVERFLOW: &str = "__overflow__";

/// Durations of agent calls: milliseconds (a vector lookup) to minutes (an LLM chain).
const SECONDS: [f64; 16] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];
/// Context sizes: 256 B to 256 MB, ×4 per bucket.
const BYTES: [f64; 11] =
    [256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0, 268435456.0];
/// Counts (calls, depth, fan-out).
const COUNTS: [f64; 10] = [1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0];

#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Most label sets per family.
    pub max_series: usize,
    /// Series not updated for this long are removed.
    pub series_ttl: Duration,
    /// Pods seen within this window count for `agentgraph_agent_pods`.
    pub pod_window: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { max_series: 2_000, series_ttl: Duration::from_secs(3600), pod_window: Duration::from_secs(600) }
    }
}

/// Labels that can stand for "too many series".
trait Overflow {
    fn overflow() -> Self;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    client: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeStatusLabels {
    client: String,
    server: String,
    status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceGraphLabels {
    client: String,
    server: String,
    connection_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RootLabels {
    root: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// The exemplar on duration histograms: the request graph's id (trace or request id).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceExemplar {
    trace_id: String,
}

impl Overflow for EdgeLabels {
    fn overflow() -> Self {
        EdgeLabels { client: OVERFLOW.into(), server: OVERFLOW.into() }
    }
}
impl Overflow for EdgeStatusLabels {
    fn overflow() -> Self {
        EdgeStatusLabels { client: OVERFLOW.into(), server: OVERFLOW.into(), status_class: OVERFLOW.into() }
    }
}
impl Overflow for ServiceGraphLabels {
    fn overflow() -> Self {
        ServiceGraphLabels { client: OVERFLOW.into(), server: OVERFLOW.into(), connection_type: String::new() }
    }
}
impl Overflow for RootLabels {
    fn overflow() -> Self {
        RootLabels { root: OVERFLOW.into() }
    }
}
impl Overflow for AgentLabels {
    fn overflow() -> Self {
        AgentLabels { agent: OVERFLOW.into() }
    }
}

/// A family with a cap on label sets and expiry of idle ones.
struct Capped<L, M, C = fn() -> M> {
    /// The family's name as exported (with its unit), as the dropped-series counter names it.
    name: String,
    family: Family<L, M, C>,
    seen: Mutex<foldhash::HashMap<L, Instant>>,
}

impl<L, M, C> Capped<L, M, C>
where
    L: Clone + Hash + Eq + Overflow + EncodeLabelSet + std::fmt::Debug,
    C: MetricConstructor<M>,
{
    fn new(name: String, family: Family<L, M, C>) -> Self {
        Capped { name, family, seen: Mutex::new(foldhash::HashMap::default()) }
    }

    /// Runs `f` on the series of `labels`, or of `__overflow__` when the family is full.
    /// Updates the series of `labels` with `f`, seen at `now` (read once per request graph by
    /// the caller: a clock read per series touched showed in profiles).
    fn with(&self, labels: L, now: Instant, cap: usize, dropped: &Family<FamilyLabels, Counter>, f: impl FnOnce(&M)) {
        let labels = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = seen.get_mut(&labels) {
                *t = now;
                labels
            } else if seen.len() < cap {
                seen.insert(labels.clone(), now);
                labels
            } else {
                dropped.get_or_create(&FamilyLabels { family: self.name.clone() }).inc();
                let o = L::overflow();
                seen.insert(o.clone(), now);
                o
            }
        };
        f(&self.family.get_or_create(&labels));
    }

    /// Removes series idle for longer than `ttl`; returns how many.
    fn expire(&self, ttl: Duration) -> usize {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<L> = seen.iter().filter(|(_, t)| t.elapsed() > ttl).map(|(l, _)| l.clone()).collect();
        for l in &stale {
            seen.remove(l);
            self.family.remove(l);
        }
        stale.len()
    }
}

/// What is done to every capped family alike, whatever its labels and metric type.
trait CappedFamily {
    fn name(&self) -> &str;
    fn expire(&self, ttl: Duration) -> usize;
}

impl<L, M, C> CappedFamily for Capped<L, M, C>
where
    L: Clone + Hash + Eq + Overflow + EncodeLabelSet + std::fmt::Debug,
    C: MetricConstructor<M>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn expire(&self, ttl: Duration) -> usize {
        Capped::expire(self, ttl)
    }
}

/// Counters owned elsewhere (the collector's telemetry), copied in before each scrape.
#[derive(Clone, Debug, Default)]
pub struct SelfTelemetry {
    pub flows_received: u64,
    pub flows_discarded: Vec<(&'static str, u64)>,
    pub lost_events: u64,
    pub reconnects: u64,
    pub open_requests: i64,
    /// Calls held by the engine (bounded by `max_open_calls`).
    pub open_calls: i64,
    /// Whether the Hubble stream is up.
    pub connected: bool,
    pub requests_expired: u64,
    /// HTTP records that arrived later than the reorder window.
    pub records_late: u64,
    /// Requests emitted before they completed, at the open-call or request-size bound.
    pub requests_emitted_early: u64,
    /// Responses whose request was never seen.
    pub responses_without_request: u64,
}

fn histogram_seconds() -> Histogram {
    Histogram::new(SECONDS)
}
fn histogram_seconds_exemplars() -> HistogramWithExemplars<TraceExemplar> {
    HistogramWithExemplars::new(SECONDS.into_iter())
}
fn histogram_bytes() -> Histogram {
    Histogram::new(BYTES)
}
fn histogram_counts() -> Histogram {
    Histogram::new(COUNTS)
}

/// All metric families of the collector.
pub struct Metrics {
    config: MetricsConfig,
    registry: Registry,
    calls: Capped<EdgeStatusLabels, Counter>,
    call_duration: Capped<EdgeLabels, HistogramWithExemplars<TraceExemplar>>,
    call_request_bytes: Capped<EdgeLabels, Histogram>,
    call_response_bytes: Capped<EdgeLabels, Histogram>,
    requests: Capped<RootLabels, Counter>,
    request_duration: Capped<RootLabels, HistogramWithExemplars<TraceExemplar>>,
    request_calls: Capped<RootLabels, Histogram>,
    request_depth: Capped<RootLabels, Histogram>,
    request_fan_out: Capped<RootLabels, Histogram>,
    request_concurrent_fan_out: Capped<RootLabels, Histogram>,
    request_context_bytes: Capped<RootLabels, Histogram>,
    agent_fan_out: Capped<AgentLabels, Histogram>,
    agent_concurrent_fan_out: Capped<AgentLabels, Histogram>,
    agent_self: Capped<AgentLabels, Histogram>,
    agent_pods: Capped<AgentLabels, Gauge>,
    sg_total: Capped<ServiceGraphLabels, Counter>,
    sg_failed: Capped<ServiceGraphLabels, Counter>,
    sg_server: Capped<ServiceGraphLabels, Histogram>,
    sg_client: Capped<ServiceGraphLabels, Histogram>,
    flows_received: Family<SourceLabels, Counter>,
    flows_discarded: Family<ReasonLabels, Counter>,
    lost_events: Family<SourceLabels, Counter>,
    reconnects: Counter,
    open_requests: Gauge,
    open_calls: Gauge,
    connected: Gauge,
    requests_expired: Counter,
    records_late: Counter,
    requests_emitted_early: Counter,
    responses_without_request: Counter,
    series_dropped: Family<FamilyLabels, Counter>,
    /// Last values copied from the collector's counters (counters only go up by the difference).
    last: Mutex<SelfTelemetry>,
    pods: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

impl Metrics {
    pub fn new(config: MetricsConfig) -> Self {
        let mut registry = Registry::default();
        macro_rules! capped {
            ($name:literal, $help:literal, $ctor:expr) => {{
                let family = Family::new_with_constructor($ctor);
                registry.register($name, $help, family.clone());
                Capped::new($name.to_string(), family)
            }};
            ($name:literal, $help:literal, $ctor:expr, $unit:expr) => {{
                let family = Family::new_with_constructor($ctor);
                let name = format!("{}_{}", $name, $unit.as_str());
                registry.register_with_unit($name, $help, $unit, family.clone());
                Capped::new(name, family)
            }};
        }
        let counter: fn() -> Counter = Counter::default;
        let gauge: fn() -> Gauge = Gauge::default;
        let seconds: fn() -> Histogram = histogram_seconds;
        let seconds_x: fn() -> HistogramWithExemplars<TraceExemplar> = histogram_seconds_exemplars;
        let bytes: fn() -> Histogram = histogram_bytes;
        let counts: fn() -> Histogram = histogram_counts;
        let calls = capped!("agentgraph_calls", "Agent-to-agent HTTP calls by edge and status class", counter);
        let call_duration = capped!(
            "agentgraph_call_duration",
            "Latency of agent calls as the client saw it",
            seconds_x,
            Unit::Seconds
        );
        let call_request_bytes =
            capped!("agentgraph_call_request", "Context sent per call (request body size)", bytes, Unit::Bytes);
        let call_response_bytes =
            capped!("agentgraph_call_response", "Response body size per call", bytes, Unit::Bytes);
        let requests = capped!("agentgraph_requests", "End-to-end requests by root agent", counter);
        let request_duration =
            capped!("agentgraph_request_duration", "Duration of end-to-end requests", seconds_x, Unit::Seconds);
        let request_calls = capped!("agentgraph_request_calls", "Calls per end-to-end request", counts);
        let request_depth = capped!("agentgraph_request_depth", "Depth of the call tree per request", counts);
        let request_fan_out = capped!("agentgraph_request_fan_out", "Largest fan-out of one call per request", counts);
        let request_concurrent_fan_out = capped!(
            "agentgraph_request_concurrent_fan_out",
            "Largest number of child calls in flight at once per request",
            counts
        );
        let request_context_bytes =
            capped!("agentgraph_request_context", "Context sent over all calls of a request", bytes, Unit::Bytes);
        let agent_fan_out = capped!("agentgraph_agent_fan_out", "Calls made per call served, by agent", counts);
        let agent_concurrent_fan_out =
            capped!("agentgraph_agent_concurrent_fan_out", "Calls in flight at once per call served, by agent", counts);
        let agent_self = capped!(
            "agentgraph_agent_self",
            "Time an agent spent on a call outside its own outgoing calls (thinking)",
            seconds,
            Unit::Seconds
        );
        let agent_pods = capped!("agentgraph_agent_pods", "Distinct pods seen recently per agent", gauge);
        let sg_total =
            capped!("traces_service_graph_request", "Requests between two services (service graph)", counter);
        let sg_failed = capped!(
            "traces_service_graph_request_failed",
            "Failed requests between two services (service graph)",
            counter
        );
        let sg_server = capped!(
            "traces_service_graph_request_server",
            "Request time as the server saw it (service graph)",
            seconds,
            Unit::Seconds
        );
        let sg_client = capped!(
            "traces_service_graph_request_client",
            "Request time as the client saw it (service graph)",
            seconds,
            Unit::Seconds
        );
        let flows_received = Family::<SourceLabels, Counter>::default();
        registry.register("agentgraph_flows_received", "Flows received from Hubble", flows_received.clone());
        let flows_discarded = Family::<ReasonLabels, Counter>::default();
        registry.register("agentgraph_flows_discarded", "Flows discarded, by reason", flows_discarded.clone());
        let lost_events = Family::<SourceLabels, Counter>::default();
        registry.register(
            "agentgraph_hubble_lost_events",
            "Events Hubble reported lost upstream (ring buffer overflow)",
            lost_events.clone(),
        );
        let reconnects = Counter::default();
        registry.register("agentgraph_hubble_reconnects", "Reconnections to the Hubble server", reconnects.clone());
        let open_requests = Gauge::default();
        registry.register("agentgraph_open_requests", "Requests being assembled", open_requests.clone());
        let open_calls = Gauge::default();
        registry.register("agentgraph_open_calls", "Calls held while their requests are assembled", open_calls.clone());
        // /readyz says the same; as a metric it can be alerted on (a quiet cluster also sends
        // no flows, so the flow rate cannot tell a lost connection).
        let connected = Gauge::default();
        registry.register("agentgraph_hubble_connected", "1 while the Hubble stream is up, else 0", connected.clone());
        let requests_emitted_early = Counter::default();
        registry.register(
            "agentgraph_requests_emitted_early",
            "Requests emitted before they completed, at the open-call or request-size bound",
            requests_emitted_early.clone(),
        );
        let responses_without_request = Counter::default();
        registry.register(
            "agentgraph_responses_without_request",
            "Responses whose request was never seen (before the stream began, or lost)",
            responses_without_request.clone(),
        );
        let requests_expired = Counter::default();
        registry.register(
            "agentgraph_requests_expired",
            "Calls closed without a response (expired after the response timeout, or open at shutdown)",
            requests_expired.clone(),
        );
        let records_late = Counter::default();
        registry.register(
            "agentgraph_records_late",
            "HTTP records that arrived later than the reorder window (their requests may be split or wrongly parented)",
            records_late.clone(),
        );
        let series_dropped = Family::<FamilyLabels, Counter>::default();
        registry.register(
            "agentgraph_metric_series_dropped",
            "Observations of new label sets folded into __overflow__ because a family was full",
            series_dropped.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        registry.register("agentgraph_build_info", "Build information", build);
        // Self-telemetry series exist from the start, at zero.
        let _ = flows_received.get_or_create(&SourceLabels { source: "hubble".into() });
        let _ = lost_events.get_or_create(&SourceLabels { source: "hubble".into() });
        let metrics = Metrics {
            config,
            registry,
            calls,
            call_duration,
            call_request_bytes,
            call_response_bytes,
            requests,
            request_duration,
            request_calls,
            request_depth,
            request_fan_out,
            request_concurrent_fan_out,
            request_context_bytes,
            agent_fan_out,
            agent_concurrent_fan_out,
            agent_self,
            agent_pods,
            sg_total,
            sg_failed,
            sg_server,
            sg_client,
            flows_received,
            flows_discarded,
            lost_events,
            reconnects,
            open_requests,
            open_calls,
            connected,
            requests_expired,
            records_late,
            requests_emitted_early,
            responses_without_request,
            series_dropped,
            last: Mutex::new(SelfTelemetry::default()),
            pods: Mutex::new(HashMap::new()),
        };
        // One zero series per capped family, so the family is on /metrics (and alerts on it
        // have data) before anything is dropped.
        for family in metrics.capped() {
            let _ = metrics.series_dropped.get_or_create(&FamilyLabels { family: family.name().into() });
        }
        metrics
    }

    /// Every family with a series cap.
    fn capped(&self) -> [&dyn CappedFamily; 19] {
        [
            &self.calls,
            &self.call_duration,
            &self.call_request_bytes,
            &self.call_response_bytes,
            &self.requests,
            &self.request_duration,
            &self.request_calls,
            &self.request_depth,
            &self.request_fan_out,
            &self.request_concurrent_fan_out,
            &self.request_context_bytes,
            &self.agent_fan_out,
            &self.agent_concurrent_fan_out,
            &self.agent_self,
            &self.agent_pods,
            &self.sg_total,
            &self.sg_failed,
            &self.sg_server,
            &self.sg_client,
        ]
    }

    /// Records one completed request graph.
    pub fn observe(&self, g: &RequestGraph) {
        let cap = self.config.max_series;
        let dropped = &self.series_dropped;
        let exemplar = || Some(TraceExemplar { trace_id: g.id.clone() });
        let now = Instant::now();
        for (i, c) in g.calls.iter().enumerate() {
            let edge = EdgeLabels { client: c.client.to_string(), server: c.server.to_string() };
            let status_class = match c.status {
                None => "none".to_string(),
                Some(s) => format!("{}xx", s / 100),
            };
            self.calls.with(
                EdgeStatusLabels { client: edge.client.clone(), server: edge.server.clone(), status_class },
                now,
                cap,
                dropped,
                |m| {
                    m.inc();
                },
            );
            if let Some(d) = c.duration {
                self.call_duration
                    .with(edge.clone(), now, cap, dropped, |m| m.observe(d as f64 / 1e9, exemplar(), None));
            }
            if let Some(b) = c.request_bytes {
                self.call_request_bytes.with(edge.clone(), now, cap, dropped, |m| m.observe(b as f64));
            }
            if let Some(b) = c.response_bytes {
                self.call_response_bytes.with(edge.clone(), now, cap, dropped, |m| m.observe(b as f64));
            }
            let sg = ServiceGraphLabels {
                client: edge.client.clone(),
                server: edge.server.clone(),
                connection_type: String::new(),
            };
            self.sg_total.with(sg.clone(), now, cap, dropped, |m| {
                m.inc();
            });
            if c.is_error() {
                self.sg_failed.with(sg.clone(), now, cap, dropped, |m| {
                    m.inc();
                });
            }
            if let Some(d) = c.duration {
                self.sg_client.with(sg.clone(), now, cap, dropped, |m| m.observe(d as f64 / 1e9));
            }
            if let Some(s) = c.served.or_else(|| c.made()) {
                self.sg_server.with(sg, now, cap, dropped, |m| m.observe(s.duration() as f64 / 1e9));
            }
            let agent = AgentLabels { agent: c.server.to_string() };
            let f = &g.figures[i];
            self.agent_fan_out.with(agent.clone(), now, cap, dropped, |m| m.observe(f.fan_out as f64));
            self.agent_concurrent_fan_out
                .with(agent.clone(), now, cap, dropped, |m| m.observe(f.fan_out_concurrent as f64));
            if let Some(s) = f.self_time {
                self.agent_self.with(agent, now, cap, dropped, |m| m.observe(s as f64 / 1e9));
            }
            self.saw_pod(&c.server, &c.server_pod, now);
            self.saw_pod(&c.client, &c.client_pod, now);
        }
        let root = RootLabels { root: g.calls[g.root].server.to_string() };
        let st = &g.stats;
        self.requests.with(root.clone(), now, cap, dropped, |m| {
            m.inc();
        });
        self.request_duration
            .with(root.clone(), now, cap, dropped, |m| m.observe(g.duration() as f64 / 1e9, exemplar(), None));
        self.request_calls.with(root.clone(), now, cap, dropped, |m| m.observe(st.calls as f64));
        self.request_depth.with(root.clone(), now, cap, dropped, |m| m.observe(st.depth as f64));
        self.request_fan_out.with(root.clone(), now, cap, dropped, |m| m.observe(st.fan_out_max as f64));
        self.request_concurrent_fan_out
            .with(root.clone(), now, cap, dropped, |m| m.observe(st.fan_out_concurrent_max as f64));
        self.request_context_bytes.with(root, now, cap, dropped, |m| m.observe(st.context_bytes as f64));
    }

    fn saw_pod(&self, agent: &str, pod: &str, now: Instant) {
        if pod.is_empty() {
            return;
        }
        let count = {
            let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
            // Looked up before anything is allocated: nearly every call names a known pod.
            if !pods.contains_key(agent) {
                if pods.len() >= self.config.max_series {
                    return;
                }
                pods.insert(agent.to_string(), HashMap::new());
            }
            let seen = pods.get_mut(agent).expect("just made");
            let room = seen.len() < 10_000;
            match seen.get_mut(pod) {
                Some(t) => *t = now,
                None if room => {
                    seen.insert(pod.to_string(), now);
                }
                None => {}
            }
            seen.len() as i64
        };
        self.agent_pods.with(
            AgentLabels { agent: agent.to_string() },
            now,
            self.config.max_series,
            &self.series_dropped,
            |g| {
                g.set(count);
            },
        );
    }

    /// Copies the collector's counters in (call before encoding).
    pub fn update_self(&self, t: &SelfTelemetry) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        self.flows_received
            .get_or_create(&SourceLabels { source: "hubble".into() })
            .inc_by(delta(t.flows_received, last.flows_received));
        for (reason, n) in &t.flows_discarded {
            let before = last.flows_discarded.iter().find(|(r, _)| r == reason).map_or(0, |(_, v)| *v);
            self.flows_discarded.get_or_create(&ReasonLabels { reason: (*reason).into() }).inc_by(delta(*n, before));
        }
        self.lost_events
            .get_or_create(&SourceLabels { source: "hubble".into() })
            .inc_by(delta(t.lost_events, last.lost_events));
        self.reconnects.inc_by(delta(t.reconnects, last.reconnects));
        self.requests_expired.inc_by(delta(t.requests_expired, last.requests_expired));
        self.records_late.inc_by(delta(t.records_late, last.records_late));
        self.open_requests.set(t.open_requests);
        self.open_calls.set(t.open_calls);
        self.connected.set(i64::from(t.connected));
        self.requests_emitted_early.inc_by(delta(t.requests_emitted_early, last.requests_emitted_early));
        self.responses_without_request.inc_by(delta(t.responses_without_request, last.responses_without_request));
        *last = t.clone();
    }

    /// Removes idle series and refreshes the pod gauges; call periodically.
    pub fn maintain(&self) -> usize {
        let ttl = self.config.series_ttl;
        // Agents' pod counts are rewritten below from the pods seen; an agent gone quiet for
        // the TTL loses its series like any other.
        let mut removed: usize = self.capped().iter().map(|f| f.expire(ttl)).sum();
        let window = self.config.pod_window;
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        for seen in pods.values_mut() {
            seen.retain(|_, t| t.elapsed() <= window);
        }
        pods.retain(|_, seen| !seen.is_empty());
        let counts: Vec<(String, i64)> = pods.iter().map(|(a, s)| (a.clone(), s.len() as i64)).collect();
        drop(pods);
        let cap = self.config.max_series;
        let now = Instant::now();
        for (agent, n) in counts {
            self.agent_pods.with(AgentLabels { agent }, now, cap, &self.series_dropped, |g| {
                g.set(n);
            });
        }
        removed += self.agent_pods.expire(ttl.min(window));
        removed
    }

    /// The OpenMetrics text of every family (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 << 10);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use agentgraph_core::graph::{CallRecord, Correlation};
    use std::sync::Arc;

    fn graph(id: &str, client: &str, server: &str) -> RequestGraph {
        let call = CallRecord {
            parent: None,
            client: Arc::from(client),
            server: Arc::from(server),
            client_pod: Arc::from(format!("{client}-pod")),
            server_pod: Arc::from(format!("{server}-pod")),
            method: Arc::from("POST"),
            path: Arc::from("/x"),
            status: Some(200),
            start: 0,
            duration: Some(1_500_000_000),
            request_bytes: Some(5000),
            response_bytes: Some(100),
            confidence: 1.0,
            trace_id: None,
            request_id: None,
            observed_both_sides: false,
            served: None,
            answered_at: Some(1_500_000_000),
        };
        RequestGraph::new(id.into(), Correlation::Inferred, vec![call])
    }

    #[test]
    fn families_exemplars_and_eof() {
        let m = Metrics::new(MetricsConfig::default());
        m.observe(&graph("abc", "ns/a", "ns/b"));
        m.update_self(&SelfTelemetry {
            flows_received: 10,
            reconnects: 2,
            connected: true,
            open_calls: 7,
            requests_emitted_early: 3,
            responses_without_request: 4,
            ..Default::default()
        });
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for family in [
            "agentgraph_calls_total{client=\"ns/a\",server=\"ns/b\",status_class=\"2xx\"} 1",
            "agentgraph_call_duration_seconds_bucket{le=\"2.0\",client=\"ns/a\",server=\"ns/b\"} 1 # {trace_id=\"abc\"} 1.5",
            "agentgraph_requests_total{root=\"ns/b\"} 1",
            "traces_service_graph_request_total{client=\"ns/a\",server=\"ns/b\",connection_type=\"\"} 1",
            "agentgraph_hubble_reconnects_total 2",
            "agentgraph_flows_received_total{source=\"hubble\"} 10",
            "agentgraph_hubble_connected 1",
            "agentgraph_open_calls 7",
            "agentgraph_requests_emitted_early_total 3",
            "agentgraph_responses_without_request_total 4",
            "agentgraph_build_info{version=",
        ] {
            assert!(text.contains(family), "missing {family} in\n{text}");
        }
    }

    #[test]
    fn cardinality_cap_folds_into_overflow_and_counts() {
        let m = Metrics::new(MetricsConfig { max_series: 3, ..MetricsConfig::default() });
        for i in 0..10 {
            m.observe(&graph(&format!("r{i}"), "ns/a", &format!("ns/b{i}")));
        }
        let text = m.encode();
        let edges = text.lines().filter(|l| l.starts_with("agentgraph_calls_total{")).count();
        assert_eq!(edges, 4, "3 series and the overflow:\n{text}");
        assert!(text.contains(
            "agentgraph_calls_total{client=\"__overflow__\",server=\"__overflow__\",status_class=\"__overflow__\"} 7"
        ));
        assert!(text.contains("agentgraph_metric_series_dropped_total{family=\"agentgraph_calls\"} 7"), "{text}");
        // Families with a unit are named as exported, so the counter joins with their series.
        assert!(
            text.contains("agentgraph_metric_series_dropped_total{family=\"agentgraph_call_duration_seconds\"}"),
            "{text}"
        );
    }

    #[test]
    fn idle_series_expire() {
        let m = Metrics::new(MetricsConfig { series_ttl: Duration::from_millis(0), ..MetricsConfig::default() });
        m.observe(&graph("r", "ns/a", "ns/b"));
        assert!(m.encode().contains("agentgraph_calls_total{client=\"ns/a\""));
        std::thread::sleep(Duration::from_millis(5));
        assert!(m.maintain() > 0);
        assert!(!m.encode().contains("agentgraph_calls_total{client=\"ns/a\""));
    }

    #[test]
    fn self_telemetry_counts_only_go_up_by_the_difference() {
        let m = Metrics::new(MetricsConfig::default());
        m.update_self(&SelfTelemetry { flows_received: 5, ..Default::default() });
        m.update_self(&SelfTelemetry { flows_received: 12, ..Default::default() });
        assert!(m.encode().contains("agentgraph_flows_received_total{source=\"hubble\"} 12"));
    }
}
