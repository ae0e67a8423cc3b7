//! Command-line interface: subcommands, flags and their help texts.

use clap::{Args, Parser, Subcommand, ValueEnum};

use agentgraph_core::Nanos;

/// Per-request call graphs of AI agents, from Cilium Hubble flows.
///
/// agentgraph reads the L7 HTTP flows Hubble records between pods, pairs requests with
/// responses, merges the copies two proxies recorded of one exchange, and assembles the calls
/// of each end-to-end request into a call tree (by W3C trace id, a propagated request id, or
/// timing), with fan-out, depth, context size, latency and self time.
#[derive(Debug, Parser)]
#[command(name = "agentgraph", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyze recorded Hubble dumps into per-request call graphs.
    ///
    /// Reads `hubble observe -o json` output or the Hubble exporter's files (NDJSON, plain,
    /// gzip or zstd, detected by content), several files merged by time, or `-` for stdin.
    /// Lines that cannot be decoded are counted and reported with file and line, never fatal.
    ///
    /// Examples:
    ///   agentgraph analyze --demo
    ///   agentgraph analyze flows.jsonl node2.jsonl.gz --format json > report.json
    ///   hubble observe --follow -o json | agentgraph analyze - --format ndjson
    #[command(verbatim_doc_comment)]
    Analyze(AnalyzeArgs),

    /// Simulate an agent cluster: Hubble flows plus the true call graphs.
    ///
    /// Runs a scenario (built in, or a TOML file; see the README) and writes the Hubble JSON
    /// lines its calls leave at the client's egress and the server's ingress proxy, with
    /// per-node clock skew and background noise, and `truth.json` with every request.
    ///
    /// Examples:
    ///   agentgraph simulate --scenario support-desk --requests 500 --seed 7 --out sim/
    ///   agentgraph simulate --scenario research-swarm --correlation none --concurrency 4 --out sim/
    ///   agentgraph simulate --scenario support-desk --rate 50 --duration 10m -o -
    #[command(verbatim_doc_comment)]
    Simulate(SimulateArgs),

    /// Score an analysis report against a simulation's truth.
    ///
    /// Matches reported calls to true calls (same client, server, method and path, start
    /// within a tolerance) and prints call recall and precision, parent and root accuracy,
    /// exact-request and exact fan-out/depth rates, latency error and size accuracy, and the
    /// parent accuracy of the simple containment rule applied to the true grouping (the
    /// reference an inference should beat). Exits 1 when a `--min-…` threshold fails.
    ///
    /// Example:
    ///   agentgraph analyze sim/flows.jsonl --format json > report.json
    ///   agentgraph eval report.json sim/truth.json --min-parent-accuracy 0.98
    #[command(verbatim_doc_comment)]
    Eval(EvalArgs),

    /// Follow a Hubble server and keep per-request call graphs flowing (the in-cluster job).
    ///
    /// Connects to hubble-relay (or a node's Hubble server) over gRPC, follows GetFlows
    /// (L7 flows only by default), reconnects with backoff and resumes without duplicates,
    /// and writes each completed request graph to --output. Serves /healthz, /readyz
    /// (self-telemetry) and /metrics (Prometheus) on --listen. SIGTERM flushes open
    /// requests and exits 0.
    ///
    /// Examples:
    ///   agentgraph collect --hubble-server hubble-relay.kube-system.svc:80 --listen 0.0.0.0:9464
    ///   agentgraph collect --hubble-server tls://hubble-relay:443 \
    ///       --tls-ca ca.crt --tls-cert c.crt --tls-key c.key
    ///   agentgraph collect --demo --output -        # built-in simulated cluster, no Hubble needed
    #[command(verbatim_doc_comment)]
    Collect(Box<CollectArgs>),

    /// Serve dump files through Hubble's gRPC Observer API (a stand-in hubble-relay).
    ///
    /// Example:
    ///   agentgraph replay sim/flows.jsonl --listen 127.0.0.1:4245 --speed 1.0 --loop
    #[command(verbatim_doc_comment)]
    Replay(ReplayArgs),

    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the collector's default configuration as TOML (a starting point for --config).
    PrintDefault,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Configuration file (TOML, see `agentgraph config print-default`); flags win over it.
    #[arg(long, env = "AGENTGRAPH_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Hubble server: host:port, or tls://host:port for TLS (also used whenever --tls-ca or
    /// --tls-cert is given).
    #[arg(long, env = "AGENTGRAPH_HUBBLE_SERVER", value_name = "ADDRESS")]
    pub hubble_server: Option<String>,
    /// CA certificate (PEM) to verify the Hubble server.
    #[arg(long, env = "AGENTGRAPH_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[arg(long, env = "AGENTGRAPH_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Client key (PEM) for mTLS.
    #[arg(long, env = "AGENTGRAPH_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Server name to verify instead of the address's host (e.g. instance.hubble-relay.cilium.io).
    #[arg(long, env = "AGENTGRAPH_TLS_SERVER_NAME", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Address for /healthz, /readyz and /metrics (default 0.0.0.0:9464).
    #[arg(long, env = "AGENTGRAPH_LISTEN", value_name = "ADDRESS")]
    pub listen: Option<String>,
    /// Write completed request graphs here, one JSON object per line (`-` = stdout).
    #[arg(long, env = "AGENTGRAPH_OUTPUT", value_name = "FILE")]
    pub output: Option<String>,
    /// Only flows to or from this namespace (repeatable).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Vec<String>,
    /// Ask Hubble for all flows, not only L7.
    #[arg(long)]
    pub all_flows: bool,
    /// Server-side filter in the Hubble CLI's raw JSON form (`hubble observe
    /// --print-raw-filters`), e.g. '{"source_pod":["agents/"]}' (repeatable; any may match).
    #[arg(long, value_name = "JSON")]
    pub whitelist: Vec<String>,
    /// Exclude flows matching this raw filter (repeatable).
    #[arg(long, value_name = "JSON")]
    pub blacklist: Vec<String>,
    /// Give up a connection attempt after this long (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// How far out of order (event time) flows may arrive and still be put in order (default 2s).
    #[arg(long, value_name = "DURATION")]
    pub reorder_window: Option<String>,
    /// A request without a response is closed as unanswered after this long (default 60s).
    #[arg(long, value_name = "DURATION")]
    pub response_timeout: Option<String>,
    /// A request whose calls have completed is emitted after this long without new calls
    /// (default 2s).
    #[arg(long, value_name = "DURATION")]
    pub linger: Option<String>,
    /// Most calls held in memory (default 200000); past it the oldest request is emitted early
    /// (counted).
    #[arg(long, value_name = "N")]
    pub max_open_calls: Option<usize>,
    /// Most calls a request gathers under its trace or request id (default 10000); when one
    /// more comes, the request is emitted early (counted) and that call starts a new one.
    #[arg(long, value_name = "N")]
    pub max_request_calls: Option<usize>,
    /// Log format: text or json.
    #[arg(long, env = "AGENTGRAPH_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Most label sets per metric family (default 2000); past it series fold into __overflow__.
    #[arg(long, value_name = "N")]
    pub metrics_max_series: Option<usize>,
    /// Remove metric series idle for this long (default 1h).
    #[arg(long, value_name = "DURATION")]
    pub metrics_series_ttl: Option<String>,
    /// Run on a built-in simulated agent cluster instead of a Hubble server.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Dump files to serve (several are merged by time).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<String>,
    /// Address to serve the Observer API on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:4245", value_name = "ADDRESS")]
    pub listen: String,
    /// Playback speed relative to the recording.
    #[arg(long, default_value_t = 1.0, value_parser = positive_number, conflicts_with = "max_speed")]
    pub speed: f64,
    /// As fast as the client reads.
    #[arg(long)]
    pub max_speed: bool,
    /// Start over at the end (times keep increasing).
    #[arg(long = "loop")]
    pub r#loop: bool,
    /// Serve TLS with this certificate (PEM).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A built-in scenario (support-desk, research-swarm, code-review, job-spawner) or a path
    /// to a scenario TOML file.
    #[arg(long, default_value = "support-desk", value_name = "NAME|FILE")]
    pub scenario: String,

    /// List the built-in scenarios and exit.
    #[arg(long)]
    pub list: bool,

    /// Number of end-to-end requests (default 100 unless --duration is given).
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub requests: Option<usize>,

    /// Requests started per second (Poisson arrivals, the first at time 0) instead of the
    /// scenario's concurrency.
    #[arg(long, value_parser = positive_number, value_name = "PER_SECOND", allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// Simulated time during which requests start, e.g. 10m or 1h30m, instead of a number of
    /// requests: at --rate, or else at the scenario's concurrency.
    #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
    pub duration: Option<Nanos>,

    /// Random seed: the same seed gives the same flows and truth.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Override the scenario's correlation mode: trace_context, request_id or none.
    #[arg(long, value_name = "MODE")]
    pub correlation: Option<String>,

    /// Override the scenario's mean number of requests in flight (1 = one after another).
    #[arg(long, value_parser = positive_number, value_name = "N", conflicts_with = "rate", allow_negative_numbers = true)]
    pub concurrency: Option<f64>,

    /// Write DIR/flows.jsonl and DIR/truth.json.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub out: Option<std::path::PathBuf>,

    /// Write the flows to FILE (`-` for stdout) instead of a directory.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<String>,

    /// Where to write the truth when using --output (`-` for stdout; default: none). With
    /// --out it is DIR/truth.json.
    #[arg(long, value_name = "FILE", requires = "output")]
    pub truth: Option<String>,

    /// With --out, also write one file per node (DIR/node-<name>.jsonl), like one Hubble
    /// exporter file per node.
    #[arg(long)]
    pub per_node: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The analysis report (`agentgraph analyze --format json`; `-` for standard input).
    #[arg(value_name = "REPORT")]
    pub report: String,
    /// The simulation's truth.json (`-` for standard input).
    #[arg(value_name = "TRUTH")]
    pub truth: String,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Largest start-time difference for a reported call to match a true call (milliseconds).
    #[arg(long, default_value_t = 2.0, value_parser = non_negative_number, value_name = "MS", allow_negative_numbers = true)]
    pub tolerance_ms: f64,
    /// Fail (exit 1) when call recall is below this fraction (0 to 1).
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_call_recall: Option<f64>,
    /// Fail when call precision is below this fraction.
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_call_precision: Option<f64>,
    /// Fail when the share of matched calls with their true parent is below this fraction.
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_parent_accuracy: Option<f64>,
    /// Fail when the share of true roots reported as roots is below this fraction.
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_root_accuracy: Option<f64>,
    /// Fail when the share of true requests grouped exactly is below this fraction.
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_exact_requests: Option<f64>,
    /// Fail when the share of exact requests with the true fan-out and depth is below this.
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_exact_fan_out_depth: Option<f64>,
    /// Fail when the share of calls with the true request size is below this fraction.
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_size_accuracy: Option<f64>,
    /// Fail when the share of calls reported with confidence 0.9 or more that have their true
    /// parent is below this fraction.
    #[arg(long, value_parser = fraction, value_name = "FRACTION", allow_negative_numbers = true)]
    pub min_confident_parent_accuracy: Option<f64>,
    /// Fail when the mean absolute latency error exceeds this (milliseconds).
    #[arg(long, value_parser = non_negative_number, value_name = "MS", allow_negative_numbers = true)]
    pub max_latency_mae_ms: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable summary: inputs, agent graph, top requests as call trees.
    Text,
    /// The `agentgraph.analysis/v1` report as one JSON document.
    Json,
    /// One request graph per line, printed as each request completes.
    Ndjson,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Dump files to read (`-` for stdin); several files are merged by event time.
    #[arg(value_name = "FILE", required_unless_present = "demo")]
    pub files: Vec<String>,

    /// Analyze the bundled demo dump (a small agent cluster) instead of files.
    #[arg(long, conflicts_with = "files")]
    pub demo: bool,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// How many requests each "top" list of the text format shows.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub top: usize,

    /// Header carrying a propagated request id.
    #[arg(long, default_value = "x-request-id", value_parser = header_name, value_name = "HEADER")]
    pub request_id_header: String,

    /// Header giving a request's context size, preferred over Content-Length (repeatable).
    #[arg(long = "context-size-header", default_value = "x-context-size", value_parser = header_name, value_name = "HEADER")]
    pub context_size_headers: Vec<String>,

    /// Pod label keys that name an agent, in order of preference (repeatable; replaces the
    /// default list `app.kubernetes.io/name`, `app`, `k8s-app`, `agent-role`).
    #[arg(long = "name-label", value_parser = label_key, value_name = "KEY")]
    pub name_labels: Vec<String>,

    /// How far out of order (event time) input lines may be and still be put in order.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub reorder_window: Nanos,

    /// A request without a response is closed as unanswered after this long.
    #[arg(long, default_value = "60s", value_parser = positive_duration, value_name = "DURATION")]
    pub response_timeout: Nanos,

    /// A request whose calls have completed is emitted after this long without new calls (at
    /// least 100 ms plus --clock-skew: the other proxy's copy of a record may take that long).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub linger: Nanos,

    /// Tolerance for comparing times from two nodes' clocks.
    #[arg(long, default_value = "5ms", value_parser = parse_duration, value_name = "DURATION")]
    pub clock_skew: Nanos,

    /// Most calls held in memory at once; past it the oldest request is emitted early.
    #[arg(long, default_value_t = 200_000, value_parser = at_least_one, value_name = "N")]
    pub max_open_calls: usize,

    /// Most calls a request gathers under its trace or request id; when one more comes, the
    /// request is emitted early (counted) and that call starts a new one (a client sending one
    /// X-Request-Id with everything, a root span open for the life of a process).
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one, value_name = "N")]
    pub max_request_calls: usize,

    /// Read the input once. By default, the input is first read to learn each agent's call
    /// timing, so parents that only timing can tell apart are decided with the statistics from
    /// the start of the dump. That learning pass stops as soon as every agent with such parents
    /// has 100 certain examples, or after 50,000 flows without any such parent, so it costs a
    /// fraction of a read unless the dump is mostly ambiguous. Standard input is copied to an
    /// unnamed temporary file (in TMPDIR) as the learning pass reads it, for the main pass to
    /// read again; there the learning pass also stops after 256 MiB or 10 s (at the first flow
    /// after that), so a live stream is reported from then on.
    #[arg(long)]
    pub single_pass: bool,

    /// Do not draw the progress line. It is drawn on stderr only when stderr is a terminal,
    /// and for the json and ndjson formats only when stdout is not a terminal.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Parses `250ms`, `2s`, `1.5s`, `10m`, `1h`, `500us`, `100ns` into nanoseconds.
pub fn parse_duration(s: &str) -> Result<Nanos, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("a duration is needed, such as 500ms, 2s, 10m or 1h30m".into());
    }
    // One or more parts, each a number and its unit: `1h30m` is 90 minutes.
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let value: f64 =
            number.parse().map_err(|_| format!("`{text}` is not a duration such as 500ms, 2s, 10m or 1h30m"))?;
        let scale = match unit.trim() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("`{text}` needs a unit: ns, us, ms, s, m or h")),
            other => return Err(format!("unknown duration unit `{other}` in `{text}` (use ns, us, ms, s, m or h)")),
        };
        total += value * scale;
        rest = next;
    }
    if total > LONGEST_DURATION as f64 {
        return Err(format!("`{text}` is longer than the longest duration taken (10 years)"));
    }
    Ok(total.round() as Nanos)
}

/// Longer durations would overflow the nanosecond clock once added to a timestamp.
const LONGEST_DURATION: Nanos = 10 * 365 * 24 * 3600 * 1_000_000_000;

/// A positive duration (a timeout of zero would close every call at once).
fn positive_duration(s: &str) -> Result<Nanos, String> {
    match parse_duration(s)? {
        0 => Err(format!("`{s}` must be longer than zero")),
        d => Ok(d),
    }
}

/// A finite number greater than zero.
fn positive_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// A finite number, zero or more.
fn non_negative_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of zero or more")),
    }
}

/// A fraction from 0 to 1 (accuracies and rates are fractions, not percentages).
fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) if v > 1.0 && v <= 100.0 => {
            Err(format!("`{s}` is not a fraction from 0 to 1 (for {v} %, write {})", v / 100.0))
        }
        _ => Err(format!("`{s}` is not a fraction from 0 to 1")),
    }
}

/// A count of one or more.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of 1 or more")),
    }
}

/// An HTTP header name: not empty, no spaces or colons inside.
fn header_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
        return Err(format!("`{s}` is not an HTTP header name"));
    }
    Ok(name.to_string())
}

/// A pod label key: not empty, no spaces or `=`.
fn label_key(s: &str) -> Result<String, String> {
    let key = s.trim();
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '=') {
        return Err(format!("`{s}` is not a label key (such as app.kubernetes.io/name)"));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("2 weeks").is_err());
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1m 30s"), Ok(90_000_000_000));
        assert!(parse_duration("").is_err() && parse_duration("1h30").is_err());
        // Too long for the clock: refused, not wrapped into an empty simulation.
        assert!(parse_duration("18446744074s").unwrap_err().contains("longest"));
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(positive_number("2.5"), Ok(2.5));
        for bad in ["0", "-3", "inf", "nan", "NaN", "1e999", "x", ""] {
            assert!(positive_number(bad).is_err(), "{bad}");
        }
        assert_eq!(fraction("0.98"), Ok(0.98));
        assert_eq!(fraction("1"), Ok(1.0));
        assert!(fraction("97").unwrap_err().contains("0.97"));
        assert!(fraction("-1").is_err() && fraction("nan").is_err());
        assert_eq!(non_negative_number("0"), Ok(0.0));
        assert!(non_negative_number("-5").is_err());
        assert!(at_least_one("0").is_err() && at_least_one("3") == Ok(3));
        assert!(positive_duration("0s").is_err() && positive_duration("1ms") == Ok(1_000_000));
        assert!(header_name("").is_err() && header_name("x-request-id").is_ok() && header_name("a b").is_err());
        assert!(label_key("").is_err() && label_key("app").is_ok());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
