//! What gleaner remembers between passes: feed validators, health and
//! schedule, the keys of every story seen, the near-duplicate index, learned boilerplate,
//! and writes in flight.
//!
//! `StateStore` is the whole contract; `sqlite::SqliteStore` is the embedded
//! backend (a PostgreSQL one can implement the same trait). Keys are the
//! 64-bit hashes from `dedupe`, stored as SQL integers.

mod keyfilter;
pub mod migrate;
pub mod postgres;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::dedupe::Signature;
use crate::fetch::Validators;
use crate::schedule::FeedSchedule;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state database {url}: {message}")]
    Postgres { url: String, message: String },
    #[error("state directory {0} is in use by another gleaner process (lock held on {0}/lock)")]
    Locked(String),
    #[error("state store {path} has schema version {found}, older than this gleaner's {expected}; it is upgraded the next time `gleaner run` or `gleaner fetch` opens it")]
    Outdated {
        path: String,
        found: i64,
        expected: i64,
    },
    #[error("state store {path} has schema version {found}; this gleaner understands up to {supported}: upgrade gleaner")]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
}

/// Per-feed polling state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedState {
    pub validators: Validators,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub failures: u32,
    pub items: u64,
}

/// What `StateStore::prune` dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub signatures: usize,
    pub blocks: usize,
}

/// A story already written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryRef {
    pub id: i64,
    /// Path stem relative to `output_dir` (see `output::story_stem`).
    pub stem: String,
}

/// A story about to be recorded.
#[derive(Debug, Clone)]
pub struct NewStory<'a> {
    pub stem: &'a str,
    pub feed: &'a str,
    pub created: DateTime<Utc>,
    /// The keys that make it one story (canonical URL keys; the first is
    /// its pending-write key): if one already names a story, this is a copy.
    pub keys: &'a [u64],
    /// More keys naming it when free (the item key: a GUID reused by a
    /// repost must not make the repost a copy).
    pub aliases: &'a [u64],
    pub signature: Option<&'a Signature>,
    /// Near-duplicate matching for the re-check of a shared backend.
    pub near: Option<NearCheck>,
}

/// Which stored stories count as copies of a new one by text.
#[derive(Debug, Clone, Copy)]
pub struct NearCheck {
    /// Stories created before this are out of the dedupe window.
    pub since: DateTime<Utc>,
    pub threshold: f64,
}

/// What `StateStore::add_story` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Recorded under this id: its files are this process's to write.
    New(i64),
    /// Another process sharing the store recorded the same story first
    /// (`by` "url" or "text", as in the `duplicates` list).
    Taken {
        story: StoryRef,
        by: &'static str,
        similarity: Option<f64>,
    },
}

impl Claim {
    /// The story's id, whoever recorded it.
    pub fn id(&self) -> i64 {
        match self {
            Claim::New(id) => *id,
            Claim::Taken { story, .. } => story.id,
        }
    }
}

/// The candidate that is one story with `sig` (`Signature::same_story` at
/// `threshold`) and most similar to it; ties go to the older story.
pub fn best_match(
    sig: &Signature,
    candidates: impl IntoIterator<Item = (StoryRef, Signature)>,
    threshold: f64,
) -> Option<(StoryRef, f64)> {
    candidates
        .into_iter()
        .filter_map(|(s, other)| sig.same_story(&other, threshold).map(|sim| (s, sim)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.id.cmp(&a.0.id)))
}

/// What `StateStore::lease_feed` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This instance polls the feed now.
    Granted,
    /// Another instance is polling it; its lease runs out then.
    Held { until: DateTime<Utc> },
    /// Another instance polled it after `fresh_after`, at this time.
    Polled { at: DateTime<Utc> },
}

pub trait StateStore: Send + Sync {
    fn feed_state(&self, feed: &str) -> Result<FeedState, StoreError>;
    fn all_feeds(&self) -> Result<Vec<(String, FeedState)>, StoreError>;
    /// Records a successful poll; `validators` is None for a 304 (keep the old ones).
    fn feed_ok(
        &self,
        feed: &str,
        validators: Option<&Validators>,
        new_items: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    fn feed_failed(&self, feed: &str, error: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Every feed's stored daemon schedule (feeds never scheduled are absent).
    fn schedules(&self) -> Result<Vec<(String, FeedSchedule)>, StoreError>;
    /// One feed's stored schedule.
    fn schedule(&self, feed: &str) -> Result<Option<FeedSchedule>, StoreError> {
        Ok(self
            .schedules()?
            .into_iter()
            .find(|(n, _)| n == feed)
            .map(|(_, s)| s))
    }
    /// Stores a feed's schedule (after each poll), so a restart resumes it.
    fn set_schedule(&self, feed: &str, schedule: &FeedSchedule) -> Result<(), StoreError>;

    /// The story a key names, if any.
    fn story_by_key(&self, key: u64) -> Result<Option<StoryRef>, StoreError>;
    /// The stories that `keys` name, by key (keys naming none are absent).
    fn stories_by_keys(&self, keys: &[u64]) -> Result<HashMap<u64, StoryRef>, StoreError> {
        let mut found = HashMap::new();
        for k in keys {
            if let Some(s) = self.story_by_key(*k)? {
                found.insert(*k, s);
            }
        }
        Ok(found)
    }
    /// Makes more keys name an existing story.
    fn add_keys(&self, story: i64, keys: &[u64]) -> Result<(), StoreError>;
    /// Records a story with its keys and near-duplicate signature, and notes
    /// its write as pending (under `keys[0]`) until `finish_story`, so a
    /// crash between record and files can be undone; one transaction. The
    /// caller has looked the story up already; a backend that other
    /// processes write too looks again, atomically, and answers
    /// `Claim::Taken` when one of them won the race.
    fn add_story(&self, story: &NewStory<'_>) -> Result<Claim, StoreError>;
    /// Forgets a story and every key naming it (its files were never written).
    fn remove_story(&self, story: i64) -> Result<(), StoreError>;
    /// Forgets every feed's validators, so the next pass re-reads every feed.
    fn clear_validators(&self) -> Result<(), StoreError>;
    /// Stories created at or after `since` sharing an LSH band with `sig`.
    fn near_candidates(
        &self,
        sig: &Signature,
        since: DateTime<Utc>,
    ) -> Result<Vec<(StoryRef, Signature)>, StoreError>;
    /// The stored story most similar to `sig` that is one story with it
    /// (`Signature::same_story` at `threshold`), created at or after
    /// `since`; ties go to the older story.
    fn near_best(
        &self,
        sig: &Signature,
        since: DateTime<Utc>,
        threshold: f64,
    ) -> Result<Option<(StoryRef, f64)>, StoreError> {
        Ok(best_match(
            sig,
            self.near_candidates(sig, since)?,
            threshold,
        ))
    }
    /// Drops what no lookup can use any more: the signatures of stories
    /// created before `near_before` (out of the dedupe window), and, once a
    /// day, learned-boilerplate blocks seen by a single story long ago.
    fn prune(&self, near_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Pruned, StoreError>;

    /// How many stories of the site `host` were learned from, and how many
    /// of them carried each block fingerprint.
    fn block_counts(&self, host: u64, blocks: &[u64]) -> Result<(u32, Vec<u32>), StoreError>;
    /// Marks a story's files as written (clears its pending write) and
    /// counts it, with its distinct block fingerprints, for each site it
    /// belongs to; one transaction.
    fn finish_story(
        &self,
        stem: &str,
        sites: &[u64],
        blocks: &[u64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Clears a pending write without learning anything (undo paths).
    fn end_write(&self, stem: &str) -> Result<(), StoreError>;
    fn pending_writes(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Where a feed moved (permanent redirect), if it did.
    fn feed_moved(&self, feed: &str) -> Result<Option<FeedMove>, StoreError>;
    /// Records (or, with `None`, forgets) a feed's permanent redirect.
    fn set_feed_moved(&self, feed: &str, moved: Option<&FeedMove>) -> Result<(), StoreError>;
    /// The failed attempts at a page (by canonical URL key), if any.
    fn page_failure(&self, key: u64) -> Result<Option<PageFailure>, StoreError>;
    /// `page_failure` of each of `keys`, by key (pages that never failed are absent).
    fn page_failures(&self, keys: &[u64]) -> Result<HashMap<u64, PageFailure>, StoreError> {
        let mut found = HashMap::new();
        for k in keys {
            if let Some(f) = self.page_failure(*k)? {
                found.insert(*k, f);
            }
        }
        Ok(found)
    }
    /// Counts a failed attempt at a page and gives it up at
    /// `max_attempts` (see `count_page_failure`), atomically: under one
    /// lock per page, whoever else records a failure of the same page at
    /// the same time (another feed, another instance).
    fn page_failed(&self, attempt: &PageAttempt<'_>) -> Result<PageCount, StoreError>;
    /// Forgets a page's failures (it finally worked).
    fn page_ok(&self, key: u64) -> Result<(), StoreError>;
    /// Every page given up, by feed.
    fn given_up_pages(&self) -> Result<Vec<PageFailure>, StoreError>;

    // Several instances on one store. The embedded store has one process
    // (its lock file sees to that), so these defaults are all it needs.

    /// Takes the right to poll `feed` now, unless another instance holds
    /// it or polled the feed after `fresh_after`.
    fn lease_feed(
        &self,
        _feed: &str,
        _fresh_after: Option<DateTime<Utc>>,
        _now: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        Ok(Lease::Granted)
    }
    /// Gives a lease back; `polled`: the feed was polled under it.
    fn release_feed(
        &self,
        _feed: &str,
        _polled: bool,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Runs `f` (an update of a story's `.json`) while no other process
    /// sharing the store runs one for the same story.
    fn with_story_lock(
        &self,
        _story: i64,
        f: Box<dyn FnOnce() -> Result<(), String> + Send>,
    ) -> Result<Result<(), String>, StoreError> {
        Ok(f())
    }
    /// Request spacing shared with other instances (`[fetch] host_delay`).
    fn shared_hosts(&self) -> Option<Arc<dyn crate::fetch::SharedHosts>> {
        None
    }
    /// Whether other processes write this store too.
    fn is_shared(&self) -> bool {
        false
    }
    /// Database round trips so far (None: not a networked store).
    fn round_trips(&self) -> Option<u64> {
        None
    }
}

/// A feed's permanent redirect. It holds while the config still names
/// `from`: a URL edited in the config wins over a stored move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMove {
    pub from: String,
    pub to: String,
}

/// A failed try at a page, for `StateStore::page_failed`.
#[derive(Debug, Clone)]
pub struct PageAttempt<'a> {
    /// The page's canonical URL key.
    pub key: u64,
    pub feed: &'a str,
    pub url: &'a str,
    pub error: &'a str,
    pub now: DateTime<Utc>,
    /// The attempts recorded when the caller decided to fetch the page
    /// (None: no failure recorded).
    pub seen: Option<u32>,
    /// Attempts at which the page is given up.
    pub max_attempts: u32,
    /// The page can never be fetched (a link gleaner refuses): given up
    /// at once.
    pub permanent: bool,
}

/// What `StateStore::page_failed` recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCount {
    /// Attempts recorded after this call.
    pub attempts: u32,
    /// This failure was counted as an attempt.
    pub counted: bool,
    /// The page is given up (now or earlier).
    pub given_up: bool,
    /// This call gave it up (so the give-up is reported once).
    pub gave_up: bool,
}

/// The store's decision for a failed try, from the page's row as it is
/// (`current`: attempts and given up). Several feeds linking one page, in
/// one process or several, may fail on it at the same moment: that is one
/// try, not one per feed, so a failure is counted only when no other was
/// counted since the caller looked (`seen`). A page already given up stays
/// given up, and is never counted past `max_attempts`.
pub fn count_page_failure(current: Option<(u32, bool)>, a: &PageAttempt<'_>) -> PageCount {
    if let Some((attempts, true)) = current {
        return PageCount {
            attempts,
            counted: false,
            given_up: true,
            gave_up: false,
        };
    }
    let now = current.map(|(n, _)| n);
    if !a.permanent && now != a.seen {
        return PageCount {
            attempts: now.unwrap_or(0),
            counted: false,
            given_up: false,
            gave_up: false,
        };
    }
    let attempts = now.unwrap_or(0).saturating_add(1);
    let given_up = a.permanent || attempts >= a.max_attempts.max(1);
    PageCount {
        attempts,
        counted: true,
        given_up,
        gave_up: given_up,
    }
}

/// A page that failed: how often, the last error, and whether gleaner gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFailure {
    pub feed: String,
    pub url: String,
    pub attempts: u32,
    pub last_error: String,
    pub last_at: DateTime<Utc>,
    pub given_up: bool,
}
