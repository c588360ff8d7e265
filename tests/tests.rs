//! Integration tests for the `gleaner` binary.
//!
//! Everything runs against a real HTTP/1.1 server bound to 127.0.0.1:0
//! (`common::server`) and a fresh temporary directory (`common::testdir`).

mod common;

mod cli_check;
mod crash;
mod daemon;
mod demo;
mod extract_cli;
mod fetch_pass;
mod firstrun;
mod hostile;
mod memory;
mod operating;
mod pg_harness;
mod politeness;
mod shared_state;
