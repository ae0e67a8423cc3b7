//! The analysis report of the `agentgraph.analysis/v1` contract: boundary types that serialize
//! exactly to the contract's JSON, and the aggregation of request graphs into per-edge and
//! per-agent statistics with bounded memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::Nanos;
use crate::graph::RequestGraph;
use crate::sketch::Sketch;

pub const SCHEMA: &str = "agentgraph.analysis/v1";

fn ms(n: Nanos) -> f64 {
    n as f64 / 1e6
}

/// An event time, serialized as RFC 3339 with nine fraction digits (formatted on the stack:
/// every call has one, and a `String` each was most of the cost of writing a report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub Nanos);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = agentgraph_proto::time::rfc3339_nanos_bytes(self.0);
        serializer.serialize_str(std::str::from_utf8(&bytes).expect("ASCII digits and separators"))
    }
}

/// A call's id within its request graph, serialized as `c<index>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRef(pub usize);

impl Serialize for CallRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(self.0);
        let mut text = [0u8; 21];
        text[0] = b'c';
        text[1..=digits.len()].copy_from_slice(digits.as_bytes());
        serializer.serialize_str(std::str::from_utf8(&text[..=digits.len()]).expect("ASCII"))
    }
}

/// `input` of the report.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct InputJson {
    pub lines: u64,
    pub flows: u64,
    pub skipped: u64,
    pub lost_events: u64,
    pub http_requests: u64,
    pub http_responses: u64,
    /// Added to the contract's fields: records dropped as a second copy of one flow (the same
    /// flow read twice).
    pub repeated_records: u64,
    /// Records that arrived later than the reorder window (their graphs may be wrong).
    pub late_records: u64,
    /// Records processed early because the reorder buffer was full.
    pub reorder_overflow: u64,
    /// Requests emitted early at the open-call or request-size limit (`max_open_calls`,
    /// `max_request_calls`).
    pub requests_emitted_early: u64,
    /// Responses that came after their call was given up as unanswered (slower than
    /// `response_timeout`) or emitted early: dropped, the call reported once, unanswered.
    pub late_responses: u64,
}

/// One call of a request graph, borrowing its strings from the graph (a report is written
/// once per request, and copies of its shared strings would each cost two atomic counts).
#[derive(Clone, Debug, Serialize)]
pub struct CallJson<'a> {
    pub id: CallRef,
    pub parent: Option<CallRef>,
    pub client: &'a str,
    pub server: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: Option<u16>,
    pub start: Timestamp,
    pub duration_ms: Option<f64>,
    pub request_bytes: Option<u64>,
    pub response_bytes: Option<u64>,
    pub confidence: f64,
}

/// `stats` of a request graph.
#[derive(Clone, Debug, Serialize)]
pub struct StatsJson {
    pub calls: usize,
    pub depth: usize,
    pub agents: usize,
    pub fan_out_max: usize,
    pub fan_out_concurrent_max: usize,
    pub context_bytes: u64,
    pub critical_path_ms: f64,
}

/// One request graph, as in `requests[]`, the `ndjson` lines and the web API.
#[derive(Clone, Debug, Serialize)]
pub struct RequestJson<'a> {
    pub id: &'a str,
    pub correlation: &'static str,
    pub root: &'a str,
    pub start: Timestamp,
    pub duration_ms: f64,
    pub calls: Vec<CallJson<'a>>,
    pub stats: StatsJson,
}

impl<'a> From<&'a RequestGraph> for RequestJson<'a> {
    fn from(g: &'a RequestGraph) -> Self {
        let calls = g
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| CallJson {
                id: CallRef(i),
                parent: c.parent.map(CallRef),
                client: &c.client,
                server: &c.server,
                method: &c.method,
                path: &c.path,
                status: c.status,
                start: Timestamp(c.start),
                duration_ms: c.duration.map(ms),
                request_bytes: c.request_bytes,
                response_bytes: c.response_bytes,
                confidence: (c.confidence * 1000.0).round() / 1000.0,
            })
            .collect();
        RequestJson {
            id: &g.id,
            correlation: g.correlation.as_str(),
            root: &g.calls[g.root].server,
            start: Timestamp(g.start),
            duration_ms: ms(g.duration()),
            calls,
            stats: StatsJson {
                calls: g.stats.calls,
                depth: g.stats.depth,
                agents: g.stats.agents,
                fan_out_max: g.stats.fan_out_max,
                fan_out_concurrent_max: g.stats.fan_out_concurrent_max,
                context_bytes: g.stats.context_bytes,
                critical_path_ms: ms(g.stats.critical_path),
            },
        }
    }
}

impl RequestJson<'_> {
    /// Appends the request as compact JSON, byte for byte what `serde_json::to_writer` writes for
    /// it (a test checks), at about a third of the cost: keys are written as they are instead of
    /// being escaped at run time, and strings that need no escaping are copied whole. Reports
    /// and the collector's output write every request this way.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        json_str(out, self.id);
        out.extend_from_slice(b",\"correlation\":");
        json_str(out, self.correlation);
        out.extend_from_slice(b",\"root\":");
        json_str(out, self.root);
        out.extend_from_slice(b",\"start\":");
        json_time(out, self.start);
        out.extend_from_slice(b",\"duration_ms\":");
        json_f64(out, self.duration_ms);
        out.extend_from_slice(b",\"calls\":[");
        for (i, c) in self.calls.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            c.write_json(out);
        }
        let s = &self.stats;
        out.extend_from_slice(b"],\"stats\":{\"calls\":");
        json_uint(out, s.calls as u64);
        out.extend_from_slice(b",\"depth\":");
        json_uint(out, s.depth as u64);
        out.extend_from_slice(b",\"agents\":");
        json_uint(out, s.agents as u64);
        out.extend_from_slice(b",\"fan_out_max\":");
        json_uint(out, s.fan_out_max as u64);
        out.extend_from_slice(b",\"fan_out_concurrent_max\":");
        json_uint(out, s.fan_out_concurrent_max as u64);
        out.extend_from_slice(b",\"context_bytes\":");
        json_uint(out, s.context_bytes);
        out.extend_from_slice(b",\"critical_path_ms\":");
        json_f64(out, s.critical_path_ms);
        out.extend_from_slice(b"}}");
    }
}

impl CallJson<'_> {
    /// See [`RequestJson::write_json`].
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        json_call_ref(out, self.id);
        out.extend_from_slice(b",\"parent\":");
        json_opt(out, self.parent, json_call_ref);
        out.extend_from_slice(b",\"client\":");
        json_str(out, self.client);
        out.extend_from_slice(b",\"server\":");
        json_str(out, self.server);
        out.extend_from_slice(b",\"method\":");
        json_str(out, self.method);
        out.extend_from_slice(b",\"path\":");
        json_str(out, self.path);
        out.extend_from_slice(b",\"status\":");
        json_opt(out, self.status.map(u64::from), json_uint);
        out.extend_from_slice(b",\"start\":");
        json_time(out, self.start);
        out.extend_from_slice(b",\"duration_ms\":");
        json_opt(out, self.duration_ms, json_f64);
        out.extend_from_slice(b",\"request_bytes\":");
        json_opt(out, self.request_bytes, json_uint);
        out.extend_from_slice(b",\"response_bytes\":");
        json_opt(out, self.response_bytes, json_uint);
        out.extend_from_slice(b",\"confidence\":");
        json_f64(out, self.confidence);
        out.push(b'}');
    }
}

/// A JSON string: copied whole when nothing in it needs escaping, else escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

/// A float as serde_json writes it (its shortest round-trip form; `null` when not finite).
fn json_f64(out: &mut Vec<u8>, v: f64) {
    serde_json::to_writer(&mut *out, &v).expect("writing to a Vec cannot fail");
}

fn json_uint(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// An optional value: written by `write`, or `null` when absent.
fn json_opt<T>(out: &mut Vec<u8>, v: Option<T>, write: fn(&mut Vec<u8>, T)) {
    match v {
        Some(v) => write(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn json_time(out: &mut Vec<u8>, t: Timestamp) {
    out.push(b'"');
    out.extend_from_slice(&agentgraph_proto::time::rfc3339_nanos_bytes(t.0));
    out.push(b'"');
}

fn json_call_ref(out: &mut Vec<u8>, r: CallRef) {
    out.extend_from_slice(b"\"c");
    out.extend_from_slice(itoa::Buffer::new().format(r.0).as_bytes());
    out.push(b'"');
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencyJson {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BytesJson {
    pub p50: u64,
    pub p95: u64,
    pub max: u64,
}

/// One element of `edges[]`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EdgeJson {
    pub client: Arc<str>,
    pub server: Arc<str>,
    pub calls: u64,
    /// Calls with a known latency / request size (the percentiles are 0 when there are none).
    #[serde(skip)]
    pub latency_samples: u64,
    #[serde(skip)]
    pub size_samples: u64,
    pub errors: u64,
    pub latency_ms: LatencyJson,
    pub request_bytes: BytesJson,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CountDistJson {
    pub p50: u64,
    pub max: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TimeDistJson {
    pub p50: f64,
    pub p95: f64,
}

/// One element of `agents[]` (the agent as a server of calls).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AgentJson {
    pub agent: Arc<str>,
    pub calls_served: u64,
    pub fan_out: CountDistJson,
    pub fan_out_concurrent: CountDistJson,
    /// Calls with a known self time (answered calls); the percentiles are 0 when there are none.
    #[serde(skip)]
    pub self_time_samples: u64,
    pub self_time_ms: TimeDistJson,
}

#[derive(Debug, Default)]
struct EdgeAgg {
    calls: u64,
    errors: u64,
    latency_ms: Sketch,
    request_bytes: Sketch,
}

#[derive(Debug, Default)]
struct AgentAgg {
    calls_served: u64,
    fan_out: Sketch,
    fan_out_concurrent: Sketch,
    self_time_ms: Sketch,
}

/// Most distinct edges and agents aggregated; past it further ones are folded into one
/// `__overflow__` entry so memory stays bounded on any input.
pub const MAX_AGGREGATE_KEYS: usize = 10_000;
const OVERFLOW: &str = "__overflow__";

/// Aggregates request graphs into edge and agent statistics.
#[derive(Debug, Default)]
pub struct Aggregates {
    edges: BTreeMap<(Arc<str>, Arc<str>), EdgeAgg>,
    agents: BTreeMap<Arc<str>, AgentAgg>,
}

impl Aggregates {
    pub fn add(&mut self, g: &RequestGraph) {
        for (i, c) in g.calls.iter().enumerate() {
            let mut key = (c.client.clone(), c.server.clone());
            if !self.edges.contains_key(&key) && self.edges.len() >= MAX_AGGREGATE_KEYS {
                key = (Arc::from(OVERFLOW), Arc::from(OVERFLOW));
            }
            let e = self.edges.entry(key).or_default();
            e.calls += 1;
            if c.is_error() {
                e.errors += 1;
            }
            if let Some(d) = c.duration {
                e.latency_ms.add(ms(d));
            }
            if let Some(b) = c.request_bytes {
                e.request_bytes.add(b as f64);
            }
            let mut agent = c.server.clone();
            if !self.agents.contains_key(&agent) && self.agents.len() >= MAX_AGGREGATE_KEYS {
                agent = Arc::from(OVERFLOW);
            }
            let a = self.agents.entry(agent).or_default();
            let f = &g.figures[i];
            a.calls_served += 1;
            a.fan_out.add(f.fan_out as f64);
            a.fan_out_concurrent.add(f.fan_out_concurrent as f64);
            if let Some(s) = f.self_time {
                a.self_time_ms.add(ms(s));
            }
        }
    }

    /// `edges[]`, ordered by client then server.
    pub fn edges(&self) -> Vec<EdgeJson> {
        self.edges
            .iter()
            .map(|((client, server), e)| EdgeJson {
                client: client.clone(),
                server: server.clone(),
                calls: e.calls,
                latency_samples: e.latency_ms.count(),
                size_samples: e.request_bytes.count(),
                errors: e.errors,
                latency_ms: LatencyJson {
                    p50: round3(e.latency_ms.quantile(0.5)),
                    p95: round3(e.latency_ms.quantile(0.95)),
                    p99: round3(e.latency_ms.quantile(0.99)),
                    max: round3(e.latency_ms.max()),
                },
                request_bytes: BytesJson {
                    p50: e.request_bytes.quantile(0.5).round() as u64,
                    p95: e.request_bytes.quantile(0.95).round() as u64,
                    max: e.request_bytes.max().round() as u64,
                },
            })
            .collect()
    }

    /// `agents[]`, ordered by name.
    pub fn agents(&self) -> Vec<AgentJson> {
        self.agents
            .iter()
            .map(|(agent, a)| AgentJson {
                agent: agent.clone(),
                calls_served: a.calls_served,
                // Rounded, not truncated: past the exact samples a count of 1 comes back as 0.99.
                fan_out: CountDistJson { p50: a.fan_out.quantile(0.5).round() as u64, max: a.fan_out.max() as u64 },
                fan_out_concurrent: CountDistJson {
                    p50: a.fan_out_concurrent.quantile(0.5).round() as u64,
                    max: a.fan_out_concurrent.max() as u64,
                },
                self_time_samples: a.self_time_ms.count(),
                self_time_ms: TimeDistJson {
                    p50: round3(a.self_time_ms.quantile(0.5)),
                    p95: round3(a.self_time_ms.quantile(0.95)),
                },
            })
            .collect()
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Keeps the `k` largest request graphs by some measure (bounded memory for "top requests").
#[derive(Debug)]
pub struct TopK {
    k: usize,
    items: Vec<(i64, Nanos, RequestGraph)>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK { k, items: Vec::new() }
    }

    pub fn offer(&mut self, score: i64, g: &RequestGraph) {
        if self.k == 0 {
            return;
        }
        if self.items.len() == self.k {
            let worst = self.items.iter().map(|(s, t, _)| (*s, std::cmp::Reverse(*t))).min().expect("non-empty");
            if (score, std::cmp::Reverse(g.start)) <= worst {
                return;
            }
            let pos = self.items.iter().position(|(s, t, _)| (*s, std::cmp::Reverse(*t)) == worst).expect("present");
            self.items.swap_remove(pos);
        }
        self.items.push((score, g.start, g.clone()));
    }

    /// Largest first; ties by earlier start.
    pub fn sorted(&self) -> Vec<&RequestGraph> {
        let mut v: Vec<&(i64, Nanos, RequestGraph)> = self.items.iter().collect();
        v.sort_by_key(|(s, t, _)| (std::cmp::Reverse(*s), *t));
        v.into_iter().map(|(_, _, g)| g).collect()
    }
}

/// Releases completed request graphs in start order: a graph is held until no request that
/// started earlier is still being assembled, so memory is bounded by the open requests.
#[derive(Debug, Default)]
pub struct StartOrder {
    held: std::collections::BinaryHeap<std::cmp::Reverse<Held>>,
    seq: u64,
}

#[derive(Debug)]
struct Held(Nanos, u64, RequestGraph);

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, &self.2.id, self.1).cmp(&(o.0, &o.2.id, o.1))
    }
}

impl StartOrder {
    pub fn push(&mut self, g: RequestGraph) {
        self.seq += 1;
        self.held.push(std::cmp::Reverse(Held(g.start, self.seq, g)));
    }

    /// Graphs that started before `oldest_open` (or all, when nothing is open), oldest first.
    pub fn release(&mut self, oldest_open: Option<Nanos>) -> Vec<RequestGraph> {
        let mut out = Vec::new();
        while let Some(std::cmp::Reverse(top)) = self.held.peek() {
            if oldest_open.is_some_and(|o| top.0 >= o) {
                break;
            }
            out.push(self.held.pop().expect("peeked").0.2);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: impl Serialize) -> String {
        serde_json::to_string(&value).expect("serializes")
    }

    #[test]
    fn call_ids_and_times_serialize_as_the_contract_writes_them() {
        assert_eq!(json(CallRef(0)), r#""c0""#);
        assert_eq!(json(CallRef(10)), r#""c10""#);
        assert_eq!(json(CallRef(usize::MAX)), format!(r#""c{}""#, usize::MAX));
        assert_eq!(json(Timestamp(0)), r#""1970-01-01T00:00:00.000000000Z""#);
        assert_eq!(json(Timestamp(-1)), r#""1969-12-31T23:59:59.999999999Z""#);
    }

    /// The hand-written writer gives serde_json's bytes exactly, escapes and odd numbers included.
    #[test]
    fn requests_are_written_exactly_as_serde_json_writes_them() {
        // Each special character alone in a string too: one would hide another's fallback.
        let strings = [
            "agents/orchestrator",
            "",
            "quote \" back \\ slash",
            "tab\tnew\nline\u{1}\u{1f}\u{7f}",
            "ünïcödé ✓",
            "/v1/chat?x=<y>&z",
            "a\u{1f}",
            "\u{0}",
            "\"",
            "\\",
            "a\u{7f} ~",
        ];
        let floats = [
            0.0,
            -0.0,
            1.0,
            0.001,
            1234.567891,
            1e-9,
            1e21,
            123456789012.5,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ];
        let mut calls = Vec::new();
        for (i, s) in strings.iter().enumerate() {
            calls.push(CallJson {
                id: CallRef(i),
                parent: (i > 0).then(|| CallRef(i - 1)),
                client: s,
                server: strings[(i + 1) % strings.len()],
                method: strings[(i + 2) % strings.len()],
                path: strings[(i + 3) % strings.len()],
                status: [None, Some(200), Some(0), Some(u16::MAX)][i % 4],
                start: Timestamp([0, -1, 1_764_064_800_123_456_789, i64::MAX, i64::MIN / 2][i % 5]),
                duration_ms: (i % 3 != 0).then(|| floats[i % floats.len()]),
                request_bytes: [None, Some(0), Some(u64::MAX)][i % 3],
                response_bytes: [Some(42), None][i % 2],
                confidence: floats[(i + 4) % floats.len()],
            });
        }
        for (k, f) in floats.iter().enumerate() {
            let request = RequestJson {
                id: strings[k % strings.len()],
                correlation: ["trace_context", "request_id", "inferred"][k % 3],
                root: strings[(k + 2) % strings.len()],
                start: Timestamp(k as i64 * 1_000_000_007),
                duration_ms: *f,
                calls: calls[..k % (calls.len() + 1)].to_vec(),
                stats: StatsJson {
                    calls: k,
                    depth: usize::MAX,
                    agents: 0,
                    fan_out_max: 3,
                    fan_out_concurrent_max: 2,
                    context_bytes: u64::MAX,
                    critical_path_ms: floats[(k + 1) % floats.len()],
                },
            };
            let mut written = Vec::new();
            request.write_json(&mut written);
            let expected = serde_json::to_vec(&request).expect("serializes");
            assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&expected));
        }
    }

    /// Past the sketch's exact samples a fan-out of 1 comes back as 0.99: the count is rounded.
    #[test]
    fn agent_fan_out_percentiles_round_past_the_exact_samples() {
        let mut aggregates = Aggregates::default();
        for i in 0..1500 {
            let kids = if i % 100 == 0 { 0 } else { 1 };
            let mut calls = vec![crate::graph::tests::call(None, 0, Some(100))];
            calls.extend((0..kids).map(|_| crate::graph::CallRecord {
                server: Arc::from("c"),
                ..crate::graph::tests::call(Some(0), 10, Some(20))
            }));
            aggregates.add(&RequestGraph::new(format!("r{i}"), crate::Correlation::Inferred, calls));
        }
        let server = aggregates.agents().into_iter().find(|a| &*a.agent == "b").expect("the parents' agent");
        assert_eq!((server.fan_out.p50, server.fan_out_concurrent.p50), (1, 1));
    }
}
