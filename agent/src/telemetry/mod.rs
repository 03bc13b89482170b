//! What the agent tells its operator: rate-limited logs (and, later, metrics).

mod log_limit;

pub use log_limit::{LOG_INTERVAL, LogLimit};
