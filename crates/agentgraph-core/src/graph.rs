//! A completed end-to-end request as a call tree (petgraph), and the statistics computed on it:
//! depth, fan-out, concurrent fan-out, context size, critical path and per-call self time.

use std::sync::Arc;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::Nanos;

/// How the calls of a request were grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Correlation {
    TraceContext,
    RequestId,
    Inferred,
}

impl Correlation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Correlation::TraceContext => "trace_context",
            Correlation::RequestId => "request_id",
            Correlation::Inferred => "inferred",
        }
    }
}

/// A time interval `[start, end]` in event-time nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub start: Nanos,
    pub end: Nanos,
}

impl Interval {
    /// The interval's length (0 when inverted).
    pub fn duration(&self) -> Nanos {
        (self.end - self.start).max(0)
    }
}

/// One call of a completed request.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRecord {
    /// Index of the parent call in [`RequestGraph::calls`].
    pub parent: Option<usize>,
    pub client: Arc<str>,
    pub server: Arc<str>,
    /// `namespace/pod` of each side, empty when outside the cluster.
    pub client_pod: Arc<str>,
    pub server_pod: Arc<str>,
    pub method: Arc<str>,
    pub path: Arc<str>,
    /// HTTP status; `None` when no response was seen.
    pub status: Option<u16>,
    /// Request time as the client side saw it (or the best estimate when only a response was seen).
    pub start: Nanos,
    /// Response latency; `None` when no response was seen or the request time is unknown.
    pub duration: Option<Nanos>,
    pub request_bytes: Option<u64>,
    pub response_bytes: Option<u64>,
    /// 1.0 when the parent link is certain, lower when inferred.
    pub confidence: f64,
    pub trace_id: Option<u128>,
    pub request_id: Option<Arc<str>>,
    /// Whether both the client's egress and the server's ingress proxy recorded this call.
    pub observed_both_sides: bool,
    /// The call's interval on the server side (the clock its own outgoing calls use), when known.
    pub served: Option<Interval>,
    /// When the client side saw the response, also when the duration is unknown (a response
    /// without `latency_ns` whose request lies before the dump); `None` when unanswered.
    pub answered_at: Option<Nanos>,
}

impl CallRecord {
    /// The interval the client saw, when the call completed.
    pub fn made(&self) -> Option<Interval> {
        self.duration.map(|d| Interval { start: self.start, end: self.start + d })
    }

    /// The latest time the call is known to have lasted to: its response, else its start.
    pub fn last_seen(&self) -> Nanos {
        self.made().map(|m| m.end).or(self.answered_at).unwrap_or(self.start).max(self.start)
    }

    /// A call counts as an error when the server answered 5xx or never answered.
    pub fn is_error(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }
}

/// Statistics of one request (see the analysis contract).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestStats {
    pub calls: usize,
    pub depth: usize,
    pub agents: usize,
    pub fan_out_max: usize,
    pub fan_out_concurrent_max: usize,
    pub context_bytes: u64,
    pub critical_path: Nanos,
    /// Indices of the calls on the critical path, root first.
    pub critical_calls: Vec<usize>,
}

/// Per-call figures used by agent statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallFigures {
    pub fan_out: usize,
    pub fan_out_concurrent: usize,
    /// Time the server spent on this call outside its own outgoing calls; `None` when the call's
    /// interval is unknown.
    pub self_time: Option<Nanos>,
}

/// One reconstructed end-to-end request.
#[derive(Clone, Debug)]
pub struct RequestGraph {
    pub id: String,
    pub correlation: Correlation,
    /// Index of the root call (the earliest call without a parent).
    pub root: usize,
    pub start: Nanos,
    pub end: Nanos,
    /// Calls ordered by start time; a call's id in reports is `c<index>`.
    pub calls: Vec<CallRecord>,
    /// Parent → child edges between call indices (node `i` is call `i`).
    pub tree: DiGraph<(), ()>,
    pub stats: RequestStats,
    pub figures: Vec<CallFigures>,
}

impl RequestGraph {
    /// Builds the graph of `calls` (already ordered by start, parents referring to indices) and
    /// computes its statistics.
    pub fn new(id: String, correlation: Correlation, calls: Vec<CallRecord>) -> Self {
        let mut tree = DiGraph::with_capacity(calls.len(), calls.len());
        for _ in &calls {
            tree.add_node(());
        }
        for (i, c) in calls.iter().enumerate() {
            if let Some(p) = c.parent {
                tree.add_edge(NodeIndex::new(p), NodeIndex::new(i), ());
            }
        }
        let root = calls.iter().position(|c| c.parent.is_none()).unwrap_or(0);
        let start = calls.iter().map(|c| c.start).min().unwrap_or(0);
        let end = calls.iter().map(CallRecord::last_seen).max().unwrap_or(start);
        let mut g = RequestGraph {
            id,
            correlation,
            root,
            start,
            end,
            calls,
            tree,
            stats: RequestStats::default(),
            figures: Vec::new(),
        };
        g.compute();
        g
    }

    pub fn duration(&self) -> Nanos {
        self.end - self.start
    }

    /// Whether any call of the request got a response.
    pub fn answered(&self) -> bool {
        self.calls.iter().any(|c| c.answered_at.is_some())
    }

    /// Whether any call's request size is known (else `context_bytes` says nothing).
    pub fn context_known(&self) -> bool {
        self.calls.iter().any(|c| c.request_bytes.is_some())
    }

    /// Children of call `i`, ordered by start.
    pub fn children(&self, i: usize) -> Vec<usize> {
        let mut c: Vec<usize> =
            self.tree.neighbors_directed(NodeIndex::new(i), Direction::Outgoing).map(|n| n.index()).collect();
        c.sort_unstable();
        c
    }

    fn compute(&mut self) {
        let n = self.calls.len();
        let children = ChildLists::new(&self.calls);
        let mut figures = vec![CallFigures::default(); n];
        // Depth: calls are ordered by start and a child starts after its parent, but a child
        // index can still be lower when clocks disagree, so walk from the roots.
        let mut depth = vec![0usize; n];
        let mut stack: Vec<usize> = (0..n).filter(|&i| self.calls[i].parent.is_none()).collect();
        for &r in &stack {
            depth[r] = 1;
        }
        while let Some(i) = stack.pop() {
            for &c in children.of(i) {
                depth[c] = depth[i] + 1;
                stack.push(c);
            }
        }
        // Lists reused from call to call (this runs for every request emitted).
        let (mut intervals, mut events, mut clipped) = (Vec::new(), Vec::new(), Vec::new());
        for (i, f) in figures.iter_mut().enumerate() {
            let kids = children.of(i);
            f.fan_out = kids.len();
            let parent_window = self.calls[i].served.or_else(|| self.calls[i].made());
            intervals.clear();
            intervals.extend(kids.iter().map(|&k| child_interval(&self.calls[k], parent_window, self.end)));
            f.fan_out_concurrent = max_overlap_using(&intervals, &mut events);
            f.self_time = parent_window.map(|w| w.duration() - covered_using(&intervals, w, &mut clipped));
        }
        let mut agents: Vec<&Arc<str>> = self.calls.iter().flat_map(|c| [&c.client, &c.server]).collect();
        // By address first: agent names are interned, so equal names are nearly always one
        // allocation, and comparing the few left by their text is cheap (comparing all of them,
        // two per call, was a quarter of the cost of these statistics).
        agents.sort_unstable_by_key(|a| Arc::as_ptr(a).cast::<u8>().addr());
        agents.dedup_by(|a, b| Arc::ptr_eq(a, b));
        agents.sort_unstable();
        agents.dedup();
        let (critical_path, critical_calls) = self.critical_path(&children);
        self.stats = RequestStats {
            calls: n,
            depth: depth.iter().copied().max().unwrap_or(0),
            agents: agents.len(),
            fan_out_max: figures.iter().map(|f| f.fan_out).max().unwrap_or(0),
            fan_out_concurrent_max: figures.iter().map(|f| f.fan_out_concurrent).max().unwrap_or(0),
            // Saturating: sizes come from headers, and two huge ones must not wrap to a small sum.
            context_bytes: self.calls.iter().filter_map(|c| c.request_bytes).fold(0, u64::saturating_add),
            critical_path,
            critical_calls,
        };
        self.figures = figures;
    }

    /// The chain of calls that determines the end-to-end time: from the top-level call that ends
    /// last, repeatedly the child that returned last. Its length is the time from the start of
    /// that top-level call to the end of the request, attributed along the chain; time before
    /// it (an earlier attempt that failed, for instance) is not on the critical path.
    fn critical_path(&self, children: &ChildLists) -> (Nanos, Vec<usize>) {
        // Among several top-level calls (client retries sharing a request id), the answered one
        // that ends last: a call never answered has no end to compare.
        let top = (0..self.calls.len()).filter(|&i| self.calls[i].parent.is_none()).max_by_key(|&i| {
            let c = &self.calls[i];
            (c.answered_at.is_some(), c.last_seen(), std::cmp::Reverse(i))
        });
        let Some(mut at) = top else { return (0, Vec::new()) };
        let length = self.end - self.calls[at].start;
        let mut chain = vec![at];
        loop {
            let next = children.of(at).iter().copied().filter(|&k| self.calls[k].made().is_some()).max_by_key(|&k| {
                let m = self.calls[k].made().unwrap_or(Interval { start: 0, end: 0 });
                (m.end, std::cmp::Reverse(k))
            });
            match next {
                Some(k) => {
                    chain.push(k);
                    at = k;
                }
                None => break,
            }
        }
        (length, chain)
    }
}

/// Every call's children in index order (so by start), in two allocations for the whole
/// request rather than one per call: built from the calls' parent indices.
struct ChildLists {
    /// Call `i`'s children are `children[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    children: Vec<usize>,
}

impl ChildLists {
    fn new(calls: &[CallRecord]) -> Self {
        let n = calls.len();
        // Parents are indices of `calls` (the graph's edges, added before, require it).
        let parents = || calls.iter().enumerate().filter_map(|(i, c)| c.parent.map(|p| (i, p)));
        // Counted per parent and summed, `offsets[p]` is where p's range ends; filled from the
        // last child back, each parent's end moves down to its start, and the children come out
        // in index order.
        let mut offsets = vec![0usize; n + 1];
        for (_, p) in parents() {
            offsets[p] += 1;
        }
        let mut sum = 0;
        for o in &mut offsets {
            sum += *o;
            *o = sum;
        }
        let mut children = vec![0; sum];
        for (i, p) in parents().rev() {
            offsets[p] -= 1;
            children[offsets[p]] = i;
        }
        ChildLists { offsets, children }
    }

    fn of(&self, i: usize) -> &[usize] {
        &self.children[self.offsets[i]..self.offsets[i + 1]]
    }
}

/// A child's interval for its parent's statistics; a child without a response lasts until the
/// parent ends (it was still outstanding when the parent answered), or until the request's last
/// record when the parent never answered either (a request cut off by the end of the capture).
fn child_interval(child: &CallRecord, parent: Option<Interval>, request_end: Nanos) -> Interval {
    match child.made() {
        Some(m) => m,
        None => Interval { start: child.start, end: parent.map_or(request_end, |p| p.end).max(child.start) },
    }
}

/// The largest number of intervals in flight at one moment (touching ends do not overlap).
pub fn max_overlap(intervals: &[Interval]) -> usize {
    max_overlap_using(intervals, &mut Vec::new())
}

/// [`max_overlap`] with a list of the caller's to work in.
fn max_overlap_using(intervals: &[Interval], events: &mut Vec<(Nanos, i32)>) -> usize {
    events.clear();
    for iv in intervals {
        events.push((iv.start, 1));
        events.push((iv.end.max(iv.start), -1));
    }
    // Ends sort before starts at the same instant.
    events.sort_unstable();
    let (mut cur, mut best) = (0i32, 0i32);
    for &(_, d) in &*events {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

/// How much of `window` the union of `intervals` covers.
pub fn covered(intervals: &[Interval], window: Interval) -> Nanos {
    covered_using(intervals, window, &mut Vec::new())
}

/// [`covered`] with a list of the caller's to work in.
fn covered_using(intervals: &[Interval], window: Interval, clipped: &mut Vec<Interval>) -> Nanos {
    clipped.clear();
    clipped.extend(
        intervals
            .iter()
            .map(|iv| Interval { start: iv.start.max(window.start), end: iv.end.min(window.end) })
            .filter(|iv| iv.end > iv.start),
    );
    clipped.sort_unstable_by_key(|iv| iv.start);
    let mut total = 0;
    let mut cur: Option<Interval> = None;
    for &iv in &*clipped {
        match cur.as_mut() {
            Some(c) if iv.start <= c.end => c.end = c.end.max(iv.end),
            _ => {
                if let Some(c) = cur {
                    total += c.duration();
                }
                cur = Some(iv);
            }
        }
    }
    total + cur.map_or(0, |c| c.duration())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn iv(start: Nanos, end: Nanos) -> Interval {
        Interval { start, end }
    }

    /// The statistics' child lists are the graph's: every call's children, in index order.
    #[test]
    fn child_lists_hold_the_graphs_children_in_order() {
        let calls = vec![
            call(None, 0, Some(100)),
            call(Some(0), 10, Some(20)),
            call(Some(0), 12, Some(30)),
            call(Some(2), 15, Some(5)),
            call(None, 50, None),
            call(Some(0), 60, Some(1)),
            call(Some(4), 70, Some(1)),
        ];
        let g = RequestGraph::new("r".into(), crate::Correlation::Inferred, calls);
        let lists = ChildLists::new(&g.calls);
        for i in 0..g.calls.len() {
            assert_eq!(lists.of(i), &g.children(i)[..], "children of call {i}");
        }
        assert_eq!(lists.of(0), &[1, 2, 5]);
        assert!(lists.of(6).is_empty());
    }

    /// Sizes come from headers: two that overflow 64 bits together saturate, never wrap.
    #[test]
    fn context_bytes_saturate() {
        let huge = |parent, start| CallRecord { request_bytes: Some(1 << 63), ..call(parent, start, Some(1)) };
        let g = RequestGraph::new("r".into(), crate::Correlation::Inferred, vec![huge(None, 0), huge(Some(0), 0)]);
        assert_eq!(g.stats.context_bytes, u64::MAX);
    }

    #[test]
    fn overlap_and_cover() {
        assert_eq!(max_overlap(&[iv(0, 10), iv(5, 15), iv(10, 20)]), 2);
        assert_eq!(max_overlap(&[iv(0, 10), iv(10, 20)]), 1);
        assert_eq!(max_overlap(&[]), 0);
        assert_eq!(covered(&[iv(0, 10), iv(5, 15), iv(30, 40)], iv(2, 35)), 13 + 5);
    }

    /// A call from `client` to `server` starting at `start` ms, answered after `took` ms.
    pub(crate) fn call(parent: Option<usize>, start: Nanos, took: Option<Nanos>) -> CallRecord {
        let ms = 1_000_000;
        CallRecord {
            parent,
            client: Arc::from("a"),
            server: Arc::from("b"),
            client_pod: Arc::from(""),
            server_pod: Arc::from(""),
            method: Arc::from("POST"),
            path: Arc::from("/"),
            status: took.map(|_| 200),
            start: start * ms,
            duration: took.map(|t| t * ms),
            request_bytes: None,
            response_bytes: None,
            confidence: 1.0,
            trace_id: None,
            request_id: None,
            observed_both_sides: false,
            served: None,
            answered_at: took.map(|t| (start + t) * ms),
        }
    }

    /// A request cut off by the end of the capture: neither the root nor its children were
    /// answered, but the children's own calls show they were in flight together.
    #[test]
    fn unanswered_children_of_an_unanswered_parent_overlap_until_the_end() {
        let g = RequestGraph::new(
            "r".into(),
            Correlation::Inferred,
            vec![call(None, 0, None), call(Some(0), 10, None), call(Some(0), 20, None), call(Some(1), 30, Some(50))],
        );
        assert_eq!(g.stats.fan_out_concurrent_max, 2);
        assert_eq!(g.duration(), 80 * 1_000_000);
    }

    /// Of two top-level calls (a retry), the critical path starts at the answered one, not at
    /// a later one never answered; a response seen without its request still ends the request.
    #[test]
    fn critical_path_starts_at_an_answered_call_and_a_seen_response_counts() {
        let g = RequestGraph::new(
            "r".into(),
            Correlation::RequestId,
            vec![call(None, 0, Some(4022)), call(None, 4023, None)],
        );
        assert_eq!(g.stats.critical_path, 4023 * 1_000_000);
        assert_eq!(g.stats.critical_calls, vec![0]);
        let mut root = call(None, 0, Some(15));
        root.duration = None; // its request lay before the dump and it had no latency_ns
        let g = RequestGraph::new("r".into(), Correlation::RequestId, vec![root, call(Some(0), 1, Some(9))]);
        assert_eq!(g.duration(), 15 * 1_000_000);
    }
}
