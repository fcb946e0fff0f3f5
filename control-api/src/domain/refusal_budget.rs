//! Refusals counted per source, so a flood of wrong tokens or refused requests costs a
//! handful of audit records and one summary line per source, not an S3 write and a log
//! line each. The caller still gets its 401 or 403 every time: only the trail is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// More sources than this and the ones whose window ended are dropped (after their
/// summary is handed out), so a spray of addresses cannot grow the map without bound.
const MAX_SOURCES: usize = 10_000;

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write its log line and audit record. `suppressed_before` refusals of this source
    /// went unrecorded in its previous window: say so once, now.
    Record { suppressed_before: u32 },
    /// Over the budget: answer it, record nothing.
    Suppress,
}

#[derive(Debug)]
struct Tally {
    since: Instant,
    recorded: u32,
    suppressed: u32,
}

#[derive(Debug, Default)]
struct Tallies {
    by_source: HashMap<String, Tally>,
    last_sweep: Option<Instant>,
}

/// `max` recorded refusals per `window` for each source. Per process, like the deploy
/// rate limit: each Lambda instance counts on its own.
#[derive(Debug)]
pub struct RefusalBudget {
    max: u32,
    window: Duration,
    tallies: Mutex<Tallies>,
}

impl Default for RefusalBudget {
    /// 5 recorded refusals per 10 minutes per source.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(600))
    }
}

impl RefusalBudget {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            tallies: Mutex::new(Tallies::default()),
        }
    }

    /// Counts a refusal by `source` at `now` and says whether to record it.
    pub fn admit(&self, source: &str, now: Instant) -> Verdict {
        let mut tallies = self.lock();
        if tallies.by_source.len() >= MAX_SOURCES && !tallies.by_source.contains_key(source) {
            // Full: the summaries of dropped sources are lost rather than the map grown.
            let window = self.window;
            tallies
                .by_source
                .retain(|_, t| now.duration_since(t.since) < window);
        }
        let tally = super::entry_for(&mut tallies.by_source, source, || Tally {
            since: now,
            recorded: 0,
            suppressed: 0,
        });
        let mut suppressed_before = 0;
        if now.duration_since(tally.since) >= self.window {
            suppressed_before = tally.suppressed;
            *tally = Tally {
                since: now,
                recorded: 0,
                suppressed: 0,
            };
        }
        if tally.recorded < self.max {
            tally.recorded += 1;
            Verdict::Record { suppressed_before }
        } else {
            tally.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// The sources whose window has ended with refusals left unrecorded, and how many:
    /// each is handed out once, for its summary line. Looks at most once a second, so
    /// that every request may ask.
    pub fn ended(&self, now: Instant) -> Vec<(String, u32)> {
        let mut tallies = self.lock();
        if tallies
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return Vec::new();
        }
        tallies.last_sweep = Some(now);
        let window = self.window;
        let mut ended = Vec::new();
        tallies.by_source.retain(|source, t| {
            let open = now.duration_since(t.since) < window;
            if !open && t.suppressed > 0 {
                ended.push((source.clone(), t.suppressed));
            }
            open
        });
        ended
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.tallies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_max_per_window_then_summarizes_the_rest_once() {
        let b = RefusalBudget::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..60).map(|_| b.admit("198.51.100.7", t0)).collect();
        let recorded = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Record { .. }))
            .count();
        assert_eq!(recorded, 3);
        assert_eq!(
            b.admit("203.0.113.9", t0),
            Verdict::Record {
                suppressed_before: 0
            },
            "per source"
        );
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            b.ended(later),
            vec![("198.51.100.7".to_owned(), 57)],
            "one summary for the flooding source"
        );
        assert!(b.ended(later + Duration::from_secs(5)).is_empty(), "once");
    }

    #[test]
    fn the_next_refusal_after_the_window_carries_the_summary() {
        let b = RefusalBudget::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        b.admit("human:ops", t0);
        assert_eq!(b.admit("human:ops", t0), Verdict::Suppress);
        assert_eq!(b.admit("human:ops", t0), Verdict::Suppress);
        assert_eq!(
            b.admit("human:ops", t0 + Duration::from_secs(60)),
            Verdict::Record {
                suppressed_before: 2
            }
        );
    }
}
