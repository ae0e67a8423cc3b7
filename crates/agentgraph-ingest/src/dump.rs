//! Recorded Hubble dumps (`hubble observe -o json`, the exporter's files) as a stream of decoded
//! events: plain, gzip or zstd (by magic bytes), stdin as `-`, several files merged by event time
//! (e.g. one exporter file per node). Lines are read through one reused buffer per file.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use agentgraph_proto::{DecodeError, Event, decode_line_with};

/// Lines longer than this are skipped (and counted) rather than buffered without bound.
pub const MAX_LINE_BYTES: usize = 64 << 20;
/// How many skipped lines are kept with their position for the report.
pub const SKIP_EXAMPLES: usize = 20;

/// The cause is part of the message, not a separate `source()`: reports print the chain of
/// sources too, which would say the cause twice.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot open {path}: {error}")]
    Open { path: String, error: io::Error },
    #[error("cannot read {path} after line {line}: {error}")]
    Read { path: String, line: u64, error: io::Error },
}

/// A line that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedLine {
    pub file: String,
    /// 1-based line number in its file.
    pub line: u64,
    pub reason: String,
    /// Short stable kind, e.g. `truncated`, `wrong_type`.
    pub kind: &'static str,
}

/// What was read.
#[derive(Clone, Debug, Default)]
pub struct ReadStats {
    /// Lines read from all files (blank lines included).
    pub lines: u64,
    /// Flow records decoded.
    pub flows: u64,
    pub skipped: u64,
    pub skipped_by_kind: BTreeMap<&'static str, u64>,
    /// The first [`SKIP_EXAMPLES`] skipped lines with their positions.
    pub skip_examples: Vec<SkippedLine>,
    /// Sum of `num_events_lost` over `lost_events` lines.
    pub lost_events: u64,
    pub lost_event_lines: u64,
    pub node_status: u64,
    pub other_events: u64,
    /// Read errors that ended a file early (corrupt compression, IO); other files go on.
    pub read_errors: Vec<String>,
    pub bytes: u64,
}

impl ReadStats {
    fn skip(&mut self, file: &str, line: u64, kind: &'static str, reason: String) {
        self.skipped += 1;
        *self.skipped_by_kind.entry(kind).or_insert(0) += 1;
        if self.skip_examples.len() < SKIP_EXAMPLES {
            self.skip_examples.push(SkippedLine { file: file.to_string(), line, reason, kind });
        }
    }

    fn decode_error(&mut self, file: &str, line: u64, e: &DecodeError) {
        self.skip(file, line, e.kind.as_str(), e.to_string());
    }
}

/// One input, read in large chunks into its own buffer: lines are decoded where they lie,
/// without being copied out first.
struct Source {
    name: String,
    reader: Box<dyn BufRead + Send>,
    /// Bytes read and not yet consumed are `buf[pos..end]`; the current line `buf[line_at]`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    line_at: std::ops::Range<usize>,
    eof: bool,
    line: u64,
    done: bool,
    /// Longest line kept ([`MAX_LINE_BYTES`]; smaller in tests).
    max_line: usize,
    /// Set from outside (Ctrl-C) to stop reading at the next line, or within an endless one.
    stop: Arc<AtomicBool>,
}

/// Bytes read from an input at a time (and the buffer's starting size).
const READ_CHUNK: usize = 256 << 10;

/// Opens a dump file (`-` is stdin), detecting gzip and zstd compression by magic bytes.
pub fn open(path: &str) -> Result<(String, Box<dyn BufRead + Send>), IngestError> {
    open_counted(path, &Arc::default(), None)
}

/// [`open`], adding the bytes read from the file (before decompression) to `read`; `-` reads
/// `stdin` when given, else the process's standard input.
fn open_counted(
    path: &str,
    read: &Arc<AtomicU64>,
    stdin: Option<Box<dyn Read + Send>>,
) -> Result<(String, Box<dyn BufRead + Send>), IngestError> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        match stdin {
            Some(stdin) => Box::new(Counted { inner: stdin, read: read.clone() }),
            None => Box::new(Counted { inner: io::stdin(), read: read.clone() }),
        }
    } else {
        let file = File::open(Path::new(path)).map_err(|error| IngestError::Open { path: path.to_string(), error })?;
        Box::new(Counted { inner: file, read: read.clone() })
    };
    let name = if path == "-" { "<stdin>".to_string() } else { path.to_string() };
    let reader = decompressed(raw).map_err(|error| IngestError::Open { path: path.to_string(), error })?;
    Ok((name, reader))
}

/// A reader that adds the bytes read through it to a counter another thread or closure can read.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The inputs' total size as stored, when every one is a regular file (stdin and pipes have
/// none).
fn stored_total(paths: &[String]) -> Option<u64> {
    paths
        .iter()
        .map(|p| (p != "-").then(|| std::fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| m.len())).flatten())
        .sum()
}

/// How far a [`DumpReader`] has got through its files, readable while it runs (a cheap clone).
#[derive(Clone, Debug, Default)]
pub struct InputPosition {
    read: Arc<AtomicU64>,
    total: Option<u64>,
}

impl InputPosition {
    /// Bytes read from the files so far, as stored (compressed bytes for compressed files).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The files' total size, when every input is a regular file (not stdin or a pipe).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total
    }
}

/// Wraps a byte stream in a gzip or zstd decoder when its first bytes say it is compressed.
pub fn decompressed(raw: Box<dyn Read + Send>) -> io::Result<Box<dyn BufRead + Send>> {
    let mut reader = BufReader::with_capacity(256 << 10, raw);
    let magic = reader.fill_buf()?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(256 << 10, flate2::bufread::MultiGzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(BufReader::with_capacity(256 << 10, zstd::stream::read::Decoder::with_buffer(reader)?))
    } else if let Some(format) = unsupported_compression(magic) {
        // Read as text, every line would be skipped as invalid JSON and the run would look fine.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("compressed with {format}, which agentgraph does not read (decompress it, or use gzip or zstd)"),
        ));
    } else {
        Box::new(reader)
    })
}

/// The compression format other than gzip and zstd that `magic` (a file's first bytes) starts
/// with, if any.
fn unsupported_compression(magic: &[u8]) -> Option<&'static str> {
    const FORMATS: [(&[u8], &str); 4] = [
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
        (b"BZh", "bzip2"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
        (&[0xff, 0x06, 0x00, 0x00, b's', b'N', b'a', b'P', b'p', b'Y'], "snappy"),
    ];
    FORMATS.iter().find(|(m, _)| magic.starts_with(m)).map(|(_, name)| *name)
}

impl Source {
    fn new(name: String, reader: Box<dyn BufRead + Send>) -> Self {
        Source {
            name,
            reader,
            buf: vec![0; READ_CHUNK],
            pos: 0,
            end: 0,
            line_at: 0..0,
            eof: false,
            line: 0,
            done: false,
            max_line: MAX_LINE_BYTES,
            stop: Arc::default(),
        }
    }

    /// The current line, without its line ending.
    fn current(&self) -> &[u8] {
        &self.buf[self.line_at.clone()]
    }

    /// Moves to the next line. Returns `Ok(false)` at the end. A line over [`MAX_LINE_BYTES`]
    /// is consumed and reported as `Err(len)`.
    fn next_line(&mut self) -> io::Result<Result<bool, usize>> {
        let mut too_long = 0usize;
        loop {
            let newline = memchr::memchr(b'\n', &self.buf[self.pos..self.end]).map(|i| self.pos + i);
            if newline.is_some() || self.eof {
                if newline.is_none() && self.pos == self.end && too_long == 0 {
                    return Ok(Ok(false));
                }
                // A line ends at its newline, or unterminated at the end of the input.
                let (start, stop) = (self.pos, newline.unwrap_or(self.end));
                self.pos = newline.map_or(self.end, |n| n + 1);
                self.line += 1;
                if too_long > 0 {
                    return Ok(Err(too_long + self.pos - start));
                }
                self.set_line(start, stop);
                return Ok(Ok(true));
            }
            if too_long > 0 || self.end - self.pos > self.max_line {
                // Not kept: only its length is counted.
                too_long += self.end - self.pos;
                self.pos = self.end;
            }
            // Keep the unfinished line, and read more after it.
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            if self.end + READ_CHUNK > self.buf.len() {
                self.buf.resize(self.end + READ_CHUNK, 0);
            }
            if self.stop.load(Ordering::Relaxed) {
                // Asked to stop inside a line without end (`/dev/zero`): it is not counted.
                return Ok(Ok(false));
            }
            let n = loop {
                match self.reader.read(&mut self.buf[self.end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
    }

    fn set_line(&mut self, mut start: usize, mut stop: usize) {
        while stop > start && matches!(self.buf[stop - 1], b'\r') {
            stop -= 1;
        }
        // A byte-order mark some editors put at the start of a UTF-8 file is not JSON.
        if self.line == 1 && self.buf[start..stop].starts_with(&[0xEF, 0xBB, 0xBF]) {
            start += 3;
        }
        self.line_at = start..stop;
    }
}

/// Reads one or more dumps and hands each decoded event, with its line bytes, to a callback.
/// With several files, events are merged by time (each file is assumed mostly time-ordered;
/// the engine's reorder window absorbs local disorder).
pub struct DumpReader {
    sources: Vec<Source>,
    stats: ReadStats,
    position: InputPosition,
}

impl DumpReader {
    /// Opens every path (`-` is stdin).
    pub fn open(paths: &[String]) -> Result<Self, IngestError> {
        Self::open_with_stdin(paths, None)
    }

    /// Opens every path, reading `-` from `stdin` when given (a copy of standard input kept
    /// for a second pass, or standard input teed into one) instead of standard input itself.
    pub fn open_with_stdin(paths: &[String], mut stdin: Option<Box<dyn Read + Send>>) -> Result<Self, IngestError> {
        if paths.iter().filter(|p| *p == "-").count() > 1 {
            // Two readers of one stream would each get a part of its lines.
            let error = io::Error::new(io::ErrorKind::InvalidInput, "standard input is given more than once");
            return Err(IngestError::Open { path: "-".into(), error });
        }
        let read = Arc::new(AtomicU64::new(0));
        let mut sources = Vec::with_capacity(paths.len());
        for p in paths {
            let replacement = if p == "-" { stdin.take() } else { None };
            let (name, reader) = open_counted(p, &read, replacement)?;
            sources.push(Source::new(name, reader));
        }
        let total = stored_total(paths);
        Ok(DumpReader { sources, stats: ReadStats::default(), position: InputPosition { read, total } })
    }

    /// Reads from already-open readers (tests, in-memory dumps); their position is not tracked.
    pub fn from_readers(readers: Vec<(String, Box<dyn BufRead + Send>)>) -> Self {
        let sources = readers.into_iter().map(|(name, reader)| Source::new(name, reader)).collect();
        DumpReader { sources, stats: ReadStats::default(), position: InputPosition::default() }
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Stops reading, at the next line or within a line without end, once `stop` is set (as
    /// Ctrl-C sets it): [`DumpReader::run`] then returns as if the input had ended there.
    pub fn stop_when(&mut self, stop: &Arc<AtomicBool>) {
        for src in &mut self.sources {
            src.stop = stop.clone();
        }
    }

    /// How far reading has got, for progress reports while [`DumpReader::run`] holds the reader.
    pub fn position(&self) -> InputPosition {
        self.position.clone()
    }

    /// Reads everything, calling `on_event` for each decoded event in merged time order.
    pub fn run(&mut self, mut on_event: impl FnMut(&Event<'_>, &[u8])) {
        self.run_while(|ev, line| {
            on_event(ev, line);
            true
        });
    }

    /// Like [`DumpReader::run`], but stops as soon as `on_event` returns false.
    pub fn run_while(&mut self, mut on_event: impl FnMut(&Event<'_>, &[u8]) -> bool) {
        if self.sources.len() == 1 {
            let mut go = true;
            let src = &mut self.sources[0];
            while go
                && Self::advance(src, &mut self.stats, &mut |ev, line| {
                    go = on_event(ev, line);
                    if go { Step::Continue } else { Step::Hold }
                })
            {}
            return;
        }
        // k-way merge: each file's next flow is decoded to learn its time, then decoded again
        // when its turn comes (its bytes stay in the file's buffer meanwhile).
        let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
        let go = std::cell::Cell::new(true);
        let mut pass = |ev: &Event<'_>, line: &[u8]| {
            if go.get() {
                go.set(on_event(ev, line));
            }
        };
        for i in 0..self.sources.len() {
            if let Some(t) = self.peek_time(i, &mut pass) {
                heap.push(Reverse((t, i)));
            }
        }
        while let Some(Reverse((_, i))) = heap.pop() {
            let src = &self.sources[i];
            // A line is held only once it has decoded (and been counted): it decodes again.
            let _ = decode_line_with(src.current(), |ev| pass(ev, src.current()));
            if !go.get() {
                return;
            }
            if let Some(t) = self.peek_time(i, &mut pass) {
                heap.push(Reverse((t, i)));
            }
        }
    }

    /// Advances file `i` to its next flow and returns the flow's time; events without a place in
    /// time order (lost events, node status) are handed over directly.
    fn peek_time(&mut self, i: usize, on_event: &mut impl FnMut(&Event<'_>, &[u8])) -> Option<i64> {
        let mut time = None;
        let src = &mut self.sources[i];
        while time.is_none()
            && Self::advance(src, &mut self.stats, &mut |ev, line| match ev {
                Event::Flow(f) => {
                    time = Some(f.time_ns);
                    Step::Hold
                }
                other => {
                    on_event(other, line);
                    Step::Continue
                }
            })
        {}
        time
    }

    /// Reads lines until one decodes (handing it to `f`) or the file ends; returns false at the
    /// end. Flows are counted here, once, whether handed over now or held for a merge.
    fn advance(src: &mut Source, stats: &mut ReadStats, f: &mut impl FnMut(&Event<'_>, &[u8]) -> Step) -> bool {
        loop {
            // Checked at every line, not only at events: a stream of undecodable lines stops too.
            if src.done || src.stop.load(Ordering::Relaxed) {
                return false;
            }
            match src.next_line() {
                Err(e) => {
                    stats
                        .read_errors
                        .push(IngestError::Read { path: src.name.clone(), line: src.line, error: e }.to_string());
                    src.done = true;
                    return false;
                }
                Ok(Ok(false)) => {
                    src.done = true;
                    return false;
                }
                Ok(Err(len)) => {
                    stats.lines += 1;
                    stats.bytes += len as u64;
                    stats.skip(
                        &src.name,
                        src.line,
                        "too_long",
                        format!("line of {len} bytes exceeds the {}-byte limit", src.max_line),
                    );
                }
                Ok(Ok(true)) => {
                    stats.lines += 1;
                    let line = src.current();
                    stats.bytes += line.len() as u64 + 1;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let decoded = decode_line_with(line, |ev| {
                        match ev {
                            Event::Flow(_) => stats.flows += 1,
                            Event::LostEvents { num_events_lost, .. } => {
                                stats.lost_events = stats.lost_events.saturating_add(*num_events_lost);
                                stats.lost_event_lines += 1;
                            }
                            Event::NodeStatus { .. } => stats.node_status += 1,
                            Event::Other { .. } => stats.other_events += 1,
                        }
                        f(ev, line)
                    });
                    match decoded {
                        Err(e) => stats.decode_error(&src.name, src.line, &e),
                        Ok(Step::Continue) => {}
                        Ok(Step::Hold) => return true,
                    }
                }
            }
        }
    }
}

enum Step {
    Continue,
    /// Stop reading this file: its current line is held for the merge.
    Hold,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: &str, n: u32) -> String {
        format!(
            r#"{{"flow":{{"time":"{t}","verdict":"FORWARDED","Type":"L3_L4","node_name":"n{n}"}},"node_name":"n{n}","time":"{t}"}}"#
        )
    }

    fn reader(name: &str, text: String) -> (String, Box<dyn BufRead + Send>) {
        (name.to_string(), Box::new(io::Cursor::new(text.into_bytes())))
    }

    #[test]
    fn position_reaches_the_stored_size_of_plain_and_compressed_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("temp dir");
        // Several times the read chunk, so the file is read as its lines are consumed.
        let text: String = (0..10_000)
            .map(|k| line(&format!("2026-01-01T{:02}:{:02}:{:02}Z", k / 3600, k / 60 % 60, k % 60), 1) + "\n")
            .collect();
        assert!(text.len() > 4 * READ_CHUNK);
        let plain = dir.path().join("a.jsonl");
        std::fs::write(&plain, &text).expect("write");
        let gzipped = dir.path().join("b.jsonl.gz");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&gzipped).expect("create"), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).expect("compress");
        gz.finish().expect("finish");
        let paths: Vec<String> = [&plain, &gzipped].iter().map(|p| p.display().to_string()).collect();
        let stored: u64 = paths.iter().map(|p| std::fs::metadata(p).expect("size").len()).sum();

        let mut r = DumpReader::open(&paths).expect("open");
        let position = r.position();
        assert_eq!(position.total_bytes(), Some(stored));
        let mut seen = Vec::new();
        r.run(|_, _| seen.push(position.bytes_read()));
        assert_eq!(seen.len(), 20_000);
        assert!(seen[0] < stored / 2, "the start of the files was read, not all of them");
        assert_eq!(position.bytes_read(), stored);
        assert!(seen.iter().filter(|&&b| b == stored).count() < seen.len() / 4, "the position follows the reading");
    }

    #[test]
    fn stored_total_is_known_for_files_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.jsonl");
        std::fs::write(&file, "{}\n").expect("write");
        let file = file.display().to_string();
        assert_eq!(stored_total(std::slice::from_ref(&file)), Some(3));
        assert_eq!(stored_total(&[file.clone(), file.clone()]), Some(6));
        assert_eq!(stored_total(&[file.clone(), "-".to_string()]), None);
        assert_eq!(stored_total(&[dir.path().display().to_string()]), None, "a directory has no stored size");
        assert_eq!(stored_total(&[]), Some(0));
    }

    #[test]
    fn merges_files_by_time_and_counts_skips() {
        let a = [line("2026-01-01T00:00:01Z", 1), "garbage".into(), line("2026-01-01T00:00:03Z", 1)].join("\n");
        let b = [line("2026-01-01T00:00:02Z", 2), String::new(), line("2026-01-01T00:00:04Z", 2)].join("\n") + "\n";
        let mut r = DumpReader::from_readers(vec![reader("a", a), reader("b", b)]);
        let mut times = Vec::new();
        r.run(|ev, _| {
            if let Event::Flow(f) = ev {
                times.push(f.time_ns / 1_000_000_000 % 60);
            }
        });
        assert_eq!(times, [1, 2, 3, 4]);
        let s = r.stats();
        assert_eq!((s.lines, s.flows, s.skipped), (6, 4, 1));
        assert_eq!(s.skip_examples[0].file, "a");
        assert_eq!(s.skip_examples[0].line, 2);
        assert_eq!(s.skip_examples[0].kind, "syntax");
    }

    #[test]
    fn refuses_compression_it_cannot_read() {
        for (magic, name) in [(&b"\xfd7zXZ\x00\x00\x04"[..], "xz"), (b"BZh91AY&SY", "bzip2")] {
            let err = decompressed(Box::new(magic)).err().expect("refused");
            assert!(err.to_string().contains(name), "{err}");
        }
        // Text that merely starts like one is read as it is.
        assert!(decompressed(Box::new(&b"BZ{\"flow\":{}}\n"[..])).is_ok());
    }

    #[test]
    fn reads_gzip_and_zstd() {
        use std::io::Write;
        let text = [line("2026-01-01T00:00:01Z", 1), line("2026-01-01T00:00:02Z", 1)].join("\n");
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("a.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("b.bin");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 1).unwrap()).unwrap();
        for p in [gz, zst] {
            let mut r = DumpReader::open(&[p.to_string_lossy().into_owned()]).unwrap();
            let mut n = 0;
            r.run(|_, _| n += 1);
            assert_eq!(n, 2, "{}", p.display());
            assert!(r.stats().read_errors.is_empty());
        }
    }

    /// A reader handing out a few bytes per call, so lines straddle every read boundary.
    struct Trickle(io::Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(7);
            self.0.read(&mut out[..n])
        }
    }

    #[test]
    fn lines_survive_read_boundaries_crlf_and_a_missing_final_newline() {
        let text = [line("2026-01-01T00:00:01Z", 1), line("2026-01-01T00:00:02Z", 1), line("2026-01-01T00:00:03Z", 1)]
            .join("\r\n");
        let src = io::BufReader::new(Trickle(io::Cursor::new(text.into_bytes())));
        let mut r = DumpReader::from_readers(vec![("t".to_string(), Box::new(src))]);
        let mut lines = Vec::new();
        r.run(|_, raw| lines.push(raw.to_vec()));
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.starts_with(b"{") && l.ends_with(b"}")));
        assert_eq!((r.stats().lines, r.stats().skipped), (3, 0));
    }

    #[test]
    fn an_overlong_line_is_counted_and_skipped_and_the_next_one_read() {
        // A 1 MiB limit stands in for the real 64 MiB one: the line spans several reads either way.
        let limit = 1 << 20;
        let long = io::repeat(b'x').take(limit as u64 + 10);
        let rest = io::Cursor::new(format!("\n{}\n", line("2026-01-01T00:00:01Z", 1)).into_bytes());
        let src = io::BufReader::new(long.chain(rest));
        let mut r = DumpReader::from_readers(vec![("t".to_string(), Box::new(src))]);
        r.sources[0].max_line = limit;
        let mut flows = 0;
        r.run(|_, _| flows += 1);
        assert_eq!(flows, 1);
        let s = r.stats();
        assert_eq!((s.lines, s.skipped), (2, 1));
        assert_eq!(s.skip_examples[0].kind, "too_long");
        assert_eq!(s.skip_examples[0].line, 1);
    }

    #[test]
    fn reports_missing_file() {
        let err = DumpReader::open(&["/nonexistent/x.jsonl".into()]).err().unwrap();
        assert!(err.to_string().starts_with("cannot open /nonexistent/x.jsonl"));
    }

    #[test]
    fn standard_input_given_twice_is_refused() {
        let err = DumpReader::open(&["-".into(), "-".into()]).err().expect("refused");
        assert!(err.to_string().contains("standard input is given more than once"), "{err}");
    }

    #[test]
    fn a_byte_order_mark_before_the_first_line_is_not_json() {
        let text = format!("\u{feff}{}\n{}\n", line("2026-01-01T00:00:00Z", 1), line("2026-01-01T00:00:01Z", 1));
        let mut r = DumpReader::from_readers(vec![reader("bom", text)]);
        r.run(|_, _| {});
        assert_eq!((r.stats().flows, r.stats().skipped), (2, 0));
    }

    /// Endless input of lines that never decode, or one line that never ends: setting the stop
    /// flag (Ctrl-C) still ends the run, which only ever looks at events otherwise.
    #[test]
    fn the_stop_flag_ends_reading_between_undecodable_lines_and_inside_an_endless_one() {
        struct Endless(&'static [u8], usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                for b in buf.iter_mut() {
                    *b = self.0[self.1 % self.0.len()];
                    self.1 += 1;
                }
                Ok(buf.len())
            }
        }
        for pattern in [&b"not json\n"[..], b"x"] {
            let endless: Box<dyn BufRead + Send> = Box::new(BufReader::new(Endless(pattern, 0)));
            let mut r = DumpReader::from_readers(vec![("endless".into(), endless)]);
            let stop = Arc::new(AtomicBool::new(false));
            r.stop_when(&stop);
            let set = stop.clone();
            let setter = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                set.store(true, Ordering::Relaxed);
            });
            r.run(|_, _| panic!("nothing decodes"));
            setter.join().unwrap();
            assert_eq!(r.stats().flows, 0);
        }
    }
}
