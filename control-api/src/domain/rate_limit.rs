//! Deploys per principal over a sliding window, so one leaked credential cannot churn the fleet.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `max` deploys per `window` for each principal. State is per process: each Lambda
/// instance counts on its own, so the fleet-wide bound is `max` × concurrent instances
/// (infra keeps reserved concurrency small for that reason).
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records a deploy by `principal` at `now`, or says how long until one is allowed.
    pub fn admit(&self, principal: &str, now: Instant) -> Result<(), Duration> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let times = super::entry_for(&mut *seen, principal, VecDeque::new);
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.max {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(self
                .window
                .saturating_sub(now.duration_since(oldest))
                .max(Duration::from_secs(1)));
        }
        times.push_back(now);
        Ok(())
    }
}

impl Default for RateLimiter {
    /// 10 deploys per 10 minutes per principal.
    fn default() -> Self {
        Self::new(10, Duration::from_secs(600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_per_window_then_says_when() {
        let l = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l
                .admit("clawdinator-1", t0 + Duration::from_secs(i))
                .is_ok());
        }
        assert_eq!(
            l.admit("clawdinator-1", t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert!(
            l.admit("human:ops", t0 + Duration::from_secs(10)).is_ok(),
            "per principal"
        );
        assert!(
            l.admit("clawdinator-1", t0 + Duration::from_secs(60))
                .is_ok(),
            "the oldest left the window"
        );
    }
}
