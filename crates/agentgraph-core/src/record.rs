//! The engine's compact record of one L7 HTTP request or response, and the normalizer that builds
//! it from a decoded flow: agent names, connection, trace and request ids, context size.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use agentgraph_proto::{FlowType, FlowView, JStr, L7Type, TrafficDirection};

use crate::Nanos;
use crate::names::{AgentNamer, EndpointInfo};

/// Settings of the normalizer.
#[derive(Clone, Debug)]
pub struct NormalizeConfig {
    /// Label keys that name an agent, in order of preference.
    pub name_labels: Vec<String>,
    /// Header carrying a propagated request id (case-insensitive).
    pub request_id_header: String,
    /// Headers giving the context size of a request, besides `Content-Length` (case-insensitive);
    /// the first one present wins over `Content-Length`.
    pub context_size_headers: Vec<String>,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            name_labels: crate::names::DEFAULT_NAME_LABELS.iter().map(|s| s.to_string()).collect(),
            request_id_header: "x-request-id".into(),
            context_size_headers: vec!["x-context-size".into()],
        }
    }
}

/// The node whose proxy recorded a flow: a 64-bit hash of its name. Nodes are only compared
/// (which clock a time was read on) and keyed on, never printed, so the name is not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    pub fn of(name: &[u8]) -> NodeId {
        NodeId(seeded_hash(0x6e6f_6465, name))
    }
}

/// One side of an HTTP exchange as a record saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub info: Arc<EndpointInfo>,
    pub ip: Option<IpAddr>,
    pub port: u16,
}

/// One L7 HTTP record (request or response), normalized so that `client` is always the side that
/// sent the request, whichever way the record points.
#[derive(Clone, Debug)]
pub struct HttpRecord {
    pub time: Nanos,
    pub node: NodeId,
    pub direction: TrafficDirection,
    pub is_response: bool,
    pub client: Peer,
    pub server: Peer,
    pub method: Arc<str>,
    /// URL path without query string or fragment.
    pub path: Arc<str>,
    /// Hash of method and full URL, for matching records of one exchange.
    pub url_key: u64,
    pub http2: bool,
    /// HTTP status (responses), 0 when absent.
    pub status: u16,
    /// `latency_ns` of a response, 0 when unknown.
    pub latency_ns: u64,
    pub request_id: Option<Arc<str>>,
    pub trace_id: Option<u128>,
    /// Body size of the request this record describes (request records, or responses that carry
    /// the request's headers).
    pub request_bytes: Option<u64>,
    /// Body size of the response (response records that carry response headers).
    pub response_bytes: Option<u64>,
    /// Orders records with equal times independently of arrival order.
    pub tiebreak: u64,
}

/// What a decoded flow means to the engine.
#[derive(Debug)]
// Not boxed: nearly every flow of interest is an HTTP record, moved once into the reorder
// buffer, and an allocation per record cost more than the moves.
#[allow(clippy::large_enum_variant)]
pub enum Normalized {
    Http(HttpRecord),
    /// A flow the analyzer does not use (L3/L4, DNS, Kafka, ...).
    Ignored,
}

/// What a header tells normalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeaderRole {
    RequestId,
    ContentLength,
    TraceParent,
    /// Sent with requests only: a response record carrying it logged the request's headers.
    RequestLike,
    /// Sent with responses only.
    ResponseLike,
    ContextSize,
}

/// The header names normalization reads (first match wins), and which name lengths occur:
/// most headers of a record are none of them and are passed over on their length alone.
#[derive(Debug)]
struct HeaderNames {
    /// ASCII-lowercased, as [`eq_lowercase_name`] compares.
    names: Vec<(String, HeaderRole)>,
    /// Bit `min(n, 127)` set when some name is `n` bytes long.
    lengths: u128,
}

/// A name length's bit in [`HeaderNames::lengths`] (127 stands for that long or longer).
fn length_bit(len: usize) -> u128 {
    1 << len.min(127)
}

impl HeaderNames {
    fn new(config: &NormalizeConfig) -> Self {
        use HeaderRole::*;
        let mut names = vec![
            (config.request_id_header.clone(), RequestId),
            ("content-length".to_string(), ContentLength),
            ("traceparent".to_string(), TraceParent),
        ];
        for h in ["user-agent", "accept", "accept-encoding", ":authority", "host"] {
            names.push((h.to_string(), RequestLike));
        }
        for h in ["date", "server", "x-envoy-upstream-service-time"] {
            names.push((h.to_string(), ResponseLike));
        }
        names.extend(config.context_size_headers.iter().map(|h| (h.clone(), ContextSize)));
        for (name, _) in &mut names {
            name.make_ascii_lowercase();
        }
        let lengths = names.iter().fold(0, |m, (n, _)| m | length_bit(n.len()));
        HeaderNames { names, lengths }
    }

    fn role(&self, key: JStr<'_>) -> Option<HeaderRole> {
        // An escaped key is longer raw than decoded: compare it with every name.
        let len = key.raw().len();
        if !key.is_escaped() && self.lengths & length_bit(len) == 0 {
            return None;
        }
        let matches = |name: &str| {
            if key.is_escaped() {
                key.eq_ignore_ascii_case(name)
            } else {
                eq_lowercase_name(key.raw(), name.as_bytes())
            }
        };
        self.names.iter().find(|(name, _)| matches(name)).map(|(_, role)| *role)
    }
}

/// Whether `key` equals `lower` (ASCII-lowercased) ignoring ASCII case, as
/// `<[u8]>::eq_ignore_ascii_case` says, eight bytes at a time: most headers of a record are
/// among the few names normalization reads, so most comparisons run to the end, and the
/// standard byte loop had cost about 160 instructions each.
fn eq_lowercase_name(key: &[u8], lower: &[u8]) -> bool {
    let n = key.len();
    if n != lower.len() {
        return false;
    }
    if n < 8 {
        return key.iter().zip(lower).all(|(k, l)| k.to_ascii_lowercase() == *l);
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    // Whole words, then the last eight bytes (overlapping the word before when `n` is not a
    // multiple of eight).
    let mut at = 0;
    while at + 8 < n {
        if ascii_lowercase_word(word(key, at)) != word(lower, at) {
            return false;
        }
        at += 8;
    }
    ascii_lowercase_word(word(key, n - 8)) == word(lower, n - 8)
}

/// The eight bytes of `x` with `A`–`Z` made lowercase, every other byte (non-ASCII included)
/// unchanged.
fn ascii_lowercase_word(x: u64) -> u64 {
    const EACH: u64 = 0x0101_0101_0101_0101;
    let low7 = x & (0x7F * EACH);
    // Per byte, no carries between bytes: the high bit set when the byte is at least `A`, and
    // when it is past `Z`.
    let from_a = low7 + (0x80 - u64::from(b'A')) * EACH;
    let past_z = low7 + (0x80 - u64::from(b'Z') - 1) * EACH;
    let upper = from_a & !past_z & !x & (0x80 * EACH);
    x | (upper >> 2)
}

/// Builds [`HttpRecord`]s from flows.
#[derive(Debug)]
pub struct Normalizer {
    headers: HeaderNames,
    namer: AgentNamer,
}

impl Normalizer {
    pub fn new(config: NormalizeConfig) -> Self {
        let namer = AgentNamer::new(config.name_labels.clone());
        Normalizer { headers: HeaderNames::new(&config), namer }
    }

    pub fn namer(&self) -> &AgentNamer {
        &self.namer
    }

    /// Normalizes one flow.
    pub fn normalize(&mut self, f: &FlowView<'_>) -> Normalized {
        if f.flow_type != FlowType::L7 && f.flow_type != FlowType::Unknown {
            return Normalized::Ignored;
        }
        // By reference: the views are large (the headers' positions are kept inline).
        let Some(l7) = &f.l7 else { return Normalized::Ignored };
        let Some(http) = &l7.http else { return Normalized::Ignored };
        let is_response = match (l7.kind, f.is_reply) {
            (L7Type::Response, _) => true,
            (L7Type::Request, _) => false,
            (_, Some(r)) => r,
            _ => return Normalized::Ignored,
        };

        let url = http.url.value();
        let (host, path) = split_url(&url);
        let mut request_id = None;
        let mut traceparent = None;
        let mut content_length = None;
        let mut context_size = None;
        let mut request_like_headers = false;
        let mut response_like_headers = false;
        for (key, value) in http.headers.iter() {
            match self.headers.role(key) {
                Some(HeaderRole::RequestId) if request_id.is_none() && !value.is_empty() => {
                    // Not interned: most request ids are seen on one call only, and would crowd out the
                    // few names that repeat on every record.
                    request_id = Some(Arc::from(&*value.value()));
                }
                Some(HeaderRole::ContentLength) => content_length = parse_size(value),
                Some(HeaderRole::TraceParent) => {
                    traceparent = Some(value);
                    request_like_headers = true;
                }
                Some(HeaderRole::RequestLike) => request_like_headers = true,
                Some(HeaderRole::ResponseLike) => response_like_headers = true,
                Some(HeaderRole::ContextSize) if context_size.is_none() => context_size = parse_size(value),
                Some(HeaderRole::RequestId | HeaderRole::ContextSize) | None => {}
            }
        }
        let trace_id = parse_trace_id(f.trace_id.raw()).or_else(|| traceparent.and_then(parse_traceparent));
        let body = context_size.or(content_length);
        // Envoy logs either the response's or the request's headers on a response record.
        let carries_request_headers = !is_response || (request_like_headers && !response_like_headers);
        let (request_bytes, response_bytes) =
            if carries_request_headers { (body, None) } else { (None, content_length) };

        // Only a request's destination names belong to the server; on a response they name the
        // client.
        let (client_view, server_view, client_ip, server_ip, client_port, server_port, server_dns) = if is_response {
            (&f.destination, &f.source, f.ip_destination, f.ip_source, f.destination_port, f.source_port, None)
        } else {
            (
                &f.source,
                &f.destination,
                f.ip_source,
                f.ip_destination,
                f.source_port,
                f.destination_port,
                f.destination_names.iter().next(),
            )
        };
        let client = Peer {
            info: self.namer.endpoint(client_view, None, ""),
            ip: parse_ip(client_ip),
            port: client_port as u16,
        };
        let server = Peer {
            info: self.namer.endpoint(server_view, server_dns, host),
            ip: parse_ip(server_ip),
            port: server_port as u16,
        };

        let method = self.namer.intern(&http.method.value());
        let path = self.namer.intern(path);
        let node_name = f.node_name.value();
        let node = NodeId::of(node_name.as_bytes());
        let url_key = seeded_hash(0x7572_6c6b_6579, (method.as_bytes(), url.as_bytes()));
        // Orders records with equal times by their content, the same whether they came from a
        // JSON dump or from gRPC.
        let tiebreak = seeded_hash(
            0x6167_656e_7467_7261,
            (
                node_name.as_bytes(),
                f.traffic_direction,
                is_response,
                client.ip,
                client.port,
                server.ip,
                server.port,
                url_key,
                http.code,
                request_id.as_deref(),
            ),
        );
        Normalized::Http(HttpRecord {
            time: f.time_ns,
            node,
            direction: f.traffic_direction,
            is_response,
            client,
            server,
            url_key,
            method,
            path,
            http2: http.protocol.raw().starts_with(b"HTTP/2"),
            status: http.code.min(u32::from(u16::MAX)) as u16,
            latency_ns: if is_response { l7.latency_ns } else { 0 },
            request_id,
            trace_id,
            request_bytes,
            response_bytes,
            tiebreak,
        })
    }
}

/// A path's route: each segment that looks like an id replaced by `{id}`, so that
/// `/v1/threads/thread_8fK2…/runs` and its siblings are one kind of call for the timing
/// statistics (agent APIs put thread, run and job ids in their paths; with the raw path as key,
/// every such call would be a kind of its own, never learned). An id is a segment of digits, or
/// of at least eight characters with at least three digits (UUIDs, long hex strings, tokens);
/// versions (`v1`, `v1beta1`), words and model names with a digit or two (`gpt-4o-mini`) stay.
pub fn route_of(path: &str) -> Cow<'_, str> {
    let looks_like_id = |len: usize, digits: usize| digits > 0 && (digits == len || (len >= 8 && digits >= 3));
    // One pass for the common answer, "no id" (it runs for every call).
    let (mut len, mut digits, mut any) = (0, 0, false);
    for &c in path.as_bytes() {
        if c == b'/' {
            any |= looks_like_id(len, digits);
            (len, digits) = (0, 0);
        } else {
            len += 1;
            digits += usize::from(c.is_ascii_digit());
        }
    }
    if !(any || looks_like_id(len, digits)) {
        return Cow::Borrowed(path);
    }
    let id = |s: &str| looks_like_id(s.len(), s.bytes().filter(u8::is_ascii_digit).count());
    let segments: Vec<&str> = path.split('/').map(|s| if id(s) { "{id}" } else { s }).collect();
    Cow::Owned(segments.join("/"))
}

/// Splits `scheme://host:port/path?query` into host (without port) and path (without query).
/// Byte scans rather than `str` patterns: it runs on every record.
fn split_url(url: &str) -> (&str, &str) {
    let bytes = url.as_bytes();
    // `://`, found by its colon (comparing three-byte windows calls memcmp for each).
    let scheme_end =
        (0..bytes.len().saturating_sub(2)).find(|&i| bytes[i] == b':' && bytes[i + 1] == b'/' && bytes[i + 2] == b'/');
    let (authority, path) = match scheme_end {
        Some(i) => {
            let rest = &url[i + 3..];
            match rest.bytes().position(|c| c == b'/') {
                Some(j) => (&rest[..j], &rest[j..]),
                None => (rest, "/"),
            }
        }
        None => ("", url),
    };
    let path = &path[..path.bytes().position(|c| c == b'?' || c == b'#').unwrap_or(path.len())];
    let host = match authority.bytes().rposition(|c| c == b'@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let host = if let Some(bracketed) = host.strip_prefix('[') {
        bracketed.split_once(']').map_or(host, |(h, _)| h)
    } else {
        &host[..host.bytes().position(|c| c == b':').unwrap_or(host.len())]
    };
    (host, if path.is_empty() { "/" } else { path })
}

fn parse_size(v: JStr<'_>) -> Option<u64> {
    std::str::from_utf8(v.raw()).ok()?.trim().parse().ok()
}

fn parse_ip(s: JStr<'_>) -> Option<IpAddr> {
    let raw = s.raw();
    // Two per record: a plain dotted quad is read directly, anything else (IPv6, or a form the
    // standard parser judges, such as leading zeros) by the standard parser.
    dotted_quad(raw).map(IpAddr::V4).or_else(|| std::str::from_utf8(raw).ok()?.parse().ok())
}

/// `a.b.c.d` with each part 0 to 255 written without leading zeros; `None` for anything else.
/// Part by part, each one to three digits read without a loop over the bytes' classes: it runs
/// twice per record.
fn dotted_quad(raw: &[u8]) -> Option<std::net::Ipv4Addr> {
    let digit = |i: usize| raw.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9);
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (part, octet) in octets.iter_mut().enumerate() {
        if part > 0 {
            if raw.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let first = digit(i)?;
        let mut value = u16::from(first);
        i += 1;
        // A leading zero stands alone.
        if first != 0 {
            for _ in 0..2 {
                let Some(d) = digit(i) else { break };
                value = value * 10 + u16::from(d);
                i += 1;
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    (i == raw.len()).then(|| std::net::Ipv4Addr::from(octets))
}

/// A W3C trace id: 32 hex digits (either case), not all zero, as a number.
fn parse_trace_id(raw: &[u8]) -> Option<u128> {
    if raw.len() != 32 {
        return None;
    }
    let mut id: u128 = 0;
    for &c in raw {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        id = id << 4 | u128::from(digit);
    }
    (id != 0).then_some(id)
}

/// The trace id of a `traceparent` header (`00-<trace id>-<span id>-<flags>`).
fn parse_traceparent(v: JStr<'_>) -> Option<u128> {
    let raw = v.raw();
    if raw.len() < 55 || raw[2] != b'-' || raw[35] != b'-' {
        return None;
    }
    parse_trace_id(&raw[3..35])
}

/// A 64-bit hash of `value` under `seed`, the same in every run: for keys that are only
/// compared and looked up (nodes, pods, connections, kinds of call), and never printed. Each
/// use has a seed of its own, so equal values hashed for different purposes do not collide.
pub fn seeded_hash(seed: u64, value: impl std::hash::Hash) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(seed).hash_one(value)
}

/// FNV-1a over two byte strings: a stable hash (same value on every run and machine).
pub fn hash_pair(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in a.iter().chain([0u8].iter()).chain(b.iter()) {
        h ^= u64::from(c);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_replaces_ids_and_keeps_names() {
        let cases = [
            ("/v1/chat/completions", "/v1/chat/completions"),
            ("/v1beta1/models/gpt-4o-mini:generate", "/v1beta1/models/gpt-4o-mini:generate"),
            ("/v1/threads/thread_8fK2x9Qa1/runs", "/v1/threads/{id}/runs"),
            ("/jobs/45547d9d-0b9e-4d4d-a2a4-c12e779409b9", "/jobs/{id}"),
            ("/reviews/0", "/reviews/{id}"),
            ("/orders/12345/items/7", "/orders/{id}/items/{id}"),
            ("/blob/sha256", "/blob/sha256"),
            ("/", "/"),
            ("", ""),
        ];
        for (path, route) in cases {
            assert_eq!(route_of(path), route, "{path}");
        }
        assert!(matches!(route_of("/v1/chat/completions"), Cow::Borrowed(_)), "no copy without an id");
    }

    #[test]
    fn splits_urls() {
        assert_eq!(split_url("http://reviews:9080/reviews/0"), ("reviews", "/reviews/0"));
        assert_eq!(split_url("https://api.openai.com/v1/chat?x=1"), ("api.openai.com", "/v1/chat"));
        assert_eq!(split_url("http://10.0.0.1:80"), ("10.0.0.1", "/"));
        assert_eq!(split_url("http://[fd00::1]:80/a#b"), ("fd00::1", "/a"));
        assert_eq!(split_url("/relative?q"), ("", "/relative"));
        assert_eq!(split_url("http://user:pw@api.local:8080/p?q#f"), ("api.local", "/p"));
        assert_eq!(split_url("http://a?b"), ("a?b", "/"));
        assert_eq!(split_url("http://[fd00::1/x"), ("[fd00::1", "/x"));
        assert_eq!(split_url("http://"), ("", "/"));
        assert_eq!(split_url(""), ("", "/"));
        assert_eq!(split_url("https://h/#frag"), ("h", "/"));
    }

    /// Header names are matched case-insensitively, escaped or not, whatever their length,
    /// and the configured ones take part like the built-in ones.
    #[test]
    fn reads_the_headers_it_knows_and_passes_over_the_rest() {
        let long = format!("x-{}", "c".repeat(140));
        let line = format!(
            r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","Type":"L7","l7":{{"type":"REQUEST","http":{{"method":"POST","url":"http://a/b","headers":[{{"key":"Accept","value":"*/*"}},{{"key":"X-Request-\u0049d","value":"r-1"}},{{"key":"X-Request-Id","value":"r-2"}},{{"key":"Content-Type","value":"text/plain"}},{{"key":"CONTENT-LENGTH","value":"42"}},{{"key":"{long}","value":"7000"}}]}}}}}}}}"#
        );
        let agentgraph_proto::Event::Flow(f) = agentgraph_proto::decode_line(line.as_bytes()).expect("decodes") else {
            panic!("a flow")
        };
        let config = NormalizeConfig { context_size_headers: vec![long.to_uppercase()], ..NormalizeConfig::default() };
        let Normalized::Http(r) = Normalizer::new(config).normalize(&f) else { panic!("an HTTP record") };
        // The first request id wins; a configured context-size header wins over Content-Length.
        assert_eq!(r.request_id.as_deref(), Some("r-1"));
        assert_eq!(r.request_bytes, Some(7000));
        let Normalized::Http(r) = Normalizer::new(NormalizeConfig::default()).normalize(&f) else { panic!() };
        assert_eq!(r.request_bytes, Some(42));
    }

    #[test]
    fn compares_header_names_as_the_standard_library_does() {
        // Every byte value at every place of names of every length up to 30, against a
        // lowercase name: the same answer as `eq_ignore_ascii_case`.
        let name = b"x-envoy-upstream-service-time";
        for n in 0..=name.len() {
            let lower = &name[..n];
            for at in 0..n {
                for byte in 0..=u8::MAX {
                    let mut key = lower.to_vec();
                    key[at] = byte;
                    assert_eq!(eq_lowercase_name(&key, lower), key.eq_ignore_ascii_case(lower), "{key:?}");
                }
            }
            let upper = lower.to_ascii_uppercase();
            assert!(eq_lowercase_name(&upper, lower));
            assert!(!eq_lowercase_name(&upper, &name[..n.saturating_sub(1)]) || n == 0);
        }
        for word in [0u64, u64::MAX, 0x4041_5A5B_6061_7A7B, 0xC1DA_C0DB_4142_8081] {
            let bytes = word.to_le_bytes().map(|b| b.to_ascii_lowercase());
            assert_eq!(ascii_lowercase_word(word), u64::from_le_bytes(bytes), "{word:#x}");
        }
    }

    #[test]
    fn reads_addresses_as_the_standard_parser_does() {
        let samples = [
            "10.244.1.13",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1..3.4",
            "1.2.3.4 ",
            " 1.2.3.4",
            "a.b.c.d",
            "1.2.3.-4",
            "+1.2.3.4",
            "",
            ".",
            "999.1.1.1",
            "1.2.3.400",
            "fd00::1",
            "::ffff:10.0.0.1",
            "[fd00::1]",
            "00.0.0.0",
            "0.0.0.00",
            "1.2.3.",
            "1.2.3.4.",
            ".1.2.3",
            "1.2.3.256",
            "1.2.3.0",
            "10.0.0.1000",
            "0.0.0.0.0",
            "1.2.3.4\n",
        ];
        for text in samples {
            assert_eq!(parse_ip(JStr::plain(text)), text.parse().ok(), "{text:?}");
        }
    }

    #[test]
    fn the_dotted_quad_reader_accepts_exactly_what_the_standard_parser_does() {
        // Not only through the fallback: the fast reader alone must agree on every form.
        let parts = ["0", "1", "9", "10", "99", "100", "199", "255", "256", "999", "1000", "01", "001", "", "a", "-1"];
        for a in parts {
            for b in ["0", "255", "01", ""] {
                for c in parts {
                    for d in ["7", "256", "00", "1 "] {
                        let text = format!("{a}.{b}.{c}.{d}");
                        assert_eq!(dotted_quad(text.as_bytes()), text.parse().ok(), "{text:?}");
                    }
                }
            }
        }
        for text in ["1.2.3", "1.2.3.4.", "1.2.3.4.5", ".1.2.3", "1..2.3", "255.255.255.255", "", "1"] {
            assert_eq!(dotted_quad(text.as_bytes()), text.parse().ok(), "{text:?}");
        }
    }

    #[test]
    fn reads_trace_ids_as_hex_numbers() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(parse_trace_id(id.as_bytes()), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(parse_trace_id(id.to_uppercase().as_bytes()), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
        for bad in [
            "",
            "4bf92f3577b34da6a3ce929d0e0e473",
            "4bf92f3577b34da6a3ce929d0e0e47361",
            "4bf92f3577b34da6a3ce929d0e0e473g",
        ] {
            assert_eq!(parse_trace_id(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_trace_id(b"+bf92f3577b34da6a3ce929d0e0e4736"), None, "no sign");
        assert_eq!(parse_trace_id(b"00000000000000000000000000000000"), None, "all zero");
    }

    #[test]
    fn parses_traceparent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(parse_traceparent(JStr::plain(tp)), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(parse_traceparent(JStr::plain("00-00000000000000000000000000000000-00f067aa0ba902b7-01")), None);
        assert_eq!(parse_traceparent(JStr::plain("garbage")), None);
    }
}
