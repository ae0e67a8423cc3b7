//! The replay server: serves recorded or simulated dumps through Hubble's own gRPC Observer API
//! (`GetFlows`, `ServerStatus`, `GetNodes`), at recorded pace scaled by a speed factor or as
//! fast as the client reads, so collectors and Hubble clients can be exercised without a cluster.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgraph_proto::convert::{nanos, response_from_event, timestamp, verdict};
use agentgraph_proto::flow::FlowFilter;
use agentgraph_proto::observer::observer_server::Observer;
use agentgraph_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest,
    GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest, GetNodesResponse, Node,
    ServerStatusRequest, ServerStatusResponse,
};
use agentgraph_proto::view::{Event, FlowView, L4Protocol, TrafficDirection};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::dump::{DumpReader, IngestError};

/// What the replay server serves and how fast.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub files: Vec<String>,
    /// Playback speed relative to the recording (2.0 = twice as fast); `None` = as fast as the
    /// client reads.
    pub speed: Option<f64>,
    /// Start over at the end, shifting times forward so they keep increasing.
    pub looped: bool,
}

/// The Observer service over dump files.
#[derive(Debug)]
pub struct ReplayServer {
    config: Arc<ReplayConfig>,
    nodes: Vec<String>,
    flows: u64,
    /// What reading the dumps found (skipped lines, read errors), for the operator.
    read: crate::dump::ReadStats,
    span_ns: i64,
    started: Instant,
}

impl ReplayServer {
    /// Opens the dumps once to check them and learn their nodes, flow count and time span.
    pub fn new(config: ReplayConfig) -> Result<Self, IngestError> {
        let mut reader = DumpReader::open(&config.files)?;
        let mut nodes = BTreeSet::new();
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        reader.run(|ev, _| {
            if let Event::Flow(f) = ev {
                nodes.insert(f.node_name.value().into_owned());
                first = first.min(f.time_ns);
                last = last.max(f.time_ns);
            }
        });
        let flows = reader.stats().flows;
        Ok(ReplayServer {
            config: Arc::new(config),
            nodes: nodes.into_iter().collect(),
            flows,
            read: reader.stats().clone(),
            span_ns: if flows > 0 { last - first } else { 0 },
            started: Instant::now(),
        })
    }

    pub fn flows(&self) -> u64 {
        self.flows
    }

    /// What reading the dumps found: lines skipped (with examples) and read errors.
    pub fn read_stats(&self) -> &crate::dump::ReadStats {
        &self.read
    }
}

/// Whether `f` passes the request's filters (any whitelist filter, and no blacklist filter).
fn admitted(f: &FlowView<'_>, whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> bool {
    (whitelist.is_empty() || whitelist.iter().any(|w| matches(w, f))) && !blacklist.iter().any(|b| matches(b, f))
}

/// Checks that a filter sets only fields the replay server can evaluate.
fn supported(filter: &FlowFilter) -> Result<(), String> {
    let unsupported: [(&str, bool); 12] = [
        ("uuid", !filter.uuid.is_empty()),
        ("source_label", !filter.source_label.is_empty()),
        ("destination_label", !filter.destination_label.is_empty()),
        ("source_service", !filter.source_service.is_empty()),
        ("destination_service", !filter.destination_service.is_empty()),
        ("source_fqdn", !filter.source_fqdn.is_empty()),
        ("destination_fqdn", !filter.destination_fqdn.is_empty()),
        ("http_path", !filter.http_path.is_empty()),
        ("http_url", !filter.http_url.is_empty()),
        ("dns_query", !filter.dns_query.is_empty()),
        ("tcp_flags", !filter.tcp_flags.is_empty()),
        ("experimental", filter.experimental.is_some()),
    ];
    match unsupported.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(format!("filter field `{name}` is not supported by the agentgraph replay server")),
        None => Ok(()),
    }
}

/// `namespace/pod-prefix` as the Hubble CLI sends it (`"kube-system/"`, `"/xwing"`).
fn pod_matches(patterns: &[String], namespace: &str, pod: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.split_once('/') {
            Some((ns, prefix)) => (ns.is_empty() || ns == namespace) && pod.starts_with(prefix),
            None => pod.starts_with(p.as_str()),
        })
}

/// A glob with `*` wildcards (node names).
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn matches(filter: &FlowFilter, f: &FlowView<'_>) -> bool {
    let any = |values: &[String], actual: &str| values.is_empty() || values.iter().any(|v| v == actual);
    let verdict_number = verdict(f.verdict);
    let http = f.l7.and_then(|l| l.http);
    let protocol_ok = filter.protocol.is_empty()
        || filter.protocol.iter().any(|p| match p.to_ascii_lowercase().as_str() {
            "tcp" => f.l4 == L4Protocol::Tcp,
            "udp" => f.l4 == L4Protocol::Udp,
            "sctp" => f.l4 == L4Protocol::Sctp,
            "icmp" | "icmpv4" | "icmpv6" => f.l4 == L4Protocol::Icmp,
            "http" => http.is_some(),
            "dns" => f.l7.is_some_and(|l| l.is_dns),
            _ => false,
        });
    let direction = match f.traffic_direction {
        TrafficDirection::Ingress => 1,
        TrafficDirection::Egress => 2,
        TrafficDirection::Unknown => 0,
    };
    any(&filter.source_ip, &f.ip_source.value())
        && any(&filter.destination_ip, &f.ip_destination.value())
        && pod_matches(&filter.source_pod, &f.source.namespace.value(), &f.source.pod_name.value())
        && pod_matches(&filter.destination_pod, &f.destination.namespace.value(), &f.destination.pod_name.value())
        && (filter.verdict.is_empty() || filter.verdict.contains(&verdict_number))
        && protocol_ok
        && (filter.node_name.is_empty() || filter.node_name.iter().any(|g| glob(g, &f.node_name.value())))
        && (filter.traffic_direction.is_empty() || filter.traffic_direction.contains(&direction))
        && (filter.reply.is_empty() || filter.reply.contains(&f.is_reply.unwrap_or(false)))
        && any(&filter.trace_id, &f.trace_id.value())
        && (filter.http_method.is_empty() || http.is_some_and(|h| any(&filter.http_method, &h.method.value())))
        && (filter.http_status_code.is_empty()
            || http.is_some_and(|h| filter.http_status_code.iter().any(|c| code_matches(c, h.code))))
        && (filter.source_port.is_empty() || filter.source_port.contains(&f.source_port.to_string()))
        && (filter.destination_port.is_empty() || filter.destination_port.contains(&f.destination_port.to_string()))
        && (filter.event_type.is_empty() || filter.event_type.iter().any(|e| e.r#type == event_type(f)))
        && (filter.source_identity.is_empty() || filter.source_identity.contains(&f.source.identity))
        && (filter.destination_identity.is_empty() || filter.destination_identity.contains(&f.destination.identity))
}

fn event_type(f: &FlowView<'_>) -> i32 {
    if f.l7.is_some() { 129 } else { 4 }
}

/// `"404"` or a class prefix such as `"5+"`.
fn code_matches(pattern: &str, code: u32) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => code.to_string().starts_with(prefix),
        None => pattern == code.to_string(),
    }
}

type FlowResult = Result<GetFlowsResponse, Status>;

#[tonic::async_trait]
impl Observer for ReplayServer {
    type GetFlowsStream = ReceiverStream<FlowResult>;

    async fn get_flows(&self, request: Request<GetFlowsRequest>) -> Result<Response<Self::GetFlowsStream>, Status> {
        let req = request.into_inner();
        if req.number > 0 && (req.since.is_some() || req.until.is_some()) {
            return Err(Status::invalid_argument("number cannot be combined with since/until"));
        }
        if req.first && req.follow {
            return Err(Status::invalid_argument("first cannot be combined with follow"));
        }
        for f in req.whitelist.iter().chain(&req.blacklist) {
            supported(f).map_err(Status::invalid_argument)?;
        }
        let (tx, rx) = mpsc::channel::<FlowResult>(1024);
        let config = self.config.clone();
        let span = self.span_ns;
        // Reading and decoding is synchronous: a blocking task per stream.
        tokio::task::spawn_blocking(move || stream_flows(&config, span, &req, &tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_agent_events(
        &self,
        _request: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Err(Status::unimplemented("GetAgentEvents is not served by the agentgraph replay server"))
    }

    type GetAgentEventsStream = ReceiverStream<Result<GetAgentEventsResponse, Status>>;

    async fn get_debug_events(
        &self,
        _request: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented("GetDebugEvents is not served by the agentgraph replay server"))
    }

    type GetDebugEventsStream = ReceiverStream<Result<GetDebugEventsResponse, Status>>;

    async fn get_nodes(&self, _request: Request<GetNodesRequest>) -> Result<Response<GetNodesResponse>, Status> {
        let uptime_ns = self.started.elapsed().as_nanos() as u64;
        Ok(Response::new(GetNodesResponse {
            nodes: self
                .nodes
                .iter()
                .map(|n| Node {
                    name: n.clone(),
                    version: concat!("agentgraph-replay/", env!("CARGO_PKG_VERSION")).into(),
                    address: String::new(),
                    state: 1,
                    tls: None,
                    uptime_ns,
                    num_flows: 0,
                    max_flows: 0,
                    seen_flows: 0,
                })
                .collect(),
        }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Err(Status::unimplemented("GetNamespaces is not served by the agentgraph replay server"))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(Response::new(ServerStatusResponse {
            num_flows: self.flows,
            max_flows: self.flows,
            seen_flows: self.flows,
            uptime_ns: self.started.elapsed().as_nanos() as u64,
            num_connected_nodes: Some(self.nodes.len() as u32),
            num_unavailable_nodes: Some(0),
            unavailable_nodes: Vec::new(),
            version: concat!("agentgraph-replay/", env!("CARGO_PKG_VERSION")).into(),
            flows_rate: 0.0,
        }))
    }
}

/// Streams the dumps to one client: filters, `since`/`until`, `number`/`first`, pacing and
/// looping; ends when the client goes away.
fn stream_flows(config: &ReplayConfig, span: i64, req: &GetFlowsRequest, tx: &mpsc::Sender<FlowResult>) {
    let since = req.since.as_ref().map(nanos);
    let until = if req.follow { None } else { req.until.as_ref().map(nanos) };
    let last_n = (req.number > 0 && !req.first).then_some(req.number as usize);
    let mut tail: VecDeque<GetFlowsResponse> = VecDeque::new();
    let mut sent: u64 = 0;
    let mut pace: Option<(Instant, i64)> = None;
    let mut shift: i64 = 0;
    loop {
        let Ok(mut reader) = DumpReader::open(&config.files) else {
            let _ = tx.blocking_send(Err(Status::unavailable("cannot read the dump files")));
            return;
        };
        let mut alive = true;
        reader.run_while(|ev, _| {
            let Some(mut resp) = response_from_event(ev) else { return true };
            let time = match ev {
                Event::Flow(f) => {
                    if !admitted(f, &req.whitelist, &req.blacklist) {
                        return true;
                    }
                    f.time_ns + shift
                }
                Event::LostEvents { time_ns, .. } => time_ns.unwrap_or(0) + shift,
                _ => return true,
            };
            if shift != 0 {
                shift_times(&mut resp, shift);
            }
            if since.is_some_and(|s| time < s) {
                return true;
            }
            if until.is_some_and(|u| time > u) {
                alive = false;
                return false;
            }
            if let Some(n) = last_n {
                tail.push_back(resp);
                if tail.len() > n {
                    tail.pop_front();
                }
                return true;
            }
            if let Some(speed) = config.speed {
                let (wall0, t0) = *pace.get_or_insert((Instant::now(), time));
                let due = wall0 + Duration::from_nanos(((time - t0).max(0) as f64 / speed) as u64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            if tx.blocking_send(Ok(resp)).is_err() {
                alive = false;
                return false;
            }
            sent += 1;
            !(req.first && req.number > 0 && sent >= req.number)
        });
        if !alive || (req.first && req.number > 0 && sent >= req.number) {
            return;
        }
        if last_n.is_some() {
            for resp in tail.drain(..) {
                if tx.blocking_send(Ok(resp)).is_err() {
                    return;
                }
            }
            if !req.follow {
                return;
            }
        }
        if config.looped {
            shift += span + 1_000_000_000;
            continue;
        }
        if !req.follow {
            return;
        }
        // Following a finished recording: hold the stream open like an idle live server.
        while !tx.is_closed() {
            std::thread::sleep(Duration::from_millis(100));
        }
        return;
    }
}

fn shift_times(resp: &mut GetFlowsResponse, shift: i64) {
    let add = |t: &mut Option<prost_types::Timestamp>| {
        if let Some(ts) = t.as_mut() {
            *ts = timestamp(nanos(ts) + shift);
        }
    };
    add(&mut resp.time);
    if let Some(agentgraph_proto::observer::get_flows_response::ResponseTypes::Flow(f)) = resp.response_types.as_mut() {
        add(&mut f.time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_pods() {
        assert!(glob("kind-*", "kind-worker2"));
        assert!(glob("*worker*", "kind-worker2"));
        assert!(!glob("kind-*", "gke-1"));
        assert!(glob("n1", "n1"));
        assert!(pod_matches(&["kube-system/".into()], "kube-system", "coredns-1"));
        assert!(pod_matches(&["/xwing".into()], "default", "xwing"));
        assert!(!pod_matches(&["default/".into()], "kube-system", "coredns-1"));
        assert!(code_matches("5+", 503));
        assert!(!code_matches("404", 503));
    }
}
