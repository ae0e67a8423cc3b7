//! Decoder throughput on real and synthetic Hubble JSON lines (bytes per second).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn lines(path: &str) -> Vec<Vec<u8>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_line");
    for (name, path) in [
        ("real_http_348", "testdata/real/basic-sample-348-http-flows.json"),
        ("real_tcp_400", "testdata/real/basic-sample-400-tcp-flows.json"),
        ("fixture_traced_fanout", "testdata/minimal/traced-fanout.jsonl"),
    ] {
        let data = lines(path);
        let bytes: usize = data.iter().map(|l| l.len() + 1).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut http = 0usize;
                for l in &data {
                    if let Ok(agentgraph_proto::Event::Flow(f)) = agentgraph_proto::decode_line(l) {
                        http += usize::from(f.l7.is_some_and(|l7| l7.http.is_some()));
                    }
                }
                http
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
