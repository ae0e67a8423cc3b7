//! The metrics as users meet them: a real Prometheus server (installed by `.ci/run`) scrapes a
//! collector fed by the replay server with a simulated cluster; the test asserts through
//! Prometheus's HTTP API that every family exists, that call counts per edge equal the
//! simulator's truth, that histogram counts equal the number of requests, that every query of
//! every dashboard panel returns data, and that the scrape passes a strict OpenMetrics parser.

mod common;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, address_in, http_get, start};

use serde_json::Value;

/// Starts agentgraph and returns the address it prints on the line containing `marker`.
fn start_agentgraph(args: &[&str], marker: &str) -> (Proc, String) {
    let (p, line) = start(args, marker);
    (p, address_in(&line))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get(address: &str, path: &str) -> String {
    http_get(address, path).1
}

fn query(prometheus: &str, q: &str) -> Vec<Value> {
    let body = get(prometheus, &format!("/api/v1/query?query={}", encode(q)));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("bad answer to {q}: {body}"));
    assert_eq!(v["status"], "success", "{q}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn prometheus_scrapes_every_family_and_every_dashboard_query_has_data() {
    if Command::new("prometheus").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must install prometheus (see .ci/run)");
        eprintln!("prometheus is not installed here; skipping (CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let flows = common::simulate(dir.path(), "support-desk", "40", "3");
    let sim = flows.parent().unwrap().to_path_buf();
    let (_replay, hubble) = start_agentgraph(
        &["replay", sim.join("flows.jsonl").to_str().unwrap(), "--listen", "127.0.0.1:0", "--max-speed"],
        "replaying",
    );
    let (_collect, collector) = start_agentgraph(
        &["collect", "--hubble-server", &hubble, "--listen", "127.0.0.1:0", "--linger", "1s", "--reorder-window", "1s"],
        "serving /healthz",
    );

    // Wait until every request has been emitted.
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(sim.join("truth.json")).unwrap()).unwrap();
    let requests = truth["requests"].as_array().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Value = serde_json::from_str(&get(&collector, "/readyz")).unwrap();
        if ready["requests_emitted"].as_u64().unwrap() as usize >= requests.len() && ready["open_requests"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "collector did not emit every request: {ready}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // The scrape passes a strict OpenMetrics parser.
    let scrape = get(&collector, "/metrics");
    let scrape_file = dir.path().join("scrape.txt");
    std::fs::write(&scrape_file, &scrape).unwrap();
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys; from prometheus_client.openmetrics.parser import text_string_to_metric_families as p; \
             n = sum(1 for _ in p(open(sys.argv[1]).read())); print(n)",
            scrape_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "strict OpenMetrics parser rejected the scrape: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );

    // A real Prometheus scrapes the collector.
    let port = free_port();
    let prometheus = format!("127.0.0.1:{port}");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: agentgraph\n    static_configs:\n      - targets: ['{collector}']\n"
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new("prometheus")
            .args([
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                &format!("--web.listen-address={prometheus}"),
                "--enable-feature=exemplar-storage",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    // At least four scrapes, so rate() over 1m has points.
    loop {
        if TcpStream::connect(&prometheus).is_ok() {
            let up = query(&prometheus, "up{job=\"agentgraph\"}");
            let samples = query(&prometheus, "count_over_time(up{job=\"agentgraph\"}[1m])");
            if up.first().is_some_and(|s| value(s) == 1.0) && samples.first().is_some_and(|s| value(s) >= 4.0) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "prometheus did not scrape the collector");
        std::thread::sleep(Duration::from_millis(500));
    }
    let samples = query(&prometheus, "scrape_samples_scraped{job=\"agentgraph\"}");
    assert!(value(&samples[0]) > 100.0, "{samples:?}");

    // Every family exists.
    for family in [
        "agentgraph_calls_total",
        "agentgraph_call_duration_seconds_count",
        "agentgraph_call_request_bytes_count",
        "agentgraph_call_response_bytes_count",
        "agentgraph_requests_total",
        "agentgraph_request_duration_seconds_count",
        "agentgraph_request_calls_count",
        "agentgraph_request_depth_count",
        "agentgraph_request_fan_out_count",
        "agentgraph_request_concurrent_fan_out_count",
        "agentgraph_request_context_bytes_count",
        "agentgraph_agent_fan_out_count",
        "agentgraph_agent_concurrent_fan_out_count",
        "agentgraph_agent_self_seconds_count",
        "traces_service_graph_request_total",
        "traces_service_graph_request_failed_total",
        "traces_service_graph_request_server_seconds_count",
        "traces_service_graph_request_client_seconds_count",
        "agentgraph_flows_received_total",
        "agentgraph_flows_discarded_total",
        "agentgraph_hubble_lost_events_total",
        "agentgraph_hubble_reconnects_total",
        "agentgraph_open_requests",
        "agentgraph_requests_expired_total",
        "agentgraph_records_late_total",
        "agentgraph_build_info",
    ] {
        assert!(!query(&prometheus, family).is_empty(), "family {family} is missing");
    }

    // Call counts per edge equal the truth.
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in requests {
        for c in r["calls"].as_array().unwrap() {
            *want.entry((c["client"].as_str().unwrap().into(), c["server"].as_str().unwrap().into())).or_default() +=
                1.0;
        }
    }
    let got: BTreeMap<(String, String), f64> = query(&prometheus, "sum by (client, server) (agentgraph_calls_total)")
        .iter()
        .map(|s| {
            ((s["metric"]["client"].as_str().unwrap().into(), s["metric"]["server"].as_str().unwrap().into()), value(s))
        })
        .collect();
    assert_eq!(got, want);
    // Histogram counts equal the number of requests.
    let count = query(&prometheus, "sum(agentgraph_request_duration_seconds_count)");
    assert_eq!(value(&count[0]) as usize, requests.len());
    let total = query(&prometheus, "sum(agentgraph_requests_total)");
    assert_eq!(value(&total[0]) as usize, requests.len());

    // Every query of every dashboard panel returns data.
    let dashboards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards");
    let out = Command::new("python3").arg(dashboards.join("list_queries.py")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let expr = fields.last().unwrap();
        let result = query(&prometheus, expr);
        assert!(!result.is_empty(), "dashboard query returned no data: {line}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} dashboard queries found");
}
