//! Borrowed views of the Hubble events an analyzer needs: the fields of a `flow.Flow` that name the
//! endpoints, time and L7 HTTP exchange, with strings borrowed from the input line (JSON) or from a
//! decoded protobuf message, so neither path copies what it does not keep.

use std::borrow::Cow;

use crate::flow;
use crate::json::{Cursor, PairIter, unescape};

/// A string borrowed from its source. JSON strings keep their escapes until asked for the value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JStr<'a> {
    raw: &'a [u8],
    escaped: bool,
}

impl<'a> JStr<'a> {
    /// A string that needs no unescaping (from protobuf, or a JSON string without `\`).
    pub fn plain(s: &'a str) -> Self {
        JStr { raw: s.as_bytes(), escaped: false }
    }

    pub(crate) fn json(raw: &'a [u8], escaped: bool) -> Self {
        JStr { raw, escaped }
    }

    /// The raw bytes between the quotes, escapes not decoded.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the raw bytes hold escapes (then they are longer than the value).
    pub fn is_escaped(&self) -> bool {
        self.escaped
    }

    /// The decoded value; invalid UTF-8 or a bad escape is replaced, never an error, because a
    /// display string must not make a whole flow undecodable.
    pub fn value(&self) -> Cow<'a, str> {
        if self.escaped {
            return Cow::Owned(unescape(self.raw));
        }
        // Valid UTF-8 (nearly always) is borrowed after one fast check; for the short ASCII
        // strings most values are, checking for ASCII costs a fraction of full validation.
        if self.raw.is_ascii() {
            // SAFETY: ASCII bytes are valid UTF-8.
            return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(self.raw) });
        }
        match std::str::from_utf8(self.raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(self.raw),
        }
    }

    /// Compares the decoded value with `s`, ASCII case-insensitively.
    pub fn eq_ignore_ascii_case(&self, s: &str) -> bool {
        if self.escaped { self.value().eq_ignore_ascii_case(s) } else { self.raw.eq_ignore_ascii_case(s.as_bytes()) }
    }
}

/// A repeated string field (`labels`, `destination_names`, ...).
#[derive(Clone, Copy, Debug, Default)]
pub enum StrList<'a> {
    #[default]
    Empty,
    /// The raw JSON array, decoded on iteration.
    Json(&'a [u8]),
    Proto(&'a [String]),
}

impl<'a> StrList<'a> {
    /// The strings of the list; elements of the wrong JSON type are skipped.
    pub fn iter(&self) -> impl Iterator<Item = JStr<'a>> + 'a {
        let (json, proto): (Option<&'a [u8]>, &'a [String]) = match *self {
            StrList::Empty => (None, &[]),
            StrList::Json(raw) => (Some(raw), &[]),
            StrList::Proto(items) => (None, items),
        };
        json.into_iter().flat_map(|raw| Cursor::new(raw).array_strings()).chain(proto.iter().map(|s| JStr::plain(s)))
    }
}

/// The `workloads` of an endpoint.
#[derive(Clone, Copy, Debug, Default)]
pub enum WorkloadList<'a> {
    #[default]
    Empty,
    Json(&'a [u8]),
    Proto(&'a [flow::Workload]),
}

impl<'a> WorkloadList<'a> {
    /// `(name, kind)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (JStr<'a>, JStr<'a>)> + 'a {
        let (json, proto): (Option<&'a [u8]>, &'a [flow::Workload]) = match *self {
            WorkloadList::Empty => (None, &[]),
            WorkloadList::Json(raw) => (Some(raw), &[]),
            WorkloadList::Proto(items) => (None, items),
        };
        json.into_iter()
            .flat_map(|raw| Cursor::new(raw).array_pairs(b"name", b"kind"))
            .chain(proto.iter().map(|w| (JStr::plain(&w.name), JStr::plain(&w.kind))))
    }
}

/// The `headers` of an HTTP record.
// The found pairs are kept inline: boxing them would allocate for every record, and the view
// must stay `Copy`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, Default)]
pub enum HeaderList<'a> {
    #[default]
    Empty,
    /// The raw JSON array, decoded on iteration.
    Json(&'a [u8]),
    /// Found by the decoder in the pass that checked the array (the usual case).
    Scanned(ScannedHeaders<'a>),
    Proto(&'a [flow::HttpHeader]),
}

/// Most headers a record's decoder keeps as found; a record with more keeps its raw array.
pub const SCANNED_HEADERS: usize = 12;

/// Header pairs as the decoder found them: positions in the line, so the view stays small and
/// cheap to copy, and the headers are scanned once, not again by every reader.
#[derive(Clone, Copy, Debug)]
pub struct ScannedHeaders<'a> {
    line: &'a [u8],
    spans: [HeaderSpan; SCANNED_HEADERS],
    len: u8,
}

/// Where one header's key and value lie in the line, and whether each holds escapes.
#[derive(Clone, Copy, Debug, Default)]
struct HeaderSpan {
    key: (u32, u16),
    value: (u32, u16),
    key_escaped: bool,
    value_escaped: bool,
}

impl<'a> ScannedHeaders<'a> {
    pub(crate) fn new(line: &'a [u8]) -> Self {
        ScannedHeaders { line, spans: [HeaderSpan::default(); SCANNED_HEADERS], len: 0 }
    }

    /// Adds a pair whose strings lie in the line; false when full (or a string too long for the
    /// positions kept).
    pub(crate) fn push(&mut self, key: JStr<'a>, value: JStr<'a>) -> bool {
        let at = |s: &[u8]| -> Option<(u32, u16)> {
            let start = (s.as_ptr() as usize).checked_sub(self.line.as_ptr() as usize)?;
            Some((u32::try_from(start).ok()?, u16::try_from(s.len()).ok()?))
        };
        let (Some(k), Some(v)) = (at(key.raw()), at(value.raw())) else { return false };
        let Some(span) = self.spans.get_mut(usize::from(self.len)) else { return false };
        *span = HeaderSpan { key: k, value: v, key_escaped: key.is_escaped(), value_escaped: value.is_escaped() };
        self.len += 1;
        true
    }

    /// Pair `i` (below `len`).
    fn pair(&self, i: usize) -> (JStr<'a>, JStr<'a>) {
        let line = self.line;
        let text = |(start, len): (u32, u16), escaped| JStr::json(&line[start as usize..][..usize::from(len)], escaped);
        let span = &self.spans[i];
        (text(span.key, span.key_escaped), text(span.value, span.value_escaped))
    }
}

impl<'a> HeaderList<'a> {
    /// `(key, value)` pairs in the order recorded.
    pub fn iter(&self) -> HeaderPairs<'_, 'a> {
        match self {
            HeaderList::Empty => HeaderPairs::Proto([].iter()),
            HeaderList::Json(raw) => HeaderPairs::Json(Cursor::new(raw).array_pairs(b"key", b"value")),
            HeaderList::Scanned(found) => HeaderPairs::Scanned { found, next: 0 },
            HeaderList::Proto(items) => HeaderPairs::Proto(items.iter()),
        }
    }
}

/// Iterator behind [`HeaderList::iter`]: one step per pair whichever way the list is kept
/// (normalization reads every record's headers, and a chain of adapters over the three forms
/// had cost more than the reading itself).
pub enum HeaderPairs<'s, 'a> {
    Json(PairIter<'a, 3, 5>),
    Scanned { found: &'s ScannedHeaders<'a>, next: usize },
    Proto(std::slice::Iter<'a, flow::HttpHeader>),
}

impl<'a> Iterator for HeaderPairs<'_, 'a> {
    type Item = (JStr<'a>, JStr<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HeaderPairs::Json(pairs) => pairs.next(),
            HeaderPairs::Scanned { found, next } => {
                let i = *next;
                (i < usize::from(found.len)).then(|| {
                    *next += 1;
                    found.pair(i)
                })
            }
            HeaderPairs::Proto(items) => items.next().map(|h| (JStr::plain(&h.key), JStr::plain(&h.value))),
        }
    }
}

/// `flow.Verdict`; names unknown to this build are kept as `Other`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    #[default]
    Unknown,
    Forwarded,
    Dropped,
    Error,
    Audit,
    Redirected,
    Traced,
    Translated,
    Other,
}

impl Verdict {
    pub fn from_name(name: &[u8]) -> Self {
        match name {
            b"VERDICT_UNKNOWN" => Verdict::Unknown,
            b"FORWARDED" => Verdict::Forwarded,
            b"DROPPED" => Verdict::Dropped,
            b"ERROR" => Verdict::Error,
            b"AUDIT" => Verdict::Audit,
            b"REDIRECTED" => Verdict::Redirected,
            b"TRACED" => Verdict::Traced,
            b"TRANSLATED" => Verdict::Translated,
            _ => Verdict::Other,
        }
    }

    pub fn from_number(n: i64) -> Self {
        match n {
            0 => Verdict::Unknown,
            1 => Verdict::Forwarded,
            2 => Verdict::Dropped,
            3 => Verdict::Error,
            4 => Verdict::Audit,
            5 => Verdict::Redirected,
            6 => Verdict::Traced,
            7 => Verdict::Translated,
            _ => Verdict::Other,
        }
    }
}

/// `flow.FlowType` (the JSON key `Type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowType {
    #[default]
    Unknown,
    L3L4,
    L7,
    Sock,
}

impl FlowType {
    pub fn from_name(name: &[u8]) -> Self {
        match name {
            b"L3_L4" => FlowType::L3L4,
            b"L7" => FlowType::L7,
            b"SOCK" => FlowType::Sock,
            _ => FlowType::Unknown,
        }
    }

    pub fn from_number(n: i64) -> Self {
        match n {
            1 => FlowType::L3L4,
            2 => FlowType::L7,
            3 => FlowType::Sock,
            _ => FlowType::Unknown,
        }
    }
}

/// `flow.L7FlowType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L7Type {
    #[default]
    Unknown,
    Request,
    Response,
    Sample,
}

impl L7Type {
    pub fn from_name(name: &[u8]) -> Self {
        match name {
            b"REQUEST" => L7Type::Request,
            b"RESPONSE" => L7Type::Response,
            b"SAMPLE" => L7Type::Sample,
            _ => L7Type::Unknown,
        }
    }

    pub fn from_number(n: i64) -> Self {
        match n {
            1 => L7Type::Request,
            2 => L7Type::Response,
            3 => L7Type::Sample,
            _ => L7Type::Unknown,
        }
    }
}

/// `flow.TrafficDirection`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrafficDirection {
    #[default]
    Unknown,
    Ingress,
    Egress,
}

impl TrafficDirection {
    pub fn from_name(name: &[u8]) -> Self {
        match name {
            b"INGRESS" => TrafficDirection::Ingress,
            b"EGRESS" => TrafficDirection::Egress,
            _ => TrafficDirection::Unknown,
        }
    }

    pub fn from_number(n: i64) -> Self {
        match n {
            1 => TrafficDirection::Ingress,
            2 => TrafficDirection::Egress,
            _ => TrafficDirection::Unknown,
        }
    }
}

/// Which member of `flow.Layer4` is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L4Protocol {
    #[default]
    None,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Other,
}

/// The parts of a `flow.Endpoint` used for agent naming.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointView<'a> {
    /// The whole endpoint object as it appeared in the JSON line (empty for protobuf input): the
    /// same pod prints the same bytes, so it is a cheap cache key for the derived agent name.
    pub raw: &'a [u8],
    pub id: u32,
    pub identity: u32,
    pub cluster_name: JStr<'a>,
    pub namespace: JStr<'a>,
    pub pod_name: JStr<'a>,
    pub labels: StrList<'a>,
    pub workloads: WorkloadList<'a>,
}

/// `flow.HTTP`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpView<'a> {
    pub code: u32,
    pub method: JStr<'a>,
    pub url: JStr<'a>,
    pub protocol: JStr<'a>,
    pub headers: HeaderList<'a>,
}

/// `flow.Layer7`; `http` is set only for HTTP records.
#[derive(Clone, Copy, Debug, Default)]
pub struct L7View<'a> {
    pub kind: L7Type,
    /// `latency_ns`; zero (absent) means unknown.
    pub latency_ns: u64,
    pub http: Option<HttpView<'a>>,
    pub is_dns: bool,
}

/// The fields of a `flow.Flow` that an analyzer reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowView<'a> {
    /// Event time in nanoseconds since the Unix epoch (the flow's own `time`, else the wrapper's).
    pub time_ns: i64,
    /// Random per flow (Cilium 1.14 and later), empty before: carried through to protobuf, where
    /// the collector tells a flow resent after a reconnect by it.
    pub uuid: JStr<'a>,
    pub node_name: JStr<'a>,
    pub verdict: Verdict,
    pub flow_type: FlowType,
    pub ip_source: JStr<'a>,
    pub ip_destination: JStr<'a>,
    pub l4: L4Protocol,
    pub source_port: u32,
    pub destination_port: u32,
    pub source: EndpointView<'a>,
    pub destination: EndpointView<'a>,
    pub destination_names: StrList<'a>,
    pub l7: Option<L7View<'a>>,
    pub traffic_direction: TrafficDirection,
    /// `is_reply` when known, else the legacy `reply` flag when printed.
    pub is_reply: Option<bool>,
    /// `trace_context.parent.trace_id`, empty when absent.
    pub trace_id: JStr<'a>,
}

/// One decoded line or message: what `GetFlowsResponse` / `ExportEvent` can carry.
// Lives on the stack for one line and is never stored, so boxing the flow would only add an
// allocation per line.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Flow(FlowView<'a>),
    /// `lost_events`: events the producer dropped (a ring buffer overflowed upstream).
    LostEvents {
        time_ns: Option<i64>,
        node_name: JStr<'a>,
        num_events_lost: u64,
    },
    /// `node_status` from hubble-relay.
    NodeStatus {
        time_ns: Option<i64>,
        state: JStr<'a>,
        message: JStr<'a>,
    },
    /// An exporter event agentgraph does not use (`agent_event`, `debug_event`).
    Other {
        time_ns: Option<i64>,
    },
}

impl<'a> FlowView<'a> {
    /// A view of a decoded protobuf flow; `wrapper_time_ns` is used when the flow has no time.
    pub fn from_proto(f: &'a flow::Flow, wrapper_time_ns: Option<i64>) -> Option<Self> {
        let time_ns = f.time.as_ref().map(crate::convert::nanos).or(wrapper_time_ns)?;
        let endpoint = |e: &'a Option<flow::Endpoint>| -> EndpointView<'a> {
            match e {
                None => EndpointView::default(),
                Some(e) => EndpointView {
                    raw: &[],
                    id: e.id,
                    identity: e.identity,
                    cluster_name: JStr::plain(&e.cluster_name),
                    namespace: JStr::plain(&e.namespace),
                    pod_name: JStr::plain(&e.pod_name),
                    labels: StrList::Proto(&e.labels),
                    workloads: WorkloadList::Proto(&e.workloads),
                },
            }
        };
        let (l4, source_port, destination_port) = match f.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
            Some(flow::layer4::Protocol::Tcp(t)) => (L4Protocol::Tcp, t.source_port, t.destination_port),
            Some(flow::layer4::Protocol::Udp(u)) => (L4Protocol::Udp, u.source_port, u.destination_port),
            Some(flow::layer4::Protocol::Sctp(s)) => (L4Protocol::Sctp, s.source_port, s.destination_port),
            Some(flow::layer4::Protocol::IcmPv4(_) | flow::layer4::Protocol::IcmPv6(_)) => (L4Protocol::Icmp, 0, 0),
            Some(_) => (L4Protocol::Other, 0, 0),
            None => (L4Protocol::None, 0, 0),
        };
        let l7 = f.l7.as_ref().map(|l| L7View {
            kind: L7Type::from_number(i64::from(l.r#type)),
            latency_ns: l.latency_ns,
            http: match &l.record {
                Some(flow::layer7::Record::Http(h)) => Some(HttpView {
                    code: h.code,
                    method: JStr::plain(&h.method),
                    url: JStr::plain(&h.url),
                    protocol: JStr::plain(&h.protocol),
                    headers: HeaderList::Proto(&h.headers),
                }),
                _ => None,
            },
            is_dns: matches!(l.record, Some(flow::layer7::Record::Dns(_))),
        });
        #[allow(deprecated)]
        let legacy_reply = f.reply;
        Some(FlowView {
            time_ns,
            uuid: JStr::plain(&f.uuid),
            node_name: JStr::plain(&f.node_name),
            verdict: Verdict::from_number(i64::from(f.verdict)),
            flow_type: FlowType::from_number(i64::from(f.r#type)),
            ip_source: f.ip.as_ref().map(|ip| JStr::plain(&ip.source)).unwrap_or_default(),
            ip_destination: f.ip.as_ref().map(|ip| JStr::plain(&ip.destination)).unwrap_or_default(),
            l4,
            source_port,
            destination_port,
            source: endpoint(&f.source),
            destination: endpoint(&f.destination),
            destination_names: StrList::Proto(&f.destination_names),
            l7,
            traffic_direction: TrafficDirection::from_number(i64::from(f.traffic_direction)),
            is_reply: f.is_reply.or(legacy_reply.then_some(true)),
            trace_id: f
                .trace_context
                .as_ref()
                .and_then(|t| t.parent.as_ref())
                .map(|p| JStr::plain(&p.trace_id))
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of a header list gives its pairs in order, and an empty list none.
    #[test]
    fn header_pairs_in_every_form() {
        let pairs = |list: &HeaderList<'_>| -> Vec<(String, String)> {
            list.iter().map(|(k, v)| (k.value().into_owned(), v.value().into_owned())).collect()
        };
        let expected = vec![("A".to_string(), "1".to_string()), ("b".to_string(), "\"2\"".to_string())];
        let proto = [
            flow::HttpHeader { key: "A".into(), value: "1".into() },
            flow::HttpHeader { key: "b".into(), value: "\"2\"".into() },
        ];
        assert_eq!(pairs(&HeaderList::Proto(&proto)), expected);
        let raw = br#"[{"key":"A","value":"1"},{"value":"\"2\"","key":"b"}]"#;
        assert_eq!(pairs(&HeaderList::Json(raw)), expected);
        let line = br#"A 1 b \"2\""#;
        let mut found = ScannedHeaders::new(line);
        assert!(found.push(JStr::json(&line[0..1], false), JStr::json(&line[2..3], false)));
        assert!(found.push(JStr::json(&line[4..5], false), JStr::json(&line[6..11], true)));
        assert_eq!(pairs(&HeaderList::Scanned(found)), expected);
        assert_eq!(pairs(&HeaderList::Empty), vec![]);
        assert_eq!(pairs(&HeaderList::Proto(&[])), vec![]);
    }
}
