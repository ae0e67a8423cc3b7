//! Every figure a report states that its own calls determine — request stats, edge and agent
//! aggregates — recomputed here independently, from `requests[].calls[]` and the README's
//! definitions, over the demo dump and a simulation of each scenario.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use agentgraph_proto::time::parse_rfc3339_nanos;
use serde_json::Value;

fn agentgraph(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_agentgraph")).args(args).output().expect("run agentgraph");
    assert!(out.status.success(), "agentgraph {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// One call as the report states it, with times in nanoseconds.
struct Call {
    parent: Option<usize>,
    client: String,
    server: String,
    start: i64,
    end: Option<i64>,
    status: Option<u64>,
    request_bytes: Option<u64>,
}

fn calls(request: &Value) -> Vec<Call> {
    let list = request["calls"].as_array().expect("calls");
    let index: BTreeMap<&str, usize> =
        list.iter().enumerate().map(|(i, c)| (c["id"].as_str().expect("id"), i)).collect();
    assert_eq!(index.len(), list.len(), "call ids are unique in {}", request["id"]);
    list.iter()
        .map(|c| {
            let start = parse_rfc3339_nanos(c["start"].as_str().expect("start").as_bytes()).expect("RFC 3339");
            Call {
                parent: c["parent"].as_str().map(|p| *index.get(p).unwrap_or_else(|| panic!("parent {p} exists"))),
                client: c["client"].as_str().expect("client").into(),
                server: c["server"].as_str().expect("server").into(),
                start,
                end: c["duration_ms"].as_f64().map(|d| start + (d * 1e6).round() as i64),
                status: c["status"].as_u64(),
                request_bytes: c["request_bytes"].as_u64(),
            }
        })
        .collect()
}

/// The most intervals in flight at one instant; an interval ending where another starts does
/// not overlap it.
fn max_overlap(intervals: &[(i64, i64)]) -> u64 {
    let mut edges: Vec<(i64, i64)> = intervals.iter().flat_map(|&(s, e)| [(s, 1), (e.max(s), -1)]).collect();
    edges.sort();
    edges
        .iter()
        .scan(0, |n, &(_, d)| {
            *n += d;
            Some(*n)
        })
        .max()
        .unwrap_or(0) as u64
}

/// The nearest-rank percentile: the ⌈p·n⌉-th smallest.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn close(stated: &Value, expected: f64, what: &str) {
    let stated = stated.as_f64().unwrap_or_else(|| panic!("{what}: {stated} is not a number"));
    assert!((stated - expected).abs() <= 0.002, "{what}: stated {stated}, recomputed {expected}");
}

/// Checks one report; returns how many requests it held.
fn check(report: &Value) -> usize {
    let requests = report["requests"].as_array().expect("requests");
    let mut edges: BTreeMap<(String, String), (u64, u64, Vec<f64>)> = BTreeMap::new();
    let mut agents: BTreeMap<String, (u64, Vec<f64>)> = BTreeMap::new();
    for r in requests {
        let id = &r["id"];
        let cs = calls(r);
        let st = &r["stats"];
        let start = cs.iter().map(|c| c.start).min().expect("a request has calls");
        let end = cs.iter().map(|c| c.end.unwrap_or(c.start)).max().expect("calls");
        // A child without response lasts until its parent ends, or until the request's last
        // record when the parent never answered.
        let mut depth = vec![0u64; cs.len()];
        let mut fan_out_max = 0;
        let mut concurrent_max = 0;
        for (i, c) in cs.iter().enumerate() {
            let mut d = 1;
            let mut at = c.parent;
            while let Some(p) = at {
                d += 1;
                assert!(d <= cs.len() as u64, "{id}: parent links form a cycle");
                at = cs[p].parent;
            }
            depth[i] = d;
            let kids: Vec<&Call> = cs.iter().filter(|k| k.parent == Some(i)).collect();
            fan_out_max = fan_out_max.max(kids.len() as u64);
            let intervals: Vec<(i64, i64)> =
                kids.iter().map(|k| (k.start, k.end.unwrap_or(c.end.unwrap_or(end)).max(k.start))).collect();
            let concurrent = max_overlap(&intervals);
            concurrent_max = concurrent_max.max(concurrent);
            if let Some(p) = c.parent {
                let parent = &cs[p];
                assert_eq!(parent.server, c.client, "{id}: a call is made by its parent's server");
                assert!(c.start >= parent.start, "{id}: a child starts inside its parent");
            }
            let e = edges.entry((c.client.clone(), c.server.clone())).or_default();
            e.0 += 1;
            if c.status.is_none_or(|s| s >= 500) {
                e.1 += 1;
            }
            if let Some(end) = c.end {
                e.2.push((end - c.start) as f64 / 1e6);
            }
            let a = agents.entry(c.server.clone()).or_default();
            a.0 += 1;
            a.1.push(kids.len() as f64);
        }
        let agent_names: BTreeSet<&str> = cs.iter().flat_map(|c| [c.client.as_str(), c.server.as_str()]).collect();
        assert_eq!(st["calls"], cs.len(), "{id}: calls");
        assert_eq!(st["depth"], depth.iter().max().copied().unwrap_or(0), "{id}: depth");
        assert_eq!(st["agents"], agent_names.len(), "{id}: agents");
        assert_eq!(st["fan_out_max"], fan_out_max, "{id}: fan_out_max");
        assert_eq!(st["fan_out_concurrent_max"], concurrent_max, "{id}: fan_out_concurrent_max");
        assert_eq!(st["context_bytes"], cs.iter().filter_map(|c| c.request_bytes).sum::<u64>(), "{id}: context");
        assert_eq!(parse_rfc3339_nanos(r["start"].as_str().expect("start").as_bytes()), Some(start), "{id}: start");
        let roots: Vec<&Call> = cs.iter().filter(|c| c.parent.is_none()).collect();
        assert!(!roots.is_empty(), "{id}: a root");
        assert_eq!(
            r["root"].as_str(),
            Some(roots[0].server.as_str()),
            "{id}: root is the earliest top-level call's server"
        );
        // A call whose response was seen without its request has an unknown duration but ends
        // the request later than any printed time: the request may only be longer.
        let duration = r["duration_ms"].as_f64().expect("duration");
        assert!(duration * 1e6 + 2e3 >= (end - start) as f64, "{id}: duration {duration} ms ends before its calls");
    }
    for e in report["edges"].as_array().expect("edges") {
        let key = (e["client"].as_str().unwrap().to_string(), e["server"].as_str().unwrap().to_string());
        let (n, errors, mut latencies) = edges.remove(&key).unwrap_or_else(|| panic!("edge {key:?} has calls"));
        assert_eq!((e["calls"].as_u64(), e["errors"].as_u64()), (Some(n), Some(errors)), "{key:?}");
        latencies.sort_by(f64::total_cmp);
        if !latencies.is_empty() && latencies.len() <= 1024 {
            for (p, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (1.0, "max")] {
                close(&e["latency_ms"][name], nearest_rank(&latencies, p), &format!("{key:?} latency {name}"));
            }
        }
    }
    assert!(edges.is_empty(), "edges missing from the report: {:?}", edges.keys());
    for a in report["agents"].as_array().expect("agents") {
        let name = a["agent"].as_str().unwrap();
        let (served, mut fan_out) = agents.remove(name).unwrap_or_else(|| panic!("agent {name} serves calls"));
        fan_out.sort_by(f64::total_cmp);
        assert_eq!(a["calls_served"], served, "{name}");
        assert_eq!(a["fan_out"]["max"].as_f64(), fan_out.last().copied(), "{name}: fan-out max");
        // Past 1,024 samples the sketch is within 1 %, which a whole count rounds away.
        assert_eq!(a["fan_out"]["p50"].as_f64(), Some(nearest_rank(&fan_out, 0.5)), "{name}: fan-out p50");
    }
    requests.len()
}

#[test]
fn demo_report_agrees_with_its_calls() {
    let report: Value = serde_json::from_slice(&agentgraph(&["analyze", "--demo", "--format", "json", "-q"])).unwrap();
    assert!(check(&report) > 30);
}

/// Simulations past 1,024 samples per edge, with and without propagated ids.
#[test]
fn simulated_reports_agree_with_their_calls() {
    let dir = tempfile::tempdir().unwrap();
    for (scenario, correlation, requests) in [
        ("support-desk", "none", "150"),
        ("research-swarm", "none", "150"),
        ("code-review", "request_id", "150"),
        ("job-spawner", "trace_context", "150"),
    ] {
        let out = dir.path().join(scenario);
        let out = out.to_str().unwrap();
        let sim = ["simulate", "--scenario", scenario, "--correlation", correlation, "--concurrency", "4"];
        agentgraph(&[&sim[..], &["--requests", requests, "--seed", "5", "--out", out]].concat());
        let flows = format!("{out}/flows.jsonl");
        let report: Value =
            serde_json::from_slice(&agentgraph(&["analyze", "--format", "json", "-q", &flows])).unwrap();
        assert!(check(&report) >= 150, "{scenario}");
    }
}
