//! Outbound adapters: the ports of the domain, implemented against real services.

pub mod aws;
pub mod chat;
pub mod dispatch;
pub mod github;
pub mod state;
pub mod tofu;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The domain's [`Sleep`](crate::domain::deploy::Sleep) on tokio's timer.
pub fn tokio_sleep(d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(tokio::time::sleep(d))
}

/// The wall clock and tokio's timer.
pub struct SystemClock;

impl crate::domain::roll::ports::Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }

    async fn sleep(&self, d: std::time::Duration) {
        tokio::time::sleep(d).await;
    }
}
