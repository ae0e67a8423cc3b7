//! Golden and end-to-end tests of `agentgraph analyze`: every real recorded dump and every
//! hand-written minimal dump is analyzed by the built binary and compared with its reviewed
//! expected output (`testdata/expected/`, refreshed with `UPDATE_EXPECT=1`), and the minimal
//! dumps are also checked against their ground truth (`*.truth.json`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn analyze(args: &[&str], stdin: Option<&[u8]>) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentgraph"));
    cmd.current_dir(root()).arg("analyze").args(args);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run agentgraph");
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "agentgraph {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn report(args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let (out, _) = analyze(&all, None);
    serde_json::from_str(&out).expect("report is JSON")
}

/// Compares `actual` with the expected file, or rewrites it when `UPDATE_EXPECT=1`.
fn expect_file(name: &str, actual: &str) {
    let path = root().join("testdata/expected").join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_EXPECT=1 and review it", path.display()));
    if expected != actual {
        let diff_line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{} differs from the analyzer's output at line {}:\n expected: {}\n   actual: {}\n(run with UPDATE_EXPECT=1 to accept after review)",
            path.display(),
            diff_line + 1,
            expected.lines().nth(diff_line).unwrap_or(""),
            actual.lines().nth(diff_line).unwrap_or("")
        );
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

const REAL: [&str; 9] = [
    "basic-sample-10-flows.json",
    "basic-sample-330-dns-flows.json",
    "basic-sample-348-http-flows.json",
    "basic-sample-400-icmpv4-flows.json",
    "basic-sample-400-l7-redirected-flows.json",
    "basic-sample-400-tcp-flows.json",
    "basic-sample-400-udp-flows.json",
    "basic-sample-5-dns-flows.json",
    "basic-sample-5-http-flows.json",
];

#[test]
fn real_dumps_match_their_reviewed_reports() {
    for name in REAL {
        let file = format!("testdata/real/{name}");
        let r = report(&[&file]);
        assert_eq!(r["schema"], "agentgraph.analysis/v1");
        assert_eq!(r["input"]["skipped"], 0, "{name} has undecodable lines");
        assert_eq!(r["input"]["lines"], r["input"]["flows"], "{name}");
        expect_file(&format!("real/{}", name.replace(".json", ".report.json")), &pretty(&r));
    }
    for name in ["basic-sample-348-http-flows.json", "basic-sample-400-tcp-flows.json"] {
        let (text, _) = analyze(&[&format!("testdata/real/{name}"), "--top", "2"], None);
        expect_file(&format!("real/{}", name.replace(".json", ".txt")), &text);
    }
}

#[test]
fn http_dump_holds_the_calls_it_really_contains() {
    let r = report(&["testdata/real/basic-sample-348-http-flows.json"]);
    // 175 request and 173 response records: 172 pairs, 1 response whose request predates the
    // dump, 3 requests whose response comes after it.
    assert_eq!(r["input"]["http_requests"], 175);
    assert_eq!(r["input"]["http_responses"], 173);
    let calls: Vec<&Value> =
        r["requests"].as_array().unwrap().iter().flat_map(|q| q["calls"].as_array().unwrap()).collect();
    assert_eq!(calls.len(), 176);
    assert_eq!(calls.iter().filter(|c| c["status"].is_null()).count(), 3);
    assert_eq!(calls.iter().filter(|c| c["status"] == 503).count(), 151);
    assert_eq!(calls.iter().filter(|c| c["status"] == 200).count(), 22);
    // The first scrape of kube-dns: request at 14:28:43.059552616, latency_ns 2721758.
    let c = calls.iter().find(|c| c["start"] == "2021-10-04T14:28:43.059552616Z").unwrap();
    assert_eq!(c["server"], "kube-system/kube-dns");
    assert_eq!(c["status"], 200);
    assert!((c["duration_ms"].as_f64().unwrap() - 2.513491).abs() < 1e-6, "{c}");
    let edges: u64 = r["edges"].as_array().unwrap().iter().map(|e| e["calls"].as_u64().unwrap()).sum();
    assert_eq!(edges, 176);
}

type CallKey = (String, String, String, String, String);

fn key(c: &Value) -> CallKey {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    // Milliseconds of the start are enough to identify a call in the fixtures.
    (s("client"), s("server"), s("method"), s("path"), s("start")[..23].to_string())
}

/// Calls with their parent's key, and the set of calls of each request.
fn structure(requests: &Value) -> (BTreeMap<CallKey, Option<CallKey>>, BTreeSet<BTreeSet<CallKey>>) {
    let mut parents = BTreeMap::new();
    let mut groups = BTreeSet::new();
    for r in requests.as_array().unwrap() {
        let calls = r["calls"].as_array().unwrap();
        let by_id: BTreeMap<&str, &Value> = calls.iter().map(|c| (c["id"].as_str().unwrap(), c)).collect();
        let mut group = BTreeSet::new();
        for c in calls {
            let parent = c["parent"].as_str().map(|p| key(by_id[p]));
            parents.insert(key(c), parent);
            group.insert(key(c));
        }
        groups.insert(group);
    }
    (parents, groups)
}

fn minimal(name: &str) -> String {
    format!("testdata/minimal/{name}.jsonl")
}

#[test]
fn minimal_dumps_reconstruct_the_truth() {
    for name in [
        "traced-fanout",
        "egress-ingress-dup",
        "missing-response",
        "request-id",
        "untraced-nested",
        "concurrent-pods",
        "out-of-order",
        "malformed",
    ] {
        let r = report(&[&minimal(name)]);
        let truth: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join(format!("testdata/minimal/{name}.truth.json"))).unwrap(),
        )
        .unwrap();
        let (got_parents, got_groups) = structure(&r["requests"]);
        let (want_parents, want_groups) = structure(&truth["requests"]);
        assert_eq!(got_parents, want_parents, "{name}: calls or parents differ from the truth");
        assert_eq!(got_groups, want_groups, "{name}: requests grouped differently from the truth");
        // Status, duration and size of every call as recorded.
        let truth_calls: BTreeMap<CallKey, &Value> = truth["requests"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|q| q["calls"].as_array().unwrap())
            .map(|c| (key(c), c))
            .collect();
        for q in r["requests"].as_array().unwrap() {
            for c in q["calls"].as_array().unwrap() {
                let t = truth_calls[&key(c)];
                assert_eq!(c["status"], t["status"], "{name}: status of {c}");
                assert_eq!(c["request_bytes"], t["request_bytes"], "{name}: request_bytes of {c}");
                match (c["duration_ms"].as_f64(), t["duration_ms"].as_f64()) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 0.01, "{name}: duration of {c}: truth {b}"),
                    (a, b) => assert_eq!(a, b, "{name}: duration of {c}"),
                }
            }
        }
        expect_file(&format!("minimal/{name}.report.json"), &pretty(&r));
    }
}

#[test]
fn egress_and_ingress_copies_are_one_call() {
    let r = report(&[&minimal("egress-ingress-dup")]);
    assert_eq!(r["input"]["flows"], 12);
    assert_eq!(r["input"]["http_requests"], 3);
    assert_eq!(r["input"]["http_responses"], 3);
    assert_eq!(r["requests"][0]["calls"].as_array().unwrap().len(), 3);
}

#[test]
fn per_node_files_merge_into_the_same_report() {
    let merged = report(&[&minimal("node-kind-worker"), &minimal("node-kind-worker2"), &minimal("node-kind-worker3")]);
    let single = report(&[&minimal("egress-ingress-dup")]);
    assert_eq!(merged["requests"], single["requests"]);
    assert_eq!(merged["edges"], single["edges"]);
}

/// Overlapping dumps (the same flows recorded twice) count each flow once: the second copy of
/// a record is dropped and counted, and the report is the one of a single copy.
#[test]
fn the_same_flows_read_twice_count_once() {
    let http = root().join("testdata/real/basic-sample-348-http-flows.json");
    let once = report(&[http.to_str().unwrap()]);
    let twice = report(&[http.to_str().unwrap(), http.to_str().unwrap()]);
    assert_eq!(twice["requests"], once["requests"]);
    assert_eq!(twice["edges"], once["edges"]);
    assert_eq!(twice["input"]["http_requests"], once["input"]["http_requests"]);
    assert_eq!(twice["input"]["repeated_records"], 348);
    assert_eq!(once["input"]["repeated_records"], 0);
    let merged = report(&[&minimal("egress-ingress-dup"), &minimal("node-kind-worker2")]);
    let single = report(&[&minimal("egress-ingress-dup")]);
    assert_eq!(merged["requests"], single["requests"]);
}

/// Records later than the reorder window make wrong graphs: every format says so, the machine
/// formats on stderr and in `input`.
#[test]
fn late_records_are_reported_in_every_format() {
    let text = std::fs::read_to_string(root().join(minimal("traced-fanout"))).unwrap();
    let reversed: String = text.lines().rev().map(|l| format!("{l}\n")).collect();
    let (out, err) = analyze(&["--format", "json", "--reorder-window", "1ms", "-"], Some(reversed.as_bytes()));
    let r: Value = serde_json::from_str(&out).unwrap();
    let late = r["input"]["late_records"].as_u64().unwrap();
    assert!(late > 0, "{}", r["input"]);
    assert!(err.contains(&format!("warning: {late} records arrived later than the reorder window")), "{err}");
    let (_, err) = analyze(&["--format", "ndjson", "--reorder-window", "1ms", "-"], Some(reversed.as_bytes()));
    assert!(err.contains("later than the reorder window"), "{err}");
    let (text, _) = analyze(&["--reorder-window", "1ms", "-"], Some(reversed.as_bytes()));
    assert!(text.contains("later than the reorder window"), "{text}");
}

#[test]
fn out_of_order_lines_give_the_sorted_result() {
    let shuffled = report(&[&minimal("out-of-order")]);
    let sorted = report(&[&minimal("traced-fanout")]);
    assert_eq!(shuffled["requests"], sorted["requests"]);
    assert_eq!(shuffled["edges"], sorted["edges"]);
    assert_eq!(shuffled["agents"], sorted["agents"]);
}

#[test]
fn malformed_lines_are_counted_with_their_positions() {
    let (out, err) = analyze(&["--format", "json", &minimal("malformed")], None);
    let r: Value = serde_json::from_str(&out).unwrap();
    let expected = std::fs::read_to_string(root().join("testdata/minimal/malformed.expected-skips.txt")).unwrap();
    let lines: Vec<&str> = expected.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(r["input"]["skipped"], lines.len());
    assert_eq!(r["input"]["lost_events"], 12);
    for l in lines {
        assert!(err.contains(&format!("malformed.jsonl:{l}: ")), "line {l} not reported in:\n{err}");
    }
    let (text, _) = analyze(&[&minimal("malformed")], None);
    assert!(text.contains("not_an_event 1, not_an_object 1"), "{text}");
    assert!(text.contains("malformed.jsonl:2: line ends inside a JSON value"), "{text}");
}

#[test]
fn stdin_gzip_and_zstd_read_like_plain_files() {
    let plain = std::fs::read(root().join(minimal("request-id"))).unwrap();
    let expected = report(&[&minimal("request-id")]);
    let (out, _) = analyze(&["--format", "json", "-"], Some(&plain));
    let from_stdin: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(from_stdin["requests"], expected["requests"]);

    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("flows.jsonl.gz");
    let mut enc = flate2_writer(&gz);
    enc.write_all(&plain).unwrap();
    drop(enc);
    let zst = dir.path().join("flows.jsonl.zst");
    std::fs::write(&zst, zstd_compress(&plain)).unwrap();
    for p in [gz, zst] {
        let r = report(&[p.to_str().unwrap()]);
        assert_eq!(r["requests"], expected["requests"], "{}", p.display());
    }
}

fn flate2_writer(path: &Path) -> impl Write {
    flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast())
}

fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

#[test]
fn ndjson_streams_one_request_per_line() {
    let (out, _) = analyze(&["--format", "ndjson", &minimal("traced-fanout")], None);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let full = report(&[&minimal("traced-fanout")]);
    assert_eq!(lines.len(), full["requests"].as_array().unwrap().len());
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<&str> = full["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn demo_runs_without_input() {
    let (text, _) = analyze(&["--demo"], None);
    assert!(text.contains("agent graph"), "{text}");
    assert!(text.contains("top requests by fan-out"), "{text}");
}

/// A one-call request that carries a request id is named by it, and nothing about it counts as
/// inferred from timing.
#[test]
fn a_lone_call_is_named_by_its_request_id() {
    let http5 = root().join("testdata/real/basic-sample-5-http-flows.json");
    let r = report(&[http5.to_str().unwrap()]);
    // The first line's request, which carries `X-Request-Id: 49116c2c-…`.
    let first = r["requests"].as_array().unwrap().iter().find(|q| q["start"] == "2021-10-04T14:28:38.735173594Z");
    let first = first.expect("the first line's request");
    assert_eq!(first["calls"].as_array().unwrap().len(), 1);
    assert_eq!(first["correlation"], "request_id");
    assert_eq!(first["id"], "49116c2c-3017-4237-97e7-1ff4e16bfe28");
    let (text, _) = analyze(&[http5.to_str().unwrap()], None);
    assert!(text.contains("0 grouped by timing"), "{text}");
}

/// `hubble observe --follow | agentgraph analyze -` ends with Ctrl-C: reading stops (the stream
/// stays open here, and what comes after is not taken in), the report covers what was read, and
/// the exit status says it was cut short.
#[test]
fn ctrl_c_reports_the_input_read_so_far() {
    let dump = std::fs::read_to_string(root().join("testdata/real/basic-sample-348-http-flows.json")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentgraph"))
        .args(["analyze", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(dump.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Time to read the flows and install the handler (a wait, not a timing assertion).
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // One more line, and the stream stays open: analyze must stop on its own.
    stdin.write_all(dump.lines().next().unwrap().as_bytes()).unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "analyze kept reading after Ctrl-C");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let (text, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: reporting the input read so far"), "{err}");
    assert!(text.contains("http:  175 requests") && text.contains("requests: 153"), "{text}");
}

/// Names come from the input: an agent named 70,000 characters long (past the formatter's
/// widest padding) is printed whole in every format, not a panic.
#[test]
fn an_agent_name_of_any_length_is_printed() {
    let first = std::fs::read_to_string(root().join("testdata/real/basic-sample-5-http-flows.json")).unwrap();
    let line = first.lines().next().unwrap();
    let name = "p".repeat(70_000);
    let long = line.replace("\"k8s:app=prometheus\"", &format!("\"k8s:app={name}\""));
    assert_ne!(long, line);
    for format in ["text", "json", "ndjson"] {
        let (out, err) = analyze(&["--format", format, "-"], Some(long.as_bytes()));
        assert!(out.contains(&name), "{format}: {err}");
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_agentgraph")).args(["analyze", "/nonexistent/flows.jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open /nonexistent/flows.jsonl"), "{err}");
    // The cause once, not repeated by the error chain.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
