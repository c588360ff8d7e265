//! `gleaner migrate-state --from embedded --to postgres`: copies an
//! embedded store into an empty PostgreSQL database, ids and all, so the
//! `.json` files and every key keep naming the same stories.

use std::path::Path;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::StoreError;
use crate::config::StateConfig;

/// Rows copied, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub feeds: usize,
    pub stories: usize,
    pub keys: usize,
    pub signatures: usize,
    pub blocks: usize,
    pub pages: usize,
}

/// Rows per INSERT: large enough that round trips do not dominate.
const BATCH: usize = 5_000;

pub fn embedded_to_postgres(state_dir: &Path, cfg: &StateConfig) -> Result<Copied, StoreError> {
    if !state_dir.join("state.sqlite").exists() {
        return Err(StoreError::Io {
            path: state_dir.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no embedded store here (state.sqlite) to migrate",
            ),
        });
    }
    // Takes the lock (no gleaner may write it meanwhile) and upgrades it.
    let from = SqliteStore::open(state_dir)?;
    let to = PgStore::open(cfg)?;
    let rows = from.with_conn(read_all)?;
    to.with_conn(move |c| write_all(c, rows))
}

/// Everything in the embedded store, as PostgreSQL parameters.
struct Rows {
    feeds: Vec<FeedRow>,
    stories: (Vec<i64>, Vec<String>, Vec<i64>),
    keys: (Vec<i64>, Vec<i64>),
    signatures: (Vec<i64>, Vec<Vec<u8>>),
    blocks: (Vec<i64>, Vec<i64>, Vec<i32>, Vec<i64>),
    sites: (Vec<i64>, Vec<i32>),
    pending: (Vec<String>, Vec<i64>),
    pages: Vec<PageRow>,
}

type FeedRow = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i32,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    f64,
    f64,
    Option<String>,
    Option<String>,
);

type PageRow = (i64, String, String, i32, String, i64, bool);

/// Runs `f` on each row of `sql`.
fn each(
    c: &rusqlite::Connection,
    sql: &str,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut st = c.prepare(sql)?;
    let mut q = st.query([])?;
    while let Some(r) = q.next()? {
        f(r)?;
    }
    Ok(())
}

fn read_all(c: &mut rusqlite::Connection) -> rusqlite::Result<Rows> {
    let mut st = c.prepare(
        "SELECT name, etag, last_modified, last_success, last_error, last_error_at, failures,
                items, next_poll, last_poll, interval_secs, hint_secs, rate_items, rate_hours,
                moved_from, moved_to FROM feeds",
    )?;
    let feeds = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
                r.get(15)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<FeedRow>>>()?;
    let mut rows = Rows {
        feeds,
        stories: Default::default(),
        keys: Default::default(),
        signatures: Default::default(),
        blocks: Default::default(),
        sites: Default::default(),
        pending: Default::default(),
        pages: Vec::new(),
    };
    each(
        c,
        "SELECT id, stem, created FROM stories ORDER BY id",
        |r| {
            rows.stories.0.push(r.get(0)?);
            rows.stories.1.push(r.get(1)?);
            rows.stories.2.push(r.get(2)?);
            Ok(())
        },
    )?;
    each(c, "SELECT key, story FROM keys", |r| {
        rows.keys.0.push(r.get(0)?);
        rows.keys.1.push(r.get(1)?);
        Ok(())
    })?;
    each(c, "SELECT story, sig FROM signatures ORDER BY story", |r| {
        rows.signatures.0.push(r.get(0)?);
        rows.signatures.1.push(r.get(1)?);
        Ok(())
    })?;
    each(
        c,
        "SELECT host, block, stories, last_seen FROM blocks",
        |r| {
            rows.blocks.0.push(r.get(0)?);
            rows.blocks.1.push(r.get(1)?);
            rows.blocks.2.push(r.get(2)?);
            rows.blocks.3.push(r.get(3)?);
            Ok(())
        },
    )?;
    each(c, "SELECT host, stories FROM sites", |r| {
        rows.sites.0.push(r.get(0)?);
        rows.sites.1.push(r.get(1)?);
        Ok(())
    })?;
    each(c, "SELECT stem, key FROM pending", |r| {
        rows.pending.0.push(r.get(0)?);
        rows.pending.1.push(r.get(1)?);
        Ok(())
    })?;
    let mut st = c.prepare(
        "SELECT key, feed, url, attempts, last_error, last_at, given_up FROM page_failures",
    )?;
    rows.pages = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<PageRow>>>()?;
    Ok(rows)
}

fn write_all(c: &mut postgres::Client, rows: Rows) -> Result<Copied, String> {
    write_rows(c, rows).map_err(|e| match e {
        Refused::NotEmpty(n) => format!(
            "the database already holds state ({n} stories and feeds); migrate into an empty database"
        ),
        Refused::Db(e) => super::postgres::describe(&e),
    })
}

enum Refused {
    NotEmpty(i64),
    Db(postgres::Error),
}

impl From<postgres::Error> for Refused {
    fn from(e: postgres::Error) -> Self {
        Refused::Db(e)
    }
}

fn write_rows(c: &mut postgres::Client, rows: Rows) -> Result<Copied, Refused> {
    let mut tx = c.transaction()?;
    // Into an empty database only: merging two stores' ids is not a copy.
    let existing: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM stories) + (SELECT count(*) FROM feeds)",
            &[],
        )?
        .get(0);
    if existing > 0 {
        return Err(Refused::NotEmpty(existing));
    }
    for f in &rows.feeds {
        tx.execute(
            "INSERT INTO feeds (name, etag, last_modified, last_success, last_error, last_error_at,
               failures, items, next_poll, last_poll, interval_secs, hint_secs, rate_items,
               rate_hours, moved_from, moved_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            &[
                &f.0, &f.1, &f.2, &f.3, &f.4, &f.5, &f.6, &f.7, &f.8, &f.9, &f.10, &f.11, &f.12,
                &f.13, &f.14, &f.15,
            ],
        )?;
    }
    let (ids, stems, created) = &rows.stories;
    let st = tx.prepare(
        "INSERT INTO stories (id, stem, created)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])",
    )?;
    for start in (0..ids.len()).step_by(BATCH) {
        let end = (start + BATCH).min(ids.len());
        tx.execute(
            &st,
            &[
                &&ids[start..end],
                &&stems[start..end],
                &&created[start..end],
            ],
        )?;
    }
    // New stories continue after the copied ids.
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('stories', 'id'),
                       greatest((SELECT max(id) FROM stories), 1))",
        &[],
    )?;
    let (keys, stories) = &rows.keys;
    let st = tx.prepare(
        "INSERT INTO keys (key, story) SELECT * FROM unnest($1::bigint[], $2::bigint[])",
    )?;
    for start in (0..keys.len()).step_by(BATCH) {
        let end = (start + BATCH).min(keys.len());
        tx.execute(&st, &[&&keys[start..end], &&stories[start..end]])?;
    }
    let (sig_ids, sigs) = &rows.signatures;
    let st = tx.prepare(
        "INSERT INTO signatures (story, sig) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
    )?;
    for start in (0..sig_ids.len()).step_by(BATCH) {
        let end = (start + BATCH).min(sig_ids.len());
        tx.execute(&st, &[&&sig_ids[start..end], &&sigs[start..end]])?;
    }
    let (hosts, blocks, counts, seen) = &rows.blocks;
    let st = tx.prepare(
        "INSERT INTO blocks (host, block, stories, last_seen)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::bigint[])",
    )?;
    for start in (0..hosts.len()).step_by(BATCH) {
        let end = (start + BATCH).min(hosts.len());
        tx.execute(
            &st,
            &[
                &&hosts[start..end],
                &&blocks[start..end],
                &&counts[start..end],
                &&seen[start..end],
            ],
        )?;
    }
    let (site_hosts, site_counts) = &rows.sites;
    tx.execute(
        "INSERT INTO sites (host, stories) SELECT * FROM unnest($1::bigint[], $2::int[])",
        &[site_hosts, site_counts],
    )?;
    // Writes a crash left unfinished: started long ago, so the first
    // instance to start undoes them, as the embedded store would have.
    let (stems, pkeys) = &rows.pending;
    tx.execute(
        "INSERT INTO pending (stem, key, holder, started)
         SELECT s, k, 'migrated', 0 FROM unnest($1::text[], $2::bigint[]) AS t(s, k)",
        &[stems, pkeys],
    )?;
    for p in &rows.pages {
        tx.execute(
            "INSERT INTO page_failures (key, feed, url, attempts, last_error, last_at, given_up)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&p.0, &p.1, &p.2, &p.3, &p.4, &p.5, &p.6],
        )?;
    }
    tx.commit()?;
    Ok(Copied {
        feeds: rows.feeds.len(),
        stories: ids.len(),
        keys: keys.len(),
        signatures: sig_ids.len(),
        blocks: hosts.len(),
        pages: rows.pages.len(),
    })
}
