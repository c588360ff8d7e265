//! When each feed is polled next: intervals, adaptation, server hints,
//! error backoff and jitter.
//!
//! Pure: every function takes the time (`now`) and any randomness (`rand`, a
//! number in `[0, 1)`) as arguments and returns values, so the daemon's
//! behaviour over days can be unit-tested in microseconds. This module never
//! does I/O, never reads the clock and never disables a feed: a feed that
//! keeps failing is retried at most `max_backoff` apart, forever.
//!
//! The model, per feed:
//! - a *base interval*: the configured `interval`, or, when `adaptive`, one
//!   that follows the feed's observed item rate (aiming at
//!   [`TARGET_ITEMS_PER_POLL`] new items per poll), moving at most a factor
//!   [`MAX_STEP`] per poll so one quiet afternoon does not send a busy feed to
//!   `max_interval`;
//! - a *server hint* (RSS `<ttl>`, `Cache-Control: max-age`, `Expires`): a
//!   floor, because polling before the server says its copy changes is
//!   wasted work for both sides;
//! - both clamped to `[min_interval, max_interval]`, then jittered by
//!   `± jitter` so feeds configured alike drift apart instead of polling in
//!   lockstep;
//! - after `n` failures in a row: `min(error_backoff * 2^(n-1), max_backoff)`,
//!   jittered the same way but never beyond `max_backoff` (at most a day,
//!   [`MAX_BACKOFF`]); a feed that answered 410 Gone is polled once a day
//!   ([`GONE_RETRY`], jitter only earlier): sites come back, and the user
//!   decides to drop it;
//! - a page that failed `n` times is tried again at the next poll after the
//!   first failure, then after `min(error_backoff * 18^(n-2), max_backoff)`
//!   ([`page_retry_after`]), until `[fetch] page_attempts` gives it up: with
//!   the defaults that is 0, 5 min, 90 min and a day, so a site down for a
//!   day loses no story.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Feed, ScheduleConfig};

/// The adaptive interval aims at this many new items per poll: often
/// enough that a busy feed's window never scrolls past unseen items, rarely
/// enough that a quiet one is not asked every few minutes for nothing.
pub const TARGET_ITEMS_PER_POLL: f64 = 1.0;
/// Largest factor by which one poll may change the adaptive interval.
pub const MAX_STEP: f64 = 2.0;
/// Half-life of the observed item rate: a feed's last few days count most.
pub const RATE_HALF_LIFE_HOURS: f64 = 72.0;
/// A server cannot ask us to wait longer than this via `Retry-After`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often a feed that answered 410 Gone is still polled.
pub const GONE_RETRY: Duration = Duration::from_secs(24 * 3600);
/// The longest wait after an error, jitter included; `max_backoff` may not
/// exceed it (config validation).
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);
/// Growth of a failed page's retry wait per further failure. Steep on
/// purpose: a passing error is retried within minutes, while the default
/// five tries still span a day, because page failures that last are site
/// outages of hours, and a page given up is a story lost for good.
pub const PAGE_RETRY_GROWTH: u32 = 18;

/// The schedule knobs of one feed: `[schedule]` with the feed's own keys applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub interval: Duration,
    pub min_interval: Duration,
    pub max_interval: Duration,
    pub adaptive: bool,
    pub error_backoff: Duration,
    pub max_backoff: Duration,
    /// Fraction of an interval by which a poll moves early or late.
    pub jitter: f64,
    /// First polls (and polls overdue at start-up) are spread over this long.
    pub spread: Duration,
}

impl Policy {
    /// Resolves the policy of `feed` from the global `[schedule]` section.
    pub fn for_feed(global: &ScheduleConfig, feed: &Feed) -> Policy {
        let min_interval = feed.min_interval.unwrap_or(global.min_interval);
        let max_interval = feed.max_interval.unwrap_or(global.max_interval);
        Policy {
            interval: feed.interval.unwrap_or(global.interval),
            min_interval,
            // Config validation rejects min > max; stay sane if it did not.
            max_interval: max_interval.max(min_interval),
            adaptive: feed.adaptive.unwrap_or(global.adaptive),
            error_backoff: global.error_backoff,
            max_backoff: global.max_backoff,
            jitter: global.jitter.clamp(0.0, 0.5),
            spread: global.spread,
        }
    }

    fn clamp(&self, d: Duration) -> Duration {
        d.clamp(self.min_interval, self.max_interval)
    }
}

/// What the state store keeps per feed between polls and restarts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedSchedule {
    /// When the feed is due; `None` until the daemon has polled it once.
    pub next_poll: Option<DateTime<Utc>>,
    /// When it was last polled, successfully or not.
    pub last_poll: Option<DateTime<Utc>>,
    /// The current base interval (adaptive, before hint, clamp and jitter).
    pub interval: Option<Duration>,
    /// The server's last freshness hint; a 304 carries none, so it is kept.
    pub hint: Option<Duration>,
    /// Decayed count of new items seen, and of hours observed: their ratio
    /// is the item rate, weighted towards recent days.
    pub rate_items: f64,
    pub rate_hours: f64,
}

impl FeedSchedule {
    /// New items per hour, once there is anything to go on.
    pub fn items_per_hour(&self) -> Option<f64> {
        (self.rate_hours > 0.0).then(|| self.rate_items / self.rate_hours)
    }
}

/// How a poll went, as far as the schedule cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The feed was read; `new_items` were not seen before (written or
    /// duplicates of stories from other feeds). `first` is true for the
    /// feed's very first successful read, whose backlog says nothing about
    /// its rate.
    Fetched {
        new_items: u64,
        hint: Option<Duration>,
        first: bool,
    },
    /// 304 Not Modified: nothing new, the stored hint still applies.
    NotModified,
    /// The poll failed; `failures` in a row, this one included.
    Failed { failures: u32 },
    /// The feed answered 410 Gone: retried daily, never dropped.
    Gone,
    /// The feed's host asked us (429/503 + Retry-After) to come back later.
    HostPaused { until: DateTime<Utc> },
}

/// When a feed that the daemon has just started tracking is first due:
/// its stored `next_poll` if that is still ahead (a restart resumes the
/// schedule), otherwise within `spread` of now, so that a thousand new or
/// overdue feeds do not all fire in the first second. `failing` says the
/// feed's last poll failed (its failures in a row are above 0, 410 Gone
/// included): its stored time is then a backoff or the daily retry of a
/// gone feed, which a restart must not pull forward.
pub fn first_poll(
    policy: &Policy,
    stored: &FeedSchedule,
    failing: bool,
    now: DateTime<Utc>,
    rand: f64,
) -> DateTime<Utc> {
    // A shortened max_interval since the last run takes effect now; a
    // backoff only answers to its own (one-day) bound.
    let bound = if failing {
        MAX_BACKOFF.max(GONE_RETRY)
    } else {
        policy.max_interval
    };
    match stored.next_poll {
        Some(t) if t > now => t.min(now + to_chrono(bound)),
        _ => now + to_chrono(policy.spread.mul_f64(unit(rand))),
    }
}

/// The schedule after a poll that ended at `now`.
pub fn after_poll(
    policy: &Policy,
    prev: &FeedSchedule,
    outcome: &Outcome,
    now: DateTime<Utc>,
    rand: f64,
) -> FeedSchedule {
    let mut next = prev.clone();
    next.last_poll = Some(now);
    let base = prev.interval.unwrap_or(policy.interval);
    match outcome {
        Outcome::Failed { failures } => {
            // Jitter spreads failing feeds apart but never past the cap.
            let wait =
                jittered(backoff(policy, *failures), policy.jitter, rand).min(backoff_cap(policy));
            next.next_poll = Some(now + to_chrono(wait));
        }
        Outcome::Gone => {
            let wait = jittered(GONE_RETRY, policy.jitter, rand).min(GONE_RETRY);
            next.next_poll = Some(now + to_chrono(wait));
        }
        Outcome::HostPaused { until } => {
            // Not the feed's fault: no backoff, just wait out the host.
            next.next_poll = Some((*until).max(now));
        }
        Outcome::Fetched { .. } | Outcome::NotModified => {
            let (new_items, first) = match outcome {
                Outcome::Fetched {
                    new_items, first, ..
                } => (*new_items, *first),
                _ => (0, false),
            };
            if let Outcome::Fetched { hint, .. } = outcome {
                next.hint = *hint;
            }
            // The backlog of a first read is not a rate; the hours before the
            // previous poll (or a long outage) are not observation time either.
            if !first {
                if let Some(last) = prev.last_poll {
                    let hours = ((now - last).num_seconds().max(0) as f64 / 3600.0)
                        .min(policy.max_interval.as_secs_f64() / 3600.0 * 2.0);
                    let decay = 0.5f64.powf(hours / RATE_HALF_LIFE_HOURS);
                    next.rate_items = prev.rate_items * decay + new_items as f64;
                    next.rate_hours = prev.rate_hours * decay + hours;
                }
            }
            let interval = if policy.adaptive {
                adapt(policy, base, &next)
            } else {
                policy.clamp(policy.interval)
            };
            next.interval = Some(interval);
            let floor = next.hint.unwrap_or_default();
            let wait = policy.clamp(interval.max(floor));
            next.next_poll = Some(now + to_chrono(jittered(wait, policy.jitter, rand)));
        }
    }
    next
}

/// The adaptive base interval: towards `TARGET_ITEMS_PER_POLL` items per
/// poll, at most `MAX_STEP` away from the current one, within the clamps.
fn adapt(policy: &Policy, current: Duration, s: &FeedSchedule) -> Duration {
    let current = policy.clamp(current);
    let Some(rate) = s.items_per_hour() else {
        return current;
    };
    let target = if rate <= 0.0 {
        policy.max_interval
    } else {
        // Seconds, capped well inside Duration's range.
        let secs = (TARGET_ITEMS_PER_POLL / rate * 3600.0).min(1e9);
        Duration::from_secs_f64(secs)
    };
    let lo = current.div_f64(MAX_STEP);
    let hi = current.mul_f64(MAX_STEP);
    policy.clamp(target.clamp(lo, hi))
}

/// Delay before retrying after `failures` errors in a row:
/// `min(error_backoff * 2^(failures-1), max_backoff)`, never zero and never
/// above [`MAX_BACKOFF`].
pub fn backoff(policy: &Policy, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let d = policy
        .error_backoff
        .checked_mul(1u32 << exp)
        .unwrap_or(policy.max_backoff);
    d.min(backoff_cap(policy)).max(Duration::from_secs(1))
}

/// The longest wait after errors, jitter included.
fn backoff_cap(policy: &Policy) -> Duration {
    policy
        .max_backoff
        .min(MAX_BACKOFF)
        .max(Duration::from_secs(1))
}

/// How long after its `attempts`-th failure a page may be fetched again:
/// at once (the next poll of its feed) after the first failure, since most
/// failures are passing; then `error_backoff`, growing
/// [`PAGE_RETRY_GROWTH`] times per further failure, at most `max_backoff`
/// (and a day). With the default `[fetch] page_attempts` (5) and backoff, a
/// page is tried for more than a day (0, 5 min, 90 min, 24 h after each
/// failure) before it is given up.
pub fn page_retry_after(error_backoff: Duration, max_backoff: Duration, attempts: u32) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let cap = max_backoff.min(MAX_BACKOFF);
    PAGE_RETRY_GROWTH
        .checked_pow((attempts - 2).min(20))
        .and_then(|f| error_backoff.checked_mul(f))
        .unwrap_or(cap)
        .min(cap)
}

/// `d` moved by up to `± fraction`, `rand` choosing where.
pub fn jittered(d: Duration, fraction: f64, rand: f64) -> Duration {
    let f = fraction.clamp(0.0, 0.5);
    d.mul_f64(1.0 - f + 2.0 * f * unit(rand))
}

/// How long the server says a response stays fresh: RSS `<ttl>` (minutes),
/// `Cache-Control: max-age`, or `Expires` (relative to `now`); the largest
/// of those given. `no-cache`/`no-store` cancel the header hints.
pub fn freshness(
    ttl_minutes: Option<u32>,
    cache_control: Option<&str>,
    expires: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let ttl = ttl_minutes
        .filter(|m| *m > 0)
        .map(|m| Duration::from_secs(u64::from(m) * 60));
    let (max_age, no_cache) = cache_control.map_or((None, false), parse_cache_control);
    let header = if no_cache {
        None
    } else {
        // RFC 9111: max-age wins over Expires when both are present.
        max_age.or_else(|| {
            expires
                .and_then(parse_http_date)
                .and_then(|t| (t - now).to_std().ok())
        })
    };
    match (ttl, header.filter(|d| !d.is_zero())) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `max-age` (or `s-maxage`) in a `Cache-Control` value, and whether it
/// says `no-cache` or `no-store`.
pub fn parse_cache_control(value: &str) -> (Option<Duration>, bool) {
    let mut max_age = None;
    let mut no_cache = false;
    for part in value.split(',') {
        let part = part.trim().to_ascii_lowercase();
        if part == "no-cache" || part == "no-store" {
            no_cache = true;
        } else if let Some(v) = part
            .strip_prefix("max-age=")
            .or_else(|| part.strip_prefix("s-maxage="))
        {
            if let Ok(secs) = v.trim_matches('"').parse::<u64>() {
                max_age = Some(Duration::from_secs(secs));
            }
        }
    }
    (max_age, no_cache)
}

/// `Retry-After`: delay-seconds or an HTTP date, as an absolute time,
/// capped at `MAX_RETRY_AFTER` from now. `None` when unparseable.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let t = parse_http_date(value)?;
        (t - now).to_std().unwrap_or_default()
    };
    Some(now + to_chrono(delay.min(MAX_RETRY_AFTER)))
}

/// An HTTP date (IMF-fixdate, which RFC 2822 parsing covers, including `GMT`).
pub fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A std duration as a chrono one, saturating (a year is plenty).
pub fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d.min(Duration::from_secs(366 * 24 * 3600)))
        .unwrap_or(chrono::Duration::days(366))
}

fn unit(rand: f64) -> f64 {
    if rand.is_finite() {
        rand.clamp(0.0, 1.0)
    } else {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 3600;

    fn policy() -> Policy {
        Policy {
            interval: Duration::from_secs(30 * MIN),
            min_interval: Duration::from_secs(5 * MIN),
            max_interval: Duration::from_secs(12 * HOUR),
            adaptive: true,
            error_backoff: Duration::from_secs(5 * MIN),
            max_backoff: Duration::from_secs(24 * HOUR),
            jitter: 0.1,
            spread: Duration::from_secs(60),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(d: chrono::Duration) -> i64 {
        d.num_seconds()
    }

    /// Polls `n` times, each poll seeing `items` new items, with no jitter.
    fn run(p: &Policy, n: usize, items: u64) -> FeedSchedule {
        let mut now = t0();
        let mut s = after_poll(
            p,
            &FeedSchedule::default(),
            &Outcome::Fetched {
                new_items: 20,
                hint: None,
                first: true,
            },
            now,
            0.5,
        );
        for _ in 0..n {
            now = s.next_poll.unwrap();
            s = after_poll(
                p,
                &s,
                &Outcome::Fetched {
                    new_items: items,
                    hint: None,
                    first: false,
                },
                now,
                0.5,
            );
        }
        s
    }

    #[test]
    fn default_interval_after_first_read() {
        let s = run(&policy(), 0, 0);
        assert_eq!(secs(s.next_poll.unwrap() - t0()), 30 * 60);
        assert_eq!(s.interval, Some(Duration::from_secs(30 * MIN)));
        assert_eq!(
            s.items_per_hour(),
            None,
            "a first read's backlog is no rate"
        );
    }

    #[test]
    fn busy_feed_is_polled_more_often_down_to_min_interval() {
        let p = policy();
        let s = run(&p, 1, 10);
        assert_eq!(
            s.interval,
            Some(Duration::from_secs(15 * MIN)),
            "one step halves at most"
        );
        let s = run(&p, 10, 10);
        assert_eq!(s.interval, Some(p.min_interval));
    }

    #[test]
    fn quiet_feed_is_polled_less_often_up_to_max_interval() {
        let p = policy();
        let s = run(&p, 1, 0);
        assert_eq!(
            s.interval,
            Some(Duration::from_secs(HOUR)),
            "one step doubles at most"
        );
        let s = run(&p, 20, 0);
        assert_eq!(s.interval, Some(p.max_interval));
    }

    #[test]
    fn steady_feed_settles_near_one_item_per_poll() {
        // 2 items per hour observed => about 30 min.
        let p = policy();
        let mut now = t0();
        let mut s = FeedSchedule {
            last_poll: Some(now),
            interval: Some(Duration::from_secs(4 * HOUR)),
            ..FeedSchedule::default()
        };
        for _ in 0..30 {
            let gap = s.interval.unwrap();
            now += to_chrono(gap);
            let items = (gap.as_secs_f64() / 1800.0).round() as u64;
            s = after_poll(
                &p,
                &s,
                &Outcome::Fetched {
                    new_items: items,
                    hint: None,
                    first: false,
                },
                now,
                0.5,
            );
        }
        let i = s.interval.unwrap().as_secs();
        assert!((25 * MIN..=40 * MIN).contains(&i), "{i}");
    }

    #[test]
    fn not_adaptive_keeps_configured_interval() {
        let p = Policy {
            adaptive: false,
            interval: Duration::from_secs(2 * HOUR),
            ..policy()
        };
        let s = run(&p, 5, 50);
        assert_eq!(s.interval, Some(Duration::from_secs(2 * HOUR)));
        let p = Policy {
            interval: Duration::from_secs(MIN),
            ..p
        };
        assert_eq!(run(&p, 1, 0).interval, Some(p.min_interval), "clamped");
    }

    #[test]
    fn server_hints_are_a_floor_within_clamps() {
        let p = policy();
        let fetched = |hint| Outcome::Fetched {
            new_items: 0,
            hint,
            first: true,
        };
        let s = after_poll(
            &p,
            &FeedSchedule::default(),
            &fetched(Some(Duration::from_secs(2 * HOUR))),
            t0(),
            0.5,
        );
        assert_eq!(secs(s.next_poll.unwrap() - t0()), 2 * 3600);
        // A 304 keeps the last hint.
        let s2 = after_poll(&p, &s, &Outcome::NotModified, t0(), 0.5);
        assert_eq!(s2.hint, Some(Duration::from_secs(2 * HOUR)));
        assert!(secs(s2.next_poll.unwrap() - t0()) >= 2 * 3600);
        // A week-long hint is clamped to max_interval.
        let s = after_poll(
            &p,
            &FeedSchedule::default(),
            &fetched(Some(Duration::from_secs(7 * 24 * HOUR))),
            t0(),
            0.5,
        );
        assert_eq!(secs(s.next_poll.unwrap() - t0()), 12 * 3600);
        // A short hint does not make us poll more often than the interval.
        let s = after_poll(
            &p,
            &FeedSchedule::default(),
            &fetched(Some(Duration::from_secs(10))),
            t0(),
            0.5,
        );
        assert_eq!(secs(s.next_poll.unwrap() - t0()), 30 * 60);
    }

    #[test]
    fn freshness_from_ttl_cache_control_and_expires() {
        let now = t0();
        assert_eq!(
            freshness(Some(60), None, None, now),
            Some(Duration::from_secs(HOUR))
        );
        assert_eq!(
            freshness(None, Some("public, max-age=900"), None, now),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            freshness(None, None, Some("Wed, 01 Jan 2025 02:00:00 GMT"), now),
            Some(Duration::from_secs(2 * HOUR))
        );
        // max-age wins over Expires; the larger of ttl and header wins.
        assert_eq!(
            freshness(
                Some(5),
                Some("max-age=600"),
                Some("Wed, 01 Jan 2025 02:00:00 GMT"),
                now
            ),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            freshness(None, Some("no-cache, max-age=600"), None, now),
            None
        );
        assert_eq!(freshness(None, Some("max-age=0"), None, now), None);
        assert_eq!(freshness(None, None, Some("0"), now), None);
        assert_eq!(
            freshness(Some(0), None, Some("Tue, 31 Dec 2024 00:00:00 GMT"), now),
            None
        );
    }

    #[test]
    fn backoff_doubles_and_caps_at_a_day() {
        let p = policy();
        let b: Vec<u64> = (1..=12).map(|n| backoff(&p, n).as_secs() / 60).collect();
        assert_eq!(
            b,
            vec![5, 10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440, 1440]
        );
        assert_eq!(backoff(&p, u32::MAX).as_secs(), 24 * 3600);
        assert_eq!(backoff(&p, 0).as_secs(), 5 * 60);
    }

    #[test]
    fn failures_back_off_with_jitter_and_never_disable() {
        let p = policy();
        let s = FeedSchedule::default();
        for failures in [1, 5, 100, 10_000] {
            for rand in [0.0, 0.3, 0.999] {
                let n = after_poll(&p, &s, &Outcome::Failed { failures }, t0(), rand);
                let wait = secs(n.next_poll.unwrap() - t0()) as f64;
                let base = backoff(&p, failures).as_secs_f64();
                assert!(
                    wait >= base * 0.9 - 1.0 && wait <= base * 1.1 + 1.0,
                    "{failures} {rand} {wait}"
                );
                // The cap holds after jitter: never more than a day.
                assert!(wait <= 24.0 * 3600.0, "{failures} {rand} {wait}");
            }
        }
        // Jitter actually spreads.
        let a = after_poll(&p, &s, &Outcome::Failed { failures: 3 }, t0(), 0.0).next_poll;
        let b = after_poll(&p, &s, &Outcome::Failed { failures: 3 }, t0(), 0.99).next_poll;
        assert_ne!(a, b);
    }

    #[test]
    fn gone_feeds_are_polled_daily() {
        let p = policy();
        let prev = FeedSchedule {
            interval: Some(Duration::from_secs(300)),
            ..FeedSchedule::default()
        };
        let n = after_poll(&p, &prev, &Outcome::Gone, t0(), 0.5);
        assert_eq!(secs(n.next_poll.unwrap() - t0()), 24 * 3600);
        assert_eq!(n.interval, prev.interval, "the base interval is kept");
        let early = after_poll(&p, &FeedSchedule::default(), &Outcome::Gone, t0(), 0.0);
        assert!(secs(early.next_poll.unwrap() - t0()) >= (24.0 * 3600.0 * 0.9) as i64);
        let late = after_poll(&p, &FeedSchedule::default(), &Outcome::Gone, t0(), 0.999);
        assert_eq!(secs(late.next_poll.unwrap() - t0()), 24 * 3600);
    }

    #[test]
    fn backoff_never_exceeds_a_day_even_with_jitter_or_a_larger_max_backoff() {
        let mut p = policy();
        p.jitter = 0.5;
        p.max_backoff = Duration::from_secs(72 * HOUR);
        for failures in [1, 9, 10, 11, 30, u32::MAX] {
            assert!(backoff(&p, failures) <= MAX_BACKOFF, "{failures}");
            for rand in [0.0, 0.5, 0.75, 0.999] {
                let n = after_poll(
                    &p,
                    &FeedSchedule::default(),
                    &Outcome::Failed { failures },
                    t0(),
                    rand,
                );
                let wait = secs(n.next_poll.unwrap() - t0());
                assert!(wait <= 24 * 3600, "{failures} {rand} {wait}");
            }
        }
        // At the cap, jitter still spreads feeds (downwards).
        let at = |rand| {
            after_poll(
                &p,
                &FeedSchedule::default(),
                &Outcome::Failed { failures: 40 },
                t0(),
                rand,
            )
            .next_poll
        };
        assert_ne!(at(0.0), at(0.3));
    }

    #[test]
    fn page_retries_back_off_from_the_second_failure() {
        let m = |n| {
            page_retry_after(Duration::from_secs(300), Duration::from_secs(86_400), n).as_secs()
                / 60
        };
        let waits: Vec<u64> = [0, 1, 2, 3, 4, 5, 10, 11, 40, u32::MAX]
            .into_iter()
            .map(m)
            .collect();
        assert_eq!(waits, vec![0, 0, 5, 90, 1440, 1440, 1440, 1440, 1440, 1440]);
        // At the default page_attempts (5) the tries span more than a day:
        // the waits after failures 1..=4 (the fifth gives up) add up to
        // 25 h 35 min, before the feed's own polling interval between tries.
        let span: u64 = (1..5).map(m).sum();
        assert_eq!(span, 25 * 60 + 35);
        // A short max_backoff (tests, impatient users) caps every wait.
        let short = |n| page_retry_after(Duration::from_secs(1), Duration::from_secs(4), n);
        assert_eq!(short(2), Duration::from_secs(1));
        assert_eq!(short(3), Duration::from_secs(4));
        assert_eq!(short(u32::MAX), Duration::from_secs(4));
    }

    #[test]
    fn host_pause_defers_without_backoff() {
        let p = policy();
        let until = t0() + chrono::Duration::seconds(120);
        let n = after_poll(
            &p,
            &FeedSchedule::default(),
            &Outcome::HostPaused { until },
            t0(),
            0.5,
        );
        assert_eq!(n.next_poll, Some(until));
    }

    #[test]
    fn first_polls_are_spread_and_restart_resumes() {
        let p = policy();
        let fresh = FeedSchedule::default();
        let times: Vec<i64> = [0.0, 0.25, 0.5, 0.999]
            .iter()
            .map(|r| secs(first_poll(&p, &fresh, false, t0(), *r) - t0()))
            .collect();
        assert_eq!(times, vec![0, 15, 30, 59]);
        // Ahead: resumed as stored.
        let ahead = FeedSchedule {
            next_poll: Some(t0() + chrono::Duration::seconds(600)),
            ..fresh.clone()
        };
        assert_eq!(
            first_poll(&p, &ahead, false, t0(), 0.7),
            t0() + chrono::Duration::seconds(600)
        );
        // Overdue: spread like a new feed.
        let overdue = FeedSchedule {
            next_poll: Some(t0() - chrono::Duration::seconds(600)),
            ..fresh
        };
        assert_eq!(secs(first_poll(&p, &overdue, false, t0(), 0.5) - t0()), 30);
        // Beyond a (since shortened) max_interval: brought in.
        let far = FeedSchedule {
            next_poll: Some(t0() + chrono::Duration::days(30)),
            ..FeedSchedule::default()
        };
        assert_eq!(
            secs(first_poll(&p, &far, false, t0(), 0.5) - t0()),
            12 * 3600
        );
    }

    #[test]
    fn restart_keeps_a_backoff_or_gone_schedule_beyond_max_interval() {
        let p = policy();
        // Backed off to a day after failures (or gone: retried daily).
        let backed_off = after_poll(
            &p,
            &FeedSchedule::default(),
            &Outcome::Failed { failures: 20 },
            t0(),
            0.999,
        );
        let gone = after_poll(&p, &FeedSchedule::default(), &Outcome::Gone, t0(), 0.5);
        let restart = t0() + chrono::Duration::hours(1);
        for s in [&backed_off, &gone] {
            let stored = s.next_poll.unwrap();
            assert!(stored - restart > chrono::Duration::hours(12));
            assert_eq!(first_poll(&p, s, true, restart, 0.5), stored);
        }
        // A healthy feed's stored time still answers to max_interval.
        assert_eq!(
            secs(first_poll(&p, &gone, false, restart, 0.5) - restart),
            12 * 3600
        );
        // Overdue after a long stop: spread, failing or not.
        let later = t0() + chrono::Duration::days(3);
        assert_eq!(secs(first_poll(&p, &gone, true, later, 0.5) - later), 30);
    }

    #[test]
    fn retry_after_seconds_or_date_and_capped() {
        let now = t0();
        assert_eq!(
            retry_after("120", now),
            Some(now + chrono::Duration::seconds(120))
        );
        assert_eq!(
            retry_after("Wed, 01 Jan 2025 00:10:00 GMT", now),
            Some(now + chrono::Duration::seconds(600))
        );
        assert_eq!(retry_after("Tue, 31 Dec 2024 00:00:00 GMT", now), Some(now));
        assert_eq!(
            retry_after("999999999", now),
            Some(now + chrono::Duration::days(1))
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn jitter_bounds() {
        let d = Duration::from_secs(1000);
        assert_eq!(jittered(d, 0.1, 0.0).as_secs(), 900);
        assert_eq!(jittered(d, 0.1, 0.5).as_secs(), 1000);
        assert!(jittered(d, 0.1, 0.999).as_secs() <= 1100);
        assert_eq!(jittered(d, 0.0, 0.9), d);
        assert_eq!(jittered(d, 0.1, f64::NAN).as_secs(), 1000);
    }

    #[test]
    fn policy_resolves_feed_overrides() {
        let g = ScheduleConfig::default();
        let mut f = Feed {
            name: "a".into(),
            url: url::Url::parse("http://x/").unwrap(),
            interval: Some(Duration::from_secs(HOUR)),
            min_interval: None,
            max_interval: None,
            adaptive: Some(false),
        };
        let p = Policy::for_feed(&g, &f);
        assert_eq!((p.interval, p.adaptive), (Duration::from_secs(HOUR), false));
        assert_eq!(p.min_interval, g.min_interval);
        f.max_interval = Some(Duration::from_secs(1));
        let p = Policy::for_feed(&g, &f);
        assert!(p.max_interval >= p.min_interval);
    }
}
