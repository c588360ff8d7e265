//! The embedded state store: one SQLite database (WAL) under `state_dir`.
//!
//! Why SQLite (bundled via rusqlite): WAL commits survive kill -9, the file
//! opens in the stock `sqlite3` shell for inspection and backup, and its
//! tables and `ON CONFLICT` idioms carry over to PostgreSQL. One connection
//! behind a mutex: every call is a few index lookups, far cheaper than the
//! HTTP work around it. A lock file keeps a second process out.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::keyfilter::KeyFilter;
use super::{
    count_page_failure, Claim, FeedMove, FeedState, NewStory, PageAttempt, PageCount, PageFailure,
    Pruned, StateStore, StoreError, StoryRef,
};
use crate::dedupe::{NearIndex, Signature};
use crate::fetch::Validators;
use crate::schedule::FeedSchedule;

/// Version 1 is `SCHEMA`; each later version is one entry of `MIGRATIONS`.
const SCHEMA_VERSION: i64 = 6;

/// `(version, SQL)`: run in order, each in the transaction that also sets
/// `user_version`, for every version above the database's. Append only:
/// a store written by an older gleaner must upgrade in place.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        2,
        // The daemon's per-feed schedule (see `schedule::FeedSchedule`).
        "ALTER TABLE feeds ADD COLUMN next_poll INTEGER;
     ALTER TABLE feeds ADD COLUMN last_poll INTEGER;
     ALTER TABLE feeds ADD COLUMN interval_secs INTEGER;
     ALTER TABLE feeds ADD COLUMN hint_secs INTEGER;
     ALTER TABLE feeds ADD COLUMN rate_items REAL NOT NULL DEFAULT 0;
     ALTER TABLE feeds ADD COLUMN rate_hours REAL NOT NULL DEFAULT 0;",
    ),
    (
        3,
        // A feed's permanent redirect (the configured URL it applies to,
        // and where it moved), and pages that keep failing: attempts so
        // far, and whether they were given up.
        "ALTER TABLE feeds ADD COLUMN moved_from TEXT;
     ALTER TABLE feeds ADD COLUMN moved_to TEXT;
     CREATE TABLE IF NOT EXISTS page_failures (
         key INTEGER PRIMARY KEY,
         feed TEXT NOT NULL,
         url TEXT NOT NULL,
         attempts INTEGER NOT NULL,
         last_error TEXT NOT NULL,
         last_at INTEGER NOT NULL,
         given_up INTEGER NOT NULL DEFAULT 0
     );",
    ),
    (
        4,
        // LSH band keys narrowed to 32 bits (`band_key`): 4 bytes instead of
        // 8 in each of a story's 16 rows. The new key is the old one's low
        // half, sign-extended, so the index carries over; rebuilt in key
        // order. Signatures written from now on are 128 bytes
        // (`Signature::to_bytes`); the older 256-byte ones stay readable.
        "CREATE TABLE bands32 (
         band INTEGER NOT NULL,
         story INTEGER NOT NULL,
         PRIMARY KEY (band, story)
     ) WITHOUT ROWID;
     INSERT OR IGNORE INTO bands32 (band, story)
         SELECT CASE WHEN band & 2147483648 THEN (band & 4294967295) - 4294967296
                     ELSE band & 4294967295 END, story
         FROM bands ORDER BY 1, 2;
     DROP TABLE bands;
     ALTER TABLE bands32 RENAME TO bands;",
    ),
    (
        5,
        // The LSH index moves to memory (`dedupe::NearIndex`, rebuilt from
        // the stored signatures): a band table cost a random page write per
        // band per story. Signatures get their own table, so pruning those
        // out of the dedupe window frees whole pages. The old signatures
        // (64 minhashes of other hash functions) cannot be compared with
        // new ones and go: the stories stay, but are not near-matched.
        // `meta`: when blocks were last pruned.
        "DROP TABLE IF EXISTS bands;
     CREATE TABLE signatures (
         story INTEGER PRIMARY KEY,
         sig BLOB NOT NULL
     );
     ALTER TABLE stories DROP COLUMN sig;
     CREATE TABLE IF NOT EXISTS meta (
         name TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;",
    ),
    (
        6,
        // Pending writes keyed by their stem in one B-tree instead of a
        // table plus its index: a page less written by every story's two
        // commits (record, then finish).
        "CREATE TABLE pending6 (
         stem TEXT PRIMARY KEY,
         key INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO pending6 (stem, key) SELECT stem, key FROM pending;
     DROP TABLE pending;
     ALTER TABLE pending6 RENAME TO pending;",
    ),
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    last_success INTEGER,
    last_error TEXT,
    last_error_at INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    items INTEGER NOT NULL DEFAULT 0
);
-- Every key that names a story: item keys (GUID / link / title+date) and URL keys.
CREATE TABLE IF NOT EXISTS keys (
    key INTEGER PRIMARY KEY,
    story INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stories (
    id INTEGER PRIMARY KEY,
    stem TEXT NOT NULL,
    created INTEGER NOT NULL,
    sig BLOB
);
-- LSH bands of near-duplicate signatures.
CREATE TABLE IF NOT EXISTS bands (
    band INTEGER NOT NULL,
    story INTEGER NOT NULL,
    PRIMARY KEY (band, story)
) WITHOUT ROWID;
-- Learned boilerplate: how many stories of a host printed a block.
CREATE TABLE IF NOT EXISTS blocks (
    host INTEGER NOT NULL,
    block INTEGER NOT NULL,
    stories INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (host, block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sites (
    host INTEGER PRIMARY KEY,
    stories INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    stem TEXT PRIMARY KEY,
    key INTEGER NOT NULL
);
";

pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The near-duplicate index, built on first use (a pass of 304s never
    /// needs it). Locked after `conn`, never before.
    near: Mutex<Option<Near>>,
    /// Which keys certainly name no story, built on first use. Locked
    /// after `conn`, never before.
    filter: Mutex<Option<KeyFilter>>,
    path: PathBuf,
    // Held for the life of the store: the OS drops the lock if we die.
    _lock: File,
}

fn k(key: u64) -> i64 {
    key as i64
}

/// Blocks seen by one story and not since this long are dropped from the
/// learned-boilerplate counts: a block that never repeats is not furniture.
const BLOCK_TTL_DAYS: i64 = 60;

/// The near-duplicate index with the signatures it points at, so comparing
/// a new story with its candidates reads nothing from disk (a row read per
/// candidate was most of what dedupe cost a pass). It holds the dedupe
/// window only: 168 bytes per story in it, beside the index's slots.
#[derive(Default)]
struct Near {
    index: NearIndex,
    /// Story `first + i` is `chunks[i / SIG_CHUNK][i % SIG_CHUNK]`: ids
    /// grow, so this is a sliding window. In chunks rather than a box per
    /// story: 170,000 small long-lived allocations, made between a pass's
    /// page buffers, kept glibc from giving freed memory back.
    first: u32,
    chunks: std::collections::VecDeque<Box<[Option<Held>]>>,
}

/// A story's signature and creation time (Unix seconds).
type Held = (Signature, i64);

/// Stories per chunk of `Near` (~86 KB).
const SIG_CHUNK: usize = 512;

impl Near {
    fn insert(&mut self, id: u32, sig: &Signature, created: i64) {
        self.index.insert(id, sig);
        if self.chunks.is_empty() {
            // Chunks start at multiples of SIG_CHUNK, so pruning drops
            // whole ones.
            self.first = id - id % SIG_CHUNK as u32;
        }
        let Some(at) = id.checked_sub(self.first).map(|d| d as usize) else {
            // Before the window's start: its candidates are read from disk.
            return;
        };
        while at / SIG_CHUNK >= self.chunks.len() {
            self.chunks
                .push_back(std::iter::repeat_n(None, SIG_CHUNK).collect());
        }
        self.chunks[at / SIG_CHUNK][at % SIG_CHUNK] = Some((sig.clone(), created));
    }

    /// The signature and creation time of story `id`; None when it is not
    /// held in memory.
    fn get(&self, id: u32) -> Option<&Held> {
        let at = id.checked_sub(self.first)? as usize;
        self.chunks.get(at / SIG_CHUNK)?[at % SIG_CHUNK].as_ref()
    }

    fn retain_from(&mut self, first: u32) {
        self.index.retain_from(first);
        while !self.chunks.is_empty() && self.first.saturating_add(SIG_CHUNK as u32) <= first {
            self.chunks.pop_front();
            self.first += SIG_CHUNK as u32;
        }
        if let Some(chunk) = self.chunks.front_mut() {
            let cut = first.saturating_sub(self.first) as usize;
            chunk[..cut.min(SIG_CHUNK)].fill(None);
        } else {
            self.first = first - first % SIG_CHUNK as u32;
        }
    }
}

/// The near index over every stored signature.
fn build_near_index(c: &Connection) -> rusqlite::Result<Near> {
    let mut near = Near::default();
    let mut st = c.prepare(
        "SELECT g.story, g.sig, s.created FROM signatures g JOIN stories s ON s.id = g.story
         ORDER BY g.story",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (id, bytes) = (r.get::<_, i64>(0)?, r.get_ref(1)?.as_blob()?);
        if let (Ok(id), Some(sig)) = (u32::try_from(id), Signature::from_bytes(bytes)) {
            near.insert(id, &sig, r.get(2)?);
        }
    }
    Ok(near)
}

/// A key filter holding every key, with room for half as many again, so
/// that rebuilds (a scan of the table each) come at every 50% of growth.
fn build_key_filter(c: &Connection) -> rusqlite::Result<KeyFilter> {
    let count: i64 = c.query_row("SELECT count(*) FROM keys", [], |r| r.get(0))?;
    let count = usize::try_from(count).unwrap_or(0);
    let mut filter = KeyFilter::with_capacity(count.saturating_add(count / 2));
    let mut st = c.prepare("SELECT key FROM keys")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        filter.insert(r.get::<_, i64>(0)? as u64);
    }
    Ok(filter)
}

fn ts(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(|s| Utc.timestamp_opt(s, 0).single())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `state_dir`, taking its lock.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: state_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let lock = File::create(state_dir.join("lock")).map_err(io)?;
        take_lock(&lock, false, state_dir)?;
        let path = state_dir.join("state.sqlite");
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // WAL + NORMAL: a commit survives a process crash (kill -9); at worst a
        // power cut loses the last commits, and re-doing them rewrites the same paths.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // One process owns the store (the lock file says so): holding SQLite's
        // own lock for the whole session saves two fcntl calls per transaction.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(err)?;
        // 8 MB: the B-tree's inner pages and the recent leaves; the rest
        // of a large store is one read from the OS page cache away. A
        // larger cache cost resident memory without making lookups faster
        // (bench/index.sh).
        conn.pragma_update(None, "cache_size", -8_000)
            .map_err(err)?;
        // More distinct statements than rusqlite's default cache of 16:
        // evicted ones were re-parsed on every story.
        conn.set_prepared_statement_cache_capacity(64);
        // One big transaction (a migration) grows the WAL file, which SQLite
        // otherwise keeps at that size; cut it back after the next checkpoint.
        conn.pragma_update(None, "journal_size_limit", 16 << 20)
            .map_err(err)?;
        let version = schema_version(&conn, &path)?;
        migrate(&conn, version).map_err(err)?;
        Ok(SqliteStore::new(conn, path, lock))
    }

    /// `near_best` through the stored signatures of every candidate.
    fn near_best_from_disk(
        &self,
        sig: &Signature,
        since: DateTime<Utc>,
        threshold: f64,
    ) -> Result<Option<(StoryRef, f64)>, StoreError> {
        Ok(super::best_match(
            sig,
            self.near_candidates(sig, since)?,
            threshold,
        ))
    }

    fn new(conn: Connection, path: PathBuf, lock: File) -> Self {
        SqliteStore {
            conn: Mutex::new(conn),
            near: Mutex::new(None),
            filter: Mutex::new(None),
            path,
            _lock: lock,
        }
    }

    fn near(&self) -> std::sync::MutexGuard<'_, Option<Near>> {
        self.near.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the connection (bulk reads: migrations).
    pub(super) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.with(f)
    }

    /// The key filter, built from the table on first use and rebuilt
    /// larger when full. Call under the connection's lock.
    fn filter(&self, c: &Connection) -> rusqlite::Result<MutexGuard<'_, Option<KeyFilter>>> {
        let mut filter = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        if filter.as_ref().is_none_or(KeyFilter::is_full) {
            *filter = Some(build_key_filter(c)?);
        }
        Ok(filter)
    }

    /// Adds keys just committed to the filter, if it is built (else the
    /// build reads them from the table).
    fn filter_insert(&self, keys: impl Iterator<Item = u64>) {
        let mut filter = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = filter.as_mut() {
            keys.for_each(|key| f.insert(key));
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// Takes the state directory's lock without waiting: shared for readers,
/// exclusive for the one process that writes.
fn take_lock(lock: &File, shared: bool, state_dir: &Path) -> Result<(), StoreError> {
    let taken = if shared {
        lock.try_lock_shared()
    } else {
        lock.try_lock()
    };
    match taken {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StoreError::Locked(state_dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
            path: state_dir.display().to_string(),
            source,
        }),
    }
}

/// The database's schema version; an error if a newer gleaner wrote it.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        })?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// Brings a database at `version` (0: new) up to `SCHEMA_VERSION`.
fn migrate(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    if version < 1 {
        conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;"))?;
    }
    for (v, sql) in MIGRATIONS {
        if *v > version {
            conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version = {v}; COMMIT;"))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens an existing store for reading only, without taking its lock
    /// for long: `gleaner status` next to a stopped daemon. Fails with
    /// `StoreError::Locked` while a daemon (or a fetch) holds the store.
    pub fn open_read_only(state_dir: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: state_dir.display().to_string(),
            source,
        };
        let lock = File::open(state_dir.join("lock")).map_err(io)?;
        // Shared: two status calls may run together, a daemon may not start
        // under one (it retries via its service manager).
        take_lock(&lock, true, state_dir)?;
        let path = state_dir.join("state.sqlite");
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        let version = schema_version(&conn, &path)?;
        if version < SCHEMA_VERSION {
            return Err(StoreError::Outdated {
                path: path.display().to_string(),
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(SqliteStore::new(conn, path, lock))
    }
}

fn secs(d: Option<i64>) -> Option<Duration> {
    d.and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
}

fn page_failure_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PageFailure> {
    Ok(PageFailure {
        feed: r.get(0)?,
        url: r.get(1)?,
        attempts: r.get(2)?,
        last_error: r.get(3)?,
        last_at: ts(r.get(4)?).unwrap_or_default(),
        given_up: r.get(5)?,
    })
}

fn feed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedState> {
    Ok(FeedState {
        validators: Validators {
            etag: r.get(0)?,
            last_modified: r.get(1)?,
        },
        last_success: ts(r.get(2)?),
        last_error: r.get(3)?,
        last_error_at: ts(r.get(4)?),
        failures: r.get(5)?,
        items: r.get::<_, i64>(6)?.max(0) as u64,
    })
}

impl StateStore for SqliteStore {
    fn feed_state(&self, feed: &str) -> Result<FeedState, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT etag, last_modified, last_success, last_error, last_error_at, failures, items
                 FROM feeds WHERE name = ?1",
                [feed],
                feed_row,
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
    }

    fn all_feeds(&self) -> Result<Vec<(String, FeedState)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT etag, last_modified, last_success, last_error, last_error_at, failures, items, name
                 FROM feeds ORDER BY name",
            )?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(7)?, feed_row(r)?)))?;
            rows.collect()
        })
    }

    fn feed_ok(
        &self,
        feed: &str,
        v: Option<&Validators>,
        new_items: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO feeds (name, etag, last_modified, last_success, failures, items)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)
                 ON CONFLICT(name) DO UPDATE SET
                   etag = CASE WHEN ?6 THEN excluded.etag ELSE etag END,
                   last_modified = CASE WHEN ?6 THEN excluded.last_modified ELSE last_modified END,
                   last_success = excluded.last_success, failures = 0, items = items + excluded.items",
                params![
                    feed,
                    v.and_then(|v| v.etag.clone()),
                    v.and_then(|v| v.last_modified.clone()),
                    now.timestamp(),
                    new_items as i64,
                    v.is_some()
                ],
            )
            .map(|_| ())
        })
    }

    fn feed_failed(&self, feed: &str, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO feeds (name, last_error, last_error_at, failures) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(name) DO UPDATE SET last_error = excluded.last_error,
                   last_error_at = excluded.last_error_at, failures = failures + 1",
                params![feed, error, now.timestamp()],
            )
            .map(|_| ())
        })
    }

    fn schedules(&self) -> Result<Vec<(String, FeedSchedule)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT name, next_poll, last_poll, interval_secs, hint_secs, rate_items, rate_hours
                 FROM feeds WHERE next_poll IS NOT NULL ORDER BY name",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    FeedSchedule {
                        next_poll: ts(r.get(1)?),
                        last_poll: ts(r.get(2)?),
                        interval: secs(r.get(3)?),
                        hint: secs(r.get(4)?),
                        rate_items: r.get(5)?,
                        rate_hours: r.get(6)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    fn set_schedule(&self, feed: &str, s: &FeedSchedule) -> Result<(), StoreError> {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs().min(i64::MAX as u64) as i64);
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO feeds (name, next_poll, last_poll, interval_secs, hint_secs, rate_items, rate_hours)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(name) DO UPDATE SET next_poll = excluded.next_poll,
                   last_poll = excluded.last_poll, interval_secs = excluded.interval_secs,
                   hint_secs = excluded.hint_secs, rate_items = excluded.rate_items,
                   rate_hours = excluded.rate_hours",
            )?
            .execute(params![
                feed,
                s.next_poll.map(|t| t.timestamp()),
                s.last_poll.map(|t| t.timestamp()),
                secs(s.interval),
                secs(s.hint),
                s.rate_items,
                s.rate_hours
            ])
            .map(|_| ())
        })
    }

    fn story_by_key(&self, key: u64) -> Result<Option<StoryRef>, StoreError> {
        self.with(|c| {
            if !self.filter(c)?.as_ref().is_some_and(|f| f.may_contain(key)) {
                return Ok(None);
            }
            c.prepare_cached(
                "SELECT s.id, s.stem FROM keys k JOIN stories s ON s.id = k.story WHERE k.key = ?1",
            )?
            .query_row([k(key)], |r| {
                Ok(StoryRef {
                    id: r.get(0)?,
                    stem: r.get(1)?,
                })
            })
            .optional()
        })
    }

    fn add_keys(&self, story: i64, keys: &[u64]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st =
                    tx.prepare_cached("INSERT OR IGNORE INTO keys (key, story) VALUES (?1, ?2)")?;
                for key in keys {
                    st.execute(params![k(*key), story])?;
                }
            }
            tx.commit()?;
            self.filter_insert(keys.iter().copied());
            Ok(())
        })
    }

    fn add_story(&self, s: &NewStory<'_>) -> Result<Claim, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            // Cached: parsing the statement again cost a few µs a story.
            tx.prepare_cached("INSERT INTO stories (stem, created) VALUES (?1, ?2)")?
                .execute(params![s.stem, s.created.timestamp()])?;
            let id = tx.last_insert_rowid();
            if let Some(sig) = s.signature {
                tx.prepare_cached("INSERT INTO signatures (story, sig) VALUES (?1, ?2)")?
                    .execute(params![id, sig.to_bytes()])?;
            }
            if let Some(first) = s.keys.first() {
                tx.prepare_cached("INSERT OR REPLACE INTO pending (stem, key) VALUES (?1, ?2)")?
                    .execute(params![s.stem, k(*first)])?;
            }
            {
                let mut st =
                    tx.prepare_cached("INSERT OR IGNORE INTO keys (key, story) VALUES (?1, ?2)")?;
                for key in s.keys.iter().chain(s.aliases) {
                    st.execute(params![k(*key), id])?;
                }
            }
            tx.commit()?;
            self.filter_insert(s.keys.iter().chain(s.aliases).copied());
            if let (Some(sig), Ok(id32)) = (s.signature, u32::try_from(id)) {
                if let Some(near) = self.near().as_mut() {
                    near.insert(id32, sig, s.created.timestamp());
                }
            }
            // The lock file keeps other processes out and the caller looked
            // the story up under its own lock: nobody else can have it.
            Ok(Claim::New(id))
        })
    }

    fn remove_story(&self, story: i64) -> Result<(), StoreError> {
        // Rare (a failed write): a table scan beats an index paid on every story.
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM keys WHERE story = ?1", [story])?;
            tx.execute("DELETE FROM signatures WHERE story = ?1", [story])?;
            // Its id may stay in the near index: a candidate without a row is skipped.
            tx.execute("DELETE FROM stories WHERE id = ?1", [story])?;
            tx.commit()
        })
    }

    fn clear_validators(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("UPDATE feeds SET etag = NULL, last_modified = NULL", [])
                .map(|_| ())
        })
    }

    fn near_candidates(
        &self,
        sig: &Signature,
        since: DateTime<Utc>,
    ) -> Result<Vec<(StoryRef, Signature)>, StoreError> {
        self.with(|c| {
            let mut near = self.near();
            if near.is_none() {
                *near = Some(build_near_index(c)?);
            }
            let ids = near
                .as_ref()
                .map(|n| n.index.candidates(sig))
                .unwrap_or_default();
            drop(near);
            let mut st = c.prepare_cached(
                "SELECT s.stem, s.created, g.sig FROM stories s JOIN signatures g ON g.story = s.id
                 WHERE s.id = ?1",
            )?;
            let mut out: Vec<(StoryRef, Signature)> = Vec::new();
            for id in ids {
                let row = st
                    .query_row([id], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                        ))
                    })
                    .optional()?;
                let Some((stem, created, bytes)) = row else {
                    continue;
                };
                if created < since.timestamp() {
                    continue;
                }
                if let Some(sig) = Signature::from_bytes(&bytes) {
                    out.push((
                        StoryRef {
                            id: i64::from(id),
                            stem,
                        },
                        sig,
                    ));
                }
            }
            Ok(out)
        })
    }

    fn near_best(
        &self,
        sig: &Signature,
        since: DateTime<Utc>,
        threshold: f64,
    ) -> Result<Option<(StoryRef, f64)>, StoreError> {
        let scored = self.with(|c| {
            let mut near = self.near();
            if near.is_none() {
                *near = Some(build_near_index(c)?);
            }
            let Some(n) = near.as_ref() else {
                return Ok(None);
            };
            let mut scored: Vec<(f64, u32)> = Vec::new();
            for id in n.index.candidates(sig) {
                match n.get(id) {
                    Some((other, created)) => {
                        if *created >= since.timestamp() {
                            scored.extend(sig.same_story(other, threshold).map(|sim| (sim, id)));
                        }
                    }
                    // Not held in memory: compare through the stored rows.
                    None => return Ok(None),
                }
            }
            Ok(Some(scored))
        })?;
        let Some(mut scored) = scored else {
            return self.near_best_from_disk(sig, since, threshold);
        };
        // Most similar first, ties to the older story.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT stem FROM stories WHERE id = ?1")?;
            for (sim, id) in scored {
                // A story removed after a failed write may linger in memory.
                if let Some(stem) = st.query_row([id], |r| r.get(0)).optional()? {
                    let story = StoryRef {
                        id: i64::from(id),
                        stem,
                    };
                    return Ok(Some((story, sim)));
                }
            }
            Ok(None)
        })
    }

    fn prune(&self, near_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Pruned, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            // Stories are created in id order (a clock step back only keeps a
            // signature a little longer), so the window starts at the first
            // id created inside it: a scan from the oldest signature that
            // stops there.
            let start: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM stories
                     WHERE id >= (SELECT coalesce(min(story), 0) FROM signatures) AND created >= ?1
                     ORDER BY id LIMIT 1",
                )?
                .query_row([near_before.timestamp()], |r| r.get(0))
                .optional()?;
            let start = start.unwrap_or(i64::MAX);
            let signatures = tx
                .prepare_cached("DELETE FROM signatures WHERE story < ?1")?
                .execute([start])?;
            // Blocks: a scan of the table, so once a day.
            let pruned_at: i64 = tx
                .prepare_cached("SELECT value FROM meta WHERE name = 'blocks_pruned_at'")?
                .query_row([], |r| r.get(0))
                .optional()?
                .unwrap_or_default();
            let mut blocks = 0;
            if pruned_at <= (now - chrono::Duration::days(1)).timestamp() {
                blocks = tx
                    .prepare_cached("DELETE FROM blocks WHERE stories <= 1 AND last_seen < ?1")?
                    .execute([(now - chrono::Duration::days(BLOCK_TTL_DAYS)).timestamp()])?;
                tx.prepare_cached(
                    "INSERT INTO meta (name, value) VALUES ('blocks_pruned_at', ?1)
                     ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                )?
                .execute([now.timestamp()])?;
            }
            tx.commit()?;
            if signatures > 0 {
                if let Some(near) = self.near().as_mut() {
                    near.retain_from(u32::try_from(start).unwrap_or(u32::MAX));
                }
            }
            Ok(Pruned { signatures, blocks })
        })
    }

    fn block_counts(&self, host: u64, blocks: &[u64]) -> Result<(u32, Vec<u32>), StoreError> {
        self.with(|c| {
            let stories = c
                .prepare_cached("SELECT stories FROM sites WHERE host = ?1")?
                .query_row([k(host)], |r| r.get::<_, u32>(0))
                .optional()?
                .unwrap_or_default();
            if stories == 0 {
                return Ok((0, vec![0; blocks.len()]));
            }
            let mut st =
                c.prepare_cached("SELECT stories FROM blocks WHERE host = ?1 AND block = ?2")?;
            let counts = blocks
                .iter()
                .map(|b| {
                    st.query_row(params![k(host), k(*b)], |r| r.get::<_, u32>(0))
                        .optional()
                        .map(Option::unwrap_or_default)
                })
                .collect::<rusqlite::Result<Vec<u32>>>()?;
            Ok((stories, counts))
        })
    }

    fn finish_story(
        &self,
        stem: &str,
        sites: &[u64],
        blocks: &[u64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached("DELETE FROM pending WHERE stem = ?1")?.execute([stem])?;
            for site in sites {
                tx.prepare_cached(
                    "INSERT INTO sites (host, stories) VALUES (?1, 1)
                     ON CONFLICT(host) DO UPDATE SET stories = stories + 1",
                )?
                .execute([k(*site)])?;
                let mut st = tx.prepare_cached(
                    "INSERT INTO blocks (host, block, stories, last_seen) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT(host, block) DO UPDATE SET stories = stories + 1, last_seen = excluded.last_seen",
                )?;
                for b in blocks {
                    st.execute(params![k(*site), k(*b), now.timestamp()])?;
                }
            }
            tx.commit()
        })
    }

    fn end_write(&self, stem: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM pending WHERE stem = ?1")?
                .execute([stem])
                .map(|_| ())
        })
    }

    fn pending_writes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT stem, key FROM pending ORDER BY stem")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect()
        })
    }

    fn feed_moved(&self, feed: &str) -> Result<Option<FeedMove>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT moved_from, moved_to FROM feeds
                 WHERE name = ?1 AND moved_from IS NOT NULL AND moved_to IS NOT NULL",
            )?
            .query_row([feed], |r| {
                Ok(FeedMove {
                    from: r.get(0)?,
                    to: r.get(1)?,
                })
            })
            .optional()
        })
    }

    fn set_feed_moved(&self, feed: &str, moved: Option<&FeedMove>) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO feeds (name, moved_from, moved_to) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET moved_from = excluded.moved_from,
                   moved_to = excluded.moved_to",
            )?
            .execute(params![
                feed,
                moved.map(|m| m.from.as_str()),
                moved.map(|m| m.to.as_str())
            ])
            .map(|_| ())
        })
    }

    fn page_failure(&self, key: u64) -> Result<Option<PageFailure>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT feed, url, attempts, last_error, last_at, given_up
                 FROM page_failures WHERE key = ?1",
            )?
            .query_row([k(key)], page_failure_row)
            .optional()
        })
    }

    fn page_failed(&self, a: &PageAttempt<'_>) -> Result<PageCount, StoreError> {
        // One connection behind a mutex: the look and the count are one step.
        self.with(|c| {
            let tx = c.transaction()?;
            let current = tx
                .prepare_cached("SELECT attempts, given_up FROM page_failures WHERE key = ?1")?
                .query_row([k(a.key)], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, bool>(1)?)))
                .optional()?;
            let count = count_page_failure(current, a);
            if count.counted {
                tx.prepare_cached(
                    "INSERT INTO page_failures (key, feed, url, attempts, last_error, last_at, given_up)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(key) DO UPDATE SET attempts = excluded.attempts,
                       feed = excluded.feed, url = excluded.url,
                       last_error = excluded.last_error, last_at = excluded.last_at,
                       given_up = excluded.given_up",
                )?
                .execute(params![
                    k(a.key),
                    a.feed,
                    a.url,
                    count.attempts,
                    a.error,
                    a.now.timestamp(),
                    count.given_up
                ])?;
            }
            tx.commit()?;
            Ok(count)
        })
    }

    fn page_ok(&self, key: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM page_failures WHERE key = ?1")?
                .execute([k(key)])
                .map(|_| ())
        })
    }

    fn given_up_pages(&self) -> Result<Vec<PageFailure>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT feed, url, attempts, last_error, last_at, given_up
                 FROM page_failures WHERE given_up = 1 ORDER BY feed, last_at",
            )?;
            let rows = st.query_map([], page_failure_row)?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::SIGNATURE_BYTES;

    #[test]
    fn feeds_keys_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(matches!(
            SqliteStore::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
        let v = Validators {
            etag: Some("\"e1\"".into()),
            last_modified: None,
        };
        let now = Utc::now();
        s.feed_ok("a", Some(&v), 3, now).unwrap();
        s.feed_ok("a", None, 0, now).unwrap();
        assert_eq!(s.feed_state("a").unwrap().validators, v);
        s.feed_failed("a", "boom", now).unwrap();
        s.feed_failed("a", "boom", now).unwrap();
        let st = s.feed_state("a").unwrap();
        assert_eq!(
            (st.failures, st.items, st.last_error.as_deref()),
            (2, 3, Some("boom"))
        );

        let id = s
            .add_story(&NewStory {
                stem: "a/x-1",
                feed: "a",
                created: now,
                keys: &[1, u64::MAX],
                aliases: &[],
                signature: None,
                near: None,
            })
            .unwrap()
            .id();
        assert_eq!(s.story_by_key(u64::MAX).unwrap().unwrap().id, id);
        assert_eq!(s.story_by_key(2).unwrap(), None);
        s.add_keys(id, &[2]).unwrap();
        assert_eq!(s.story_by_key(2).unwrap().unwrap().stem, "a/x-1");

        assert_eq!(s.pending_writes().unwrap(), vec![("a/x-1".to_string(), 1)]);
        s.finish_story("a/x-1", &[], &[], now).unwrap();
        assert!(s.pending_writes().unwrap().is_empty());
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.feed_state("a").unwrap().items, 3);
    }

    #[test]
    fn schedule_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        s.feed_failed("a", "boom", now).unwrap();
        assert!(s.schedules().unwrap().is_empty(), "never scheduled");
        let sched = FeedSchedule {
            next_poll: Some(now + chrono::Duration::seconds(90)),
            last_poll: Some(now),
            interval: Some(Duration::from_secs(1800)),
            hint: None,
            rate_items: 2.5,
            rate_hours: 10.0,
        };
        s.set_schedule("a", &sched).unwrap();
        s.set_schedule("b", &sched).unwrap();
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        let all = s.schedules().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], ("a".to_string(), sched));
        assert_eq!(s.feed_state("a").unwrap().failures, 1, "feed row kept");
        drop(s);
        let ro = SqliteStore::open_read_only(dir.path()).unwrap();
        assert_eq!(ro.schedules().unwrap().len(), 2);
        assert_eq!(ro.all_feeds().unwrap().len(), 2);
        assert!(matches!(
            SqliteStore::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
        drop(ro);
        let w = SqliteStore::open(dir.path()).unwrap();
        assert!(matches!(
            SqliteStore::open_read_only(dir.path()),
            Err(StoreError::Locked(_))
        ));
        drop(w);
    }

    #[test]
    fn migrates_a_version_1_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("state.sqlite")).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute(
                "INSERT INTO feeds (name, etag, failures, items) VALUES ('old', '\"e\"', 2, 7)",
                [],
            )
            .unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let st = s.feed_state("old").unwrap();
        assert_eq!((st.failures, st.items), (2, 7));
        assert_eq!(st.validators.etag.as_deref(), Some("\"e\""));
        s.set_schedule("old", &FeedSchedule::default()).unwrap();
        drop(s);
        let c = Connection::open(dir.path().join("state.sqlite")).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn near_window_holds_signatures_by_id_across_chunks() {
        let sig = |n: u64| {
            let words: Vec<String> = (0..60).map(|i| format!("w{}", i * 31 + n * 7)).collect();
            Signature::of(&words.join(" ")).unwrap()
        };
        let mut near = Near::default();
        let start = 3 * SIG_CHUNK as u32 - 5;
        let ids: Vec<u32> = (start..start + 2 * SIG_CHUNK as u32).step_by(3).collect();
        for id in &ids {
            near.insert(*id, &sig(u64::from(*id)), i64::from(*id));
        }
        for id in &ids {
            let (s, created) = near.get(*id).unwrap();
            assert_eq!((s, *created), (&sig(u64::from(*id)), i64::from(*id)));
            assert!(near.get(id + 1).is_none());
        }
        assert!(near.get(start - 1).is_none());

        // Pruned mid-chunk: what is below goes, whole chunks first.
        let cut = start + SIG_CHUNK as u32 + 7;
        near.retain_from(cut);
        assert!(near.chunks.len() <= 2, "{}", near.chunks.len());
        for id in &ids {
            assert_eq!(near.get(*id).is_some(), *id >= cut, "{id}");
            assert_eq!(
                near.index.candidates(&sig(u64::from(*id))).contains(id),
                *id >= cut
            );
        }
        near.retain_from(u32::MAX);
        assert!(near.chunks.is_empty() && near.index.is_empty());
        near.insert(9, &sig(9), 9);
        assert!(near.get(9).is_some());
    }

    #[test]
    fn near_best_compares_in_memory_and_agrees_with_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let text = |seed: usize| -> String {
            (0..200)
                .map(|i| format!("w{} ", (i * 31 + seed * 7919) % 5003))
                .collect()
        };
        let now = Utc::now();
        let add = |s: &SqliteStore, stem: &str, key: u64, t: &str, age: i64| {
            s.add_story(&NewStory {
                stem,
                feed: "a",
                created: now - chrono::Duration::days(age),
                keys: &[key],
                aliases: &[],
                signature: Some(&Signature::of(t).unwrap()),
                near: None,
            })
            .unwrap()
            .id()
        };
        let s = SqliteStore::open(dir.path()).unwrap();
        let copy = Signature::of(&format!("LIMA (AFP) {}", text(1))).unwrap();
        let week = now - chrono::Duration::days(7);
        // Built from the rows on first use, then kept up by add_story.
        assert!(s.near_best(&copy, week, 0.5).unwrap().is_none());
        let old = add(&s, "a/old", 1, &text(1), 30);
        let other = add(&s, "a/other", 2, &text(2), 1);
        let recent = add(&s, "a/recent", 3, &text(1), 2);
        let (best, sim) = s.near_best(&copy, week, 0.5).unwrap().unwrap();
        assert_eq!((best.id, best.stem.as_str()), (recent, "a/recent"));
        assert!(sim > 0.8, "{sim}");
        // The month-old identical text is out of a week's window, not of 60 days'.
        let (best, _) = s
            .near_best(&copy, now - chrono::Duration::days(60), 0.5)
            .unwrap()
            .unwrap();
        assert_eq!(best.id, old, "ties go to the older story");
        assert_eq!(
            s.near_best_from_disk(&copy, week, 0.5)
                .unwrap()
                .unwrap()
                .0
                .id,
            recent
        );
        // A story removed after a failed write is no match, even in memory.
        s.remove_story(recent).unwrap();
        assert!(s.near_best(&copy, week, 0.5).unwrap().is_none());
        assert!(s
            .near_best(&Signature::of(&text(2)).unwrap(), week, 0.5)
            .unwrap()
            .is_some_and(|(b, _)| b.id == other));
        // Reopened: rebuilt from the rows, the same answers.
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(s.near_best(&copy, week, 0.5).unwrap().is_none());
        assert_eq!(
            s.near_best(&copy, now - chrono::Duration::days(60), 0.5)
                .unwrap()
                .unwrap()
                .0
                .id,
            old
        );
    }

    #[test]
    fn near_candidates_respect_window() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let text: String = (0..200)
            .map(|i| format!("word{} ", i % 97 * 7 + i))
            .collect();
        let sig = Signature::of(&text).unwrap();
        let old = Utc::now() - chrono::Duration::days(30);
        s.add_story(&NewStory {
            stem: "a/x",
            feed: "a",
            created: old,
            keys: &[5],
            aliases: &[],
            signature: Some(&sig),
            near: None,
        })
        .unwrap();
        assert_eq!(s.near_candidates(&sig, old).unwrap().len(), 1);
        assert!(s
            .near_candidates(&sig, Utc::now() - chrono::Duration::days(7))
            .unwrap()
            .is_empty());
        s.finish_story("a/x", &[7], &[1, 2], Utc::now()).unwrap();
        s.finish_story("a/y", &[7], &[1], Utc::now()).unwrap();
        assert_eq!(s.block_counts(7, &[1, 2, 3]).unwrap(), (2, vec![2, 1, 0]));
        assert_eq!(s.block_counts(8, &[1]).unwrap(), (0, vec![0]));
    }

    #[test]
    fn feed_moves_and_page_failures() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(s.feed_moved("a").unwrap(), None);
        s.feed_ok("a", None, 2, now).unwrap();
        let m = FeedMove {
            from: "http://old/".into(),
            to: "http://new/".into(),
        };
        s.set_feed_moved("a", Some(&m)).unwrap();
        s.set_feed_moved("b", Some(&m)).unwrap();
        assert_eq!(s.feed_moved("a").unwrap(), Some(m.clone()));
        assert_eq!(s.feed_state("a").unwrap().items, 2, "feed row kept");
        s.set_feed_moved("a", None).unwrap();
        assert_eq!(s.feed_moved("a").unwrap(), None);
        assert_eq!(s.feed_moved("b").unwrap(), Some(m));

        assert_eq!(s.page_failure(9).unwrap(), None);
        let fail = |key, url, error, seen| PageAttempt {
            key,
            feed: "a",
            url,
            error,
            now,
            seen,
            max_attempts: 3,
            permanent: false,
        };
        assert_eq!(
            s.page_failed(&fail(9, "http://p/", "500", None)).unwrap(),
            PageCount {
                attempts: 1,
                counted: true,
                given_up: false,
                gave_up: false
            }
        );
        // Another feed that looked before that failure was counted: the same try.
        let same = s.page_failed(&fail(9, "http://p/", "500", None)).unwrap();
        assert_eq!((same.attempts, same.counted), (1, false));
        let second = s
            .page_failed(&fail(9, "http://p/", "timeout", Some(1)))
            .unwrap();
        assert_eq!((second.attempts, second.counted), (2, true));
        let pf = s.page_failure(9).unwrap().unwrap();
        assert_eq!(
            (pf.attempts, pf.given_up, pf.last_error.as_str()),
            (2, false, "timeout")
        );
        assert_eq!(pf.last_at, now);
        let third = s
            .page_failed(&fail(9, "http://p/", "500", Some(2)))
            .unwrap();
        assert_eq!(
            (third.attempts, third.given_up, third.gave_up),
            (3, true, true)
        );
        let after = s
            .page_failed(&fail(9, "http://p/", "500", Some(3)))
            .unwrap();
        assert_eq!(
            (after.attempts, after.counted, after.given_up, after.gave_up),
            (3, false, true, false),
            "given up once, never counted past it"
        );
        s.page_failed(&fail(10, "http://q/", "404", None)).unwrap();
        let gone = s.given_up_pages().unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].url.as_str(), gone[0].given_up),
            ("http://p/", true)
        );
        s.page_ok(10).unwrap();
        assert_eq!(s.page_failure(10).unwrap(), None);
    }

    #[test]
    fn migrates_a_version_2_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("state.sqlite")).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute_batch(MIGRATIONS[0].1).unwrap();
            c.execute(
                "INSERT INTO feeds (name, items, next_poll) VALUES ('old', 4, 99)",
                [],
            )
            .unwrap();
            c.pragma_update(None, "user_version", 2).unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.feed_state("old").unwrap().items, 4);
        assert_eq!(s.feed_moved("old").unwrap(), None);
        let a = PageAttempt {
            key: 1,
            feed: "old",
            url: "http://p/",
            error: "x",
            now: Utc::now(),
            seen: None,
            max_attempts: 5,
            permanent: false,
        };
        assert_eq!(s.page_failed(&a).unwrap().attempts, 1);
    }

    /// Version 5 kept pending writes in a rowid table; they survive the
    /// move to a keyed one.
    #[test]
    fn migrates_a_version_5_store_with_a_pending_write() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("state.sqlite")).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            for (_, sql) in &MIGRATIONS[..4] {
                c.execute_batch(sql).unwrap();
            }
            c.execute(
                "INSERT INTO pending (stem, key) VALUES ('f/2026/x-1', 42)",
                [],
            )
            .unwrap();
            c.pragma_update(None, "user_version", 5).unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(
            s.pending_writes().unwrap(),
            vec![("f/2026/x-1".to_string(), 42)]
        );
        s.finish_story("f/2026/x-1", &[], &[], Utc::now()).unwrap();
        assert!(s.pending_writes().unwrap().is_empty());
    }

    /// The key filter in front of `story_by_key` never hides a key, across
    /// the rebuilds that grow it and a reopen that builds it from the table.
    #[test]
    fn key_filter_never_hides_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = |i: u64| crate::dedupe::hash64(&[b"t", &i.to_le_bytes()]);
        let s = SqliteStore::open(dir.path()).unwrap();
        let id = s
            .add_story(&NewStory {
                stem: "a/one",
                feed: "a",
                created: Utc::now(),
                keys: &[key(0)],
                aliases: &[],
                signature: None,
                near: None,
            })
            .unwrap()
            .id();
        // Built here, small; the batches below outgrow it several times.
        assert!(s.story_by_key(key(1)).unwrap().is_none());
        for batch in 0..10u64 {
            let keys: Vec<u64> = (1 + batch * 5_000..1 + (batch + 1) * 5_000)
                .map(key)
                .collect();
            s.add_keys(id, &keys).unwrap();
            assert!(s.story_by_key(keys[0]).unwrap().is_some());
        }
        let check = |s: &SqliteStore| {
            for i in (0..50_001).step_by(97) {
                assert_eq!(
                    s.story_by_key(key(i)).unwrap().map(|r| r.id),
                    Some(id),
                    "key {i}"
                );
            }
            let absent = (50_001..60_000).filter(|i| s.story_by_key(key(*i)).unwrap().is_some());
            assert_eq!(absent.count(), 0);
        };
        check(&s);
        drop(s);
        check(&SqliteStore::open(dir.path()).unwrap());
    }

    /// A store indexed by an older gleaner (band table, 256-byte signature)
    /// migrates: band table and old signature go (they do not compare with
    /// today's), the story and its keys stay, new stories are near-matched.
    #[test]
    fn migrates_a_version_3_band_index() {
        let dir = tempfile::tempdir().unwrap();
        let text = |n: usize| -> String {
            (0..200)
                .map(|i| format!("s{n}w{} ", (i * 7919) % 1000))
                .collect()
        };
        let (old, new) = (
            Signature::of(&text(1)).unwrap(),
            Signature::of(&text(2)).unwrap(),
        );
        let t = Utc::now() - chrono::Duration::days(1);
        {
            let c = Connection::open(dir.path().join("state.sqlite")).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            for (_, sql) in &MIGRATIONS[..2] {
                c.execute_batch(sql).unwrap();
            }
            let legacy = [0x5au8; 256];
            c.execute(
                "INSERT INTO stories (id, stem, created, sig) VALUES (7, 'a/old', ?1, ?2)",
                params![t.timestamp(), legacy],
            )
            .unwrap();
            c.execute(
                "INSERT INTO bands (band, story) VALUES (123456789012, 7)",
                [],
            )
            .unwrap();
            c.execute("INSERT INTO keys (key, story) VALUES (3, 7)", [])
                .unwrap();
            c.pragma_update(None, "user_version", 3).unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(s.near_candidates(&old, t).unwrap().is_empty());
        assert_eq!(s.story_by_key(3).unwrap().unwrap().stem, "a/old");
        let id = s
            .add_story(&NewStory {
                stem: "a/new",
                feed: "a",
                created: t,
                keys: &[9],
                aliases: &[],
                signature: Some(&new),
                near: None,
            })
            .unwrap()
            .id();
        let found = s.near_candidates(&new, t).unwrap();
        assert_eq!((found.len(), found[0].0.id), (1, id));
        assert_eq!(found[0].1, new);
        drop(s);
        let c = Connection::open(dir.path().join("state.sqlite")).unwrap();
        let (bands, sig): (i64, i64) = c
            .query_row(
                "SELECT (SELECT COUNT(*) FROM sqlite_schema WHERE name = 'bands'),
                        (SELECT length(sig) FROM signatures WHERE story = ?1)",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((bands, sig), (0, SIGNATURE_BYTES as i64));
    }

    /// Pruning drops the signatures of stories out of the window (they are
    /// no longer candidates, even after a reopen), keeps the rest, and
    /// forgets blocks seen once long ago, once a day.
    #[test]
    fn prune_drops_signatures_out_of_the_window_and_stale_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let text = |n: usize| -> String {
            (0..200)
                .map(|i| format!("s{n}w{} ", (i * 7919) % 1000))
                .collect()
        };
        let sigs: Vec<Signature> = (0..4).map(|n| Signature::of(&text(n)).unwrap()).collect();
        let ages = [30, 20, 3, 1];
        for (n, (sig, age)) in sigs.iter().zip(ages).enumerate() {
            let stem = format!("a/{n}");
            s.add_story(&NewStory {
                stem: &stem,
                feed: "a",
                created: now - chrono::Duration::days(age),
                keys: &[n as u64 + 1],
                aliases: &[],
                signature: Some(sig),
                near: None,
            })
            .unwrap();
        }
        // The index is built before the prune, and must forget too.
        let long_ago = now - chrono::Duration::days(365);
        assert_eq!(s.near_candidates(&sigs[0], long_ago).unwrap().len(), 1);
        s.finish_story("a/0", &[7], &[1, 2], now - chrono::Duration::days(90))
            .unwrap();
        s.finish_story("a/1", &[7], &[2], now - chrono::Duration::days(80))
            .unwrap();
        s.finish_story("a/2", &[7], &[3], now - chrono::Duration::days(3))
            .unwrap();

        let week = now - chrono::Duration::days(7);
        let p = s.prune(week, now).unwrap();
        assert_eq!(
            p,
            Pruned {
                signatures: 2,
                blocks: 1
            },
            "block 1: seen once, 90 days ago"
        );
        assert!(s.near_candidates(&sigs[0], long_ago).unwrap().is_empty());
        assert!(s.near_candidates(&sigs[1], long_ago).unwrap().is_empty());
        assert_eq!(s.near_candidates(&sigs[2], long_ago).unwrap().len(), 1);
        assert_eq!(s.block_counts(7, &[1, 2, 3]).unwrap(), (3, vec![0, 2, 1]));
        // Again: nothing left to drop, and blocks wait a day.
        assert_eq!(s.prune(week, now).unwrap(), Pruned::default());
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(s.near_candidates(&sigs[1], long_ago).unwrap().is_empty());
        assert_eq!(s.near_candidates(&sigs[3], long_ago).unwrap().len(), 1);
        assert_eq!(
            s.story_by_key(1).unwrap().unwrap().stem,
            "a/0",
            "the story stays"
        );
    }
}

/// The store against an in-memory model: random sequences of operations
/// (with reopens, as after a restart) must agree with plain maps.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    #[derive(Debug, Clone)]
    enum Op {
        AddStory {
            stem: u8,
            keys: Vec<u8>,
        },
        StoryByKey(u8),
        /// `story` picks one of the stories alive (the pipeline only adds
        /// keys to a story it just found).
        AddKeys {
            story: usize,
            keys: Vec<u8>,
        },
        RemoveStory(usize),
        FeedOk {
            feed: u8,
            validators: Option<(Option<u8>, Option<u8>)>,
            new_items: u16,
            at: u32,
        },
        FeedFailed {
            feed: u8,
            error: u8,
            at: u32,
        },
        FeedState(u8),
        FinishStory {
            stem: u8,
            sites: Vec<u8>,
            blocks: Vec<u8>,
        },
        EndWrite(u8),
        BlockCounts {
            site: u8,
            blocks: Vec<u8>,
        },
        PendingWrites,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        let small = || prop::collection::vec(0u8..12, 0..4);
        prop_oneof![
            4 => (0u8..8, small()).prop_map(|(stem, keys)| Op::AddStory { stem, keys }),
            3 => (0u8..12).prop_map(Op::StoryByKey),
            2 => (any::<usize>(), small()).prop_map(|(story, keys)| Op::AddKeys { story, keys }),
            1 => any::<usize>().prop_map(Op::RemoveStory),
            2 => (0u8..3, proptest::option::of((proptest::option::of(0u8..3), proptest::option::of(0u8..3))), 0u16..50, any::<u32>())
                .prop_map(|(feed, validators, new_items, at)| Op::FeedOk { feed, validators, new_items, at }),
            2 => (0u8..3, 0u8..3, any::<u32>()).prop_map(|(feed, error, at)| Op::FeedFailed { feed, error, at }),
            1 => (0u8..3).prop_map(Op::FeedState),
            2 => (0u8..8, prop::collection::vec(0u8..3, 0..3), small())
                .prop_map(|(stem, sites, blocks)| Op::FinishStory { stem, sites, blocks }),
            1 => (0u8..8).prop_map(Op::EndWrite),
            1 => (0u8..3, small()).prop_map(|(site, blocks)| Op::BlockCounts { site, blocks }),
            1 => Just(Op::PendingWrites),
            1 => Just(Op::Reopen),
        ]
    }

    /// Spread over the u64 range: SQL stores keys as signed integers.
    fn key(k: u8) -> u64 {
        match k {
            0 => 0,
            1 => u64::MAX,
            2 => 1 << 63,
            k => u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn stem(s: u8) -> String {
        format!("feed/2026/11/0{}/story-{s}-00000000000{s}", s % 3 + 1)
    }

    fn time(at: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + i64::from(at), 0).unwrap()
    }

    #[derive(Default)]
    struct Model {
        stories: BTreeMap<i64, String>,
        keys: HashMap<u64, i64>,
        pending: BTreeMap<String, u64>,
        feeds: BTreeMap<String, FeedState>,
        sites: HashMap<u64, u32>,
        blocks: HashMap<(u64, u64), u32>,
    }

    impl Model {
        fn story_by_key(&self, k: u64) -> Option<StoryRef> {
            self.keys.get(&k).map(|id| StoryRef {
                id: *id,
                stem: self.stories[id].clone(),
            })
        }

        fn nth_story(&self, n: usize) -> Option<i64> {
            (!self.stories.is_empty())
                .then(|| *self.stories.keys().nth(n % self.stories.len()).unwrap())
        }
    }

    fn run(ops: &[Op]) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::AddStory { stem: st, keys } => {
                    let keys: Vec<u64> = keys.iter().map(|k| key(*k)).collect();
                    let stem = stem(*st);
                    let id = s
                        .add_story(&NewStory {
                            stem: &stem,
                            feed: "feed",
                            created: time(0),
                            keys: &keys,
                            aliases: &[],
                            signature: None,
                            near: None,
                        })
                        .unwrap()
                        .id();
                    prop_assert!(!m.stories.contains_key(&id), "id {id} reused while alive");
                    m.stories.insert(id, stem.clone());
                    if let Some(first) = keys.first() {
                        m.pending.insert(stem, *first);
                    }
                    for k in keys {
                        m.keys.entry(k).or_insert(id);
                    }
                }
                Op::StoryByKey(k) => {
                    prop_assert_eq!(s.story_by_key(key(*k)).unwrap(), m.story_by_key(key(*k)));
                }
                Op::AddKeys { story, keys } => {
                    if let Some(id) = m.nth_story(*story) {
                        let keys: Vec<u64> = keys.iter().map(|k| key(*k)).collect();
                        s.add_keys(id, &keys).unwrap();
                        for k in keys {
                            m.keys.entry(k).or_insert(id);
                        }
                    }
                }
                Op::RemoveStory(story) => {
                    if let Some(id) = m.nth_story(*story) {
                        s.remove_story(id).unwrap();
                        m.stories.remove(&id);
                        m.keys.retain(|_, v| *v != id);
                    }
                }
                Op::FeedOk {
                    feed,
                    validators,
                    new_items,
                    at,
                } => {
                    let name = format!("f{feed}");
                    let v = validators.map(|(e, l)| Validators {
                        etag: e.map(|e| format!("\"e{e}\"")),
                        last_modified: l.map(|l| format!("Tue, 0{l} Nov 2026 10:00:00 GMT")),
                    });
                    s.feed_ok(&name, v.as_ref(), u64::from(*new_items), time(*at))
                        .unwrap();
                    let f = m.feeds.entry(name).or_default();
                    if let Some(v) = v {
                        f.validators = v;
                    }
                    f.last_success = Some(time(*at));
                    f.failures = 0;
                    f.items += u64::from(*new_items);
                }
                Op::FeedFailed { feed, error, at } => {
                    let name = format!("f{feed}");
                    let e = format!("error {error}");
                    s.feed_failed(&name, &e, time(*at)).unwrap();
                    let f = m.feeds.entry(name).or_default();
                    f.last_error = Some(e);
                    f.last_error_at = Some(time(*at));
                    f.failures += 1;
                }
                Op::FeedState(feed) => {
                    let name = format!("f{feed}");
                    prop_assert_eq!(
                        s.feed_state(&name).unwrap(),
                        m.feeds.get(&name).cloned().unwrap_or_default()
                    );
                }
                Op::FinishStory {
                    stem: st,
                    sites,
                    blocks,
                } => {
                    let sites: Vec<u64> = sites.iter().map(|k| key(*k)).collect();
                    let blocks: Vec<u64> = blocks.iter().map(|k| key(*k)).collect();
                    s.finish_story(&stem(*st), &sites, &blocks, time(0))
                        .unwrap();
                    m.pending.remove(&stem(*st));
                    for site in &sites {
                        *m.sites.entry(*site).or_default() += 1;
                        for b in &blocks {
                            *m.blocks.entry((*site, *b)).or_default() += 1;
                        }
                    }
                }
                Op::EndWrite(st) => {
                    s.end_write(&stem(*st)).unwrap();
                    m.pending.remove(&stem(*st));
                }
                Op::BlockCounts { site, blocks } => {
                    let site = key(*site);
                    let blocks: Vec<u64> = blocks.iter().map(|k| key(*k)).collect();
                    let stories = m.sites.get(&site).copied().unwrap_or(0);
                    let counts = blocks
                        .iter()
                        .map(|b| {
                            if stories == 0 {
                                0
                            } else {
                                m.blocks.get(&(site, *b)).copied().unwrap_or(0)
                            }
                        })
                        .collect::<Vec<u32>>();
                    prop_assert_eq!(s.block_counts(site, &blocks).unwrap(), (stories, counts));
                }
                Op::PendingWrites => {
                    let want: Vec<(String, u64)> =
                        m.pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    prop_assert_eq!(s.pending_writes().unwrap(), want);
                }
                Op::Reopen => {
                    drop(s);
                    s = SqliteStore::open(dir.path()).unwrap();
                }
            }
        }
        // Everything at the end, after one more reopen.
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        for k in 0..12 {
            prop_assert_eq!(s.story_by_key(key(k)).unwrap(), m.story_by_key(key(k)));
        }
        let want: Vec<(String, u64)> = m.pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
        prop_assert_eq!(s.pending_writes().unwrap(), want);
        let feeds: Vec<(String, FeedState)> = m
            .feeds
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(s.all_feeds().unwrap(), feeds);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn store_agrees_with_a_model(ops in prop::collection::vec(op(), 1..60)) {
            run(&ops)?;
        }
    }
}
