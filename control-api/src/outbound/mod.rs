//! Outbound adapters: the ports of the domain, implemented against real services.

pub mod aws;
pub mod dispatch;
pub mod github;
