//! `agentgraph simulate` and `agentgraph eval`: wiring of the simulator and the evaluation to
//! files and the terminal.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use agentgraph_sim::eval::{EvalOptions, Thresholds, evaluate};
use agentgraph_sim::scenario::BUILTIN;
use agentgraph_sim::{CorrelationMode, Scenario, SimOptions, Simulator, TruthWriter};
use anyhow::{Context, Result, anyhow};

use crate::cli::{EvalArgs, SimulateArgs};

pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    if args.list {
        for (name, text) in BUILTIN {
            let s = Scenario::parse(name, text)?;
            println!("{name:16} {}", s.description);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Checked here: clap's `requires` lets a flag through when a conflicting option is given.
    if args.per_node && args.out.is_none() {
        return Err(anyhow!("--per-node writes its files next to flows.jsonl: give a directory with --out DIR"));
    }
    let scenario = Scenario::load(&args.scenario)?;
    let correlation = args.correlation.as_deref().map(CorrelationMode::parse).transpose().map_err(|e| anyhow!(e))?;
    let requests = match (args.requests, args.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(100),
    };
    let opts = SimOptions {
        seed: args.seed,
        requests,
        rate: args.rate,
        duration: args.duration,
        correlation,
        concurrency: args.concurrency,
        ..SimOptions::default()
    };
    let mode = correlation.unwrap_or(scenario.correlation);
    let started = Instant::now();

    let (mut flows, truth_path): (Box<dyn Write>, Option<std::path::PathBuf>) = match (&args.out, &args.output) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let path = dir.join("flows.jsonl");
            let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            (Box::new(BufWriter::with_capacity(1 << 20, f)), Some(dir.join("truth.json")))
        }
        (None, Some(path)) if path == "-" => {
            (Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())), args.truth.clone())
        }
        (None, Some(path)) => {
            let f = File::create(path).with_context(|| format!("cannot create {path}"))?;
            (Box::new(BufWriter::with_capacity(1 << 20, f)), args.truth.clone())
        }
        (None, None) => return Err(anyhow!("say where the flows go: --out DIR, or -o FILE (`-o -` for stdout)")),
    };
    let mut truth = match &truth_path {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Some(TruthWriter::new(BufWriter::new(f), &scenario.name, args.seed, mode)?)
        }
        None => None,
    };
    let mut node_files: Vec<Option<BufWriter<File>>> = (0..scenario.nodes).map(|_| None).collect();
    let per_node_dir = if args.per_node { args.out.clone() } else { None };

    let simulator = Simulator::new(&scenario, opts);
    let summary = simulator.run(
        |node, line| {
            flows.write_all(line.as_bytes())?;
            flows.write_all(b"\n")?;
            if let Some(dir) = &per_node_dir {
                if node_files[node].is_none() {
                    let path = dir.join(format!("node-{}.jsonl", agentgraph_sim::hubble::node_name(node)));
                    node_files[node] = Some(BufWriter::new(File::create(path)?));
                }
                let f = node_files[node].as_mut().expect("opened above");
                f.write_all(line.as_bytes())?;
                f.write_all(b"\n")?;
            }
            Ok(())
        },
        |r| match truth.as_mut() {
            Some(t) => t.request(r),
            None => Ok(()),
        },
    );
    let summary = match summary {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other?,
    };
    flows.flush()?;
    for f in node_files.iter_mut().flatten() {
        f.flush()?;
    }
    if let Some(t) = truth {
        t.finish()?;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "agentgraph: simulated {} ({}): {} requests, {} calls, {} flows ({} L7 HTTP records) over {:.1} s of cluster time in {:.2} s ({:.0} flows/s){}",
        scenario.name,
        mode.as_str(),
        summary.requests,
        summary.calls,
        summary.flows,
        summary.http_records,
        summary.simulated_ns as f64 / 1e9,
        secs,
        summary.flows as f64 / secs.max(1e-9),
        truth_path.map(|p| format!("; truth in {}", p.display())).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn eval(args: EvalArgs) -> Result<ExitCode> {
    let read = |p: &std::path::Path| -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
    };
    let report = read(&args.report)?;
    let truth = read(&args.truth)?;
    let result =
        evaluate(&report, &truth, &EvalOptions { match_tolerance_ms: args.tolerance_ms }).map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("{}", result.table().trim_end());
    }
    if result.matched_calls == 0 && result.true_calls > 0 {
        eprintln!(
            "agentgraph: eval: no reported call matches a true call: is {} the analysis of the flows behind {}?",
            args.report.display(),
            args.truth.display()
        );
    }
    let thresholds = Thresholds {
        min_call_recall: args.min_call_recall,
        min_call_precision: args.min_call_precision,
        min_parent_accuracy: args.min_parent_accuracy,
        min_root_accuracy: args.min_root_accuracy,
        min_exact_requests: args.min_exact_requests,
        min_exact_fan_out_depth: args.min_exact_fan_out_depth,
        min_size_accuracy: args.min_size_accuracy,
        min_confident_parent_accuracy: args.min_confident_parent_accuracy,
        max_latency_mae_ms: args.max_latency_mae_ms,
    };
    let failures = thresholds.check(&result);
    for f in &failures {
        eprintln!("agentgraph: eval: {f}");
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
