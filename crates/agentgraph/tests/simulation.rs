//! End-to-end accuracy tests: every built-in scenario in every correlation mode is simulated,
//! analyzed and scored against its truth by the `agentgraph` binary (simulate → analyze →
//! eval), as a user would run them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const SCENARIOS: [&str; 4] = ["support-desk", "research-swarm", "code-review", "job-spawner"];
const MODES: [&str; 3] = ["trace_context", "request_id", "none"];

fn agentgraph(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_agentgraph")).args(args).output().expect("run agentgraph");
    assert!(out.status.success(), "agentgraph {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Simulates, analyzes and evaluates; returns the eval result.
fn score(dir: &Path, scenario: &str, mode: &str, concurrency: &str, requests: &str) -> Value {
    let out = dir.join(format!("{scenario}-{mode}-{concurrency}"));
    let out_s = out.to_str().unwrap();
    agentgraph(&[
        "simulate",
        "--scenario",
        scenario,
        "--correlation",
        mode,
        "--concurrency",
        concurrency,
        "--requests",
        requests,
        "--seed",
        "11",
        "--out",
        out_s,
    ]);
    let report = agentgraph(&["analyze", "--format", "json", &format!("{out_s}/flows.jsonl")]);
    let report_path = out.join("report.json");
    std::fs::write(&report_path, &report.stdout).unwrap();
    let eval = agentgraph(&["eval", "--json", report_path.to_str().unwrap(), &format!("{out_s}/truth.json")]);
    serde_json::from_slice(&eval.stdout).unwrap()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// With trace context, a propagated request id, or serial requests, every call is found, every
/// request grouped exactly, and parents are at least as right as the simple rule on the true
/// grouping (the ceiling where one pod serves two calls of one request).
#[test]
fn propagated_ids_and_serial_requests_reconstruct_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for scenario in SCENARIOS {
        for mode in MODES {
            let mut runs = vec![("1", "40")];
            if mode != "none" {
                runs.push(("4", "40"));
            }
            for (concurrency, requests) in runs {
                let r = score(dir.path(), scenario, mode, concurrency, requests);
                let what = format!("{scenario} {mode} concurrency {concurrency}: {r}");
                assert_eq!(f(&r, "call_recall"), 1.0, "{what}");
                assert_eq!(f(&r, "call_precision"), 1.0, "{what}");
                assert_eq!(f(&r, "exact_request_rate"), 1.0, "{what}");
                assert_eq!(f(&r, "root_accuracy"), 1.0, "{what}");
                assert!(f(&r, "parent_accuracy") >= f(&r, "simple_rule_parent_accuracy"), "{what}");
                assert_eq!(f(&r, "size_accuracy"), 1.0, "{what}");
                assert!(f(&r, "latency_mae_ms") < 0.001, "{what}");
            }
        }
    }
}

/// Nothing propagated and about four requests in flight: calls are all found; parents and
/// grouping stay above the floors measured when the joint inference last changed (a
/// regression guard; the issue's targets are held by the two tests below).
#[test]
fn overlapping_untraced_requests_stay_above_measured_floors() {
    let dir = tempfile::tempdir().unwrap();
    for (scenario, parent_floor, exact_floor) in [
        ("support-desk", 0.95, 0.93),
        ("research-swarm", 0.98, 0.90),
        ("code-review", 0.98, 0.93),
        ("job-spawner", 0.99, 0.98),
    ] {
        let r = score(dir.path(), scenario, "none", "4", "60");
        let what = format!("{scenario}: {r}");
        assert_eq!(f(&r, "call_recall"), 1.0, "{what}");
        assert_eq!(f(&r, "call_precision"), 1.0, "{what}");
        assert!(f(&r, "parent_accuracy") >= parent_floor, "{what}");
        assert!(f(&r, "exact_request_rate") >= exact_floor, "{what}");
        // A confidence of 0.9 or more is to be trusted, even where parents are inferred (the
        // floor is just under the lowest measured: support-desk, 98.9 %).
        assert!(f(&r, "confident_parent_accuracy") >= 0.985, "{what}");
    }
}

/// Agent APIs put thread, run and job ids in their paths. Timing is learned per route (the
/// path with its ids as `{id}`), so research-swarm with an id in every agent's path reconstructs
/// exactly as well as without them: the simulator draws those ids from a stream of their own,
/// and the two runs differ in nothing else. Keyed by the raw path instead, every call was a
/// kind of its own: parents fell to 89 % here (79–92 % over three seeds of 200 requests) and
/// exact requests to 49 %.
#[test]
fn ids_in_paths_do_not_hide_what_timing_teaches() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agentgraph-sim/scenarios/research-swarm.toml");
    let text = std::fs::read_to_string(builtin).unwrap();
    let with_ids = text
        .replace(r#"path = "/v1/research""#, r#"path = "/v1/research/{id}""#)
        .replace(r#"path = "/v1/investigate""#, r#"path = "/v1/topics/{id}/investigate""#)
        .replace(r#"path = "/v1/summarize""#, r#"path = "/v1/summaries/{id}""#);
    assert_eq!(with_ids.matches("{id}").count(), 3, "the scenario's paths changed: update this test");
    let scenario = dir.path().join("research-swarm-ids.toml");
    std::fs::write(&scenario, with_ids).unwrap();
    let plain = score(dir.path(), "research-swarm", "none", "4", "120");
    let ids = score(dir.path(), scenario.to_str().unwrap(), "none", "4", "120");
    for key in ["call_recall", "call_precision", "parent_accuracy", "exact_request_rate"] {
        assert_eq!(f(&ids, key), f(&plain, key), "{key}: with ids {ids}, without {plain}");
    }
    let report = std::fs::read_to_string(dir.path().join("research-swarm-ids.toml-none-4/report.json")).unwrap();
    assert!(report.contains("/v1/topics/") && !report.contains("{id}"), "reports keep the real paths");
}

/// The issue's target for overlapping requests with nothing propagated: 98 % of parents and
/// 90 % of requests exact, at about four requests in flight.
fn assert_untraced_overlapping_target(scenarios: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for scenario in scenarios {
        let r = score(dir.path(), scenario, "none", "4", "200");
        assert!(f(&r, "parent_accuracy") >= 0.98, "{scenario}: {r}");
        assert!(f(&r, "exact_request_rate") >= 0.90, "{scenario}: {r}");
    }
}

/// The issue's target, met where a pod's overlapping calls come from different requests
/// (code-review, job-spawner) and where fan-outs put several calls of one request on one pod
/// (research-swarm: 98.2–99.2 % of parents over eight seeds, 98.4 % at this one).
#[test]
fn overlapping_untraced_requests_meet_the_target() {
    assert_untraced_overlapping_target(&["code-review", "job-spawner", "research-swarm"]);
}

/// The same target for support-desk, not met yet: twin workers of one fan-out on one pod make
/// the same calls a millisecond apart, so their parents are nearly as ambiguous as with trace
/// context (96.7–97.5 % over six seeds; 97.2–97.7 % with a trace id); see the README's accuracy
/// section for how many of its wrong parents the flows could have settled.
#[test]
#[ignore = "target not met: at the edge of what these flows allow (README: Accuracy, Status)"]
fn overlapping_untraced_requests_meet_the_target_with_twin_workers() {
    assert_untraced_overlapping_target(&["support-desk"]);
}

/// The ceiling tool (`crates/agentgraph-sim/tools/ceiling.py`) weighs every wrong parent of a
/// report under the scenario's timing: its verdicts add up to the wrong parents eval counts, its
/// best possible is at least what was reached, and the truth given as a report has none wrong.
#[test]
fn the_ceiling_tool_accounts_for_every_wrong_parent() {
    let dir = tempfile::tempdir().unwrap();
    let r = score(dir.path(), "support-desk", "none", "4", "60");
    let out = dir.path().join("support-desk-none-4");
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agentgraph-sim/tools/ceiling.py");
    let ceiling = |report: &Path| -> Value {
        let run = Command::new("python3")
            .arg(&tool)
            .arg("--json")
            .arg(report)
            .arg(out.join("truth.json"))
            .output()
            .expect("run python3");
        assert!(run.status.success(), "ceiling.py failed: {}", String::from_utf8_lossy(&run.stderr));
        serde_json::from_slice(&run.stdout).unwrap()
    };
    let c = ceiling(&out.join("report.json"));
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    let (matched, wrong) = (n(&c, "matched_calls"), n(&c, "wrong_parents"));
    assert!(matched.abs_diff(n(&r, "matched_calls")) <= 2, "{c} vs {r}");
    assert!(wrong > 0, "{c}");
    assert_eq!(n(&c, "favours_report") + n(&c, "close_calls") + n(&c, "clear_misses"), wrong, "{c}");
    let reached = 1.0 - wrong as f64 / matched as f64;
    assert!((reached - f(&r, "parent_accuracy")).abs() < 0.005, "{c} vs {r}");
    assert!(f(&c, "best_possible") >= reached, "{c}");

    let truth: Value = serde_json::from_slice(&std::fs::read(out.join("truth.json")).unwrap()).unwrap();
    let as_report = serde_json::json!({ "requests": truth["requests"].as_array().unwrap().iter().map(|q| {
        let calls: Vec<Value> = q["calls"].as_array().unwrap().iter().map(|c| serde_json::json!({
            "id": c["id"], "parent": c["parent"], "client": c["client"], "server": c["server"],
            "path": c["path"], "start": c["start"],
        })).collect();
        serde_json::json!({ "id": q["id"], "calls": calls })
    }).collect::<Vec<_>>() });
    let path = out.join("truth-as-report.json");
    std::fs::write(&path, as_report.to_string()).unwrap();
    let perfect = ceiling(&path);
    assert_eq!(n(&perfect, "wrong_parents"), 0, "{perfect}");
    assert_eq!(f(&perfect, "best_possible"), 1.0, "{perfect}");
}

/// A busy agent: hundreds of requests in flight on each orchestrator pod. Every call still
/// finds its parent among the calls sharing its request id, however many others the pod serves.
#[test]
fn busy_pods_still_group_requests_by_id_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let r = score(dir.path(), "support-desk", "request_id", "300", "600");
    assert_eq!(f(&r, "call_recall"), 1.0, "{r}");
    assert_eq!(f(&r, "exact_request_rate"), 1.0, "{r}");
    assert_eq!(f(&r, "root_accuracy"), 1.0, "{r}");
}

/// Core code must give the same output for the same input in every run: nothing may follow a
/// hash map's iteration order, which differs from process to process. Untraced calls left
/// undecided at the end of input, on several pods at once, showed it: slices of a simulation
/// shuffled past the reorder window leave many of them, and before the fix about one run in
/// three gave a different report.
#[test]
fn the_same_input_gives_the_same_report_in_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let sim_s = sim.to_str().unwrap();
    agentgraph(&[
        "simulate",
        "--scenario",
        "code-review",
        "--correlation",
        "none",
        "--concurrency",
        "4",
        "--requests",
        "30",
        "--seed",
        "7",
        "--out",
        sim_s,
    ]);
    let flows = std::fs::read_to_string(sim.join("flows.jsonl")).unwrap();
    let lines: Vec<&str> = flows.lines().collect();
    // Slices whose reports differed in about four runs of ten before the fix.
    for start in [120, 300, 330, 480] {
        let mut slice = lines[start..start + 200].to_vec();
        // Fisher–Yates with a fixed xorshift: the same shuffle every time. Not the simulator's
        // `Rng`: the slices above were found with this shuffle, and with that one's the test
        // passed without the fix (3 of 3 runs).
        let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ start as u64;
        for i in (1..slice.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            slice.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let path = dir.path().join(format!("shuffled-{start}.jsonl"));
        std::fs::write(&path, slice.join("\n") + "\n").unwrap();
        let path = path.to_str().unwrap();
        for format in ["ndjson", "json"] {
            let first = agentgraph(&["analyze", path, "--format", format, "-q"]).stdout;
            for _ in 0..7 {
                let again = agentgraph(&["analyze", path, "--format", format, "-q"]).stdout;
                assert!(again == first, "analyze {path} --format {format} gave two different reports");
            }
        }
    }
}

#[test]
fn same_seed_same_flows_and_per_node_files_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for d in [&a, &b] {
        agentgraph(&[
            "simulate",
            "--scenario",
            "job-spawner",
            "--requests",
            "20",
            "--seed",
            "3",
            "--per-node",
            "--out",
            d.to_str().unwrap(),
        ]);
    }
    let flows_a = std::fs::read(a.join("flows.jsonl")).unwrap();
    assert_eq!(flows_a, std::fs::read(b.join("flows.jsonl")).unwrap());
    assert_eq!(std::fs::read(a.join("truth.json")).unwrap(), std::fs::read(b.join("truth.json")).unwrap());
    let mut all: Vec<String> = String::from_utf8(flows_a).unwrap().lines().map(str::to_string).collect();
    let mut per_node: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&a).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_str().unwrap().starts_with("node-") {
            per_node.extend(std::fs::read_to_string(&p).unwrap().lines().map(str::to_string));
        }
    }
    all.sort();
    per_node.sort();
    assert_eq!(all, per_node);
    // Each node's file merged by the analyzer gives the same report as the combined file.
    let mut files: Vec<String> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("node-"))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    files.sort();
    let mut args = vec!["analyze", "--format", "json"];
    args.extend(files.iter().map(String::as_str));
    let merged: Value = serde_json::from_slice(&agentgraph(&args).stdout).unwrap();
    let combined: Value = serde_json::from_slice(
        &agentgraph(&["analyze", "--format", "json", a.join("flows.jsonl").to_str().unwrap()]).stdout,
    )
    .unwrap();
    assert_eq!(merged["requests"], combined["requests"]);
}

#[test]
fn eval_thresholds_fail_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("s");
    agentgraph(&["simulate", "--scenario", "support-desk", "--requests", "10", "--out", d.to_str().unwrap()]);
    let report = agentgraph(&["analyze", "--format", "json", d.join("flows.jsonl").to_str().unwrap()]);
    std::fs::write(d.join("report.json"), &report.stdout).unwrap();
    let eval = |truth: &Path, gates: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_agentgraph"))
            .args(["eval", d.join("report.json").to_str().unwrap(), truth.to_str().unwrap()])
            .args(gates)
            .output()
            .unwrap()
    };
    // Thresholds that hold pass; the table shows the figures.
    let out = eval(&d.join("truth.json"), &["--min-call-recall", "1.0", "--max-latency-mae-ms", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("call recall") && table.contains("100.00%"), "{table}");

    // Scored against another simulation's truth nothing matches: recall fails its threshold,
    // parent accuracy is undefined and fails its own, and the command says why.
    let other = dir.path().join("other");
    agentgraph(&["simulate", "--scenario", "code-review", "--requests", "5", "--out", other.to_str().unwrap()]);
    let out = eval(&other.join("truth.json"), &["--min-call-recall", "0.5", "--min-parent-accuracy", "0.5"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("call recall 0.0000 is below --min-call-recall"), "{err}");
    assert!(err.contains("parent accuracy is undefined"), "{err}");
    assert!(err.contains("no reported call matches a true call"), "{err}");

    // A threshold out of its range is a usage error, not a gate that can never pass.
    let out = eval(&d.join("truth.json"), &["--min-parent-accuracy", "98"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a fraction from 0 to 1"));
}

/// Where `simulate` writes is checked before it runs, and each place gets whole output: the
/// truth on stdout, a truth file closed as valid JSON when the flows' reader goes away, no
/// per-node files left from an earlier run; `eval` reads either input from stdin.
#[test]
fn simulate_outputs_are_checked_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_agentgraph")).args(args).output().unwrap();
    let refused = |args: &[&str], expected: &str| {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    };
    refused(&["simulate", "-o", "-", "--truth", "-"], "cannot both go to stdout");
    refused(&["simulate", "-o", &path("same"), "--truth", &path("same")], "name the same file");
    refused(
        &["simulate", "--out", &path("d"), "--truth", &path("t.json")],
        "with --out DIR the truth is DIR/truth.json",
    );
    refused(&["simulate", "--rate", "5", "--concurrency", "4", "-o", "-"], "cannot be used with");
    refused(&["simulate", "--duration", "18446744074s", "-o", "-"], "longest duration");
    refused(&["simulate", "--rate", "-5", "-o", "-"], "not a positive number");
    std::fs::write(path("a-file"), "").unwrap();
    refused(&["simulate", "--out", &path("a-file")], "is a file: give a directory");

    // The truth on stdout, the flows in a file.
    let out = run(&["simulate", "--requests", "3", "-o", &path("flows.jsonl"), "--truth", "-"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let truth: Value = serde_json::from_slice(&out.stdout).expect("the truth on stdout is JSON");
    assert_eq!(truth["requests"].as_array().unwrap().len(), 3);

    // The flows' reader stops early (`| head`): a quiet exit, and the truth file is valid JSON.
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentgraph"))
        .args(["simulate", "--requests", "300", "-o", "-", "--truth", &path("early.json")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4096];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
    let early: Value = serde_json::from_slice(&std::fs::read(path("early.json")).unwrap()).expect("whole JSON");
    assert!(!early["requests"].as_array().unwrap().is_empty());

    // A run without --per-node into a directory that had them leaves none behind.
    let d = path("run");
    assert!(run(&["simulate", "--requests", "3", "--per-node", "--out", &d]).status.success());
    assert!(std::fs::read_dir(&d).unwrap().any(|e| e.unwrap().file_name().to_str().unwrap().starts_with("node-")));
    assert!(run(&["simulate", "--requests", "3", "--out", &d]).status.success());
    assert!(!std::fs::read_dir(&d).unwrap().any(|e| e.unwrap().file_name().to_str().unwrap().starts_with("node-")));

    // eval reads the report from stdin.
    let report = run(&["analyze", "--format", "json", &format!("{d}/flows.jsonl")]);
    let mut eval = Command::new(env!("CARGO_BIN_EXE_agentgraph"))
        .args(["eval", "--json", "-", &format!("{d}/truth.json")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut eval.stdin.take().unwrap(), &report.stdout).unwrap();
    let scored = eval.wait_with_output().unwrap();
    assert!(scored.status.success(), "{}", String::from_utf8_lossy(&scored.stderr));
    let scored: Value = serde_json::from_slice(&scored.stdout).unwrap();
    assert_eq!(f(&scored, "call_recall"), 1.0);
}

/// Output to a reader that has gone (`| head`) ends the command quietly, never with a panic.
#[test]
fn a_closed_stdout_is_a_quiet_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("s");
    agentgraph(&["simulate", "--requests", "3", "--out", d.to_str().unwrap()]);
    let report = agentgraph(&["analyze", "--format", "json", d.join("flows.jsonl").to_str().unwrap()]);
    std::fs::write(d.join("report.json"), &report.stdout).unwrap();
    let (r, t, f) = (d.join("report.json"), d.join("truth.json"), d.join("flows.jsonl"));
    let (r, t, f) = (r.to_str().unwrap(), t.to_str().unwrap(), f.to_str().unwrap());
    for args in [
        vec!["simulate", "--list"],
        vec!["simulate", "--requests", "3", "-o", "-"],
        vec!["eval", r, t],
        vec!["eval", "--json", r, t],
        vec!["analyze", "--format", "json", f],
        vec!["analyze", f],
        vec!["config", "print-default"],
    ] {
        // A pipe whose reading end is closed: every write fails with a broken pipe.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_agentgraph")).args(&args).stdout(writer).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("panicked"), "{args:?}: {:?} {err}", out.status);
    }
}

#[test]
fn unknown_scenario_and_bad_mode_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentgraph"))
        .args(["simulate", "--scenario", "nope", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario `nope`"));
    let out = Command::new(env!("CARGO_BIN_EXE_agentgraph"))
        .args(["simulate", "--correlation", "psychic", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown correlation mode"));
}

/// Standard input gets the learning pass files get (read once, kept in a temporary copy for
/// the main pass): the same report, so the same parents, as the file. Without it, the early
/// parents of an untraced dump piped in were decided before any timing was learned
/// (support-desk, c=4, seed 3: 85 % of parents against 97 %).
#[test]
fn standard_input_learns_call_timing_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    score(dir.path(), "support-desk", "none", "4", "60");
    let flows = dir.path().join("support-desk-none-4/flows.jsonl");
    let from_file: Value =
        serde_json::from_slice(&agentgraph(&["analyze", "--format", "json", flows.to_str().unwrap()]).stdout).unwrap();
    let piped = Command::new(env!("CARGO_BIN_EXE_agentgraph"))
        .args(["analyze", "--format", "json", "-"])
        .stdin(std::fs::File::open(&flows).unwrap())
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    let from_stdin: Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(from_stdin["requests"], from_file["requests"]);
    assert_eq!(from_stdin["input"], from_file["input"]);
    // And the learning pass made a difference here (else this test would hold nothing).
    let single: Value = serde_json::from_slice(
        &agentgraph(&["analyze", "--format", "json", "--single-pass", flows.to_str().unwrap()]).stdout,
    )
    .unwrap();
    assert_ne!(single["requests"], from_file["requests"]);
}
