//! Simulator throughput: flows generated per second for a built-in scenario.

use agentgraph_sim::{Scenario, SimOptions, Simulator};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let scenario = Scenario::load("support-desk").unwrap();
    let opts = SimOptions { requests: Some(50), ..SimOptions::default() };
    let flows = {
        let mut n = 0u64;
        Simulator::new(&scenario, opts.clone())
            .run(
                |_, _| {
                    n += 1;
                    Ok(())
                },
                |_| Ok(()),
            )
            .unwrap();
        n
    };
    let mut group = c.benchmark_group("simulate");
    group.throughput(Throughput::Elements(flows));
    group.bench_function("support_desk_50_requests", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            Simulator::new(&scenario, opts.clone())
                .run(
                    |_, l| {
                        bytes += l.len();
                        Ok(())
                    },
                    |_| Ok(()),
                )
                .unwrap();
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
