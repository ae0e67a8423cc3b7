//! A one-line progress report on stderr for long reads (a dump of gigabytes takes seconds to
//! minutes), drawn only when stderr is a terminal so that logs and pipes stay clean.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use agentgraph_ingest::InputPosition;

use crate::text::bytes;

/// Events between two looks at the clock: a look costs about as much as decoding a few bytes.
const EVENTS_PER_CHECK: u32 = 4_096;
/// Time between two redraws.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

pub struct Progress {
    label: &'static str,
    position: InputPosition,
    enabled: bool,
    started: Instant,
    last_draw: Instant,
    until_check: u32,
    drawn: bool,
}

impl Progress {
    /// A report of what `label` has read of `position`, drawn unless `quiet` or stderr is not a
    /// terminal.
    pub fn new(label: &'static str, position: InputPosition, quiet: bool) -> Self {
        let now = Instant::now();
        Progress {
            label,
            position,
            enabled: !quiet && std::io::stderr().is_terminal(),
            started: now,
            last_draw: now,
            until_check: EVENTS_PER_CHECK,
            drawn: false,
        }
    }

    /// Called once per event: redraws at most every [`REDRAW_EVERY`].
    #[inline]
    pub fn tick(&mut self, flows: u64, requests: u64) {
        if !self.enabled {
            return;
        }
        self.until_check -= 1;
        if self.until_check > 0 {
            return;
        }
        self.until_check = EVENTS_PER_CHECK;
        let now = Instant::now();
        if now.duration_since(self.last_draw) < REDRAW_EVERY {
            return;
        }
        self.last_draw = now;
        let text = line(
            self.label,
            self.position.bytes_read(),
            self.position.total_bytes(),
            flows,
            requests,
            now.duration_since(self.started),
        );
        // Progress is best effort: a failed write to stderr must not stop the analysis.
        let _ = write!(std::io::stderr(), "\r\x1b[K{text}");
        self.drawn = true;
    }

    /// Clears the line, leaving stderr as it was for what follows.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The text of one report, e.g. `agentgraph: analyzing: 412.3 MB of 1.08 GB (38%), 152,000 flows,
/// 2,913 requests, 206.2 MB/s`.
fn line(label: &str, read: u64, total: Option<u64>, flows: u64, requests: u64, elapsed: Duration) -> String {
    let mut text = format!("agentgraph: {label}: {}", bytes(read));
    if let Some(total) = total.filter(|&t| t > 0) {
        text += &format!(" of {} ({}%)", bytes(total), (read.min(total) * 100 / total));
    }
    text += &format!(", {} flows, {} requests", thousands(flows), thousands(requests));
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        text += &format!(", {}/s", bytes((read as f64 / seconds) as u64));
    }
    text
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_and_total_in_readable_units() {
        let text = line("analyzing", 412_300_000, Some(1_083_061_992), 152_000, 2_913, Duration::from_secs(2));
        assert_eq!(text, "agentgraph: analyzing: 412.3 MB of 1.08 GB (38%), 152,000 flows, 2,913 requests, 206.2 MB/s");
        // stdin: no total, no percentage.
        let text = line("analyzing", 5_000, None, 7, 0, Duration::from_millis(500));
        assert_eq!(text, "agentgraph: analyzing: 5.0 kB, 7 flows, 0 requests, 10.0 kB/s");
        let counts: Vec<String> = [0, 999, 1_000, 1_234_567].map(thousands).into();
        assert_eq!(counts, ["0", "999", "1,000", "1,234,567"]);
    }
}
