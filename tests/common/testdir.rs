//! `TestDir`: a temporary directory laid out as
//!
//! ```text
//! <root>/conf/gleaner.toml      config (output_dir = "out", state_dir = "state")
//! <root>/conf/out/...           output_dir (relative to the config file's dir)
//! <root>/conf/state/...         state_dir
//! <root>/cwd/                   the binary's working directory (so relative
//!                               paths only work if resolved against conf/)
//! ```
//!
//! plus helpers to run the `gleaner` binary with a bounded wait.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Hard bound on one run of the binary.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(90);

pub const BIN: &str = env!("CARGO_BIN_EXE_gleaner");

pub struct TestDir {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub conf_dir: PathBuf,
    pub cwd: PathBuf,
}

/// Result of one run of the binary.
pub struct RunResult {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl RunResult {
    /// stdout and stderr together (for "is it reported somewhere" checks).
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code: {:?} (after {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TestDir {
    pub fn new() -> TestDir {
        let tmp = tempfile::Builder::new()
            .prefix("gleaner-test-")
            .tempdir()
            .expect("create temp dir");
        let root = tmp.path().to_path_buf();
        let conf_dir = root.join("conf");
        let cwd = root.join("cwd");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::create_dir_all(&cwd).unwrap();
        TestDir {
            _tmp: tmp,
            root,
            conf_dir,
            cwd,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.conf_dir.join("gleaner.toml")
    }

    pub fn out_dir(&self) -> PathBuf {
        self.conf_dir.join("out")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.conf_dir.join("state")
    }

    /// Config text for `feeds` = [(name, url)], relative output/state dirs.
    pub fn config_text(feeds: &[(&str, &str)]) -> String {
        let mut s = String::from("output_dir = \"out\"\nstate_dir = \"state\"\n");
        for (name, url) in feeds {
            s.push_str(&format!(
                "\n[[feed]]\nname = {}\nurl = {}\n",
                toml_str(name),
                toml_str(url)
            ));
        }
        s
    }

    /// Write `conf/gleaner.toml` for the given feeds; returns its path.
    pub fn write_config(&self, feeds: &[(&str, &str)]) -> PathBuf {
        self.write_config_text(&Self::config_text(feeds))
    }

    /// Write `conf/gleaner.toml` verbatim; returns its path.
    pub fn write_config_text(&self, text: &str) -> PathBuf {
        let p = self.config_path();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Write a file relative to the root; returns its path.
    pub fn write_file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Run the binary (cwd = `<root>/cwd`).
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> RunResult {
        self.run_with_stdin(args, None)
    }

    /// `gleaner fetch --config <conf/gleaner.toml>`.
    pub fn fetch(&self) -> RunResult {
        let cfg = self.config_path();
        self.run(&[
            std::ffi::OsStr::new("fetch"),
            std::ffi::OsStr::new("--config"),
            cfg.as_os_str(),
        ])
    }

    /// Starts `gleaner run` on this directory's config, logging at `level`
    /// to a new file under `root` (returned), outside any service manager,
    /// with `env` set on top.
    pub fn spawn_daemon(
        &self,
        level: &str,
        env: &[(&str, &str)],
    ) -> (std::process::Child, PathBuf) {
        let log = self.root.join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("GLEANER_LOG", level)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        loopback_only(&mut cmd).envs(env.iter().copied());
        (cmd.spawn().expect("spawn gleaner run"), log)
    }

    /// Run the binary feeding `stdin` (or an empty, closed stdin).
    pub fn run_with_stdin<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[S],
        stdin: Option<&[u8]>,
    ) -> RunResult {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        loopback_only(&mut cmd);
        cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");

        let start = Instant::now();
        let mut child = cmd.spawn().expect("spawn gleaner binary");
        let mut child_stdin = child.stdin.take().unwrap();
        let input = stdin.map(|s| s.to_vec());
        let stdin_thread = std::thread::spawn(move || {
            if let Some(bytes) = input {
                let _ = child_stdin.write_all(&bytes);
            }
            drop(child_stdin);
        });
        let mut out_pipe = child.stdout.take().unwrap();
        let mut err_pipe = child.stderr.take().unwrap();
        let out_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out_pipe.read_to_end(&mut v);
            v
        });
        let err_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err_pipe.read_to_end(&mut v);
            v
        });

        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for gleaner") {
                break Some(st);
            }
            if start.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = stdin_thread.join();
        let stdout = String::from_utf8_lossy(&out_thread.join().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&err_thread.join().unwrap()).into_owned();
        let elapsed = start.elapsed();
        let Some(status) = status else {
            panic!(
                "gleaner {:?} did not finish within {:?}; killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
                args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>(),
                RUN_TIMEOUT,
                stdout,
                stderr
            );
        };
        RunResult {
            code: status.code(),
            stdout,
            stderr,
            elapsed,
        }
    }

    /// Files under output_dir with the given extension (`"txt"`, `"json"`),
    /// as paths relative to output_dir, sorted.
    pub fn output_files(&self, ext: &str) -> Vec<PathBuf> {
        let out = self.out_dir();
        walk_files(&out)
            .into_iter()
            .filter(|p| p.extension().map(|e| e == ext).unwrap_or(false))
            .map(|p| p.strip_prefix(&out).unwrap().to_path_buf())
            .collect()
    }

    /// Every file under output_dir → its bytes.
    pub fn snapshot_output(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let out = self.out_dir();
        walk_files(&out)
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p.strip_prefix(&out).unwrap().to_path_buf(), bytes)
            })
            .collect()
    }

    /// Read a file relative to output_dir as UTF-8.
    pub fn read_output(&self, rel: &Path) -> String {
        let p = self.out_dir().join(rel);
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", p.display()))
    }

    /// Parse a JSON file relative to output_dir.
    pub fn read_json(&self, rel: &Path) -> serde_json::Value {
        let text = self.read_output(rel);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}\n{text}", rel.display()))
    }

    /// All stories written: (txt path, json path, parsed json), relative to
    /// output_dir. Panics if a .txt has no sibling .json.
    pub fn stories(&self) -> Vec<Story> {
        self.output_files("txt")
            .into_iter()
            .map(|txt| {
                let json_path = txt.with_extension("json");
                assert!(
                    self.out_dir().join(&json_path).is_file(),
                    "{} has no sibling {}",
                    txt.display(),
                    json_path.display()
                );
                let json = self.read_json(&json_path);
                let text = self.read_output(&txt);
                Story {
                    txt,
                    json_path,
                    json,
                    text,
                }
            })
            .collect()
    }

    /// The single story whose JSON `title` is `title`.
    pub fn story_titled(&self, title: &str) -> Story {
        let mut found: Vec<Story> = self
            .stories()
            .into_iter()
            .filter(|s| s.json["title"].as_str() == Some(title))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one story titled {title:?}; files: {:#?}",
            self.output_files("txt")
        );
        found.remove(0)
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

/// One written story.
#[derive(Debug, Clone)]
pub struct Story {
    pub txt: PathBuf,
    pub json_path: PathBuf,
    pub json: serde_json::Value,
    pub text: String,
}

/// All regular files below `dir` (recursive, no symlink following), sorted.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// All entries (files and dirs) below `dir`, sorted.
pub fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A TOML basic string literal.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Never lets a proxy from the environment get between a spawned gleaner
/// and the test servers on 127.0.0.1.
pub fn loopback_only(cmd: &mut Command) -> &mut Command {
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
}
