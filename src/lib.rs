//! gleaner: news feeds in, clean deduplicated article text out.
//!
//! The modules follow the pipeline, in order:
//!
//! ```text
//! config ─► fetch ─► feed ─► (seen?) ─► fetch page ─► charset ─► extract ─► dedupe ─► output ─► store
//! ```
//!
//! `pipeline` runs one pass over one feed through those stages; the `gleaner`
//! binary (`fetch`, `extract`, `check`) is a thin shell around it. Pure stages
//! (`feed`, `charset`, `extract`, `dedupe`) never do I/O; only `output` writes
//! under `output_dir` and only `store` knows SQL.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod charset;
pub mod config;
pub mod dedupe;
pub mod extract;
pub mod feed;
pub mod fetch;
pub mod output;
pub mod pipeline;
pub mod store;
