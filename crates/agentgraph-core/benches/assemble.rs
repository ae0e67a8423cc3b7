//! Decode + assemble throughput: Hubble JSON lines through the decoder, the normalizer and the
//! engine to completed request graphs (bytes per second of input): real dumps, the demo, and a
//! simulated dump where nothing is propagated and requests overlap (the joint search's load).

use agentgraph_core::{Engine, EngineConfig, NormalizeConfig};
use agentgraph_proto::decode_line;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn lines(path: &str) -> Vec<Vec<u8>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let raw = if raw.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    };
    raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

/// A simulated dump with nothing propagated and about four requests in flight.
fn simulated(scenario: &str, requests: usize) -> Vec<Vec<u8>> {
    use agentgraph_sim::{CorrelationMode, Scenario, SimOptions, Simulator};
    let scenario = Scenario::load(scenario).expect("built-in scenario");
    let opts = SimOptions {
        requests: Some(requests),
        correlation: Some(CorrelationMode::None),
        concurrency: Some(4.0),
        seed: 7,
        ..SimOptions::default()
    };
    let mut out = Vec::new();
    Simulator::new(&scenario, opts)
        .run(
            |_, line| {
                out.push(line.as_bytes().to_vec());
                Ok(())
            },
            |_| Ok(()),
        )
        .expect("simulates");
    out
}

fn run(data: &[Vec<u8>]) -> usize {
    let mut engine = Engine::new(EngineConfig::default(), NormalizeConfig::default());
    let mut calls = 0;
    for l in data {
        if let Ok(event) = decode_line(l) {
            engine.push_event(&event);
        }
        for g in engine.drain() {
            calls += g.calls.len();
        }
    }
    engine.finish();
    calls + engine.drain().map(|g| g.calls.len()).sum::<usize>()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_assemble");
    group.sample_size(20);
    for (name, path) in [
        ("real_http_348", "testdata/real/basic-sample-348-http-flows.json"),
        ("demo_agents_2000", "testdata/demo/agents-demo.jsonl.gz"),
    ] {
        let data = lines(path);
        let bytes: usize = data.iter().map(|l| l.len() + 1).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(name, |b| b.iter(|| run(&data)));
    }
    let data = simulated("research-swarm", 60);
    let bytes: usize = data.iter().map(|l| l.len() + 1).sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("research_swarm_untraced_overlapping_60", |b| b.iter(|| run(&data)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
