//! The agentgraph domain: turns Hubble L7 HTTP flows into per-request agent call graphs.
//!
//! Flow of data: [`record::Normalizer`] turns a decoded flow into an [`record::HttpRecord`] with
//! agent names ([`names`]); the [`engine::Engine`] reorders records by event time, pairs
//! requests with responses, merges egress and ingress copies, links calls to parents and emits
//! each end-to-end request as a [`graph::RequestGraph`]; [`report`] aggregates graphs into the
//! analysis report (`agentgraph.analysis/v1`). Nothing here does IO or reads the clock.

pub mod engine;
pub mod graph;
pub mod infer;
pub mod names;
pub mod record;
pub mod report;
pub mod sketch;
mod table;

/// Event time or a duration, in nanoseconds (since the Unix epoch for times).
pub type Nanos = i64;

pub use engine::{Engine, EngineConfig, EngineStats, TimingModel};
pub use graph::{CallRecord, Correlation, RequestGraph};
pub use record::NormalizeConfig;
