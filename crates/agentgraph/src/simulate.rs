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
        // Written, not printed: `println!` panics when the reader has gone (`| head`).
        let mut out = io::stdout().lock();
        for (name, text) in BUILTIN {
            let s = Scenario::parse(name, text)?;
            writeln!(out, "{name:16} {}", s.description)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Checked here: clap's `requires` lets a flag through when a conflicting option is given.
    if args.per_node && args.out.is_none() {
        return Err(anyhow!("--per-node writes its files next to flows.jsonl: give a directory with --out DIR"));
    }
    if args.truth.is_some() && args.out.is_some() {
        return Err(anyhow!("--truth is for -o FILE: with --out DIR the truth is DIR/truth.json"));
    }
    if let (Some(flows), Some(truth)) = (&args.output, &args.truth) {
        if flows == "-" && truth == "-" {
            return Err(anyhow!("the flows and the truth cannot both go to stdout: give --truth a file"));
        }
        let absolute = |p: &str| std::path::absolute(p).unwrap_or_else(|_| p.into());
        if flows != "-" && truth != "-" && absolute(flows) == absolute(truth) {
            return Err(anyhow!("-o and --truth name the same file, {flows}: give them different files"));
        }
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

    let (mut flows, truth_path): (Box<dyn Write>, Option<String>) = match (&args.out, &args.output) {
        (Some(dir), _) => {
            if dir.exists() && !dir.is_dir() {
                return Err(anyhow!(
                    "--out {} is a file: give a directory (or -o FILE for the flows alone)",
                    dir.display()
                ));
            }
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            remove_node_files(dir)?;
            let path = dir.join("flows.jsonl");
            let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            (Box::new(BufWriter::with_capacity(1 << 20, f)), Some(dir.join("truth.json").display().to_string()))
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
    let truth_out: Option<Box<dyn Write>> = match truth_path.as_deref() {
        Some("-") => Some(Box::new(BufWriter::new(io::stdout().lock()))),
        Some(p) => Some(Box::new(BufWriter::new(File::create(p).with_context(|| format!("cannot create {p}"))?))),
        None => None,
    };
    let mut truth = truth_out.map(|out| TruthWriter::new(out, &scenario.name, args.seed, mode)).transpose()?;
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
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            // The reader of the flows (or of the truth) has gone, as `| head` does: a quiet
            // stop, but a truth file is still closed as valid JSON, holding the requests
            // simulated so far.
            if let Some(t) = truth
                && let Err(e) = t.finish().and_then(|mut out| out.flush())
                && e.kind() != io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    flows.flush()?;
    for f in node_files.iter_mut().flatten() {
        f.flush()?;
    }
    if let Some(t) = truth {
        t.finish()?.flush()?;
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
        match truth_path.as_deref() {
            Some("-") => "; truth on stdout".to_string(),
            Some(p) => format!("; truth in {p}"),
            None => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Removes the per-node files of an earlier run from an output directory, so that none is
/// left beside this run's flows (a run with fewer nodes, or without --per-node).
fn remove_node_files(dir: &std::path::Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("node-") && name.ends_with(".jsonl") && path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

pub fn eval(args: EvalArgs) -> Result<ExitCode> {
    if args.report == "-" && args.truth == "-" {
        return Err(anyhow!("only one of the report and the truth can be read from standard input"));
    }
    let read = |p: &str| -> Result<serde_json::Value> {
        let text = if p == "-" {
            io::read_to_string(io::stdin().lock()).context("cannot read standard input")?
        } else {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {p}"))?
        };
        let name = if p == "-" { "standard input" } else { p };
        serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))
    };
    let report = read(&args.report)?;
    let truth = read(&args.truth)?;
    let result =
        evaluate(&report, &truth, &EvalOptions { match_tolerance_ms: args.tolerance_ms }).map_err(|e| anyhow!(e))?;
    if args.json {
        writeln!(io::stdout().lock(), "{}", serde_json::to_string_pretty(&result)?)?;
    } else {
        writeln!(io::stdout().lock(), "{}", result.table().trim_end())?;
    }
    // A report of other flows matches a few calls by chance at most: recall this low says the
    // two files do not belong together, more likely than a poor analysis.
    if result.true_calls > 0 && (result.matched_calls as f64) < 0.5 * result.true_calls as f64 {
        let matched = match result.matched_calls {
            0 => "no reported call matches a true call".to_string(),
            n => format!("only {n} of {} true calls match a reported call", result.true_calls),
        };
        eprintln!("agentgraph: eval: {matched}: is {} the analysis of the flows behind {}?", args.report, args.truth);
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
