//! The streaming engine: reorders HTTP records by event time, pairs requests with responses,
//! merges the egress and ingress copies of one exchange into one call, links calls to their
//! parents and groups them into end-to-end requests, emitting each [`RequestGraph`] once it is
//! complete. All state is bounded and driven by event time only.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use agentgraph_proto::TrafficDirection;
use foldhash::{HashMap, HashMapExt};
use smallvec::SmallVec;

use crate::Nanos;
use crate::graph::{CallRecord, Correlation, Interval, RequestGraph};
use crate::infer::{ChildSlot, Decision, EdgeTiming, ParentSlot, SearchBuffers, Span, beam_assign};
use crate::names::AgentNamer;
use crate::record::{
    HttpRecord, NodeId, NormalizeConfig, Normalized, Normalizer, Peer, hash_pair, route_of, seeded_hash,
};
use crate::table::IdTable;
use agentgraph_proto::{Event, FlowView};

const MS: Nanos = 1_000_000;
/// A pod serving more calls at once than this: only the latest-started are parent candidates,
/// which keeps the work per call bounded on a pod that piles up calls.
const MAX_CANDIDATES: usize = 64;
/// Possible parents remembered for a call that may end unanswered (the latest-started ones).
const IN_FLIGHT_KEPT: usize = 16;
/// A joint decision at least this likely against its best alternative counts as certain for
/// learning.
const CLEAR_DECISION: f64 = 0.95;
/// Most ambiguous calls of one pod decided jointly at once.
const MAX_JOINT_CHILDREN: usize = 256;
/// How long (event time) undecided calls wait for every call they are tied to through shared
/// candidate parents to become decidable, before the decidable ones are settled alone.
const JOINT_HOLD: Nanos = 30 * SEC;
/// Beam width of the joint search: `BEAM_WORK / (calls × candidate parents)`, within bounds.
/// The cap was 4,096: halving it made untraced analysis 1.5–2× faster for the same parents
/// (nothing propagated, c=4: support-desk, code-review and job-spawner identical over 13 seeds,
/// research-swarm 98.675 → 98.654 % over eight; c=8 and c=16 unchanged within 0.01 point).
/// Halving `BEAM_WORK` as well cost 1.3 points at c=16, where problems are large.
const BEAM_WORK: usize = 1 << 20;
const MIN_BEAM: usize = 128;
const MAX_BEAM: usize = 2048;
const SEC: Nanos = 1_000_000_000;

/// Settings of the engine (all durations are event time, nanoseconds).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Records are held this long behind the newest one to put out-of-order input in order.
    pub reorder_window: Nanos,
    /// A request without a response is closed as unanswered after this long.
    pub response_timeout: Nanos,
    /// A request whose calls have all completed is emitted after this long without activity
    /// (late retries with the same trace or request id, late copies from another node); never
    /// sooner than the other proxy's copy of a record may come (see [`EngineConfig::settle_time`]).
    pub linger: Nanos,
    /// The egress and ingress copies of one exchange are at most this far apart.
    pub dedup_window: Nanos,
    /// Tolerance when comparing times stamped by two different nodes' clocks.
    pub clock_skew: Nanos,
    /// Most calls held at once; past it the oldest request is emitted early, and counted.
    pub max_open_calls: usize,
    /// Most calls a request gathers under its trace or request id: when one more comes, the
    /// request is emitted early (counted) and that call starts a new request. A client that
    /// sends one `X-Request-Id` with everything, or a root span kept open for the life of a
    /// process, would otherwise gather all its traffic into one request until `max_open_calls`.
    /// Calls joined to a request by their parent alone are not counted against it (only
    /// `max_open_calls` bounds them).
    pub max_request_calls: usize,
    /// Most records held in the reorder buffer; past it the oldest is processed early, counted.
    pub max_buffered_records: usize,
    /// Also learn timing statistics from parents whose children were inferred (for a first,
    /// learning-only pass over a dump: "re-learn from the result").
    pub learn_from_inferred: bool,
}

impl EngineConfig {
    /// How long a completed request waits without activity before it is emitted: `linger`, but
    /// at least the time the other proxy's copy of its last record may take to arrive, which
    /// would otherwise start a request of its own.
    pub fn settle_time(&self) -> Nanos {
        self.linger.max(self.dedup_window + self.clock_skew)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            reorder_window: 2 * SEC,
            response_timeout: 60 * SEC,
            linger: 2 * SEC,
            dedup_window: 100 * MS,
            clock_skew: 5 * MS,
            max_open_calls: 200_000,
            max_request_calls: 10_000,
            max_buffered_records: 200_000,
            learn_from_inferred: false,
        }
    }
}

/// Counters of what the engine did with its input (self-telemetry; nothing is dropped silently).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub http_requests: u64,
    pub http_responses: u64,
    /// Request records that were the second copy (egress + ingress) of an exchange.
    pub duplicate_requests: u64,
    pub duplicate_responses: u64,
    /// Responses whose request was not seen (before the dump started, or lost).
    pub orphan_responses: u64,
    /// Calls closed without a response after `response_timeout` or at the end of input.
    pub unanswered_calls: u64,
    /// Responses that came after their call was given up as unanswered (slower than
    /// `response_timeout`) or emitted early: dropped, as the call is reported already.
    pub late_responses: u64,
    /// Records that arrived later than the reorder window allowed.
    pub late_records: u64,
    /// Records identical to the one before them in time order — the same flow read twice, as
    /// from overlapping dumps or one file given twice — dropped.
    pub repeated_records: u64,
    /// Records processed early because the reorder buffer was full.
    pub reorder_overflow: u64,
    /// Requests emitted early because `max_open_calls` or `max_request_calls` was reached.
    pub forced_requests: u64,
    pub requests_emitted: u64,
    pub calls_emitted: u64,
    /// Calls whose parent was chosen among several by the learned timing statistics.
    pub joint_decisions: u64,
    /// Of those, calls decided while a candidate's agent had too few certain examples for
    /// statistics of its own (a learning pass over the input first helps these).
    pub unlearned_decisions: u64,
}

/// Calls are kept in an [`IdTable`]; their ids compare in creation order (until the table's
/// 32-bit sequence wraps, which only reorders ties).
type CallId = crate::table::Id;

/// Timing statistics learned by an engine, by kind of call (a hash of the server agent and the
/// route, the path with its ids as `{id}`: the same for every engine of one process, so one
/// engine's model serves another; it is not meant to be stored).
#[derive(Clone, Debug, Default)]
pub struct TimingModel(HashMap<u64, EdgeTiming>);

impl TimingModel {
    /// Number of kinds of call with statistics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
/// Requests being assembled are kept in an [`IdTable`]; their ids compare in creation order
/// (until the table's 32-bit sequence wraps, which only reorders ties).
type GroupId = crate::table::Id;

/// Calls listed under one key (a pod's incoming calls, an exchange still missing a copy),
/// oldest first. Emitted calls leave in batches, when the list has doubled since it was last
/// pruned (a busy pod's list is long: removing one by one would cost its length each time),
/// and the whole list goes with the last call it holds.
#[derive(Debug, Default)]
struct CallList {
    /// Inline up to two: an exchange's list holds one call until its other copy comes, and a
    /// heap allocation for each would cost more than the rest of keeping it.
    ids: SmallVec<[CallId; 2]>,
    /// Listed calls not yet emitted.
    held: usize,
    /// Length at which the list is next pruned.
    prune_at: usize,
}

impl CallList {
    fn push(&mut self, id: CallId) {
        self.ids.push(id);
        self.held += 1;
    }

    /// Keeps the calls `keep` accepts, if the list is due for pruning.
    fn prune(&mut self, mut keep: impl FnMut(&CallId) -> bool) {
        if self.ids.len() >= self.prune_at.max(MAX_CANDIDATES) {
            self.ids.retain(|c| keep(c));
            self.prune_at = 2 * self.ids.len();
        }
    }

    /// One listed call was emitted (it is no longer in `calls`); true when the list is done.
    fn release(&mut self, calls: &IdTable<Call>) -> bool {
        self.held = self.held.saturating_sub(1);
        if self.held == 0 {
            return true;
        }
        self.prune(|c| calls.contains_key(c));
        false
    }
}

/// Where a call's server runs: its pod, or its address when it has none. A pod is a 64-bit
/// hash of its `namespace/pod` name, computed once per endpoint ([`EndpointInfo::pod_key`]):
/// places are only compared and keyed on, several times per call, and comparing and hashing the
/// names (and counting references to them) cost more than the rest of those steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Place {
    Pod(u64),
    Addr(IpAddr),
}

fn place(p: &Peer) -> Option<Place> {
    if p.info.pod.is_empty() {
        return p.ip.map(Place::Addr);
    }
    Some(Place::Pod(p.info.pod_key()))
}

/// One proxy's record of a call: egress (client side, slot 0) or ingress (server side, slot 1).
#[derive(Clone, Debug, Default)]
struct Observation {
    present: bool,
    node: Option<NodeId>,
    start: Option<Nanos>,
    end: Option<Nanos>,
    /// Connection on which the request waits for its response.
    pending_on: Option<ConnKey>,
}

/// The calls a call's client pod was serving when its request was seen (at most
/// `IN_FLIGHT_KEPT`). Nearly always one or two, and every call keeps its list: inline, they
/// cost no allocation.
type InFlight = SmallVec<[CallId; 2]>;

/// Requests waiting for their response on one connection, oldest first: (call, proxy side).
/// Nearly always one (HTTP/1.1 keep-alive answers in order; HTTP/2 multiplexes a few), so the
/// first two are kept inline: every request record adds an entry and its response removes it,
/// and a heap allocation each time cost more than the rest of those steps.
type WaitingRequests = SmallVec<[(CallId, usize); 2]>;

/// A connection as one proxy saw it: a 64-bit hash of node, direction, addresses and ports.
/// Hashed once per record rather than kept whole: every record looks it up, and a whole key
/// holds the node's name. Two of the few thousand connections open at once share a hash with
/// odds of about 1 in 10^12, and even then a response pairs only with a request of its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConnKey(u64);

#[derive(Debug)]
struct Call {
    group: GroupId,
    client: Peer,
    server: Peer,
    method: Arc<str>,
    path: Arc<str>,
    url_key: u64,
    /// What kind of call this is, for the timing statistics and the call-sequence model: a hash
    /// of its server agent and route (the path with its ids as `{id}`,
    /// [`crate::record::route_of`]), computed once (the inference asks for it many times).
    kind: u64,
    /// Key of `Engine::twins` this call is listed under (its exchange and missing side).
    dedup_key: u64,
    request_id: Option<Arc<str>>,
    trace_id: Option<u128>,
    request_bytes: Option<u64>,
    response_bytes: Option<u64>,
    status: Option<u16>,
    latency_ns: u64,
    obs: [Observation; 2],
    /// Event time at which the call completed (first response) or was given up.
    closed_at: Option<Nanos>,
    /// The call was given up without a response.
    unanswered: bool,
    parent: Option<CallId>,
    confidence: f64,
    /// Calls its client pod was serving when this call's request was seen: the parent
    /// candidates should this call never be answered.
    in_flight_at_start: InFlight,
    /// Those calls' requests hold a claim for this call until it closes. Not when they are
    /// calls of its own request (sharing its trace or request id): that request waits for this
    /// call anyway, while it is open, and a claim on it would cost two lookups per call each
    /// way for nothing.
    claims_in_flight: bool,
    /// Calls linked to this one as their parent.
    children: Vec<CallId>,
    /// Equally good parent candidates awaiting a joint decision (best first by the simple rule).
    pending: Option<Vec<CallId>>,
    /// This call's parent was inferred jointly (its timing teaches nothing certain).
    inferred: bool,
    /// This call's parent was chosen by the joint search, however clearly: it teaches timing
    /// but not how far apart a fan-out's calls start (the search grouped it by that rule).
    decided_jointly: bool,
    /// This call was a candidate in a joint decision (its children may be incomplete).
    contested: bool,
}

impl Call {
    /// The client's view of the interval (egress copy when present, the other copy filling gaps).
    fn made_view(&self) -> (Option<NodeId>, Option<Nanos>, Option<Nanos>) {
        let (a, b) = if self.obs[0].present { (&self.obs[0], &self.obs[1]) } else { (&self.obs[1], &self.obs[0]) };
        (a.node, a.start.or(b.start), a.end.or(b.end))
    }

    /// The server's view (ingress copy when present).
    fn served_view(&self) -> (Option<NodeId>, Option<Nanos>, Option<Nanos>) {
        let o = if self.obs[1].present { &self.obs[1] } else { &self.obs[0] };
        (o.node, o.start, o.end)
    }

    fn start(&self) -> Option<Nanos> {
        self.obs[0].start.or(self.obs[1].start)
    }
}

#[derive(Debug)]
struct Group {
    calls: Vec<CallId>,
    /// Where each of `calls` is served (same order): a pod's calls of this request are found
    /// without looking each call up.
    servers: Vec<Option<Place>>,
    open: usize,
    last_activity: Nanos,
    created: Nanos,
    /// Earliest start of its calls (key of `Engine::group_starts`).
    first_start: Nanos,
    /// Pending calls of other groups that may still be linked to a call of this group.
    claims: usize,
    /// Calls of this group waiting for their parent to be decided.
    awaiting: usize,
    trace_ids: Vec<u128>,
    request_ids: Vec<Arc<str>>,
}

/// A record waiting in the reorder buffer, ordered by (time, tiebreak, arrival).
struct Buffered {
    time: Nanos,
    tiebreak: u64,
    seq: u64,
    record: HttpRecord,
}

impl PartialEq for Buffered {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.tiebreak, self.seq) == (o.time, o.tiebreak, o.seq)
    }
}
impl Eq for Buffered {}
impl PartialOrd for Buffered {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Buffered {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.time, self.tiebreak, self.seq).cmp(&(o.time, o.tiebreak, o.seq))
    }
}

/// A min-queue of timed entries (the reorder buffer, timers). Most entries arrive in order,
/// and those wait in a plain queue (O(1)); only the ones that arrive out of order go through a
/// heap. Entries come out smallest first, as from a heap.
struct TimeQueue<T: Ord> {
    in_order: VecDeque<T>,
    out_of_order: BinaryHeap<Reverse<T>>,
}

impl<T: Ord> Default for TimeQueue<T> {
    fn default() -> Self {
        TimeQueue { in_order: VecDeque::new(), out_of_order: BinaryHeap::new() }
    }
}

impl<T: Ord> TimeQueue<T> {
    fn push(&mut self, entry: T) {
        if self.in_order.back().is_none_or(|last| *last <= entry) {
            self.in_order.push_back(entry);
        } else {
            self.out_of_order.push(Reverse(entry));
        }
    }

    fn peek(&self) -> Option<&T> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => Some(if a <= b { a } else { b }),
            (a, b) => a.or(b.map(|Reverse(b)| b)),
        }
    }

    fn pop(&mut self) -> Option<T> {
        let from_queue = match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => a <= b,
            (a, _) => a.is_some(),
        };
        if from_queue { self.in_order.pop_front() } else { self.out_of_order.pop().map(|Reverse(b)| b) }
    }

    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    fn clear(&mut self) {
        self.in_order.clear();
        self.out_of_order.clear();
    }
}

/// The engine. Feed it records with [`Engine::push`], collect completed requests with
/// [`Engine::drain`], and call [`Engine::finish`] at the end of input.
pub struct Engine {
    config: EngineConfig,
    normalizer: Normalizer,
    stats: EngineStats,
    buffer: TimeQueue<Buffered>,
    seq: u64,
    newest: Nanos,
    /// (time, tiebreak) of the record released last from the reorder buffer: an identical
    /// record comes out right after it.
    last_released: (Nanos, u64),
    /// Event time up to which records have been processed.
    now: Nanos,
    calls: IdTable<Call>,
    groups: IdTable<Group>,
    by_trace: HashMap<u128, GroupId>,
    by_request_id: HashMap<Arc<str>, GroupId>,
    pending: HashMap<ConnKey, WaitingRequests>,
    /// Requests given up without a response (timed out, or emitted early), by connection: a
    /// response that comes after all is theirs, not a call whose request went unseen.
    given_up: GivenUp,
    /// Calls still missing one proxy side's copy, by exchange and missing side.
    twins: HashMap<u64, CallList>,
    /// Calls each pod serves.
    inbound: HashMap<Place, CallList>,
    expiries: TimeQueue<(Nanos, CallId)>,
    group_checks: TimeQueue<(Nanos, GroupId)>,
    /// Groups in creation order, for forced emission when full.
    group_order: VecDeque<GroupId>,
    /// Groups by the start of their earliest call, for start-ordered output.
    group_starts: std::collections::BTreeSet<(Nanos, GroupId)>,
    out: Vec<RequestGraph>,
    /// Calls awaiting a joint parent decision, by the pod that made them.
    pending_children: HashMap<Place, Vec<CallId>>,
    resolve_checks: TimeQueue<(Nanos, Place)>,
    /// Timing statistics learned from unambiguous parents, by kind of call (`Call::kind`).
    timing: HashMap<u64, EdgeTiming>,
    /// Timing statistics of all agents together, used for an agent not yet known well.
    global_timing: EdgeTiming,
    /// The kind of every parent that took part in a joint decision: whose statistics matter.
    joint_parents: foldhash::HashSet<u64>,
    /// The joint search's working memory, reused from one problem to the next.
    search: SearchBuffers,
    /// Ids handed out already, to keep ids unique when a trace or request id recurs.
    id_uses: IdUses,
}

/// How often each request id was handed out lately, to keep ids unique when a trace or request
/// id recurs (retries, a request split by a long gap). Two generations of up to 2^19 ids each,
/// keyed by a 64-bit hash of the id: an id stays unique against at least the last 524,288
/// requests, in about 34 MiB at most (43 MiB for a moment while the current generation's
/// table grows). (A map of the id strings, cleared at a million, grew past
/// 100 MB in a long-running collector and, once cleared, forgot every id at once.)
#[derive(Default)]
struct IdUses {
    current: HashMap<u64, u32>,
    previous: HashMap<u64, u32>,
}

impl IdUses {
    const GENERATION: usize = 1 << 19;

    /// Counts one more use of `id`; returns the count so far (1: its first use).
    fn count(&mut self, id: &str) -> u32 {
        let key = seeded_hash(0x6964_7573_6573, id.as_bytes());
        let earlier = self.previous.get(&key).copied().unwrap_or(0);
        let uses = self.current.entry(key).or_insert(earlier);
        *uses += 1;
        let count = *uses;
        if self.current.len() >= Self::GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        count
    }
}

impl Engine {
    pub fn new(config: EngineConfig, normalize: NormalizeConfig) -> Self {
        Engine {
            config,
            normalizer: Normalizer::new(normalize),
            stats: EngineStats::default(),
            buffer: TimeQueue::default(),
            seq: 0,
            newest: Nanos::MIN,
            last_released: (Nanos::MIN, 0),
            now: Nanos::MIN,
            calls: IdTable::default(),
            groups: IdTable::default(),
            by_trace: HashMap::new(),
            by_request_id: HashMap::new(),
            pending: HashMap::new(),
            given_up: GivenUp::default(),
            twins: HashMap::new(),
            inbound: HashMap::new(),
            expiries: TimeQueue::default(),
            group_checks: TimeQueue::default(),
            group_order: VecDeque::new(),
            group_starts: std::collections::BTreeSet::new(),
            out: Vec::new(),
            pending_children: HashMap::new(),
            resolve_checks: TimeQueue::default(),
            timing: HashMap::new(),
            global_timing: EdgeTiming::default(),
            joint_parents: Default::default(),
            search: SearchBuffers::default(),
            id_uses: IdUses::default(),
        }
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The timing statistics learned so far (to seed another engine: a second pass).
    pub fn timing_model(&self) -> TimingModel {
        TimingModel(self.timing.clone())
    }

    /// Starts from statistics learned elsewhere (a first pass over the same dump).
    pub fn set_timing_model(&mut self, model: TimingModel) {
        self.timing = model.0;
    }

    /// Whether every agent that took part in a joint decision has at least `examples` certain
    /// examples learned (a learning pass can stop then); false before any joint decision.
    pub fn timing_settled(&self, examples: u32) -> bool {
        !self.joint_parents.is_empty()
            && self.joint_parents.iter().all(|key| {
                self.timing.get(key).is_some_and(|t| t.with_children.saturating_add(t.without_children) >= examples)
            })
    }

    /// Calls currently held (open or waiting for their request to complete).
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Requests currently being assembled.
    pub fn open_requests(&self) -> usize {
        self.groups.len()
    }

    /// Records waiting in the reorder buffer.
    pub fn buffered_records(&self) -> usize {
        self.buffer.len()
    }

    /// Takes the requests completed so far (in completion order).
    pub fn drain(&mut self) -> std::vec::Drain<'_, RequestGraph> {
        self.out.drain(..)
    }

    /// The start time of the oldest request still being assembled (or buffered), so a consumer
    /// can emit completed requests in start order.
    pub fn oldest_open_start(&self) -> Option<Nanos> {
        let group = self.group_starts.first().map(|(t, _)| *t);
        let buffered = self.buffer.peek().map(|b| b.time);
        match (group, buffered) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Adds one decoded flow; flows other than L7 HTTP only advance event time.
    pub fn push_flow(&mut self, flow: &FlowView<'_>) {
        match self.normalizer.normalize(flow) {
            Normalized::Http(record) => self.push(record),
            Normalized::Ignored => self.advance_watermark(flow.time_ns),
        }
    }

    /// Adds one decoded event of a dump: a flow, or a lost-events marker (its time lets event
    /// time advance). Returns whether the event meant anything to the engine.
    pub fn push_event(&mut self, event: &Event<'_>) -> bool {
        match event {
            Event::Flow(flow) => self.push_flow(flow),
            Event::LostEvents { time_ns: Some(t), .. } => self.advance_watermark(*t),
            _ => return false,
        }
        true
    }

    /// Adds one record.
    pub fn push(&mut self, record: HttpRecord) {
        let time = record.time;
        if time < self.now {
            self.stats.late_records += 1;
            self.process(record);
            return;
        }
        self.newest = self.newest.max(time);
        self.seq += 1;
        self.buffer.push(Buffered { time, tiebreak: record.tiebreak, seq: self.seq, record });
        let horizon = self.newest.saturating_sub(self.config.reorder_window);
        while let Some(top) = self.buffer.peek() {
            let overflow = self.buffer.len() > self.config.max_buffered_records;
            if top.time > horizon && !overflow {
                break;
            }
            if overflow {
                self.stats.reorder_overflow += 1;
            }
            let b = self.buffer.pop().expect("peeked");
            self.process_buffered(b);
        }
    }

    /// Advances event time without a record (a live source that went quiet, a lost-events
    /// marker), releasing what the reorder window and timeouts allow.
    pub fn advance_watermark(&mut self, time: Nanos) {
        self.newest = self.newest.max(time);
        let horizon = self.newest.saturating_sub(self.config.reorder_window);
        while self.buffer.peek().is_some_and(|b| b.time <= horizon) {
            let b = self.buffer.pop().expect("peeked");
            self.process_buffered(b);
        }
        self.advance(horizon);
    }

    /// End of input: processes everything buffered, closes unanswered calls and emits every
    /// request.
    pub fn finish(&mut self) {
        while let Some(b) = self.buffer.pop() {
            self.process_buffered(b);
        }
        let open: Vec<CallId> = {
            let mut v: Vec<(Nanos, CallId)> = self
                .calls
                .iter()
                .filter(|(_, c)| c.closed_at.is_none())
                .map(|(id, c)| (c.start().unwrap_or(Nanos::MIN), id))
                .collect();
            v.sort_unstable();
            v.into_iter().map(|(_, id)| id).collect()
        };
        for id in open {
            self.close(id, self.now, true);
        }
        // In a fixed order: the map's is random, and the decisions of one place teach the timing
        // that decides the next.
        let mut places: Vec<Place> = self.pending_children.keys().cloned().collect();
        places.sort_unstable();
        for p in places {
            self.resolve(&p, true);
        }
        self.resolve_checks.clear();
        let mut order: Vec<GroupId> = self.group_order.drain(..).collect();
        order.retain(|g| self.groups.contains_key(g));
        for g in order {
            self.emit(g);
        }
        self.expiries.clear();
        self.group_checks.clear();
    }

    /// Moves event time to `time`: expires unanswered calls and emits settled requests.
    fn advance(&mut self, time: Nanos) {
        if time <= self.now {
            return;
        }
        loop {
            if let Some((t, _)) = self.resolve_checks.peek()
                && *t <= time
                && self.expiries.peek().is_none_or(|(e, _)| *t <= *e)
            {
                let (t, place) = self.resolve_checks.pop().expect("peeked");
                self.now = self.now.max(t);
                self.resolve(&place, false);
                continue;
            }
            let next_expiry = self.expiries.peek().map(|(t, _)| *t);
            let next_check = self.group_checks.peek().map(|(t, _)| *t);
            match (next_expiry, next_check) {
                (Some(e), c) if e <= time && c.is_none_or(|c| e <= c) => {
                    let (t, id) = self.expiries.pop().expect("peeked");
                    self.now = self.now.max(t);
                    if self.calls.get(&id).is_some_and(|c| c.closed_at.is_none()) {
                        self.close(id, t, true);
                    }
                }
                (_, Some(c)) if c <= time => {
                    let (t, g) = self.group_checks.pop().expect("peeked");
                    self.now = self.now.max(t);
                    self.check_group(g);
                }
                _ => break,
            }
        }
        self.now = time;
    }

    /// Processes a record leaving the reorder buffer, unless it repeats the one before it.
    /// The buffer orders records by (time, tiebreak), and the tiebreak hashes everything that
    /// tells two records apart (node, direction, addresses and ports, method and URL, status,
    /// request id), so a second copy of one flow leaves right after the first.
    fn process_buffered(&mut self, b: Buffered) {
        let key = (b.time, b.tiebreak);
        if key == self.last_released {
            self.stats.repeated_records += 1;
            return;
        }
        self.last_released = key;
        self.advance(b.time);
        self.process(b.record);
    }

    /// By value: a request that makes a call gives it its endpoints, names and ids (shared,
    /// reference-counted) rather than copies, whose counts would go up for the call and down
    /// again as the record is dropped.
    fn process(&mut self, r: HttpRecord) {
        if r.is_response {
            self.stats.http_responses += 1;
            self.on_response(&r);
        } else {
            self.stats.http_requests += 1;
            self.on_request(r);
        }
    }

    fn slot(direction: TrafficDirection) -> usize {
        if direction == TrafficDirection::Ingress { 1 } else { 0 }
    }

    fn conn_key(r: &HttpRecord) -> ConnKey {
        ConnKey(seeded_hash(0x636f_6e6e, (r.node, r.direction, r.client.ip, r.client.port, r.server.ip, r.server.port)))
    }

    fn dedup_key(r: &HttpRecord) -> u64 {
        seeded_hash(0x7477_696e, (r.client.ip, r.server.ip, r.server.port, r.url_key))
    }

    /// Key of the calls with `dedup_key` still missing the copy of proxy side `slot`: a record
    /// looks only among calls it can complete (with one proxy side recorded, none).
    fn twin_key(dedup_key: u64, missing_slot: usize) -> u64 {
        dedup_key ^ (missing_slot as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The other copy of this exchange, recorded by the proxy on the other side.
    fn find_twin(&self, r: &HttpRecord, key: u64, slot: usize) -> Option<CallId> {
        let other = 1 - slot;
        let ids = &self.twins.get(&Self::twin_key(key, slot))?.ids;
        // The twin is among the newest calls with this key (copies are milliseconds apart).
        ids.iter()
            .rev()
            .take(MAX_CANDIDATES)
            .copied()
            .filter_map(|id| self.calls.get(&id).map(|c| (id, c)))
            .filter(|(_, c)| c.obs[other].present && !c.obs[slot].present && c.url_key == r.url_key)
            .filter(|(_, c)| same_opt(&c.request_id, &r.request_id) && same_opt(&c.trace_id, &r.trace_id))
            .filter(|(_, c)| c.client.ip == r.client.ip && c.server.ip == r.server.ip)
            // The same 5-tuple: parallel calls to one pod differ only in the client port.
            .filter(|(_, c)| c.client.port == 0 || r.client.port == 0 || c.client.port == r.client.port)
            .filter_map(|(id, c)| {
                let o = &c.obs[other];
                let reference = if r.is_response { o.end.or(o.start) } else { o.start };
                let gap = (reference? - r.time).abs();
                (gap <= self.config.dedup_window + self.config.clock_skew).then_some((gap, id))
            })
            .min()
            .map(|(_, id)| id)
    }

    fn on_request(&mut self, r: HttpRecord) {
        let slot = Self::slot(r.direction);
        let key = Self::dedup_key(&r);
        let conn = Self::conn_key(&r);
        if let Some(id) = self.find_twin(&r, key, slot) {
            self.stats.duplicate_requests += 1;
            let call = self.calls.get_mut(&id).expect("twin exists");
            let o = &mut call.obs[slot];
            o.present = true;
            o.node = Some(r.node);
            o.start = Some(r.time);
            call.request_bytes = call.request_bytes.or(r.request_bytes);
            // Even when the other side already saw the response, this side's response is still
            // to come and must pair with this request.
            o.pending_on = Some(conn);
            self.pending.entry(conn).or_default().push((id, slot));
            let g = call.group;
            self.touch(g, r.time);
            return;
        }
        self.make_room();
        let time = r.time;
        let id = self.new_call(r, key, slot);
        let (in_flight, own_request) = self.in_flight_at(id, time);
        // The calls in flight on the client's pod may be this call's parent: their request waits
        // until this call is decided, even if they answer first (a client that gave up).
        if !own_request {
            self.claim(&in_flight, 1);
        }
        let call = self.calls.get_mut(&id).expect("just made");
        call.in_flight_at_start = in_flight;
        call.claims_in_flight = !own_request;
        call.obs[slot].pending_on = Some(conn);
        self.pending.entry(conn).or_default().push((id, slot));
        self.expiries.push((time + self.config.response_timeout, id));
    }

    fn on_response(&mut self, r: &HttpRecord) {
        let slot = Self::slot(r.direction);
        let conn = Self::conn_key(r);
        if let Some(id) = self.match_pending(&conn, r) {
            self.complete(id, slot, r);
            return;
        }
        // No request waits on this connection: the request lies before the start of the input,
        // or only the other side's proxy recorded it.
        let key = Self::dedup_key(r);
        if let Some(id) = self.find_twin(r, key, slot) {
            let call = self.calls.get_mut(&id).expect("twin exists");
            let o = &mut call.obs[slot];
            o.present = true;
            o.node = Some(r.node);
            o.end = Some(r.time);
            if r.latency_ns > 0 {
                o.start = Some(r.time - r.latency_ns as Nanos);
            }
            self.complete(id, slot, r);
            return;
        }
        if self.given_up.take(&conn, r) {
            self.stats.late_responses += 1;
            return;
        }
        self.stats.orphan_responses += 1;
        self.make_room();
        let id = self.new_call(r.clone(), key, slot);
        let call = self.calls.get_mut(&id).expect("just made");
        let o = &mut call.obs[slot];
        o.end = Some(r.time);
        o.start = (r.latency_ns > 0).then(|| r.time - r.latency_ns as Nanos);
        self.complete(id, slot, r);
        self.adopt_children(id);
    }

    /// A call whose request lies before the start of the input gets its parent links late: the
    /// calls its server made in the same trace or request id, while it was in flight, and that
    /// found no parent, are its children.
    fn adopt_children(&mut self, id: CallId) {
        let call = &self.calls[&id];
        let Some(server) = place(&call.server) else { return };
        if call.trace_id.is_none() && call.request_id.is_none() {
            return;
        }
        let (_, start, end) = call.served_view();
        let Some(end) = end else { return };
        let group = call.group;
        let orphans: Vec<CallId> = self.groups[&group]
            .calls
            .iter()
            .copied()
            .filter(|&c| c != id)
            .filter(|c| {
                let child = &self.calls[c];
                let (_, s, e) = child.made_view();
                child.parent.is_none()
                    && child.closed_at.is_some()
                    && place(&child.client).as_ref() == Some(&server)
                    && same_opt(&child.trace_id, &call.trace_id)
                    && same_opt(&child.request_id, &call.request_id)
                    && s.is_some_and(|s| start.is_none_or(|p| p <= s + self.config.clock_skew))
                    && e.is_none_or(|e| e <= end + self.config.clock_skew)
            })
            .collect();
        for c in orphans {
            let child = self.calls.get_mut(&c).expect("listed");
            child.parent = Some(id);
        }
    }

    /// The request on `conn` that this response answers: same method and URL, the same request
    /// id when both carry one, and the request time closest to `time - latency` when the latency
    /// is known (HTTP/2 multiplexing); otherwise the oldest (HTTP/1.1 answers in order).
    fn match_pending(&mut self, conn: &ConnKey, r: &HttpRecord) -> Option<CallId> {
        let queue = self.pending.get_mut(conn)?;
        let calls = &self.calls;
        let expected = (r.latency_ns > 0).then(|| r.time - r.latency_ns as Nanos);
        // One pass, no allocation (it runs for every response): the best waiting request with
        // the response's request id, and the best one without any id. A response naming a
        // request id that no waiting request carries answers a request we did not see; waiting
        // requests without an id may still be it.
        let mut with_rid: Option<(Nanos, usize, CallId, Nanos)> = None;
        let mut other: Option<(Nanos, usize, CallId, Nanos)> = None;
        for (pos, &(id, slot)) in queue.iter().enumerate() {
            let Some(c) = calls.get(&id) else { continue };
            let Some(start) = c.obs[slot].start else { continue };
            if c.url_key != r.url_key {
                continue;
            }
            let best = match (&r.request_id, &c.request_id) {
                (Some(rid), Some(own)) if rid == own => &mut with_rid,
                (Some(_), Some(_)) => continue,
                _ => &mut other,
            };
            // By closeness to the request time the latency gives, else the oldest.
            let distance = expected.map_or(0, |e| (start - e).abs());
            if best.is_none_or(|(d, p, _, _)| (distance, pos) < (d, p)) {
                *best = Some((distance, pos, id, start));
            }
        }
        let (_, pos, id, start) = with_rid.or(other)?;
        if start > r.time {
            return None;
        }
        queue.remove(pos);
        if queue.is_empty() {
            self.pending.remove(conn);
        }
        Some(id)
    }

    /// Records the response on the call's `slot` observation and closes the call.
    fn complete(&mut self, id: CallId, slot: usize, r: &HttpRecord) {
        let call = self.calls.get_mut(&id).expect("call exists");
        if call.obs[1 - slot].end.is_some() {
            // The other proxy already recorded this response.
            self.stats.duplicate_responses += 1;
        }
        let o = &mut call.obs[slot];
        o.present = true;
        o.node.get_or_insert(r.node);
        o.end = Some(r.time);
        o.pending_on = None;
        if call.status.is_none() || slot == 0 {
            call.status = Some(r.status);
        }
        if r.latency_ns > 0 && (slot == 0 || call.latency_ns == 0) {
            call.latency_ns = r.latency_ns;
        }
        call.response_bytes = call.response_bytes.or(r.response_bytes);
        call.request_bytes = call.request_bytes.or(r.request_bytes);
        if call.request_id.is_none() {
            call.request_id.clone_from(&r.request_id);
        }
        call.trace_id = call.trace_id.or(r.trace_id);
        let group = call.group;
        if call.closed_at.is_none() {
            self.close(id, r.time, false);
        } else {
            self.touch(group, r.time);
        }
    }

    fn new_call(&mut self, r: HttpRecord, dedup_key: u64, slot: usize) -> CallId {
        let dedup_key = Self::twin_key(dedup_key, 1 - slot);
        let mut group = self.group_for(r.trace_id, r.request_id.as_ref(), r.time);
        if self.groups.get(&group).is_some_and(|g| g.calls.len() >= self.config.max_request_calls) {
            // Emitting it unindexes its ids: the lookup now starts a new request.
            self.emit_early(group);
            group = self.group_for(r.trace_id, r.request_id.as_ref(), r.time);
        }
        let mut obs: [Observation; 2] = Default::default();
        obs[slot] = Observation {
            present: true,
            node: Some(r.node),
            start: (!r.is_response).then_some(r.time),
            end: None,
            pending_on: None,
        };
        // The route (the path with its ids as `{id}`) only goes into the kind's hash, which is
        // never END (0).
        let kind = seeded_hash(0x6b69_6e64, (r.server.info.agent.as_bytes(), route_of(&r.path).as_bytes())) | 1;
        let (time, is_response, latency_ns) = (r.time, r.is_response, r.latency_ns);
        let call = Call {
            group,
            client: r.client,
            server: r.server,
            method: r.method,
            path: r.path,
            url_key: r.url_key,
            kind,
            dedup_key,
            request_id: r.request_id,
            trace_id: r.trace_id,
            request_bytes: r.request_bytes,
            response_bytes: r.response_bytes,
            status: None,
            latency_ns: 0,
            obs,
            closed_at: None,
            unanswered: false,
            parent: None,
            confidence: 1.0,
            in_flight_at_start: InFlight::new(),
            claims_in_flight: false,
            children: Vec::new(),
            pending: None,
            inferred: false,
            decided_jointly: false,
            contested: false,
        };
        let server = place(&call.server);
        let id = self.calls.insert(call);
        if let Some(p) = server {
            self.inbound.entry(p).or_default().push(id);
        }
        self.twins.entry(dedup_key).or_default().push(id);
        let start = if is_response { time - latency_ns as Nanos } else { time };
        let g = self.groups.get_mut(&group).expect("group exists");
        g.calls.push(id);
        g.servers.push(server);
        g.open += 1;
        g.last_activity = g.last_activity.max(time);
        if start < g.first_start {
            self.group_starts.remove(&(g.first_start, group));
            g.first_start = start;
            self.group_starts.insert((start, group));
        }
        id
    }

    /// The group a new call joins: the one of its trace id, else of its request id, else new.
    fn group_for(&mut self, trace: Option<u128>, rid: Option<&Arc<str>>, time: Nanos) -> GroupId {
        if let Some(g) = trace.and_then(|t| self.by_trace.get(&t)) {
            return *g;
        }
        if let Some(g) = rid.and_then(|r| self.by_request_id.get(r)) {
            let g = *g;
            if let Some(t) = trace {
                self.by_trace.insert(t, g);
                self.groups.get_mut(&g).expect("indexed").trace_ids.push(t);
            }
            return g;
        }
        let group = Group {
            // Room for eight calls from the start, which saves the first regrowth (four to eight)
            // of most requests' lists: a traced request has about twenty calls in the
            // benchmark's dump. (A request of one call reserves 256 bytes it does not use.)
            calls: Vec::with_capacity(8),
            servers: Vec::with_capacity(8),
            open: 0,
            last_activity: time,
            created: time,
            first_start: time,
            claims: 0,
            awaiting: 0,
            trace_ids: trace.into_iter().collect(),
            request_ids: rid.into_iter().cloned().collect(),
        };
        let g = self.groups.insert(group);
        self.group_starts.insert((time, g));
        if let Some(t) = trace {
            self.by_trace.insert(t, g);
        }
        if let Some(r) = rid {
            self.by_request_id.insert(r.clone(), g);
        }
        self.group_order.push_back(g);
        g
    }

    fn touch(&mut self, g: GroupId, time: Nanos) {
        if let Some(group) = self.groups.get_mut(&g) {
            group.last_activity = group.last_activity.max(time);
        }
    }

    /// Closes a call (answered at `time`, or given up), decides its parent, and schedules the
    /// check that emits its request once everything settled.
    fn close(&mut self, id: CallId, time: Nanos, unanswered: bool) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        call.closed_at = Some(time);
        call.unanswered = unanswered;
        if unanswered {
            self.stats.unanswered_calls += 1;
            for o in &mut call.obs {
                if let Some(conn) = o.pending_on.take() {
                    give_up(&mut self.pending, &mut self.given_up, conn, id, call.url_key, o.start);
                }
            }
        }
        let group = call.group;
        // The claims this call holds are released now (its list is put back: it names an
        // unanswered call's parent candidates).
        let claimed = std::mem::take(&mut call.claims_in_flight).then(|| std::mem::take(&mut call.in_flight_at_start));
        if let Some(g) = self.groups.get_mut(&group) {
            g.open = g.open.saturating_sub(1);
            g.last_activity = g.last_activity.max(time);
        }
        if let Some(in_flight) = claimed {
            self.claim(&in_flight, -1);
            self.calls.get_mut(&id).expect("exists").in_flight_at_start = in_flight;
        }
        self.decide_parent(id);
        let call = &self.calls[&id];
        let group = call.group;
        // A closed incoming call may make its pod's pending decisions decidable.
        if let Some(p) = place(&call.server)
            && self.pending_children.contains_key(&p)
        {
            self.resolve_checks.push((time + self.resolve_margin(), p));
        }
        self.group_checks.push((time + self.config.settle_time(), group));
    }

    /// The calls of `call`'s own request served at `at`, when it carries a trace or request id
    /// and the request is not too large to search whole.
    fn own_request_calls_at<'s>(
        &'s self,
        call: &Call,
        at: &'s Place,
    ) -> Option<impl DoubleEndedIterator<Item = CallId> + 's> {
        if call.trace_id.is_none() && call.request_id.is_none() {
            return None;
        }
        let group = self.groups.get(&call.group)?;
        (group.calls.len() <= 4 * MAX_CANDIDATES).then(|| {
            group.calls.iter().zip(&group.servers).filter(move |(_, p)| p.as_ref() == Some(at)).map(|(c, _)| *c)
        })
    }

    /// The calls call `id`'s client pod is serving at `time` (or finished within the clock
    /// tolerance): those sharing its trace or request id when there are any (one of them will
    /// be its parent), else all of them, newest first; and whether they are its own request's.
    fn in_flight_at(&self, id: CallId, time: Nanos) -> (InFlight, bool) {
        let Some(call) = self.calls.get(&id) else { return (InFlight::new(), false) };
        let Some(p) = place(&call.client) else { return (InFlight::new(), false) };
        let horizon = time.saturating_sub(self.config.clock_skew);
        if let Some(own) = self.own_request_calls_at(call, &p) {
            let sharing: InFlight = own
                .rev()
                .filter(|&c| c != id)
                .filter(|c| {
                    self.calls.get(c).is_some_and(|c| c.closed_at.is_none_or(|t| t >= horizon) && id_tier(c, call) > 0)
                })
                .take(IN_FLIGHT_KEPT)
                .collect();
            if !sharing.is_empty() {
                return (sharing, true);
            }
        }
        let all = self
            .inbound
            .get(&p)
            .map(|list| {
                list.ids
                    .iter()
                    .rev()
                    .copied()
                    .filter(|c| self.calls.get(c).is_some_and(|c| c.closed_at.is_none_or(|t| t >= horizon)))
                    .take(IN_FLIGHT_KEPT)
                    .collect()
            })
            .unwrap_or_default();
        (all, false)
    }

    /// The parent of a call made by pod P is a call served by P that contains it. Candidates
    /// carrying the same trace id are preferred, then the same request id, then any without a
    /// conflicting trace id; among equals, one that contains the call as stamped before one
    /// that does only within the clock tolerance, then the latest-started (the contract's simple
    /// rule), with confidence lowered by the number of equally good candidates.
    fn decide_parent(&mut self, id: CallId) {
        let call = &self.calls[&id];
        let Some(client_place) = place(&call.client) else { return };
        // Calls that ended well before now cannot contain a call ending now: drop them from the
        // pod's list so the search stays proportional to the calls in flight.
        let margin = 2 * self.config.clock_skew + self.config.dedup_window;
        let horizon = self.now.saturating_sub(margin);
        if let Some(list) = self.inbound.get_mut(&client_place) {
            let calls = &self.calls;
            list.prune(|c| calls.get(c).is_some_and(|c| c.closed_at.is_none_or(|t| t >= horizon)));
        }
        let call = &self.calls[&id];
        let inbound: &[CallId] = if call.unanswered {
            &call.in_flight_at_start
        } else {
            match self.inbound.get(&client_place) {
                Some(list) => &list.ids,
                None => return,
            }
        };
        let (child_node, child_start, child_end) = call.made_view();
        let Some(child_start) = child_start else { return };
        // An unanswered child need only have started while its parent was in flight.
        let child_end = if call.unanswered { child_start } else { child_end.unwrap_or(child_start) };
        // A candidate parent: its preference tier, whether it contains the call without the
        // clock tolerance, its start and id (`None`: it cannot be).
        let candidate = |pid: CallId| -> Option<(u8, bool, Nanos, CallId)> {
            if pid == id {
                return None;
            }
            let p = self.calls.get(&pid)?;
            if conflicting_traces(p, call) {
                return None;
            }
            let (parent_node, p_start, p_end) = p.served_view();
            let p_start = p_start?;
            let tol = if parent_node.is_some() && parent_node == child_node { 0 } else { self.config.clock_skew };
            if p_start > child_start + tol {
                return None;
            }
            let p_end = match (p.closed_at, p.unanswered) {
                (None, _) => None,
                (Some(at), true) => Some(at),
                (Some(at), false) => Some(p_end.unwrap_or(at)),
            };
            if p_end.is_some_and(|e| e + tol < child_end) {
                return None;
            }
            // Checked last: it walks up the parent chain.
            if is_ancestor_or_self(&self.calls, id, pid) {
                return None;
            }
            let contains = p_start <= child_start && p_end.is_none_or(|e| e >= child_end);
            Some((id_tier(p, call), contains, p_start, pid))
        };
        // A call carrying a trace or request id almost always has its parent among the calls of
        // its own request served by its pod: look there first, and scan everything the pod
        // serves only when that finds nothing (candidates sharing an id outrank all others).
        // Runs for every call: one list, filtered and ordered in place.
        let mut best: SmallVec<[(u8, bool, Nanos, CallId); 8]> = match self.own_request_calls_at(call, &client_place) {
            Some(own) if !call.unanswered => own.filter_map(candidate).collect(),
            _ => SmallVec::new(),
        };
        if !best.iter().any(|(tier, _, _, _)| *tier > 0) {
            // Nothing sharing an id among the own request's calls: search all the pod serves,
            // latest-started first; a pod with a pile of calls is searched only among its newest.
            best.clear();
            best.extend(inbound.iter().rev().take(4 * MAX_CANDIDATES).filter_map(|&pid| candidate(pid)));
        }
        let Some(top_tier) = best.iter().map(|(tier, _, _, _)| *tier).max() else { return };
        best.retain(|(tier, _, _, _)| *tier == top_tier);
        // The simple rule's preference first: a call that contains this one as stamped, then
        // the latest-started. One that seems to start after it (or end before it), within the
        // clock tolerance between nodes, is a parent only if the clocks are off by that much.
        best.sort_unstable_by_key(|&(_, contains, start, pid)| (Reverse(contains), Reverse(start), pid));
        if let [(_, _, _, only)] = best[..] {
            self.link(id, only, if top_tier > 0 { 1.0 } else { 0.9 });
            return;
        }
        // Several equally good candidates: decide jointly with the pod's other ambiguous calls
        // once every candidate has completed.
        let candidates: Vec<CallId> = best.into_iter().map(|(_, _, _, pid)| pid).collect();
        for c in &candidates {
            let g = self.calls[c].group;
            if let Some(group) = self.groups.get_mut(&g) {
                group.claims += 1;
            }
        }
        let call = self.calls.get_mut(&id).expect("exists");
        call.pending = Some(candidates);
        let g = call.group;
        if let Some(group) = self.groups.get_mut(&g) {
            group.awaiting += 1;
        }
        self.pending_children.entry(client_place).or_default().push(id);
        self.resolve_checks.push((self.now + self.resolve_margin(), client_place));
    }

    /// Adds (or with -1 releases) a claim on the requests of `calls`: they are not emitted while
    /// a call that may belong to them is undecided.
    fn claim(&mut self, calls: &[CallId], delta: isize) {
        for c in calls {
            let Some(g) = self.calls.get(c).map(|c| c.group) else { continue };
            if let Some(group) = self.groups.get_mut(&g) {
                group.claims = group.claims.saturating_add_signed(delta);
                // The last claim gone: the request may be complete.
                if delta < 0 && group.claims == 0 {
                    self.group_checks.push((self.now, g));
                }
            }
        }
    }

    /// How long after its last candidate completed a pending decision waits for late records.
    fn resolve_margin(&self) -> Nanos {
        2 * self.config.clock_skew + self.config.dedup_window
    }

    /// Links `child` to `parent`, merging their requests.
    fn link(&mut self, child: CallId, parent: CallId, confidence: f64) {
        let parent_group = self.calls[&parent].group;
        self.calls.get_mut(&parent).expect("exists").children.push(child);
        let call = self.calls.get_mut(&child).expect("exists");
        call.parent = Some(parent);
        call.confidence = confidence;
        let child_group = call.group;
        if child_group != parent_group {
            self.merge_groups(parent_group, child_group);
        }
    }

    /// Decides the pending calls of pod `place` whose candidates have all completed (all of
    /// them when `force`), jointly, by the learned timing statistics.
    fn resolve(&mut self, place: &Place, force: bool) {
        let Some(list) = self.pending_children.get(place) else { return };
        let margin = self.resolve_margin();
        let now = self.now;
        let calls = &self.calls;
        let candidates_of = |c: &CallId| calls.get(c).and_then(|c| c.pending.as_deref()).unwrap_or(&[]);
        let decidable: Vec<bool> = list
            .iter()
            .map(|c| {
                force
                    || candidates_of(c)
                        .iter()
                        .all(|p| calls.get(p).is_none_or(|p| p.closed_at.is_some_and(|t| t + margin <= now)))
            })
            .collect();
        // Only a decidable call is ever decided now; most checks (a call of the pod closed while
        // its waiting calls' candidates still run) find none, and need not group them.
        if !decidable.contains(&true) {
            return;
        }
        // Calls sharing a candidate parent are decided together, so no parent is scored with
        // only some of its calls: a component waits until all of it is decidable (bounded by
        // `JOINT_HOLD` and `MAX_JOINT_CHILDREN`).
        let mut component: Vec<usize> = (0..list.len()).collect();
        fn root(component: &mut [usize], mut i: usize) -> usize {
            while component[i] != i {
                component[i] = component[component[i]];
                i = component[i];
            }
            i
        }
        let mut first_child_of: HashMap<CallId, usize> = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            for p in candidates_of(c) {
                let j = *first_child_of.entry(*p).or_insert(i);
                let (a, b) = (root(&mut component, i), root(&mut component, j));
                component[a] = b;
            }
        }
        // Per component: all decidable, earliest start, size.
        let mut summary: HashMap<usize, (bool, Nanos, usize)> = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            let start = calls.get(c).and_then(|c| c.made_view().1).unwrap_or(now);
            let e = summary.entry(root(&mut component, i)).or_insert((true, start, 0));
            e.0 &= decidable[i];
            e.1 = e.1.min(start);
            e.2 += 1;
        }
        let ready: Vec<CallId> = list
            .iter()
            .enumerate()
            .filter(|&(i, _)| {
                let (all, earliest, size) = summary[&root(&mut component, i)];
                decidable[i] && (all || earliest + JOINT_HOLD <= now || size > MAX_JOINT_CHILDREN)
            })
            .map(|(_, c)| *c)
            .collect();
        if ready.is_empty() {
            return;
        }
        let ready_set: foldhash::HashSet<CallId> = ready.iter().copied().collect();
        let list = self.pending_children.get_mut(place).expect("present");
        list.retain(|c| !ready_set.contains(c));
        // The undecided calls that may go to the same parents are searched with the ready ones
        // as context, though only the ready ones are decided now: a parent scored without some
        // of its calls (the last one, which shows when it answered) is a coin toss between
        // parents whose first calls look alike.
        let ready_parents: foldhash::HashSet<CallId> = ready
            .iter()
            .filter_map(|c| self.calls.get(c).and_then(|c| c.pending.as_ref()))
            .flatten()
            .copied()
            .collect();
        let context: Vec<CallId> = list
            .iter()
            .copied()
            .filter(|c| {
                self.calls
                    .get(c)
                    .and_then(|c| c.pending.as_ref())
                    .is_some_and(|p| p.iter().any(|p| ready_parents.contains(p)))
            })
            // Context never pushes a problem past the joint search's size (to the simple rule).
            .take(MAX_JOINT_CHILDREN.saturating_sub(ready.len()))
            .collect();
        let context_set: foldhash::HashSet<CallId> = context.iter().copied().collect();
        // Parents that calls outside the search may yet be given: not scored as finished.
        let still_open: foldhash::HashSet<CallId> = list
            .iter()
            .filter(|c| !context_set.contains(c))
            .filter_map(|c| self.calls.get(c).and_then(|c| c.pending.as_ref()))
            .flatten()
            .copied()
            .collect();
        if list.is_empty() {
            self.pending_children.remove(place);
        }
        // The parents in play and the children to place, in start order.
        let mut parent_ids: Vec<CallId> = Vec::new();
        let mut parent_index: HashMap<CallId, usize> = HashMap::new();
        let mut children: Vec<(CallId, Span, Vec<CallId>)> = Vec::new();
        // Requests of candidates that lose a claim here: each must be checked again, as the
        // last claim gone may leave it complete (a candidate not chosen is touched by nothing
        // else, and its request was held until the end of input).
        let mut released: Vec<GroupId> = Vec::new();
        for (&c, decide) in ready.iter().map(|c| (c, true)).chain(context.iter().map(|c| (c, false))) {
            let Some(call) = self.calls.get_mut(&c) else { continue };
            let cands: Vec<CallId> =
                if decide { call.pending.take().unwrap_or_default() } else { call.pending.clone().unwrap_or_default() };
            let g = call.group;
            let (_, s, e) = call.made_view();
            let start = s.unwrap_or(0);
            let end = if call.unanswered { start } else { e.unwrap_or(start) };
            let kind = call.kind;
            if decide && let Some(group) = self.groups.get_mut(&g) {
                group.awaiting = group.awaiting.saturating_sub(1);
            }
            let mut alive = Vec::new();
            for p in cands {
                let Some(pc) = self.calls.get_mut(&p) else { continue };
                let pg = pc.group;
                if decide && let Some(group) = self.groups.get_mut(&pg) {
                    group.claims = group.claims.saturating_sub(1);
                    released.push(pg);
                }
                alive.push(p);
                parent_index.entry(p).or_insert_with(|| {
                    parent_ids.push(p);
                    parent_ids.len() - 1
                });
            }
            children.push((c, Span { start, end, kind }, alive));
        }
        children.sort_by_key(|(id, iv, _)| (iv.start, *id));
        let empty = EdgeTiming::default();
        let mut joint_parents = Vec::new();
        let slots: Vec<ParentSlot<'_>> = parent_ids
            .iter()
            .map(|p| {
                let pc = &self.calls[p];
                let (_, s, e) = pc.served_view();
                let start = s.unwrap_or(0);
                let end = e.or(pc.closed_at).unwrap_or(start).max(start);
                let fixed = pc
                    .children
                    .iter()
                    .filter_map(|k| self.calls.get(k))
                    .filter_map(|k| {
                        let (_, s, e) = k.made_view();
                        let s = s?;
                        Some(Span { start: s, end: e.unwrap_or(s), kind: k.kind })
                    })
                    .collect();
                let timing = self.timing.get(&pc.kind).unwrap_or(&empty);
                joint_parents.push(pc.kind);
                ParentSlot {
                    interval: Span { start, end, kind: pc.kind },
                    fixed,
                    timing,
                    fallback: &self.global_timing,
                    open: still_open.contains(p) || pc.closed_at.is_none(),
                }
            })
            .collect();
        // A fan-out (same-kind calls launched together, by an agent known to make such calls
        // several at once) goes to one parent as a unit, one of the candidates of all its
        // calls: a parent launches its fan-out at once, and splitting one between parents is
        // the costliest mistake a per-call choice makes.
        let mut units: Vec<(Vec<usize>, ChildSlot)> = Vec::new();
        for (i, (_, iv, cands)) in children.iter().enumerate() {
            let candidates: Vec<usize> = cands.iter().map(|p| parent_index[p]).collect();
            if let Some((members, unit)) = units.last_mut()
                && let Some(last) = unit.calls.last()
                && last.kind == iv.kind
                && unit.candidates.iter().all(|&p| iv.start - last.start <= slots[p].timing.fan_out_spread(iv.kind))
                && unit.calls.iter().any(|c| c.end > iv.start)
                && unit.candidates.iter().any(|p| candidates.contains(p))
                && unit.candidates.iter().all(|&p| slots[p].timing.fans_out(iv.kind))
            {
                members.push(i);
                unit.calls.push(*iv);
                unit.candidates.retain(|p| candidates.contains(p));
                continue;
            }
            units.push((vec![i], ChildSlot { calls: vec![*iv], candidates }));
        }
        // A child whose candidates were all emitted early stays a root.
        units.retain(|(_, unit)| !unit.candidates.is_empty());
        for (_, unit) in &mut units {
            unit.calls.sort_unstable_by_key(|c| (c.start, c.end));
        }
        let (members, problem): (Vec<Vec<usize>>, Vec<ChildSlot>) = units.into_iter().unzip();
        // The joint search is for a pod's handful of overlapping calls; a pile-up (a stuck
        // pod, the end of input) falls back to the simple rule to keep work bounded.
        let assignment = if problem.len() <= MAX_JOINT_CHILDREN && slots.len() <= MAX_CANDIDATES {
            // A wide beam where it is cheap, narrower as the problem grows, so the work per
            // problem stays bounded.
            let size = problem.len() * slots.len();
            beam_assign(&slots, &problem, (BEAM_WORK / size.max(1)).clamp(MIN_BEAM, MAX_BEAM), &mut self.search)
        } else {
            problem
                .iter()
                .map(|c| {
                    let even = 1.0 / c.candidates.len() as f64;
                    Decision { parent: c.candidates[0], confidence: even, local_confidence: even }
                })
                .collect()
        };
        let mut unlearned = 0;
        let decided = |i: &&usize| ready_set.contains(&children[**i].0);
        for (calls, unit) in members.iter().zip(&problem) {
            if unit.candidates.iter().any(|&p| !slots[p].timing.is_informed()) {
                unlearned += calls.iter().filter(decided).count() as u64;
            }
        }
        drop(slots);
        self.stats.joint_decisions +=
            members.iter().map(|calls| calls.iter().filter(decided).count() as u64).sum::<u64>();
        self.stats.unlearned_decisions += unlearned;
        if self.joint_parents.len() < 10_000 {
            self.joint_parents.extend(joint_parents);
        }
        let mut touched = Vec::new();
        for (calls, decision) in members.iter().zip(assignment) {
            for &i in calls.iter().filter(decided) {
                let child = children[i].0;
                let parent = parent_ids[decision.parent];
                let call = self.calls.get_mut(&child).expect("listed");
                call.decided_jointly = true;
                // A clear-cut joint decision teaches like a certain one; a close call does not, and
                // its candidates' lists of calls may be incomplete.
                if decision.local_confidence < CLEAR_DECISION {
                    call.inferred = true;
                    for c in &children[i].2 {
                        if let Some(pc) = self.calls.get_mut(c) {
                            pc.contested = true;
                        }
                    }
                }
                self.link(child, parent, 0.9 * decision.confidence);
                touched.push(self.calls[&parent].group);
            }
        }
        for (id, _, _) in children.iter().filter(|(id, _, _)| ready_set.contains(id)) {
            if let Some(c) = self.calls.get(id) {
                touched.push(c.group);
            }
        }
        touched.extend(released);
        touched.sort_unstable();
        touched.dedup();
        for g in touched {
            if let Some(group) = self.groups.get(&g) {
                let due = group.last_activity + self.config.settle_time();
                self.group_checks.push((due.max(self.now), g));
            }
        }
    }

    /// Moves every call of group `from` into group `into`.
    fn merge_groups(&mut self, into: GroupId, from: GroupId) {
        let Some(src) = self.groups.remove(&from) else { return };
        self.group_starts.remove(&(src.first_start, from));
        for &c in &src.calls {
            if let Some(call) = self.calls.get_mut(&c) {
                call.group = into;
            }
        }
        for t in &src.trace_ids {
            self.by_trace.insert(*t, into);
        }
        for r in &src.request_ids {
            self.by_request_id.insert(r.clone(), into);
        }
        let dst = self.groups.get_mut(&into).expect("merge target exists");
        dst.calls.extend(src.calls);
        dst.servers.extend(src.servers);
        dst.open += src.open;
        dst.claims += src.claims;
        dst.awaiting += src.awaiting;
        dst.last_activity = dst.last_activity.max(src.last_activity);
        dst.created = dst.created.min(src.created);
        if src.first_start < dst.first_start {
            self.group_starts.remove(&(dst.first_start, into));
            dst.first_start = src.first_start;
            self.group_starts.insert((dst.first_start, into));
        }
        dst.trace_ids.extend(src.trace_ids);
        dst.request_ids.extend(src.request_ids);
        self.group_checks.push((dst.last_activity + self.config.settle_time(), into));
    }

    fn check_group(&mut self, g: GroupId) {
        let Some(group) = self.groups.get(&g) else { return };
        if group.open > 0 || group.claims > 0 || group.awaiting > 0 {
            return;
        }
        let due = group.last_activity + self.config.settle_time();
        if due > self.now {
            self.group_checks.push((due, g));
            return;
        }
        self.emit(g);
    }

    /// Learns timing statistics from the completed calls of a request whose children were all
    /// linked without doubt.
    fn learn(&mut self, ids: &[CallId]) {
        for id in ids {
            let Some(c) = self.calls.get(id) else { continue };
            if (c.contested && !self.config.learn_from_inferred) || c.unanswered || c.closed_at.is_none() {
                continue;
            }
            let (_, s, e) = c.served_view();
            let (Some(s), Some(e)) = (s, e) else { continue };
            let mut kids: Vec<Span> = Vec::with_capacity(c.children.len());
            let mut complete = true;
            let mut certain = !c.contested;
            for k in &c.children {
                let Some(kc) = self.calls.get(k) else { continue };
                let (_, ks, ke) = kc.made_view();
                match (ks, ke) {
                    (Some(ks), Some(ke)) if (self.config.learn_from_inferred || !kc.inferred) && !kc.unanswered => {
                        certain &= !kc.decided_jointly;
                        kids.push(Span { start: ks, end: ke, kind: kc.kind })
                    }
                    _ => complete = false,
                }
            }
            if !complete {
                continue;
            }
            kids.sort_by_key(|iv| (iv.start, iv.end));
            if self.timing.len() >= 10_000 {
                // Bounded: relearn from current traffic.
                self.timing.clear();
            }
            let parent = Span { start: s, end: e, kind: c.kind };
            self.timing.entry(c.kind).or_default().learn(parent, &kids, certain);
            if !kids.is_empty() {
                self.global_timing.learn(parent, &kids, certain);
            }
        }
    }

    /// Keeps the number of held calls under `max_open_calls` by emitting the oldest request.
    fn make_room(&mut self) {
        while self.calls.len() >= self.config.max_open_calls {
            let Some(g) = self.group_order.pop_front() else { return };
            if self.groups.contains_key(&g) {
                self.emit_early(g);
            }
        }
    }

    /// Emits request `g` before it completes (counted): its open calls are closed unanswered.
    fn emit_early(&mut self, g: GroupId) {
        self.stats.forced_requests += 1;
        let open: Vec<CallId> = self.groups[&g]
            .calls
            .iter()
            .copied()
            .filter(|c| self.calls.get(c).is_some_and(|c| c.closed_at.is_none()))
            .collect();
        for c in open {
            self.close(c, self.now, true);
        }
        // Closing may have merged the group into another; emit whichever holds the calls.
        if self.groups.contains_key(&g) {
            self.emit(g);
        }
    }

    /// Drops emitted requests from `group_order`, which is read only when the engine is full
    /// (or at the end): from its front, and all of them once they outnumber the open ones, so
    /// that a long-lived request at the front does not hold the queue growing behind it (a
    /// collector that never fills up would otherwise keep every request's id forever).
    fn forget_emitted_order(&mut self) {
        while self.group_order.front().is_some_and(|g| !self.groups.contains_key(g)) {
            self.group_order.pop_front();
        }
        if self.group_order.len() > 2 * self.groups.len() + 1024 {
            let groups = &self.groups;
            self.group_order.retain(|g| groups.contains_key(g));
        }
    }

    /// Builds the request graph of group `g`, removes its state and queues the graph.
    fn emit(&mut self, g: GroupId) {
        let Some(group) = self.groups.remove(&g) else { return };
        // First, so that the loads overlap the index updates below as well as each other.
        for id in &group.calls {
            self.calls.prefetch(id);
        }
        self.group_starts.remove(&(group.first_start, g));
        for t in &group.trace_ids {
            if self.by_trace.get(t) == Some(&g) {
                self.by_trace.remove(t);
            }
        }
        for r in &group.request_ids {
            if self.by_request_id.get(r) == Some(&g) {
                self.by_request_id.remove(r);
            }
        }
        self.forget_emitted_order();
        self.learn(&group.calls);
        // The report is built from the calls where they lie, and they are dropped there after:
        // a call is some 500 bytes to move.
        let calls: Vec<(CallId, &Call)> =
            group.calls.iter().filter_map(|id| self.calls.get(id).map(|c| (*id, c))).collect();
        // A call whose request was not seen started before its earliest child, or at the latest
        // when it was answered (such calls are rare: the map is made only when there is one).
        let earliest_child: HashMap<CallId, Nanos> = if calls.iter().any(|(_, c)| c.start().is_none()) {
            let mut earliest = HashMap::new();
            for (_, c) in &calls {
                if let (Some(p), Some(s)) = (c.parent, c.start()) {
                    let e = earliest.entry(p).or_insert(s);
                    *e = (*e).min(s);
                }
            }
            earliest
        } else {
            HashMap::new()
        };
        let estimated_start =
            |id: &CallId, c: &Call| c.start().or_else(|| earliest_child.get(id).copied()).or(c.closed_at).unwrap_or(0);
        // An estimated start ties with its first child; the parent sorts first.
        let mut order: Vec<(Nanos, bool, CallId, usize)> = calls
            .iter()
            .enumerate()
            .map(|(i, (id, c))| (estimated_start(id, c), c.start().is_some(), *id, i))
            .collect();
        order.sort_unstable();
        // Each call's position in the report, by id (sorted, for parents to find theirs).
        let mut index: Vec<(CallId, usize)> = order.iter().enumerate().map(|(pos, &(_, _, id, _))| (id, pos)).collect();
        index.sort_unstable();
        let namer = self.normalizer.namer();
        let records: Vec<CallRecord> =
            order.iter().map(|&(start, _, _, i)| to_record(calls[i].1, start, &index, namer)).collect();
        // What the bookkeeping below needs of each call, so that the calls can go first (the
        // lists are pruned of calls no longer held).
        let mut leaving: Vec<Leaving> = calls
            .iter()
            .map(|(id, c)| Leaving {
                id: *id,
                pending_on: [c.obs[0].pending_on, c.obs[1].pending_on],
                starts: [c.obs[0].start, c.obs[1].start],
                url_key: c.url_key,
                server: place(&c.server),
                dedup_key: c.dedup_key,
            })
            .collect();
        debug_assert!(
            {
                let mut ids: Vec<CallId> = group.calls.clone();
                ids.sort_unstable();
                ids.windows(2).all(|w| w[0] != w[1])
            },
            "a request lists each of its calls once"
        );
        leaving.retain(|call| self.calls.discard(&call.id));
        for call in &leaving {
            for (conn, start) in call.pending_on.iter().zip(call.starts).filter_map(|(c, s)| Some((*c.as_ref()?, s))) {
                // Its response may still come: it is this call's, reported already.
                give_up(&mut self.pending, &mut self.given_up, conn, call.id, call.url_key, start);
            }
            if let Some(p) = &call.server
                && let Some(list) = self.inbound.get_mut(p)
                && list.release(&self.calls)
            {
                self.inbound.remove(p);
            }
            if let Some(list) = self.twins.get_mut(&call.dedup_key)
                && list.release(&self.calls)
            {
                self.twins.remove(&call.dedup_key);
            }
        }
        if records.is_empty() {
            // Nothing left to report (its calls went with another request).
            return;
        }
        let correlation = if group.trace_ids.is_empty() && records.iter().all(|c| c.trace_id.is_none()) {
            // A request id names the request when calls share it (propagated), or when the
            // request is one call that carries one: nothing was inferred about either. Ids made
            // up afresh per hop, each on one call of a longer request, name nothing.
            let named_by_rid = {
                let mut rids: Vec<&Arc<str>> = records.iter().filter_map(|c| c.request_id.as_ref()).collect();
                let n = rids.len();
                rids.sort_unstable();
                rids.dedup();
                rids.len() < n || (records.len() == 1 && n == 1)
            };
            if named_by_rid { Correlation::RequestId } else { Correlation::Inferred }
        } else {
            Correlation::TraceContext
        };
        let root = records.iter().position(|c| c.parent.is_none()).unwrap_or(0);
        let base_id = match correlation {
            Correlation::TraceContext => {
                let t = records[root].trace_id.or_else(|| records.iter().find_map(|c| c.trace_id)).unwrap_or(0);
                format!("{t:032x}")
            }
            Correlation::RequestId => {
                let r = &records[root];
                r.request_id.as_deref().map(str::to_string).unwrap_or_else(|| synthesized_id(r))
            }
            Correlation::Inferred => synthesized_id(&records[root]),
        };
        let uses = self.id_uses.count(&base_id);
        let id = if uses == 1 { base_id } else { format!("{base_id}-{uses}") };
        self.stats.requests_emitted += 1;
        self.stats.calls_emitted += records.len() as u64;
        self.out.push(RequestGraph::new(id, correlation, records));
    }
}

/// What emitting a request still has to undo for each of its calls once they are dropped: the
/// lists and queues that name them.
struct Leaving {
    id: CallId,
    /// Connections a side's response is still awaited on, and that side's request time.
    pending_on: [Option<ConnKey>; 2],
    starts: [Option<Nanos>; 2],
    url_key: u64,
    server: Option<Place>,
    dedup_key: u64,
}

/// Both calls carry a trace id, and not the same one: they belong to different requests.
fn conflicting_traces(a: &Call, b: &Call) -> bool {
    matches!((a.trace_id, b.trace_id), (Some(x), Some(y)) if x != y)
}

/// How strongly propagated ids tie a candidate `parent` to `child`: 2 for one trace id, 1 for
/// one request id (their trace ids not conflicting: a hop may add a trace, or drop it), else 0.
/// The one definition of "shares an id", for the calls in flight at a child's start and for the
/// parent decision alike.
fn id_tier(parent: &Call, child: &Call) -> u8 {
    if parent.trace_id.is_some() && parent.trace_id == child.trace_id {
        2
    } else if !conflicting_traces(parent, child) && parent.request_id.is_some() && parent.request_id == child.request_id
    {
        1
    } else {
        0
    }
}

fn same_opt<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn is_ancestor_or_self(calls: &IdTable<Call>, candidate: CallId, of: CallId) -> bool {
    let mut at = Some(of);
    let mut steps = 0;
    while let Some(id) = at {
        if id == candidate {
            return true;
        }
        steps += 1;
        if steps > 10_000 {
            return true;
        }
        at = calls.get(&id).and_then(|c| c.parent);
    }
    false
}

/// Requests given up without a response, by connection, the oldest forgotten past a bound.
#[derive(Debug, Default)]
struct GivenUp {
    by_conn: HashMap<ConnKey, SmallVec<[(u64, Nanos); 1]>>,
    /// Connections in the order their entries came, to forget the oldest.
    order: VecDeque<ConnKey>,
}

/// Given-up requests remembered: a response later than this many others is taken as a call
/// of its own (counted as a response without a request).
const GIVEN_UP_KEPT: usize = 1 << 16;

impl GivenUp {
    fn add(&mut self, conn: ConnKey, url_key: u64, start: Option<Nanos>) {
        let Some(start) = start else { return };
        if self.order.len() >= GIVEN_UP_KEPT
            && let Some(old) = self.order.pop_front()
            && let Some(list) = self.by_conn.get_mut(&old)
        {
            list.remove(0);
            if list.is_empty() {
                self.by_conn.remove(&old);
            }
        }
        self.by_conn.entry(conn).or_default().push((url_key, start));
        self.order.push_back(conn);
    }

    /// Whether response `r` answers a request given up on its connection (same URL, sent
    /// before it); that request is then forgotten.
    fn take(&mut self, conn: &ConnKey, r: &HttpRecord) -> bool {
        let Some(list) = self.by_conn.get_mut(conn) else { return false };
        let Some(pos) = list.iter().position(|&(url, start)| url == r.url_key && start <= r.time) else { return false };
        list.remove(pos);
        if list.is_empty() {
            self.by_conn.remove(conn);
        }
        true
    }
}

/// Stops waiting on `conn` for call `id`'s response (given up, or its request emitted), and
/// remembers the request there so that a response coming after all is recognized as its.
fn give_up(
    pending: &mut HashMap<ConnKey, WaitingRequests>,
    given_up: &mut GivenUp,
    conn: ConnKey,
    id: CallId,
    url_key: u64,
    start: Option<Nanos>,
) {
    if let Some(q) = pending.get_mut(&conn) {
        q.retain(|(c, _)| *c != id);
        if q.is_empty() {
            pending.remove(&conn);
        }
    }
    given_up.add(conn, url_key, start);
}

fn to_record(c: &Call, start: Nanos, index: &[(CallId, usize)], namer: &AgentNamer) -> CallRecord {
    let (_, made_start, made_end) = c.made_view();
    let duration = if c.unanswered {
        None
    } else {
        match (made_start, made_end) {
            (Some(s), Some(e)) if e >= s => Some(e - s),
            _ => (c.latency_ns > 0).then_some(c.latency_ns as Nanos),
        }
    };
    let (_, served_start, served_end) = c.served_view();
    let served = match (served_start, served_end) {
        (Some(s), Some(e)) if e >= s && !c.unanswered => Some(Interval { start: s, end: e }),
        _ => None,
    };
    CallRecord {
        parent: c.parent.and_then(|p| index.binary_search_by_key(&p, |&(id, _)| id).ok().map(|i| index[i].1)),
        client: namer.resolve(&c.client.info),
        server: namer.resolve(&c.server.info),
        client_pod: c.client.info.pod.clone(),
        server_pod: c.server.info.pod.clone(),
        method: c.method.clone(),
        path: c.path.clone(),
        status: if c.unanswered { None } else { c.status },
        start,
        duration,
        request_bytes: c.request_bytes,
        response_bytes: c.response_bytes,
        confidence: c.confidence,
        trace_id: c.trace_id,
        request_id: c.request_id.clone(),
        observed_both_sides: c.obs[0].present && c.obs[1].present,
        served,
        answered_at: if c.unanswered { None } else { made_end },
    }
}

/// A stable id for a request without trace or request id: a hash of its root call.
fn synthesized_id(root: &CallRecord) -> String {
    let text =
        format!("{}|{}|{}|{}|{}|{}", root.client_pod, root.server_pod, root.client, root.server, root.path, root.start);
    let a = hash_pair(b"agentgraph-a", text.as_bytes());
    let b = hash_pair(b"agentgraph-b", text.as_bytes());
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::EndpointInfo;

    #[test]
    fn time_queue_gives_entries_smallest_first_however_they_arrive() {
        // In order, a late one, a run, duplicates, then interleaved pops and pushes.
        let mut q = TimeQueue::default();
        for v in [1, 2, 5, 3, 6, 6, 4, 0, 9] {
            q.push(v);
        }
        assert_eq!(q.len(), 9);
        let mut out = vec![q.pop().unwrap(), q.pop().unwrap()];
        q.push(1);
        q.push(10);
        while let Some(v) = q.pop() {
            out.push(v);
        }
        assert_eq!(out, [0, 1, 1, 2, 3, 4, 5, 6, 6, 9, 10]);
        assert!(q.peek().is_none());
    }

    fn peer(agent: &str, pod: &str, last_octet: u8, port: u16) -> Peer {
        Peer {
            info: Arc::new(EndpointInfo::new(
                Arc::from(agent),
                crate::names::NameSource::Strong,
                Arc::from(pod),
                Arc::from(agent),
            )),
            ip: Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, last_octet))),
            port,
        }
    }

    fn request(time_ms: i64, client: Peer, server: Peer, request_id: &str, trace_id: Option<u128>) -> HttpRecord {
        HttpRecord {
            time: time_ms * MS,
            node: NodeId::of(b"node-1"),
            direction: TrafficDirection::Egress,
            is_response: false,
            url_key: server.info.agent.len() as u64,
            client,
            server,
            method: Arc::from("POST"),
            path: Arc::from("/"),
            http2: false,
            status: 0,
            latency_ns: 0,
            request_id: Some(Arc::from(request_id)),
            trace_id,
            request_bytes: None,
            response_bytes: None,
            tiebreak: time_ms as u64,
        }
    }

    /// The 200 response, `latency_ms` after its request, to a request made by [`request`].
    fn answer(time_ms: i64, client: Peer, server: Peer, request_id: &str, latency_ms: i64) -> HttpRecord {
        HttpRecord {
            is_response: true,
            status: 200,
            latency_ns: (latency_ms * MS) as u64,
            ..request(time_ms, client, server, request_id, None)
        }
    }

    #[test]
    fn a_recurring_id_is_counted_across_generations_and_an_old_one_is_forgotten() {
        let mut ids = IdUses::default();
        assert_eq!(ids.count("a"), 1);
        assert_eq!(ids.count("a"), 2);
        for k in 0..IdUses::GENERATION {
            ids.count(&k.to_string());
        }
        // "a" is in the previous generation now: still counted, and carried into the current one.
        assert_eq!(ids.count("a"), 3);
        for k in 0..2 * IdUses::GENERATION {
            ids.count(&format!("x{k}"));
        }
        assert_eq!(ids.count("a"), 1, "forgotten after two generations without a use");
        assert!(ids.current.len() + ids.previous.len() <= 2 * IdUses::GENERATION);
    }

    #[test]
    fn a_request_id_sent_with_everything_makes_requests_of_bounded_size() {
        // One client sends the same X-Request-Id with 1,000 calls in a row, and the last call
        // is still open: requests of at most 100 calls come out, each counted as early.
        let config = EngineConfig { max_request_calls: 100, ..EngineConfig::default() };
        let mut engine = Engine::new(config, NormalizeConfig::default());
        let client = |port| peer("ingress/load", "ingress/load-1", 1, port);
        let agent = || peer("agents/worker", "agents/worker-1", 2, 8080);
        let mut most_held = 0;
        for k in 0..1_000i64 {
            let port = 10_000 + k as u16;
            engine.push(request(k * 10, client(port), agent(), "same-for-all", None));
            if k < 999 {
                engine.push(answer(k * 10 + 5, client(port), agent(), "same-for-all", 5));
            }
            most_held = most_held.max(engine.calls.len());
        }
        engine.finish();
        let graphs: Vec<RequestGraph> = engine.drain().collect();
        assert!(most_held <= 100, "{most_held} calls held at once");
        assert_eq!(graphs.iter().map(|g| g.calls.len()).sum::<usize>(), 1_000, "every call reported once");
        assert!(graphs.iter().all(|g| g.calls.len() <= 100));
        assert_eq!(graphs.len(), 10);
        assert_eq!(engine.stats().forced_requests, 9, "the last one completes at the end of input");
        assert_eq!(engine.stats().unanswered_calls, 1, "only the call really left open");
    }

    #[test]
    fn emitted_requests_leave_no_trace_in_the_engine() {
        // A collector that never reaches `max_open_calls`: one long-lived request stays open
        // (an unanswered call, renewed by later calls of its own request) while 20,000 others
        // come and go. What the engine holds must follow what is open, not what was seen.
        let config = EngineConfig { response_timeout: 3_600 * SEC, ..EngineConfig::default() };
        let mut engine = Engine::new(config, NormalizeConfig::default());
        let gateway = |port| peer("ingress/gateway", "ingress/gateway-1", 1, port);
        let agent = || peer("agents/worker", "agents/worker-1", 2, 8080);
        engine.push(request(0, gateway(1), agent(), "long", None));
        for k in 1..20_000i64 {
            let port = 10_000 + (k % 50_000) as u16;
            engine.push(request(k * 10, gateway(port), agent(), &format!("r{k}"), None));
            engine.push(answer(k * 10 + 5, gateway(port), agent(), &format!("r{k}"), 5));
            if k % 100 == 0 {
                engine.push(request(k * 10, gateway(2), agent(), "long", None));
            }
            let _ = engine.drain().count();
        }
        assert!(engine.open_requests() < 1_000, "{} open", engine.open_requests());
        assert!(engine.group_order.len() <= 2 * engine.open_requests() + 1024, "{} in order", engine.group_order.len());
        assert!(engine.calls.len() < 2_000, "{} calls held", engine.calls.len());
    }

    #[test]
    fn a_parent_that_contains_the_call_as_stamped_comes_before_one_within_the_clock_tolerance() {
        // Only egress copies: the reviewer's calls are stamped on the gateway's node, its own
        // call to the repository on its node. Call B seems to start 3 ms after that call, within
        // the tolerance for clocks between nodes; call A contains it as stamped. With nothing
        // learned yet, the simple rule's order decides: A, though B started later.
        let reviewer = |port| peer("review/reviewer", "review/reviewer-1", 2, port);
        let gateway = |port| peer("ingress/gateway", "ingress/gateway-1", 1, port);
        let repo = peer("platform/repo", "platform/repo-1", 3, 8080);
        let on_reviewer_node = |r: HttpRecord| HttpRecord { node: NodeId::of(b"node-2"), ..r };
        let mut engine = Engine::new(EngineConfig::default(), NormalizeConfig::default());
        engine.push(request(0, gateway(40_000), reviewer(8080), "a", None));
        engine.push(on_reviewer_node(request(100, reviewer(50_000), repo.clone(), "c", None)));
        engine.push(request(103, gateway(40_001), reviewer(8080), "b", None));
        engine.push(on_reviewer_node(answer(200, reviewer(50_000), repo, "c", 100)));
        engine.push(answer(900, gateway(40_001), reviewer(8080), "b", 797));
        engine.push(answer(1000, gateway(40_000), reviewer(8080), "a", 1000));
        engine.finish();
        let graphs: Vec<RequestGraph> = engine.drain().collect();
        let with_repo = graphs
            .iter()
            .find(|g| g.calls.iter().any(|c| &*c.server == "platform/repo"))
            .expect("the repository call is reported");
        let child = with_repo.calls.iter().find(|c| &*c.server == "platform/repo").expect("found");
        let parent = &with_repo.calls[child.parent.expect("the repository call has a parent")];
        assert_eq!(parent.request_id.as_deref(), Some("a"));
    }

    #[test]
    fn a_response_slower_than_the_timeout_does_not_make_a_second_call() {
        // Given up after the response timeout (1 s), the call is reported once, unanswered; its
        // response, 3 s late, is counted and dropped, not taken for a call whose request went
        // unseen.
        let config = EngineConfig { response_timeout: 1_000 * MS, ..EngineConfig::default() };
        let mut engine = Engine::new(config, NormalizeConfig::default());
        let client = peer("ns/a", "ns/a-1", 1, 40_000);
        let server = peer("ns/b", "ns/b-1", 2, 8080);
        engine.push(request(0, client.clone(), server.clone(), "r1", None));
        engine.push(answer(3_000, client, server, "r1", 3_000));
        engine.finish();
        let graphs: Vec<RequestGraph> = engine.drain().collect();
        assert_eq!(graphs.iter().map(|g| g.calls.len()).sum::<usize>(), 1);
        assert_eq!(graphs[0].calls[0].status, None);
        let stats = engine.stats();
        assert_eq!((stats.unanswered_calls, stats.late_responses, stats.orphan_responses), (1, 1, 0));
    }

    #[test]
    fn a_request_not_chosen_as_parent_is_emitted_once_its_claim_is_released() {
        // Pod P serves two untraced calls, A and B; the call it makes while both run could belong
        // to either, so both requests wait for the decision. Whichever is not chosen loses its
        // claim then, and must be emitted as time goes on, not held until the end of input.
        let p = |port| peer("ns/p", "ns/p-1", 2, port);
        let gateway = |port| peer("ns/gw", "ns/gw-1", 1, port);
        let leaf = peer("ns/leaf", "ns/leaf-1", 3, 8080);
        let mut engine = Engine::new(EngineConfig::default(), NormalizeConfig::default());
        engine.push(request(0, gateway(40_001), p(8080), "b", None));
        engine.push(request(10, gateway(40_000), p(8080), "a", None));
        engine.push(request(100, p(50_000), leaf.clone(), "c", None));
        engine.push(answer(200, p(50_000), leaf, "c", 100));
        engine.push(answer(300, gateway(40_001), p(8080), "b", 300));
        // A (the later-started, which the rule prefers) answers long after B has settled: the
        // decision, and B's release, come after B's own check found it still claimed.
        engine.push(answer(10_000, gateway(40_000), p(8080), "a", 9_990));
        engine.advance_watermark(60_000 * MS);
        let graphs: Vec<RequestGraph> = engine.drain().collect();
        assert_eq!(graphs.len(), 2, "both requests are out before the end of input");
        assert_eq!(graphs.iter().map(|g| g.calls.len()).sum::<usize>(), 3);
    }

    #[test]
    fn a_traced_call_finds_its_parent_by_request_id_among_many_in_flight() {
        // The orchestrator serves more requests than the in-flight list keeps; the oldest one
        // (request id r0, no trace) starts a trace in its call to the LLM, which never answers.
        // Its request id alone must name the parent, as it does for an answered call.
        let orchestrator = |port| peer("agents/orchestrator", "agents/orch-1", 2, port);
        let mut engine = Engine::new(EngineConfig::default(), NormalizeConfig::default());
        let served = IN_FLIGHT_KEPT + 4;
        for k in 0..served {
            let gateway = peer("ingress/gateway", "ingress/gateway-1", 1, 40_000 + k as u16);
            engine.push(request(k as i64, gateway, orchestrator(8080), &format!("r{k}"), None));
        }
        let llm = peer("llm/llm-gateway", "llm/llm-1", 3, 8080);
        engine.push(request(100, orchestrator(50_000), llm, "r0", Some(0xabc)));
        engine.finish();
        let graphs: Vec<RequestGraph> = engine.drain().collect();
        assert_eq!(graphs.len(), served);
        let with_llm = graphs
            .iter()
            .find(|g| g.calls.iter().any(|c| &*c.server == "llm/llm-gateway"))
            .expect("the LLM call is reported");
        let child = with_llm.calls.iter().find(|c| &*c.server == "llm/llm-gateway").expect("found");
        let parent = &with_llm.calls[child.parent.expect("the LLM call has a parent")];
        assert_eq!(parent.request_id.as_deref(), Some("r0"));
        assert_eq!(with_llm.calls.len(), 2);
    }
}
