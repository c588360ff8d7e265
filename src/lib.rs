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
