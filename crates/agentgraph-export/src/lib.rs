//! Sinks that turn completed request graphs into what other tools read. [`metrics`]: Prometheus
//! metrics in OpenMetrics text — per call edge, per request root, per agent, the service-graph
//! families Grafana's service-graph view reads, and the collector's self-telemetry — with a cap on
//! series per family and expiry of idle series.

pub mod metrics;

pub use metrics::{Metrics, MetricsConfig, SelfTelemetry};
