//! Outbound adapters: the ports of the domain, implemented against real services.

pub mod aws;
pub mod chat;
pub mod dispatch;
pub mod github;
pub mod state;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The domain's [`Sleep`](crate::domain::deploy::Sleep) on tokio's timer.
pub fn tokio_sleep(d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(tokio::time::sleep(d))
}
