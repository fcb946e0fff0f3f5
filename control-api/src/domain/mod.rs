//! The domain: plain Rust with no AWS or HTTP types. Transports and clouds plug in through ports.

pub mod audit;
pub mod auth;
pub mod deploy;
pub mod fleet;
pub mod idempotency;
pub mod policy;
pub mod rate_limit;
pub mod registry;
pub mod request;
pub mod response;
pub mod retention;
pub mod service;
pub mod state;
