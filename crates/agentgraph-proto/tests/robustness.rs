//! The decoder never panics on input: real Hubble lines with random byte edits, cuts and
//! insertions either decode or give an error, and every accessor of a decoded view is safe.

use agentgraph_proto::{Event, decode_line};
use proptest::prelude::*;

fn real_lines() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut lines = Vec::new();
    for file in ["real/basic-sample-400-tcp-flows.json", "minimal/traced-fanout.jsonl", "minimal/malformed.jsonl"] {
        let data = std::fs::read(root.join(file)).unwrap();
        lines.extend(data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).take(60).map(<[u8]>::to_vec));
    }
    lines
}

/// Touches every part of a decoded event, as the analyzer does.
fn exercise(ev: &Event<'_>) -> usize {
    match ev {
        Event::Flow(f) => {
            let mut n = f.node_name.value().len() + f.trace_id.value().len();
            for e in [&f.source, &f.destination] {
                n += e.labels.iter().map(|l| l.value().len()).sum::<usize>();
                n += e.workloads.iter().map(|(a, b)| a.value().len() + b.value().len()).sum::<usize>();
                n += e.pod_name.value().len() + e.namespace.value().len();
            }
            n += f.destination_names.iter().count();
            if let Some(h) = f.l7.and_then(|l| l.http) {
                n += h.headers.iter().map(|(k, v)| k.value().len() + v.value().len()).sum::<usize>();
                n += h.url.value().len() + h.method.value().len();
            }
            n + agentgraph_proto::convert::flow_from_view(f).node_name.len()
        }
        Event::LostEvents { num_events_lost, .. } => *num_events_lost as usize,
        Event::NodeStatus { state, message, .. } => state.value().len() + message.value().len(),
        Event::Other { .. } => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn edited_lines_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let lines = real_lines();
        let mut line = lines[pick.index(lines.len())].clone();
        for (at, byte, kind) in edits {
            if line.is_empty() {
                break;
            }
            let i = at.index(line.len());
            match kind {
                0 => line[i] = byte,
                1 => line.truncate(i),
                2 => line.insert(i, byte),
                _ => {
                    line.remove(i);
                }
            }
        }
        if let Ok(ev) = decode_line(&line) {
            exercise(&ev);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(ev) = decode_line(&bytes) {
            exercise(&ev);
        }
    }

    #[test]
    fn structural_noise_never_panics(s in r#"[\{\}\[\]":,\\a-z0-9 ]{0,200}"#) {
        let line = format!(r#"{{"flow":{{"time":"2026-01-01T00:00:00Z","source":{s}"#);
        if let Ok(ev) = decode_line(line.as_bytes()) {
            exercise(&ev);
        }
        if let Ok(ev) = decode_line(s.as_bytes()) {
            exercise(&ev);
        }
    }
}
