//! `agentgraph analyze`: wires dump files through the engine into the chosen output format.

use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agentgraph_core::report::{Aggregates, InputJson, RequestJson, SCHEMA, StartOrder, TopK};
use agentgraph_core::{Correlation, Engine, EngineConfig, EngineStats, NormalizeConfig, RequestGraph, TimingModel};
use agentgraph_ingest::{DumpReader, ReadStats};
use agentgraph_proto::Event;
use anyhow::{Result, bail};

use crate::cli::{AnalyzeArgs, Format};
use crate::progress::Progress;
use crate::spool::Spool;
use crate::text;

/// The bundled demo: a small agent cluster recorded as Hubble JSON (see testdata/README.md).
const DEMO_DUMP: &[u8] = include_bytes!("../../../testdata/demo/agents-demo.jsonl.gz");

/// A learning pass stops once every agent whose parents needed timing has this many certain
/// examples.
const SETTLED_EXAMPLES: u32 = 100;
/// A learning pass stops after this many flows without any parent that needed timing.
const QUIET_FLOWS: u64 = 50_000;
/// Standard input is learned from for at most this many bytes (kept on disk for the main pass)
/// and this long: a live stream (`hubble observe --follow`) is reported within seconds.
const STDIN_LEARNING_BYTES: u64 = 256 << 20;
const STDIN_LEARNING_TIME: Duration = Duration::from_secs(10);

/// What a learning pass learned, and how far it read.
struct Learned {
    /// The statistics and the flows read, when any parent needed timing to be decided.
    model: Option<(TimingModel, u64)>,
    /// Events taken in before it stopped (a main pass over a copy of the input stops there
    /// when the learning pass was interrupted).
    events: u64,
}

/// Reads the input to learn each agent's call timing (discarding the requests), for a
/// second engine to start from. `enough` says when to stop regardless: it is asked at every
/// event, the other reasons to stop every 4,096 flows.
fn learning_pass(
    mut reader: DumpReader,
    config: &EngineConfig,
    normalize: &NormalizeConfig,
    quiet: bool,
    interrupted: &Arc<AtomicBool>,
    enough: &dyn Fn() -> bool,
) -> Learned {
    reader.stop_when(interrupted);
    let mut engine = Engine::new(config.clone(), normalize.clone());
    let (mut flows, mut requests, mut events) = (0u64, 0u64, 0u64);
    let mut stopped_early = false;
    let mut progress = Progress::new("learning call timing", reader.position(), quiet);
    reader.run_while(|event, _line| {
        progress.tick(flows, requests);
        // The reader stops at the next line after Ctrl-C; a line it was already reading when
        // Ctrl-C came is refused here.
        if interrupted.load(Ordering::Relaxed) {
            stopped_early = true;
            return false;
        }
        events += 1;
        if !engine.push_event(event) {
            return true;
        }
        requests += engine.drain().count() as u64;
        flows += u64::from(matches!(event, Event::Flow(_)));
        if enough()
            || (flows.is_multiple_of(4_096)
                && (engine.timing_settled(SETTLED_EXAMPLES)
                    || (flows >= QUIET_FLOWS && engine.stats().joint_decisions == 0)))
        {
            stopped_early = true;
            return false;
        }
        true
    });
    progress.finish();
    // Stopped by the reader after Ctrl-C (between lines no event came from), the pass is cut
    // short all the same.
    stopped_early |= interrupted.load(Ordering::Relaxed);
    if !stopped_early {
        engine.finish();
        engine.drain().for_each(drop);
    }
    let model = (engine.stats().joint_decisions > 0).then(|| (engine.timing_model(), flows));
    Learned { model, events }
}

/// What the text format shows besides the aggregates.
pub struct Summary {
    pub read: ReadStats,
    pub engine: EngineStats,
    pub aggregates: Aggregates,
    /// Requests by trace context, by request id, grouped by timing, and single calls without
    /// an id (also `inferred` in reports, but nothing needed inferring).
    pub by_correlation: [u64; 4],
    pub top_fan_out: TopK,
    pub top_duration: TopK,
    pub top_context: TopK,
    pub files: Vec<String>,
    /// Flows the learning pass read, when its statistics were used.
    pub learning_flows: Option<u64>,
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    let mut normalize = NormalizeConfig {
        request_id_header: args.request_id_header.clone(),
        context_size_headers: args.context_size_headers.clone(),
        ..NormalizeConfig::default()
    };
    if !args.name_labels.is_empty() {
        normalize.name_labels = args.name_labels.clone();
    }
    let config = EngineConfig {
        reorder_window: args.reorder_window,
        response_timeout: args.response_timeout,
        linger: args.linger,
        clock_skew: args.clock_skew,
        max_open_calls: args.max_open_calls,
        max_request_calls: args.max_request_calls,
        ..EngineConfig::default()
    };
    let open_input = || -> Result<(DumpReader, Vec<String>)> {
        Ok(if args.demo {
            let demo = agentgraph_ingest::dump::decompressed(Box::new(DEMO_DUMP))?;
            (DumpReader::from_readers(vec![("<demo>".into(), demo)]), vec!["<bundled demo dump>".to_string()])
        } else {
            (DumpReader::open(&args.files)?, args.files.clone())
        })
    };
    // Request lines printed to a terminal would land on the progress line: with stdout on a
    // terminal it is drawn only for the text format, which prints nothing before the end.
    let quiet = args.quiet || (args.format != Format::Text && io::stdout().is_terminal());
    let interrupted = stop_on_ctrl_c();
    // Standard input cannot be read twice: while the learning pass reads it, it is copied to
    // an unnamed temporary file, and the main pass reads that copy, then the rest of the stream.
    let reads_stdin = !args.demo && args.files.iter().any(|f| f == "-");
    let spool = if reads_stdin && !args.single_pass {
        match Spool::create() {
            Ok(spool) => Some(spool),
            Err(e) => {
                eprintln!(
                    "agentgraph: warning: reading standard input in a single pass, without learning call timing first: cannot create a temporary file ({e}; set TMPDIR to a writable directory)"
                );
                None
            }
        }
    } else {
        None
    };
    let learned = match &spool {
        None if args.single_pass || reads_stdin => Learned { model: None, events: 0 },
        Some(spool) => {
            let reader = DumpReader::open_with_stdin(&args.files, Some(Box::new(spool.tee(io::stdin())?)))?;
            let started = Instant::now();
            let enough = || spool.len() >= STDIN_LEARNING_BYTES || started.elapsed() >= STDIN_LEARNING_TIME;
            learning_pass(reader, &config, &normalize, quiet, &interrupted, &enough)
        }
        None => learning_pass(open_input()?.0, &config, &normalize, quiet, &interrupted, &|| false),
    };
    if let Some(failure) = spool.as_ref().and_then(Spool::failure) {
        bail!("{failure}: use --single-pass, or save the input to a file and analyze that");
    }
    // Interrupted while learning from standard input: the report covers what the learning pass
    // had taken in, which is all in the copy (with what was read ahead, not taken in).
    let replay_only = (spool.is_some() && interrupted.load(Ordering::Relaxed)).then_some(learned.events);
    let (mut reader, files) = match &spool {
        Some(spool) => {
            let copy = spool.replay()?;
            let stdin: Box<dyn Read + Send> =
                if replay_only.is_some() { Box::new(copy) } else { Box::new(copy.chain(io::stdin())) };
            (DumpReader::open_with_stdin(&args.files, Some(stdin))?, args.files.clone())
        }
        None => open_input()?,
    };
    if replay_only.is_none() {
        reader.stop_when(&interrupted);
    }
    let mut engine = Engine::new(config, normalize);
    let learning_flows = learned.model.map(|(model, flows)| {
        engine.set_timing_model(model);
        flows
    });
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());

    let mut summary = Summary {
        read: ReadStats::default(),
        engine: EngineStats::default(),
        aggregates: Aggregates::default(),
        by_correlation: [0; 4],
        top_fan_out: TopK::new(args.top),
        top_duration: TopK::new(args.top),
        top_context: TopK::new(args.top),
        files,
        learning_flows,
    };
    let mut ordered = StartOrder::default();
    let mut first_request = true;
    let mut write_error: Option<io::Error> = None;

    if args.format == Format::Json {
        write!(out, "{{\"schema\":\"{SCHEMA}\",\"requests\":[")?;
    }
    // Each completed graph is aggregated and written (or held for start order) at once, so
    // memory stays bounded by the requests still open.
    let deliver = |g: RequestGraph,
                   summary: &mut Summary,
                   ordered: &mut StartOrder,
                   out: &mut BufWriter<io::StdoutLock<'_>>|
     -> io::Result<()> {
        // Edge and agent statistics are for the text and JSON reports; ndjson streams requests only.
        if args.format != Format::Ndjson {
            summary.aggregates.add(&g);
        }
        summary.by_correlation[match g.correlation {
            Correlation::TraceContext => 0,
            Correlation::RequestId => 1,
            Correlation::Inferred if g.calls.len() > 1 => 2,
            Correlation::Inferred => 3,
        }] += 1;
        match args.format {
            Format::Text => {
                summary.top_fan_out.offer(g.stats.fan_out_max as i64 * 1_000_000 + g.stats.calls as i64, &g);
                summary.top_duration.offer(g.duration(), &g);
                // A request whose sizes are all unknown has no context size to rank.
                if g.context_known() {
                    summary.top_context.offer(g.stats.context_bytes as i64, &g);
                }
            }
            Format::Ndjson => {
                let mut line = Vec::with_capacity(4096);
                RequestJson::from(&g).write_json(&mut line);
                line.push(b'\n');
                out.write_all(&line)?;
                out.flush()?;
            }
            Format::Json => ordered.push(g),
        }
        Ok(())
    };
    let mut write_ordered =
        |ordered: &mut StartOrder, oldest: Option<i64>, out: &mut BufWriter<io::StdoutLock<'_>>| -> io::Result<()> {
            for g in ordered.release(oldest) {
                if !first_request {
                    out.write_all(b",")?;
                }
                first_request = false;
                let mut json = Vec::with_capacity(4096);
                RequestJson::from(&g).write_json(&mut json);
                out.write_all(&json)?;
            }
            Ok(())
        };

    let mut progress = Progress::new("analyzing", reader.position(), quiet);
    let (mut flows, mut requests, mut taken) = (0u64, 0u64, 0u64);
    reader.run_while(|event, _line| {
        progress.tick(flows, requests);
        // Checked before the event: after Ctrl-C nothing more is taken in (the reader stops at
        // the next line; this refuses one it was already reading).
        let stop = match replay_only {
            Some(events) => taken == events,
            None => interrupted.load(Ordering::Relaxed),
        };
        if write_error.is_some() || stop {
            return false;
        }
        taken += 1;
        if !engine.push_event(event) {
            return true;
        }
        flows += u64::from(matches!(event, Event::Flow(_)));
        let mut released = false;
        for g in engine.drain().collect::<Vec<_>>() {
            released = true;
            requests += 1;
            if let Err(e) = deliver(g, &mut summary, &mut ordered, &mut out) {
                write_error = Some(e);
            }
        }
        if released
            && args.format == Format::Json
            && let Err(e) = write_ordered(&mut ordered, engine.oldest_open_start(), &mut out)
        {
            write_error = Some(e);
        }
        true
    });
    progress.finish();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    engine.finish();
    for g in engine.drain().collect::<Vec<_>>() {
        deliver(g, &mut summary, &mut ordered, &mut out)?;
    }
    summary.read = reader.stats().clone();
    summary.engine = engine.stats().clone();
    match args.format {
        Format::Json => {
            write_ordered(&mut ordered, None, &mut out)?;
            let input = input_json(&summary.read, &summary.engine);
            write!(out, "],\"edges\":")?;
            serde_json::to_writer(&mut out, &summary.aggregates.edges())?;
            write!(out, ",\"agents\":")?;
            serde_json::to_writer(&mut out, &summary.aggregates.agents())?;
            write!(out, ",\"violations\":[],\"input\":")?;
            serde_json::to_writer(&mut out, &input)?;
            writeln!(out, "}}")?;
        }
        Format::Text => text::render(&mut out, &summary)?,
        Format::Ndjson => {}
    }
    out.flush()?;
    report_to_stderr(&summary, args.format);
    // The report is complete for what was read; the exit status still says it was cut short.
    Ok(if interrupted.load(Ordering::Relaxed) { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// A flag the first Ctrl-C sets: reading stops at the next line (or the end of the input, when
/// a stream is idle) and the report covers the input read so far — `hubble observe --follow |
/// agentgraph analyze -` ends that way. A second Ctrl-C quits at once.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            set.store(true, Ordering::Relaxed);
            eprintln!("agentgraph: interrupted: reporting the input read so far (Ctrl-C again to quit now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
    });
    flag
}

/// The contract's `input` section.
pub fn input_json(read: &ReadStats, engine: &EngineStats) -> InputJson {
    InputJson {
        lines: read.lines,
        flows: read.flows,
        skipped: read.skipped,
        lost_events: read.lost_events,
        http_requests: engine.http_requests - engine.duplicate_requests,
        // A response that came after its call was given up is dropped like a second copy: the
        // call is reported once, as unanswered.
        http_responses: engine.http_responses.saturating_sub(engine.duplicate_responses + engine.late_responses),
        repeated_records: engine.repeated_records,
        late_records: engine.late_records,
        reorder_overflow: engine.reorder_overflow,
        requests_emitted_early: engine.forced_requests,
        late_responses: engine.late_responses,
    }
}

/// What went wrong with the engine's input, in one line, when anything did: records out of
/// order by more than the reorder window give wrong graphs, so every format says so.
pub fn engine_warning(engine: &EngineStats) -> Option<String> {
    let problems: Vec<String> = [
        (engine.late_records, "record", "records", "arrived later than the reorder window (raise --reorder-window)"),
        (engine.reorder_overflow, "record", "records", "overflowed the reorder buffer"),
        (
            engine.forced_requests,
            "request",
            "requests",
            "emitted early at the open-call or request-size limit (--max-open-calls, --max-request-calls)",
        ),
    ]
    .into_iter()
    .filter(|(n, ..)| *n > 0)
    .map(|(n, one, many, what)| format!("{} {what}", count(n, one, many)))
    .collect();
    (!problems.is_empty()).then(|| problems.join(", "))
}

/// `1 call`, `2 calls`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Skipped lines, read errors and the engine's warning go to stderr for machine formats
/// (stdout stays parseable).
fn report_to_stderr(summary: &Summary, format: Format) {
    if format == Format::Text {
        return;
    }
    if let Some(w) = engine_warning(&summary.engine) {
        eprintln!("agentgraph: warning: {w}");
    }
    print_read_problems(&summary.read);
}

/// The lines skipped (the first few with their positions) and the read errors, on stderr.
pub fn print_read_problems(read: &ReadStats) {
    for s in &read.skip_examples {
        eprintln!("agentgraph: skipped {}:{}: {}", s.file, s.line, s.reason);
    }
    let more = read.skipped.saturating_sub(read.skip_examples.len() as u64);
    if more > 0 {
        eprintln!("agentgraph: skipped {} more", count(more, "line", "lines"));
    }
    for e in &read.read_errors {
        eprintln!("agentgraph: {e}");
    }
}
