//! Live-collection tests with real parts on loopback: the replay server speaks Hubble's gRPC
//! Observer API, the collector follows it, and the request graphs it writes must equal what
//! `analyze` finds in the same dump — also across a server restart and over TLS.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, address_in, bin, http_get, start};

fn simulate(dir: &Path, requests: &str) -> PathBuf {
    common::simulate(dir, "support-desk", requests, "5")
}

/// The request graphs `analyze` finds in one streaming pass (what a collector can do), one
/// canonical JSON line each.
fn analyzed(flows: &Path) -> BTreeSet<String> {
    let out = Command::new(bin())
        .args(["analyze", "--single-pass", "--format", "ndjson", flows.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn lines(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// Waits until `path` has stopped growing for a while (the replay has delivered everything).
fn wait_until_settled(path: &Path, at_least: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let n = line_count(path);
        if n != last.0 {
            last = (n, Instant::now());
        } else if n >= at_least && last.1.elapsed() > Duration::from_secs(3) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The collector's /readyz: the body as served, and parsed.
fn readyz(http: &str) -> (String, serde_json::Value) {
    let (_, body) = http_get(http, "/readyz");
    let ready = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (body, ready)
}

/// Polls /readyz until its body contains `wanted`, for at most `timeout`; returns the last body.
fn wait_for_readyz(http: &str, wanted: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let body = http_get(http, "/readyz").1;
        if body.contains(wanted) || Instant::now() >= deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn collector(hubble: &str, output: &Path, extra: &[&str]) -> (Proc, String) {
    let mut args =
        vec!["collect", "--hubble-server", hubble, "--listen", "127.0.0.1:0", "--output", output.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (p, line) = start(&args, "serving /healthz");
    (p, address_in(&line))
}

#[test]
fn collector_over_grpc_equals_offline_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let flows = simulate(dir.path(), "30");
    let expected = analyzed(&flows);
    let (mut replay, line) =
        start(&["replay", flows.to_str().unwrap(), "--listen", "127.0.0.1:0", "--max-speed"], "replaying");
    let hubble = address_in(&line);
    let output = dir.path().join("graphs.ndjson");
    let (mut collect, http) = collector(&hubble, &output, &[]);
    assert_eq!(http_get(&http, "/healthz").0, 200);
    wait_until_settled(&output, expected.len() / 2, Duration::from_secs(60));
    let (code, body) = http_get(&http, "/readyz");
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["connected"], true);
    assert!(ready["flows_received"].as_u64().unwrap() > 0, "{body}");
    // Every graph counted is already on disk, before any shutdown flush.
    assert_eq!(line_count(&output) as u64, ready["requests_emitted"].as_u64().unwrap(), "{body}");
    assert!(collect.terminate().success());
    assert_eq!(lines(&output), expected);
    replay.terminate();
}

/// A collector that cannot deliver its graphs stops instead of reporting ready while losing
/// them: quietly when its reader closes the pipe (`collect --output - | head`), with the error
/// (exit 2) when the output fails (a full disk).
#[test]
fn a_collector_whose_output_fails_stops() {
    let dir = tempfile::tempdir().unwrap();
    let flows = simulate(dir.path(), "30");
    let (mut replay, line) =
        start(&["replay", flows.to_str().unwrap(), "--listen", "127.0.0.1:0", "--max-speed", "--loop"], "replaying");
    let hubble = address_in(&line);
    let wait = |child: &mut std::process::Child| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the collector kept running without its output");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let args = ["collect", "--hubble-server", &hubble, "--listen", "127.0.0.1:0", "--output"];
    let mut reader =
        Command::new(bin()).args(args).arg("-").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(reader.stdout.take().unwrap()), &mut first).unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone (dropped with its buffer): the next graph written ends the collector.
    assert!(wait(&mut reader).success());
    if Path::new("/dev/full").exists() {
        let full = Command::new(bin()).args(args).arg("/dev/full").stdout(Stdio::null()).stderr(Stdio::piped()).spawn();
        let out = {
            let mut child = full.unwrap();
            let status = wait(&mut child);
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            (status, err)
        };
        assert_eq!(out.0.code(), Some(2), "{}", out.1);
        assert!(out.1.contains("cannot write the output"), "{}", out.1);
    }
    replay.terminate();
}

/// A relay merges many nodes, so flows arrive only roughly in time order: out-of-order flows on
/// a healthy stream are ordered by the engine's reorder window, none dropped as "already seen".
#[test]
fn out_of_order_flows_on_one_stream_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let flows = simulate(dir.path(), "30");
    // Lines within 500 ms of event time of each other reversed: out of order, but well inside
    // the 2 s reorder window.
    let text = std::fs::read_to_string(&flows).unwrap();
    let time = |line: &str| {
        let at = line.find("\"time\":\"").unwrap() + 8;
        agentgraph_proto::time::parse_rfc3339_nanos(line.as_bytes()[at..at + 30].split(|&c| c == b'"').next().unwrap())
            .unwrap()
    };
    let mut groups: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        match groups.last_mut() {
            Some(g) if time(line) - time(g[0]) < 500_000_000 => g.push(line),
            _ => groups.push(vec![line]),
        }
    }
    let shuffled: String = groups.iter().flat_map(|g| g.iter().rev()).map(|l| format!("{l}\n")).collect();
    let ooo = dir.path().join("ooo.jsonl");
    std::fs::write(&ooo, shuffled).unwrap();
    let expected = analyzed(&ooo);
    let (mut replay, line) =
        start(&["replay", ooo.to_str().unwrap(), "--listen", "127.0.0.1:0", "--max-speed"], "replaying");
    let output = dir.path().join("graphs.ndjson");
    let (mut collect, http) = collector(&address_in(&line), &output, &[]);
    wait_until_settled(&output, expected.len() / 2, Duration::from_secs(60));
    let (body, ready) = readyz(&http);
    assert_eq!(ready["flows_discarded_duplicate"], 0, "{body}");
    assert!(collect.terminate().success());
    assert_eq!(lines(&output), expected);
    replay.terminate();
}

/// A server that accepts the connection and never answers is given up on after the connect
/// timeout, with the reason in /readyz, instead of holding the collector forever.
#[test]
fn a_server_that_accepts_and_says_nothing_is_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let output = dir.path().join("graphs.ndjson");
    let (mut collect, http) = collector(&silent, &output, &["--connect-timeout", "1s"]);
    let body = wait_for_readyz(&http, "no answer within", Duration::from_secs(20));
    assert!(body.contains("no answer within 1s"), "{body}");
    assert!(body.contains("\"ready\":false") && body.contains("\"reconnects\":0"), "{body}");
    assert!(collect.terminate().success());
}

#[test]
fn collector_survives_a_replay_restart_without_duplicates_or_loss() {
    let dir = tempfile::tempdir().unwrap();
    let flows = simulate(dir.path(), "40");
    let expected = analyzed(&flows);
    let f = flows.to_str().unwrap();
    // Recorded pace ×50: the stream lasts several seconds, long enough to cut it in the middle.
    let (first, line) = start(&["replay", f, "--listen", "127.0.0.1:0", "--speed", "50"], "replaying");
    let hubble = address_in(&line);
    let output = dir.path().join("graphs.ndjson");
    let (mut collect, http) = collector(&hubble, &output, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    // Killed, not stopped: the stream breaks mid-flight, for longer than the reorder window.
    drop(first);
    std::thread::sleep(Duration::from_millis(3000));
    let (_, ready) = http_get(&http, "/readyz");
    assert!(ready.contains("\"connected\":false"), "{ready}");
    assert!(!ready.contains("\"last_error\":\"\""), "the failure is explained: {ready}");
    let (mut second, _) = start(&["replay", f, "--listen", &hubble, "--speed", "50"], "replaying");
    wait_until_settled(&output, expected.len() / 2, Duration::from_secs(90));
    let (body, ready) = readyz(&http);
    assert!(ready["reconnects"].as_u64().unwrap() >= 1, "{body}");
    assert!(ready["flows_discarded_duplicate"].as_u64().unwrap() >= 1, "{body}");
    // Event time stood still while disconnected: the backlog after the reconnect is not late.
    assert_eq!(ready["records_late"], 0, "{body}");
    assert_eq!(ready["last_error"], "", "cleared once connected again: {body}");
    assert!(collect.terminate().success());
    let got = lines(&output);
    assert_eq!(got.len(), expected.len(), "requests: got {} expected {}", got.len(), expected.len());
    assert_eq!(got, expected);
    second.terminate();
}

/// A server frozen mid-stream (the process stopped: the connection stays up, nothing comes) is
/// noticed by the silence check and left; when it wakes, the collector reconnects and its
/// backlog is neither late nor lost: the graphs equal the offline analysis.
#[test]
fn a_frozen_server_is_noticed_and_its_backlog_is_not_late() {
    let dir = tempfile::tempdir().unwrap();
    let flows = simulate(dir.path(), "40");
    let expected = analyzed(&flows);
    let f = flows.to_str().unwrap();
    let (mut replay, line) = start(&["replay", f, "--listen", "127.0.0.1:0", "--speed", "50"], "replaying");
    let hubble = address_in(&line);
    let output = dir.path().join("graphs.ndjson");
    let (mut collect, http) = collector(&hubble, &output, &["--connect-timeout", "2s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = replay.0.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let body = wait_for_readyz(&http, "\"connected\":false", Duration::from_secs(40));
    assert!(body.contains("\"connected\":false"), "{body}");
    assert!(body.contains("no flows for 10s") || body.contains("no answer within 2s"), "the reason: {body}");
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    wait_until_settled(&output, expected.len() / 2, Duration::from_secs(90));
    let (body, ready) = readyz(&http);
    assert_eq!(ready["records_late"], 0, "{body}");
    assert!(collect.terminate().success());
    assert_eq!(lines(&output), expected);
    replay.terminate();
}

#[test]
fn collector_speaks_mtls_to_the_replay_server() {
    let dir = tempfile::tempdir().unwrap();
    let flows = simulate(dir.path(), "10");
    let expected = analyzed(&flows);
    // A CA and a server certificate for localhost, made here.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    // mTLS: the collector presents a client certificate from the same CA.
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = rcgen::CertificateParams::new(vec!["agentgraph-collector".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p.to_str().unwrap().to_string()
    };
    let ca_pem = write("ca.pem", ca.pem());
    let cert_pem = write("server.pem", server_cert.pem());
    let key_pem = write("server.key", server_key.serialize_pem());
    let client_pem = write("client.pem", client_cert.pem());
    let client_key_pem = write("client.key", client_key.serialize_pem());
    let (mut replay, line) = start(
        &[
            "replay",
            flows.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--max-speed",
            "--tls-cert",
            &cert_pem,
            "--tls-key",
            &key_pem,
            "--tls-client-ca",
            &ca_pem,
        ],
        "replaying",
    );
    let hubble = format!("tls://{}", address_in(&line));
    let output = dir.path().join("graphs.ndjson");
    // Without a client certificate the server refuses the collector.
    let refused = dir.path().join("refused.ndjson");
    let (mut anonymous, http) = collector(&hubble, &refused, &["--tls-ca", &ca_pem, "--tls-server-name", "localhost"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = http_get(&http, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(anonymous.terminate().success());
    let (mut collect, _) = collector(
        &hubble,
        &output,
        &[
            "--tls-ca",
            &ca_pem,
            "--tls-server-name",
            "localhost",
            "--tls-cert",
            &client_pem,
            "--tls-key",
            &client_key_pem,
        ],
    );
    wait_until_settled(&output, expected.len() / 2, Duration::from_secs(60));
    assert!(collect.terminate().success());
    assert_eq!(lines(&output), expected);
    replay.terminate();
}

#[test]
fn default_config_round_trips() {
    let out = Command::new(bin()).args(["config", "print-default"]).output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentgraph.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("hubble_server = \"localhost:4245\""), "{text}");
    // A collector started from that file (with a bad listen address from the flag) fails
    // clearly: the file parsed, the flag won.
    let bad = Command::new(bin())
        .args(["collect", "--config", path.to_str().unwrap(), "--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid listen address `nowhere`"));
}

/// A cluster that never answers cannot push the collector past its bound on held calls: the
/// oldest requests are emitted early (counted), and every call is still reported.
#[test]
fn a_flood_of_unanswered_calls_stays_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios/never-answers.toml");
    let sim = dir.path().join("flood");
    let status = Command::new(bin())
        .args([
            "simulate",
            "--scenario",
            scenario.to_str().unwrap(),
            "--requests",
            "300",
            "--out",
            sim.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let flows = sim.join("flows.jsonl");
    let (mut replay, line) =
        start(&["replay", flows.to_str().unwrap(), "--listen", "127.0.0.1:0", "--speed", "20"], "replaying");
    let output = dir.path().join("graphs.ndjson");
    let bound = 40u64;
    let (mut collect, http) =
        collector(&address_in(&line), &output, &["--max-open-calls", &bound.to_string(), "--response-timeout", "10m"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = 0;
    let mut received = 0;
    while Instant::now() < deadline {
        let (_, r) = readyz(&http);
        peak = peak.max(r["open_calls"].as_u64().unwrap());
        let now = r["flows_received"].as_u64().unwrap();
        if now > 0 && now == received {
            break;
        }
        received = now;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(peak <= bound, "held {peak} calls, bound {bound}");
    let (body, r) = readyz(&http);
    assert!(r["requests_emitted_early"].as_u64().unwrap() > 0, "{body}");
    // A response arriving after its request was emitted early is reported as a call of its
    // own, and counted.
    let late = r["responses_without_request"].as_u64().unwrap() as usize;
    assert!(collect.terminate().success());
    let calls: usize = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["calls"].as_array().unwrap().len())
        .sum();
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sim.join("truth.json")).unwrap()).unwrap();
    let true_calls: usize =
        truth["requests"].as_array().unwrap().iter().map(|q| q["calls"].as_array().unwrap().len()).sum();
    assert_eq!(calls, true_calls + late, "every call is reported, early or not");
    replay.terminate();
}

#[test]
fn raw_hubble_filters_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let flows = simulate(dir.path(), "20");
    let (mut replay, line) =
        start(&["replay", flows.to_str().unwrap(), "--listen", "127.0.0.1:0", "--max-speed"], "replaying");
    let output = dir.path().join("graphs.ndjson");
    // Only calls to the LLM gateway: every request graph then holds LLM calls only.
    let (mut collect, _) = collector(
        &address_in(&line),
        &output,
        &["--whitelist", r#"{"destination_pod":["llm/"]}"#, "--whitelist", r#"{"source_pod":["llm/"]}"#],
    );
    wait_until_settled(&output, 1, Duration::from_secs(60));
    assert!(collect.terminate().success());
    let text = std::fs::read_to_string(&output).unwrap();
    let mut calls = 0;
    for l in text.lines() {
        let g: serde_json::Value = serde_json::from_str(l).unwrap();
        for c in g["calls"].as_array().unwrap() {
            assert_eq!(c["server"], "llm/llm-gateway", "{c}");
            calls += 1;
        }
    }
    assert!(calls > 10, "{calls} calls");
    replay.terminate();
    let bad = Command::new(bin()).args(["collect", "--whitelist", r#"{"dns_query":["x"]}"#]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("filter field `dns_query` is not supported"));
}
