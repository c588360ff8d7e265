//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod measure;
pub mod pages;
pub mod pg;
pub mod server;
pub mod testdir;

#[allow(unused_imports)]
pub use pages::*;
#[allow(unused_imports)]
pub use server::{Handler, Request, Response, TestServer};
#[allow(unused_imports)]
pub use testdir::{walk_all, walk_files, RunResult, Story, TestDir};
