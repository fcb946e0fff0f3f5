//! Outbound adapters: the ports of the domain, implemented against real services.

pub mod dispatch;
pub mod github;
