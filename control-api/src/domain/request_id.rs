//! Request ids: UUIDv7, time-ordered (audit and queue keys sort by arrival) and unique,
//! made without a system call.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// Seeded once per thread from the OS (a v4 UUID is one `getrandom` read), so two
    /// processes started in the same instant do not draw the same bits.
    static RANDOM: RefCell<fastrand::Rng> =
        RefCell::new(fastrand::Rng::with_seed(uuid::Uuid::new_v4().as_u64_pair().0));
}

/// The last id's milliseconds and 12-bit sequence (`ms << 12 | seq`): each id takes a
/// larger one, so ids made by one process never repeat and keep their order within a
/// millisecond (as `uuid`'s own v7 context does).
static LAST: AtomicU64 = AtomicU64::new(0);

/// A new request id, `xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx`.
///
/// `uuid::Uuid::now_v7` reads its random bits with one `getrandom` system call per id
/// (7% of the handler bench's time, all cases). The 62 random bits here come from a
/// per-thread generator seeded from the OS: an id must be unique, not unguessable, as
/// nothing is authorized by knowing one.
pub fn new_request_id() -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stamp = next_stamp(&LAST, now_ms);
    let (ms, seq) = (stamp >> 12, stamp & 0xfff);
    let random = RANDOM.with(|r| r.borrow_mut().u64(..)) >> 2;
    let bits = u128::from(ms & 0xffff_ffff_ffff) << 80
        | 0x7 << 76
        | u128::from(seq) << 64
        | 0b10 << 62
        | u128::from(random);
    uuid::Uuid::from_u128(bits).to_string()
}

/// The next `ms << 12 | seq` after the last one, at least `now_ms`'s first. More than
/// 4,096 ids in one millisecond borrow from the next (as `uuid`'s context does).
fn next_stamp(last: &AtomicU64, now_ms: u64) -> u64 {
    let next = |last: u64| (now_ms << 12).max(last + 1);
    // The closure always answers, so the update always succeeds and hands back the value
    // it replaced; the stamp taken is what the closure made of it.
    let previous = last
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(next(last))
        })
        .unwrap_or_else(|last| last);
    next(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_rfc_variant_and_strictly_increasing() {
        let ids: Vec<String> = (0..10_000).map(|_| new_request_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }

    #[test]
    fn an_id_carries_the_time_it_was_made() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let id = uuid::Uuid::parse_str(&new_request_id()).unwrap();
        let (secs, _) = id.get_timestamp().expect("v7 has one").to_unix();
        // Ids borrow at most a few milliseconds from the future under load.
        assert!(secs.abs_diff(before.as_secs()) <= 1, "{secs} vs {before:?}");
    }

    #[test]
    fn a_burst_over_4096_in_one_millisecond_borrows_the_next() {
        let last = AtomicU64::new(0);
        let ms = 1_800_000_000_000;
        let burst: Vec<u64> = (0..5000).map(|_| next_stamp(&last, ms)).collect();
        assert_eq!(burst[0], ms << 12, "the millisecond's first");
        assert!(burst.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            burst[4096] >> 12,
            ms + 1,
            "the 4,097th spilled into the next ms"
        );
        assert_eq!(
            next_stamp(&last, ms + 5),
            (ms + 5) << 12,
            "a later clock wins"
        );
    }
}
