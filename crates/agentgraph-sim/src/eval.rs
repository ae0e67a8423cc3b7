//! Accuracy evaluation: scores an `agentgraph.analysis/v1` report against a simulated cluster's
//! `agentgraph.truth/v1` ground truth (how well the per-request call graphs were reconstructed).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

const TRUTH_SCHEMA: &str = "agentgraph.truth/v1";
const REPORT_SCHEMA: &str = "agentgraph.analysis/v1";

/// Options of [`evaluate`].
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Largest start-time difference, in milliseconds, between a true call and the reported call it matches.
    pub match_tolerance_ms: f64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { match_tolerance_ms: 2.0 }
    }
}

/// Accuracy metrics of one report against one ground truth. Rates are fractions in [0, 1]. A rate over an
/// empty set (parent accuracy when no call matched, say) is undefined: NaN here, `null` in JSON, `n/a` in the
/// table, and it fails any threshold set on it — a report that matches nothing must not pass a CI gate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalResult {
    pub true_calls: usize,
    pub reported_calls: usize,
    pub matched_calls: usize,
    pub true_requests: usize,
    pub reported_requests: usize,
    pub call_recall: f64,
    pub call_precision: f64,
    /// Over matched calls: the reported parent is the match of the true parent (both null counts as correct).
    pub parent_accuracy: f64,
    /// Over true requests: the true root call is matched and reported with a null parent.
    pub root_accuracy: f64,
    /// Over true requests: one reported request holds exactly the matches of the request's calls, nothing else
    /// (exact grouping; parents may differ).
    pub exact_request_rate: f64,
    /// Over true requests: grouped exactly AND every call has its true parent.
    pub exact_tree_rate: f64,
    /// Over exact requests: the reported `stats.fan_out_max` and `stats.depth` equal the truth's.
    pub exact_fan_out_depth_rate: f64,
    /// Mean absolute `duration_ms` error over matched calls whose durations are both known (NaN when none).
    pub latency_mae_ms: f64,
    /// 95th percentile (nearest rank) of the same absolute errors.
    pub latency_p95_error_ms: f64,
    /// Over matched calls: `request_bytes` equal (both null counts as equal).
    pub size_accuracy: f64,
    /// Over matched calls: `status` equal (both null counts as equal).
    pub status_accuracy: f64,
    /// Parent accuracy of the simple rule (latest-started containing call served by the client's pod) applied to
    /// the true grouping: the reference ceiling for timing-only inference.
    pub simple_rule_parent_accuracy: f64,
    /// Parent accuracy of the report over the ambiguous calls (see `ambiguous_calls`).
    pub infer_parent_accuracy: f64,
    /// Matched calls with a non-null true parent for which the simple rule had 2 or more candidates.
    pub ambiguous_calls: usize,
    /// Matched calls reported with a confidence of at least [`CONFIDENT`].
    pub confident_calls: usize,
    /// Parent accuracy over those: how far a high reported confidence can be trusted.
    pub confident_parent_accuracy: f64,
    /// Matched calls whose reported parent is wrong but a twin of the true one: another call of
    /// the same true request, to the same server pod with the same method and path, running at
    /// the same time. Trace context cannot tell such parents apart (Hubble sees the client's
    /// span ids only), so only timing can; these are the ceiling's part of the wrong parents.
    pub twin_parents: usize,
}

/// The reported confidence from which a call counts as confident (the analyzer's certain links
/// are 1.0, a lone containing candidate 0.9, a joint decision 0.9 × its probability).
pub const CONFIDENT: f64 = 0.9;

/// Pass/fail limits on an [`EvalResult`]; `None` means unchecked.
#[derive(Clone, Debug, Default)]
pub struct Thresholds {
    pub min_call_recall: Option<f64>,
    pub min_call_precision: Option<f64>,
    pub min_parent_accuracy: Option<f64>,
    pub min_root_accuracy: Option<f64>,
    pub min_exact_requests: Option<f64>,
    pub min_exact_fan_out_depth: Option<f64>,
    pub min_size_accuracy: Option<f64>,
    pub min_confident_parent_accuracy: Option<f64>,
    pub max_latency_mae_ms: Option<f64>,
}

impl Thresholds {
    /// One message per failed threshold; empty when all pass.
    pub fn check(&self, r: &EvalResult) -> Vec<String> {
        let mins = [
            // What each rate is measured over, to say why it is undefined when that is empty.
            (self.min_call_recall, r.call_recall, "call recall", "--min-call-recall", "true calls"),
            (self.min_call_precision, r.call_precision, "call precision", "--min-call-precision", "reported calls"),
            (self.min_parent_accuracy, r.parent_accuracy, "parent accuracy", "--min-parent-accuracy", "matched calls"),
            (self.min_root_accuracy, r.root_accuracy, "root accuracy", "--min-root-accuracy", "true requests"),
            (
                self.min_exact_requests,
                r.exact_request_rate,
                "exact request rate",
                "--min-exact-requests",
                "true requests",
            ),
            (
                self.min_exact_fan_out_depth,
                r.exact_fan_out_depth_rate,
                "exact fan-out/depth rate",
                "--min-exact-fan-out-depth",
                "requests grouped exactly",
            ),
            (self.min_size_accuracy, r.size_accuracy, "size accuracy", "--min-size-accuracy", "matched calls"),
            (
                self.min_confident_parent_accuracy,
                r.confident_parent_accuracy,
                "confident parent accuracy",
                "--min-confident-parent-accuracy",
                "matched calls with a confidence of 0.9 or more",
            ),
        ];
        let mut out = Vec::new();
        for (limit, value, name, flag, over) in mins {
            let Some(limit) = limit else { continue };
            if value.is_nan() {
                out.push(format!(
                    "{name} is undefined (it is measured over {over}, and there are none), so {flag} fails"
                ));
            } else if value < limit {
                out.push(format!("{name} {value:.4} is below {flag} {limit}"));
            }
        }
        if let Some(limit) = self.max_latency_mae_ms {
            let mae = r.latency_mae_ms;
            if mae.is_nan() {
                out.push(
                    "latency mae is undefined (no matched call has a known duration), so --max-latency-mae-ms fails"
                        .into(),
                );
            } else if mae > limit {
                out.push(format!("latency mae {mae:.3} ms is above --max-latency-mae-ms {limit}"));
            }
        }
        out
    }
}

enum Cell {
    Count(usize),
    Rate(f64),
    Ms(f64),
}

impl EvalResult {
    /// A readable aligned table, one metric per line after a header line.
    pub fn table(&self) -> String {
        let confident_label = format!("confident calls (>= {CONFIDENT})");
        let rows = [
            ("true calls", Cell::Count(self.true_calls)),
            ("reported calls", Cell::Count(self.reported_calls)),
            ("matched calls", Cell::Count(self.matched_calls)),
            ("true requests", Cell::Count(self.true_requests)),
            ("reported requests", Cell::Count(self.reported_requests)),
            ("call recall", Cell::Rate(self.call_recall)),
            ("call precision", Cell::Rate(self.call_precision)),
            ("parent accuracy", Cell::Rate(self.parent_accuracy)),
            ("wrong parents: a twin of the true one", Cell::Count(self.twin_parents)),
            ("root accuracy", Cell::Rate(self.root_accuracy)),
            ("exact requests", Cell::Rate(self.exact_request_rate)),
            ("exact trees", Cell::Rate(self.exact_tree_rate)),
            ("exact fan-out/depth", Cell::Rate(self.exact_fan_out_depth_rate)),
            ("latency mae", Cell::Ms(self.latency_mae_ms)),
            ("latency p95 error", Cell::Ms(self.latency_p95_error_ms)),
            ("size accuracy", Cell::Rate(self.size_accuracy)),
            ("status accuracy", Cell::Rate(self.status_accuracy)),
            ("simple-rule parent accuracy", Cell::Rate(self.simple_rule_parent_accuracy)),
            ("infer parent accuracy", Cell::Rate(self.infer_parent_accuracy)),
            ("ambiguous calls", Cell::Count(self.ambiguous_calls)),
            (confident_label.as_str(), Cell::Count(self.confident_calls)),
            ("confident parent accuracy", Cell::Rate(self.confident_parent_accuracy)),
        ];
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0).max("metric".len());
        let mut out = format!("{:<width$}  {:>12}\n", "metric", "value");
        for (name, cell) in rows {
            let value = match cell {
                Cell::Count(n) => n.to_string(),
                Cell::Rate(r) | Cell::Ms(r) if r.is_nan() => "n/a".to_string(),
                Cell::Rate(r) => format!("{:.2}%", r * 100.0),
                Cell::Ms(ms) => format!("{ms:.3} ms"),
            };
            out.push_str(&format!("{name:<width$}  {value:>12}\n"));
        }
        out
    }
}

/// Scores `report` (`agentgraph.analysis/v1`) against `truth` (`agentgraph.truth/v1`).
pub fn evaluate(report: &Value, truth: &Value, opts: &EvalOptions) -> Result<EvalResult, String> {
    let tol_ms = opts.match_tolerance_ms;
    if !tol_ms.is_finite() || tol_ms < 0.0 {
        return Err(format!("match tolerance must be a finite non-negative number of milliseconds, got {tol_ms}"));
    }
    let tol_ns = (tol_ms * 1e6).round() as i128;
    let truth = parse_doc(truth, Kind::Truth)?;
    let report = parse_doc(report, Kind::Report)?;
    let shapes = truth.iter().map(tree_shape).collect::<Result<Vec<_>, _>>()?;
    let (t2r, r2t) = match_calls(&truth, &report, tol_ns);

    // Whether the reported parent of reported call (rj, rc) is the match of the true parent of true call (ti, ci).
    let parent_ok = |ti: usize, ci: usize, rj: usize, rc: usize| -> bool {
        let true_parent = truth[ti].calls[ci].parent;
        let reported_parent = report[rj].calls[rc].parent;
        match (true_parent, reported_parent) {
            (ParentRef::Root, ParentRef::Root) => true,
            (ParentRef::Call(tp), ParentRef::Call(rp)) => t2r[ti][tp] == Some((rj, rp)),
            _ => false,
        }
    };

    // Whether true call `other` of request `ti` is a twin of its call `parent` (see
    // `EvalResult::twin_parents`).
    let twins = |ti: usize, parent: usize, other: usize| -> bool {
        let (a, b) = (&truth[ti].calls[parent], &truth[ti].calls[other]);
        parent != other
            && a.server == b.server
            && a.server_pod == b.server_pod
            && a.method == b.method
            && a.path == b.path
            && i128::from(a.start) < b.end_or_open()
            && i128::from(b.start) < a.end_or_open()
    };
    let twin_parent = |ti: usize, ci: usize, rj: usize, rc: usize| -> bool {
        match (truth[ti].calls[ci].parent, report[rj].calls[rc].parent) {
            (ParentRef::Call(tp), ParentRef::Call(rp)) => {
                matches!(r2t[rj][rp], Some((tj, tq)) if tj == ti && twins(ti, tp, tq))
            }
            _ => false,
        }
    };

    let true_calls: usize = truth.iter().map(|r| r.calls.len()).sum();
    let reported_calls: usize = report.iter().map(|r| r.calls.len()).sum();
    let mut matched = 0usize;
    let mut parent_correct = 0usize;
    let mut size_equal = 0usize;
    let mut status_equal = 0usize;
    let mut latency_errors: Vec<f64> = Vec::new();
    let mut simple_correct = 0usize;
    let mut ambiguous = 0usize;
    let mut ambiguous_correct = 0usize;
    let mut confident = 0usize;
    let mut confident_correct = 0usize;
    let mut roots_correct = 0usize;
    let mut exact = 0usize;
    let mut exact_trees = 0usize;
    let mut exact_shape_equal = 0usize;
    let mut twin_parents = 0usize;

    for (ti, treq) in truth.iter().enumerate() {
        let rule = simple_rule(treq);
        for (ci, call) in treq.calls.iter().enumerate() {
            let (predicted, candidates) = rule[ci];
            let predicted = predicted.map_or(ParentRef::Root, ParentRef::Call);
            if predicted == call.parent {
                simple_correct += 1;
            }
            let Some((rj, rc)) = t2r[ti][ci] else { continue };
            let rcall = &report[rj].calls[rc];
            matched += 1;
            let ok = parent_ok(ti, ci, rj, rc);
            if ok {
                parent_correct += 1;
            } else if twin_parent(ti, ci, rj, rc) {
                twin_parents += 1;
            }
            if call.parent != ParentRef::Root && candidates >= 2 {
                ambiguous += 1;
                if ok {
                    ambiguous_correct += 1;
                }
            }
            if rcall.confidence.is_some_and(|c| c >= CONFIDENT) {
                confident += 1;
                if ok {
                    confident_correct += 1;
                }
            }
            if call.request_bytes == rcall.request_bytes {
                size_equal += 1;
            }
            if call.status == rcall.status {
                status_equal += 1;
            }
            if let (Some(t), Some(r)) = (call.duration_ms, rcall.duration_ms) {
                latency_errors.push((t - r).abs());
            }
        }

        let shape = &shapes[ti];
        if let Some((rj, rc)) = t2r[ti][shape.root]
            && report[rj].calls[rc].parent == ParentRef::Root
        {
            roots_correct += 1;
        }

        let mut target: Option<usize> = None;
        let mut grouped = !treq.calls.is_empty();
        let mut tree_ok = true;
        for (ci, m) in t2r[ti].iter().enumerate() {
            let Some((rj, rc)) = *m else {
                grouped = false;
                break;
            };
            if *target.get_or_insert(rj) != rj {
                grouped = false;
                break;
            }
            tree_ok &= parent_ok(ti, ci, rj, rc);
        }
        if let Some(rj) = target
            && grouped
            && r2t[rj].iter().all(|m| matches!(m, Some((t, _)) if *t == ti))
        {
            exact += 1;
            if tree_ok {
                exact_trees += 1;
            }
            let rreq = &report[rj];
            if rreq.stats_fan_out == Some(shape.fan_out as i128) && rreq.stats_depth == Some(shape.depth as i128) {
                exact_shape_equal += 1;
            }
        }
    }

    latency_errors.sort_by(f64::total_cmp);
    let latency_mae_ms = if latency_errors.is_empty() {
        f64::NAN
    } else {
        latency_errors.iter().sum::<f64>() / latency_errors.len() as f64
    };
    let latency_p95_error_ms = if latency_errors.is_empty() {
        f64::NAN
    } else {
        let rank = (0.95 * latency_errors.len() as f64).ceil() as usize;
        latency_errors[rank.clamp(1, latency_errors.len()) - 1]
    };

    Ok(EvalResult {
        true_calls,
        reported_calls,
        matched_calls: matched,
        true_requests: truth.len(),
        reported_requests: report.len(),
        call_recall: ratio(matched, true_calls),
        call_precision: ratio(matched, reported_calls),
        parent_accuracy: ratio(parent_correct, matched),
        root_accuracy: ratio(roots_correct, truth.len()),
        exact_request_rate: ratio(exact, truth.len()),
        exact_tree_rate: ratio(exact_trees, truth.len()),
        exact_fan_out_depth_rate: ratio(exact_shape_equal, exact),
        latency_mae_ms,
        latency_p95_error_ms,
        size_accuracy: ratio(size_equal, matched),
        status_accuracy: ratio(status_equal, matched),
        simple_rule_parent_accuracy: ratio(simple_correct, true_calls),
        infer_parent_accuracy: ratio(ambiguous_correct, ambiguous),
        ambiguous_calls: ambiguous,
        confident_calls: confident,
        confident_parent_accuracy: ratio(confident_correct, confident),
        twin_parents,
    })
}

/// `n / d`, undefined (NaN) over an empty set.
fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { f64::NAN } else { n as f64 / d as f64 }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParentRef {
    /// No parent (a root call).
    Root,
    /// Index of the parent call within the same request.
    Call(usize),
    /// A parent id that names no call of the request (only accepted in reports).
    Unknown,
}

#[derive(Clone, Debug)]
struct Call {
    parent: ParentRef,
    client: String,
    server: String,
    method: String,
    path: String,
    client_pod: Option<String>,
    server_pod: Option<String>,
    status: Option<i128>,
    start: i64,
    duration_ms: Option<f64>,
    request_bytes: Option<i128>,
    /// Reports only.
    confidence: Option<f64>,
}

#[derive(Clone, Debug)]
struct Req {
    id: String,
    calls: Vec<Call>,
    stats_depth: Option<i128>,
    stats_fan_out: Option<i128>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Truth,
    Report,
}

fn parse_doc(doc: &Value, kind: Kind) -> Result<Vec<Req>, String> {
    let (name, schema) = match kind {
        Kind::Truth => ("truth", TRUTH_SCHEMA),
        Kind::Report => ("report", REPORT_SCHEMA),
    };
    let obj = doc.as_object().ok_or_else(|| format!("{name}: document is not a json object"))?;
    match obj.get("schema") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == schema => {}
        Some(Value::String(s)) => return Err(format!("{name}: unexpected schema {s:?}, expected {schema:?}")),
        Some(_) => return Err(format!("{name}: field \"schema\" is not a string")),
    }
    let requests = match obj.get("requests") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(format!("{name}: field \"requests\" is not an array")),
        None => return Err(format!("{name}: missing field \"requests\"")),
    };
    let mut out = Vec::with_capacity(requests.len());
    for (i, rv) in requests.iter().enumerate() {
        let ctx = format!("{name}: requests[{i}]");
        let ro = rv.as_object().ok_or_else(|| format!("{ctx}: not a json object"))?;
        let id = opt_str(ro, "id", &ctx)?.unwrap_or_else(|| format!("#{i}"));
        let ctx = format!("{name}: request {id:?}");
        let calls_v = match ro.get("calls") {
            Some(Value::Array(a)) => a,
            Some(_) => return Err(format!("{ctx}: field \"calls\" is not an array")),
            None => return Err(format!("{ctx}: missing field \"calls\"")),
        };
        let mut ids: Vec<String> = Vec::with_capacity(calls_v.len());
        let mut parent_ids: Vec<Option<String>> = Vec::with_capacity(calls_v.len());
        let mut calls = Vec::with_capacity(calls_v.len());
        for (j, cv) in calls_v.iter().enumerate() {
            let cctx = format!("{ctx}: calls[{j}]");
            let co = cv.as_object().ok_or_else(|| format!("{cctx}: not a json object"))?;
            ids.push(req_str(co, "id", &cctx)?);
            parent_ids.push(opt_str(co, "parent", &cctx)?);
            let start_s = req_str(co, "start", &cctx)?;
            let start = parse_rfc3339_ns(&start_s).map_err(|e| format!("{cctx}: field \"start\": {e}"))?;
            let duration_ms = opt_f64(co, "duration_ms", &cctx)?;
            if kind == Kind::Truth
                && let Some(d) = duration_ms
                && d < 0.0
            {
                return Err(format!("{cctx}: negative duration_ms {d}"));
            }
            calls.push(Call {
                parent: ParentRef::Root,
                client: req_str(co, "client", &cctx)?,
                server: req_str(co, "server", &cctx)?,
                method: req_str(co, "method", &cctx)?,
                path: req_str(co, "path", &cctx)?,
                client_pod: opt_str(co, "client_pod", &cctx)?,
                server_pod: opt_str(co, "server_pod", &cctx)?,
                status: opt_int(co, "status", &cctx)?,
                start,
                duration_ms,
                request_bytes: opt_int(co, "request_bytes", &cctx)?,
                confidence: opt_f64(co, "confidence", &cctx)?,
            });
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
        for (j, cid) in ids.iter().enumerate() {
            if index.insert(cid.as_str(), j).is_some() {
                return Err(format!("{ctx}: duplicate call id {cid:?}"));
            }
        }
        for (j, pid) in parent_ids.iter().enumerate() {
            let Some(pid) = pid else { continue };
            calls[j].parent = match index.get(pid.as_str()) {
                Some(&p) => ParentRef::Call(p),
                None if kind == Kind::Report => ParentRef::Unknown,
                None => {
                    return Err(format!(
                        "{ctx}: call {:?} has parent {pid:?} which is not a call of the request",
                        ids[j]
                    ));
                }
            };
        }
        let (stats_depth, stats_fan_out) = match ro.get("stats") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(so)) => {
                let sctx = format!("{ctx}: stats");
                (opt_int(so, "depth", &sctx)?, opt_int(so, "fan_out_max", &sctx)?)
            }
            Some(_) => return Err(format!("{ctx}: field \"stats\" is not a json object")),
        };
        out.push(Req { id, calls, stats_depth, stats_fan_out });
    }
    Ok(out)
}

fn req_str(o: &Map<String, Value>, key: &str, ctx: &str) -> Result<String, String> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{ctx}: field \"{key}\" is not a string")),
        None => Err(format!("{ctx}: missing field \"{key}\"")),
    }
}

fn opt_str(o: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{ctx}: field \"{key}\" is not a string or null")),
    }
}

fn opt_int(o: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<i128>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .map(Some)
            .ok_or_else(|| format!("{ctx}: field \"{key}\" is not an integer")),
        Some(_) => Err(format!("{ctx}: field \"{key}\" is not an integer or null")),
    }
}

fn opt_f64(o: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<f64>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| format!("{ctx}: field \"{key}\" is not finite")),
        Some(_) => Err(format!("{ctx}: field \"{key}\" is not a number or null")),
    }
}

/// Shape of a true request's call tree.
struct Shape {
    root: usize,
    depth: usize,
    fan_out: usize,
}

/// Validates a true request's tree (exactly one root, every call reachable from it) and measures it.
fn tree_shape(req: &Req) -> Result<Shape, String> {
    let roots: Vec<usize> =
        req.calls.iter().enumerate().filter(|(_, c)| c.parent == ParentRef::Root).map(|(i, _)| i).collect();
    let [root] = roots[..] else {
        return Err(format!("truth: request {:?} has {} root calls, expected exactly one", req.id, roots.len()));
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); req.calls.len()];
    for (i, c) in req.calls.iter().enumerate() {
        if let ParentRef::Call(p) = c.parent {
            children[p].push(i);
        }
    }
    let fan_out = children.iter().map(Vec::len).max().unwrap_or(0);
    let mut depth_of = vec![0usize; req.calls.len()];
    depth_of[root] = 1;
    let mut stack = vec![root];
    while let Some(i) = stack.pop() {
        for &ch in &children[i] {
            if depth_of[ch] == 0 {
                depth_of[ch] = depth_of[i] + 1;
                stack.push(ch);
            }
        }
    }
    if let Some(unreached) = depth_of.iter().position(|&d| d == 0) {
        return Err(format!(
            "truth: request {:?}: call #{unreached} is not connected to the root call (parent cycle)",
            req.id
        ));
    }
    let depth = depth_of.iter().copied().max().unwrap_or(0);
    Ok(Shape { root, depth, fan_out })
}

/// (request index, call index).
type CallRef = (usize, usize);
type CallMap = Vec<Vec<Option<CallRef>>>;

/// Matches true and reported calls one-to-one per (client, server, method, path), greedily by smallest start
/// difference within `tol_ns`. Returns the true→reported and reported→true maps.
fn match_calls(truth: &[Req], report: &[Req], tol_ns: i128) -> (CallMap, CallMap) {
    type Side = Vec<(i64, CallRef)>;
    let mut groups: BTreeMap<(&str, &str, &str, &str), (Side, Side)> = BTreeMap::new();
    for (ri, req) in truth.iter().enumerate() {
        for (ci, c) in req.calls.iter().enumerate() {
            let key = (c.client.as_str(), c.server.as_str(), c.method.as_str(), c.path.as_str());
            groups.entry(key).or_default().0.push((c.start, (ri, ci)));
        }
    }
    for (ri, req) in report.iter().enumerate() {
        for (ci, c) in req.calls.iter().enumerate() {
            let key = (c.client.as_str(), c.server.as_str(), c.method.as_str(), c.path.as_str());
            groups.entry(key).or_default().1.push((c.start, (ri, ci)));
        }
    }
    let mut t2r: CallMap = truth.iter().map(|r| vec![None; r.calls.len()]).collect();
    let mut r2t: CallMap = report.iter().map(|r| vec![None; r.calls.len()]).collect();
    for (_, (mut ts, mut rs)) in groups {
        if ts.is_empty() || rs.is_empty() {
            continue;
        }
        ts.sort_unstable();
        rs.sort_unstable();
        let mut pairs: Vec<(i128, usize, usize)> = Vec::new();
        for (a, &(tstart, _)) in ts.iter().enumerate() {
            let lo = i128::from(tstart) - tol_ns;
            let first = rs.partition_point(|&(s, _)| i128::from(s) < lo);
            for (b, &(rstart, _)) in rs.iter().enumerate().skip(first) {
                let diff = i128::from(rstart) - i128::from(tstart);
                if diff > tol_ns {
                    break;
                }
                pairs.push((diff.abs(), a, b));
            }
        }
        pairs.sort_unstable();
        let mut t_used = vec![false; ts.len()];
        let mut r_used = vec![false; rs.len()];
        for (_, a, b) in pairs {
            if t_used[a] || r_used[b] {
                continue;
            }
            t_used[a] = true;
            r_used[b] = true;
            let (tr, tc) = ts[a].1;
            let (rr, rc) = rs[b].1;
            t2r[tr][tc] = Some((rr, rc));
            r2t[rr][rc] = Some((tr, tc));
        }
    }
    (t2r, r2t)
}

fn duration_ns(ms: f64) -> i128 {
    (ms * 1e6).round() as i128
}

impl Call {
    /// When the call ended, in nanoseconds; never, for a call without a known duration (it may
    /// still contain anything that started after it).
    fn end_or_open(&self) -> i128 {
        self.duration_ms.map_or(i128::MAX, |d| i128::from(self.start) + duration_ns(d))
    }
}

/// The simple parent rule on a true request: for each call, (predicted parent index, number of candidates).
/// Candidates are other calls of the request served by the call's client pod whose interval contains the call's.
fn simple_rule(req: &Req) -> Vec<(Option<usize>, usize)> {
    let mut by_server_pod: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in req.calls.iter().enumerate() {
        if let Some(pod) = &c.server_pod {
            by_server_pod.entry(pod.as_str()).or_default().push(i);
        }
    }
    req.calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let Some(list) = c.client_pod.as_deref().and_then(|pod| by_server_pod.get(pod)) else {
                return (None, 0);
            };
            let c_start = i128::from(c.start);
            let c_end = c.duration_ms.map_or(c_start, |d| c_start + duration_ns(d));
            let mut best: Option<usize> = None;
            let mut count = 0usize;
            for &p in list {
                if p == i {
                    continue;
                }
                let pc = &req.calls[p];
                if i128::from(pc.start) <= c_start && pc.end_or_open() >= c_end {
                    count += 1;
                    // `list` is in listing order, so `>=` makes the later-listed call win ties.
                    if best.is_none_or(|b| pc.start >= req.calls[b].start) {
                        best = Some(p);
                    }
                }
            }
            (best, count)
        })
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` into nanoseconds since the Unix epoch.
fn parse_rfc3339_ns(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let bad = || format!("invalid timestamp {s:?}, expected YYYY-MM-DDTHH:MM:SS[.fraction]Z");
    let num = |from: usize, len: usize| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(from..from + len)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let sep = |at: usize, want: &[u8]| b.get(at).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return Err(bad());
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2))
    else {
        return Err(bad());
    };
    let mut i = 19;
    let mut frac = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let first = i;
        let mut digits = 0u32;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if digits < 9 {
                frac = frac * 10 + i64::from(c - b'0');
                digits += 1;
            }
            i += 1;
        }
        if i == first {
            return Err(bad());
        }
        frac *= 10i64.pow(9 - digits);
    }
    if !sep(i, b"Zz") || i + 1 != b.len() {
        return Err(bad());
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("invalid timestamp {s:?}: month out of range")),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(format!("invalid timestamp {s:?}: field out of range"));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(frac))
        .ok_or_else(|| format!("timestamp {s:?} is out of the representable range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A time stamp `us` microseconds after 2026-11-25T10:00:00Z (less than a minute).
    fn ts(us: i64) -> String {
        format!("2026-11-25T10:00:{:02}.{:09}Z", us / 1_000_000, (us % 1_000_000) * 1000)
    }

    /// A true call; agents are the pods without their `-N` suffix.
    fn tc(
        id: &str,
        parent: Option<&str>,
        cpod: &str,
        spod: &str,
        path: &str,
        start_ms: i64,
        dur: Option<f64>,
    ) -> Value {
        let agent = |pod: &str| pod.rsplit_once('-').map_or(pod, |(a, _)| a).to_string();
        json!({
            "id": id, "parent": parent, "client": agent(cpod), "server": agent(spod),
            "client_pod": cpod, "server_pod": spod, "method": "POST", "path": path,
            "status": dur.map(|_| 200), "start": ts(start_ms * 1000), "duration_ms": dur,
            "request_bytes": 100, "response_bytes": 50,
        })
    }

    fn truth_doc(requests: Vec<(&str, &str, Vec<Value>)>) -> Value {
        let requests: Vec<Value> =
            requests.into_iter().map(|(id, root, calls)| json!({"id": id, "root": root, "calls": calls})).collect();
        json!({"schema": TRUTH_SCHEMA, "scenario": "test", "seed": 7, "correlation": "trace_context",
               "requests": requests})
    }

    /// A report that reconstructs `truth` perfectly.
    fn to_report(truth: &Value) -> Value {
        let parsed = parse_doc(truth, Kind::Truth).unwrap();
        let mut requests = Vec::new();
        for (tr, pr) in truth["requests"].as_array().unwrap().iter().zip(&parsed) {
            let shape = tree_shape(pr).unwrap();
            let calls: Vec<Value> = tr["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    let o = c.as_object_mut().unwrap();
                    o.remove("client_pod");
                    o.remove("server_pod");
                    o.insert("confidence".into(), json!(1.0));
                    c
                })
                .collect();
            requests.push(json!({
                "id": tr["id"], "correlation": "trace_context", "root": tr["root"],
                "start": calls[0]["start"], "duration_ms": calls[0]["duration_ms"], "calls": calls,
                "stats": {"calls": pr.calls.len(), "depth": shape.depth, "agents": 0, "fan_out_max": shape.fan_out,
                          "fan_out_concurrent_max": shape.fan_out, "context_bytes": 0, "critical_path_ms": 0.0},
            }));
        }
        json!({"schema": REPORT_SCHEMA, "input": {}, "requests": requests, "edges": [], "agents": []})
    }

    /// r0: gateway → orchestrator → two workers, one worker → search (6 calls with r1).
    fn base_truth() -> Value {
        truth_doc(vec![
            (
                "r0",
                "agents/orch",
                vec![
                    tc("c0", None, "ingress/gw-1", "agents/orch-1", "/v1/task", 0, Some(1000.0)),
                    tc("c1", Some("c0"), "agents/orch-1", "agents/worker-1", "/v1/work", 10, Some(300.0)),
                    tc("c2", Some("c0"), "agents/orch-1", "agents/worker-2", "/v1/work", 20, Some(400.0)),
                    tc("c3", Some("c1"), "agents/worker-1", "tools/search-1", "/search", 50, Some(100.0)),
                ],
            ),
            (
                "r1",
                "agents/orch",
                vec![
                    tc("c0", None, "ingress/gw-1", "agents/orch-2", "/v1/task", 2000, Some(500.0)),
                    tc("c1", Some("c0"), "agents/orch-2", "agents/worker-1", "/v1/work", 2100, None),
                ],
            ),
        ])
    }

    fn eval(report: &Value, truth: &Value) -> EvalResult {
        evaluate(report, truth, &EvalOptions::default()).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn identical_report_scores_perfectly() {
        let truth = base_truth();
        let r = eval(&to_report(&truth), &truth);
        assert_eq!((r.true_calls, r.reported_calls, r.matched_calls), (6, 6, 6));
        assert_eq!((r.true_requests, r.reported_requests), (2, 2));
        for rate in [
            r.call_recall,
            r.call_precision,
            r.parent_accuracy,
            r.root_accuracy,
            r.exact_request_rate,
            r.exact_fan_out_depth_rate,
            r.size_accuracy,
            r.status_accuracy,
            r.simple_rule_parent_accuracy,
            r.confident_parent_accuracy,
        ] {
            assert_eq!(rate, 1.0, "{r:?}");
        }
        assert!(r.infer_parent_accuracy.is_nan(), "no ambiguous calls: {r:?}");
        assert_eq!(r.latency_mae_ms, 0.0);
        assert_eq!(r.latency_p95_error_ms, 0.0);
        assert_eq!(r.ambiguous_calls, 0);
        assert_eq!(r.confident_calls, r.matched_calls);
        assert!(Thresholds::default().check(&r).is_empty());
        let table = r.table();
        assert!(table.starts_with("metric"));
        assert!(table.contains("100.00%"));
        assert!(table.contains("0.000 ms"));
        assert_eq!(table.lines().count(), 23);
        assert_eq!(r.twin_parents, 0);
    }

    #[test]
    fn starts_match_within_tolerance_only() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        for req in report["requests"].as_array_mut().unwrap() {
            for call in req["calls"].as_array_mut().unwrap() {
                let start = parse_rfc3339_ns(call["start"].as_str().unwrap()).unwrap();
                let base = parse_rfc3339_ns(&ts(0)).unwrap();
                call["start"] = json!(ts((start - base) / 1000 + 3));
            }
        }
        assert_eq!(eval(&report, &truth).call_recall, 1.0);
        let r = evaluate(&report, &truth, &EvalOptions { match_tolerance_ms: 0.001 }).unwrap();
        assert_eq!((r.matched_calls, r.call_recall, r.call_precision), (0, 0.0, 0.0));
    }

    /// Two calls of one request to the same worker pod at once, each making one call: their
    /// children swapped are wrong parents that are twins of the true ones. A wrong parent on
    /// another pod, or one that ran at another time, is not.
    #[test]
    fn twin_parents_are_counted_apart() {
        let truth = truth_doc(vec![(
            "r0",
            "agents/orch",
            vec![
                tc("c0", None, "ingress/gw-1", "agents/orch-1", "/v1/task", 0, Some(5000.0)),
                tc("c1", Some("c0"), "agents/orch-1", "agents/worker-1", "/v1/work", 10, Some(300.0)),
                tc("c2", Some("c0"), "agents/orch-1", "agents/worker-1", "/v1/work", 11, Some(400.0)),
                tc("c3", Some("c1"), "agents/worker-1", "tools/search-1", "/search", 50, Some(100.0)),
                tc("c4", Some("c2"), "agents/worker-1", "tools/search-1", "/search", 52, Some(100.0)),
                tc("c5", Some("c0"), "agents/orch-1", "agents/worker-1", "/v1/work", 2000, Some(300.0)),
                tc("c6", Some("c0"), "agents/orch-1", "agents/worker-2", "/v1/work", 12, Some(300.0)),
            ],
        )]);
        let mut report = to_report(&truth);
        report["requests"][0]["calls"][3]["parent"] = json!("c2");
        report["requests"][0]["calls"][4]["parent"] = json!("c1");
        let r = eval(&report, &truth);
        assert!(close(r.parent_accuracy, 5.0 / 7.0), "{r:?}");
        assert_eq!(r.twin_parents, 2);
        // c4's parent on the same pod but later (c5), and on another pod (c6): wrong, not twins.
        report["requests"][0]["calls"][4]["parent"] = json!("c5");
        assert_eq!(eval(&report, &truth).twin_parents, 1);
        report["requests"][0]["calls"][4]["parent"] = json!("c6");
        assert_eq!(eval(&report, &truth).twin_parents, 1);
        assert!(eval(&report, &truth).table().contains("wrong parents: a twin of the true one"));
    }

    #[test]
    fn wrong_parent_lowers_parent_accuracy_and_exact_rate() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        report["requests"][0]["calls"][3]["parent"] = json!("c2");
        let r = eval(&report, &truth);
        assert!(close(r.parent_accuracy, 5.0 / 6.0), "{r:?}");
        assert_eq!(r.exact_request_rate, 1.0);
        assert_eq!(r.exact_tree_rate, 0.5);
        assert_eq!(r.root_accuracy, 1.0);
        assert_eq!(r.call_recall, 1.0);

        let mut report = to_report(&truth);
        report["requests"][1]["calls"][0]["parent"] = json!("c1");
        let r = eval(&report, &truth);
        assert_eq!(r.root_accuracy, 0.5);
        assert!(close(r.parent_accuracy, 5.0 / 6.0));

        let mut report = to_report(&truth);
        report["requests"][0]["calls"][1]["parent"] = json!("nope");
        assert!(close(eval(&report, &truth).parent_accuracy, 5.0 / 6.0));
    }

    #[test]
    fn confident_parent_accuracy_counts_only_calls_reported_confident() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        // A wrong parent reported as a coin flip, and one reported as near certain.
        report["requests"][0]["calls"][3]["parent"] = json!("c2");
        report["requests"][0]["calls"][3]["confidence"] = json!(0.45);
        let r = eval(&report, &truth);
        assert_eq!((r.confident_calls, r.confident_parent_accuracy), (5, 1.0), "{r:?}");
        report["requests"][0]["calls"][2]["parent"] = json!("c1");
        report["requests"][0]["calls"][2]["confidence"] = json!(0.9);
        let r = eval(&report, &truth);
        assert_eq!(r.confident_calls, 5);
        assert!(close(r.confident_parent_accuracy, 4.0 / 5.0), "{r:?}");
        assert!(r.table().contains("confident parent accuracy"));
        let strict = Thresholds { min_confident_parent_accuracy: Some(0.9), ..Thresholds::default() };
        assert_eq!(strict.check(&r).len(), 1, "{:?}", strict.check(&r));
    }

    #[test]
    fn missing_reported_call_lowers_recall_only() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        report["requests"][0]["calls"].as_array_mut().unwrap().pop();
        let r = eval(&report, &truth);
        assert_eq!(r.matched_calls, 5);
        assert!(close(r.call_recall, 5.0 / 6.0));
        assert_eq!(r.call_precision, 1.0);
        assert_eq!(r.exact_request_rate, 0.5);
        assert_eq!(r.parent_accuracy, 1.0);
    }

    #[test]
    fn extra_reported_call_lowers_precision() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        let extra = json!({"id": "c9", "parent": "c1", "client": "agents/worker", "server": "tools/search",
            "method": "POST", "path": "/search", "status": 200, "start": ts(700_000), "duration_ms": 5.0,
            "request_bytes": 1, "response_bytes": 1, "confidence": 0.5});
        report["requests"][0]["calls"].as_array_mut().unwrap().push(extra);
        let r = eval(&report, &truth);
        assert_eq!(r.call_recall, 1.0);
        assert!(close(r.call_precision, 6.0 / 7.0));
        assert_eq!(r.exact_request_rate, 0.5);
    }

    #[test]
    fn latency_size_and_status_errors() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        report["requests"][0]["calls"][1]["duration_ms"] = json!(310.0);
        report["requests"][0]["calls"][2]["request_bytes"] = json!(null);
        report["requests"][0]["calls"][3]["status"] = json!(500);
        let r = eval(&report, &truth);
        // Five calls have both durations known: errors 0, 10, 0, 0, 0.
        assert!(close(r.latency_mae_ms, 2.0));
        assert!(close(r.latency_p95_error_ms, 10.0));
        assert!(close(r.size_accuracy, 5.0 / 6.0));
        assert!(close(r.status_accuracy, 5.0 / 6.0));
        let msgs = Thresholds { max_latency_mae_ms: Some(1.0), ..Default::default() }.check(&r);
        assert_eq!(msgs, vec!["latency mae 2.000 ms is above --max-latency-mae-ms 1".to_string()]);
    }

    #[test]
    fn simple_rule_misses_callback_overlap() {
        // r0: orch-1 serves the root and, overlapping it, a planner callback; its search call belongs to the
        // root but the simple rule picks the later-started callback. r1 overlaps r0 on orch-1 but is another
        // request, so it never competes.
        let truth = truth_doc(vec![
            (
                "r0",
                "agents/orch",
                vec![
                    tc("c0", None, "ingress/gw-1", "agents/orch-1", "/v1/task", 0, Some(1000.0)),
                    tc("c1", Some("c0"), "agents/orch-1", "agents/planner-1", "/v1/plan", 50, Some(600.0)),
                    tc("c2", Some("c1"), "agents/planner-1", "agents/orch-1", "/v1/callback", 100, Some(400.0)),
                    tc("c3", Some("c0"), "agents/orch-1", "tools/search-1", "/search", 200, Some(100.0)),
                ],
            ),
            (
                "r1",
                "agents/orch",
                vec![
                    tc("c0", None, "ingress/gw-1", "agents/orch-1", "/v1/task", 150, Some(500.0)),
                    tc("c1", Some("c0"), "agents/orch-1", "tools/search-1", "/search", 250, Some(100.0)),
                ],
            ),
        ]);
        let report = to_report(&truth);
        let r = eval(&report, &truth);
        assert!(close(r.simple_rule_parent_accuracy, 5.0 / 6.0), "{r:?}");
        assert_eq!(r.ambiguous_calls, 1);
        assert_eq!(r.infer_parent_accuracy, 1.0);
        assert_eq!(r.parent_accuracy, 1.0);

        let mut report = report;
        report["requests"][0]["calls"][3]["parent"] = json!("c2");
        let r = eval(&report, &truth);
        assert_eq!(r.ambiguous_calls, 1);
        assert_eq!(r.infer_parent_accuracy, 0.0);
        assert!(close(r.parent_accuracy, 5.0 / 6.0));
    }

    #[test]
    fn wrong_stats_lower_fan_out_depth_rate() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        report["requests"][0]["stats"]["depth"] = json!(2);
        let r = eval(&report, &truth);
        assert_eq!(r.exact_request_rate, 1.0);
        assert_eq!(r.exact_fan_out_depth_rate, 0.5);
    }

    #[test]
    fn thresholds_report_failures() {
        let truth = base_truth();
        let mut report = to_report(&truth);
        report["requests"][0]["calls"][3]["parent"] = json!("c2");
        let r = eval(&report, &truth);
        let th = Thresholds {
            min_call_recall: Some(0.5),
            min_parent_accuracy: Some(0.98),
            min_exact_requests: Some(0.9),
            max_latency_mae_ms: Some(1.0),
            ..Default::default()
        };
        let msgs = th.check(&r);
        assert_eq!(msgs, vec!["parent accuracy 0.8333 is below --min-parent-accuracy 0.98".to_string(),]);
        assert!(Thresholds::default().check(&r).is_empty());
    }

    #[test]
    fn malformed_documents_are_errors() {
        let truth = base_truth();
        let report = to_report(&truth);
        let opts = EvalOptions::default();
        assert!(evaluate(&json!(5), &truth, &opts).is_err());
        assert!(evaluate(&report, &json!({"schema": TRUTH_SCHEMA}), &opts).is_err());
        assert!(evaluate(&report, &json!({"schema": "other/v9", "requests": []}), &opts).is_err());
        assert!(evaluate(&report, &truth, &EvalOptions { match_tolerance_ms: f64::NAN }).is_err());

        let mut bad = report.clone();
        bad["requests"][0]["calls"][0]["start"] = json!("yesterday");
        assert!(evaluate(&bad, &truth, &opts).unwrap_err().contains("invalid timestamp"));
        let mut bad = report.clone();
        bad["requests"][0]["calls"][0].as_object_mut().unwrap().remove("client");
        assert!(evaluate(&bad, &truth, &opts).is_err());
        let mut bad = report.clone();
        bad["requests"][0]["calls"][1]["id"] = json!("c0");
        assert!(evaluate(&bad, &truth, &opts).unwrap_err().contains("duplicate call id"));
        let mut bad = report.clone();
        bad["requests"][0]["calls"][1]["status"] = json!("ok");
        assert!(evaluate(&bad, &truth, &opts).is_err());

        let mut two_roots = truth.clone();
        two_roots["requests"][0]["calls"][1]["parent"] = json!(null);
        assert!(evaluate(&report, &two_roots, &opts).unwrap_err().contains("root calls"));
        let mut dangling = truth.clone();
        dangling["requests"][0]["calls"][1]["parent"] = json!("c7");
        assert!(evaluate(&report, &dangling, &opts).is_err());
        let mut cycle = truth.clone();
        cycle["requests"][0]["calls"][1]["parent"] = json!("c3");
        assert!(evaluate(&report, &cycle, &opts).unwrap_err().contains("cycle"));

        let empty = evaluate(&json!({"requests": []}), &json!({"requests": []}), &opts).unwrap();
        assert!(empty.call_recall.is_nan() && empty.call_precision.is_nan() && empty.exact_request_rate.is_nan());
    }

    /// A report that matches nothing has no parent accuracy to speak of: it shows n/a and fails
    /// every threshold on it instead of passing at 100 %.
    #[test]
    fn nothing_matched_fails_the_thresholds() {
        let truth = base_truth();
        let r = eval(&json!({"requests": []}), &truth);
        assert_eq!((r.matched_calls, r.call_recall), (0, 0.0));
        assert!(r.parent_accuracy.is_nan() && r.size_accuracy.is_nan() && r.latency_mae_ms.is_nan());
        let gates = Thresholds {
            min_parent_accuracy: Some(0.5),
            min_size_accuracy: Some(0.5),
            max_latency_mae_ms: Some(10.0),
            ..Thresholds::default()
        };
        let failures = gates.check(&r);
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(
            failures[0].contains("parent accuracy is undefined (it is measured over matched calls"),
            "{failures:?}"
        );
        assert!(r.table().contains("n/a"));
        assert_eq!(serde_json::to_value(&r).unwrap()["parent_accuracy"], json!(null));
    }

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ns("2000-03-01T00:00:00.5Z"), Ok(951_868_800_500_000_000));
        assert_eq!(parse_rfc3339_ns("1969-12-31T23:59:59.999999999Z"), Ok(-1));
        assert_eq!(parse_rfc3339_ns("2026-11-25T10:00:00.123456789Z"), Ok(1_795_600_800_123_456_789));
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+01:00",
            "9999-01-01T00:00:00Z",
            "2026-01-01T00:00:00Zx",
            "2026-01-01T00:00:0é Z",
        ] {
            assert!(parse_rfc3339_ns(bad).is_err(), "{bad}");
        }
    }
}
