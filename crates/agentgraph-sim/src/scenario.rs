//! The scenario format: a small TOML description of an agent cluster — agents, whom they call,
//! how often, how wide, how long they think, how much context they send — and the built-in
//! scenarios.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How requests carry (or do not carry) their identity from hop to hop.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationMode {
    /// W3C `traceparent` on every hop (Hubble fills `trace_context`).
    TraceContext,
    /// One `X-Request-Id` propagated unchanged through every hop.
    RequestId,
    /// Nothing propagated: each hop's proxy makes up a fresh `X-Request-Id`.
    None,
}

impl CorrelationMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "trace_context" | "trace" => Ok(CorrelationMode::TraceContext),
            "request_id" => Ok(CorrelationMode::RequestId),
            "none" => Ok(CorrelationMode::None),
            other => Err(format!("unknown correlation mode `{other}` (trace_context, request_id or none)")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            CorrelationMode::TraceContext => "trace_context",
            CorrelationMode::RequestId => "request_id",
            CorrelationMode::None => "none",
        }
    }
}

/// A range `[min, max]` sampled log-uniformly (sizes, durations) — written `[min, max]`.
pub type Range = [f64; 2];

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Kubernetes nodes the pods are spread over.
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// Each node's clock is off by up to this much (milliseconds, either way).
    #[serde(default = "default_skew")]
    pub clock_skew_ms: f64,
    /// One-way time between the client's and the server's proxy (milliseconds).
    #[serde(default = "default_network")]
    pub network_ms: Range,
    /// Both the client's egress proxy and the server's ingress proxy record each call.
    #[serde(default = "yes")]
    pub both_copies: bool,
    #[serde(default = "default_correlation")]
    pub correlation: CorrelationMode,
    /// Mean number of requests in flight at once (1 = one after another).
    #[serde(default = "one")]
    pub concurrency: f64,
    /// Idle time between serial requests (milliseconds).
    #[serde(default = "default_gap")]
    pub gap_ms: Range,
    /// A client gives up on a call that gets no response after this long (milliseconds).
    #[serde(default = "default_client_timeout")]
    pub client_timeout_ms: f64,
    /// The agent that receives end-to-end requests, and from whom.
    pub entry: Entry,
    pub agents: Vec<Agent>,
    #[serde(default)]
    pub noise: Noise,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The client agent (e.g. an ingress gateway) that sends each request.
    pub from: String,
    pub to: String,
    /// Each `{id}` in it is replaced by a fresh id per call.
    #[serde(default = "default_entry_path")]
    pub path: String,
    #[serde(default = "default_request_bytes")]
    pub request_bytes: Range,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    /// A pod per call, named `<name>-<random>` (an ephemeral sub-agent).
    Job,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: String,
    pub namespace: String,
    #[serde(default = "default_kind")]
    pub kind: WorkloadKind,
    #[serde(default = "one_usize")]
    pub replicas: usize,
    /// Extra pod labels (`app=<name>` is always set, or `agent-role=<name>` for Jobs).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Time before the first call, between sequential calls and after the last (milliseconds):
    /// the agent thinking (LLM reasoning time).
    #[serde(default = "default_think")]
    pub think_ms: Range,
    /// Service time of an agent that calls nobody (milliseconds).
    #[serde(default = "default_latency")]
    pub latency_ms: Range,
    #[serde(default = "default_response_bytes")]
    pub response_bytes: Range,
    /// Probability that a call to this agent fails with a 5xx status.
    #[serde(default)]
    pub error_rate: f64,
    /// Probability that a call to this agent never gets a response.
    #[serde(default)]
    pub timeout_rate: f64,
    #[serde(default)]
    pub calls: Vec<CallSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// The agent called; `external:<host>` is an API outside the cluster, seen only at L3/L4
    /// plus DNS.
    pub to: String,
    /// Each `{id}` in it is replaced by a fresh id per call (`/v1/threads/{id}/runs`).
    #[serde(default = "default_call_path")]
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Probability that this step happens at all.
    #[serde(default = "one")]
    pub probability: f64,
    /// Smallest and largest number of calls in this step.
    #[serde(default = "default_count")]
    pub count: [usize; 2],
    /// Pareto shape of the count between its bounds (smaller = heavier tail); absent = uniform.
    #[serde(default)]
    pub count_alpha: Option<f64>,
    /// The calls of the step run at once (fan-out) instead of one after another.
    #[serde(default)]
    pub parallel: bool,
    #[serde(default = "default_request_bytes")]
    pub request_bytes: Range,
}

/// Background traffic that is not part of any agent request.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    /// DNS lookups per call (L7 DNS request and response records).
    #[serde(default)]
    pub dns_per_call: f64,
    /// L3/L4 TCP trace flows per call.
    #[serde(default)]
    pub tcp_per_call: f64,
    /// Prometheus scrapes (`GET /metrics`, their own one-call requests) per second.
    #[serde(default)]
    pub scrapes_per_second: f64,
    /// Kubelet health checks (`GET /healthz` from `reserved:host`) per second.
    #[serde(default)]
    pub health_checks_per_second: f64,
    /// Connections dropped by network policy (L3/L4 DROPPED flows) per second.
    #[serde(default)]
    pub policy_drops_per_second: f64,
}

fn default_nodes() -> usize {
    3
}
fn default_skew() -> f64 {
    3.0
}
fn default_network() -> Range {
    [0.2, 1.5]
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn default_correlation() -> CorrelationMode {
    CorrelationMode::TraceContext
}
fn default_gap() -> Range {
    [100.0, 400.0]
}
fn default_client_timeout() -> f64 {
    30_000.0
}
fn default_entry_path() -> String {
    "/v1/agent/execute".into()
}
fn default_request_bytes() -> Range {
    [300.0, 20_000.0]
}
fn default_response_bytes() -> Range {
    [200.0, 5_000.0]
}
fn default_kind() -> WorkloadKind {
    WorkloadKind::Deployment
}
fn default_think() -> Range {
    [50.0, 400.0]
}
fn default_latency() -> Range {
    [20.0, 200.0]
}
fn default_call_path() -> String {
    "/v1/task".into()
}
fn default_method() -> String {
    "POST".into()
}
fn default_count() -> [usize; 2] {
    [1, 1]
}

/// The built-in scenarios, by name.
pub const BUILTIN: [(&str, &str); 4] = [
    ("support-desk", include_str!("../scenarios/support-desk.toml")),
    ("research-swarm", include_str!("../scenarios/research-swarm.toml")),
    ("code-review", include_str!("../scenarios/code-review.toml")),
    ("job-spawner", include_str!("../scenarios/job-spawner.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(
        "unknown scenario `{0}` (built in: support-desk, research-swarm, code-review, job-spawner; or a path to a .toml file)"
    )]
    Unknown(String),
    // Not `source`: the cause is printed here once, not again by a caller walking the chain.
    #[error("cannot read scenario {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("invalid scenario {name}: {message}")]
    Invalid { name: String, message: String },
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Self, ScenarioError> {
        let (name, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, t)) => (n.to_string(), t.to_string()),
            None if name_or_path.ends_with(".toml") || std::path::Path::new(name_or_path).exists() => {
                let text = std::fs::read_to_string(name_or_path)
                    .map_err(|error| ScenarioError::Read { path: name_or_path.into(), error })?;
                (name_or_path.to_string(), text)
            }
            None => return Err(ScenarioError::Unknown(name_or_path.into())),
        };
        Self::parse(&name, &text)
    }

    pub fn parse(name: &str, text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Invalid { name: name.into(), message: e.to_string() })?;
        s.validate().map_err(|message| ScenarioError::Invalid { name: name.into(), message })?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), String> {
        let known = |n: &str| self.agents.iter().any(|a| a.name == n);
        for (i, a) in self.agents.iter().enumerate() {
            // Names become pod names, labels and DNS names in the flows.
            dns_label("agent name", &a.name)?;
            dns_label("namespace", &a.namespace).map_err(|e| format!("agent `{}`: {e}", a.name))?;
            if self.agents[..i].iter().any(|b| b.name == a.name) {
                return Err(format!("agent `{}` is defined twice", a.name));
            }
        }
        url_path("entry.path", &self.entry.path)?;
        if !known(&self.entry.from) {
            return Err(format!("entry.from `{}` is not an agent", self.entry.from));
        }
        if !known(&self.entry.to) {
            return Err(format!("entry.to `{}` is not an agent", self.entry.to));
        }
        if self.nodes == 0 {
            return Err("nodes must be at least 1".into());
        }
        positive("concurrency", self.concurrency)?;
        positive("client_timeout_ms", self.client_timeout_ms)?;
        non_negative("clock_skew_ms", self.clock_skew_ms)?;
        range("network_ms", self.network_ms)?;
        range("gap_ms", self.gap_ms)?;
        range("entry.request_bytes", self.entry.request_bytes)?;
        let n = &self.noise;
        for (key, value) in [
            ("noise.dns_per_call", n.dns_per_call),
            ("noise.tcp_per_call", n.tcp_per_call),
            ("noise.scrapes_per_second", n.scrapes_per_second),
            ("noise.health_checks_per_second", n.health_checks_per_second),
            ("noise.policy_drops_per_second", n.policy_drops_per_second),
        ] {
            non_negative(key, value)?;
        }
        for a in &self.agents {
            let in_agent = |e: String| format!("agent `{}`: {e}", a.name);
            if a.replicas == 0 {
                return Err(format!("agent `{}` needs at least one replica", a.name));
            }
            range("think_ms", a.think_ms).map_err(in_agent)?;
            range("latency_ms", a.latency_ms).map_err(in_agent)?;
            range("response_bytes", a.response_bytes).map_err(in_agent)?;
            probability("error_rate", a.error_rate).map_err(in_agent)?;
            probability("timeout_rate", a.timeout_rate).map_err(in_agent)?;
            for c in &a.calls {
                let in_call = |e: String| format!("agent `{}`, call to `{}`: {e}", a.name, c.to);
                if !c.to.starts_with("external:") && !known(&c.to) {
                    return Err(format!("agent `{}` calls unknown agent `{}`", a.name, c.to));
                }
                if c.count[0] > c.count[1] {
                    return Err(format!("agent `{}`: call count [{}, {}] is inverted", a.name, c.count[0], c.count[1]));
                }
                if let Some(host) = c.to.strip_prefix("external:") {
                    host_name(host).map_err(in_call)?;
                }
                url_path("path", &c.path).map_err(in_call)?;
                if c.method.is_empty() || !c.method.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(in_call(format!("method `{}` is not an HTTP method such as GET or POST", c.method)));
                }
                probability("probability", c.probability).map_err(in_call)?;
                range("request_bytes", c.request_bytes).map_err(in_call)?;
                if let Some(alpha) = c.count_alpha {
                    positive("count_alpha", alpha).map_err(in_call)?;
                }
            }
        }
        // A call graph with a cycle would recurse forever.
        fn visit<'a>(s: &'a Scenario, name: &'a str, stack: &mut Vec<&'a str>) -> Result<(), String> {
            if stack.contains(&name) {
                return Err(format!("agents call each other in a cycle: {} -> {name}", stack.join(" -> ")));
            }
            stack.push(name);
            if let Some(a) = s.agents.iter().find(|a| a.name == name) {
                for c in a.calls.iter().filter(|c| !c.to.starts_with("external:")) {
                    visit(s, &c.to, stack)?;
                }
            }
            stack.pop();
            Ok(())
        }
        visit(self, &self.entry.to, &mut Vec::new())
    }

    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }
}

// Checks of single values (TOML also allows `inf` and `nan`, which none of them accepts).

fn positive(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(format!("{key} must be a positive number, not {value}")) }
}

fn non_negative(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 { Ok(()) } else { Err(format!("{key} must be 0 or more, not {value}")) }
}

fn probability(key: &str, value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(format!("{key} must be from 0 to 1, not {value}")) }
}

fn range(key: &str, r: Range) -> Result<(), String> {
    if r[0].is_finite() && r[1].is_finite() && 0.0 <= r[0] && r[0] <= r[1] {
        Ok(())
    } else {
        Err(format!("{key} {r:?} must be [min, max] with 0 <= min <= max"))
    }
}

/// A Kubernetes name part: lowercase letters, digits and `-`, starting and ending with a letter
/// or digit, at most 63 characters.
fn dns_label(key: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key} `{value}` must be lowercase letters, digits and `-` (a Kubernetes name), at most 63 characters"
        ))
    }
}

/// An external API's host name: letters, digits, `-` and `.`.
fn host_name(host: &str) -> Result<(), String> {
    if !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        Ok(())
    } else {
        Err(format!("`external:{host}` needs a host name after `external:` (letters, digits, `-` and `.`)"))
    }
}

/// A URL path as a client sends it: starts with `/`, printable ASCII without spaces or quotes.
fn url_path(key: &str, path: &str) -> Result<(), String> {
    if path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
        Ok(())
    } else {
        Err(format!("{key} `{path}` must start with `/` and hold no spaces, quotes or backslashes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, _) in BUILTIN {
            let s = Scenario::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.name, name);
        }
    }

    /// Two agents, `a` sending requests to `b`; tests append `b`'s calls.
    const TWO_AGENTS: &str = r#"
        name = "t"
        [entry]
        from = "a"
        to = "b"
        [[agents]]
        name = "a"
        namespace = "x"
        [[agents]]
        name = "b"
        namespace = "x"
    "#;

    #[test]
    fn rejects_cycles_and_unknown_agents() {
        let calling = |to: &str| format!("{TWO_AGENTS}\n[[agents.calls]]\nto = \"{to}\"\n");
        let err = Scenario::parse("bad", &calling("b")).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
        let err = Scenario::parse("bad", &calling("zzz")).unwrap_err();
        assert!(err.to_string().contains("invalid scenario"), "{err}");
    }

    /// Names that would make broken pods, URLs or hosts in the flows are refused, naming them.
    #[test]
    fn rejects_names_the_flows_cannot_carry() {
        for (text, expected) in [
            (format!("{TWO_AGENTS}\n[[agents]]\nname = \"b\"\nnamespace = \"y\"\n"), "agent `b` is defined twice"),
            (
                TWO_AGENTS.replace("name = \"a\"", "name = \"A a\"").replace("from = \"a\"", "from = \"A a\""),
                "agent name `A a`",
            ),
            (TWO_AGENTS.replacen("namespace = \"x\"", "namespace = \"\"", 1), "namespace ``"),
            (format!("{TWO_AGENTS}\n[[agents.calls]]\nto = \"external:\"\n"), "needs a host name"),
            (TWO_AGENTS.replace("to = \"b\"", "to = \"b\"\npath = \"run\""), "entry.path `run`"),
        ] {
            let err = Scenario::parse("n", &text).expect_err(expected).to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    /// Values out of their range are refused with the key that holds them, not simulated.
    #[test]
    fn rejects_values_out_of_range() {
        let base = format!("{TWO_AGENTS}\n# agent\n[[agents.calls]]\nto = \"a\"\n# call\n");
        let base = base.as_str();
        Scenario::parse("r", base).expect("the base is valid");
        for (place, line, expected) in [
            ("# call", "probability = 2.0", "probability must be from 0 to 1"),
            ("# call", "probability = -1.0", "probability must be from 0 to 1"),
            ("# call", "count_alpha = 0.0", "count_alpha must be a positive number"),
            ("# call", "request_bytes = [10.0, nan]", "request_bytes"),
            ("# agent", "error_rate = 1.5", "error_rate must be from 0 to 1"),
            ("# agent", "think_ms = [-1.0, 5.0]", "think_ms"),
            ("name = \"t\"", "clock_skew_ms = -5.0", "clock_skew_ms must be 0 or more"),
            ("name = \"t\"", "concurrency = inf", "concurrency must be a positive number"),
            ("# call", "path = \"no-slash\"", "path `no-slash` must start with `/`"),
            ("# call", "path = \"/a b\"", "must start with `/` and hold no spaces"),
            ("# call", "method = \"get me\"", "method `get me` is not an HTTP method"),
        ] {
            let text = base.replace(place, &format!("{place}\n{line}"));
            let err = Scenario::parse("r", &text).expect_err(line).to_string();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }
}
