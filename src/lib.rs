//! gleaner: news feeds in, clean deduplicated article text out.
//!
//! The modules follow the pipeline, in order:
//!
//! ```text
//! config ─► fetch ─► feed ─► (seen?) ─► fetch page ─► charset ─► extract ─► dedupe ─► output ─► store
//! ```
//!
//! `pipeline` runs one pass over one feed through those stages; the `gleaner`
//! binary (`fetch`, `extract`, `check`, `status`) is a thin shell around it.
//! `schedule` decides when each feed is due (pure); `daemon` is the loop of
//! `gleaner run` around the same stages: signals, reload, sd_notify, with
//! `metrics` (Prometheus) beside it; `opml` converts feed lists. Pure stages
//! (`feed`, `charset`, `extract`, `dedupe`) never do I/O; only `output` writes
//! under `output_dir` and only `store` knows SQL.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod charset;
pub mod config;
pub mod daemon;
pub mod dedupe;
pub mod extract;
pub mod feed;
pub mod fetch;
pub mod init;
pub mod metrics;
pub mod opml;
pub mod output;
pub mod pipeline;
pub mod schedule;
pub mod store;
pub mod suggest;

/// Keeps glibc's heap from holding on to freed memory. By default glibc
/// raises its mmap threshold to the size of each large block freed (up to
/// 32 MiB), after which page buffers of a few hundred KiB come from the
/// heap, and the long-lived allocations between them keep the heap from
/// shrinking: a 55,000-article pass peaked at 106 MiB, 78 with this (and
/// with the arenas capped at one per core, as many as run at once). Left
/// alone when GLIBC_TUNABLES is set: the user has chosen. Called first
/// thing by the binary (and the index benchmark, which stands for it),
/// before any other thread exists.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
