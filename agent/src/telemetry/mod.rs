//! What the agent tells its operator: rate-limited logs and Prometheus metrics.

mod http;
mod log_limit;
pub mod metrics;

pub use http::{MetricsError, MetricsServer, install_recorder, serve as serve_metrics};
pub use log_limit::{LOG_INTERVAL, LogLimit};
