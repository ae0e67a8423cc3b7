//! Timing inference for calls whose parent the flows cannot name: statistics learned per
//! (agent, route: the path with its ids as `{id}`) from unambiguous parents — whether a call
//! makes calls at all, the offset of its first call, the gaps between consecutive calls
//! (start-to-start when they run in parallel, end-to-start in sequence), the time from the
//! last call to its answer, and the order of the kinds of calls — and a beam search that
//! assigns a pod's ambiguous outgoing calls (single calls and whole fan-outs) to its overlapping
//! incoming calls jointly, scored by those statistics, whose best assignment is then polished by
//! exact local moves.

use foldhash::HashMap;

use crate::Nanos;
use crate::record::seeded_hash;

/// A call's interval and kind (a hash of its server agent and route).
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
/// `ln(ALPHA_SEQ)` and `ln(ALPHA_SEQ · KINDS)` (checked by a test).
const LN_ALPHA_SEQ: f64 = -std::f64::consts::LN_2;
const LN_ALPHA_SEQ_KINDS: f64 = 3.0 * std::f64::consts::LN_2;

/// Magnitude bins: 50 µs · 2^k, k = 0..=20 (50 µs to ~52 s), for each sign. (Half-octave
/// bins were tried: the sparser counts cost more than the sharper edges gained.)
const MAG_BINS: usize = 21;
const BINS: usize = 2 * MAG_BINS;
const BASE_NS: u64 = 50_000;
/// Add-α smoothing: an unseen bin keeps a small probability.
const ALPHA: f64 = 0.3;

fn bin(v: Nanos) -> usize {
    // floor(log2(|v| / 50 µs)), in integers.
    let units = (v.unsigned_abs() / BASE_NS).max(1);
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
    /// The largest and smallest values seen, most extreme first. With enough samples, a value
    /// more than 1/16 outside their range scores like an empty bin, though its bin (a factor of
    /// 2 wide) has counts (1/8 let through gaps a parent could not have had; 1/16 and 1/32
    /// scored alike). The range leaves out the most extreme values, one per 128 samples (at most
    /// three), so that a stray example (a wrong decision learned from) does not stretch it for
    /// good.
    highest: [Nanos; EXTREMES],
    lowest: [Nanos; EXTREMES],
}

/// Extreme values kept at each end of a [`Histogram`].
const EXTREMES: usize = 4;

/// Samples needed before scores are interpolated between bins.
const INTERPOLATION_SAMPLES: u32 = 200;

/// Samples needed before the seen range sharpens the bins.
const RANGE_SAMPLES: u32 = 30;

/// Calls of one kind started this close together (one after another, each while an earlier
/// one still runs) may be one fan-out: `asyncio.gather` and its kin launch them within a
/// millisecond or two. What an agent is seen to do narrows it ([`EdgeTiming::fan_out_spread`]).
pub(crate) const FAN_OUT_SPREAD: Nanos = 5_000_000;

/// Launch gaps seen before [`EdgeTiming::fan_out_spread`] trusts their widest. Too narrow a
/// spread only splits a fan-out into units the search may still give one parent.
const FAN_OUT_SAMPLES: u32 = 10;

/// How one agent launches a kind of call several at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct FanOutGaps {
    /// Start-to-start gaps (to the previous such call) of at most [`FAN_OUT_SPREAD`] seen,
    /// and the widest of them.
    pub samples: u32,
    pub widest: Nanos,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BINS],
            total: 0,
            ln_counts: [ALPHA.ln(); BINS],
            ln_total: (ALPHA * BINS as f64).ln(),
            highest: [Nanos::MIN; EXTREMES],
            lowest: [Nanos::MAX; EXTREMES],
        }
    }
}

impl Histogram {
    pub fn add(&mut self, v: Nanos) {
        let b = bin(v);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.total = self.total.saturating_add(1);
        self.ln_counts[b] = (f64::from(self.counts[b]) + ALPHA).ln();
        self.ln_total = (f64::from(self.total) + ALPHA * BINS as f64).ln();
        if let Some(i) = self.highest.iter().position(|&h| v > h) {
            self.highest.copy_within(i..EXTREMES - 1, i + 1);
            self.highest[i] = v;
        }
        if let Some(i) = self.lowest.iter().position(|&l| v < l) {
            self.lowest.copy_within(i..EXTREMES - 1, i + 1);
            self.lowest[i] = v;
        }
    }

    /// Smoothed log-probability of the bin of `v`; with [`INTERPOLATION_SAMPLES`] or more,
    /// blended (in log space) with the nearer neighbouring bin's by `v`'s distance from its
    /// bin's centre, so that scores run smoothly across bin edges instead of stepping by up to
    /// a factor of 2 (research-swarm, nothing propagated: parent accuracy up on all eight seeds
    /// measured, mean 98.40 → 98.68 %).
    pub fn log_p(&self, v: Nanos) -> f64 {
        let trimmed = (self.total as usize / 128).min(EXTREMES - 1);
        let (min, max) = (self.lowest[trimmed], self.highest[trimmed]);
        if self.total >= RANGE_SAMPLES && (v < min - min.abs() / 16 || v > max.saturating_add(max.abs() / 16)) {
            return ALPHA.ln() - self.ln_total;
        }
        // Between bin centres, interpolated (in log space) toward the nearer neighbour.
        let b = bin(v);
        let units = v.unsigned_abs() as f64 / BASE_NS as f64;
        if units < 1.0 || self.total < INTERPOLATION_SAMPLES {
            return self.ln_counts[b] - self.ln_total;
        }
        let (base, mag) = (b - b % MAG_BINS, b % MAG_BINS);
        // The fraction of log2(units) past the bin's lower edge, from the float's mantissa, to
        // within 0.005 (no logarithm: this runs for every call the search scores); a value past
        // the last bin stays at its centre.
        let bits = units.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as usize - 1023;
        let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52)) - 1.0;
        let frac = if exponent > mag { 0.5 } else { m + 0.346_607 * m * (1.0 - m) };
        let (neighbour, w) = if frac < 0.5 {
            (mag.checked_sub(1), 0.5 - frac)
        } else {
            (Some(mag + 1).filter(|&m| m < MAG_BINS), frac - 0.5)
        };
        let here = self.ln_counts[base + mag];
        let blended = match neighbour {
            Some(n) => (1.0 - w) * here + w * self.ln_counts[base + n],
            None => here,
        };
        blended - self.ln_total
    }

    /// Smoothed `P(X ≥ v)` for `v ≥ 0`: the bins above `v`'s, and half of its own.
    pub fn survival(&self, v: Nanos) -> f64 {
        let b = bin(v.max(0));
        let above: u32 = self.counts[b + 1..MAG_BINS].iter().sum();
        let mass = f64::from(above) + ALPHA * (MAG_BINS - b - 1) as f64 + 0.5 * (f64::from(self.counts[b]) + ALPHA);
        mass / (f64::from(self.total) + ALPHA * BINS as f64)
    }

    pub fn total(&self) -> u32 {
        self.total
    }
}

/// Which token follows which: counts by the earlier token and, under it, by the next, with
/// `ln(count + ALPHA_SEQ)` and `ln(total + ALPHA_SEQ · KINDS)` kept current, so scoring a step
/// takes one lookup and a short scan (a token has few followers) and no logarithm.
#[derive(Clone, Debug, Default)]
pub struct Successors {
    by_token: HashMap<u64, Followers>,
    pairs: usize,
}

#[derive(Clone, Debug, Default)]
struct Followers {
    total: u32,
    ln_total: f64,
    /// (next token, count, `ln(count + ALPHA_SEQ)`).
    next: Vec<(u64, u32, f64)>,
}

impl Successors {
    fn add(&mut self, a: u64, b: u64) {
        let followers = self.by_token.entry(a).or_default();
        followers.total = followers.total.saturating_add(1);
        followers.ln_total = (f64::from(followers.total) + ALPHA_SEQ * KINDS).ln();
        match followers.next.iter_mut().find(|(next, _, _)| *next == b) {
            Some((_, count, ln_count)) => {
                *count = count.saturating_add(1);
                *ln_count = (f64::from(*count) + ALPHA_SEQ).ln();
            }
            None => {
                followers.next.push((b, 1, (1.0 + ALPHA_SEQ).ln()));
                self.pairs += 1;
            }
        }
    }

    /// Distinct (token, next token) pairs seen.
    fn pairs(&self) -> usize {
        self.pairs
    }

    /// How often `b` followed `a`, and how often anything did.
    fn counts(&self, a: u64, b: u64) -> (u32, u32) {
        self.by_token.get(&a).map_or((0, 0), |f| {
            (f.next.iter().find(|(next, _, _)| *next == b).map_or(0, |&(_, count, _)| count), f.total)
        })
    }

    /// `ln((count(a → b) + ALPHA_SEQ) / (count(a → anything) + ALPHA_SEQ · KINDS))`.
    fn ln_step(&self, a: u64, b: u64) -> f64 {
        match self.by_token.get(&a) {
            None => LN_ALPHA_SEQ - LN_ALPHA_SEQ_KINDS,
            Some(f) => {
                f.next.iter().find(|(next, _, _)| *next == b).map_or(LN_ALPHA_SEQ, |&(_, _, ln)| ln) - f.ln_total
            }
        }
    }
}

/// Counts by key with `ln(count + ALPHA_SEQ)` kept current: scoring, far more frequent than
/// learning, needs no logarithm.
#[derive(Clone, Debug)]
pub struct LnCounts<K> {
    map: HashMap<K, (u32, f64)>,
}

impl<K> Default for LnCounts<K> {
    fn default() -> Self {
        LnCounts { map: HashMap::default() }
    }
}

impl<K: std::hash::Hash + Eq> LnCounts<K> {
    fn add(&mut self, key: K, smoothing: f64) {
        let entry = self.map.entry(key).or_insert((0, 0.0));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = (f64::from(entry.0) + smoothing).ln();
    }

    /// `ln(count + smoothing)`, given `ln(smoothing)` for an unseen key.
    fn ln(&self, key: &K, ln_smoothing: f64) -> f64 {
        self.map.get(key).map_or(ln_smoothing, |e| e.1)
    }

    pub fn count(&self, key: &K) -> u32 {
        self.map.get(key).map_or(0, |e| e.0)
    }
}

/// What unambiguous calls of one (agent, route) taught about the calls they make.
#[derive(Clone, Debug, Default)]
pub struct EdgeTiming {
    pub with_children: u32,
    pub without_children: u32,
    pub first_offset: Histogram,
    /// A call that starts while an earlier sibling still runs (fan-out): start-to-start gap.
    pub parallel_gap: Histogram,
    /// A call that starts after every earlier sibling ended (a sequence): end-to-start gap.
    pub sequential_gap: Histogram,
    /// The same, split by whether the call is of the previous call's kind (the next call of a
    /// step: "call the LLM again") or of another (the next step, often after more thinking).
    pub sequential_gap_same: Histogram,
    pub sequential_gap_change: Histogram,
    pub last_to_end: Histogram,
    /// Which kind of call comes first, which follows which, and which comes last (a Markov
    /// chain over the kinds of calls this agent makes).
    pub first_kind: LnCounts<u64>,
    pub transitions: Successors,
    /// Kinds of call made several at once (a fan-out: a call started while one of the same
    /// kind still ran), and how far apart such calls start.
    pub fanned_out_kinds: HashMap<u64, FanOutGaps>,
    /// `ln((with + 1) / (with + without + 2))`, `ln((without + 1) / …)` and
    /// `ln(with + ALPHA_SEQ · KINDS)`, kept current by `learn`.
    ln_with: f64,
    ln_without: f64,
    ln_first_total: f64,
    /// `ln` of the smoothed shares of parallel and sequential gaps, kept current by `learn`.
    ln_parallel: f64,
    ln_sequential: f64,
}

impl EdgeTiming {
    /// Learns from a parent's interval and its children's intervals (sorted by start).
    /// `certain`: no child was linked by inference. Fan-out launch gaps are learned only then:
    /// a wrongly joined unit would teach the very gap that joined it.
    pub fn learn(&mut self, parent: Span, children: &[Span], certain: bool) {
        let first = self.with_children == 0 && self.without_children == 0;
        if children.is_empty() {
            self.without_children = self.without_children.saturating_add(1);
        } else {
            self.with_children = self.with_children.saturating_add(1);
        }
        let (with, without) = (f64::from(self.with_children), f64::from(self.without_children));
        self.ln_with = ((with + 1.0) / (with + without + 2.0)).ln();
        self.ln_without = ((without + 1.0) / (with + without + 2.0)).ln();
        // What depends on children only changes with a call that has some (and is set from
        // nothing by the first call of all): most calls learned from have none, and a logarithm
        // each costs.
        if first || !children.is_empty() {
            self.ln_first_total = (with + ALPHA_SEQ * KINDS).ln();
        }
        if children.is_empty() {
            if first {
                self.update_gap_shares();
            }
            return;
        }
        self.first_offset.add(children[0].start - parent.start);
        // The same steps as scoring takes (`Tail`): gaps and tokens by one definition.
        let mut tail = Tail::default();
        let mut tokens = Vec::with_capacity(children.len());
        for c in children {
            if tail.has_calls {
                match tail.gap(*c) {
                    (true, gap) => self.parallel_gap.add(gap),
                    (false, gap) => {
                        self.sequential_gap.add(gap);
                        if tail.last_kind == c.kind {
                            self.sequential_gap_same.add(gap);
                        } else {
                            self.sequential_gap_change.add(gap);
                        }
                    }
                }
            }
            tail.push(Model::Uninformed, parent, *c);
            tokens.extend(tail.last_token());
        }
        self.last_to_end.add(parent.end - tail.max_end);
        self.update_gap_shares();
        if self.transitions.pairs() < 4_096 {
            let mut previous = None;
            for token in tokens {
                match previous {
                    None => self.first_kind.add(token, ALPHA_SEQ),
                    Some(a) => self.transitions.add(a, token),
                }
                previous = Some(token);
            }
            if let Some(last) = previous {
                self.transitions.add(last, END);
            }
            for (i, c) in children.iter().enumerate() {
                let launched_before =
                    children[..i].iter().filter(|e| e.kind == c.kind && e.end > c.start).map(|e| e.start).max();
                if let Some(previous) = launched_before {
                    let gap = c.start - previous;
                    if certain && gap <= FAN_OUT_SPREAD {
                        let gaps = self.fanned_out_kinds.entry(c.kind).or_default();
                        gaps.samples = gaps.samples.saturating_add(1);
                        gaps.widest = gaps.widest.max(gap);
                    }
                }
            }
        }
    }

    /// The end-to-start gaps of calls of the previous call's kind (`same`) or of another, once
    /// there are enough of them; all end-to-start gaps before.
    fn sequential_gap_after(&self, same: bool) -> &Histogram {
        let split = if same { &self.sequential_gap_same } else { &self.sequential_gap_change };
        if split.total() >= RANGE_SAMPLES { split } else { &self.sequential_gap }
    }

    fn update_gap_shares(&mut self) {
        let (np, ns) = (f64::from(self.parallel_gap.total()), f64::from(self.sequential_gap.total()));
        self.ln_parallel = ((np + 1.0) / (np + ns + 2.0)).ln();
        self.ln_sequential = ((ns + 1.0) / (np + ns + 2.0)).ln();
    }

    /// Whether calls of `kind` have been seen made several at once, under a parent whose
    /// children were all linked for certain (always, for an agent not known well enough to say).
    pub fn fans_out(&self, kind: u64) -> bool {
        !self.is_informed() || self.fanned_out_kinds.contains_key(&kind)
    }

    /// How far apart in time consecutive calls of `kind` may start and still be one fan-out:
    /// a quarter more than the widest launch gap seen, once seen often enough; at most
    /// [`FAN_OUT_SPREAD`]. An agent that launches its fan-out within a millisecond should not
    /// have another request's fan-out, started a few milliseconds later, joined to it.
    pub fn fan_out_spread(&self, kind: u64) -> Nanos {
        match self.fanned_out_kinds.get(&kind) {
            Some(gaps) if gaps.samples >= FAN_OUT_SAMPLES => (gaps.widest + gaps.widest / 4).min(FAN_OUT_SPREAD),
            _ => FAN_OUT_SPREAD,
        }
    }

    /// Whether enough has been learned for the statistics to say more than the simple rule.
    pub fn is_informed(&self) -> bool {
        self.with_children + self.without_children >= 5
    }

    /// `ln P(makes calls)` or `ln P(makes none)`.
    fn ln_makes_calls(&self, calls: bool) -> f64 {
        match (calls, self.with_children + self.without_children) {
            // Nothing learned: even odds.
            (_, 0) => -std::f64::consts::LN_2,
            (true, _) => self.ln_with,
            (false, _) => self.ln_without,
        }
    }

    /// `P(makes calls)` or `P(makes none)`.
    fn makes_calls(&self, calls: bool) -> f64 {
        let (with, without) = (f64::from(self.with_children), f64::from(self.without_children));
        (if calls { with } else { without } + 1.0) / (with + without + 2.0)
    }

    /// `P(kind b follows kind a)` (see `ln_step`).
    fn step(&self, a: u64, b: u64) -> f64 {
        let (pair, from) = self.transitions.counts(a, b);
        (f64::from(pair) + ALPHA_SEQ) / (f64::from(from) + ALPHA_SEQ * KINDS)
    }

    /// `ln P(kind b follows kind a)` in the call-sequence model (`b = END`: a is the last call).
    fn ln_step(&self, a: u64, b: u64) -> f64 {
        self.transitions.ln_step(a, b)
    }

    fn ln_first_kind(&self, kind: u64) -> f64 {
        let total = if self.with_children == 0 { LN_ALPHA_SEQ_KINDS } else { self.ln_first_total };
        self.first_kind.ln(&kind, LN_ALPHA_SEQ) - total
    }
}

/// Which statistics score a parent: its own (timing and call sequence), the ones pooled over
/// all agents (timing only), or none (every assignment scores 0).
#[derive(Clone, Copy)]
enum Model<'a> {
    Own(&'a EdgeTiming),
    Pooled(&'a EdgeTiming),
    Uninformed,
}

impl<'a> Model<'a> {
    fn of(own: &'a EdgeTiming, pooled: &'a EdgeTiming) -> Self {
        if own.is_informed() {
            Model::Own(own)
        } else if pooled.is_informed() {
            Model::Pooled(pooled)
        } else {
            Model::Uninformed
        }
    }

    /// The terms a parent's calls settle as they start: that it makes calls, the first call's
    /// offset and kind, each next call's gap and kind. Everything but how the sequence ends.
    fn prefix(self, parent: Span, children: &[Span]) -> f64 {
        let mut tail = Tail::default();
        children.iter().fold(0.0, |s, c| s + tail.push(self, parent, *c))
    }

    /// The prefix terms one more call settles, after the calls summed up in `tail`.
    fn next_call(self, parent: Span, tail: &Tail, call: Span, token: u64) -> f64 {
        let t = match self {
            Model::Uninformed => return 0.0,
            Model::Own(t) | Model::Pooled(t) => t,
        };
        let Some(previous) = tail.last_token() else {
            let timing = t.first_offset.log_p(call.start - parent.start);
            return match self {
                Model::Own(t) => timing + t.ln_makes_calls(true) + t.ln_first_kind(token),
                _ => timing,
            };
        };
        let timing = match tail.gap(call) {
            (true, gap) => t.ln_parallel + t.parallel_gap.log_p(gap),
            (false, gap) => t.ln_sequential + t.sequential_gap_after(tail.last_kind == call.kind).log_p(gap),
        };
        match self {
            Model::Own(t) => timing + t.ln_step(previous, token),
            _ => timing,
        }
    }

    /// How the sequence ends: the time from the last call to the answer and that no call
    /// follows it, or that the parent made no calls at all.
    fn completion(self, parent: Span, calls: Tail) -> f64 {
        match (self, calls.last_token()) {
            (Model::Uninformed, _) | (Model::Pooled(_), None) => 0.0,
            (Model::Own(t), None) => t.ln_makes_calls(false),
            (Model::Own(t) | Model::Pooled(t), Some(last)) => {
                let shape = if let Model::Own(t) = self { t.ln_step(last, END) } else { 0.0 };
                t.last_to_end.log_p(parent.end - calls.max_end) + shape
            }
        }
    }

    /// What is known at time `now` about a parent still running then, given the calls it made
    /// before `now`: nothing came for `now − start` (no calls yet) or for `now − end of its
    /// calls` (all finished), so the first call, the next one or the answer is still due.
    fn waiting(self, parent: Span, calls: Tail, now: Nanos) -> f64 {
        let t = match self {
            Model::Uninformed => return 0.0,
            Model::Own(t) | Model::Pooled(t) => t,
        };
        let Some(last) = calls.last_token() else {
            let Model::Own(t) = self else { return 0.0 };
            let first_due = t.first_offset.survival(now - parent.start);
            return (t.makes_calls(false) + t.makes_calls(true) * first_due).ln();
        };
        if calls.max_end >= now {
            return 0.0;
        }
        let ends_here = if let Model::Own(t) = self { t.step(last, END) } else { 0.5 };
        let idle = now - calls.max_end;
        (ends_here * t.last_to_end.survival(idle) + (1.0 - ends_here) * t.sequential_gap.survival(idle)).ln()
    }
}

/// A parent's calls so far (sorted by start) as far as scoring more of them, their ending or
/// the wait for them needs: the last start, the latest end, and where the last call stands in
/// the call sequence (kind, run, position in the run). Kept small: the search copies one per
/// parent for every state it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tail {
    last_start: Nanos,
    max_end: Nanos,
    last_kind: u64,
    run: u32,
    position: u32,
    has_calls: bool,
}

impl Default for Tail {
    fn default() -> Self {
        Tail { last_start: Nanos::MIN, max_end: Nanos::MIN, last_kind: 0, run: 0, position: 0, has_calls: false }
    }
}

impl Tail {
    fn of(calls: &[Span]) -> Self {
        let mut tail = Tail::default();
        for c in calls {
            tail.push(Model::Uninformed, Span { start: 0, end: 0, kind: 0 }, *c);
        }
        tail
    }

    /// The last call's token (`None`: no calls).
    fn last_token(&self) -> Option<u64> {
        self.has_calls.then(|| token(self.last_kind, self.run, self.position))
    }

    /// Appends a call (starting no earlier than the last); returns the prefix terms it settles.
    fn push(&mut self, model: Model<'_>, parent: Span, call: Span) -> f64 {
        let (run, position) = match self.has_calls {
            false => (0, 0),
            true if self.last_kind != call.kind => (self.run.saturating_add(1), 0),
            true => (self.run, self.position.saturating_add(1)),
        };
        let settled = model.next_call(parent, self, call, token(call.kind, run, position));
        *self = Tail {
            last_start: call.start,
            max_end: if self.has_calls { self.max_end.max(call.end) } else { call.end },
            last_kind: call.kind,
            run,
            position,
            has_calls: true,
        };
        settled
    }

    /// Whether `call`, the next call, runs in parallel with an earlier one (it starts while one
    /// still runs: its gap is from the previous start) or in sequence (after all ended: from
    /// the latest end); and that gap.
    fn gap(&self, call: Span) -> (bool, Nanos) {
        if call.start < self.max_end {
            (true, call.start - self.last_start)
        } else {
            (false, call.start - self.max_end)
        }
    }

    /// The hash of what the calls mean for the calls to come.
    fn frontier(&self) -> u64 {
        if !self.has_calls {
            return 0;
        }
        seeded_hash(0x6672_6f6e, (self.last_start, self.max_end, self.last_token()))
    }
}

/// A call's token in its parent's call sequence: its kind, which run of same-kind calls it
/// belongs to (0 for the first) and its position in that run, so the model learns the order
/// and size of steps ("one to three LLM calls after the search, and then the answer"), not
/// only which kind may follow which.
fn token(kind: u64, run: u32, position: u32) -> u64 {
    let step = u64::from(run).min(MAX_RUN) << 2 | u64::from(position).min(MAX_RUN_POSITION);
    // Never END (0).
    (kind ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

/// Runs of same-kind calls told apart in the call-sequence model (later ones count as the last).
const MAX_RUN: u64 = 7;
/// Positions within a run told apart (later ones count as the last): how many calls of a kind
/// in a row are usual.
const MAX_RUN_POSITION: u64 = 3;

/// A candidate parent in an assignment problem.
#[derive(Clone, Debug)]
pub struct ParentSlot<'a> {
    pub interval: Span,
    /// Children already linked for certain.
    pub fixed: Vec<Span>,
    pub timing: &'a EdgeTiming,
    /// Statistics of all agents, for an agent not yet known well.
    pub fallback: &'a EdgeTiming,
    /// Calls outside this problem may still be assigned to it: its sequence is not scored as
    /// finished.
    pub open: bool,
}

/// Calls to assign to one parent together (one call, or a fan-out: same-kind calls launched at
/// once), sorted by start, and the indices of their candidate parents in the simple rule's
/// order of preference (best first), used to break ties.
#[derive(Clone, Debug)]
pub struct ChildSlot {
    pub calls: Vec<Span>,
    pub candidates: Vec<usize>,
}

impl ChildSlot {
    fn start(&self) -> Nanos {
        self.calls.first().map_or(0, |c| c.start)
    }
}

/// One choice on a path of the search: child `child` given to parent `parent`. Paths share
/// their common beginnings in one arena instead of each state copying its history.
#[derive(Debug)]
struct Step {
    /// The step before on this path (`NONE`: the first).
    before: u32,
    /// The previous step on this path that gave a child to the same parent (`NONE`: none).
    before_same_parent: u32,
    child: u32,
    parent: u32,
    /// What the parent's calls are after this step.
    after: ParentCalls,
}

const NONE: u32 = u32::MAX;

/// What a parent's calls so far are, for scoring: everything a state knows of the parent
/// follows from its last step (or, before any, from its certain calls), so a state keeps
/// just that step per parent (its row), and this is kept once, in the step.
#[derive(Clone, Copy, Debug)]
struct ParentCalls {
    /// The prefix score of its calls so far.
    prefix: f64,
    /// A hash of what its calls so far mean for the calls to come (`frontier`).
    frontier: u64,
    /// What its ending or waiting is scored from.
    tail: Tail,
}

/// A parent's calls as of its last step `last` on some path (`NONE`: its certain calls only).
fn calls_after<'s>(steps: &'s [Step], initial: &'s [ParentCalls], p: usize, last: u32) -> &'s ParentCalls {
    match last {
        NONE => &initial[p],
        step => &steps[step as usize].after,
    }
}

/// A partial assignment: its last step, its score, and its row: per parent, the last step
/// that gave it a child (`NONE`: none).
#[derive(Clone, Copy, Debug)]
struct State {
    last: u32,
    /// Sum of the parents' prefix scores, plus the endings of parents whose calls are final.
    settled: f64,
    /// Sum of tie-break ranks (lower = closer to the simple rule).
    rank: u32,
    /// Combined hash of the frontiers: states that agree on it score every continuation the
    /// same, so only the better of them need be kept.
    signature: u64,
    /// The best state merged into this one (or into its ancestors).
    runner: Runner,
}

/// A partial assignment merged into a better one with the same signature. It shares that
/// state's future, so it stays exactly as far behind whatever follows: at the end it is an
/// alternative to the state's assignment, differing from it up to child `child`. Without it,
/// merging would leave a child's confidence blind to the alternatives that rearrange several
/// children at once (two twin calls' children swapped wholesale), and call a coin flip certain.
#[derive(Clone, Copy, Debug)]
struct Runner {
    /// How much lower it scores (`∞`: no runner).
    behind: f64,
    /// Its step before child `child`, which it gave to `parent`; after `child` it follows the
    /// state's own path.
    before: u32,
    child: u32,
    parent: u32,
}

const NO_RUNNER: Runner = Runner { behind: f64::INFINITY, before: NONE, child: NONE, parent: NONE };

impl Runner {
    /// The closer of two runners.
    fn closer(self, other: Runner) -> Runner {
        if other.behind < self.behind { other } else { self }
    }
}

/// A hash of what a parent's calls started up to `upto` mean for scoring later calls.
fn frontier(calls: &[Span], upto: Nanos) -> u64 {
    Tail::of(&calls[..calls.partition_point(|c| c.start <= upto)]).frontier()
}

/// One parent's part of a state's signature.
fn signature_part(p: usize, frontier: u64) -> u64 {
    seeded_hash(0x7369_676e, (p, frontier))
}

/// Fills `out` with a parent's calls on the path ending at its step `last` (plus `extra`),
/// sorted by start: its fixed calls merged with the children given to it.
fn calls_of(fixed: &[Span], children: &[ChildSlot], steps: &[Step], last: u32, extra: &[Span], out: &mut Vec<Span>) {
    out.clear();
    out.extend_from_slice(fixed);
    let mut at = last;
    while at != NONE {
        let step = &steps[at as usize];
        out.extend_from_slice(&children[step.child as usize].calls);
        at = step.before_same_parent;
    }
    out.extend_from_slice(extra);
    out.sort_unstable_by_key(|iv| (iv.start, iv.end));
}

/// The score of parent `p`'s calls that is not settled by the calls themselves, at time `now`
/// (`None`: after every call): a finished parent's ending, or a running one's waiting.
fn unsettled(slot: &ParentSlot<'_>, model: Model<'_>, calls: Tail, now: Option<Nanos>) -> f64 {
    match now {
        _ if slot.open => 0.0,
        Some(now) if slot.interval.end > now => {
            // A parent with a call starting at or after `now` (one fixed for certain) is not
            // waiting for anything.
            if calls.has_calls && calls.last_start >= now { 0.0 } else { model.waiting(slot.interval, calls, now) }
        }
        _ => model.completion(slot.interval, calls),
    }
}

/// The joint search's answer for one child.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Index of the chosen parent.
    pub parent: usize,
    /// Probability of the choice against the best alternative found that gives this child
    /// another parent, however many other children it moves: the confidence reported.
    pub confidence: f64,
    /// The same against alternatives the search kept to the end or a single move or swap
    /// reaches. Learning takes a decision as certain by this: gating learning on the wider
    /// measure was measured no better on large simulated runs and worse on small ones.
    pub local_confidence: f64,
}

/// Assigns each child (in order of start) to one of its candidates, keeping the `beam` best
/// partial assignments, then polishes the best by exact local moves (`polish`). Returns, per
/// child, the chosen parent index and its confidences in (0, 1] ([`Decision`]).
///
/// Partial assignments are compared fairly at each child's start: a parent's calls so far are
/// scored as a prefix, plus what the time since its last call says (the next call or the
/// answer is still due), and a parent that has answered by then as a finished sequence. An
/// assignment is not favoured for leaving a parent's sequence looking complete too early.
pub fn beam_assign(
    parents: &[ParentSlot<'_>],
    children: &[ChildSlot],
    beam: usize,
    buffers: &mut SearchBuffers,
) -> Vec<Decision> {
    let SearchBuffers {
        mut steps,
        mut rows,
        mut next_rows,
        mut states,
        mut next_states,
        mut waiting_by_step,
        mut extended_by_step,
        mut extended,
        mut extensions,
    } = std::mem::take(buffers);
    steps.clear();
    rows.clear();
    states.clear();
    waiting_by_step.clear();
    extended_by_step.clear();
    extended.clear();
    // Extension keys hold states and parents in 16 bits.
    let beam = beam.clamp(1, 1 << 16);
    let width = parents.len();
    assert!(width <= 1 << 16, "at most 65,536 candidate parents");
    let models: Vec<Model<'_>> = parents.iter().map(|slot| Model::of(slot.timing, slot.fallback)).collect();
    let mut scratch: Vec<Span> = Vec::new();
    // After the last child that may be given to it, a parent's calls are final: its ending is
    // scored once, and it drops out of the per-step waiting terms.
    let mut last_use: Vec<Option<usize>> = vec![None; width];
    for (i, child) in children.iter().enumerate() {
        for &p in &child.candidates {
            last_use[p] = Some(i);
        }
    }
    let mut final_after: Vec<Vec<usize>> = vec![Vec::new(); children.len()];
    for (p, used) in last_use.iter().enumerate() {
        if let Some(i) = used {
            final_after[*i].push(p);
        }
    }
    // Each parent's certain calls, by start.
    let fixed: Vec<Vec<Span>> = parents
        .iter()
        .map(|slot| {
            let mut calls = slot.fixed.clone();
            calls.sort_unstable_by_key(|c| (c.start, c.end));
            calls
        })
        .collect();
    let first_start = children.first().map_or(0, |c| c.start());
    let initial: Vec<ParentCalls> = (0..width)
        .map(|p| ParentCalls {
            prefix: models[p].prefix(parents[p].interval, &fixed[p]),
            frontier: frontier(&fixed[p], first_start),
            tail: Tail::of(&fixed[p]),
        })
        .collect();
    rows.resize(width, NONE);
    // Parents no child can be given are final from the start.
    let settled = initial.iter().map(|r| r.prefix).sum::<f64>()
        + (0..width)
            .filter(|&p| last_use[p].is_none())
            .map(|p| unsettled(&parents[p], models[p], initial[p].tail, None))
            .sum::<f64>();
    let signature = initial.iter().enumerate().fold(0, |h, (p, r)| h ^ signature_part(p, r.frontier));
    states.push(State { last: NONE, settled, rank: 0, signature, runner: NO_RUNNER });
    let mut waiting: Vec<f64> = vec![0.0; width];
    // A parent's waiting term at a child's start, and its row once given the child, depend
    // only on its calls so far, which its last step names: states share most rows, so each is
    // computed once per child, not once per state. Entries are stamped with the child they
    // were computed for (by step; by parent for a parent given nothing yet).
    let mut waiting_without_steps: Vec<(u32, f64)> = vec![(NONE, 0.0); width];
    // A parent's calls once given the child are kept in `extended` (this child's only), and the
    // caches hold their index: a step's entry stays small, as there is one for every step.
    let mut extended_without_steps: Vec<(u32, u32)> = vec![(NONE, 0); width];
    // Candidate extensions are scored first and only the kept ones are materialized; the sort
    // moves one integer key per extension (`extension_key`), not what the row becomes.
    // Kept states by signature, to merge a state into a better one with the same future.
    let mut kept: foldhash::HashMap<u64, usize> = Default::default();
    let mut in_play: Vec<usize> = Vec::new();
    for (i, child) in children.iter().enumerate() {
        let now = child.start();
        in_play.clear();
        in_play.extend((0..width).filter(|&p| last_use[p].is_some_and(|u| u >= i)));
        extensions.clear();
        let stamp = i as u32;
        waiting_by_step.resize(steps.len(), (NONE, 0.0));
        extended_by_step.resize(steps.len(), (NONE, 0));
        extended.clear();
        for (si, s) in states.iter().enumerate() {
            let row = &rows[si * width..(si + 1) * width];
            let mut base = s.settled;
            for &p in &in_play {
                let cached = per_last_step(&mut waiting_by_step, &mut waiting_without_steps, p, row[p]);
                if cached.0 != stamp {
                    let tail = calls_after(&steps, &initial, p, row[p]).tail;
                    *cached = (stamp, unsettled(&parents[p], models[p], tail, Some(now)));
                }
                waiting[p] = cached.1;
                base += waiting[p];
            }
            for (rank, &p) in child.candidates.iter().enumerate() {
                // What the parent's row becomes depends only on its calls so far, which its last
                // step names: computed once per child for all the states that share them.
                let before = calls_after(&steps, &initial, p, row[p]);
                let cached = per_last_step(&mut extended_by_step, &mut extended_without_steps, p, row[p]);
                if cached.0 != stamp {
                    let calls = if before.tail.last_start < now {
                        // The new calls come after all of the parent's: score just them.
                        let mut tail = before.tail;
                        let prefix = child
                            .calls
                            .iter()
                            .fold(before.prefix, |s, c| s + tail.push(models[p], parents[p].interval, *c));
                        ParentCalls { prefix, frontier: tail.frontier(), tail }
                    } else {
                        // A certain call starts later: score the whole merged sequence.
                        calls_of(&fixed[p], children, &steps, row[p], &child.calls, &mut scratch);
                        let prefix = models[p].prefix(parents[p].interval, &scratch);
                        let upto = child.calls.last().map_or(now, |c| c.start);
                        ParentCalls { prefix, frontier: frontier(&scratch, upto), tail: Tail::of(&scratch) }
                    };
                    extended.push(calls);
                    *cached = (stamp, u32::try_from(extended.len() - 1).expect("fewer than 2^32 extensions"));
                }
                let new_prefix = extended[cached.1 as usize].prefix;
                // The new call starts now: its parent is busy, not waiting.
                let total = base - waiting[p] + (new_prefix - before.prefix);
                extensions.push(extension_key(total, s.rank.saturating_add(rank as u32), si, p));
            }
        }
        let block = beam + beam / 2;
        let mut sorted = 0;
        // Keep the best `beam` states that differ in what is to come (recombination: of two
        // assignments that leave every parent in the same place, the worse can never win).
        kept.clear();
        next_states.clear();
        next_rows.clear();
        for e in 0..extensions.len() {
            if next_states.len() >= beam {
                break;
            }
            if e == sorted {
                // Order the next block of the best: usually one is enough, as recombination
                // skips few; the rest is never sorted.
                let rest = &mut extensions[sorted..];
                let size = block.min(rest.len());
                if rest.len() > size {
                    rest.select_nth_unstable(size);
                }
                rest[..size].sort_unstable();
                sorted += size;
            }
            let (rank, si, p) = extension_parts(extensions[e]);
            let old = &states[si];
            let old_row = &rows[si * width..(si + 1) * width];
            // Scored above for this child, for every state sharing the parent's last step.
            let after =
                extended[per_last_step(&mut extended_by_step, &mut extended_without_steps, p, old_row[p]).1 as usize];
            let before = calls_after(&steps, &initial, p, old_row[p]);
            let mut signature = old.signature ^ signature_part(p, before.frontier) ^ signature_part(p, after.frontier);
            let mut settled = old.settled + (after.prefix - before.prefix);
            // Parents whose calls are final now are scored whole and shape nothing to come:
            // states that differ only in them have the same future, and only the better counts.
            for &f in &final_after[i] {
                let calls = if f == p { &after } else { calls_after(&steps, &initial, f, old_row[f]) };
                signature ^= signature_part(f, calls.frontier);
                settled += unsettled(&parents[f], models[f], calls.tail, None);
            }
            let mut runner = old.runner;
            let at = match kept.get(&signature) {
                Some(&k) if next_states[k].settled < settled => {
                    // The kept state, now behind, becomes this one's runner if the closer.
                    let beaten = &next_states[k];
                    let its_step = &steps[beaten.last as usize];
                    runner = runner.closer(Runner {
                        behind: settled - beaten.settled,
                        before: its_step.before,
                        child: i as u32,
                        parent: its_step.parent,
                    });
                    k * width
                }
                Some(&k) => {
                    let kept_state = &mut next_states[k];
                    kept_state.runner = kept_state.runner.closer(Runner {
                        behind: kept_state.settled - settled,
                        before: old.last,
                        child: i as u32,
                        parent: p as u32,
                    });
                    continue;
                }
                None => next_rows.len(),
            };
            let step = steps.len() as u32;
            steps.push(Step {
                before: old.last,
                before_same_parent: old_row[p],
                child: i as u32,
                parent: p as u32,
                after,
            });
            let state = State { last: step, settled, rank, signature, runner };
            if at == next_rows.len() {
                next_rows.extend_from_slice(old_row);
                kept.insert(signature, next_states.len());
                next_states.push(state);
            } else {
                next_rows[at..at + width].copy_from_slice(old_row);
                next_states[at / width] = state;
            }
            next_rows[at + p] = step;
        }
        std::mem::swap(&mut states, &mut next_states);
        std::mem::swap(&mut rows, &mut next_rows);
    }
    // Every parent's calls are final now: each state's score is whole.
    let path = |last: u32, choice: &mut [usize]| {
        let mut at = last;
        while at != NONE {
            let step = &steps[at as usize];
            choice[step.child as usize] = step.parent as usize;
            at = step.before;
        }
    };
    let choices: Vec<Vec<usize>> = states
        .iter()
        .map(|s| {
            let mut choice = vec![0; children.len()];
            path(s.last, &mut choice);
            choice
        })
        .collect();
    // The runners, whole: their own path up to where they were merged, the state's after.
    let runners: Vec<(f64, Vec<usize>)> = states
        .iter()
        .zip(&choices)
        .filter(|(s, _)| s.runner.behind.is_finite())
        .map(|(s, choice)| {
            let mut runner = choice.clone();
            path(s.runner.before, &mut runner);
            runner[s.runner.child as usize] = s.runner.parent as usize;
            (s.settled - s.runner.behind, runner)
        })
        .collect();
    let best = (0..states.len())
        .reduce(|a, b| {
            let (sa, sb) = (&states[a], &states[b]);
            if sb.settled > sa.settled || (sb.settled == sa.settled && sb.rank < sa.rank) { b } else { a }
        })
        .expect("the beam keeps at least one state");
    let mut choice = choices[best].clone();
    let polished = polish(parents, &models, &fixed, children, &mut choice);
    let best_total = states[best].settled + polished.gain;
    let assignment = (0..children.len())
        .map(|i| {
            let chosen = choice[i];
            let best_of = |alternatives: &mut dyn Iterator<Item = (f64, &Vec<usize>)>| {
                alternatives
                    .filter(|(_, c)| c[i] != chosen)
                    .map(|(score, _)| score)
                    .fold(best_total + polished.best_other[i], f64::max)
            };
            let probability = |alternative: f64| {
                if alternative.is_finite() { 1.0 / (1.0 + (alternative - best_total).exp()) } else { 1.0 }
            };
            let kept = best_of(&mut states.iter().map(|s| s.settled).zip(&choices));
            let merged = best_of(&mut runners.iter().map(|(score, c)| (*score, c)));
            Decision { parent: chosen, confidence: probability(kept.max(merged)), local_confidence: probability(kept) }
        })
        .collect();
    *buffers = SearchBuffers {
        steps,
        rows,
        next_rows,
        states,
        next_states,
        waiting_by_step,
        extended_by_step,
        extended,
        extensions,
    };
    assignment
}

/// A scored extension of a state as one integer whose order is the search's: best score
/// first, then the lower tie-break rank (closer to the simple rule), then state and parent
/// (deterministic). Sorting these is several times cheaper than sorting tuples.
type ExtensionKey = u128;

fn extension_key(score: f64, rank: u32, state: usize, parent: usize) -> ExtensionKey {
    debug_assert!(state <= usize::from(u16::MAX) && parent <= usize::from(u16::MAX));
    // `f64::total_cmp`'s order as an unsigned integer, inverted so that higher scores sort first.
    let bits = score.to_bits();
    let ascending = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
    u128::from(!ascending) << 64 | u128::from(rank) << 32 | (state as u128) << 16 | parent as u128
}

/// The tie-break rank, state and parent of an [`extension_key`].
fn extension_parts(key: ExtensionKey) -> (u32, usize, usize) {
    ((key >> 32) as u32, (key >> 16) as u16 as usize, key as u16 as usize)
}

/// The joint search's working memory, kept from one problem to the next: its largest buffers
/// run to megabytes, and taking them fresh from the system for every problem (mapping,
/// faulting and zeroing pages) cost a tenth of the search. Bounded by the largest problem's
/// beam, which the beam's work bound caps: at most one step per kept state per child, about
/// 2^20 / candidates steps, each 72 bytes plus 24 in the per-step caches. That is about 50 MB
/// in the worst case (two candidates, 256 children), and a few megabytes in the runs measured.
#[derive(Debug, Default)]
pub struct SearchBuffers {
    steps: Vec<Step>,
    rows: Vec<u32>,
    next_rows: Vec<u32>,
    states: Vec<State>,
    next_states: Vec<State>,
    waiting_by_step: Vec<(u32, f64)>,
    extended_by_step: Vec<(u32, u32)>,
    extended: Vec<ParentCalls>,
    extensions: Vec<ExtensionKey>,
}

/// The entry of a per-child cache for parent `p` whose last step is `last`: by step, or by
/// parent for a parent given nothing yet.
fn per_last_step<'c, T>(by_step: &'c mut [T], without_steps: &'c mut [T], p: usize, last: u32) -> &'c mut T {
    match last {
        NONE => &mut without_steps[p],
        step => &mut by_step[step as usize],
    }
}

/// What [`polish`] gained, and per child the change in score of the best move or swap that
/// gives it another parent (−∞ if none), once no move improves.
struct Polished {
    gain: f64,
    best_other: Vec<f64>,
}

/// Moves and swaps scored per polish before it stops, whatever the gain still to find.
const POLISH_WORK: usize = 20_000;

/// Improves the beam's best assignment by local changes, scored exactly: give one child (or
/// fan-out unit) to another of its candidates, or swap the parents of two. The beam ranks
/// partial assignments by what is known at each child's start, so it may drop the path that
/// ends best when many similar parents wait at once; a few exact moves recover most of that.
fn polish(
    parents: &[ParentSlot<'_>],
    models: &[Model<'_>],
    fixed: &[Vec<Span>],
    children: &[ChildSlot],
    choice: &mut [usize],
) -> Polished {
    let n = children.len();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); parents.len()];
    for (i, &p) in choice.iter().enumerate() {
        members[p].push(i);
    }
    let mut scratch: Vec<Span> = Vec::new();
    // A parent's whole score with the given children: its prefix and, as the search scores
    // a final parent, its ending.
    let mut score_of = |p: usize, given: &[usize], without: Option<usize>, with: Option<usize>| -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&fixed[p]);
        for &i in given.iter().filter(|&&i| Some(i) != without).chain(with.as_ref()) {
            scratch.extend_from_slice(&children[i].calls);
        }
        scratch.sort_unstable_by_key(|c| (c.start, c.end));
        models[p].prefix(parents[p].interval, &scratch) + unsettled(&parents[p], models[p], Tail::of(&scratch), None)
    };
    let mut score: Vec<f64> = (0..parents.len()).map(|p| score_of(p, &members[p], None, None)).collect();
    let mut gain = 0.0;
    let mut work = 0;
    let mut best_other = vec![f64::NEG_INFINITY; n];
    loop {
        let mut improved = false;
        best_other.fill(f64::NEG_INFINITY);
        for i in 0..n {
            let p = choice[i];
            // Give child i to another candidate.
            // Parent p's score without child i: the same for every other candidate.
            let mut without_i = None;
            for &q in children[i].candidates.iter().filter(|&&q| q != p) {
                let new_p = *without_i.get_or_insert_with(|| score_of(p, &members[p], Some(i), None));
                let new_q = score_of(q, &members[q], None, Some(i));
                work += 1;
                let delta = new_p + new_q - score[p] - score[q];
                if delta > POLISH_EPSILON {
                    members[p].retain(|&c| c != i);
                    members[q].push(i);
                    (score[p], score[q], choice[i]) = (new_p, new_q, q);
                    gain += delta;
                    improved = true;
                    break;
                }
                best_other[i] = best_other[i].max(delta);
            }
            let p = choice[i];
            // Swap parents with a child j of another parent that could be i's, and i its.
            for j in 0..n {
                let q = choice[j];
                if q == p || !children[i].candidates.contains(&q) || !children[j].candidates.contains(&p) {
                    continue;
                }
                let (new_p, new_q) =
                    (score_of(p, &members[p], Some(i), Some(j)), score_of(q, &members[q], Some(j), Some(i)));
                work += 1;
                let delta = new_p + new_q - score[p] - score[q];
                if delta > POLISH_EPSILON {
                    members[p].retain(|&c| c != i);
                    members[p].push(j);
                    members[q].retain(|&c| c != j);
                    members[q].push(i);
                    (score[p], score[q], choice[i], choice[j]) = (new_p, new_q, q, p);
                    gain += delta;
                    improved = true;
                    break;
                }
                best_other[i] = best_other[i].max(delta);
                best_other[j] = best_other[j].max(delta);
            }
            if work >= POLISH_WORK {
                break;
            }
        }
        if !improved || work >= POLISH_WORK {
            break;
        }
    }
    Polished { gain, best_other }
}

/// Smallest gain a polishing move must bring (rounding noise is not a gain).
const POLISH_EPSILON: f64 = 1e-9;

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn iv(s: i64, e: i64) -> Span {
        Span { start: s * MS, end: e * MS, kind: 1 }
    }

    #[test]
    fn search_steps_stay_small() {
        // The search's memory bound (see `SearchBuffers`) counts 72 bytes a step.
        assert!(std::mem::size_of::<Step>() <= 72, "{}", std::mem::size_of::<Step>());
    }

    #[test]
    fn fan_out_spread_narrows_to_what_certain_fan_outs_show() {
        // Three calls launched 1 ms apart.
        let fan_out = |s: Nanos| -> Vec<Span> {
            (0..3).map(|k| Span { start: s + 100_000 + k * 1_000_000, end: s + 900_000_000, kind: 7 }).collect()
        };
        let parent = |s: Nanos| Span { start: s, end: s + 1_000_000_000, kind: 1 };
        let mut t = EdgeTiming::default();
        for k in 0..4 {
            t.learn(parent(k * 2_000_000_000), &fan_out(k * 2_000_000_000), true);
        }
        // Eight gaps seen: too few to trust.
        assert_eq!(t.fan_out_spread(7), FAN_OUT_SPREAD);
        // Inferred links never teach launch gaps, however many.
        for k in 4..40 {
            t.learn(parent(k * 2_000_000_000), &fan_out(k * 2_000_000_000), false);
        }
        assert_eq!(t.fan_out_spread(7), FAN_OUT_SPREAD);
        assert!(t.fans_out(7));
        t.learn(parent(0), &fan_out(0), true);
        assert_eq!(t.fan_out_spread(7), 1_250_000);
        // A kind never seen fanned out keeps the default.
        assert_eq!(t.fan_out_spread(8), FAN_OUT_SPREAD);
    }

    #[test]
    fn only_certain_links_show_that_a_kind_is_made_several_at_once() {
        // An agent seen making its calls one after another; then uncertain links put two
        // overlapping calls under one parent (twin parents' calls, wrongly joined).
        let mut t = trained();
        assert!(!t.fans_out(1));
        for k in 0..20 {
            let s = 1_000_000 + k * 10_000;
            t.learn(iv(s, s + 1_200), &[iv(s + 100, s + 600), iv(s + 102, s + 700)], false);
        }
        // Taken as a fan-out, such calls would be given to one parent together from then on,
        // and every such decision would teach it again.
        assert!(!t.fans_out(1));
        t.learn(iv(0, 1_200), &[iv(100, 600), iv(102, 700)], true);
        assert!(t.fans_out(1));
    }

    /// A parent that thinks ~100 ms, then makes two sequential calls with ~5 ms gaps, then
    /// answers ~50 ms after its last call.
    fn trained() -> EdgeTiming {
        let mut t = EdgeTiming::default();
        for k in 0..50 {
            let s = k * 10_000;
            t.learn(iv(s, s + 1_200), &[iv(s + 100, s + 600), iv(s + 605, s + 1_150)], true);
        }
        t
    }

    /// Two overlapping parents on one pod, A then B, each making two of the four calls in the
    /// trained pattern; the simple rule (latest-started) would give every later call to B.
    fn two_interleaved_parents<'a>(
        timing: &'a EdgeTiming,
        empty: &'a EdgeTiming,
    ) -> ([ParentSlot<'a>; 2], Vec<ChildSlot>) {
        let a = ParentSlot { interval: iv(0, 1_200), fixed: vec![], timing, fallback: empty, open: false };
        let b = ParentSlot { interval: iv(300, 1_500), fixed: vec![], timing, fallback: empty, open: false };
        let children = vec![
            ChildSlot { calls: vec![iv(100, 600)], candidates: vec![0] },
            ChildSlot { calls: vec![iv(400, 900)], candidates: vec![1, 0] },
            ChildSlot { calls: vec![iv(605, 1_150)], candidates: vec![1, 0] },
            ChildSlot { calls: vec![iv(905, 1_450)], candidates: vec![1, 0] },
        ];
        ([a, b], children)
    }

    #[test]
    fn joint_assignment_follows_learned_timing() {
        let (timing, empty) = (trained(), EdgeTiming::default());
        let (parents, children) = two_interleaved_parents(&timing, &empty);
        let got: Vec<usize> =
            beam_assign(&parents, &children, 16, &mut SearchBuffers::default()).into_iter().map(|d| d.parent).collect();
        assert_eq!(got, [0, 1, 0, 1]);
    }

    #[test]
    fn polishing_finds_the_better_assignment_by_exact_moves() {
        let (timing, empty) = (trained(), EdgeTiming::default());
        let (parents, children) = two_interleaved_parents(&timing, &empty);
        let models: Vec<Model<'_>> = parents.iter().map(|p| Model::of(p.timing, p.fallback)).collect();
        let fixed = vec![Vec::new(), Vec::new()];
        // The simple rule's answer: every later call to the latest-started parent.
        let mut choice = vec![0, 1, 1, 1];
        let polished = polish(&parents, &models, &fixed, &children, &mut choice);
        assert_eq!(choice, [0, 1, 0, 1]);
        assert!(polished.gain > 1.0, "gain {}", polished.gain);
        // Once polished, no move or swap improves, and child 0 had no other parent to try.
        assert!(polished.best_other.iter().all(|&d| d <= POLISH_EPSILON));
        assert_eq!(polished.best_other[0], f64::NEG_INFINITY);
        // Already the best: nothing changes.
        let again = polish(&parents, &models, &fixed, &children, &mut choice);
        assert_eq!((choice, again.gain), (vec![0, 1, 0, 1], 0.0));
    }

    #[test]
    fn confidence_weighs_alternatives_that_rearrange_several_children() {
        // Two parents on one pod start together. Trained on four shapes equally, either could
        // have made either sequence: a short call then a long one, or long calls only. The
        // runner-up gives three children other parents at once; no single move or swap of
        // the chosen assignment reaches it (each leaves two calls overlapping on one parent),
        // and merging had dropped it from the beam: the children were called near certain.
        let span = |kind: u64| {
            move |offset: i64, s: i64, e: i64| Span { start: (offset + s) * MS, end: (offset + e) * MS, kind }
        };
        let (v, l) = (span(1), span(2));
        let mut t = EdgeTiming::default();
        // Fewer gaps than scores are interpolated at, so the four shapes score alike.
        for k in 0..30 {
            let o = k * 10_000;
            t.learn(iv(o, o + 853), &[v(o, 35, 115), l(o, 195, 794)], true);
            t.learn(iv(o, o + 2_000), &[l(o, 70, 784), l(o, 810, 1_173), l(o, 1_200, 1_913)], true);
            t.learn(iv(o, o + 853), &[l(o, 70, 784)], true);
            t.learn(iv(o, o + 2_000), &[v(o, 35, 115), l(o, 195, 794), l(o, 810, 1_173), l(o, 1_200, 1_913)], true);
        }
        let empty = EdgeTiming::default();
        let parents = [
            ParentSlot { interval: iv(0, 853), fixed: vec![], timing: &t, fallback: &empty, open: false },
            ParentSlot { interval: iv(0, 2_000), fixed: vec![], timing: &t, fallback: &empty, open: false },
        ];
        let children = vec![
            ChildSlot { calls: vec![v(0, 35, 115)], candidates: vec![1, 0] },
            ChildSlot { calls: vec![l(0, 70, 784)], candidates: vec![1, 0] },
            ChildSlot { calls: vec![l(0, 195, 794)], candidates: vec![1, 0] },
            ChildSlot { calls: vec![l(0, 810, 1_173)], candidates: vec![1] },
            ChildSlot { calls: vec![l(0, 1_200, 1_913)], candidates: vec![1] },
        ];
        let got = beam_assign(&parents, &children, 64, &mut SearchBuffers::default());
        let choice: Vec<usize> = got.iter().map(|d| d.parent).collect();
        assert!(choice == [0, 1, 0, 1, 1] || choice == [1, 0, 1, 1, 1], "a consistent assignment: {choice:?}");
        for (i, d) in got.iter().enumerate().take(3) {
            assert!(
                (0.2..0.8).contains(&d.confidence),
                "child {i}: confidence {} for a near-even choice",
                d.confidence
            );
            // Single moves and swaps see no close alternative.
            assert!(d.local_confidence > 0.99, "child {i}: local confidence {}", d.local_confidence);
        }
        // The last two could only be the long parent's.
        assert!(got[3..].iter().all(|d| d.parent == 1 && d.confidence == 1.0 && d.local_confidence == 1.0));
    }

    #[test]
    fn untrained_statistics_fall_back_to_the_rule_order() {
        let empty = EdgeTiming::default();
        let a = ParentSlot { interval: iv(0, 1_000), fixed: vec![], timing: &empty, fallback: &empty, open: false };
        let b = ParentSlot { interval: iv(10, 1_000), fixed: vec![], timing: &empty, fallback: &empty, open: false };
        let children = vec![ChildSlot { calls: vec![iv(20, 30)], candidates: vec![1, 0] }];
        let got = beam_assign(&[a, b], &children, 8, &mut SearchBuffers::default());
        assert_eq!(got[0].parent, 1);
        assert!(got[0].confidence <= 0.5 + 1e-9);
    }

    /// Extension keys sort as (score descending, rank, state, parent) ascending, for every sign
    /// and tie, and give their parts back.
    #[test]
    fn extension_keys_sort_as_the_search_orders() {
        let scores = [-1e300, -52.5, -3.0, -0.0, 0.0, 1.5, f64::NEG_INFINITY, f64::INFINITY];
        let mut items = Vec::new();
        for &score in &scores {
            for rank in [0u32, 7, u32::MAX] {
                for parent in [0, 1, 65_535] {
                    // Distinct states name each item, so the sorted parts show the whole order.
                    items.push((score, rank, 65_535 - items.len(), parent));
                }
            }
        }
        let order = |a: &(f64, u32, usize, usize), b: &(f64, u32, usize, usize)| {
            b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3))
        };
        let mut by_tuple = items.clone();
        by_tuple.sort_by(order);
        let mut by_key: Vec<u128> = items.iter().map(|&(s, r, st, p)| extension_key(s, r, st, p)).collect();
        by_key.sort_unstable();
        let parts: Vec<(u32, usize, usize)> = by_key.iter().map(|&k| extension_parts(k)).collect();
        let expected: Vec<(u32, usize, usize)> = by_tuple.iter().map(|&(_, r, st, p)| (r, st, p)).collect();
        assert_eq!(parts, expected);
    }

    #[test]
    fn cached_logarithms_match() {
        assert!((LN_ALPHA_SEQ - ALPHA_SEQ.ln()).abs() < 1e-12);
        assert!((LN_ALPHA_SEQ_KINDS - (ALPHA_SEQ * KINDS).ln()).abs() < 1e-12);
        let t = trained();
        let (with, without) = (f64::from(t.with_children), f64::from(t.without_children));
        assert!((t.ln_makes_calls(true) - ((with + 1.0) / (with + without + 2.0)).ln()).abs() < 1e-12);
        let first = (f64::from(t.first_kind.count(&token(1, 0, 0))) + ALPHA_SEQ) / (with + ALPHA_SEQ * KINDS);
        assert!((t.ln_first_kind(token(1, 0, 0)) - first.ln()).abs() < 1e-12);
    }

    #[test]
    fn bins_are_symmetric_and_bounded() {
        assert_eq!(bin(0), 0);
        assert_eq!(bin(-1), MAG_BINS);
        assert_eq!(bin(i64::MAX), MAG_BINS - 1);
        assert_eq!(bin(i64::MIN + 1), BINS - 1);
    }

    #[test]
    fn scores_run_smoothly_across_bin_edges_once_samples_are_plenty() {
        let mut h = Histogram::default();
        // Two thirds in the 51.2–102.4 ms bin, a third in the next one up.
        for i in 0..200 {
            h.add((60 + i % 41) * MS);
        }
        for i in 0..100 {
            h.add((110 + i % 81) * MS);
        }
        let edge = 102_400_000;
        // Either side of the edge scores nearly alike (the two bins differ by ln 2).
        assert!((h.log_p(edge - 100_000) - h.log_p(edge + 100_000)).abs() < 0.01);
        // Within a bin, a score leans toward the neighbouring bin's: the lower half of the
        // fuller bin toward the empty one below it, the upper half toward the sparser one above.
        assert!(h.log_p(62 * MS) < h.log_p(72 * MS));
        assert!(h.log_p(72 * MS) > h.log_p(100 * MS));
        assert!(h.log_p(100 * MS) > h.log_p(150 * MS));
        // Few samples: whole bins, as counted.
        let mut sparse = Histogram::default();
        for i in 0..60 {
            sparse.add((60 + i % 41) * MS);
        }
        assert_eq!(sparse.log_p(62 * MS), sparse.log_p(100 * MS));
    }

    #[test]
    fn the_gap_before_a_call_depends_on_whether_it_repeats_the_previous_kind() {
        // A search (kind 1) 60 ms before the first of two LLM calls (kind 2), 5 ms apart.
        let span = |kind: u64| move |s: i64, e: i64| Span { start: s * MS, end: e * MS, kind };
        let (search, llm) = (span(1), span(2));
        let mut t = EdgeTiming::default();
        for k in 0..40 {
            let o = k * 10_000;
            t.learn(iv(o, o + 1_000), &[search(o + 20, o + 40), llm(o + 100, o + 500), llm(o + 505, o + 950)], true);
        }
        let model = Model::Own(&t);
        let parent = iv(0, 1_000);
        let next = |before: Span, call: Span| {
            let mut tail = Tail::default();
            tail.push(model, parent, before);
            let token = token(call.kind, if call.kind == before.kind { 0 } else { 1 }, 0);
            model.next_call(parent, &tail, call, token)
        };
        // After an LLM call, another 5 ms later is usual and 60 ms later is not; after the
        // search, the other way round. One histogram for both would score them alike.
        assert!(next(llm(100, 500), llm(505, 950)) > next(llm(100, 500), llm(560, 950)));
        assert!(next(search(20, 40), llm(100, 500)) > next(search(20, 40), llm(45, 500)));
        assert_eq!(t.sequential_gap_same.total(), 40);
        assert_eq!(t.sequential_gap_change.total(), 40);
    }

    #[test]
    fn a_few_stray_samples_do_not_stretch_the_seen_range() {
        let mut h = Histogram::default();
        for i in 0..300 {
            h.add((100 + i % 101) * MS);
        }
        let inside = h.log_p(190 * MS);
        let empty = |h: &Histogram| ALPHA.ln() - h.ln_total;
        // 240 ms shares a bin (205–410 ms) with seen values but lies beyond 200 ms + 1/16.
        assert!(inside > empty(&h));
        assert_eq!(h.log_p(240 * MS), empty(&h));
        assert!(h.log_p(210 * MS) > empty(&h));
        // Two wrong examples far out (one per 128 samples is left out of the range).
        h.add(1_500 * MS);
        h.add(1_600 * MS);
        assert_eq!(h.log_p(1_550 * MS), empty(&h));
        assert_eq!(h.log_p(240 * MS), empty(&h));
        // Many samples out there are the distribution, not strays.
        for _ in 0..10 {
            h.add(1_600 * MS);
        }
        assert!(h.log_p(1_550 * MS) > empty(&h));
    }
}
