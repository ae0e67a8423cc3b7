//! `agentgraph collect` and `agentgraph replay`: the long-running collector (Hubble client →
//! engine → sinks, with health endpoints and graceful shutdown) and the replay server.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgraph_core::report::RequestJson;
use agentgraph_core::{Engine, EngineConfig, NormalizeConfig, RequestGraph};
use agentgraph_export::metrics::CONTENT_TYPE;
use agentgraph_export::{Metrics, MetricsConfig, SelfTelemetry};
use agentgraph_ingest::hubble::{self, ClientConfig, ClientTelemetry};
use agentgraph_ingest::replay::{ReplayConfig, ReplayServer};
use agentgraph_proto::convert::{nanos, response_from_event};
use agentgraph_proto::flow::{EventTypeFilter, FlowFilter};
use agentgraph_proto::observer::GetFlowsResponse;
use agentgraph_proto::observer::get_flows_response::ResponseTypes;
use agentgraph_proto::observer::observer_server::ObserverServer;
use agentgraph_proto::{Event, FlowView, decode_line};
use anyhow::{Context, Result, anyhow};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::cli::{CollectArgs, ReplayArgs, parse_duration};

/// The collector's configuration: defaults, then the `--config` file, then environment
/// variables and flags (flags win).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// Hubble server: `host:port` (plaintext) or `tls://host:port`.
    pub hubble_server: String,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    /// Address of `/healthz` and `/readyz`.
    pub listen: String,
    /// Where completed request graphs go, one JSON object per line (`-` = stdout).
    pub output: Option<String>,
    /// Rotate the output file past this size.
    pub output_max_bytes: u64,
    /// Rotated output files kept (`graphs.ndjson.1` ...).
    pub output_keep: usize,
    /// Recent request graphs kept in memory (for the web API).
    pub recent_requests: usize,
    /// Flows queued between the Hubble client and the engine.
    pub queue_capacity: usize,
    /// Only flows to or from these namespaces (empty = all).
    pub namespaces: Vec<String>,
    /// Ask Hubble for L7 flows only (the analyzer ignores the rest).
    pub l7_only: bool,
    /// Extra server-side filters in the Hubble CLI's raw form (`hubble observe
    /// --print-raw-filters`), e.g. `{"source_pod":["agents/"]}`: a flow must match one whitelist
    /// filter (combined with the namespace and L7 filters) and no blacklist filter.
    pub whitelist: Vec<String>,
    pub blacklist: Vec<String>,
    pub connect_timeout: String,
    pub reorder_window: String,
    pub response_timeout: String,
    pub linger: String,
    pub max_open_calls: usize,
    /// Most calls a request gathers under its trace or request id; past it the request is
    /// emitted early (counted).
    pub max_request_calls: usize,
    /// Most label sets per metric family; past it new series fold into `__overflow__`.
    pub metrics_max_series: usize,
    /// Metric series not updated for this long are removed.
    pub metrics_series_ttl: String,
    /// `text` or `json` logs.
    pub log_format: String,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            hubble_server: "localhost:4245".into(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
            listen: "0.0.0.0:9464".into(),
            output: None,
            output_max_bytes: 100 << 20,
            output_keep: 5,
            recent_requests: 1000,
            queue_capacity: 8_192,
            namespaces: Vec::new(),
            l7_only: true,
            whitelist: Vec::new(),
            blacklist: Vec::new(),
            connect_timeout: "5s".into(),
            reorder_window: "2s".into(),
            response_timeout: "60s".into(),
            linger: "2s".into(),
            max_open_calls: 200_000,
            max_request_calls: 10_000,
            metrics_max_series: 2_000,
            metrics_series_ttl: "1h".into(),
            log_format: "text".into(),
        }
    }
}

impl CollectConfig {
    fn load(args: &CollectArgs) -> Result<Self> {
        let mut c = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?
            }
            None => CollectConfig::default(),
        };
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = &args.$field {
                    c.$field = v.clone().into();
                }
            };
        }
        set!(hubble_server);
        set!(listen);
        set!(connect_timeout);
        set!(reorder_window);
        set!(response_timeout);
        set!(linger);
        set!(log_format);
        if args.tls_ca.is_some() {
            c.tls_ca = args.tls_ca.clone();
        }
        if args.tls_cert.is_some() {
            c.tls_cert = args.tls_cert.clone();
        }
        if args.tls_key.is_some() {
            c.tls_key = args.tls_key.clone();
        }
        if args.tls_server_name.is_some() {
            c.tls_server_name = args.tls_server_name.clone();
        }
        if args.output.is_some() {
            c.output = args.output.clone();
        }
        if let Some(n) = args.max_open_calls {
            c.max_open_calls = n;
        }
        if let Some(n) = args.max_request_calls {
            c.max_request_calls = n;
        }
        if !args.namespace.is_empty() {
            c.namespaces = args.namespace.clone();
        }
        if args.all_flows {
            c.l7_only = false;
        }
        if !args.whitelist.is_empty() {
            c.whitelist = args.whitelist.clone();
        }
        if !args.blacklist.is_empty() {
            c.blacklist = args.blacklist.clone();
        }
        for f in c.whitelist.iter().chain(&c.blacklist) {
            raw_filter(f)?;
        }
        if let Some(n) = args.metrics_max_series {
            c.metrics_max_series = n;
        }
        if let Some(t) = &args.metrics_series_ttl {
            c.metrics_series_ttl = t.clone();
        }
        // (key, value, whether zero cannot work)
        for (key, d, positive) in [
            ("connect_timeout", &c.connect_timeout, true),
            ("reorder_window", &c.reorder_window, false),
            ("response_timeout", &c.response_timeout, true),
            ("linger", &c.linger, false),
            ("metrics_series_ttl", &c.metrics_series_ttl, true),
        ] {
            let value = parse_duration(d).map_err(|e| anyhow!("{key}: {e}"))?;
            if positive && value == 0 {
                return Err(anyhow!("{key} must be longer than zero"));
            }
        }
        for (key, n) in [
            ("max_open_calls", c.max_open_calls as u64),
            ("max_request_calls", c.max_request_calls as u64),
            ("queue_capacity", c.queue_capacity as u64),
            ("output_max_bytes", c.output_max_bytes),
            ("metrics_max_series", c.metrics_max_series as u64),
        ] {
            if n == 0 {
                return Err(anyhow!("{key} must be at least 1"));
            }
        }
        if let Some(empty) = c.namespaces.iter().position(|n| n.trim().is_empty()) {
            return Err(anyhow!("namespace {} is empty (give a namespace name, or none for all)", empty + 1));
        }
        if !matches!(c.log_format.as_str(), "text" | "json") {
            return Err(anyhow!("log_format must be `text` or `json`, not `{}`", c.log_format));
        }
        Ok(c)
    }

    fn engine(&self) -> EngineConfig {
        let d = |s: &str| parse_duration(s).unwrap_or(0);
        EngineConfig {
            reorder_window: d(&self.reorder_window),
            response_timeout: d(&self.response_timeout),
            linger: d(&self.linger),
            max_open_calls: self.max_open_calls,
            max_request_calls: self.max_request_calls,
            ..EngineConfig::default()
        }
    }

    /// Server-side whitelist: L7 flows only, the namespaces asked for, and the configured raw
    /// filters (each combined with the former).
    fn filters(&self) -> Vec<FlowFilter> {
        let l7 = if self.l7_only {
            vec![EventTypeFilter { r#type: 129, match_sub_type: false, sub_type: 0 }]
        } else {
            Vec::new()
        };
        let base: Vec<FlowFilter> = if self.namespaces.is_empty() {
            vec![FlowFilter { event_type: l7, ..Default::default() }]
        } else {
            let pods: Vec<String> = self.namespaces.iter().map(|n| format!("{n}/")).collect();
            vec![
                FlowFilter { source_pod: pods.clone(), event_type: l7.clone(), ..Default::default() },
                FlowFilter { destination_pod: pods, event_type: l7, ..Default::default() },
            ]
        };
        let raw: Vec<FlowFilter> = self.whitelist.iter().filter_map(|f| raw_filter(f).ok()).collect();
        let combined: Vec<FlowFilter> = if raw.is_empty() {
            base
        } else {
            base.iter().flat_map(|b| raw.iter().map(move |r| merge_filters(b, r))).collect()
        };
        combined.into_iter().filter(|f| *f != FlowFilter::default()).collect()
    }

    fn blacklist_filters(&self) -> Vec<FlowFilter> {
        self.blacklist.iter().filter_map(|f| raw_filter(f).ok()).collect()
    }
}

/// Both filters' conditions (fields set in both are concatenated: any value matches).
fn merge_filters(a: &FlowFilter, b: &FlowFilter) -> FlowFilter {
    let mut m = b.clone();
    m.source_pod.extend(a.source_pod.iter().cloned());
    m.destination_pod.extend(a.destination_pod.iter().cloned());
    m.event_type.extend(a.event_type.iter().cloned());
    m
}

/// A filter in the Hubble CLI's raw JSON form, for the fields agentgraph passes on.
fn raw_filter(text: &str) -> Result<FlowFilter> {
    let v: serde_json::Value = serde_json::from_str(text).with_context(|| format!("filter `{text}` is not JSON"))?;
    let obj = v.as_object().ok_or_else(|| anyhow!("filter `{text}` is not a JSON object"))?;
    let strings = |key: &str, value: &serde_json::Value| -> Result<Vec<String>> {
        value
            .as_array()
            .ok_or_else(|| anyhow!("filter field `{key}` must be a list"))?
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| anyhow!("filter field `{key}` must list strings")))
            .collect()
    };
    let enum_numbers = |key: &str, value: &serde_json::Value, names: &[&str]| -> Result<Vec<i32>> {
        strings(key, value)?
            .iter()
            .map(|n| names.iter().position(|x| x == n).map(|i| i as i32).ok_or_else(|| anyhow!("unknown {key} `{n}`")))
            .collect()
    };
    let mut f = FlowFilter::default();
    for (key, value) in obj {
        match key.as_str() {
            "source_pod" | "sourcePod" => f.source_pod = strings(key, value)?,
            "destination_pod" | "destinationPod" => f.destination_pod = strings(key, value)?,
            "source_ip" | "sourceIp" => f.source_ip = strings(key, value)?,
            "destination_ip" | "destinationIp" => f.destination_ip = strings(key, value)?,
            "source_label" | "sourceLabel" => f.source_label = strings(key, value)?,
            "destination_label" | "destinationLabel" => f.destination_label = strings(key, value)?,
            "node_name" | "nodeName" => f.node_name = strings(key, value)?,
            "protocol" => f.protocol = strings(key, value)?,
            "http_method" | "httpMethod" => f.http_method = strings(key, value)?,
            "http_status_code" | "httpStatusCode" => f.http_status_code = strings(key, value)?,
            "http_path" | "httpPath" => f.http_path = strings(key, value)?,
            "trace_id" | "traceId" => f.trace_id = strings(key, value)?,
            "verdict" => {
                let names =
                    ["VERDICT_UNKNOWN", "FORWARDED", "DROPPED", "ERROR", "AUDIT", "REDIRECTED", "TRACED", "TRANSLATED"];
                f.verdict = enum_numbers(key, value, &names)?;
            }
            "traffic_direction" | "trafficDirection" => {
                f.traffic_direction = enum_numbers(key, value, &["TRAFFIC_DIRECTION_UNKNOWN", "INGRESS", "EGRESS"])?;
            }
            "event_type" | "eventType" => {
                for e in value.as_array().ok_or_else(|| anyhow!("filter field `event_type` must be a list"))? {
                    let t = e["type"].as_i64().ok_or_else(|| anyhow!("event_type entries need a numeric `type`"))?;
                    f.event_type.push(EventTypeFilter { r#type: t as i32, match_sub_type: false, sub_type: 0 });
                }
            }
            other => return Err(anyhow!("filter field `{other}` is not supported (in `{text}`)")),
        }
    }
    Ok(f)
}

/// `agentgraph config print-default`.
pub fn print_default_config() -> Result<ExitCode> {
    // Written, not printed: `print!` panics when the reader has gone (`| head`).
    std::io::Write::write_all(&mut std::io::stdout().lock(), default_config_text()?.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The default configuration as TOML, with the keys that are unset by default (TLS, output)
/// shown commented out with example values, so that every key is listed.
fn default_config_text() -> Result<String> {
    let example = CollectConfig {
        tls_ca: Some("/etc/hubble-tls/ca.crt".into()),
        tls_cert: Some("/etc/hubble-tls/client.crt".into()),
        tls_key: Some("/etc/hubble-tls/client.key".into()),
        tls_server_name: Some("instance.hubble-relay.cilium.io".into()),
        output: Some("/var/lib/agentgraph/graphs.ndjson".into()),
        ..CollectConfig::default()
    };
    let defaults = toml::Table::try_from(CollectConfig::default())?;
    let mut out = String::from(
        "# agentgraph collect configuration (agentgraph collect --config FILE); flags and environment win\n",
    );
    for line in toml::to_string(&example)?.lines() {
        let key = line.split(" = ").next().unwrap_or_default();
        if defaults.contains_key(key) {
            out.push_str(line);
        } else {
            out.push_str(&format!("# {line}    # unset by default"));
        }
        out.push('\n');
    }
    Ok(out)
}

/// What `/readyz` reports and the engine thread updates.
struct CollectorState {
    client: Arc<ClientTelemetry>,
    flows_decoded: AtomicU64,
    flows_undecodable: AtomicU64,
    open_calls: AtomicU64,
    open_requests: AtomicU64,
    requests_emitted: AtomicU64,
    requests_forced: AtomicU64,
    calls_unanswered: AtomicU64,
    responses_without_request: AtomicU64,
    records_late: AtomicU64,
    recent: Mutex<VecDeque<RequestGraph>>,
    metrics: Option<Metrics>,
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    connected: bool,
    server_version: String,
    last_error: String,
    flows_received: u64,
    flows_decoded: u64,
    flows_discarded_duplicate: u64,
    flows_discarded_queue_full: u64,
    flows_discarded_undecodable: u64,
    lost_events_upstream: u64,
    node_status_events: u64,
    reconnects: u64,
    open_calls: u64,
    open_requests: u64,
    requests_emitted: u64,
    requests_emitted_early: u64,
    calls_unanswered: u64,
    /// Responses whose request was not held (before the start, or emitted early under the bound).
    responses_without_request: u64,
    /// HTTP records that arrived later than the reorder window (a node's clock or its relay
    /// path far behind the others): their requests may be split or wrongly parented.
    records_late: u64,
}

impl CollectorState {
    fn new(metrics: Metrics) -> Self {
        CollectorState {
            client: Arc::default(),
            flows_decoded: AtomicU64::new(0),
            flows_undecodable: AtomicU64::new(0),
            open_calls: AtomicU64::new(0),
            open_requests: AtomicU64::new(0),
            requests_emitted: AtomicU64::new(0),
            requests_forced: AtomicU64::new(0),
            calls_unanswered: AtomicU64::new(0),
            responses_without_request: AtomicU64::new(0),
            records_late: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            metrics: Some(metrics),
        }
    }

    /// The collector's counters for the metrics' self-telemetry families.
    fn self_telemetry(&self) -> SelfTelemetry {
        let r = self.readiness();
        SelfTelemetry {
            flows_received: r.flows_received,
            flows_discarded: vec![
                ("duplicate", r.flows_discarded_duplicate),
                ("queue_full", r.flows_discarded_queue_full),
                ("undecodable", r.flows_discarded_undecodable),
            ],
            lost_events: r.lost_events_upstream,
            reconnects: r.reconnects,
            open_requests: r.open_requests as i64,
            open_calls: r.open_calls as i64,
            connected: r.connected,
            requests_expired: r.calls_unanswered,
            records_late: r.records_late,
            requests_emitted_early: r.requests_emitted_early,
            responses_without_request: r.responses_without_request,
        }
    }

    fn readiness(&self) -> Readiness {
        let c = &self.client;
        let connected = c.connected.load(Ordering::Relaxed);
        Readiness {
            ready: connected,
            connected,
            server_version: c.server_version.lock().map(|v| v.clone()).unwrap_or_default(),
            last_error: c.last_error.lock().map(|v| v.clone()).unwrap_or_default(),
            flows_received: c.flows_received.load(Ordering::Relaxed),
            flows_decoded: self.flows_decoded.load(Ordering::Relaxed),
            flows_discarded_duplicate: c.duplicates_dropped.load(Ordering::Relaxed),
            flows_discarded_queue_full: c.queue_full_dropped.load(Ordering::Relaxed),
            flows_discarded_undecodable: self.flows_undecodable.load(Ordering::Relaxed),
            lost_events_upstream: c.lost_events.load(Ordering::Relaxed),
            node_status_events: c.node_status_events.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            open_calls: self.open_calls.load(Ordering::Relaxed),
            open_requests: self.open_requests.load(Ordering::Relaxed),
            requests_emitted: self.requests_emitted.load(Ordering::Relaxed),
            requests_emitted_early: self.requests_forced.load(Ordering::Relaxed),
            calls_unanswered: self.calls_unanswered.load(Ordering::Relaxed),
            responses_without_request: self.responses_without_request.load(Ordering::Relaxed),
            records_late: self.records_late.load(Ordering::Relaxed),
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<Arc<CollectorState>>) -> impl IntoResponse {
    let Some(m) = &state.metrics else {
        return (StatusCode::NOT_FOUND, [("content-type", "text/plain")], String::new());
    };
    m.update_self(&state.self_telemetry());
    (StatusCode::OK, [("content-type", CONTENT_TYPE)], m.encode())
}

async fn readyz(State(state): State<Arc<CollectorState>>) -> impl IntoResponse {
    let r = state.readiness();
    (if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(r))
}

/// Newline-delimited request graphs to a file with size-based rotation, or to stdout.
struct FileSink {
    path: Option<PathBuf>,
    out: Box<dyn Write + Send>,
    written: u64,
    max_bytes: u64,
    keep: usize,
}

impl FileSink {
    fn open(target: &str, max_bytes: u64, keep: usize) -> Result<Self> {
        if target == "-" {
            return Ok(FileSink { path: None, out: Box::new(std::io::stdout()), written: 0, max_bytes, keep });
        }
        let path = PathBuf::from(target);
        let file =
            File::options().create(true).append(true).open(&path).with_context(|| format!("cannot open {target}"))?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(FileSink { out: Box::new(BufWriter::new(file)), path: Some(path), written, max_bytes, keep })
    }

    fn write(&mut self, graph: &RequestJson) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(4096);
        graph.write_json(&mut line);
        line.push(b'\n');
        if self.path.is_some() && self.written > 0 && self.written + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(&line)?;
        self.written += line.len() as u64;
        if self.path.is_none() {
            self.out.flush()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let path = self.path.clone().expect("files only");
        self.out.flush()?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
        let _ = std::fs::remove_file(numbered(self.keep.max(1)));
        for n in (1..self.keep.max(1)).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(&path, numbered(1))?;
        self.out = Box::new(BufWriter::new(File::create(&path)?));
        self.written = 0;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// One task owns the engine: it drains the queue, feeds the engine and hands completed graphs
/// to the sinks; when the queue closes it flushes open requests as incomplete.
fn engine_loop(
    mut rx: mpsc::Receiver<GetFlowsResponse>,
    mut engine: Engine,
    mut sink: Option<FileSink>,
    state: Arc<CollectorState>,
    recent_cap: usize,
    reorder_window: i64,
    handle: tokio::runtime::Handle,
) -> Result<()> {
    let mut last_event: Option<(i64, Instant)> = None;
    let deliver = |engine: &mut Engine, sink: &mut Option<FileSink>| -> Result<()> {
        let mut wrote = false;
        for g in engine.drain().collect::<Vec<RequestGraph>>() {
            if let Some(m) = &state.metrics {
                m.observe(&g);
            }
            if let Some(s) = sink.as_mut() {
                s.write(&RequestJson::from(&g)).context("cannot write the output")?;
                wrote = true;
            }
            if recent_cap > 0 {
                let mut recent = state.recent.lock().unwrap_or_else(|e| e.into_inner());
                if recent.len() >= recent_cap {
                    recent.pop_front();
                }
                recent.push_back(g);
            }
        }
        // Once per batch: a graph counted in /readyz and /metrics is in the file too, even if the
        // process is killed next.
        if wrote && let Some(s) = sink.as_mut() {
            s.flush().context("cannot write the output")?;
        }
        let stats = engine.stats();
        state.requests_emitted.store(stats.requests_emitted, Ordering::Relaxed);
        state.requests_forced.store(stats.forced_requests, Ordering::Relaxed);
        state.calls_unanswered.store(stats.unanswered_calls, Ordering::Relaxed);
        state.responses_without_request.store(stats.orphan_responses, Ordering::Relaxed);
        state.records_late.store(stats.late_records, Ordering::Relaxed);
        state.open_calls.store(engine.open_calls() as u64, Ordering::Relaxed);
        state.open_requests.store(engine.open_requests() as u64, Ordering::Relaxed);
        Ok(())
    };
    let mut batch: Vec<GetFlowsResponse> = Vec::with_capacity(1024);
    let mut seen_connections = 0;
    loop {
        // Event time stands still while disconnected: on reconnect the stream resumes from the
        // last flow, and that backlog must not arrive "late". The quiet time counts from then.
        let connected = state.client.connected.load(Ordering::Relaxed);
        let connections = state.client.connections.load(Ordering::Relaxed);
        if connections != seen_connections {
            last_event = last_event.map(|(t, _)| (t, Instant::now()));
            seen_connections = connections;
        }
        // Take whatever is queued (up to a batch) in one wake-up.
        let received = handle
            .block_on(async { tokio::time::timeout(Duration::from_millis(200), rx.recv_many(&mut batch, 1024)).await });
        match received {
            Ok(0) => break,
            Ok(_) => {
                for item in batch.drain(..) {
                    let wrapper_time = item.time.as_ref().map(nanos);
                    match &item.response_types {
                        Some(ResponseTypes::Flow(f)) => match FlowView::from_proto(f, wrapper_time) {
                            Some(view) => {
                                state.flows_decoded.fetch_add(1, Ordering::Relaxed);
                                last_event = Some((view.time_ns, Instant::now()));
                                engine.push_flow(&view);
                            }
                            None => {
                                state.flows_undecodable.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        Some(ResponseTypes::LostEvents(_)) => {
                            if let Some(t) = wrapper_time {
                                engine.advance_watermark(t);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(_) => {
                // A quiet source: let event time advance with the wall clock, so requests
                // still complete and expire (the core itself never reads the clock) — but only
                // as far as the source has shown it is alive: a frozen server's backlog must
                // not arrive late when it wakes up or the collector reconnects.
                if let Some((t, at)) = last_event
                    && connected
                    && let Some(alive) = state.client.alive_at()
                {
                    let idle = alive.saturating_duration_since(at).as_nanos() as i64;
                    if idle > reorder_window {
                        engine.advance_watermark(t + idle);
                    }
                }
            }
        }
        deliver(&mut engine, &mut sink)?;
    }
    engine.finish();
    deliver(&mut engine, &mut sink)?;
    if let Some(s) = sink.as_mut() {
        s.flush()?;
    }
    Ok(())
}

/// Feeds the engine from the built-in simulated cluster at real-time pace.
fn demo_source(tx: mpsc::Sender<GetFlowsResponse>, shutdown: watch::Receiver<bool>, telemetry: Arc<ClientTelemetry>) {
    // The simulated cluster stands in for a connected Hubble server.
    telemetry.connected.store(true, Ordering::Relaxed);
    *telemetry.server_version.lock().unwrap_or_else(|e| e.into_inner()) = "agentgraph-demo".into();
    let Ok(scenario) = agentgraph_sim::Scenario::load("support-desk") else { return };
    let opts = agentgraph_sim::SimOptions {
        requests: None,
        rate: Some(2.0),
        duration: Some(i64::MAX / 4),
        concurrency: Some(2.0),
        start: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64),
        ..Default::default()
    };
    let started = Instant::now();
    let sim = agentgraph_sim::Simulator::new(&scenario, opts.clone());
    let _ = sim.run(
        |_, line| {
            if *shutdown.borrow() {
                return Err(std::io::Error::other("stopped"));
            }
            let Ok(ev) = decode_line(line.as_bytes()) else { return Ok(()) };
            if let Event::Flow(f) = &ev {
                let due = started + Duration::from_nanos((f.time_ns - opts.start).max(0) as u64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            match response_from_event(&ev) {
                Some(resp) => {
                    if telemetry.flows_received.fetch_add(1, Ordering::Relaxed).is_multiple_of(64) {
                        telemetry.mark_alive();
                    }
                    tx.blocking_send(resp).map_err(|_| std::io::Error::other("engine gone"))
                }
                None => Ok(()),
            }
        },
        |_| Ok(()),
    );
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub fn run(args: CollectArgs) -> Result<ExitCode> {
    let config = CollectConfig::load(&args)?;
    init_logging(&config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(collect(config, args.demo));
    // Do not wait for a blocking task that overran the shutdown bound.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn collect(config: CollectConfig, demo: bool) -> Result<ExitCode> {
    let listen: SocketAddr =
        config.listen.parse().with_context(|| format!("invalid listen address `{}`", config.listen))?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, "serving /healthz, /readyz and /metrics");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel::<GetFlowsResponse>(config.queue_capacity.max(1));
    let families = Metrics::new(MetricsConfig {
        max_series: config.metrics_max_series.max(1),
        series_ttl: Duration::from_nanos(parse_duration(&config.metrics_series_ttl).unwrap_or(0).max(0) as u64),
        ..MetricsConfig::default()
    });
    let state = Arc::new(CollectorState::new(families));

    let sink = match &config.output {
        Some(target) => Some(FileSink::open(target, config.output_max_bytes, config.output_keep)?),
        None => {
            tracing::info!("no --output: request graphs feed /metrics only and are not written anywhere");
            None
        }
    };
    let engine = Engine::new(config.engine(), NormalizeConfig::default());
    let reorder_window = config.engine().reorder_window;
    let handle = tokio::runtime::Handle::current();
    let engine_state = state.clone();
    let recent_cap = config.recent_requests;
    let mut engine_task = tokio::task::spawn_blocking(move || {
        engine_loop(rx, engine, sink, engine_state, recent_cap, reorder_window, handle)
    });

    let source = if demo {
        let rx = shutdown_rx.clone();
        let telemetry = state.client.clone();
        tokio::task::spawn_blocking(move || {
            demo_source(tx, rx, telemetry);
            Ok(())
        })
    } else {
        let client = ClientConfig {
            server: config.hubble_server.clone(),
            tls_ca: config.tls_ca.clone(),
            tls_cert: config.tls_cert.clone(),
            tls_key: config.tls_key.clone(),
            tls_server_name: config.tls_server_name.clone(),
            connect_timeout: Duration::from_nanos(
                parse_duration(&config.connect_timeout).unwrap_or(5_000_000_000) as u64
            ),
            // Resume far enough back for what the engine may still be ordering.
            resume_margin: Duration::from_nanos(config.engine().reorder_window.max(0) as u64),
            whitelist: config.filters(),
            blacklist: config.blacklist_filters(),
            ..ClientConfig::default()
        };
        hubble::endpoint(&client)?;
        let telemetry = state.client.clone();
        let rx = shutdown_rx.clone();
        tokio::spawn(async move { hubble::follow(client, tx, telemetry, rx).await.map_err(anyhow::Error::from) })
    };

    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    let mut http_shutdown = shutdown_rx.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.changed().await;
            })
            .await
    });

    // Periodic self-telemetry in the logs.
    let log_state = state.clone();
    let mut log_shutdown = shutdown_rx.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = log_shutdown.changed() => return,
            }
            if let Some(m) = &log_state.metrics {
                m.maintain();
            }
            let r = log_state.readiness();
            tracing::info!(
                flows_received = r.flows_received,
                flows_discarded_duplicate = r.flows_discarded_duplicate,
                flows_discarded_queue_full = r.flows_discarded_queue_full,
                lost_events_upstream = r.lost_events_upstream,
                reconnects = r.reconnects,
                open_requests = r.open_requests,
                requests_emitted = r.requests_emitted,
                "collector status"
            );
        }
    });

    // The engine stops early only when it cannot write the output (a full disk, a closed
    // pipe): then the collector stops too, rather than keep reporting ready while every graph
    // is lost; it exits with the error, so that the pod restarts and says why.
    let stopped_early = tokio::select! {
        _ = shutdown_signal() => None,
        finished = &mut engine_task => Some(finished),
    };
    let finished = match stopped_early {
        None => {
            tracing::info!("shutting down: flushing open requests");
            let _ = shutdown_tx.send(true);
            // The source ends and drops its sender; the engine then drains, flushes and returns.
            let _ = source.await;
            tokio::time::timeout(Duration::from_secs(20), engine_task).await
        }
        Some(finished) => {
            if let Ok(Err(e)) = &finished {
                if crate::is_broken_pipe(e) {
                    // `collect --output - | head`: the reader has what it wanted.
                    tracing::info!("stopping: the output was closed");
                } else {
                    tracing::error!(error = %format!("{e:#}"), "stopping: the request graphs cannot be delivered");
                }
            }
            let _ = shutdown_tx.send(true);
            // The engine also ends when the source gave up and dropped its sender: its error
            // is the one to report.
            if let Ok(Err(e)) = source.await {
                let _ = http.await;
                return Err(e.context("the Hubble source stopped"));
            }
            Ok(finished)
        }
    };
    let _ = http.await;
    match finished {
        Ok(Ok(Ok(()))) => {
            tracing::info!(requests = state.requests_emitted.load(Ordering::Relaxed), "stopped");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(e)) => Err(anyhow!("engine task failed: {e}")),
        Err(_) => Err(anyhow!("engine did not finish within 20 s")),
    }
}

pub fn replay(args: ReplayArgs) -> Result<ExitCode> {
    init_logging("text");
    let speed = if args.max_speed { None } else { Some(args.speed) };
    let server = ReplayServer::new(ReplayConfig { files: args.files.clone(), speed, looped: args.r#loop })?;
    let flows = server.flows();
    let read = server.read_stats();
    crate::analyze::print_read_problems(read);
    if flows == 0 {
        return Err(anyhow!(
            "no flows to serve in {} ({} lines read, {} skipped)",
            args.files.join(", "),
            read.lines,
            read.skipped
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(async move {
        let listen: SocketAddr =
            args.listen.parse().with_context(|| format!("invalid listen address `{}`", args.listen))?;
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        let mut builder = tonic::transport::Server::builder();
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            let identity = tonic::transport::Identity::from_pem(
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?,
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?,
            );
            let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
            if let Some(ca) = &args.tls_client_ca {
                // mTLS: only clients with a certificate from this CA may connect.
                let pem = agentgraph_ingest::hubble::read_ca_certificates(ca)?;
                tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(pem));
            }
            builder = builder.tls_config(tls)?;
        }
        // Tests and scripts read this line to find an ephemeral port: printed once the server
        // can start, not before a TLS error.
        eprintln!("agentgraph: replaying {flows} flows from {} on {bound}", args.files.join(", "));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = tokio::spawn(
            builder
                .add_service(ObserverServer::new(server).max_encoding_message_size(64 << 20))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop_rx.await;
                }),
        );
        shutdown_signal().await;
        let _ = stop_tx.send(());
        // Followers keep their streams open; give them a moment, then stop regardless.
        let _ = tokio::time::timeout(Duration::from_secs(2), serve).await;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The printed default parses back to the defaults, and uncommenting its commented keys
    /// gives a valid file that sets every key.
    #[test]
    fn default_config_lists_every_key() {
        let text = default_config_text().unwrap();
        let parsed: CollectConfig = toml::from_str(&text).unwrap();
        assert_eq!(toml::Table::try_from(&parsed).unwrap(), toml::Table::try_from(CollectConfig::default()).unwrap());
        let uncommented: String = text
            .lines()
            .skip(1)
            .map(|l| l.strip_prefix("# ").map_or(l, |l| l.split("    #").next().unwrap_or(l)))
            .map(|l| format!("{l}\n"))
            .collect();
        let full = toml::Table::try_from(toml::from_str::<CollectConfig>(&uncommented).unwrap()).unwrap();
        for key in ["tls_ca", "tls_cert", "tls_key", "tls_server_name", "output", "hubble_server", "log_format"] {
            assert!(full.contains_key(key), "{key} missing from\n{text}");
        }
    }
}
