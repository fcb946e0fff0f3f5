//! The domain: plain Rust with no AWS, HTTP or GitHub types. Transports and clouds plug
//! in through the ports (`ports.rs`); `service` routes each request to its flow.

/// `as_str` and `Display` for a checked newtype over `String` (its `parse` checked it;
/// these only read it). Defined before the modules so that each of them can use it.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// The value kept for `key`, made by `fresh` the first time: like `entry(key.to_owned())`,
/// but the name is copied only when it is new (a per-principal or per-source tally sees
/// the same few names on every request).
pub(crate) fn entry_for<'m, V>(
    map: &'m mut std::collections::HashMap<String, V>,
    key: &str,
    fresh: impl FnOnce() -> V,
) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), fresh());
    }
    map.get_mut(key)
        .expect("present: inserted above if it was not")
}

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
pub mod request_id;
pub mod retention;
pub mod roll;
pub mod service;
