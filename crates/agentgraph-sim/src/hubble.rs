//! Hubble JSON exactly as `hubble observe -o json` prints it (proto field names, Hubble's key
//! order, 64-bit integers as strings, RFC 3339 `Z` times), for the simulated flows.

use std::fmt::Write as _;
use std::sync::Arc;

use agentgraph_proto::time::write_rfc3339_nanos;

/// One endpoint as Hubble prints it, prepared once per pod: with and without the endpoint `ID`
/// (Hubble sets it only for endpoints local to the reporting node).
#[derive(Clone, Debug)]
pub struct EndpointJson {
    /// The endpoint object as the node hosting it prints it, and as other nodes do. Shared:
    /// every record of a call holds its two endpoints until it is written.
    pub local: Arc<str>,
    pub remote: Arc<str>,
    pub ip: String,
    pub node: usize,
    /// `namespace/pod`, empty outside the cluster.
    pub pod: String,
    /// The contract's agent name.
    pub agent: String,
}

impl EndpointJson {
    #[allow(clippy::too_many_arguments)]
    pub fn pod(
        id: u32,
        identity: u32,
        namespace: &str,
        labels: &[String],
        pod_name: &str,
        workload: (&str, &str),
        ip: String,
        node: usize,
        agent: String,
    ) -> Self {
        let mut body = String::new();
        let _ = write!(body, r#""identity":{identity},"cluster_name":"default","namespace":"{namespace}","labels":["#);
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            let _ = write!(body, r#""{l}""#);
        }
        let _ = write!(
            body,
            r#"],"pod_name":"{pod_name}","workloads":[{{"name":"{}","kind":"{}"}}]}}"#,
            workload.0, workload.1
        );
        EndpointJson {
            local: format!(r#"{{"ID":{id},{body}"#).into(),
            remote: format!("{{{body}").into(),
            ip,
            node,
            pod: format!("{namespace}/{pod_name}"),
            agent,
        }
    }

    /// A reserved identity (`host`, `world`) without pod.
    pub fn reserved(identity: u32, name: &str, ip: String, node: usize) -> Self {
        let body = format!(r#"{{"identity":{identity},"labels":["reserved:{name}"]}}"#);
        EndpointJson {
            local: body.clone().into(),
            remote: body.into(),
            ip,
            node,
            pod: String::new(),
            agent: format!("reserved/{name}"),
        }
    }
}

/// The L7 HTTP parts of one record.
pub struct HttpParts<'a> {
    pub response: bool,
    pub egress: bool,
    pub method: &'a str,
    pub url: &'a str,
    pub status: u16,
    pub latency_ns: i64,
    pub headers: &'a [(&'a str, String)],
    pub trace_id: Option<&'a str>,
}

/// A timestamp as Go's protojson prints it: RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits,
/// as few as keep its value (`…:00Z`, `…:00.998Z`, `…:00.123456789Z`).
fn write_protojson_time(out: &mut String, time: i64) {
    write_rfc3339_nanos(out, time);
    // `….nnnnnnnnnZ`: drop trailing groups of three zeros, and the dot when nothing is left.
    let fraction_end = out.len() - 1;
    let mut keep = 9;
    while keep > 0 && out[fraction_end - (9 - keep) - 3..fraction_end - (9 - keep)] == *"000" {
        keep -= 3;
    }
    let cut = if keep == 0 { 10 } else { 9 - keep };
    out.replace_range(fraction_end - cut..fraction_end, "");
}

/// Writes common flow prefix fields in Hubble order up to and including `destination`.
#[allow(clippy::too_many_arguments)]
fn prefix(
    out: &mut String,
    time: i64,
    uuid: &str,
    verdict: &str,
    src: &EndpointJson,
    dst: &EndpointJson,
    l4: &str,
    node: usize,
    extra: &str,
) {
    out.push_str(r#"{"flow":{"time":""#);
    write_protojson_time(out, time);
    let _ = write!(
        out,
        r#"","uuid":"{uuid}","emitter":{{"name":"Hubble","version":"1.19.1+gd0d0c879"}},"verdict":"{verdict}"{extra},"IP":{{"source":"{}","destination":"{}","ipVersion":"IPv4"}},"l4":{l4},"source":{},"destination":{}"#,
        src.ip,
        dst.ip,
        if src.node == node { &src.local } else { &src.remote },
        if dst.node == node { &dst.local } else { &dst.remote },
    );
}

fn node_fields(out: &mut String, node: usize) {
    let _ = write!(
        out,
        r#","node_name":"kind-worker{n}","node_labels":["beta.kubernetes.io/arch=amd64","beta.kubernetes.io/os=linux","kubernetes.io/arch=amd64","kubernetes.io/hostname=kind-worker{n}","kubernetes.io/os=linux"]"#,
        n = node_suffix(node)
    );
}

/// `kind-worker`, `kind-worker2`, ...
pub fn node_name(node: usize) -> String {
    format!("kind-worker{}", node_suffix(node))
}

fn node_suffix(node: usize) -> String {
    if node == 0 { String::new() } else { (node + 1).to_string() }
}

fn suffix(out: &mut String, time: i64, node: usize) {
    let _ = write!(out, r#"}},"node_name":"kind-worker{}","time":""#, node_suffix(node));
    write_protojson_time(out, time);
    out.push_str("\"}\n");
}

/// An L7 HTTP request or response record. `src`/`dst` are the packet's source and destination
/// (the responder is the source of a response).
#[allow(clippy::too_many_arguments)]
pub fn http_line(
    out: &mut String,
    time: i64,
    uuid: &str,
    node: usize,
    src: &EndpointJson,
    dst: &EndpointJson,
    sport: u16,
    dport: u16,
    h: &HttpParts<'_>,
) {
    let l4 = format!(r#"{{"TCP":{{"source_port":{sport},"destination_port":{dport}}}}}"#);
    prefix(out, time, uuid, "FORWARDED", src, dst, &l4, node, "");
    out.push_str(r#","Type":"L7""#);
    node_fields(out, node);
    out.push_str(r#","l7":{"type":""#);
    out.push_str(if h.response { "RESPONSE\"" } else { "REQUEST\"" });
    if h.response && h.latency_ns > 0 {
        let _ = write!(out, r#","latency_ns":"{}""#, h.latency_ns);
    }
    out.push_str(r#","http":{"#);
    if h.response && h.status > 0 {
        let _ = write!(out, r#""code":{},"#, h.status);
    }
    let _ = write!(out, r#""method":"{}","url":"{}","protocol":"HTTP/1.1","headers":["#, h.method, h.url);
    for (i, (k, v)) in h.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"key":"{k}","value":"{v}"}}"#);
    }
    out.push_str("]}}");
    if h.response {
        out.push_str(r#","reply":true"#);
    }
    let _ = write!(
        out,
        r#","event_type":{{"type":129}},"traffic_direction":"{}","is_reply":{}"#,
        if h.egress { "EGRESS" } else { "INGRESS" },
        h.response
    );
    if let Some(t) = h.trace_id {
        let _ = write!(out, r#","trace_context":{{"parent":{{"trace_id":"{t}"}}}}"#);
    }
    if h.response {
        let _ = write!(
            out,
            r#","Summary":"HTTP/1.1 {} {}ms ({} {})""#,
            h.status,
            h.latency_ns / 1_000_000,
            h.method,
            h.url
        );
    } else {
        let _ = write!(out, r#","Summary":"HTTP/1.1 {} {}""#, h.method, h.url);
    }
    suffix(out, time, node);
}

/// What became of a connection's first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynFate {
    /// Seen leaving the source endpoint (an L3/L4 trace event).
    Traced,
    /// Redirected to the node's L7 proxy (a connection whose HTTP Hubble also records).
    ToProxy,
    /// Dropped by network policy.
    Dropped,
}

/// An L3/L4 flow of a connection's SYN.
#[allow(clippy::too_many_arguments)]
pub fn syn_line(
    out: &mut String,
    time: i64,
    uuid: &str,
    node: usize,
    src: &EndpointJson,
    dst: &EndpointJson,
    sport: u16,
    dport: u16,
    fate: SynFate,
    destination_name: Option<&str>,
) {
    let l4 = format!(r#"{{"TCP":{{"source_port":{sport},"destination_port":{dport},"flags":{{"SYN":true}}}}}}"#);
    let (verdict, extra, fields) = match fate {
        SynFate::Traced => (
            "FORWARDED",
            "",
            r#","event_type":{"type":4,"sub_type":3},"traffic_direction":"EGRESS","trace_observation_point":"TO_STACK","trace_reason":"NEW","is_reply":false,"interface":{"index":11,"name":"lxc0"},"Summary":"TCP Flags: SYN""#,
        ),
        SynFate::ToProxy => (
            "FORWARDED",
            "",
            r#","event_type":{"type":4,"sub_type":1},"traffic_direction":"EGRESS","trace_observation_point":"TO_PROXY","trace_reason":"NEW","is_reply":false,"Summary":"TCP Flags: SYN""#,
        ),
        SynFate::Dropped => (
            "DROPPED",
            r#","drop_reason":133"#,
            r#","event_type":{"type":1,"sub_type":133},"traffic_direction":"EGRESS","drop_reason_desc":"POLICY_DENIED","Summary":"TCP Flags: SYN""#,
        ),
    };
    prefix(out, time, uuid, verdict, src, dst, &l4, node, extra);
    out.push_str(r#","Type":"L3_L4""#);
    node_fields(out, node);
    if let Some(name) = destination_name {
        // What the DNS proxy saw the client look up for this address, without the final dot.
        let _ = write!(out, r#","destination_names":["{}"]"#, name.trim_end_matches('.'));
    }
    out.push_str(fields);
    suffix(out, time, node);
}

/// A DNS request or response seen by the DNS proxy.
#[allow(clippy::too_many_arguments)]
pub fn dns_line(
    out: &mut String,
    time: i64,
    uuid: &str,
    node: usize,
    src: &EndpointJson,
    dst: &EndpointJson,
    sport: u16,
    dport: u16,
    query: &str,
    answer: &str,
    response: bool,
) {
    let l4 = format!(r#"{{"UDP":{{"source_port":{sport},"destination_port":{dport}}}}}"#);
    prefix(out, time, uuid, "FORWARDED", src, dst, &l4, node, "");
    out.push_str(r#","Type":"L7""#);
    node_fields(out, node);
    if response {
        let _ = write!(
            out,
            r#","l7":{{"type":"RESPONSE","dns":{{"query":"{query}","ips":["{answer}"],"ttl":30,"observation_source":"proxy","qtypes":["A"],"rrtypes":["A"]}}}},"reply":true,"event_type":{{"type":129}},"traffic_direction":"EGRESS","is_reply":true,"Summary":"DNS Answer \"{answer}\" TTL: 30 (Proxy {query} A)""#
        );
    } else {
        let _ = write!(
            out,
            r#","l7":{{"type":"REQUEST","dns":{{"query":"{query}","observation_source":"proxy","qtypes":["A"]}}}},"event_type":{{"type":129}},"traffic_direction":"EGRESS","is_reply":false,"Summary":"DNS Query {query} A""#
        );
    }
    suffix(out, time, node);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_protojson_does() {
        let base = 1_795_600_800_000_000_000; // 2026-11-25T10:00:00Z
        for (offset, text) in [
            (0, "2026-11-25T10:00:00Z"),
            (998_000_000, "2026-11-25T10:00:00.998Z"),
            (998_500_000, "2026-11-25T10:00:00.998500Z"),
            (123_456_789, "2026-11-25T10:00:00.123456789Z"),
            (100, "2026-11-25T10:00:00.000000100Z"),
            (1_000, "2026-11-25T10:00:00.000001Z"),
        ] {
            let mut out = String::from("x");
            write_protojson_time(&mut out, base + offset);
            assert_eq!(out, format!("x{text}"));
            assert_eq!(agentgraph_proto::time::parse_rfc3339_nanos(text.as_bytes()), Some(base + offset), "{text}");
        }
    }
}
