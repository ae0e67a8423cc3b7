//! A targeted scanner for Hubble's JSON lines: reads the fields an analyzer needs into a
//! [`FlowView`] of borrowed strings and skips everything else structurally, without allocating.
//!
//! It accepts what Hubble prints (`hubble observe -o json`, the exporter's files): the
//! `GetFlowsResponse` / `ExportEvent` wrapper and the legacy bare `Flow`, proto field names and
//! their lowerCamel aliases, 64-bit integers as strings or numbers, enum names or numbers, and
//! unknown fields and enum values (newer Cilium). Values it skips are checked for structure
//! (balanced brackets, terminated strings), not for full JSON grammar.

use std::cell::RefCell;
use std::fmt;

use memchr::memchr2;

use crate::time::parse_rfc3339_nanos;
use crate::view::{
    EndpointView, Event, FlowType, FlowView, HeaderList, HttpView, JStr, L4Protocol, L7Type, L7View, ScannedHeaders,
    StrList, TrafficDirection, Verdict, WorkloadList,
};

/// Why a line could not be decoded; `offset` is the byte position in the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub offset: usize,
}

/// The kinds of undecodable line, used as the reason in skip reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecodeErrorKind {
    /// The line ends inside a value (a cut-off write).
    Truncated,
    /// Not JSON where JSON was expected.
    Syntax,
    /// Valid JSON that is not an object (`[1,2,3]`, `"text"`).
    NotAnObject,
    /// An object that is neither a flow nor another Hubble event (`{}`).
    NotAnEvent,
    /// A field with a value of the wrong JSON type (`"time": 123`).
    WrongType(&'static str),
    /// A timestamp that is not RFC 3339.
    InvalidTime,
    /// A flow with no time in the flow or its wrapper.
    MissingTime,
    /// Bytes after the object.
    TrailingData,
}

impl DecodeErrorKind {
    /// A short stable name for counting and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeErrorKind::Truncated => "truncated",
            DecodeErrorKind::Syntax => "syntax",
            DecodeErrorKind::NotAnObject => "not_an_object",
            DecodeErrorKind::NotAnEvent => "not_an_event",
            DecodeErrorKind::WrongType(_) => "wrong_type",
            DecodeErrorKind::InvalidTime => "invalid_time",
            DecodeErrorKind::MissingTime => "missing_time",
            DecodeErrorKind::TrailingData => "trailing_data",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DecodeErrorKind::Truncated => write!(f, "line ends inside a JSON value")?,
            DecodeErrorKind::Syntax => write!(f, "invalid JSON")?,
            DecodeErrorKind::NotAnObject => write!(f, "JSON value is not an object")?,
            DecodeErrorKind::NotAnEvent => write!(f, "object is not a Hubble flow or event")?,
            DecodeErrorKind::WrongType(field) => write!(f, "field `{field}` has the wrong type")?,
            DecodeErrorKind::InvalidTime => {
                write!(f, "timestamp is not an RFC 3339 date and time from 1677 to 2262 (nanoseconds in 64 bits)")?
            }
            DecodeErrorKind::MissingTime => write!(f, "flow has no time")?,
            DecodeErrorKind::TrailingData => write!(f, "data after the JSON object")?,
        }
        write!(f, " (at byte {})", self.offset)
    }
}

impl std::error::Error for DecodeError {}

type Result<T> = std::result::Result<T, DecodeError>;

/// Decodes one line (without its newline) of Hubble JSON output.
pub fn decode_line(line: &[u8]) -> std::result::Result<Event<'_>, DecodeError> {
    decode_line_with(line, |event| *event)
}

/// Decodes one line (without its newline) of Hubble JSON output and hands the event to `then`
/// where it was decoded: a flow's view is several hundred bytes, and returning it would copy
/// them (into the result, and again where the caller takes it apart), on every line.
pub fn decode_line_with<'a, R>(
    line: &'a [u8],
    then: impl FnOnce(&Event<'a>) -> R,
) -> std::result::Result<R, DecodeError> {
    let mut cur = Cursor::new(line);
    cur.ws();
    match cur.peek() {
        Some(b'{') => {}
        Some(b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
            // Valid JSON of another type is a distinct, clearer error than a syntax error.
            return match cur.skip_value() {
                Ok(()) => Err(cur.err(DecodeErrorKind::NotAnObject)),
                Err(e) => Err(e),
            };
        }
        None => return Err(cur.err(DecodeErrorKind::Truncated)),
        Some(_) => return Err(cur.err(DecodeErrorKind::Syntax)),
    }

    // A legacy bare Flow's fields, made when the first top-level key that is not a wrapper's
    // comes: a wrapped line (nearly all) then fills one view, not two (a view is several hundred
    // bytes, and making one copies them).
    // Both are made as events, so that `then` gets a reference to the very event the view was
    // decoded into, with no move.
    let mut bare: Option<Event<'_>> = None;
    let mut saw_flow_field = false;
    let mut wrapped_flow: Option<(Event<'_>, bool)> = None;
    let mut wrapper_time: Option<i64> = None;
    // The flow's own timestamp as printed: the wrapper repeats it, and is then not parsed again.
    let mut flow_time_raw: &[u8] = &[];
    let mut wrapper_node = JStr::default();
    let mut lost: Option<u64> = None;
    let mut node_status: Option<(JStr<'_>, JStr<'_>)> = None;
    let mut other_event = false;

    cur.object(|cur, key| {
        match key {
            b"flow" => {
                // Read in place (see `l7`).
                let (event, has_time) = wrapped_flow.insert((Event::Flow(FlowView::default()), false));
                let Event::Flow(inner) = event else { unreachable!("made as a flow just above") };
                cur.object(|cur, k| {
                    if k == b"time" {
                        let at = cur.i;
                        inner.time_ns = cur.time_value("time")?;
                        flow_time_raw = &cur.b[at..cur.i];
                        *has_time = true;
                        Ok(())
                    } else {
                        flow_field(cur, k, inner).map(|_| ())
                    }
                })?;
            }
            b"time" => {
                let at = cur.i;
                let repeated = match &wrapped_flow {
                    Some((Event::Flow(inner), true)) if cur.b[at..].starts_with(flow_time_raw) => Some(inner.time_ns),
                    _ => None,
                };
                wrapper_time = Some(match repeated {
                    Some(t) => {
                        cur.i += flow_time_raw.len();
                        t
                    }
                    None => cur.time_value("time")?,
                });
            }
            b"node_name" | b"nodeName" => wrapper_node = cur.string_value("node_name")?,
            b"lost_events" | b"lostEvents" => {
                let mut n = 0;
                cur.object(|cur, k| match k {
                    b"num_events_lost" | b"numEventsLost" => {
                        n = cur.u64_value("num_events_lost")?;
                        Ok(())
                    }
                    _ => cur.skip_value(),
                })?;
                lost = Some(n);
            }
            b"node_status" | b"nodeStatus" => {
                let mut state = JStr::default();
                let mut message = JStr::default();
                cur.object(|cur, k| match k {
                    b"state_change" | b"stateChange" => {
                        state = cur.enum_str("state_change")?;
                        Ok(())
                    }
                    b"message" => {
                        message = cur.string_value("message")?;
                        Ok(())
                    }
                    _ => cur.skip_value(),
                })?;
                node_status = Some((state, message));
            }
            b"agent_event" | b"agentEvent" | b"debug_event" | b"debugEvent" => {
                cur.skip_value()?;
                other_event = true;
            }
            _ => {
                // A legacy bare Flow line: the flow's fields sit at the top level.
                if let Event::Flow(flow) = bare.get_or_insert_with(|| Event::Flow(FlowView::default()))
                    && flow_field(cur, key, flow)?
                {
                    saw_flow_field = true;
                }
            }
        }
        Ok(())
    })?;
    cur.ws();
    if cur.i != cur.b.len() {
        return Err(cur.err(DecodeErrorKind::TrailingData));
    }

    if let Some((event, has_time)) = &mut wrapped_flow {
        if let Event::Flow(inner) = event {
            if !*has_time {
                inner.time_ns = wrapper_time.ok_or(DecodeError { kind: DecodeErrorKind::MissingTime, offset: 0 })?;
            }
            if inner.node_name.is_empty() {
                inner.node_name = wrapper_node;
            }
        }
        return Ok(then(event));
    }
    if let Some(num_events_lost) = lost {
        return Ok(then(&Event::LostEvents { time_ns: wrapper_time, node_name: wrapper_node, num_events_lost }));
    }
    if let Some((state, message)) = node_status {
        return Ok(then(&Event::NodeStatus { time_ns: wrapper_time, state, message }));
    }
    if other_event {
        return Ok(then(&Event::Other { time_ns: wrapper_time }));
    }
    if saw_flow_field || wrapper_time.is_some() {
        // Bare legacy Flow: its `time`/`node_name` were read as the "wrapper" keys above.
        let time_ns = wrapper_time.ok_or(DecodeError { kind: DecodeErrorKind::MissingTime, offset: 0 })?;
        let event = bare.get_or_insert_with(|| Event::Flow(FlowView::default()));
        if let Event::Flow(flow) = event {
            flow.time_ns = time_ns;
            flow.node_name = wrapper_node;
        }
        return Ok(then(event));
    }
    Err(DecodeError { kind: DecodeErrorKind::NotAnEvent, offset: 0 })
}

/// Reads one field of a `flow.Flow` object into `f`; returns whether the key is a Flow field.
/// `time` and `node_name` are handled by the caller (they are also wrapper keys).
fn flow_field<'a>(cur: &mut Cursor<'a>, key: &[u8], f: &mut FlowView<'a>) -> Result<bool> {
    match key {
        b"node_name" | b"nodeName" => f.node_name = cur.string_value("node_name")?,
        b"uuid" => f.uuid = cur.string_value("uuid")?,
        b"verdict" => {
            f.verdict = match cur.enum_value("verdict")? {
                EnumValue::Name(n) => Verdict::from_name(n),
                EnumValue::Number(n) => Verdict::from_number(n),
            }
        }
        b"Type" | b"type" => {
            f.flow_type = match cur.enum_value("Type")? {
                EnumValue::Name(n) => FlowType::from_name(n),
                EnumValue::Number(n) => FlowType::from_number(n),
            }
        }
        // A member the object leaves out keeps what an earlier copy of it set, as in the
        // general walk (a flow that repeats `IP` or `l4` is not valid protojson, but reads the
        // same either way).
        b"IP" if let Some((source, destination)) = cur.exact_ip() => {
            if let Some(source) = source {
                f.ip_source = source;
            }
            if let Some(destination) = destination {
                f.ip_destination = destination;
            }
        }
        b"IP" => cur.object(|cur, k| {
            match k {
                b"source" => f.ip_source = cur.string_value("IP.source")?,
                b"destination" => f.ip_destination = cur.string_value("IP.destination")?,
                _ => cur.skip_value()?,
            }
            Ok(())
        })?,
        b"l4" if let Some((l4, source_port, destination_port)) = cur.exact_l4() => {
            f.l4 = l4;
            if let Some(port) = source_port {
                f.source_port = port;
            }
            if let Some(port) = destination_port {
                f.destination_port = port;
            }
        }
        b"l4" => cur.object(|cur, k| {
            let proto = match k {
                b"TCP" => L4Protocol::Tcp,
                b"UDP" => L4Protocol::Udp,
                b"SCTP" => L4Protocol::Sctp,
                b"ICMPv4" | b"ICMPv6" => L4Protocol::Icmp,
                _ => L4Protocol::Other,
            };
            f.l4 = proto;
            if matches!(proto, L4Protocol::Tcp | L4Protocol::Udp | L4Protocol::Sctp) {
                cur.object(|cur, k| {
                    match k {
                        b"source_port" | b"sourcePort" => f.source_port = cur.u32_value("source_port")?,
                        b"destination_port" | b"destinationPort" => {
                            f.destination_port = cur.u32_value("destination_port")?
                        }
                        _ => cur.skip_value()?,
                    }
                    Ok(())
                })
            } else {
                cur.skip_value()
            }
        })?,
        b"source" => f.source = cur.endpoint()?,
        b"destination" => f.destination = cur.endpoint()?,
        b"destination_names" | b"destinationNames" => {
            f.destination_names = StrList::Json(cur.raw_array("destination_names")?)
        }
        // Read in place: the view is large, and each move of it is a copy.
        b"l7" => cur.l7(f.l7.insert(L7View::default()))?,
        b"traffic_direction" | b"trafficDirection" => {
            f.traffic_direction = match cur.enum_value("traffic_direction")? {
                EnumValue::Name(n) => TrafficDirection::from_name(n),
                EnumValue::Number(n) => TrafficDirection::from_number(n),
            }
        }
        b"is_reply" | b"isReply" => f.is_reply = cur.nullable_bool("is_reply")?.or(f.is_reply),
        b"reply" => {
            if cur.nullable_bool("reply")? == Some(true) && f.is_reply.is_none() {
                f.is_reply = Some(true);
            }
        }
        b"node_labels" | b"nodeLabels" => {
            // Every record carries its node's labels, and nothing reads them.
            cur.ws();
            if cur.known_labels(LabelsOwner::Node(f.node_name.raw())).is_none() {
                cur.skip_value()?;
            }
        }
        b"trace_context" | b"traceContext" => cur.object(|cur, k| match k {
            b"parent" => cur.object(|cur, k| match k {
                b"trace_id" | b"traceId" => {
                    f.trace_id = cur.string_value("trace_context.parent.trace_id")?;
                    Ok(())
                }
                _ => cur.skip_value(),
            }),
            _ => cur.skip_value(),
        })?,
        // Known Flow fields the analyzer does not read (keeps `saw_flow_field` meaningful for
        // legacy lines) and anything unknown from newer Cilium versions.
        _ => {
            cur.skip_value()?;
            return Ok(is_known_flow_key(key));
        }
    }
    Ok(true)
}

fn is_known_flow_key(key: &[u8]) -> bool {
    matches!(
        key,
        b"emitter"
            | b"drop_reason"
            | b"dropReason"
            | b"auth_type"
            | b"authType"
            | b"ethernet"
            | b"tunnel"
            | b"node_labels"
            | b"nodeLabels"
            | b"source_names"
            | b"sourceNames"
            | b"event_type"
            | b"eventType"
            | b"source_service"
            | b"sourceService"
            | b"destination_service"
            | b"destinationService"
            | b"policy_match_type"
            | b"policyMatchType"
            | b"trace_observation_point"
            | b"traceObservationPoint"
            | b"trace_reason"
            | b"traceReason"
            | b"drop_reason_desc"
            | b"dropReasonDesc"
            | b"interface"
            | b"proxy_port"
            | b"proxyPort"
            | b"Summary"
            | b"summary"
    )
}

enum EnumValue<'a> {
    Name(&'a [u8]),
    Number(i64),
}

/// Byte classes for the structural skipper: 1 = string start, 2 = open, 3 = close.
static STRUCTURAL: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = 1;
    t[b'{' as usize] = 2;
    t[b'[' as usize] = 2;
    t[b'}' as usize] = 3;
    t[b']' as usize] = 3;
    t
};

/// Label arrays as they last came, by what they belong to: every record repeats its node's
/// labels and its endpoints' labels, hundreds of bytes scanned string by string, and a line
/// whose labels are byte for byte an array already read whole skips them with one comparison.
/// Forgotten all at once past `KNOWN_ARRAYS` owners, so a stream of ever new names cannot grow
/// it; long arrays and names are not kept, so it holds about 17 MiB at most.
#[derive(Default)]
struct KnownLabels {
    /// By [`LabelsOwner::key`].
    arrays: foldhash::HashMap<Vec<u8>, Vec<u8>>,
    /// The key being looked up (kept to reuse its allocation).
    key: Vec<u8>,
}

/// Whose labels: a node (by name), or an endpoint (by namespace and security identity, which
/// Cilium derives from the labels; a pod of another identity only misses the memo).
enum LabelsOwner<'a> {
    Node(&'a [u8]),
    Endpoint { namespace: &'a [u8], identity: u32 },
}

impl LabelsOwner<'_> {
    /// A key no other owner has: a tag, then the owner's fields.
    fn key(&self, key: &mut Vec<u8>) {
        key.clear();
        match self {
            LabelsOwner::Node(name) => {
                key.push(b'n');
                key.extend_from_slice(name);
            }
            LabelsOwner::Endpoint { namespace, identity } => {
                key.push(b'e');
                key.extend_from_slice(&identity.to_le_bytes());
                key.extend_from_slice(namespace);
            }
        }
    }
}

/// Owners whose labels are remembered (per thread).
const KNOWN_ARRAYS: usize = 4096;
/// The longest label array remembered: Hubble's run to a few hundred bytes.
const KNOWN_ARRAY_BYTES: usize = 4096;
/// The longest owner key remembered (a node's name, an endpoint's namespace).
const KNOWN_OWNER_BYTES: usize = 256;

thread_local! {
    static KNOWN_LABELS: RefCell<KnownLabels> = RefCell::default();
    /// Label arrays skipped as remembered, for the tests to see the memory at work.
    #[cfg(test)]
    static KNOWN_LABEL_HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A position in one JSON text. Methods consume one value and leave the cursor after it.
pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

/// Strings up to this long are scanned inline sixteen bytes at a time; longer ones go to
/// memchr, whose set-up pays off only then. Hubble's labels run to 70–100 bytes.
const SHORT_STRING: usize = 256;

/// Bit `j` set where byte `j` of `chunk` ends or escapes a string (`"` or `\\`).
#[cfg(target_arch = "x86_64")]
#[inline]
fn string_stops(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    // SAFETY: `chunk` is 16 readable bytes and the load is unaligned; SSE2 is part of the
    // x86_64 baseline, so the instructions exist on every x86_64 CPU.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quotes = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let escapes = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(quotes, escapes)) as u32
    }
}

/// Bit `j` set where byte `j` of `chunk` ends or escapes a string (`"` or `\\`).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn string_stops(chunk: &[u8; 16]) -> u32 {
    chunk.iter().enumerate().fold(0, |m, (j, &b)| m | (u32::from(b == b'"' || b == b'\\') << j))
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Cursor { b, i: 0 }
    }

    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { kind, offset: self.i }
    }

    fn eof_or(&self, kind: DecodeErrorKind) -> DecodeError {
        if self.i >= self.b.len() { self.err(DecodeErrorKind::Truncated) } else { self.err(kind) }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips whitespace. Hubble prints none, and this runs before every token: one compare
    /// tells most tokens apart from whitespace (every JSON whitespace byte is at most `' '`,
    /// and no token starts with such a byte); the loop runs only past that.
    #[inline(always)]
    fn ws(&mut self) {
        if self.b.get(self.i).is_some_and(|&c| c <= b' ') {
            self.skip_whitespace();
        }
    }

    #[inline(never)]
    fn skip_whitespace(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Result<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.eof_or(DecodeErrorKind::Syntax))
        }
    }

    /// Reads a string starting at `"`; returns its raw bytes and whether it holds escapes.
    ///
    /// Inlined, and kept small: a line holds well over a hundred keys and values, so the cost
    /// of a call (saving and restoring registers) rivalled the scan itself.
    #[inline(always)]
    fn string(&mut self) -> Result<JStr<'a>> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        // Most keys and values are short: sixteen bytes at a time (one SSE2 compare) beats both
        // a byte loop and memchr's set-up cost for them; long strings go to memchr.
        let short_end = (start + SHORT_STRING).min(b.len());
        while i + 16 <= short_end {
            let stops = string_stops(b[i..i + 16].try_into().expect("16 bytes"));
            if stops != 0 {
                i += stops.trailing_zeros() as usize;
                if b[i] == b'"' {
                    self.i = i + 1;
                    return Ok(JStr::json(&b[start..i], false));
                }
                break;
            }
            i += 16;
        }
        self.long_string(start, i)
    }

    /// The rest of [`Cursor::string`]: a string longer than the short scan, holding escapes, or
    /// at the very end of the input. `i` is where the short scan stopped.
    #[inline(never)]
    fn long_string(&mut self, start: usize, mut i: usize) -> Result<JStr<'a>> {
        let b = self.b;
        let mut escaped = false;
        loop {
            match memchr2(b'"', b'\\', &b[i..]) {
                None => {
                    self.i = b.len();
                    return Err(self.err(DecodeErrorKind::Truncated));
                }
                Some(n) => {
                    i += n;
                    if b[i] == b'"' {
                        self.i = i + 1;
                        return Ok(JStr::json(&b[start..i], escaped));
                    }
                    escaped = true;
                    i += 2;
                    if i > b.len() {
                        self.i = b.len();
                        return Err(self.err(DecodeErrorKind::Truncated));
                    }
                }
            }
        }
    }

    /// Iterates the members of an object, calling `f` with each key; `f` must consume the value.
    pub(crate) fn object(&mut self, mut f: impl FnMut(&mut Self, &'a [u8]) -> Result<()>) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.i += 1,
            Some(b'n') => return self.null(),
            _ => return Err(self.eof_or(DecodeErrorKind::Syntax)),
        }
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.eof_or(DecodeErrorKind::Syntax));
            }
            let key = self.string()?;
            self.expect(b':')?;
            self.ws();
            f(self, key.raw())?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.eof_or(DecodeErrorKind::Syntax)),
            }
        }
    }

    /// Iterates the elements of an array, calling `f` for each; `f` must consume the element.
    fn array(&mut self, mut f: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'[') => self.i += 1,
            Some(b'n') => return self.null(),
            _ => return Err(self.eof_or(DecodeErrorKind::Syntax)),
        }
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            f(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.eof_or(DecodeErrorKind::Syntax)),
            }
        }
    }

    fn null(&mut self) -> Result<()> {
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            Ok(())
        } else {
            Err(self.eof_or(DecodeErrorKind::Syntax))
        }
    }

    /// Skips one value of any type, checking only its structure.
    pub(crate) fn skip_value(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            None => Err(self.err(DecodeErrorKind::Truncated)),
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => self.skip_container(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                self.number_span();
                Ok(())
            }
            Some(_) => Err(self.err(DecodeErrorKind::Syntax)),
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Result<()> {
        let rest = &self.b[self.i..];
        if rest.starts_with(word) {
            self.i += word.len();
            Ok(())
        } else if word.starts_with(rest) {
            self.i = self.b.len();
            Err(self.err(DecodeErrorKind::Truncated))
        } else {
            Err(self.err(DecodeErrorKind::Syntax))
        }
    }

    /// Skips a balanced `{...}` or `[...]`: a table-driven walk over the structural bytes that
    /// jumps over strings with `memchr`, which is where most of Hubble's bytes are.
    fn skip_container(&mut self) -> Result<()> {
        let mut stack: [u8; 64] = [0; 64];
        let mut depth = 0usize;
        let b = self.b;
        let mut i = self.i;
        loop {
            let Some(&c) = b.get(i) else {
                self.i = b.len();
                return Err(self.err(DecodeErrorKind::Truncated));
            };
            match STRUCTURAL[c as usize] {
                0 => i += 1,
                1 => {
                    self.i = i;
                    self.string()?;
                    i = self.i;
                }
                2 => {
                    if depth == stack.len() {
                        self.i = i;
                        return Err(self.err(DecodeErrorKind::Syntax));
                    }
                    stack[depth] = if c == b'{' { b'}' } else { b']' };
                    depth += 1;
                    i += 1;
                }
                _ => {
                    if depth == 0 || stack[depth - 1] != c {
                        self.i = i;
                        return Err(self.err(DecodeErrorKind::Syntax));
                    }
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        self.i = i;
                        return Ok(());
                    }
                }
            }
        }
    }

    fn number_span(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(&c) = self.b.get(self.i) {
            if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E') {
                self.i += 1;
            } else {
                break;
            }
        }
        &self.b[start..self.i]
    }

    /// Skips a value and returns its raw bytes.
    fn raw_value(&mut self) -> Result<&'a [u8]> {
        self.ws();
        let start = self.i;
        self.skip_value()?;
        Ok(&self.b[start..self.i])
    }

    fn raw_array(&mut self, field: &'static str) -> Result<&'a [u8]> {
        self.ws();
        match self.peek() {
            Some(b'[') => self.raw_value(),
            Some(b'n') => self.null().map(|_| &[][..]),
            _ => Err(self.eof_or(DecodeErrorKind::WrongType(field))),
        }
    }

    fn string_value(&mut self, field: &'static str) -> Result<JStr<'a>> {
        self.ws();
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'n') => self.null().map(|_| JStr::default()),
            _ => Err(self.eof_or(DecodeErrorKind::WrongType(field))),
        }
    }

    fn time_value(&mut self, field: &'static str) -> Result<i64> {
        let at = self.i;
        let s = self.string_value(field)?;
        parse_rfc3339_nanos(s.raw()).ok_or(DecodeError { kind: DecodeErrorKind::InvalidTime, offset: at })
    }

    /// An unsigned integer printed as a JSON number or (64-bit protojson) a decimal string.
    fn u64_value(&mut self, field: &'static str) -> Result<u64> {
        self.ws();
        let at = self.i;
        // A plain number of up to 19 digits (nearly all of them: ports, ids, latencies) is read
        // in the same pass that finds its end; anything else takes the general path below.
        let b = self.b;
        let mut i = at;
        let mut v: u64 = 0;
        while i < b.len() && i - at < 19 && b[i].is_ascii_digit() {
            v = v * 10 + u64::from(b[i] - b'0');
            i += 1;
        }
        if i > at && !b.get(i).is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')) {
            self.i = i;
            return Ok(v);
        }
        let digits = match self.peek() {
            Some(b'"') => self.string()?.raw(),
            Some(b'0'..=b'9') => self.number_span(),
            Some(b'n') => return self.null().map(|_| 0),
            _ => return Err(self.eof_or(DecodeErrorKind::WrongType(field))),
        };
        parse_u64(digits).ok_or(DecodeError { kind: DecodeErrorKind::WrongType(field), offset: at })
    }

    fn u32_value(&mut self, field: &'static str) -> Result<u32> {
        let at = self.i;
        let v = self.u64_value(field)?;
        u32::try_from(v).map_err(|_| DecodeError { kind: DecodeErrorKind::WrongType(field), offset: at })
    }

    fn nullable_bool(&mut self, field: &'static str) -> Result<Option<bool>> {
        self.ws();
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|_| Some(true)),
            Some(b'f') => self.literal(b"false").map(|_| Some(false)),
            Some(b'n') => self.null().map(|_| None),
            _ => Err(self.eof_or(DecodeErrorKind::WrongType(field))),
        }
    }

    /// An enum printed as its name (Hubble) or as a number (a name unknown to the printer).
    fn enum_value(&mut self, field: &'static str) -> Result<EnumValue<'a>> {
        self.ws();
        match self.peek() {
            Some(b'"') => Ok(EnumValue::Name(self.string()?.raw())),
            Some(b'-' | b'0'..=b'9') => {
                let at = self.i;
                let span = self.number_span();
                std::str::from_utf8(span)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(EnumValue::Number)
                    .ok_or(DecodeError { kind: DecodeErrorKind::WrongType(field), offset: at })
            }
            Some(b'n') => self.null().map(|_| EnumValue::Number(0)),
            _ => Err(self.eof_or(DecodeErrorKind::WrongType(field))),
        }
    }

    fn enum_str(&mut self, field: &'static str) -> Result<JStr<'a>> {
        self.ws();
        let start = self.i;
        Ok(match self.enum_value(field)? {
            EnumValue::Name(n) => JStr::json(n, false),
            EnumValue::Number(_) => JStr::json(&self.b[start..self.i], false),
        })
    }

    fn endpoint(&mut self) -> Result<EndpointView<'a>> {
        self.ws();
        let start = self.i;
        if let Some(e) = self.exact_or_rewind(Self::exact_endpoint) {
            return Ok(e);
        }
        let mut e = EndpointView::default();
        self.object(|cur, k| {
            match k {
                b"ID" | b"id" => e.id = cur.u32_value("ID")?,
                b"identity" => e.identity = cur.u32_value("identity")?,
                b"cluster_name" | b"clusterName" => e.cluster_name = cur.string_value("cluster_name")?,
                b"namespace" => e.namespace = cur.string_value("namespace")?,
                b"pod_name" | b"podName" => e.pod_name = cur.string_value("pod_name")?,
                b"labels" => e.labels = StrList::Json(cur.raw_array("labels")?),
                b"workloads" => e.workloads = WorkloadList::Json(cur.raw_array("workloads")?),
                _ => cur.skip_value()?,
            }
            Ok(())
        })?;
        e.raw = &self.b[start..self.i];
        Ok(e)
    }

    /// An endpoint exactly as Hubble prints it (compact, its members in the protobuf's order, any
    /// of them left out), read without the general object walk; every value goes through the
    /// same readers. Anything else, an error included, leaves it to the general walk (the caller
    /// rewinds), which reads it or reports the error as before.
    fn exact_endpoint(&mut self) -> Option<EndpointView<'a>> {
        let start = self.i;
        let mut e = self.exact_object(|cur, first| {
            let mut e = EndpointView::default();
            if cur.member(first, b"\"ID\":") {
                e.id = cur.u32_value("ID").ok()?;
            }
            if cur.member(first, b"\"identity\":") {
                e.identity = cur.u32_value("identity").ok()?;
            }
            if cur.member(first, b"\"cluster_name\":") {
                e.cluster_name = cur.string_value("cluster_name").ok()?;
            }
            if cur.member(first, b"\"namespace\":") {
                e.namespace = cur.string_value("namespace").ok()?;
            }
            if cur.member(first, b"\"labels\":") {
                let owner = LabelsOwner::Endpoint { namespace: e.namespace.raw(), identity: e.identity };
                e.labels = StrList::Json(cur.known_labels(owner)?);
            }
            if cur.member(first, b"\"pod_name\":") {
                e.pod_name = cur.string_value("pod_name").ok()?;
            }
            if cur.member(first, b"\"workloads\":") {
                e.workloads = WorkloadList::Json(cur.exact_workloads()?);
            }
            Some(e)
        })?;
        e.raw = &self.b[start..self.i];
        Some(e)
    }

    /// `IP` exactly as Hubble prints it (compact, members in the protobuf's order, any left
    /// out): its source and destination addresses when present, read without the general
    /// object walk. `None` (the cursor put back) for anything else, for the general walk.
    fn exact_ip(&mut self) -> Option<(Option<JStr<'a>>, Option<JStr<'a>>)> {
        self.exact_or_rewind(|cur| {
            cur.exact_object(|cur, first| {
                let (mut source, mut destination) = (None, None);
                if cur.member(first, b"\"source\":") {
                    source = Some(cur.string_value("IP.source").ok()?);
                }
                if cur.member(first, b"\"destination\":") {
                    destination = Some(cur.string_value("IP.destination").ok()?);
                }
                if cur.member(first, b"\"ipVersion\":") {
                    cur.enum_value("IP.ipVersion").ok()?;
                }
                Some((source, destination))
            })
        })
    }

    /// `l4` exactly as Hubble prints it for TCP or UDP without flags (every L7 record):
    /// `{"TCP":{"source_port":…,"destination_port":…}}`, read without the general object walk.
    /// `None` (the cursor put back) for anything else, for the general walk.
    fn exact_l4(&mut self) -> Option<(L4Protocol, Option<u32>, Option<u32>)> {
        self.exact_or_rewind(|cur| {
            cur.exact_object(|cur, first| {
                let protocol = if cur.member(first, b"\"TCP\":") {
                    L4Protocol::Tcp
                } else if cur.member(first, b"\"UDP\":") {
                    L4Protocol::Udp
                } else {
                    return None;
                };
                let (source_port, destination_port) = cur.exact_object(|cur, first| {
                    let (mut source_port, mut destination_port) = (None, None);
                    if cur.member(first, b"\"source_port\":") {
                        source_port = Some(cur.u32_value("source_port").ok()?);
                    }
                    if cur.member(first, b"\"destination_port\":") {
                        destination_port = Some(cur.u32_value("destination_port").ok()?);
                    }
                    Some((source_port, destination_port))
                })?;
                Some((protocol, source_port, destination_port))
            })
        })
    }

    /// A compact object whose members `members` reads in their order with [`Cursor::member`]
    /// (told whether the next is the first): from its `{` through its `}`. `None` for anything
    /// else, the caller rewinding. Each member's name is compared as a constant of known
    /// length, inline rather than by a call to `memcmp`.
    #[inline(always)]
    fn exact_object<T>(&mut self, members: impl FnOnce(&mut Self, &mut bool) -> Option<T>) -> Option<T> {
        if self.peek() != Some(b'{') {
            return None;
        }
        self.i += 1;
        let mut first = true;
        let value = members(self, &mut first)?;
        if self.peek() != Some(b'}') {
            return None;
        }
        self.i += 1;
        Some(value)
    }

    /// Runs a fast path for a value in the exact form Hubble prints; when it gives up, puts the
    /// cursor back where it started, for the general walk.
    #[inline(always)]
    fn exact_or_rewind<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let at = self.i;
        let value = read(self);
        if value.is_none() {
            self.i = at;
        }
        value
    }

    /// Moves past `name` (`"key":`), and the comma before it unless it is the object's first
    /// member, when they come next; otherwise stays put.
    #[inline(always)]
    fn member<const N: usize>(&mut self, first: &mut bool, name: &[u8; N]) -> bool {
        let at = self.i + usize::from(!*first);
        if (*first || self.peek() == Some(b',')) && self.b.get(at..at + N).is_some_and(|s| s == name) {
            self.i = at + N;
            *first = false;
            true
        } else {
            false
        }
    }

    /// Reads a label array: at once when it is byte for byte the array `owner` had last time
    /// (read whole then, so these bytes are valid too), else string by string, remembering it
    /// for `owner`. `None` (the cursor put back) when it is not a plain array of strings, for
    /// the general walk.
    fn known_labels(&mut self, owner: LabelsOwner<'_>) -> Option<&'a [u8]> {
        let start = self.i;
        KNOWN_LABELS.with_borrow_mut(|known| {
            owner.key(&mut known.key);
            if let Some(labels) = known.arrays.get(&known.key[..])
                && self.b[start..].starts_with(labels)
            {
                self.i += labels.len();
                #[cfg(test)]
                KNOWN_LABEL_HITS.set(KNOWN_LABEL_HITS.get() + 1);
                return Some(&self.b[start..self.i]);
            }
            let array = self.exact_or_rewind(Self::exact_string_array)?;
            if array.len() > KNOWN_ARRAY_BYTES || known.key.len() > KNOWN_OWNER_BYTES {
                return Some(array);
            }
            if let Some(labels) = known.arrays.get_mut(&known.key[..]) {
                labels.clear();
                labels.extend_from_slice(array);
            } else {
                if known.arrays.len() >= KNOWN_ARRAYS {
                    known.arrays.clear();
                }
                known.arrays.insert(known.key.clone(), array.to_vec());
            }
            Some(array)
        })
    }

    /// `["…","…"]` exactly as Hubble prints a list of strings (labels): its raw bytes, checked
    /// string by string without the general skip's dispatch on every byte between them.
    /// Anything else is `None`, for the caller's general walk to read or reject.
    fn exact_string_array(&mut self) -> Option<&'a [u8]> {
        self.exact_array(|cur| if cur.peek() == Some(b'"') { cur.string().ok().map(|_| ()) } else { None })
    }

    /// `[{"name":"…","kind":"…"}]` exactly as Hubble prints an endpoint's workloads: its raw
    /// bytes, as [`Cursor::exact_string_array`] does for strings.
    fn exact_workloads(&mut self) -> Option<&'a [u8]> {
        self.exact_array(|cur| cur.exact_pair_at(b"name", b"kind").map(|_| ()))
    }

    /// A compact array whose every element `element` reads; its raw bytes.
    #[inline]
    fn exact_array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<&'a [u8]> {
        let start = self.i;
        if self.peek() != Some(b'[') {
            return None;
        }
        self.i += 1;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some(&self.b[start..self.i]);
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(&self.b[start..self.i]);
                }
                _ => return None,
            }
        }
    }

    fn l7(&mut self, l7: &mut L7View<'a>) -> Result<()> {
        self.object(|cur, k| {
            match k {
                b"type" => {
                    l7.kind = match cur.enum_value("l7.type")? {
                        EnumValue::Name(n) => L7Type::from_name(n),
                        EnumValue::Number(n) => L7Type::from_number(n),
                    }
                }
                b"latency_ns" | b"latencyNs" => l7.latency_ns = cur.u64_value("latency_ns")?,
                b"http" => {
                    let h = l7.http.insert(HttpView::default());
                    cur.object(|cur, k| {
                        match k {
                            b"code" => h.code = cur.u32_value("http.code")?,
                            b"method" => h.method = cur.string_value("http.method")?,
                            b"url" => h.url = cur.string_value("http.url")?,
                            b"protocol" => h.protocol = cur.string_value("http.protocol")?,
                            b"headers" => h.headers = cur.headers()?,
                            _ => cur.skip_value()?,
                        }
                        Ok(())
                    })?;
                }
                b"dns" => {
                    cur.skip_value()?;
                    l7.is_dns = true;
                }
                _ => cur.skip_value()?,
            }
            Ok(())
        })
    }

    /// The string elements of the array this cursor holds; other elements are skipped and a
    /// malformed tail ends the iteration (the array was structurally checked when first read).
    pub(crate) fn array_strings(mut self) -> impl Iterator<Item = JStr<'a>> {
        let mut items = Vec::new();
        let _ = self.array(|cur| {
            if cur.peek() == Some(b'"') {
                items.push(cur.string()?);
                Ok(())
            } else {
                cur.skip_value()
            }
        });
        items.into_iter()
    }

    /// `{"a":"...","b":"..."}` exactly as Hubble prints a header or workload (compact, in this
    /// order, nothing else): its two strings, read without the general object walk. Anything else
    /// leaves the cursor where it was, for that walk.
    #[inline]
    fn exact_pair<const A: usize, const B: usize>(&mut self, a: &[u8; A], b: &[u8; B]) -> Option<(JStr<'a>, JStr<'a>)> {
        self.exact_or_rewind(|cur| cur.exact_pair_at(a, b))
    }

    /// The member names' lengths are constants (`A`, `B`), so their compares are inlined
    /// rather than calls to `memcmp`: a record's dozen headers are read this way.
    #[inline]
    fn exact_pair_at<const A: usize, const B: usize>(
        &mut self,
        a: &[u8; A],
        b: &[u8; B],
    ) -> Option<(JStr<'a>, JStr<'a>)> {
        let take = |cur: &mut Self, word: &[u8]| cur.literal(word).is_ok();
        let first = take(self, b"{\"") && take(self, a) && take(self, b"\":") && self.peek() == Some(b'"');
        let first = if first { self.string().ok()? } else { return None };
        let second = take(self, b",\"") && take(self, b) && take(self, b"\":") && self.peek() == Some(b'"');
        let second = if second { self.string().ok()? } else { return None };
        take(self, b"}").then_some((first, second))
    }

    /// The `headers` array. Its pairs are kept as found in the pass that checks it when every
    /// element is the exact `{"key":"…","value":"…"}` Hubble prints and they fit; otherwise the
    /// raw array is kept (and checked) as for any other array.
    fn headers(&mut self) -> Result<HeaderList<'a>> {
        self.ws();
        if let Some(found) = self.exact_or_rewind(Self::scan_headers) {
            return Ok(HeaderList::Scanned(found));
        }
        Ok(HeaderList::Json(self.raw_array("http.headers")?))
    }

    fn scan_headers(&mut self) -> Option<ScannedHeaders<'a>> {
        let mut found = ScannedHeaders::new(self.b);
        self.exact_array(|cur| {
            let (key, value) = cur.exact_pair_at(b"key", b"value")?;
            found.push(key, value).then_some(())
        })?;
        Some(found)
    }

    /// For an array of objects, the pair of string members `a` and `b` of each element, decoded
    /// lazily (headers are read on every HTTP record, so this path does not allocate).
    pub(crate) fn array_pairs<const A: usize, const B: usize>(
        self,
        a: &'static [u8; A],
        b: &'static [u8; B],
    ) -> PairIter<'a, A, B> {
        PairIter { cur: self, a, b, started: false, done: false }
    }
}

/// The `(a, b)` string members of each object of a JSON array (headers, workloads); a
/// malformed element ends the iteration.
pub struct PairIter<'a, const A: usize, const B: usize> {
    cur: Cursor<'a>,
    a: &'static [u8; A],
    b: &'static [u8; B],
    started: bool,
    done: bool,
}

impl<'a, const A: usize, const B: usize> Iterator for PairIter<'a, A, B> {
    type Item = (JStr<'a>, JStr<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let cur = &mut self.cur;
        cur.ws();
        let separator = if self.started { b',' } else { b'[' };
        if cur.peek() != Some(separator) {
            self.done = true;
            return None;
        }
        cur.i += 1;
        if !self.started {
            self.started = true;
            cur.ws();
            if cur.peek() == Some(b']') {
                self.done = true;
                return None;
            }
        }
        let (a, b) = (self.a, self.b);
        if let Some(pair) = cur.exact_pair(a, b) {
            return Some(pair);
        }
        let mut pair = (JStr::default(), JStr::default());
        let parsed = cur.object(|cur, k| {
            if k == a {
                pair.0 = cur.string_value("")?;
            } else if k == b {
                pair.1 = cur.string_value("")?;
            } else {
                cur.skip_value()?;
            }
            Ok(())
        });
        if parsed.is_err() {
            self.done = true;
            return None;
        }
        Some(pair)
    }
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Decodes the escapes of a JSON string body; invalid sequences become U+FFFD.
pub(crate) fn unescape(raw: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            break;
        };
        i += 2;
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        if e != b'u' {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            continue;
        }
        let hex = |at: usize| -> Option<u32> {
            let s = raw.get(at..at + 4)?;
            u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
        };
        let Some(hi) = hex(i) else {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            continue;
        };
        i += 4;
        let code = if (0xD800..0xDC00).contains(&hi) && raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
            match hex(i + 2) {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                }
                _ => 0xFFFD,
            }
        } else {
            hi
        };
        let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = r#"{"flow":{"time":"2021-11-10T10:40:59.075559Z","verdict":"FORWARDED","IP":{"source":"10.244.0.177","destination":"10.244.1.18","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":35280,"destination_port":9080}},"source":{"ID":881,"identity":3418,"namespace":"bookinfo","labels":["k8s:app=productpage","k8s:version=v1"],"pod_name":"productpage-v1-6b746f74dc-9rcxx"},"destination":{"identity":2,"namespace":"bookinfo","labels":["reserved:world"],"pod_name":"reviews-v3-84779c7bbc-6x8gl"},"Type":"L7","node_name":"kind-control-plane","l7":{"type":"REQUEST","http":{"method":"GET","url":"http://reviews:9080/reviews/0","protocol":"HTTP/1.1","headers":[{"key":":scheme","value":"http"},{"key":"X-Request-Id","value":"065fbd74-0b0e-4140-b5ee-a335ca6b0e7f"}]}},"event_type":{"type":129},"traffic_direction":"EGRESS","is_reply":false,"Summary":"HTTP/1.1 GET http://reviews:9080/reviews/0"},"node_name":"kind-control-plane","time":"2021-11-10T10:40:59.075559Z"}"#;

    fn flow(line: &str) -> FlowView<'_> {
        match decode_line(line.as_bytes()).unwrap() {
            Event::Flow(f) => f,
            other => panic!("not a flow: {other:?}"),
        }
    }

    /// `then` sees each decodable line's event once, whichever kind, and is never called for a
    /// line that does not decode.
    #[test]
    fn decode_line_with_hands_over_each_event_once_and_nothing_on_error() {
        let legacy = r#"{"time":"2021-06-21T20:43:40.984355420Z","verdict":"FORWARDED","Type":"L7","node_name":"n1"}"#;
        let lost =
            r#"{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"7"},"time":"2021-06-21T20:43:41Z"}"#;
        let status =
            r#"{"node_status":{"state_change":"NODE_CONNECTED","message":"up"},"time":"2021-06-21T20:43:42Z"}"#;
        for line in [REQUEST, legacy, lost, status] {
            let mut calls = 0;
            let seen = decode_line_with(line.as_bytes(), |event| {
                calls += 1;
                format!("{event:?}")
            });
            assert_eq!(seen.as_deref(), Ok(&*format!("{:?}", decode_line(line.as_bytes()).unwrap())));
            assert_eq!(calls, 1, "{line}");
        }
        let no_time = r#"{"flow":{"verdict":"FORWARDED","Type":"L7"},"node_name":"n1"}"#;
        for line in [no_time, r#"{"flow":{"verdict":"#, "[1,2]", r#"{"unknown":1}"#] {
            let mut called = false;
            assert!(decode_line_with(line.as_bytes(), |_| called = true).is_err(), "{line}");
            assert!(!called, "{line}");
        }
    }

    #[test]
    fn decodes_http_request() {
        let f = flow(REQUEST);
        assert_eq!(f.flow_type, FlowType::L7);
        assert_eq!(f.verdict, Verdict::Forwarded);
        assert_eq!(f.traffic_direction, TrafficDirection::Egress);
        assert_eq!(f.is_reply, Some(false));
        assert_eq!(f.source_port, 35280);
        assert_eq!(f.destination_port, 9080);
        assert_eq!(f.source.pod_name.value(), "productpage-v1-6b746f74dc-9rcxx");
        assert_eq!(f.source.id, 881);
        let labels: Vec<_> = f.source.labels.iter().map(|l| l.value().into_owned()).collect();
        assert_eq!(labels, ["k8s:app=productpage", "k8s:version=v1"]);
        let l7 = f.l7.unwrap();
        assert_eq!(l7.kind, L7Type::Request);
        let http = l7.http.unwrap();
        assert_eq!(http.method.value(), "GET");
        let headers: Vec<_> =
            http.headers.iter().map(|(k, v)| (k.value().into_owned(), v.value().into_owned())).collect();
        assert_eq!(headers[1], ("X-Request-Id".into(), "065fbd74-0b0e-4140-b5ee-a335ca6b0e7f".into()));
        assert_eq!(f.node_name.value(), "kind-control-plane");
    }

    /// Labels remembered from an earlier line are used only where the bytes are the same:
    /// changed labels of the same node or endpoint identity are read anew, one cut short is an
    /// error, and the first line's labels come back unchanged after either.
    #[test]
    fn remembered_labels_serve_only_identical_bytes() {
        let node_labels = r#""node_name":"kind-control-plane","node_labels":["a=1","b=2"],"#;
        let line = |labels: &str, node: &str| {
            REQUEST.replacen(r#""k8s:app=productpage","k8s:version=v1""#, labels, 1).replacen(
                r#""node_name":"kind-control-plane","#,
                node,
                1,
            )
        };
        let source_labels =
            |l: &str| -> Vec<String> { flow(l).source.labels.iter().map(|l| l.value().into_owned()).collect() };
        let hits = || KNOWN_LABEL_HITS.get();
        let first = line(r#""k8s:app=productpage","k8s:version=v1""#, node_labels);
        assert_eq!(source_labels(&first), ["k8s:app=productpage", "k8s:version=v1"]);
        // The same line again: the node's and both endpoints' labels are skipped as remembered.
        let before = hits();
        assert_eq!(source_labels(&first), ["k8s:app=productpage", "k8s:version=v1"]);
        assert_eq!(hits() - before, 3);
        // Changed labels of the same node and endpoint identity are read anew (only the
        // destination's are as before).
        let before = hits();
        let changed = line(r#""k8s:app=productpage","k8s:version=v2""#, &node_labels.replace("b=2", "b=3"));
        assert_eq!(source_labels(&changed), ["k8s:app=productpage", "k8s:version=v2"]);
        assert_eq!(hits() - before, 1);
        // The remembered arrays without their closing bracket are no hits, and errors as before.
        let cut = line(r#""k8s:app=productpage","k8s:version=v2""#, node_labels).replacen(
            r#""k8s:version=v2"]"#,
            r#""k8s:version=v2""#,
            1,
        );
        assert_eq!(decode_line(cut.as_bytes()).unwrap_err().kind, DecodeErrorKind::Syntax);
        let node_cut = line(r#""k8s:app=productpage","k8s:version=v2""#, &node_labels.replace(r#""b=2"]"#, r#""b=3""#));
        assert_eq!(decode_line(node_cut.as_bytes()).unwrap_err().kind, DecodeErrorKind::Syntax);
        assert_eq!(source_labels(&first), ["k8s:app=productpage", "k8s:version=v1"]);
        let f = flow(&first);
        assert_eq!(f.node_name.value(), "kind-control-plane");
    }

    /// Addresses and ports read the same whether `IP` and `l4` are as Hubble prints them for an
    /// L7 record (read without the general walk) or anything else the general walk reads.
    #[test]
    fn addresses_and_ports_read_the_same_in_every_form() {
        let read = |ip: &str, l4: &str| {
            let line = format!(r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","IP":{ip},"l4":{l4}}},"node_name":"n"}}"#);
            let f = flow(&line);
            (
                f.ip_source.value().into_owned(),
                f.ip_destination.value().into_owned(),
                f.l4,
                f.source_port,
                f.destination_port,
            )
        };
        let expected = ("10.0.0.1".to_string(), "10.0.0.2".to_string(), L4Protocol::Tcp, 40000, 8080);
        let ip = r#"{"source":"10.0.0.1","destination":"10.0.0.2","ipVersion":"IPv4"}"#;
        let tcp = r#"{"TCP":{"source_port":40000,"destination_port":8080}}"#;
        assert_eq!(read(ip, tcp), expected);
        for other_ip in [
            r#"{"source":"10.0.0.1","destination":"10.0.0.2","ipVersion":"IPv4","encrypted":true}"#,
            r#"{"ipVersion":"IPv4","source":"10.0.0.1","destination":"10.0.0.2"}"#,
            r#"{"source":"10.0.0.1","destination":"10.0.0.2","source_xlated":"10.0.0.9"}"#,
        ] {
            assert_eq!(read(other_ip, tcp), expected, "{other_ip}");
        }
        for other_l4 in [
            r#"{"TCP":{"source_port":40000,"destination_port":8080,"flags":{"ACK":true}}}"#,
            r#"{"TCP":{"sourcePort":40000,"destinationPort":8080}}"#,
            r#"{"TCP":{"destination_port":8080,"source_port":40000}}"#,
        ] {
            assert_eq!(read(ip, other_l4), expected, "{other_l4}");
        }
        let udp = read(ip, r#"{"UDP":{"source_port":53000,"destination_port":53}}"#);
        assert_eq!((udp.2, udp.3, udp.4), (L4Protocol::Udp, 53000, 53));
        let icmp = read(ip, r#"{"ICMPv4":{"type":8}}"#);
        assert_eq!((icmp.2, icmp.3, icmp.4), (L4Protocol::Icmp, 0, 0));
        let kind = |ip: &str, l4: &str| {
            let line = format!(r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","IP":{ip},"l4":{l4}}},"node_name":"n"}}"#);
            decode_line(line.as_bytes()).unwrap_err().kind
        };
        assert_eq!(kind(ip, r#"{"TCP":{"source_port":40000,"destination_port":8080}"#), DecodeErrorKind::Truncated);
        assert_eq!(kind(ip, r#"{"TCP":{"source_port":40000,"destination_port":8080}]"#), DecodeErrorKind::Syntax);
        assert_eq!(
            kind(ip, r#"{"TCP":{"source_port":"x","destination_port":8080}}"#),
            DecodeErrorKind::WrongType("source_port")
        );
        assert_eq!(kind(r#"{"source":10,"destination":"10.0.0.2"}"#, tcp), DecodeErrorKind::WrongType("IP.source"));
    }

    /// The same line with whitespace wherever JSON allows it (spaces, tabs, carriage returns,
    /// newlines) reads the same; a control byte where a token belongs is still a syntax error.
    #[test]
    fn reads_the_same_with_whitespace_between_tokens() {
        let summary = |f: &FlowView<'_>| {
            let l7 = f.l7.expect("l7");
            let http = l7.http.expect("http");
            let labels: Vec<_> = f.source.labels.iter().map(|l| l.value().into_owned()).collect();
            let headers: Vec<_> =
                http.headers.iter().map(|(k, v)| (k.value().into_owned(), v.value().into_owned())).collect();
            format!(
                "{} {:?} {:?} {:?} {} {} {} {} {:?} {} {} {} {} {:?} {:?} {}",
                f.time_ns,
                f.flow_type,
                f.verdict,
                f.l4,
                f.source_port,
                f.destination_port,
                f.source.pod_name.value(),
                f.destination.pod_name.value(),
                labels,
                http.method.value(),
                http.url.value(),
                f.ip_source.value(),
                f.ip_destination.value(),
                headers,
                f.is_reply,
                f.node_name.value()
            )
        };
        let compact = summary(&flow(REQUEST));
        let value: serde_json::Value = serde_json::from_str(REQUEST).expect("valid JSON");
        let pretty = serde_json::to_string_pretty(&value).expect("prints");
        assert_eq!(summary(&flow(&pretty)), compact);
        // Every kind of whitespace before and after every token.
        fn spaced(v: &serde_json::Value, out: &mut String) {
            use serde_json::Value;
            let (open, close, items): (&str, &str, Vec<(Option<&String>, &Value)>) = match v {
                Value::Object(m) => ("{", "}", m.iter().map(|(k, v)| (Some(k), v)).collect()),
                Value::Array(a) => ("[", "]", a.iter().map(|v| (None, v)).collect()),
                other => return out.push_str(&other.to_string()),
            };
            out.push_str(open);
            for (i, (key, value)) in items.into_iter().enumerate() {
                out.push_str(if i == 0 { " \r\n\t" } else { " \t,\n " });
                if let Some(k) = key {
                    out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                    out.push_str("\t :\r\n ");
                }
                spaced(value, out);
            }
            out.push_str(" \n\t");
            out.push_str(close);
        }
        let mut text = String::from(" \t\r\n");
        spaced(&value, &mut text);
        text.push_str("\r\n ");
        assert_eq!(summary(&flow(&text)), compact);
        let kind = |s: &str| decode_line(s.as_bytes()).unwrap_err().kind;
        assert_eq!(kind(&REQUEST.replacen(":", ":\u{1}", 1)), DecodeErrorKind::Syntax);
        assert_eq!(kind(&REQUEST.replacen(",", "\u{0}", 1)), DecodeErrorKind::Syntax);
    }

    #[test]
    fn decodes_legacy_and_camel_case() {
        let legacy = r#"{"time":"2021-06-21T20:43:40.984355420Z","verdict":"FORWARDED","Type":"L7","nodeName":"n1","l7":{"type":"RESPONSE","latencyNs":"1500","http":{"code":200,"method":"GET","url":"http://x/y"}},"isReply":true,"traceContext":{"parent":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}}}"#;
        let f = flow(legacy);
        assert_eq!(f.node_name.value(), "n1");
        assert_eq!(f.is_reply, Some(true));
        assert_eq!(f.l7.unwrap().latency_ns, 1500);
        assert_eq!(f.trace_id.value(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn tolerates_unknown_fields_and_enums() {
        let line = r#"{"flow":{"time":"2026-01-01T00:00:00Z","verdict":"TELEPORTED","future":{"a":[1,{"b":"]"}]},"traffic_direction":"SIDEWAYS","Type":9},"node_name":"n","time":"2026-01-01T00:00:00Z"}"#;
        let f = flow(line);
        assert_eq!(f.verdict, Verdict::Other);
        assert_eq!(f.traffic_direction, TrafficDirection::Unknown);
        assert_eq!(f.flow_type, FlowType::Unknown);
    }

    #[test]
    fn lost_events_and_node_status() {
        let lost = r#"{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"12"},"node_name":"n1","time":"2026-01-01T00:00:00Z"}"#;
        assert!(matches!(decode_line(lost.as_bytes()), Ok(Event::LostEvents { num_events_lost: 12, .. })));
        let status = r#"{"node_status":{"state_change":"NODE_UNAVAILABLE","node_names":["a"],"message":"gone"},"time":"2026-01-01T00:00:00Z"}"#;
        match decode_line(status.as_bytes()).unwrap() {
            Event::NodeStatus { state, message, .. } => {
                assert_eq!(state.value(), "NODE_UNAVAILABLE");
                assert_eq!(message.value(), "gone");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn classifies_bad_lines() {
        let kind = |s: &[u8]| decode_line(s).unwrap_err().kind;
        assert_eq!(kind(&REQUEST.as_bytes()[..300]), DecodeErrorKind::Truncated);
        assert_eq!(kind(b"not json at all"), DecodeErrorKind::Syntax);
        assert_eq!(kind(b"[1,2,3]"), DecodeErrorKind::NotAnObject);
        assert_eq!(kind(b"{}"), DecodeErrorKind::NotAnEvent);
        assert_eq!(kind(br#"{"flow":{"time":123}}"#), DecodeErrorKind::WrongType("time"));
        assert_eq!(kind(br#"{"flow":{"time":"yesterday"}}"#), DecodeErrorKind::InvalidTime);
        assert_eq!(kind(br#"{"flow":{"verdict":"FORWARDED"},"node_name":"n"}"#), DecodeErrorKind::MissingTime);
        assert_eq!(kind(br#"{"flow":{"time":"2026-01-01T00:00:00Z"}} x"#), DecodeErrorKind::TrailingData);
        assert_eq!(kind(b"\xff\xfe{"), DecodeErrorKind::Syntax);
        assert_eq!(
            kind(br#"{"flow":{"time":"2026-01-01T00:00:00Z","l4":{"TCP":{"source_port":"x"}}}}"#),
            DecodeErrorKind::WrongType("source_port")
        );
    }

    /// The wrapper's `time` repeats the flow's and is then not parsed again; the flow's own time
    /// wins when they differ, and a malformed wrapper time is an error either way.
    #[test]
    fn reads_the_wrapper_time_only_when_it_differs() {
        let line = |flow_time: &str, wrapper_time: &str| {
            format!(r#"{{"flow":{{"time":{flow_time},"verdict":"FORWARDED"}},"node_name":"n","time":{wrapper_time}}}"#)
        };
        let time = |flow_time: &str, wrapper_time: &str| match decode_line(line(flow_time, wrapper_time).as_bytes()) {
            Ok(Event::Flow(f)) => Ok(f.time_ns),
            Ok(other) => panic!("a flow, not {other:?}"),
            Err(e) => Err(e.kind),
        };
        let (t1, t2) = (r#""2026-01-01T00:00:00.000000001Z""#, r#""2026-01-01T00:00:00.000000002Z""#);
        assert_eq!(time(t1, t1), Ok(1_767_225_600_000_000_001));
        assert_eq!(time(t1, t2), Ok(1_767_225_600_000_000_001));
        assert_eq!(time(t1, r#""2026-01-01T00:00:00.000000001Zx""#), Err(DecodeErrorKind::InvalidTime));
        assert_eq!(time(t1, r#""2026-01-01T00:00:00.000000001"#), Err(DecodeErrorKind::Truncated));
        assert_eq!(time(t1, "17"), Err(DecodeErrorKind::WrongType("time")));
        assert_eq!(time(r#""later""#, t1), Err(DecodeErrorKind::InvalidTime));
    }

    /// Headers read as found by the decoder, or (more than fit, another shape) from the raw
    /// array: the same pairs either way, escapes included; a malformed array is still an error.
    #[test]
    fn headers_are_the_same_however_they_are_kept() {
        let line = |headers: &str| {
            format!(
                r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","l7":{{"http":{{"method":"GET","headers":{headers}}}}}}}}}"#
            )
        };
        use crate::view::SCANNED_HEADERS;
        let read = |headers: &str| -> std::result::Result<(bool, Vec<(String, String)>), DecodeErrorKind> {
            let text = line(headers);
            let Event::Flow(f) = decode_line(text.as_bytes()).map_err(|e| e.kind)? else { panic!("a flow") };
            let list = f.l7.and_then(|l| l.http).map(|h| h.headers).unwrap_or_default();
            let pairs = list.iter().map(|(k, v)| (k.value().into_owned(), v.value().into_owned())).collect();
            Ok((matches!(list, HeaderList::Scanned(_)), pairs))
        };
        let pair = |i: usize| format!(r#"{{"key":"K{i}\u0041","value":"v\"{i}"}}"#);
        let expected = |n: usize| (0..n).map(|i| (format!("K{i}A"), format!("v\"{i}"))).collect::<Vec<_>>();
        for n in [0, 1, SCANNED_HEADERS, SCANNED_HEADERS + 1, 30] {
            let array = format!("[{}]", (0..n).map(pair).collect::<Vec<_>>().join(","));
            assert_eq!(read(&array), Ok((n <= SCANNED_HEADERS, expected(n))), "{n} headers");
        }
        // Other shapes are read from the raw array, with the same result.
        for array in [
            r#"[ {"key":"K0A","value":"v\"0"} ]"#,
            r#"[{"value":"v\"0","key":"K0A"}]"#,
            r#"[{"key":"K0A","value":"v\"0","extra":1}]"#,
            r#"[{"key" : "K0A","value":"v\"0"}]"#,
        ] {
            assert_eq!(read(array), Ok((false, expected(1))), "{array}");
        }
        assert_eq!(read("null"), Ok((false, vec![])));
        for bad in
            [r#"[{"key":"a","value":"b"}"#, r#"[{"key":"a","value":"b"},]x"#, r#"{"key":"a"}"#, r#"[{"key":"a}]"#]
        {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    /// Endpoints as Hubble prints them (read by the fast path) and in any other form (read by
    /// the general walk) give the same fields, and the same errors.
    #[test]
    fn endpoints_read_the_same_in_every_form() {
        let fields = |endpoint: &str| -> std::result::Result<String, DecodeErrorKind> {
            let line = format!(r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","source":{endpoint}}}}}"#);
            let Event::Flow(f) = decode_line(line.as_bytes()).map_err(|e| e.kind)? else { panic!("a flow") };
            let e = f.source;
            let labels: Vec<_> = e.labels.iter().map(|l| l.value().into_owned()).collect();
            let workloads: Vec<_> = e.workloads.iter().map(|(n, k)| format!("{}/{}", n.value(), k.value())).collect();
            Ok(format!(
                "{} {} {} {} {} {labels:?} {workloads:?}",
                e.id,
                e.identity,
                e.cluster_name.value(),
                e.namespace.value(),
                e.pod_name.value()
            ))
        };
        let hubble = r#"{"ID":2070,"identity":31809,"cluster_name":"default","namespace":"agents","labels":["k8s:app=a","k8s:x=\u0079"],"pod_name":"a-1","workloads":[{"name":"a","kind":"Deployment"}]}"#;
        let expected = fields(hubble);
        assert_eq!(
            expected,
            Ok(r#"2070 31809 default agents a-1 ["k8s:app=a", "k8s:x=y"] ["a/Deployment"]"#.to_string())
        );
        for other in [
            r#"{ "ID":2070,"identity":31809,"cluster_name":"default","namespace":"agents","labels":["k8s:app=a","k8s:x=\u0079"],"pod_name":"a-1","workloads":[{"name":"a","kind":"Deployment"}]}"#,
            r#"{"identity":31809,"ID":2070,"cluster_name":"default","namespace":"agents","labels":["k8s:app=a","k8s:x=\u0079"],"pod_name":"a-1","workloads":[{"name":"a","kind":"Deployment"}]}"#,
            r#"{"ID":"2070","identity":31809,"clusterName":"default","namespace":"agents","labels":["k8s:app=a","k8s:x=\u0079"],"podName":"a-1","workloads":[{"name":"a","kind":"Deployment"}],"extra":[1,{"a":2}]}"#,
        ] {
            assert_eq!(fields(other), expected, "{other}");
        }
        // Members left out, in order, stay in the fast path's form.
        assert_eq!(
            fields(r#"{"identity":2,"namespace":"ns","labels":["reserved:world"]}"#),
            Ok(r#"0 2  ns  ["reserved:world"] []"#.to_string())
        );
        assert_eq!(fields("{}"), Ok("0 0    [] []".to_string()));
        assert_eq!(fields("null"), Ok("0 0    [] []".to_string()));
        assert_eq!(fields(r#"{"ID":"x"}"#), Err(DecodeErrorKind::WrongType("ID")));
        assert_eq!(fields(r#"{"ID":1,"namespace":7}"#), Err(DecodeErrorKind::WrongType("namespace")));
        assert_eq!(fields(r#"{"ID":1,"labels":"a"}"#), Err(DecodeErrorKind::WrongType("labels")));
        assert_eq!(fields(r#"{"ID":1,}"#), Err(DecodeErrorKind::Syntax));
        // Label and workload lists of every shape read (or fail) as the general walk reads them:
        // a space after the opening brace sends an endpoint down that walk.
        let labels_and_workloads = [
            r#""labels":[],"workloads":[]"#,
            r#""labels":null,"workloads":null"#,
            r#""labels":["a"],"workloads":[{"name":"a","kind":"Job"},{"name":"b","kind":"CronJob"}]"#,
            r#""labels":["a\"b","\u00e9"],"workloads":[{"name":"a\\b","kind":"Job"}]"#,
            r#""labels":[ "a" ],"workloads":[ {"name":"a","kind":"Job"} ]"#,
            r#""labels":["a",1,null,{"b":[2]}],"workloads":[{"kind":"Job","name":"a"}]"#,
            r#""labels":["a"],"workloads":[{"name":"a","kind":"Job","extra":true},{"name":"b"}]"#,
            r#""labels":["a",],"workloads":[]"#,
            r#""labels":["a"],"workloads":[{"name":"a","kind":"Job"},]"#,
            r#""labels":["a""b"],"workloads":[]"#,
            r#""labels":["a"],"workloads":[{"name":"a""kind":"Job"}]"#,
            r#""labels":["a"],"workloads":[{"name":"a","kind":7}]"#,
            r#""labels":["a"],"workloads":{"name":"a"}"#,
        ];
        for members in labels_and_workloads {
            let exact = fields(&format!("{{{members}}}"));
            assert_eq!(exact, fields(&format!("{{ {members}}}")), "{members}");
        }
        assert_eq!(
            fields(&format!("{{{}}}", labels_and_workloads[3])),
            Ok(r#"0 0    ["a\"b", "é"] ["a\\b/Job"]"#.into())
        );
        // Skipped values are checked for structure only (balanced brackets, whole strings).
        assert_eq!(fields(r#"{"labels":["a"},"workloads":[]}"#), Err(DecodeErrorKind::Syntax));
        assert_eq!(fields(r#"{"labels":["a"],"workloads":[{"name":"a","kind":"Job"]}"#), Err(DecodeErrorKind::Syntax));
    }

    /// The node's labels, read by nobody, are still checked: a malformed list is an error.
    #[test]
    fn checks_node_labels_it_does_not_read() {
        let read = |labels: &str| {
            let line =
                format!(r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","node_labels":{labels},"verdict":"DROPPED"}}}}"#);
            decode_line(line.as_bytes())
                .map(|e| matches!(e, Event::Flow(f) if f.verdict == Verdict::Dropped))
                .map_err(|e| e.kind)
        };
        for good in [r#"[]"#, r#"["a=b","c=d"]"#, r#"[ "a=b" , "c\"d" ]"#, "null", r#"["a",{"b":1}]"#] {
            assert_eq!(read(good), Ok(true), "{good}");
        }
        // Checked for structure, as every skipped value is: balanced brackets, whole strings.
        for bad in [r#"["a""#, r#"["a}"#, r#"["a"}"#, r#"["a\"]"#, r#"[{"a":1]"#] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    /// Unsigned integers as numbers or strings, up to `u64::MAX`; anything else is the wrong type.
    #[test]
    fn reads_unsigned_integers_exactly() {
        let latency = |v: &str| {
            let line = format!(r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","l7":{{"latency_ns":{v}}}}}}}"#);
            match decode_line(line.as_bytes()) {
                Ok(Event::Flow(f)) => Ok(f.l7.expect("l7").latency_ns),
                Ok(_) => panic!("a flow"),
                Err(e) => Err(e.kind),
            }
        };
        assert_eq!(latency("0"), Ok(0));
        assert_eq!(latency("1234567"), Ok(1_234_567));
        assert_eq!(latency(" 42 "), Ok(42));
        assert_eq!(latency("\"42\""), Ok(42));
        assert_eq!(latency("9999999999999999999"), Ok(9_999_999_999_999_999_999));
        assert_eq!(latency("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(latency("\"18446744073709551615\""), Ok(u64::MAX));
        assert_eq!(latency("null"), Ok(0));
        for bad in ["18446744073709551616", "1.5", "1e3", "2E3", "-1", "12-3", "1+2", "\"1.5\"", "\"\"", "true"] {
            assert_eq!(latency(bad), Err(DecodeErrorKind::WrongType("latency_ns")), "{bad}");
        }
    }

    /// The sixteen-byte scan, its hand-over to memchr and the end of the input, at every
    /// length and escape position around their boundaries.
    #[test]
    fn finds_string_ends_at_every_length() {
        for len in (0usize..40).chain(240..280) {
            for escape_at in [None, Some(0), Some(15), Some(16), Some(len / 2), Some(len.saturating_sub(1))] {
                let mut text: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
                if let Some(at) = escape_at.filter(|&at| at < len) {
                    text.replace_range(at..=at, r"\\");
                }
                let expected: String = serde_json::from_str(&format!("\"{text}\"")).expect("valid JSON string");
                for tail in ["", "}", ",\"k\":1}"] {
                    let json = format!("\"{text}\"{tail}");
                    let mut cur = Cursor::new(json.as_bytes());
                    let s = cur.string().expect("a whole string");
                    assert_eq!(s.value(), expected, "length {len}, escape at {escape_at:?}, then {tail:?}");
                    assert_eq!(&json[cur.i..], tail);
                }
                // Cut before the closing quote: truncated, never a panic.
                let json = format!("\"{text}");
                assert!(Cursor::new(json.as_bytes()).string().is_err(), "unterminated, length {len}");
            }
        }
    }

    #[test]
    fn unescapes_strings() {
        let line = r#"{"flow":{"time":"2026-01-01T00:00:00Z","Type":"L7","l7":{"type":"REQUEST","http":{"method":"GET","url":"http://a/b?x=1\u0026y=\"2\"\ud83d\ude00"}}},"time":"2026-01-01T00:00:00Z"}"#;
        let f = flow(line);
        assert_eq!(f.l7.unwrap().http.unwrap().url.value(), "http://a/b?x=1&y=\"2\"\u{1F600}");
    }

    #[test]
    fn reads_header_pairs_in_every_form() {
        // The compact form takes the direct path; the others take the object walk and must agree.
        let forms = [
            (r#"[{"key":"A","value":"1"},{"key":"B","value":"2"}]"#, vec![("A", "1"), ("B", "2")]),
            (r#"[ { "key" : "A" , "value" : "1" } ]"#, vec![("A", "1")]),
            (r#"[{"value":"1","key":"A"}]"#, vec![("A", "1")]),
            (r#"[{"key":"A","value":"1","extra":[1,{"x":"}"}]}]"#, vec![("A", "1")]),
            (r#"[{"key":"A","value":null}]"#, vec![("A", "")]),
            (r#"[{"key":"A"}]"#, vec![("A", "")]),
            (r#"[{"k\u0065y":"A","value":"1"}]"#, vec![("", "1")]),
            (r#"[{"key":"A\"","value":"x\\"}]"#, vec![("A\"", "x\\")]),
            (r#"[{"key":"A","value":"1"},{"key":"B""#, vec![("A", "1")]),
            (r#"[{"key":"A","value":"1"}}"#, vec![("A", "1")]),
        ];
        for (json, expected) in forms {
            let pairs: Vec<(String, String)> = Cursor::new(json.as_bytes())
                .array_pairs(b"key", b"value")
                .map(|(k, v)| (k.value().into_owned(), v.value().into_owned()))
                .collect();
            let expected: Vec<(String, String)> =
                expected.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(pairs, expected, "{json}");
        }
    }
}
