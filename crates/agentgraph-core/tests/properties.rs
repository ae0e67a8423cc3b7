//! Property tests of the engine: state stays bounded, every request record ends in a reported
//! call or a counted drop, and shuffling records inside the reorder window changes nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use agentgraph_core::names::{EndpointInfo, NameSource};
use agentgraph_core::record::{HttpRecord, NodeId, Peer};
use agentgraph_core::report::RequestJson;
use agentgraph_core::{Engine, EngineConfig, NormalizeConfig, RequestGraph};
use agentgraph_proto::TrafficDirection;
use proptest::prelude::*;

const MS: i64 = 1_000_000;

#[derive(Clone, Debug)]
struct CallSpec {
    client_pod: usize,
    server_pod: usize,
    start: i64,
    end: i64,
    answered: bool,
}

#[derive(Clone, Debug)]
struct RequestSpec {
    calls: Vec<CallSpec>,
    mode: u8,
}

fn pod(i: usize) -> Peer {
    let (agent, name) = match i {
        0 => ("ingress/gateway", "gateway-1"),
        1..=2 => ("agents/orchestrator", if i == 1 { "orch-a" } else { "orch-b" }),
        3..=5 => ("agents/worker", ["worker-a", "worker-b", "worker-c"][i - 3]),
        _ => ("llm/llm-gateway", "llm-a"),
    };
    Peer {
        info: Arc::new(EndpointInfo::new(
            Arc::from(agent),
            NameSource::Strong,
            Arc::from(format!("ns/{name}")),
            Arc::from(agent),
        )),
        ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1))),
        port: 8080,
    }
}

/// A request: gateway → orchestrator → workers (concurrent) → llm, with random timing.
fn request_strategy() -> impl Strategy<Value = (i64, RequestSpec)> {
    (
        0i64..20_000,
        1usize..3,
        proptest::collection::vec((0i64..200, 50i64..900, 0usize..3, any::<bool>()), 0..5),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(offset, orch, workers, mode, root_answered)| {
            let start = offset * MS;
            let mut calls = vec![CallSpec {
                client_pod: 0,
                server_pod: orch,
                start,
                end: start + 2_000 * MS,
                answered: root_answered,
            }];
            for (w, (delay, len, worker, answered)) in workers.into_iter().enumerate() {
                let s = start + (10 + delay) * MS;
                let e = (s + len * MS).min(start + 1_990 * MS);
                calls.push(CallSpec { client_pod: orch, server_pod: 3 + worker, start: s, end: e, answered });
                if w % 2 == 0 {
                    let ls = s + MS;
                    calls.push(CallSpec {
                        client_pod: 3 + worker,
                        server_pod: 6,
                        start: ls,
                        end: e - MS,
                        answered: true,
                    });
                }
            }
            (offset, RequestSpec { calls, mode })
        })
}

fn records(requests: &[(i64, RequestSpec)]) -> Vec<HttpRecord> {
    let mut out = Vec::new();
    let mut port = 30_000u16;
    for (r, (_, spec)) in requests.iter().enumerate() {
        for (i, c) in spec.calls.iter().enumerate() {
            port = port.wrapping_add(1).max(1024);
            let mut client = pod(c.client_pod);
            client.port = port;
            let base = HttpRecord {
                time: c.start,
                node: NodeId::of(b"node-1"),
                direction: TrafficDirection::Egress,
                is_response: false,
                client,
                server: pod(c.server_pod),
                method: Arc::from("POST"),
                path: Arc::from(format!("/call/{}", c.server_pod)),
                url_key: c.server_pod as u64,
                http2: false,
                status: 0,
                latency_ns: 0,
                request_id: (spec.mode == 1).then(|| Arc::from(format!("rid-{r}"))),
                trace_id: (spec.mode == 2).then_some(r as u128 + 1),
                request_bytes: Some(100 + i as u64),
                response_bytes: None,
                tiebreak: (r * 1000 + i * 2) as u64,
            };
            if c.answered {
                out.push(HttpRecord {
                    time: c.end,
                    is_response: true,
                    status: 200,
                    latency_ns: (c.end - c.start) as u64,
                    tiebreak: base.tiebreak + 1,
                    ..base.clone()
                });
            }
            out.push(base);
        }
    }
    out.sort_by_key(|r| (r.time, r.tiebreak));
    out
}

/// A pseudo-random 0 to 899 (milliseconds of jitter) from a xorshift state.
fn jitter_ms(state: &mut u64) -> i64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % 900) as i64
}

fn run(records: &[HttpRecord], config: EngineConfig, mut check: impl FnMut(&Engine)) -> (Vec<RequestGraph>, Engine) {
    let mut engine = Engine::new(config, NormalizeConfig::default());
    let mut graphs = Vec::new();
    for r in records {
        engine.push(r.clone());
        check(&engine);
        graphs.extend(engine.drain());
    }
    engine.finish();
    graphs.extend(engine.drain());
    (graphs, engine)
}

fn canonical(graphs: &[RequestGraph]) -> Vec<String> {
    let mut v: Vec<String> = graphs.iter().map(|g| serde_json::to_string(&RequestJson::from(g)).unwrap()).collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_request_record_is_reported_or_counted(requests in proptest::collection::vec(request_strategy(), 1..25)) {
        let recs = records(&requests);
        let (graphs, engine) = run(&recs, EngineConfig::default(), |_| {});
        let s = engine.stats();
        let reported: usize = graphs.iter().map(|g| g.calls.len()).sum();
        let requests_in = recs.iter().filter(|r| !r.is_response).count() as u64;
        prop_assert_eq!(s.http_requests, requests_in);
        prop_assert_eq!(reported as u64, s.http_requests - s.duplicate_requests + s.orphan_responses);
        prop_assert_eq!(s.calls_emitted, reported as u64);
        prop_assert_eq!(engine.open_calls(), 0);
        prop_assert_eq!(engine.open_requests(), 0);
        let unanswered = graphs.iter().flat_map(|g| &g.calls).filter(|c| c.status.is_none()).count() as u64;
        prop_assert_eq!(unanswered, s.unanswered_calls);
    }

    #[test]
    fn state_stays_bounded(requests in proptest::collection::vec(request_strategy(), 1..40), limit in 4usize..24) {
        let recs = records(&requests);
        let config = EngineConfig { max_open_calls: limit, max_buffered_records: limit, ..EngineConfig::default() };
        let (graphs, engine) = run(&recs, config, |e| {
            assert!(e.open_calls() <= limit, "{} open calls > {limit}", e.open_calls());
            assert!(e.buffered_records() <= limit, "{} buffered > {limit}", e.buffered_records());
        });
        let s = engine.stats();
        let reported: usize = graphs.iter().map(|g| g.calls.len()).sum();
        // Forced emission and reorder overflow lose nothing: every call is still reported.
        prop_assert_eq!(reported as u64, s.http_requests - s.duplicate_requests + s.orphan_responses);
    }

    #[test]
    fn shuffling_inside_the_reorder_window_changes_nothing(
        requests in proptest::collection::vec(request_strategy(), 1..20),
        seed in any::<u64>(),
    ) {
        let sorted = records(&requests);
        // Move each record by up to 900 ms of event time: sort by time plus a random jitter.
        let mut state = seed | 1;
        let mut keyed: Vec<(i64, HttpRecord)> =
            sorted.iter().map(|r| (r.time + jitter_ms(&mut state) * MS, r.clone())).collect();
        keyed.sort_by_key(|(k, r)| (*k, r.tiebreak));
        let shuffled: Vec<HttpRecord> = keyed.into_iter().map(|(_, r)| r).collect();
        let config = EngineConfig::default();
        prop_assert!(config.reorder_window >= 900 * MS);
        let (a, _) = run(&sorted, config.clone(), |_| {});
        let (b, eb) = run(&shuffled, config, |_| {});
        prop_assert_eq!(eb.stats().late_records, 0);
        prop_assert_eq!(canonical(&a), canonical(&b));
    }

    /// Every record read twice — the second copy up to 900 ms of event time later, as from two
    /// overlapping dumps merged — gives the report of one copy, each second copy counted.
    #[test]
    fn records_read_twice_count_once(
        requests in proptest::collection::vec(request_strategy(), 1..20),
        seed in any::<u64>(),
    ) {
        let once = records(&requests);
        let mut state = seed | 1;
        let mut keyed: Vec<(i64, HttpRecord)> = Vec::new();
        for r in &once {
            keyed.push((r.time, r.clone()));
            keyed.push((r.time + jitter_ms(&mut state) * MS, r.clone()));
        }
        keyed.sort_by_key(|(k, r)| (*k, r.tiebreak));
        let twice: Vec<HttpRecord> = keyed.into_iter().map(|(_, r)| r).collect();
        let (a, ea) = run(&once, EngineConfig::default(), |_| {});
        let (b, eb) = run(&twice, EngineConfig::default(), |_| {});
        prop_assert_eq!(eb.stats().repeated_records, once.len() as u64);
        prop_assert_eq!(eb.stats().http_requests, ea.stats().http_requests);
        prop_assert_eq!(canonical(&a), canonical(&b));
    }
}
