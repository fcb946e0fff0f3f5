//! Fleet control API: authenticate, check policy, dispatch the deploy workflow.
//!
//! `domain` is plain Rust (registry, requests, auth, policy, the dispatch port). With the
//! default `server` feature come the adapters: Lambda and local HTTP inbound, GitHub outbound.

pub mod domain;

#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "aws-http")]
pub mod aws_http;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod inbound;
#[cfg(feature = "server")]
pub mod outbound;
#[cfg(feature = "server")]
pub mod telemetry;
