//! The domain: plain Rust with no AWS, HTTP or GitHub types. Transports and clouds plug
//! in through the ports (`ports.rs`); `service` routes each request to its flow.

pub mod audit;
pub mod auth;
pub mod deployed;
pub mod dispatch;
pub mod error;
pub mod fleet;
pub mod heartbeat;
pub mod idempotency;
pub mod lease;
pub mod lock;
pub mod policy;
pub mod ports;
pub mod queue;
pub mod rate_limit;
pub mod readiness;
pub mod refusal_budget;
pub mod registry;
pub mod report;
pub mod request;
pub mod retention;
pub mod roll;
pub mod service;
