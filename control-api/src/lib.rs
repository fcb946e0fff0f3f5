//! Fleet control API: authenticate, check policy, dispatch the deploy workflow.
//!
//! `domain` is plain Rust (registry, requests, auth, policy, fleet state, the flows and
//! their ports); `contract` is the typed wire format the server and the `fleet` CLI share.
//! With the default `server` feature come the adapters: Lambda and local HTTP inbound
//! (`inbound::http` owns everything HTTP), GitHub and AWS outbound; with `test-support`,
//! in-memory fakes of the ports and the loopback GitHub double.

pub mod contract;
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
#[cfg(feature = "test-support")]
pub mod test_support;
