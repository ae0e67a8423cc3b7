//! Simulated agent clusters that emit Hubble flows together with the true call graphs, and the
//! evaluation that scores an analysis report against that truth.
//!
//! [`scenario`] describes a cluster in TOML (built-ins: `support-desk`, `research-swarm`,
//! `code-review`, `job-spawner`); [`sim::Simulator`] runs it into Hubble JSON lines and
//! `agentgraph.truth/v1` requests; [`eval::evaluate`] matches reported calls to true calls.
//! Nothing in production code paths depends on this crate.

pub mod eval;
pub mod hubble;
pub mod rng;
pub mod scenario;
pub mod sim;

pub use scenario::{CorrelationMode, Scenario};
pub use sim::{SimOptions, SimSummary, Simulator, TruthRequest, TruthWriter};
