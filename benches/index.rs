//! Story-index benchmark: `cargo bench --bench index` (or `bench/index.sh`).
//!
//! Opens a real `SqliteStore` in a temporary directory and feeds it
//! `GLEANER_BENCH_STORIES` (default 1,000,000) synthetic stories through the
//! public `StateStore` API, call for call as the pipeline does for a new story:
//!
//! - lookup: `story_by_key` for the item key and the URL key (both miss),
//!   then `near_best(sig, created - 7 days, threshold)` (what the
//!   pipeline's near-duplicate check does: candidates from the in-memory
//!   index, compared with their signatures, the best one's row read);
//! - insert: `add_story` (URL key, item key and, for half the stories, a page
//!   `rel=canonical` key; the signature, which also goes into the in-memory
//!   near-duplicate index once that is built).
//!
//! Learned boilerplate is not part of lookup + insert and is timed on lines
//! of its own: `block_counts` (two sites) and `finish_story(stem, [host site,
//! host+section site], ~8 block fingerprints, created)`. So is `prune`, which
//! runs once per simulated hour as in the daemon (signatures out of the
//! window, blocks seen once long ago).
//!
//! Synthetic stories: ~300 words drawn from a 20,000-word vocabulary with a
//! skewed (roughly Zipf-like) distribution, in 6 paragraphs; 1,000 hosts with
//! 6 sections each; 10,000 stories a day (so 1M stories span 100 days and the
//! 7-day window holds ~70,000). 20% of stories are copies, on another host, of
//! an original from the last ~2 days with a dateline added, the last
//! paragraph cut, or both, so near-duplicate lookups find real candidates.
//! Copies are inserted too (the pipeline would only add keys to the
//! original): the index holds every story, the conservative case. Blocks per
//! story: 2 from the host's pool of 20 furniture lines and 6 unique to the
//! text (edge paragraphs, short lines), as the pipeline's `block_keys` picks.
//!
//! Text generation and `Signature::of` run between the store calls (as
//! extraction does in the pipeline) and are not timed: only the store calls
//! (and candidate similarity) are; besides wall time, the thread's CPU time
//! over lookup + insert (`CLOCK_THREAD_CPUTIME_ID`), which a busy machine
//! does not inflate (nor does it count waiting on the disk). Memory: peak RSS (VmHWM), RSS before the
//! store opened and at the end, and SQLite's own allocator counter. Disk: file
//! sizes with the store open, then after it closes (the close checkpoints the
//! WAL), and per table from SQLite's `dbstat` table.
//!
//! Env: `GLEANER_BENCH_STORIES` (count), `GLEANER_BENCH_SEED` (default 1),
//! `GLEANER_BENCH_DIR` (parent of the temporary state dir) and
//! `GLEANER_BENCH_KEEP=1` (keep the state dir and print its path).
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use gleaner::dedupe::{hash64, Signature};
use gleaner::store::{NewStory, SqliteStore, StateStore};

const HOSTS: u64 = 1_000;
const SECTIONS: u64 = 6;
const VOCAB: usize = 20_000;
const WORDS: usize = 300;
const PARAGRAPHS: usize = 6;
const COPY_PERCENT: u64 = 20;
/// Originals a copy may come from: the last ~2 days.
const RECENT: usize = 20_000;
const STORIES_PER_DAY: i64 = 10_000;
const WINDOW_DAYS: i64 = 7;
const FURNITURE_POOL: u64 = 20;
const FURNITURE_BLOCKS: u64 = 2;
const UNIQUE_BLOCKS: u64 = 6;

const PROGRESS: usize = 100_000;
const TAIL: usize = 10_000;

fn main() {
    // The allocator as the daemon runs it: its RSS is what this measures.
    gleaner::tune_malloc();
    let n: usize = env_num("GLEANER_BENCH_STORIES", 1_000_000);
    // The pipeline's default `[dedupe] threshold`.
    let threshold = gleaner::config::DedupeConfig::default().threshold;
    let seed: u64 = env_num("GLEANER_BENCH_SEED", 1);
    assert!(n > 0, "GLEANER_BENCH_STORIES must be > 0");
    let keep = std::env::var("GLEANER_BENCH_KEEP").is_ok_and(|v| v == "1");
    let parent = std::env::var("GLEANER_BENCH_DIR")
        .unwrap_or_else(|_| std::env::temp_dir().to_string_lossy().into_owned());
    let tmp = tempfile::Builder::new()
        .prefix("gleaner-index-bench")
        .tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("temp dir in {parent}: {e}"));
    let dir = tmp.path().to_path_buf();

    let vocab = vocabulary();
    let mut rng = fastrand::Rng::with_seed(seed);
    // Latencies in ns, touched now so they count in the baseline RSS.
    let mut lookup_ns = vec![u32::MAX; n];
    let mut insert_ns = vec![u32::MAX; n];
    let mut finish_ns = vec![u32::MAX; n];
    let mut prune_ns: Vec<u32> = Vec::new();
    let mut cpu_ns = vec![u32::MAX; n];
    let clock_cost = clock_cost();
    let mut blocks_ns = vec![u32::MAX; n];
    let mut recent: Vec<Original> = Vec::with_capacity(RECENT);
    let mut text = String::with_capacity(4 * WORDS * 8);

    let rss_before = proc_status_kb("VmRSS");
    let store = SqliteStore::open(&dir).unwrap_or_else(|e| panic!("open store: {e}"));
    let t0 = Utc
        .timestamp_opt(1_767_225_600, 0) // 2026-01-01
        .single()
        .unwrap_or_else(|| panic!("bad start time"));
    let step_ms = 86_400_000 / STORIES_PER_DAY;

    let mut stats = Stats::default();
    let run = Instant::now();
    println!(
        "index bench: {n} stories, seed {seed}, state dir {}, load average {}",
        dir.display(),
        loadavg()
    );
    println!(
        "{:>9} {:>7} {:>22} {:>22} {:>10} {:>10} {:>9} {:>11}",
        "stories",
        "wall s",
        "lookup+insert µs p50/p99",
        "(this 100k) p50/p99",
        "RSS MiB",
        "sqlite MiB",
        "disk MiB",
        "B/story"
    );

    for i in 0..n {
        let created = t0 + Duration::milliseconds(i as i64 * step_ms);
        let since = created - Duration::days(WINDOW_DAYS);
        let host = rng.u64(..HOSTS);
        let section = rng.u64(..SECTIONS);

        // Text: an original, or a copy of a recent original on another host.
        let copy_of = if rng.u64(..100) < COPY_PERCENT && !recent.is_empty() {
            Some(rng.usize(..recent.len()))
        } else {
            None
        };
        let (text_seed, variant) = match copy_of {
            Some(j) => (recent[j].text_seed, rng.u8(1..4)),
            None => (rng.u64(..), 0),
        };
        story_text(&vocab, text_seed, variant, &mut text);
        let sig = Signature::of(&text).unwrap_or_else(|| panic!("text too short"));
        let title: Vec<&str> = text
            .split_whitespace()
            .filter(|w| w.chars().all(char::is_alphanumeric))
            .skip(if variant & 1 == 1 { 4 } else { 0 })
            .take(12)
            .collect();
        let stem = stem(host, created, &title, i as u64);
        let (item_key, url_key, page_key) = (
            hash64(&[b"guid", &seed.to_le_bytes(), &i.to_le_bytes()]),
            hash64(&[b"url", &seed.to_le_bytes(), &i.to_le_bytes()]),
            hash64(&[b"page", &seed.to_le_bytes(), &i.to_le_bytes()]),
        );
        let mut keys = vec![url_key, item_key];
        if rng.bool() {
            keys.push(page_key);
        }
        let sites = [
            hash64(&[b"site", &host.to_le_bytes()]),
            hash64(&[b"site", &host.to_le_bytes(), &section.to_le_bytes()]),
        ];
        let mut blocks: Vec<u64> = (0..FURNITURE_BLOCKS)
            .map(|_| {
                hash64(&[
                    b"furniture",
                    &host.to_le_bytes(),
                    &rng.u64(..FURNITURE_POOL).to_le_bytes(),
                ])
            })
            .chain((0..UNIQUE_BLOCKS).map(|b| {
                // A dateline changes the first paragraph; the others are the original's.
                let salt = if b == 0 && variant & 1 == 1 {
                    i as u64
                } else {
                    u64::MAX
                };
                hash64(&[
                    b"block",
                    &text_seed.to_le_bytes(),
                    &b.to_le_bytes(),
                    &salt.to_le_bytes(),
                ])
            }))
            .collect();
        blocks.sort_unstable();
        blocks.dedup();

        // ---- timed: lookup
        let c0 = thread_cpu_ns();
        let t = Instant::now();
        let mut miss = true;
        for key in [item_key, url_key] {
            miss &= store
                .story_by_key(key)
                .unwrap_or_else(|e| panic!("story_by_key: {e}"))
                .is_none();
        }
        let matched = store
            .near_best(&sig, since, threshold)
            .unwrap_or_else(|e| panic!("near_best: {e}"))
            .is_some();
        let lookup = t.elapsed();
        let c1 = thread_cpu_ns();
        // ---- timed: learned-boilerplate counts (reported apart)
        let t = Instant::now();
        for site in &sites {
            black_box(
                store
                    .block_counts(*site, &blocks)
                    .unwrap_or_else(|e| panic!("block_counts: {e}")),
            );
        }
        let block_lookup = t.elapsed();
        // ---- timed: insert
        let c2 = thread_cpu_ns();
        let t = Instant::now();
        store
            .add_story(&NewStory {
                stem: &stem,
                feed: "bench",
                created,
                keys: &keys,
                aliases: &[],
                signature: Some(&sig),
                near: None,
            })
            .unwrap_or_else(|e| panic!("add_story: {e}"));
        let insert = t.elapsed();
        let c3 = thread_cpu_ns();
        // ---- timed apart: learning, pruning
        let t = Instant::now();
        store
            .finish_story(&stem, &sites, &blocks, created)
            .unwrap_or_else(|e| panic!("finish_story: {e}"));
        finish_ns[i] = ns(t.elapsed());
        if i as i64 % (STORIES_PER_DAY / 24) == 0 {
            let t = Instant::now();
            store
                .prune(since, created)
                .unwrap_or_else(|e| panic!("prune: {e}"));
            prune_ns.push(ns(t.elapsed()));
        }

        let cpu = (c1 - c0 + c3 - c2).saturating_sub(2 * clock_cost);
        cpu_ns[i] = cpu.min(u64::from(u32::MAX)) as u32;
        lookup_ns[i] = ns(lookup);
        insert_ns[i] = ns(insert);
        blocks_ns[i] = ns(block_lookup);
        assert!(miss, "synthetic keys collided");
        // Candidates per lookup, sampled outside the timed calls (the
        // count costs a row read per candidate).
        if i % 100 == 0 {
            stats.sampled += 1;
            stats.candidates += store
                .near_candidates(&sig, since)
                .unwrap_or_else(|e| panic!("near_candidates: {e}"))
                .len() as u64;
        }
        if copy_of.is_some() {
            stats.copies += 1;
            stats.copies_found += u64::from(matched);
        } else {
            stats.originals += 1;
            stats.originals_matched += u64::from(matched);
            let o = Original { text_seed };
            if recent.len() < RECENT {
                recent.push(o);
            } else {
                recent[i % RECENT] = o;
            }
        }

        let done = i + 1;
        if done % PROGRESS == 0 || done == n {
            let from = (done - 1) / PROGRESS * PROGRESS;
            let all = total(&lookup_ns[..done], &insert_ns[..done]);
            let part = total(&lookup_ns[from..done], &insert_ns[from..done]);
            let disk = disk_bytes(&dir);
            println!(
                "{done:>9} {:>7.1} {:>22} {:>22} {:>10.1} {:>10.1} {:>9.1} {:>11.0}",
                run.elapsed().as_secs_f64(),
                p50_p99(&all),
                p50_p99(&part),
                proc_status_kb("VmRSS") as f64 / 1024.0,
                sqlite_mem() as f64 / 1048576.0,
                disk as f64 / 1048576.0,
                disk as f64 / done as f64,
            );
        }
    }
    let wall = run.elapsed().as_secs_f64();
    let cpu = cpu_secs();

    // ---- results
    let rss_end = proc_status_kb("VmRSS");
    let hwm = proc_status_kb("VmHWM");
    let sql_mem = sqlite_mem();
    let sql_high = sqlite_mem_high();
    let open_disk = disk_bytes(&dir);
    let open_wal = file_len(&dir.join("state.sqlite-wal"));
    let all = total(&lookup_ns, &insert_ns);
    let tail = n.saturating_sub(TAIL);
    println!();
    println!(
        "== {n} stories in {wall:.1} s ({:.0} stories/s including untimed text generation), process CPU {cpu:.1} s, load average {}",
        n as f64 / wall,
        loadavg()
    );
    println!(
        "== latency, µs        p50 / p99 (whole run)      p50 / p99 (last {})      mean (whole run)",
        n - tail
    );
    for (name, v) in [
        ("lookup+insert", all.clone()),
        ("  lookup", lookup_ns.clone()),
        ("  insert", insert_ns.clone()),
        ("CPU of l+i", cpu_ns.clone()),
        ("block_counts x2", blocks_ns.clone()),
        ("finish_story", finish_ns.clone()),
        ("prune (hourly)", prune_ns.clone()),
    ] {
        println!(
            "   {name:<16} {:>24} {:>28} {:>16.1}",
            p50_p99(&v),
            p50_p99(&v[v.len() * tail / n..]),
            v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64 / 1000.0
        );
    }
    println!(
        "== near duplicates: {} of {} copies found (a candidate is the same story at threshold {threshold}); {} of {} originals matched something; {:.3} candidates per lookup (every 100th counted)",
        stats.copies_found,
        stats.copies,
        stats.originals_matched,
        stats.originals,
        stats.candidates as f64 / stats.sampled.max(1) as f64
    );
    println!(
        "== memory: peak RSS (VmHWM) {:.1} MiB; RSS before store open {:.1} MiB, at end {:.1} MiB: {:.1} MiB = {:.1} B/story attributable to the store; SQLite heap {:.1} MiB now, {:.1} MiB peak ({:.1} B/story)",
        hwm as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        rss_end.saturating_sub(rss_before) as f64 / 1024.0,
        rss_end.saturating_sub(rss_before) as f64 * 1024.0 / n as f64,
        sql_mem as f64 / 1048576.0,
        sql_high as f64 / 1048576.0,
        sql_high as f64 / n as f64,
    );
    drop(store);
    let closed = disk_bytes(&dir);
    println!(
        "== disk: store open {:.1} MiB (WAL {:.1} MiB); closed (checkpointed) {:.1} MiB = {:.1} B/story",
        open_disk as f64 / 1048576.0,
        open_wal as f64 / 1048576.0,
        closed as f64 / 1048576.0,
        closed as f64 / n as f64
    );
    table_sizes(&dir.join("state.sqlite"), n);
    if keep {
        let kept = tmp.keep();
        println!("== kept {}", kept.display());
    }
}

#[derive(Default)]
struct Stats {
    copies: u64,
    copies_found: u64,
    originals: u64,
    originals_matched: u64,
    candidates: u64,
    /// Lookups whose candidates were counted.
    sampled: u64,
}

#[derive(Clone, Copy)]
struct Original {
    text_seed: u64,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

fn ns(d: std::time::Duration) -> u32 {
    d.as_nanos().min(u128::from(u32::MAX)) as u32
}

fn total(a: &[u32], b: &[u32]) -> Vec<u32> {
    a.iter().zip(b).map(|(x, y)| x.saturating_add(*y)).collect()
}

fn p50_p99(v: &[u32]) -> String {
    let mut s = v.to_vec();
    s.sort_unstable();
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!("{:.1} / {:.1}", at(0.5), at(0.99))
}

/// Pronounceable pseudo-words, 2-4 syllables.
fn vocabulary() -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr",
        "pl", "gr",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou", "ea"];
    let mut rng = fastrand::Rng::with_seed(7);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(VOCAB);
    while out.len() < VOCAB {
        let syl = rng.usize(1..4);
        let w: String = (0..syl)
            .map(|_| {
                format!(
                    "{}{}",
                    ONSETS[rng.usize(..ONSETS.len())],
                    VOWELS[rng.usize(..VOWELS.len())]
                )
            })
            .collect();
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

/// The text of story `seed`; `variant` bit 0 adds a dateline, bit 1 cuts the
/// last paragraph.
fn story_text(vocab: &[String], seed: u64, variant: u8, out: &mut String) {
    out.clear();
    if variant & 1 == 1 {
        out.push_str("LIMA (AFP) — ");
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let per = WORDS / PARAGRAPHS;
    let paragraphs = if variant & 2 == 2 {
        PARAGRAPHS - 1
    } else {
        PARAGRAPHS
    };
    for p in 0..paragraphs {
        if p > 0 {
            out.push_str("\n\n");
        }
        for w in 0..per {
            if w > 0 {
                out.push(' ');
            }
            // Skewed: common words are common, as in prose.
            let u = rng.f64();
            out.push_str(&vocab[((u * u * u) * VOCAB as f64) as usize]);
            if w % 17 == 16 {
                out.push('.');
            }
        }
        out.push('.');
    }
}

fn stem(host: u64, created: DateTime<Utc>, title: &[&str], id: u64) -> String {
    let mut slug = String::new();
    for w in title {
        if slug.len() + w.len() + 1 > 60 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(w);
    }
    format!(
        "feed{host:03}/{}/{slug}-{:012x}",
        created.format("%Y/%m/%d"),
        hash64(&[b"id", &id.to_le_bytes()]) >> 16
    )
}

/// This thread's CPU time (user + system), ns: unlike wall time, it leaves
/// out the time other processes of a busy machine hold the core (and the
/// time spent waiting on the disk).
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// What one `thread_cpu_ns` call adds to a bracket (median of 1,001).
fn clock_cost() -> u64 {
    let mut v: Vec<u64> = (0..1001)
        .map(|_| {
            let a = thread_cpu_ns();
            thread_cpu_ns() - a
        })
        .collect();
    v.sort_unstable();
    v[500]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// User + system CPU seconds of this process so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn sqlite_mem() -> i64 {
    // SAFETY: a plain read of SQLite's global allocator counter.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

fn sqlite_mem_high() -> i64 {
    // SAFETY: as above; 0 = do not reset the high-water mark.
    unsafe { rusqlite::ffi::sqlite3_memory_highwater(0) }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn disk_bytes(dir: &Path) -> u64 {
    file_len(&dir.join("state.sqlite")) + file_len(&dir.join("state.sqlite-wal"))
}

/// Per table and index: pages, bytes, payload and fill, from `dbstat`.
fn table_sizes(db: &Path, n: usize) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let page_size: i64 = c
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap_or(0);
    let free: i64 = c
        .pragma_query_value(None, "freelist_count", |r| r.get(0))
        .unwrap_or(0);
    let mut st = match c.prepare(
        "SELECT name, COUNT(*), SUM(pgsize), SUM(payload), SUM(unused), SUM(ncell)
         FROM dbstat WHERE pagetype = 'leaf' OR pagetype = 'internal' OR pagetype = 'overflow'
         GROUP BY name ORDER BY SUM(pgsize) DESC",
    ) {
        Ok(st) => st,
        Err(e) => {
            println!("== per table: dbstat unavailable ({e})");
            return;
        }
    };
    println!("== per table (page size {page_size}, {free} free pages):");
    println!(
        "   {:<28} {:>9} {:>9} {:>9} {:>8} {:>6}",
        "table/index", "pages", "MiB", "B/story", "cells", "fill"
    );
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("dbstat: {e}"));
    for (name, pages, bytes, _payload, unused, cells) in rows {
        println!(
            "   {name:<28} {pages:>9} {:>9.1} {:>9.1} {:>8.2}M {:>5.0}%",
            bytes as f64 / 1048576.0,
            bytes as f64 / n as f64,
            cells as f64 / 1e6,
            100.0 * (bytes - unused) as f64 / bytes.max(1) as f64
        );
    }
}
