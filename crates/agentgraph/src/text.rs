//! The `text` format of `agentgraph analyze`: a readable summary with call trees.

use std::io::{self, Write};

use agentgraph_core::RequestGraph;
use agentgraph_core::report::TopK;

use crate::analyze::{Summary, count, engine_warning, input_json};

/// Widest a column of names is padded to. Names come from the input (pod names can be of any
/// length): longer ones overflow their column, and the formatter refuses widths over 65,535.
const NAME_COLUMN_MAX: usize = 80;
/// Deepest level of a call tree shown indented; deeper calls are shown at this indentation.
const INDENT_DEPTH_MAX: usize = 40;

/// Human-readable byte size (`734 kB`, `5.2 MB`).
pub fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

fn millis(ns: i64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 10_000.0 { format!("{:.1} s", ms / 1e3) } else { format!("{ms:.1} ms") }
}

pub fn render(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let input = input_json(&s.read, &s.engine);
    writeln!(out, "agentgraph analysis of {}", s.files.join(", "))?;
    writeln!(
        out,
        "input: {} lines, {} flows, {} skipped, {} lost events upstream",
        input.lines, input.flows, input.skipped, input.lost_events
    )?;
    let repeated = if input.repeated_records > 0 {
        format!(", {} dropped (read twice)", count(input.repeated_records, "repeated record", "repeated records"))
    } else {
        String::new()
    };
    writeln!(
        out,
        "http:  {}, {} (after merging {} egress+ingress copies{repeated}); {} without a request, {} unanswered{}",
        count(input.http_requests, "request", "requests"),
        count(input.http_responses, "response", "responses"),
        s.engine.duplicate_requests,
        count(s.engine.orphan_responses, "response", "responses"),
        count(s.engine.unanswered_calls, "call", "calls"),
        match s.engine.late_responses {
            0 => String::new(),
            n => format!(" ({} after the call was given up or emitted: dropped)", count(n, "response", "responses")),
        }
    )?;
    if s.engine.joint_decisions > 0 {
        let learning = match s.learning_flows {
            Some(n) => format!("statistics learned first from {n} flows"),
            None => "no learning pass".to_string(),
        };
        writeln!(
            out,
            "parents decided from timing: {} calls ({} before their agent's statistics were learned; {learning})",
            s.engine.joint_decisions, s.engine.unlearned_decisions
        )?;
    }
    let total: u64 = s.by_correlation.iter().sum();
    let [traced, by_request_id, by_timing, single] = s.by_correlation;
    writeln!(
        out,
        "requests: {total} ({traced} by trace context, {by_request_id} by request id, {by_timing} grouped by timing, {single} single calls without an id)"
    )?;
    if let Some(w) = engine_warning(&s.engine) {
        writeln!(out, "warning: {w}")?;
    }
    for e in &s.read.read_errors {
        writeln!(out, "error: {e}")?;
    }
    if !s.read.skip_examples.is_empty() {
        let kinds: Vec<String> = s.read.skipped_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(out, "\nskipped lines ({}):", kinds.join(", "))?;
        for k in &s.read.skip_examples {
            writeln!(out, "  {}:{}: {}", k.file, k.line, k.reason)?;
        }
        if s.read.skipped > s.read.skip_examples.len() as u64 {
            writeln!(out, "  ... and {} more", s.read.skipped - s.read.skip_examples.len() as u64)?;
        }
    }

    let edges = s.aggregates.edges();
    writeln!(
        out,
        "\nagent graph ({} edges): client -> server  calls  errors  latency p50 / p95 / max  request size p50 / max",
        edges.len()
    )?;
    let width = edges.iter().map(|e| e.client.len() + e.server.len() + 4).max().unwrap_or(0).min(NAME_COLUMN_MAX);
    for e in &edges {
        let name = format!("{} -> {}", e.client, e.server);
        let latency = if e.latency_samples == 0 {
            format!("{:>9} / {:>9} / {:>9}   ", "-", "-", "-")
        } else {
            format!("{:>9.1} / {:>9.1} / {:>9.1} ms", e.latency_ms.p50, e.latency_ms.p95, e.latency_ms.max)
        };
        let size = if e.size_samples == 0 {
            format!("{:>9} / {:>9}", "-", "-")
        } else {
            format!("{:>9} / {:>9}", bytes(e.request_bytes.p50), bytes(e.request_bytes.max))
        };
        writeln!(out, "  {name:<width$}  {:>6}  {:>6}  {latency}  {size}", e.calls, e.errors)?;
    }
    let agents = s.aggregates.agents();
    writeln!(out, "\nagents as servers: calls  fan-out p50 / max  concurrent max  self time p50 / p95")?;
    let width = agents.iter().map(|a| a.agent.len()).max().unwrap_or(0).min(NAME_COLUMN_MAX);
    for a in &agents {
        // Calls never answered have no self time; an agent with only those has none to show.
        let self_time = if a.self_time_samples == 0 {
            format!("{:>9} / {:>9}", "-", "-")
        } else {
            format!("{:>9.1} / {:>9.1} ms", a.self_time_ms.p50, a.self_time_ms.p95)
        };
        writeln!(
            out,
            "  {:<width$}  {:>6}  {:>4} / {:>4}  {:>4}  {self_time}",
            a.agent, a.calls_served, a.fan_out.p50, a.fan_out.max, a.fan_out_concurrent.max,
        )?;
    }
    top(out, "top requests by fan-out", &s.top_fan_out)?;
    top(out, "top requests by duration", &s.top_duration)?;
    top(out, "top requests by context size", &s.top_context)?;
    Ok(())
}

fn top(out: &mut impl Write, title: &str, list: &TopK) -> io::Result<()> {
    let items = list.sorted();
    if items.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{title}:")?;
    for g in items {
        request(out, g)?;
    }
    Ok(())
}

/// One request: a header line and its call tree, children indented under their parents.
pub fn request(out: &mut impl Write, g: &RequestGraph) -> io::Result<()> {
    let st = &g.stats;
    // With no call answered, the request's span is only its start times: no duration to show.
    let timing = if !g.answered() {
        "no response".to_string()
    } else {
        format!("{} (critical path {})", millis(g.duration()), millis(st.critical_path))
    };
    let context =
        if g.context_known() { format!("{} context", bytes(st.context_bytes)) } else { "context unknown".into() };
    writeln!(
        out,
        "  {} ({}) root {}: {}, depth {}, fan-out {} ({} concurrent), {context}, {timing}",
        g.id,
        g.correlation.as_str(),
        g.calls[g.root].server,
        count(st.calls as u64, "call", "calls"),
        st.depth,
        st.fan_out_max,
        st.fan_out_concurrent_max,
    )?;
    let mut stack: Vec<(usize, usize)> =
        (0..g.calls.len()).rev().filter(|&i| g.calls[i].parent.is_none()).map(|i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        let c = &g.calls[i];
        let offset = (c.start - g.start) as f64 / 1e6;
        let status = c.status.map_or("no response".to_string(), |s| s.to_string());
        let took = c.duration.map_or("?".to_string(), millis);
        let size = c.request_bytes.map(|b| format!(" {} sent", bytes(b))).unwrap_or_default();
        let critical = if st.critical_calls.contains(&i) { " *" } else { "" };
        let confidence = if c.confidence < 1.0 { format!(" (confidence {:.2})", c.confidence) } else { String::new() };
        writeln!(
            out,
            "    {:indent$}c{i} +{offset:.1} ms {} -> {} {} {} {status} {took}{size}{critical}{confidence}",
            "",
            c.client,
            c.server,
            c.method,
            c.path,
            indent = depth.min(INDENT_DEPTH_MAX) * 2
        )?;
        for k in g.children(i).into_iter().rev() {
            stack.push((k, depth + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentgraph_core::{CallRecord, Correlation, RequestGraph};

    use super::*;

    /// A chain of calls deeper than the formatter could indent (its widest padding is 65,535):
    /// each deeper call is shown at the deepest indentation, not a panic.
    #[test]
    fn a_call_tree_of_any_depth_is_printed() {
        let depth = 33_000;
        let name = |i: usize| -> Arc<str> { format!("a{i}").into() };
        let calls: Vec<CallRecord> = (0..depth)
            .map(|i: usize| CallRecord {
                parent: i.checked_sub(1),
                client: name(i),
                server: name(i + 1),
                client_pod: "".into(),
                server_pod: "".into(),
                method: "POST".into(),
                path: "/x".into(),
                status: Some(200),
                start: i as i64 * 1_000,
                duration: Some(((2 * depth - 2 * i) as i64) * 1_000),
                request_bytes: None,
                response_bytes: None,
                confidence: 1.0,
                trace_id: None,
                request_id: None,
                observed_both_sides: false,
                served: None,
                answered_at: Some((2 * depth - i) as i64 * 1_000),
            })
            .collect();
        let g = RequestGraph::new("deep".into(), Correlation::TraceContext, calls);
        let mut out = Vec::new();
        request(&mut out, &g).expect("printed");
        let text = String::from_utf8(out).unwrap();
        let last = text.lines().find(|l| l.contains(&format!("c{} ", depth - 1))).expect("the deepest call");
        assert_eq!(last.len() - last.trim_start().len(), 4 + 2 * INDENT_DEPTH_MAX, "{last}");
    }
}
