//! A `gleaner fetch` run with the peak resident set of the gleaner process
//! (`/usr/bin/time -v`, or polling `VmHWM` when it is missing).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::testdir::{self, RunResult, TestDir, BIN};

/// The bound for a whole pass, hostile input included.
pub const MAX_RSS_KIB: u64 = 256 * 1024;

pub struct Measured {
    pub run: RunResult,
    /// Peak resident set of the gleaner process, KiB.
    pub peak_kib: u64,
}

/// `gleaner fetch` with its peak RSS.
pub fn fetch_measured(td: &TestDir) -> Measured {
    let cfg = td.config_path();
    let time = Path::new("/usr/bin/time");
    let use_time = time.exists();
    let mut cmd = if use_time {
        let mut c = Command::new(time);
        c.arg("-v").arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    cmd.arg("fetch")
        .arg("--config")
        .arg(&cfg)
        .current_dir(&td.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    testdir::loopback_only(&mut cmd);
    cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn gleaner");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut hwm = 0u64;
    let status = loop {
        if !use_time {
            if let Some(kib) = std::fs::read_to_string(&status_path)
                .ok()
                .and_then(|s| status_kib(&s, "VmHWM:"))
            {
                hwm = hwm.max(kib);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > testdir::RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gleaner fetch did not finish within {:?}",
                testdir::RUN_TIMEOUT
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
    let mut stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
    if use_time {
        let at = stderr
            .find("\tCommand being timed:")
            .unwrap_or_else(|| panic!("no /usr/bin/time report in stderr:\n{stderr}"));
        hwm = status_kib(&stderr[at..], "Maximum resident set size (kbytes):")
            .unwrap_or_else(|| panic!("no max RSS in /usr/bin/time report:\n{stderr}"));
        stderr.truncate(at);
    }
    Measured {
        run: RunResult {
            code: status.code(),
            stdout,
            stderr,
            elapsed,
        },
        peak_kib: hwm,
    }
}

fn status_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    line.trim_start()[key.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
