//! The Hubble gRPC client: follows `GetFlows` on hubble-relay or a node's Hubble server over
//! plaintext, TLS or mTLS, reconnects with capped exponential backoff and jitter, and on
//! reconnect resumes a little before the newest flow's time, dropping the flows it delivered
//! already so no flow is seen twice.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentgraph_core::record::seeded_hash;
use agentgraph_proto::convert::{nanos, timestamp};
use agentgraph_proto::flow::FlowFilter;
use agentgraph_proto::observer::get_flows_response::ResponseTypes;
use agentgraph_proto::observer::observer_client::ObserverClient;
use agentgraph_proto::observer::{GetFlowsRequest, GetFlowsResponse, ServerStatusRequest};
use foldhash::HashSet;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port`, `http://host:port`, or `tls://host:port` (TLS).
    pub server: String,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Name to verify the server certificate against (default: the host of `server`).
    pub tls_server_name: Option<String>,
    pub connect_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A resumed stream starts this much event time before the newest flow delivered, for the
    /// flows still on their way when the connection broke (the consumer's reorder window).
    pub resume_margin: Duration,
    /// Server-side filters (a flow must match one whitelist filter and no blacklist filter).
    pub whitelist: Vec<FlowFilter>,
    pub blacklist: Vec<FlowFilter>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            server: "localhost:4245".into(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            resume_margin: Duration::from_secs(2),
            whitelist: Vec::new(),
            blacklist: Vec::new(),
        }
    }
}

/// Counters the client keeps (self-telemetry).
#[derive(Debug, Default)]
pub struct ClientTelemetry {
    pub connected: AtomicBool,
    pub flows_received: AtomicU64,
    /// Flows dropped because a reconnect replayed them (`since` overlaps).
    pub duplicates_dropped: AtomicU64,
    /// Flows dropped because the engine's queue stayed full.
    pub queue_full_dropped: AtomicU64,
    /// Sum of `num_events_lost` reported upstream (Hubble ring buffers overflowing).
    pub lost_events: AtomicU64,
    pub node_status_events: AtomicU64,
    /// Connections made again after one was lost (failed attempts are not counted).
    pub reconnects: AtomicU64,
    /// Connections made so far: a change tells the consumer a new stream began (a reconnect
    /// brief enough to fall between two looks at `connected` still changes it).
    pub connections: AtomicU64,
    /// Why the last attempt or connection failed; cleared once connected again.
    pub last_error: std::sync::Mutex<String>,
    pub server_version: std::sync::Mutex<String>,
    /// When the server last showed it was there (a message, or an answer to a probe while the
    /// stream was silent): the collector lets event time follow the wall clock only this far,
    /// so a frozen server's backlog does not arrive late.
    alive_at: std::sync::Mutex<Option<Instant>>,
}

impl ClientTelemetry {
    /// Notes that the source is alive now.
    pub fn mark_alive(&self) {
        *self.alive_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// When the source last showed it was alive.
    pub fn alive_at(&self) -> Option<Instant> {
        *self.alive_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid Hubble server address `{0}` (give host:port, e.g. hubble-relay.kube-system.svc:80)")]
    Address(String),
    // Not `source`: the cause is printed here once, not again by a caller walking the chain.
    #[error("cannot read {path}: {error}")]
    Tls { path: String, error: std::io::Error },
    #[error("tls: {0}")]
    TlsConfig(String),
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|error| ClientError::Tls { path: path.display().to_string(), error })
}

/// Reads a PEM file of CA certificates. Checked here: TLS takes a file without any (a key, a
/// wrong file) without complaint, and every connection then fails with an obscure message.
pub fn read_ca_certificates(path: &PathBuf) -> Result<Vec<u8>, ClientError> {
    let pem = read(path)?;
    if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        Ok(pem)
    } else {
        Err(ClientError::TlsConfig(format!(
            "no certificate in {} (a PEM file with -----BEGIN CERTIFICATE----- blocks is needed)",
            path.display()
        )))
    }
}

/// An error with its causes, `outer: inner: innermost` (tonic's own message is only
/// "transport error"; the reason — refused, certificate, protocol — is in its sources).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// How long a stream may stay silent before the server is asked whether it is still there: a
/// server that stopped (a frozen process, a dead node behind a live connection) is noticed
/// within this plus the connect timeout, and a quiet cluster's event time moves on in steps of
/// this, for the cost of one small call each time.
const SILENCE_PROBE: Duration = Duration::from_secs(10);

/// How often a busy stream records that it is alive (not on every flow).
const ALIVE_MARK: Duration = Duration::from_millis(100);

/// Builds the channel endpoint (TLS when asked by `tls://` or certificate files).
pub fn endpoint(config: &ClientConfig) -> Result<Endpoint, ClientError> {
    let (tls, address) = match config.server.strip_prefix("tls://") {
        Some(rest) => (true, rest),
        None => (config.tls_ca.is_some() || config.tls_cert.is_some(), config.server.trim_start_matches("http://")),
    };
    // Without a port the URI would quietly mean port 80 or 443; Hubble listens elsewhere.
    if address.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
        return Err(ClientError::Address(config.server.clone()));
    }
    let uri = format!("{}://{address}", if tls { "https" } else { "http" });
    let mut ep = Endpoint::from_shared(uri)
        .map_err(|_| ClientError::Address(config.server.clone()))?
        .connect_timeout(config.connect_timeout)
        .tcp_keepalive(Some(Duration::from_secs(30)));
    if tls {
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        let mut t =
            ClientTlsConfig::new().domain_name(config.tls_server_name.clone().unwrap_or_else(|| host.to_string()));
        if let Some(ca) = &config.tls_ca {
            t = t.ca_certificate(Certificate::from_pem(read_ca_certificates(ca)?));
        }
        match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => t = t.identity(Identity::from_pem(read(c)?, read(k)?)),
            (None, None) => {}
            _ => return Err(ClientError::TlsConfig("--tls-cert and --tls-key go together".into())),
        }
        ep = ep.tls_config(t).map_err(|e| ClientError::TlsConfig(describe(&e)))?;
    }
    Ok(ep)
}

/// Remembers the flows delivered in the last `margin` of event time before the newest one, so a
/// stream resumed `margin` before the newest flow can drop what it delivered already. Flows
/// arrive only roughly in time order (a relay merges many nodes), so the resume point is set back
/// by a margin rather than at the newest flow, and a flow is never judged by its time alone.
#[derive(Debug)]
struct Resume {
    margin: i64,
    newest: Option<i64>,
    /// Fingerprints of the flows delivered within the margin, in arrival order with their times.
    recent: VecDeque<(i64, u64)>,
    delivered: HashSet<u64>,
    /// The flow being fingerprinted, encoded (reused: one allocation per flow of about 2 KB,
    /// and the allocator's work around it, was a fifth of the collector's time).
    encoded: Vec<u8>,
}

/// Most fingerprints remembered, whatever the flow rate (about 32 MB at the limit).
const RESUME_MEMORY: usize = 1 << 20;

impl Resume {
    fn new(margin: Duration) -> Self {
        Resume {
            margin: margin.as_nanos() as i64,
            newest: None,
            recent: VecDeque::new(),
            delivered: HashSet::default(),
            encoded: Vec::new(),
        }
    }

    /// Where a new stream starts: `margin` before the newest flow delivered.
    fn since(&self) -> Option<i64> {
        self.newest.map(|t| t - self.margin)
    }

    /// A 64-bit hash that tells one flow from another: of its UUID (Cilium 1.14 and later give
    /// each flow a random one), node and time when it has one, else of the whole response as
    /// encoded (encoding every flow again was a tenth of the collector's work).
    fn fingerprint(&mut self, resp: &GetFlowsResponse) -> u64 {
        if let Some(ResponseTypes::Flow(f)) = &resp.response_types
            && !f.uuid.is_empty()
        {
            let time = f.time.as_ref().map(|t| (t.seconds, t.nanos));
            return seeded_hash(0x7575_6964, (f.uuid.as_bytes(), f.node_name.as_bytes(), time));
        }
        self.encoded.clear();
        resp.encode_raw(&mut self.encoded);
        seeded_hash(0x6875_6262_6c65, self.encoded.as_slice())
    }

    /// Whether the flow is new (and records it).
    fn admit(&mut self, time: i64, fingerprint: u64) -> bool {
        if !self.delivered.insert(fingerprint) {
            return false;
        }
        let newest = self.newest.map_or(time, |n| n.max(time));
        self.newest = Some(newest);
        self.recent.push_back((time, fingerprint));
        while let Some(&(t, f)) = self.recent.front() {
            if t >= newest - self.margin && self.recent.len() <= RESUME_MEMORY {
                break;
            }
            self.recent.pop_front();
            self.delivered.remove(&f);
        }
        true
    }
}

/// Follows the server until `shutdown` turns true, sending flows (and lost-event markers) to
/// `tx`. Never returns an error for network trouble: it reconnects and counts.
pub async fn follow(
    config: ClientConfig,
    tx: mpsc::Sender<GetFlowsResponse>,
    telemetry: Arc<ClientTelemetry>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let endpoint = endpoint(&config)?;
    let mut resume = Resume::new(config.resume_margin);
    let mut backoff = config.backoff_initial;
    let mut attempt: u64 = 0;
    let mut ever_connected = false;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let mut delivered = false;
        let outcome = tokio::select! {
            r = session(&endpoint, &config, &tx, &telemetry, &mut resume, &mut ever_connected, &mut delivered) => r,
            _ = shutdown.changed() => return Ok(()),
        };
        telemetry.connected.store(false, Ordering::Relaxed);
        // A connection that delivered flows starts the next wait from the beginning; one that
        // failed at once (a server or proxy resetting every stream) backs off like a refusal.
        if delivered {
            backoff = config.backoff_initial;
        }
        match outcome {
            Ok(Session::Ended) => {
                *telemetry.last_error.lock().unwrap_or_else(|e| e.into_inner()) = "the server ended the stream".into();
            }
            Ok(Session::ConsumerGone) => return Ok(()),
            Err(message) => {
                *telemetry.last_error.lock().unwrap_or_else(|e| e.into_inner()) = message.clone();
                tracing::warn!(server = %config.server, error = %message, retry_in_ms = backoff.as_millis() as u64, "hubble connection failed");
            }
        }
        // Jitter spreads reconnects of many collectors: ±25 % of the backoff.
        attempt += 1;
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let jitter = (u64::from(clock) ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % 500;
        let wait = backoff.mul_f64(0.75 + jitter as f64 / 1000.0);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return Ok(()),
        }
        backoff = (backoff * 2).min(config.backoff_max);
    }
}

enum Session {
    /// The server ended the stream (a restart, an idle timeout).
    Ended,
    /// The receiving side closed: stop.
    ConsumerGone,
}

async fn session(
    endpoint: &Endpoint,
    config: &ClientConfig,
    tx: &mpsc::Sender<GetFlowsResponse>,
    telemetry: &ClientTelemetry,
    resume: &mut Resume,
    ever_connected: &mut bool,
    delivered: &mut bool,
) -> Result<Session, String> {
    // The whole handshake is bounded, not only the TCP connect: a server that accepts the
    // connection and then says nothing would otherwise hold the collector forever.
    let handshake = async {
        let channel: Channel = endpoint.connect().await.map_err(|e| format!("connect: {}", describe(&e)))?;
        let mut client = ObserverClient::new(channel).max_decoding_message_size(64 << 20);
        let status = client
            .server_status(ServerStatusRequest {})
            .await
            .map_err(|e| format!("ServerStatus: {}", describe(&e)))?
            .into_inner();
        let request = GetFlowsRequest {
            follow: true,
            since: resume.since().map(timestamp),
            whitelist: config.whitelist.clone(),
            blacklist: config.blacklist.clone(),
            ..Default::default()
        };
        let stream = client.get_flows(request).await.map_err(|e| format!("GetFlows: {}", describe(&e)))?.into_inner();
        Ok::<_, String>((client, status, stream))
    };
    let (mut client, status, mut stream) = tokio::time::timeout(config.connect_timeout, handshake)
        .await
        .map_err(|_| format!("no answer within {:?} (connect, ServerStatus, GetFlows)", config.connect_timeout))??;
    *telemetry.server_version.lock().unwrap_or_else(|e| e.into_inner()) = status.version.clone();
    telemetry.last_error.lock().unwrap_or_else(|e| e.into_inner()).clear();
    if std::mem::replace(ever_connected, true) {
        telemetry.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    telemetry.connections.fetch_add(1, Ordering::Relaxed);
    telemetry.connected.store(true, Ordering::Relaxed);
    telemetry.mark_alive();
    let mut marked = Instant::now();
    tracing::info!(server = %config.server, tls = endpoint.uri().scheme_str() == Some("https"), version = %status.version, flows = status.num_flows, "connected to hubble");
    loop {
        let item = match tokio::time::timeout(SILENCE_PROBE, stream.message()).await {
            Ok(Ok(Some(item))) => {
                *delivered = true;
                if marked.elapsed() > ALIVE_MARK {
                    telemetry.mark_alive();
                    marked = Instant::now();
                }
                item
            }
            Ok(Ok(None)) => return Ok(Session::Ended),
            Ok(Err(e)) => return Err(format!("stream: {}", describe(&e))),
            Err(_) => {
                // Silent for a while: a quiet cluster answers this, a stopped server does not.
                match tokio::time::timeout(config.connect_timeout, client.server_status(ServerStatusRequest {})).await {
                    Ok(Ok(_)) => {
                        telemetry.mark_alive();
                        continue;
                    }
                    Ok(Err(e)) => {
                        return Err(format!(
                            "no flows for {SILENCE_PROBE:?}, and ServerStatus failed: {}",
                            describe(&e)
                        ));
                    }
                    Err(_) => {
                        return Err(format!(
                            "no flows for {SILENCE_PROBE:?}, and ServerStatus got no answer within {:?}",
                            config.connect_timeout
                        ));
                    }
                }
            }
        };
        match &item.response_types {
            Some(ResponseTypes::Flow(f)) => {
                telemetry.flows_received.fetch_add(1, Ordering::Relaxed);
                let time = f.time.as_ref().or(item.time.as_ref()).map(nanos).unwrap_or(0);
                let fingerprint = resume.fingerprint(&item);
                if !resume.admit(time, fingerprint) {
                    telemetry.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            Some(ResponseTypes::LostEvents(l)) => {
                telemetry.lost_events.fetch_add(l.num_events_lost, Ordering::Relaxed);
            }
            Some(ResponseTypes::NodeStatus(n)) => {
                telemetry.node_status_events.fetch_add(1, Ordering::Relaxed);
                tracing::info!(state = n.state_change, nodes = ?n.node_names, message = %n.message, "hubble node status");
                continue;
            }
            None => continue,
        }
        // Back-pressure first (gRPC flow control slows the server); a queue that stays full
        // for a second drops and counts rather than growing.
        match tx.send_timeout(item, Duration::from_secs(1)).await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                telemetry.queue_full_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Ok(Session::ConsumerGone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_drops_what_it_delivered_and_nothing_else() {
        let mut r = Resume::new(Duration::from_nanos(10));
        assert!(r.admit(100, 1));
        // Out of order but new: kept, whatever its time.
        assert!(r.admit(95, 2));
        assert!(r.admit(120, 3));
        assert!(r.admit(80, 4));
        // A resumed stream starts 10 before the newest and replays 3; only new flows pass.
        assert_eq!(r.since(), Some(110));
        assert!(!r.admit(120, 3));
        assert!(r.admit(115, 5));
        assert!(r.admit(121, 6));
        // Flows older than the margin are forgotten (in arrival order), so memory stays bounded.
        assert!(!r.delivered.contains(&1) && !r.delivered.contains(&2));
        assert_eq!(r.delivered.len(), r.recent.len());
    }

    #[test]
    fn a_flow_is_told_apart_by_its_uuid_or_else_by_all_it_holds() {
        use agentgraph_proto::flow::Flow;
        let response = |uuid: &str, node: &str, seconds: i64, cluster: &str| GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow {
                uuid: uuid.into(),
                node_name: node.into(),
                time: Some(prost_types::Timestamp { seconds, nanos: 7 }),
                source: Some(agentgraph_proto::flow::Endpoint { cluster_name: cluster.into(), ..Default::default() }),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut r = Resume::new(Duration::from_secs(1));
        let mut f = |resp: GetFlowsResponse| r.fingerprint(&resp);
        // With a UUID: the same flow again is the same; another UUID, node or time is another.
        let a = f(response("u1", "n1", 5, "x"));
        assert_eq!(a, f(response("u1", "n1", 5, "x")));
        assert_ne!(a, f(response("u2", "n1", 5, "x")));
        assert_ne!(a, f(response("u1", "n2", 5, "x")));
        assert_ne!(a, f(response("u1", "n1", 6, "x")));
        // Without one (older Cilium): any field that differs tells two flows apart.
        let b = f(response("", "n1", 5, "x"));
        assert_eq!(b, f(response("", "n1", 5, "x")));
        assert_ne!(b, f(response("", "n1", 5, "y")));
    }

    #[test]
    fn endpoints_from_addresses() {
        let plain = ClientConfig { server: "hubble-relay.kube-system.svc:80".into(), ..Default::default() };
        assert_eq!(endpoint(&plain).unwrap().uri().scheme_str(), Some("http"));
        let tls = ClientConfig { server: "tls://hubble-relay:443".into(), ..Default::default() };
        assert_eq!(endpoint(&tls).unwrap().uri().scheme_str(), Some("https"));
        for bad in ["tls://", "127.0.0.1", "hubble-relay:http", ":4245"] {
            let config = ClientConfig { server: bad.into(), ..Default::default() };
            assert!(endpoint(&config).is_err(), "{bad}");
        }
    }
}
