//! Timing inference for calls whose parent the flows cannot name: statistics learned per
//! (agent, path) from unambiguous parents — whether a call makes calls at all, the offset of its
//! first call, the gaps between consecutive calls (negative when they run in parallel), the
//! time from the last call to its answer — and a beam search that assigns a pod's ambiguous
//! outgoing calls to its overlapping incoming calls jointly, scored by those statistics.

use foldhash::HashMap;

use crate::Nanos;

/// A call's interval and kind (a hash of its server agent and path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: Nanos,
    pub end: Nanos,
    pub kind: u64,
}

/// The kind that ends a parent's sequence of calls.
const END: u64 = 0;
/// Smoothing of the call-sequence model: `ALPHA_SEQ` pseudo-count spread over `KINDS` kinds.
const ALPHA_SEQ: f64 = 0.5;
const KINDS: f64 = 16.0;

/// Magnitude bins: 50 µs · 2^k, k = 0..=20 (50 µs to ~52 s), for each sign.
const MAG_BINS: usize = 21;
const BINS: usize = 2 * MAG_BINS;
const BASE_NS: f64 = 50_000.0;
/// Add-α smoothing: an unseen bin keeps a small probability.
const ALPHA: f64 = 0.3;

fn bin(v: Nanos) -> usize {
    // floor(log2(|v| / 50 µs)), in integers.
    let units = (v.unsigned_abs() / BASE_NS as u64).max(1);
    let mag = (63 - units.leading_zeros()) as usize;
    let mag = mag.min(MAG_BINS - 1);
    if v < 0 { MAG_BINS + mag } else { mag }
}

/// A log-scale histogram of signed durations.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: [u32; BINS],
    total: u32,
    /// `ln(count + α)` per bin and `ln(total + α·bins)`, kept current on every `add` so scoring
    /// (far more frequent than learning) needs no logarithm.
    ln_counts: [f64; BINS],
    ln_total: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: [0; BINS], total: 0, ln_counts: [ALPHA.ln(); BINS], ln_total: (ALPHA * BINS as f64).ln() }
    }
}

impl Histogram {
    pub fn add(&mut self, v: Nanos) {
        let b = bin(v);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.total = self.total.saturating_add(1);
        self.ln_counts[b] = (f64::from(self.counts[b]) + ALPHA).ln();
        self.ln_total = (f64::from(self.total) + ALPHA * BINS as f64).ln();
    }

    /// Smoothed log-probability of the bin of `v`.
    pub fn log_p(&self, v: Nanos) -> f64 {
        self.ln_counts[bin(v)] - self.ln_total
    }

    pub fn total(&self) -> u32 {
        self.total
    }
}

/// What unambiguous calls of one (agent, path) taught about the calls they make.
#[derive(Clone, Debug, Default)]
pub struct EdgeTiming {
    pub with_children: u32,
    pub without_children: u32,
    pub first_offset: Histogram,
    /// A call that starts while an earlier sibling still runs (fan-out): start-to-start gap.
    pub parallel_gap: Histogram,
    /// A call that starts after every earlier sibling ended (a sequence): end-to-start gap.
    pub sequential_gap: Histogram,
    pub last_to_end: Histogram,
    /// Which kind of call comes first, which follows which, and which comes last (a Markov
    /// chain over the kinds of calls this agent makes).
    pub first_kind: HashMap<u64, u32>,
    pub transitions: HashMap<(u64, u64), u32>,
    pub from_kind: HashMap<u64, u32>,
}

impl EdgeTiming {
    /// Learns from a parent's interval and its children's intervals (sorted by start).
    pub fn learn(&mut self, parent: Span, children: &[Span]) {
        if children.is_empty() {
            self.without_children = self.without_children.saturating_add(1);
            return;
        }
        self.with_children = self.with_children.saturating_add(1);
        self.first_offset.add(children[0].start - parent.start);
        let max_end = walk(
            children,
            |parallel, gap| {
                if parallel { self.parallel_gap.add(gap) } else { self.sequential_gap.add(gap) }
            },
        );
        self.last_to_end.add(parent.end - max_end);
        if self.transitions.len() < 4_096 {
            *self.first_kind.entry(children[0].kind).or_insert(0) += 1;
            for pair in children.windows(2) {
                *self.transitions.entry((pair[0].kind, pair[1].kind)).or_insert(0) += 1;
                *self.from_kind.entry(pair[0].kind).or_insert(0) += 1;
            }
            let last = children[children.len() - 1].kind;
            *self.transitions.entry((last, END)).or_insert(0) += 1;
            *self.from_kind.entry(last).or_insert(0) += 1;
        }
    }

    /// Log-likelihood of a parent having exactly these children (sorted by start). Without
    /// enough data of its own, the timing of `fallback` (learned from every agent) is used, and
    /// without that every assignment scores the same (the simple rule's order then decides).
    pub fn score(&self, parent: Span, children: &[Span], fallback: &EdgeTiming) -> f64 {
        if self.is_informed() {
            self.timing_score(parent, children) + self.shape_score(children)
        } else if fallback.is_informed() && !children.is_empty() {
            fallback.timing_score(parent, children)
        } else {
            0.0
        }
    }

    /// Whether the parent makes calls at all, which kind first, which follows which, which last.
    fn shape_score(&self, children: &[Span]) -> f64 {
        let (with, without) = (f64::from(self.with_children), f64::from(self.without_children));
        let denominator = with + without + 2.0;
        if children.is_empty() {
            return ((without + 1.0) / denominator).ln();
        }
        let mut s = ((with + 1.0) / denominator).ln();
        let first = f64::from(self.first_kind.get(&children[0].kind).copied().unwrap_or(0));
        s += ((first + ALPHA_SEQ) / (with + ALPHA_SEQ * KINDS)).ln();
        let step = |a: u64, b: u64| {
            let n = f64::from(self.transitions.get(&(a, b)).copied().unwrap_or(0));
            let from = f64::from(self.from_kind.get(&a).copied().unwrap_or(0));
            ((n + ALPHA_SEQ) / (from + ALPHA_SEQ * KINDS)).ln()
        };
        for pair in children.windows(2) {
            s += step(pair[0].kind, pair[1].kind);
        }
        s + step(children[children.len() - 1].kind, END)
    }

    /// When the calls start and end relative to the parent and to each other.
    fn timing_score(&self, parent: Span, children: &[Span]) -> f64 {
        if children.is_empty() {
            return 0.0;
        }
        let mut s = self.first_offset.log_p(children[0].start - parent.start);
        let (np, ns) = (f64::from(self.parallel_gap.total()), f64::from(self.sequential_gap.total()));
        let max_end = walk(children, |parallel, gap| {
            s += if parallel {
                ((np + 1.0) / (np + ns + 2.0)).ln() + self.parallel_gap.log_p(gap)
            } else {
                ((ns + 1.0) / (np + ns + 2.0)).ln() + self.sequential_gap.log_p(gap)
            };
        });
        s + self.last_to_end.log_p(parent.end - max_end)
    }

    /// Whether enough has been learned for the statistics to say more than the simple rule.
    pub fn is_informed(&self) -> bool {
        self.with_children + self.without_children >= 5
    }
}

/// Walks consecutive siblings (sorted by start), reporting for each transition whether it
/// overlaps an earlier sibling and its gap; returns the latest end.
fn walk(children: &[Span], mut f: impl FnMut(bool, Nanos)) -> Nanos {
    let mut max_end = children[0].end;
    let mut prev_start = children[0].start;
    for c in &children[1..] {
        if c.start < max_end {
            f(true, c.start - prev_start);
        } else {
            f(false, c.start - max_end);
        }
        max_end = max_end.max(c.end);
        prev_start = c.start;
    }
    max_end
}

/// A candidate parent in an assignment problem.
#[derive(Clone, Debug)]
pub struct ParentSlot<'a> {
    pub interval: Span,
    /// Children already linked for certain.
    pub fixed: Vec<Span>,
    pub timing: &'a EdgeTiming,
    /// Statistics of all agents, for an agent not yet known well.
    pub fallback: &'a EdgeTiming,
}

/// A call to assign: its interval and the indices of its candidate parents, in the simple
/// rule's order of preference (best first), used to break ties.
#[derive(Clone, Debug)]
pub struct ChildSlot {
    pub interval: Span,
    pub candidates: Vec<usize>,
}

#[derive(Clone)]
struct State {
    /// The parent chosen for each child so far.
    choice: Vec<usize>,
    scores: Vec<f64>,
    total: f64,
    /// Sum of tie-break ranks (lower = closer to the simple rule).
    rank: usize,
}

/// Fills `out` with parent `p`'s calls under `choice` (plus `extra`), sorted by start: its
/// fixed calls merged with the children assigned to it (children come in start order).
fn calls_of(
    p: usize,
    fixed: &[Span],
    children: &[ChildSlot],
    choice: &[usize],
    extra: Option<Span>,
    out: &mut Vec<Span>,
) {
    out.clear();
    out.extend_from_slice(fixed);
    out.extend(choice.iter().zip(children).filter(|(c, _)| **c == p).map(|(_, child)| child.interval));
    out.extend(extra);
    out.sort_by_key(|iv| (iv.start, iv.end));
}

/// Assigns each child (in order of start) to one of its candidates, keeping the `beam` best
/// partial assignments. Returns, per child, the chosen parent index and a confidence in (0, 1]:
/// the probability of the best choice against the best alternative for that child.
pub fn beam_assign(parents: &[ParentSlot<'_>], children: &[ChildSlot], beam: usize) -> Vec<(usize, f64)> {
    let mut scratch: Vec<Span> = Vec::new();
    let scores: Vec<f64> = parents
        .iter()
        .enumerate()
        .map(|(p, slot)| {
            calls_of(p, &slot.fixed, children, &[], None, &mut scratch);
            slot.timing.score(slot.interval, &scratch, slot.fallback)
        })
        .collect();
    let total = scores.iter().sum();
    let mut states = vec![State { choice: Vec::with_capacity(children.len()), scores, total, rank: 0 }];
    // Candidate extensions are scored first and only the kept ones are materialized, so a
    // state is cloned at most `beam` times per step.
    let mut extensions: Vec<(f64, usize, usize, usize, f64)> = Vec::new();
    for (i, child) in children.iter().enumerate() {
        extensions.clear();
        for (si, s) in states.iter().enumerate() {
            for (rank, &p) in child.candidates.iter().enumerate() {
                let slot = &parents[p];
                calls_of(p, &slot.fixed, &children[..i], &s.choice, Some(child.interval), &mut scratch);
                let new_score = slot.timing.score(slot.interval, &scratch, slot.fallback);
                extensions.push((s.total + (new_score - s.scores[p]), s.rank + rank, si, p, new_score));
            }
        }
        extensions.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        extensions.truncate(beam.max(1));
        states = extensions
            .iter()
            .map(|&(total, rank, si, p, new_score)| {
                let mut n = states[si].clone();
                n.scores[p] = new_score;
                n.choice.push(p);
                n.total = total;
                n.rank = rank;
                n
            })
            .collect();
    }
    let best = &states[0];
    (0..children.len())
        .map(|i| {
            let chosen = best.choice[i];
            let alternative =
                states.iter().filter(|s| s.choice[i] != chosen).map(|s| s.total).fold(f64::NEG_INFINITY, f64::max);
            let confidence = if alternative.is_finite() { 1.0 / (1.0 + (alternative - best.total).exp()) } else { 1.0 };
            (chosen, confidence)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn iv(s: i64, e: i64) -> Span {
        Span { start: s * MS, end: e * MS, kind: 1 }
    }

    /// A parent that thinks ~100 ms, then makes two sequential calls with ~5 ms gaps, then
    /// answers ~50 ms after its last call.
    fn trained() -> EdgeTiming {
        let mut t = EdgeTiming::default();
        for k in 0..50 {
            let s = k * 10_000;
            t.learn(iv(s, s + 1_200), &[iv(s + 100, s + 600), iv(s + 605, s + 1_150)]);
        }
        t
    }

    #[test]
    fn joint_assignment_follows_learned_timing() {
        let timing = trained();
        // Two overlapping parents on one pod; the simple rule (latest-started) would give every
        // child to B.
        let empty = EdgeTiming::default();
        let a = ParentSlot { interval: iv(0, 1_200), fixed: vec![], timing: &timing, fallback: &empty };
        let b = ParentSlot { interval: iv(300, 1_500), fixed: vec![], timing: &timing, fallback: &empty };
        let children = vec![
            ChildSlot { interval: iv(100, 600), candidates: vec![0] },
            ChildSlot { interval: iv(400, 900), candidates: vec![1, 0] },
            ChildSlot { interval: iv(605, 1_150), candidates: vec![1, 0] },
            ChildSlot { interval: iv(905, 1_450), candidates: vec![1, 0] },
        ];
        let got: Vec<usize> = beam_assign(&[a, b], &children, 16).into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, [0, 1, 0, 1]);
    }

    #[test]
    fn untrained_statistics_fall_back_to_the_rule_order() {
        let empty = EdgeTiming::default();
        let a = ParentSlot { interval: iv(0, 1_000), fixed: vec![], timing: &empty, fallback: &empty };
        let b = ParentSlot { interval: iv(10, 1_000), fixed: vec![], timing: &empty, fallback: &empty };
        let children = vec![ChildSlot { interval: iv(20, 30), candidates: vec![1, 0] }];
        let got = beam_assign(&[a, b], &children, 8);
        assert_eq!(got[0].0, 1);
        assert!(got[0].1 <= 0.5 + 1e-9);
    }

    #[test]
    fn bins_are_symmetric_and_bounded() {
        assert_eq!(bin(0), 0);
        assert_eq!(bin(-1), MAG_BINS);
        assert_eq!(bin(i64::MAX), MAG_BINS - 1);
        assert_eq!(bin(i64::MIN + 1), BINS - 1);
    }
}
