//! Scrape cost: encoding the metrics registry with about 10,000 series.

use std::sync::Arc;

use agentgraph_core::RequestGraph;
use agentgraph_core::graph::{CallRecord, Correlation};
use agentgraph_export::{Metrics, MetricsConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn graph(i: usize) -> RequestGraph {
    let call = CallRecord {
        parent: None,
        client: Arc::from(format!("ns/client-{}", i % 10)),
        server: Arc::from(format!("ns/server-{}", i / 10 % 11)),
        client_pod: Arc::from(""),
        server_pod: Arc::from(""),
        method: Arc::from("POST"),
        path: Arc::from("/x"),
        status: Some(200),
        start: 0,
        duration: Some(1_000_000 * (i as i64 % 5000 + 1)),
        request_bytes: Some(1000 + i as u64),
        response_bytes: Some(100),
        confidence: 1.0,
        trace_id: None,
        request_id: None,
        observed_both_sides: false,
        served: None,
        answered_at: Some(1_000_000 * (i as i64 % 5000 + 1)),
    };
    RequestGraph::new(format!("r{i}"), Correlation::Inferred, vec![call])
}

fn bench(c: &mut Criterion) {
    let metrics = Metrics::new(MetricsConfig { max_series: 20_000, ..MetricsConfig::default() });
    // 10 × 11 edges: 110 label sets per edge family; with the histogram buckets and the
    // per-root and per-agent families this is about 10,000 series in the scrape.
    for i in 0..110 {
        metrics.observe(&graph(i));
    }
    let text = metrics.encode();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    eprintln!("scrape: {series} series, {} bytes", text.len());
    c.bench_function("encode_metrics", |b| b.iter(|| metrics.encode().len()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
