//! Flow sources for agentgraph. [`dump`] reads recorded Hubble dumps — files, stdin, gzip and zstd,
//! several files merged by event time — decoding each line and accounting for every line it
//! cannot decode, with its file and line number.

pub mod dump;
pub mod hubble;
pub mod replay;

pub use dump::{DumpReader, IngestError, InputPosition, ReadStats, SkippedLine};
