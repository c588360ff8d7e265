//! The PostgreSQL backend: one database shared by several gleaner
//! instances (`[state] backend = "postgres"`).
//!
//! What sharing needs beyond the embedded store:
//! - feed leases (`lease_feed`): a conditional `UPDATE` over a
//!   `SELECT ... FOR UPDATE SKIP LOCKED`, so one instance polls a feed at a
//!   time and a dead instance's feeds come free when its lease runs out;
//! - exactly-once stories (`add_story`): keys are primary keys, and each
//!   new story is re-checked (keys, then near-duplicate text) inside one
//!   transaction under a database-wide advisory lock, so of two instances
//!   racing for a story one records it and the other sees a copy;
//! - `duplicates` list updates of one story serialised by an advisory lock;
//! - request spacing per host (`host_slots`) reserved in the database.
//!
//! The near-duplicate index stays in memory, as in the embedded store:
//! each instance loads the signatures other instances added (by id, which
//! the insert lock keeps in commit order) before it looks.
//!
//! The `postgres` client is blocking and may not run on a tokio worker, so
//! each connection lives on its own thread; a call sends its work there and
//! waits, as a call into SQLite would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use postgres::types::ToSql;
use postgres::{Client, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    best_match, count_page_failure, Claim, FeedMove, FeedState, Lease, NewStory, PageAttempt,
    PageCount, PageFailure, Pruned, StateStore, StoreError, StoryRef,
};
use crate::config::StateConfig;
use crate::dedupe::{NearIndex, Signature};
use crate::fetch::{SharedHosts, Validators};
use crate::schedule::FeedSchedule;

/// Schema versions: `MIGRATIONS[i]` brings the database to version i + 1.
/// Append only: a database written by an older gleaner upgrades in place.
const MIGRATIONS: &[&str] = &["
CREATE TABLE feeds (
    name TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    last_success BIGINT,
    last_error TEXT,
    last_error_at BIGINT,
    failures INT NOT NULL DEFAULT 0,
    items BIGINT NOT NULL DEFAULT 0,
    next_poll BIGINT,
    last_poll BIGINT,
    interval_secs BIGINT,
    hint_secs BIGINT,
    rate_items DOUBLE PRECISION NOT NULL DEFAULT 0,
    rate_hours DOUBLE PRECISION NOT NULL DEFAULT 0,
    moved_from TEXT,
    moved_to TEXT,
    lease_holder TEXT,
    lease_until BIGINT,
    polled_at BIGINT
);
CREATE TABLE stories (
    id BIGSERIAL PRIMARY KEY,
    stem TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE keys (
    key BIGINT PRIMARY KEY,
    story BIGINT NOT NULL
);
CREATE TABLE signatures (
    story BIGINT PRIMARY KEY,
    sig BYTEA NOT NULL
);
CREATE TABLE blocks (
    host BIGINT NOT NULL,
    block BIGINT NOT NULL,
    stories INT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (host, block)
);
CREATE TABLE sites (
    host BIGINT PRIMARY KEY,
    stories INT NOT NULL
);
CREATE TABLE pending (
    stem TEXT PRIMARY KEY,
    key BIGINT NOT NULL,
    holder TEXT NOT NULL,
    started BIGINT NOT NULL
);
CREATE TABLE page_failures (
    key BIGINT PRIMARY KEY,
    feed TEXT NOT NULL,
    url TEXT NOT NULL,
    attempts INT NOT NULL,
    last_error TEXT NOT NULL,
    last_at BIGINT NOT NULL,
    given_up BOOLEAN NOT NULL DEFAULT FALSE
);
-- Per host: the earliest start of the next request (microseconds, the
-- database's clock), for `[fetch] host_delay` across instances.
CREATE TABLE host_slots (
    host TEXT PRIMARY KEY,
    next_at BIGINT NOT NULL
);
"];

/// Advisory lock keys (two-int form): 'glnr' with 0 serialises story
/// inserts and -1 migrations; 'glns' with a story id its `duplicates` list.
const LOCK_NS: i32 = 0x676c_6e72;
const STORY_NS: i32 = 0x676c_6e73;
/// 'glnp' with a page's URL key: failures of one page counted one at a time.
const PAGE_NS: i32 = 0x676c_6e70;

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The URL with any password masked: for messages.
    url: String,
    /// This process, in leases and pending writes.
    holder: String,
    lease: chrono::Duration,
    near: Mutex<Near>,
    trips: Arc<AtomicU64>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Near {
    index: NearIndex,
    /// The highest story id loaded into `index`.
    loaded: i64,
}

/// One connection, on its own thread.
struct Conn {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
    trips: Arc<AtomicU64>,
    /// `alive_key(holder)`, held shared by each connection while it lives.
    alive: i64,
}

/// The advisory lock key that says a process is alive: every connection
/// of the process holds it shared, so another process can take it
/// exclusively only once all of them are gone (the process died). Stable
/// across builds: instances of different versions must agree on it.
fn alive_key(holder: &str) -> i64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x676c_6e72, 0x616c_6976);
    h.write(holder.as_bytes());
    h.finish() as i64
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            // Prepared statements died with the connection.
            self.statements.clear();
            self.client = None;
        }
        match &mut self.client {
            Some(c) => Ok(c),
            slot => {
                let mut c = self.config.connect(self.tls.clone())?;
                // Bounded waits (a stuck lock or query fails the call, it
                // does not hang the daemon), and READ COMMITTED whatever the
                // server's default: `add_story` must see rows committed
                // while it waited for its lock.
                c.batch_execute(&format!(
                    "SET statement_timeout = '60s'; SET lock_timeout = '60s';
                     SET idle_in_transaction_session_timeout = '10min';
                     SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
                     SELECT pg_advisory_lock_shared({})",
                    self.alive
                ))?;
                self.trips.fetch_add(2, Ordering::Relaxed);
                Ok(slot.insert(c))
            }
        }
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client()?.prepare(sql)?;
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.statements.insert(sql, st.clone());
        Ok(st)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.client()?.query(&st, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let st = self.statement(sql)?;
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.client()?.execute(&st, params)
    }

    fn batch(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.client()?.batch_execute(sql)
    }

    /// Runs `f` in a transaction: committed if it returns Ok, else rolled
    /// back. `begin` is sent with BEGIN in one round trip (a lock, say).
    fn transaction<T>(
        &mut self,
        begin: &str,
        f: impl FnOnce(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        self.batch(&format!("BEGIN; {begin}"))?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                // A broken connection rolls back by itself.
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn ts(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(|s| Utc.timestamp_opt(s, 0).single())
}

fn secs(d: Option<i64>) -> Option<Duration> {
    d.and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
}

fn k(key: u64) -> i64 {
    key as i64
}

/// The password: `password_file`, else `GLEANER_PG_PASSWORD`, else the URL's.
fn password(cfg: &StateConfig) -> Result<Option<String>, String> {
    if let Some(path) = &cfg.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("password_file {}: {e}", path.display()))?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_string()));
    }
    Ok(std::env::var("GLEANER_PG_PASSWORD").ok())
}

/// The TLS connector: rustls with the system's certificate authorities,
/// or those of `[state] ca_file`.
fn tls(cfg: &StateConfig) -> Result<MakeRustlsConnect, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("ca_file {}: no certificate in it", path.display()));
            }
        }
        None => {
            // Unreadable system certificates only matter if TLS is used.
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// This process's name in leases: the configured instance name (else the
/// host name) and the process id, so two instances never share a lease.
fn holder(cfg: &StateConfig) -> String {
    let name = cfg.instance.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "gleaner".into())
    });
    // The pid alone repeats (1 in every container): a random part makes a
    // restarted process a new holder, never its dead predecessor.
    format!("{name}/{}/{:08x}", std::process::id(), fastrand::u32(..))
}

/// A database error with the server's own words when there are some.
pub(super) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

fn feed_row(r: &Row) -> FeedState {
    FeedState {
        validators: Validators {
            etag: r.get(0),
            last_modified: r.get(1),
        },
        last_success: ts(r.get(2)),
        last_error: r.get(3),
        last_error_at: ts(r.get(4)),
        failures: r.get::<_, i32>(5).max(0) as u32,
        items: r.get::<_, i64>(6).max(0) as u64,
    }
}

fn schedule_row(r: &Row) -> FeedSchedule {
    FeedSchedule {
        next_poll: ts(r.get(1)),
        last_poll: ts(r.get(2)),
        interval: secs(r.get(3)),
        hint: secs(r.get(4)),
        rate_items: r.get(5),
        rate_hours: r.get(6),
    }
}

fn page_failure_row(r: &Row) -> PageFailure {
    PageFailure {
        feed: r.get(0),
        url: r.get(1),
        attempts: r.get::<_, i32>(2).max(0) as u32,
        last_error: r.get(3),
        last_at: ts(r.get(4)).unwrap_or_default(),
        given_up: r.get(5),
    }
}

impl PgStore {
    /// Connects (`[state] connections` connections), and creates or
    /// upgrades the schema.
    pub fn open(cfg: &StateConfig) -> Result<Self, StoreError> {
        Self::connect(cfg, true)
    }

    /// Connects without creating or upgrading anything (`gleaner status`:
    /// a read-only role will do); an older schema is `StoreError::Outdated`.
    pub fn open_existing(cfg: &StateConfig) -> Result<Self, StoreError> {
        Self::connect(cfg, false)
    }

    fn connect(cfg: &StateConfig, upgrade: bool) -> Result<Self, StoreError> {
        let raw = cfg.url.as_deref().unwrap_or_default();
        let url = crate::config::mask_password(raw);
        let fail = |message: String| StoreError::Postgres {
            url: url.clone(),
            message,
        };
        let mut config: postgres::Config = raw.parse().map_err(|e| fail(describe(&e)))?;
        if let Some(pw) = password(cfg).map_err(&fail)? {
            config.password(pw);
        }
        config.application_name("gleaner");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // A server that vanished (no FIN) is noticed in about a minute.
        config.keepalives_idle(Duration::from_secs(30));
        let trips = Arc::new(AtomicU64::new(0));
        let holder = holder(cfg);
        let alive = alive_key(&holder);
        let tls = tls(cfg).map_err(&fail)?;
        let new_conn = || Conn {
            config: config.clone(),
            tls: tls.clone(),
            client: None,
            statements: HashMap::new(),
            trips: trips.clone(),
            alive,
        };
        let mut first = new_conn();
        let checked = if upgrade {
            migrate(&mut first)
        } else {
            schema_version(&mut first).and_then(|v| match v.cmp(&(MIGRATIONS.len() as i64)) {
                std::cmp::Ordering::Less => Err(Migration::Outdated(v)),
                std::cmp::Ordering::Greater => Err(Migration::TooNew(v)),
                std::cmp::Ordering::Equal => Ok(()),
            })
        };
        checked.map_err(|e| match e {
            Migration::Db(e) => fail(describe(&e)),
            Migration::TooNew(found) => StoreError::TooNew {
                path: url.clone(),
                found,
                supported: MIGRATIONS.len() as i64,
            },
            Migration::Outdated(found) => StoreError::Outdated {
                path: url.clone(),
                found,
                expected: MIGRATIONS.len() as i64,
            },
        })?;

        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        let conns = std::iter::once(first).chain((1..cfg.connections.max(1)).map(|_| new_conn()));
        for (i, mut conn) in conns.enumerate() {
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("gleaner-pg-{i}"))
                .spawn(move || loop {
                    // The lock is held only to take a job, not to run it.
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    };
                    // A panicking job must not take the connection thread
                    // with it (its caller sees the reply channel close).
                    let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                    if std::panic::catch_unwind(run).is_err() {
                        conn.client = None;
                        conn.statements.clear();
                    }
                })
                .map_err(|e| fail(format!("cannot start a database thread: {e}")))?;
            workers.push(handle);
        }
        Ok(PgStore {
            inner: Arc::new(Inner {
                jobs: Mutex::new(Some(tx)),
                url,
                holder,
                lease: chrono::Duration::from_std(cfg.lease).unwrap_or(chrono::Duration::MAX),
                near: Mutex::new(Near::default()),
                trips,
                workers: Mutex::new(workers),
            }),
        })
    }

    /// Runs `f` on one of the store's connections (bulk work: migrations).
    pub(super) fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, String> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.call_with(move |c| {
            let client = c.client().map_err(|e| describe(&e))?;
            f(client)
        })
    }

    /// This process's name in leases.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the channel ends the threads once their jobs are done.
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let workers =
            std::mem::take(&mut *self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

enum Migration {
    Db(postgres::Error),
    TooNew(i64),
    Outdated(i64),
}

impl From<postgres::Error> for Migration {
    fn from(e: postgres::Error) -> Self {
        Migration::Db(e)
    }
}

/// The database's schema version (0: no gleaner tables yet).
fn schema_version(c: &mut Conn) -> Result<i64, Migration> {
    let exists: bool = c
        .client()?
        .query_one("SELECT to_regclass('gleaner_meta') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(c.client()?
        .query_opt(
            "SELECT value FROM gleaner_meta WHERE name = 'schema_version'",
            &[],
        )?
        .map(|r| r.get(0))
        .unwrap_or(0))
}

/// Brings the schema to the newest version, one migration per transaction,
/// under a lock so instances starting together do not both apply one.
fn migrate(c: &mut Conn) -> Result<(), Migration> {
    c.batch(&format!("SELECT pg_advisory_lock({LOCK_NS}, -1)"))?;
    let r = (|| {
        let version = schema_version(c)?;
        if version == 0 {
            c.batch(
                "CREATE TABLE IF NOT EXISTS gleaner_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            )?;
        }
        if version > MIGRATIONS.len() as i64 {
            return Err(Migration::TooNew(version));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let v = i as i64 + 1;
            c.batch(&format!(
                "BEGIN; {sql}
                 INSERT INTO gleaner_meta (name, value) VALUES ('schema_version', {v})
                   ON CONFLICT (name) DO UPDATE SET value = excluded.value;
                 COMMIT;"
            ))?;
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = c.batch("ROLLBACK");
    }
    let _ = c.batch(&format!("SELECT pg_advisory_unlock({LOCK_NS}, -1)"));
    r
}

impl Inner {
    /// Runs `f` on a connection thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_with(move |conn| f(conn).map_err(|e| describe(&e)))
    }

    fn call_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, String> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        let sent = match &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        let fail = |message: String| StoreError::Postgres {
            url: self.url.clone(),
            message,
        };
        if !sent {
            return Err(fail("the store is closed".into()));
        }
        // A round trip takes a tokio worker for a while: let the runtime
        // move its other tasks to a new worker meanwhile, or two cores'
        // workers would wait on the database in turn.
        let wait = || rx.recv();
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        answer
            .map_err(|_| fail("database thread stopped".into()))?
            .map_err(fail)
    }

    /// The highest story id in the near index.
    fn loaded(&self) -> i64 {
        self.near.lock().unwrap_or_else(|e| e.into_inner()).loaded
    }

    /// Adds `(story, sig)` rows newer than the index to it.
    fn load_signatures<'r>(&self, rows: impl Iterator<Item = (i64, &'r [u8])>) {
        let mut near = self.near.lock().unwrap_or_else(|e| e.into_inner());
        for (id, bytes) in rows {
            if id <= near.loaded {
                continue;
            }
            if let (Ok(id32), Some(sig)) = (u32::try_from(id), Signature::from_bytes(bytes)) {
                near.index.insert(id32, &sig);
            }
            near.loaded = id;
        }
    }

    /// Loads signatures added since the last look into the near index.
    fn refresh_near(&self, c: &mut Conn) -> Result<(), postgres::Error> {
        let rows = c.query(
            "SELECT story, sig FROM signatures WHERE story > $1 ORDER BY story",
            &[&self.loaded()],
        )?;
        self.load_signatures(rows.iter().map(|r| (r.get(0), r.get(1))));
        Ok(())
    }

    /// Stories in the window sharing an LSH band with `sig`.
    fn near_candidates(
        &self,
        c: &mut Conn,
        sig: &Signature,
        since: DateTime<Utc>,
    ) -> Result<Vec<(StoryRef, Signature)>, postgres::Error> {
        self.refresh_near(c)?;
        self.near_matches(c, sig, since)
    }

    /// `near_candidates` on the index as it is.
    fn near_matches(
        &self,
        c: &mut Conn,
        sig: &Signature,
        since: DateTime<Utc>,
    ) -> Result<Vec<(StoryRef, Signature)>, postgres::Error> {
        let ids: Vec<i64> = self
            .near
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .index
            .candidates(sig)
            .into_iter()
            .map(i64::from)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = c.query(
            "SELECT s.id, s.stem, g.sig FROM stories s JOIN signatures g ON g.story = s.id
             WHERE s.id = ANY($1) AND s.created >= $2 ORDER BY s.id",
            &[&ids, &since.timestamp()],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Signature::from_bytes(r.get::<_, &[u8]>(2)).map(|sig| {
                    (
                        StoryRef {
                            id: r.get(0),
                            stem: r.get(1),
                        },
                        sig,
                    )
                })
            })
            .collect())
    }
}

impl SharedHosts for Inner {
    fn reserve(&self, host: &str, gap: Duration) -> Result<Duration, String> {
        let host = host.to_string();
        let gap_us = i64::try_from(gap.as_micros()).unwrap_or(i64::MAX);
        // The database's clock: instances on several machines agree on it.
        let wait_us: i64 = self
            .call(move |c| {
                let r = c.query(
                    "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS t)
                     INSERT INTO host_slots (host, next_at) SELECT $1, t + $2 FROM now
                     ON CONFLICT (host) DO UPDATE
                       SET next_at = greatest(host_slots.next_at, (SELECT t FROM now)) + $2
                     RETURNING next_at - $2 - (SELECT t FROM now)",
                    &[&host, &gap_us],
                )?;
                Ok(r.first().map_or(0, |r| r.get(0)))
            })
            .map_err(|e| e.to_string())?;
        Ok(Duration::from_micros(wait_us.max(0) as u64))
    }
}

impl StateStore for PgStore {
    fn feed_state(&self, feed: &str) -> Result<FeedState, StoreError> {
        let feed = feed.to_string();
        self.inner.call(move |c| {
            Ok(c.query_opt(
                "SELECT etag, last_modified, last_success, last_error, last_error_at, failures, items
                 FROM feeds WHERE name = $1",
                &[&feed],
            )?
            .map(|r| feed_row(&r))
            .unwrap_or_default())
        })
    }

    fn all_feeds(&self) -> Result<Vec<(String, FeedState)>, StoreError> {
        self.inner.call(|c| {
            Ok(c.query(
                "SELECT etag, last_modified, last_success, last_error, last_error_at, failures, items, name
                 FROM feeds ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| (r.get(7), feed_row(r)))
            .collect())
        })
    }

    fn feed_ok(
        &self,
        feed: &str,
        v: Option<&Validators>,
        new_items: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (feed, v) = (feed.to_string(), v.cloned());
        self.inner.call(move |c| {
            let has = v.is_some();
            let etag = v.as_ref().and_then(|v| v.etag.clone());
            let lm = v.as_ref().and_then(|v| v.last_modified.clone());
            c.execute(
                "INSERT INTO feeds (name, etag, last_modified, last_success, failures, items)
                 VALUES ($1, $2, $3, $4, 0, $5)
                 ON CONFLICT (name) DO UPDATE SET
                   etag = CASE WHEN $6 THEN excluded.etag ELSE feeds.etag END,
                   last_modified = CASE WHEN $6 THEN excluded.last_modified ELSE feeds.last_modified END,
                   last_success = excluded.last_success, failures = 0,
                   items = feeds.items + excluded.items",
                &[&feed, &etag, &lm, &now.timestamp(), &(new_items as i64), &has],
            )
            .map(|_| ())
        })
    }

    fn feed_failed(&self, feed: &str, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let (feed, error) = (feed.to_string(), error.to_string());
        self.inner.call(move |c| {
            c.execute(
                "INSERT INTO feeds (name, last_error, last_error_at, failures) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error,
                   last_error_at = excluded.last_error_at, failures = feeds.failures + 1",
                &[&feed, &error, &now.timestamp()],
            )
            .map(|_| ())
        })
    }

    fn schedules(&self) -> Result<Vec<(String, FeedSchedule)>, StoreError> {
        self.inner.call(|c| {
            Ok(c.query(
                "SELECT name, next_poll, last_poll, interval_secs, hint_secs, rate_items, rate_hours
                 FROM feeds WHERE next_poll IS NOT NULL ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), schedule_row(r)))
            .collect())
        })
    }

    fn schedule(&self, feed: &str) -> Result<Option<FeedSchedule>, StoreError> {
        let feed = feed.to_string();
        self.inner.call(move |c| {
            Ok(c.query_opt(
                "SELECT name, next_poll, last_poll, interval_secs, hint_secs, rate_items, rate_hours
                 FROM feeds WHERE name = $1 AND next_poll IS NOT NULL",
                &[&feed],
            )?
            .map(|r| schedule_row(&r)))
        })
    }

    fn set_schedule(&self, feed: &str, s: &FeedSchedule) -> Result<(), StoreError> {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs().min(i64::MAX as u64) as i64);
        let (feed, next, last) = (
            feed.to_string(),
            s.next_poll.map(|t| t.timestamp()),
            s.last_poll.map(|t| t.timestamp()),
        );
        let (interval, hint, rate_items, rate_hours) =
            (secs(s.interval), secs(s.hint), s.rate_items, s.rate_hours);
        self.inner.call(move |c| {
            c.execute(
                "INSERT INTO feeds (name, next_poll, last_poll, interval_secs, hint_secs, rate_items, rate_hours)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (name) DO UPDATE SET next_poll = excluded.next_poll,
                   last_poll = excluded.last_poll, interval_secs = excluded.interval_secs,
                   hint_secs = excluded.hint_secs, rate_items = excluded.rate_items,
                   rate_hours = excluded.rate_hours",
                &[&feed, &next, &last, &interval, &hint, &rate_items, &rate_hours],
            )
            .map(|_| ())
        })
    }

    fn story_by_key(&self, key: u64) -> Result<Option<StoryRef>, StoreError> {
        self.inner.call(move |c| {
            Ok(c.query_opt(
                "SELECT s.id, s.stem FROM keys k JOIN stories s ON s.id = k.story WHERE k.key = $1",
                &[&k(key)],
            )?
            .map(|r| StoryRef {
                id: r.get(0),
                stem: r.get(1),
            }))
        })
    }

    fn stories_by_keys(&self, keys: &[u64]) -> Result<HashMap<u64, StoryRef>, StoreError> {
        let keys: Vec<i64> = keys.iter().map(|x| k(*x)).collect();
        self.inner.call(move |c| {
            Ok(c.query(
                "SELECT k.key, s.id, s.stem FROM keys k JOIN stories s ON s.id = k.story
                 WHERE k.key = ANY($1)",
                &[&keys],
            )?
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0) as u64,
                    StoryRef {
                        id: r.get(1),
                        stem: r.get(2),
                    },
                )
            })
            .collect())
        })
    }

    fn add_keys(&self, story: i64, keys: &[u64]) -> Result<(), StoreError> {
        let keys: Vec<i64> = keys.iter().map(|x| k(*x)).collect();
        self.inner.call(move |c| {
            c.execute(
                "INSERT INTO keys (key, story) SELECT unnest($1::bigint[]), $2 ON CONFLICT DO NOTHING",
                &[&keys, &story],
            )
            .map(|_| ())
        })
    }

    fn add_story(&self, s: &NewStory<'_>) -> Result<Claim, StoreError> {
        let inner = self.inner.clone();
        let stem = s.stem.to_string();
        let created = s.created.timestamp();
        let mut ids: Vec<i64> = s.keys.iter().map(|x| k(*x)).collect();
        let all: Vec<i64> = s.keys.iter().chain(s.aliases).map(|x| k(*x)).collect();
        ids.dedup();
        let first = ids.first().copied();
        let sig = s.signature.cloned();
        let near = s.near;
        let holder = self.inner.holder.clone();
        // The new signature reaches the near index at the next refresh.
        self.inner.call(move |c| {
            c.transaction(&format!("SELECT pg_advisory_xact_lock({LOCK_NS}, 0)"), |c| {
                // One round trip: a story the keys name, else the
                // signatures the near index has not seen yet.
                let want_sigs = sig.is_some() && near.is_some();
                let rows = c.query(
                    "(SELECT 0 AS kind, s.id, s.stem, NULL::bytea AS sig FROM keys k
                      JOIN stories s ON s.id = k.story WHERE k.key = ANY($1) ORDER BY s.id LIMIT 1)
                     UNION ALL
                     (SELECT 1, story, NULL, sig FROM signatures WHERE $3 AND story > $2
                      ORDER BY story)",
                    &[&ids, &inner.loaded(), &want_sigs],
                )?;
                if let Some(r) = rows.iter().find(|r| r.get::<_, i32>(0) == 0) {
                    return Ok(Claim::Taken {
                        story: StoryRef {
                            id: r.get(1),
                            stem: r.get(2),
                        },
                        by: "url",
                        similarity: None,
                    });
                }
                inner.load_signatures(rows.iter().map(|r| (r.get(1), r.get(3))));
                if let (Some(sig), Some(near)) = (&sig, near) {
                    let candidates = inner.near_matches(c, sig, near.since)?;
                    if let Some((story, sim)) = best_match(sig, candidates, near.threshold) {
                        return Ok(Claim::Taken {
                            story,
                            by: "text",
                            similarity: Some(sim),
                        });
                    }
                }
                let bytes = sig.as_ref().map(Signature::to_bytes);
                let now = Utc::now().timestamp();
                let row = c.query(
                    "WITH s AS (INSERT INTO stories (stem, created) VALUES ($1, $2) RETURNING id),
                     g AS (INSERT INTO signatures (story, sig) SELECT id, $3 FROM s WHERE $3::bytea IS NOT NULL),
                     p AS (INSERT INTO pending (stem, key, holder, started)
                           SELECT $1, $4, $5, $6 WHERE $4::bigint IS NOT NULL
                           ON CONFLICT (stem) DO UPDATE SET key = excluded.key,
                             holder = excluded.holder, started = excluded.started),
                     k AS (INSERT INTO keys (key, story) SELECT DISTINCT unnest($7::bigint[]), id FROM s
                           ON CONFLICT DO NOTHING)
                     SELECT id FROM s",
                    &[&stem, &created, &bytes, &first, &holder, &now, &all],
                )?;
                Ok(Claim::New(row.first().map_or(0, |r| r.get(0))))
            })
        })
    }

    fn remove_story(&self, story: i64) -> Result<(), StoreError> {
        self.inner.call(move |c| {
            c.transaction("", |c| {
                c.execute("DELETE FROM keys WHERE story = $1", &[&story])?;
                c.execute("DELETE FROM signatures WHERE story = $1", &[&story])?;
                c.execute("DELETE FROM stories WHERE id = $1", &[&story])?;
                Ok(())
            })
        })
    }

    fn clear_validators(&self) -> Result<(), StoreError> {
        self.inner.call(|c| {
            c.execute(
                "UPDATE feeds SET etag = NULL, last_modified = NULL
                 WHERE etag IS NOT NULL OR last_modified IS NOT NULL",
                &[],
            )
            .map(|_| ())
        })
    }

    fn near_candidates(
        &self,
        sig: &Signature,
        since: DateTime<Utc>,
    ) -> Result<Vec<(StoryRef, Signature)>, StoreError> {
        let (inner, sig) = (self.inner.clone(), sig.clone());
        self.inner
            .call(move |c| inner.near_candidates(c, &sig, since))
    }

    fn prune(&self, near_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let (start, pruned) = self.inner.call(move |c| {
            c.transaction("", |c| {
                let start: i64 = c
                    .query_opt(
                        "SELECT id FROM stories
                         WHERE id >= (SELECT coalesce(min(story), 0) FROM signatures) AND created >= $1
                         ORDER BY id LIMIT 1",
                        &[&near_before.timestamp()],
                    )?
                    .map_or(i64::MAX, |r| r.get(0));
                let signatures =
                    c.execute("DELETE FROM signatures WHERE story < $1", &[&start])? as usize;
                let pruned_at: i64 = c
                    .query_opt("SELECT value FROM gleaner_meta WHERE name = 'blocks_pruned_at'", &[])?
                    .map_or(0, |r| r.get(0));
                let mut blocks = 0;
                if pruned_at <= (now - chrono::Duration::days(1)).timestamp() {
                    blocks = c.execute(
                        "DELETE FROM blocks WHERE stories <= 1 AND last_seen < $1",
                        &[&(now - chrono::Duration::days(60)).timestamp()],
                    )? as usize;
                    c.execute(
                        "INSERT INTO gleaner_meta (name, value) VALUES ('blocks_pruned_at', $1)
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        &[&now.timestamp()],
                    )?;
                }
                Ok((start, Pruned { signatures, blocks }))
            })
        })?;
        // Other instances prune too: drop what fell out of the window here
        // whoever deleted the rows.
        if start != i64::MAX {
            let mut near = self.inner.near.lock().unwrap_or_else(|e| e.into_inner());
            near.index
                .retain_from(u32::try_from(start).unwrap_or(u32::MAX));
        }
        Ok(pruned)
    }

    fn block_counts(&self, host: u64, blocks: &[u64]) -> Result<(u32, Vec<u32>), StoreError> {
        let keys: Vec<i64> = blocks.iter().map(|b| k(*b)).collect();
        self.inner.call(move |c| {
            // One round trip: the site's row, joined to its known blocks.
            let rows = c.query(
                "SELECT s.stories, b.block, b.stories FROM sites s
                 LEFT JOIN blocks b ON b.host = s.host AND b.block = ANY($2)
                 WHERE s.host = $1",
                &[&k(host), &keys],
            )?;
            let stories = rows.first().map_or(0, |r| r.get::<_, i32>(0).max(0) as u32);
            if stories == 0 {
                return Ok((0, vec![0; keys.len()]));
            }
            let found: HashMap<i64, u32> = rows
                .iter()
                .filter_map(|r| {
                    let block: Option<i64> = r.get(1);
                    let n: Option<i32> = r.get(2);
                    Some((block?, n?.max(0) as u32))
                })
                .collect();
            Ok((
                stories,
                keys.iter()
                    .map(|b| found.get(b).copied().unwrap_or(0))
                    .collect(),
            ))
        })
    }

    fn finish_story(
        &self,
        stem: &str,
        sites: &[u64],
        blocks: &[u64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Sorted and distinct: rows are locked in one order by every
        // instance (no deadlock), and each at most once per statement.
        let mut sites: Vec<i64> = sites.iter().map(|x| k(*x)).collect();
        sites.sort_unstable();
        sites.dedup();
        let mut blocks: Vec<i64> = blocks.iter().map(|x| k(*x)).collect();
        blocks.sort_unstable();
        blocks.dedup();
        let stem = stem.to_string();
        // One statement, so one round trip and atomic all the same.
        self.inner.call(move |c| {
            c.execute(
                "WITH p AS (DELETE FROM pending WHERE stem = $1),
                 s AS (INSERT INTO sites (host, stories) SELECT unnest($2::bigint[]), 1
                       ON CONFLICT (host) DO UPDATE SET stories = sites.stories + 1),
                 b AS (INSERT INTO blocks (host, block, stories, last_seen)
                       SELECT h, x, 1, $4 FROM unnest($2::bigint[]) h, unnest($3::bigint[]) x
                       ORDER BY h, x
                       ON CONFLICT (host, block) DO UPDATE
                         SET stories = blocks.stories + 1, last_seen = excluded.last_seen)
                 SELECT 1",
                &[&stem, &sites, &blocks, &now.timestamp()],
            )
            .map(|_| ())
        })
    }

    fn end_write(&self, stem: &str) -> Result<(), StoreError> {
        let stem = stem.to_string();
        self.inner.call(move |c| {
            c.execute("DELETE FROM pending WHERE stem = $1", &[&stem])
                .map(|_| ())
        })
    }

    /// Writes left pending by processes that are gone (their liveness lock
    /// is free) and begun more than a lease ago: a live process whose
    /// connections are only reconnecting must not lose a write in flight.
    /// This process's own are in flight, never returned.
    fn pending_writes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let holder = self.inner.holder.clone();
        let stale = (Utc::now() - self.inner.lease).timestamp();
        self.inner.call(move |c| {
            let others: Vec<String> = c
                .query(
                    "SELECT DISTINCT holder FROM pending WHERE holder <> $1 AND started < $2",
                    &[&holder, &stale],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut dead = Vec::new();
            for h in others {
                let key = alive_key(&h);
                let free: bool = c
                    .query("SELECT pg_try_advisory_lock($1)", &[&key])?
                    .first()
                    .is_some_and(|r| r.get(0));
                if free {
                    c.execute("SELECT pg_advisory_unlock($1)", &[&key])?;
                    dead.push(h);
                }
            }
            if dead.is_empty() {
                return Ok(Vec::new());
            }
            Ok(c.query(
                "SELECT stem, key FROM pending WHERE holder = ANY($1) AND started < $2 ORDER BY stem",
                &[&dead, &stale],
            )?
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect())
        })
    }

    fn feed_moved(&self, feed: &str) -> Result<Option<FeedMove>, StoreError> {
        let feed = feed.to_string();
        self.inner.call(move |c| {
            Ok(c.query_opt(
                "SELECT moved_from, moved_to FROM feeds
                 WHERE name = $1 AND moved_from IS NOT NULL AND moved_to IS NOT NULL",
                &[&feed],
            )?
            .map(|r| FeedMove {
                from: r.get(0),
                to: r.get(1),
            }))
        })
    }

    fn set_feed_moved(&self, feed: &str, moved: Option<&FeedMove>) -> Result<(), StoreError> {
        let feed = feed.to_string();
        let (from, to) = (moved.map(|m| m.from.clone()), moved.map(|m| m.to.clone()));
        self.inner.call(move |c| {
            c.execute(
                "INSERT INTO feeds (name, moved_from, moved_to) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET moved_from = excluded.moved_from,
                   moved_to = excluded.moved_to",
                &[&feed, &from, &to],
            )
            .map(|_| ())
        })
    }

    fn page_failure(&self, key: u64) -> Result<Option<PageFailure>, StoreError> {
        self.inner.call(move |c| {
            Ok(c.query_opt(
                "SELECT feed, url, attempts, last_error, last_at, given_up
                 FROM page_failures WHERE key = $1",
                &[&k(key)],
            )?
            .map(|r| page_failure_row(&r)))
        })
    }

    fn page_failures(&self, keys: &[u64]) -> Result<HashMap<u64, PageFailure>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<i64> = keys.iter().map(|x| k(*x)).collect();
        self.inner.call(move |c| {
            Ok(c.query(
                "SELECT feed, url, attempts, last_error, last_at, given_up, key
                 FROM page_failures WHERE key = ANY($1)",
                &[&keys],
            )?
            .iter()
            .map(|r| (r.get::<_, i64>(6) as u64, page_failure_row(r)))
            .collect())
        })
    }

    fn page_failed(&self, a: &PageAttempt<'_>) -> Result<PageCount, StoreError> {
        let (feed, url, error) = (a.feed.to_string(), a.url.to_string(), a.error.to_string());
        let (key, now, seen, max_attempts, permanent) =
            (a.key, a.now, a.seen, a.max_attempts, a.permanent);
        // Wrapping is fine: two pages sharing a lock only wait for each other.
        let lock = key as i32;
        self.inner.call(move |c| {
            c.transaction(
                &format!("SELECT pg_advisory_xact_lock({PAGE_NS}, {lock})"),
                |c| {
                    let a = PageAttempt {
                        key,
                        feed: &feed,
                        url: &url,
                        error: &error,
                        now,
                        seen,
                        max_attempts,
                        permanent,
                    };
                    let current = c
                        .query_opt(
                            "SELECT attempts, given_up FROM page_failures WHERE key = $1",
                            &[&k(key)],
                        )?
                        .map(|r| (r.get::<_, i32>(0).max(0) as u32, r.get::<_, bool>(1)));
                    let count = count_page_failure(current, &a);
                    if count.counted {
                        let attempts = i32::try_from(count.attempts).unwrap_or(i32::MAX);
                        c.execute(
                            "INSERT INTO page_failures
                               (key, feed, url, attempts, last_error, last_at, given_up)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)
                             ON CONFLICT (key) DO UPDATE SET attempts = excluded.attempts,
                               feed = excluded.feed, url = excluded.url,
                               last_error = excluded.last_error, last_at = excluded.last_at,
                               given_up = excluded.given_up",
                            &[
                                &k(key),
                                &feed,
                                &url,
                                &attempts,
                                &error,
                                &now.timestamp(),
                                &count.given_up,
                            ],
                        )?;
                    }
                    Ok(count)
                },
            )
        })
    }

    fn page_ok(&self, key: u64) -> Result<(), StoreError> {
        self.inner.call(move |c| {
            c.execute("DELETE FROM page_failures WHERE key = $1", &[&k(key)])
                .map(|_| ())
        })
    }

    fn given_up_pages(&self) -> Result<Vec<PageFailure>, StoreError> {
        self.inner.call(|c| {
            Ok(c.query(
                "SELECT feed, url, attempts, last_error, last_at, given_up
                 FROM page_failures WHERE given_up ORDER BY feed, last_at",
                &[],
            )?
            .iter()
            .map(page_failure_row)
            .collect())
        })
    }

    fn lease_feed(
        &self,
        feed: &str,
        fresh_after: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        let feed = feed.to_string();
        let holder = self.inner.holder.clone();
        let until = (now + self.inner.lease).timestamp();
        let (now_s, fresh) = (now.timestamp(), fresh_after.map(|t| t.timestamp()));
        self.inner.call(move |c| {
            for _ in 0..2 {
                let granted = c.query(
                    "WITH free AS (
                         SELECT name FROM feeds
                         WHERE name = $1
                           AND (lease_until IS NULL OR lease_until <= $4 OR lease_holder = $2)
                           AND (polled_at IS NULL OR $5::bigint IS NULL OR polled_at <= $5)
                         FOR UPDATE SKIP LOCKED)
                     UPDATE feeds f SET lease_holder = $2, lease_until = $3
                     FROM free WHERE f.name = free.name RETURNING 1",
                    &[&feed, &holder, &until, &now_s, &fresh],
                )?;
                if !granted.is_empty() {
                    return Ok(Lease::Granted);
                }
                match c.query_opt(
                    "SELECT lease_holder, lease_until, polled_at FROM feeds WHERE name = $1",
                    &[&feed],
                )? {
                    None => {
                        // Never seen: make its row, then lease it.
                        c.execute(
                            "INSERT INTO feeds (name) VALUES ($1) ON CONFLICT DO NOTHING",
                            &[&feed],
                        )?;
                    }
                    Some(r) => {
                        let (lease_until, polled): (Option<i64>, Option<i64>) =
                            (r.get(1), r.get(2));
                        if let (Some(p), Some(f)) = (polled, fresh) {
                            if p > f {
                                return Ok(Lease::Polled {
                                    at: ts(Some(p)).unwrap_or(now),
                                });
                            }
                        }
                        // Held, or locked by an instance leasing it this instant.
                        let until = lease_until
                            .filter(|u| *u > now_s)
                            .and_then(|u| ts(Some(u)))
                            .unwrap_or(now + chrono::Duration::seconds(1));
                        return Ok(Lease::Held { until });
                    }
                }
            }
            Ok(Lease::Held {
                until: now + chrono::Duration::seconds(1),
            })
        })
    }

    fn release_feed(&self, feed: &str, polled: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
        let (feed, holder, now) = (feed.to_string(), self.inner.holder.clone(), now.timestamp());
        self.inner.call(move |c| {
            c.execute(
                "UPDATE feeds SET lease_holder = NULL, lease_until = NULL,
                   polled_at = CASE WHEN $3 THEN $4 ELSE polled_at END
                 WHERE name = $1 AND lease_holder = $2",
                &[&feed, &holder, &polled, &now],
            )
            .map(|_| ())
        })
    }

    fn with_story_lock(
        &self,
        story: i64,
        f: Box<dyn FnOnce() -> Result<(), String> + Send>,
    ) -> Result<Result<(), String>, StoreError> {
        // Wrapping is fine: two stories sharing a lock only wait for each other.
        let key = story as i32;
        self.inner.call(move |c| {
            c.transaction(
                &format!("SELECT pg_advisory_xact_lock({STORY_NS}, {key})"),
                |_| Ok(f()),
            )
        })
    }

    fn shared_hosts(&self) -> Option<Arc<dyn SharedHosts>> {
        Some(self.inner.clone())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn round_trips(&self) -> Option<u64> {
        Some(self.inner.trips.load(Ordering::Relaxed))
    }
}
