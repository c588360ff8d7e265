//! First run: `gleaner init`, the errors a newcomer meets first (each must
//! say what to do next), help with examples, completions and man pages.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::testdir::{loopback_only, BIN};
use crate::common::*;

/// Runs gleaner as a user without privileges: the test's own user when it
/// is not root, else uid/gid 65534 through `setpriv` (root ignores file
/// permissions, which these tests are about). `None`, with the reason on
/// stderr, only when running as root without `setpriv`. The test
/// directory is made traversable; what the child may write is up to the
/// caller's file modes.
pub(crate) fn run_unprivileged<S: AsRef<OsStr>>(td: &TestDir, args: &[S]) -> Option<RunResult> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Some(td.run(args));
    }
    let have_setpriv = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_setpriv {
        eprintln!("SKIPPED: running as root and `setpriv` (util-linux) is missing");
        return None;
    }
    for dir in [&td.root, &td.conf_dir, &td.cwd] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(args)
        .current_dir(&td.cwd)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    loopback_only(&mut cmd);
    let start = Instant::now();
    let out = cmd.output().expect("run setpriv");
    Some(RunResult {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    })
}

fn run_cfg(td: &TestDir, cmd: &str, cfg: &Path) -> RunResult {
    td.run(&[OsStr::new(cmd), OsStr::new("--config"), cfg.as_os_str()])
}

fn assert_code(run: &RunResult, code: i32, what: &str) {
    assert_eq!(run.code, Some(code), "{what}\n{run}");
}

/// Every error a newcomer meets carries at least one `hint:` line.
fn assert_hint(run: &RunResult, needles: &[&str]) {
    assert!(run.stderr.contains("hint:"), "no hint on stderr\n{run}");
    for n in needles {
        assert!(run.stderr.contains(n), "stderr should mention {n:?}\n{run}");
    }
}

// ---- gleaner init -------------------------------------------------------

#[test]
fn init_writes_a_valid_starter_config_and_its_directories() {
    let td = TestDir::new();
    let dir = td.root.join("news");
    let run = td.run(&[OsStr::new("init"), dir.as_os_str()]);
    assert_code(&run, 0, "gleaner init DIR");
    let cfg = dir.join("gleaner.toml");
    assert!(cfg.is_file(), "{run}");
    assert!(dir.join("articles").is_dir(), "{run}");
    assert!(dir.join("state").is_dir(), "{run}");
    // It says what to do next.
    for n in [
        "[[feed]]",
        "gleaner check --config",
        "gleaner fetch --config",
    ] {
        assert!(run.stdout.contains(n), "stdout should mention {n:?}\n{run}");
    }
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("# [[feed]]"),
        "a commented feed example\n{text}"
    );
    assert!(!text.contains("\n[[feed]]"), "no feed enabled\n{text}");
    assert!(text.contains("output_dir = \"articles\""), "{text}");

    // It checks clean, and says there are no feeds yet.
    let check = run_cfg(&td, "check", &cfg);
    assert_code(&check, 0, "check of the starter config");
    assert!(
        check
            .stdout
            .contains(&*dir.join("articles").to_string_lossy()),
        "{check}"
    );
    assert!(check.stderr.contains("no [[feed]] tables yet"), "{check}");
}

#[test]
fn init_refuses_to_overwrite_an_existing_config() {
    let td = TestDir::new();
    let cfg = td.write_config_text("# mine\n");
    let run = td.run(&[OsStr::new("init"), td.conf_dir.as_os_str()]);
    assert_code(&run, 2, "init over an existing config");
    assert!(run.stderr.contains("already exists"), "{run}");
    assert!(run.stderr.contains("not overwriting"), "{run}");
    assert_hint(&run, &["gleaner check --config"]);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "# mine\n");
    assert!(
        !td.conf_dir.join("articles").exists(),
        "a refusal creates nothing"
    );
}

#[test]
fn init_defaults_to_the_current_directory() {
    let td = TestDir::new();
    let run = td.run(&["init"]);
    assert_code(&run, 0, "gleaner init");
    assert!(td.cwd.join("gleaner.toml").is_file(), "{run}");
    assert!(td.cwd.join("state").is_dir(), "{run}");
}

#[test]
fn init_then_one_feed_then_fetch_writes_the_story() {
    let td = TestDir::new();
    let dir = td.root.join("news");
    assert_code(&td.run(&[OsStr::new("init"), dir.as_os_str()]), 0, "init");

    // A local feed: as a newcomer would point at a saved feed.
    let page = td.write_file(
        "news/pages/bridge.html",
        article_page("Harbour bridge reopens", &paragraphs(0), None),
    );
    let link = format!("file://{}", page.display());
    td.write_file(
        "news/feeds/local.rss",
        rss(
            "Local",
            "file:///",
            &[Item::new(
                "Harbour bridge reopens",
                &link,
                utc("2024-03-05T10:00:00Z"),
            )],
        ),
    );
    let cfg = dir.join("gleaner.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[[feed]]\nname = \"local\"\nurl  = \"feeds/local.rss\"\n");
    std::fs::write(&cfg, text).unwrap();

    let run = run_cfg(&td, "fetch", &cfg);
    assert_code(&run, 0, "fetch after init + one feed");
    let txts: Vec<_> = walk_files(&dir.join("articles"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    assert_eq!(txts.len(), 1, "one story under articles/\n{run}");
    let story = std::fs::read_to_string(&txts[0]).unwrap();
    assert!(story.starts_with("Harbour bridge reopens\n"), "{story}");
}

// ---- missing or unreadable config ----------------------------------------

#[test]
fn missing_config_suggests_init_and_config_flag() {
    let td = TestDir::new();
    let missing = td.root.join("nope/gleaner.toml");
    for cmd in ["fetch", "check", "run", "status"] {
        let run = run_cfg(&td, cmd, &missing);
        assert_code(&run, 2, &format!("{cmd} with a missing config"));
        assert!(run.stderr.contains(&*missing.to_string_lossy()), "{run}");
        assert_hint(&run, &["gleaner init", "--config"]);
    }
}

#[test]
fn missing_default_config_names_the_default_and_the_flag() {
    if Path::new("/etc/gleaner/gleaner.toml").exists() {
        eprintln!("skipped: /etc/gleaner/gleaner.toml exists on this machine");
        return;
    }
    let td = TestDir::new();
    let run = td.run(&["check"]);
    assert_code(
        &run,
        2,
        "check with no --config and no /etc/gleaner/gleaner.toml",
    );
    assert_hint(
        &run,
        &["/etc/gleaner/gleaner.toml", "--config", "gleaner init"],
    );
}

#[test]
fn config_that_is_a_directory_says_pass_the_file() {
    let td = TestDir::new();
    let run = run_cfg(&td, "check", &td.conf_dir);
    assert_code(&run, 2, "--config DIR");
    assert_hint(&run, &["gleaner.toml"]);
}

// ---- unusable state_dir / output_dir --------------------------------------

#[test]
fn state_dir_that_is_a_file_names_key_file_and_fix() {
    let td = TestDir::new();
    td.write_file("conf/state", "not a directory");
    let cfg = td.write_config(&[("alpha", "http://127.0.0.1:9/feed.xml")]);
    for cmd in ["fetch", "status"] {
        let run = run_cfg(&td, cmd, &cfg);
        assert_code(&run, 2, &format!("{cmd} with state_dir a file"));
        assert_hint(
            &run,
            &[
                "state_dir",
                &*cfg.to_string_lossy(),
                "exists but is not a directory",
            ],
        );
    }
}

#[test]
fn state_dir_below_a_file_names_key_file_and_fix() {
    let td = TestDir::new();
    td.write_file("conf/blocker", "x");
    let cfg = td.write_config_text(
        "output_dir = \"out\"\nstate_dir = \"blocker/state\"\n\n[[feed]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/f.xml\"\n",
    );
    let run = run_cfg(&td, "fetch", &cfg);
    assert_code(&run, 2, "state_dir below a file");
    assert_hint(&run, &["state_dir", "not a directory", "fix the path"]);
}

#[test]
fn output_dir_that_is_a_file_names_key_and_fix() {
    let td = TestDir::new();
    td.write_file("conf/out", "x");
    let cfg = td.write_config(&[("alpha", "http://127.0.0.1:9/feed.xml")]);
    let run = run_cfg(&td, "fetch", &cfg);
    assert_code(&run, 2, "output_dir a file");
    assert_hint(&run, &["output_dir", "exists but is not a directory"]);
}

#[test]
fn state_dir_this_user_cannot_create_says_how_to_fix_it() {
    let td = TestDir::new();
    // The config dir is not writable by the user gleaner runs as, so
    // `state` cannot be created in it; output_dir is ready and writable.
    let out = td.out_dir();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = td.write_config(&[("alpha", "http://127.0.0.1:9/feed.xml")]);
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&td.conf_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let state = td.state_dir();
    for cmd in ["fetch", "run"] {
        let Some(run) = run_unprivileged(
            &td,
            &[OsStr::new(cmd), OsStr::new("--config"), cfg.as_os_str()],
        ) else {
            return;
        };
        assert_code(&run, 2, &format!("{cmd} with a state_dir it cannot create"));
        assert!(run.stderr.contains("Permission denied"), "{run}");
        assert_hint(
            &run,
            &[
                "this user cannot create or write",
                &format!("sudo mkdir -p {}", state.display()),
                "chown",
                &format!("set state_dir in {}", cfg.display()),
            ],
        );
        assert!(!state.exists(), "{run}");
    }
    std::fs::set_permissions(&td.conf_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---- no feeds ------------------------------------------------------------

#[test]
fn status_with_no_feeds_prints_a_hint_not_an_empty_table() {
    let td = TestDir::new();
    let cfg = td.write_config(&[]);
    let run = run_cfg(&td, "status", &cfg);
    assert_code(&run, 0, "status with no feeds");
    assert!(run.stdout.is_empty(), "no table header for no feeds\n{run}");
    assert_hint(
        &run,
        &[
            "no [[feed]] tables yet",
            "no feed to show",
            "[[feed]]",
            "url",
        ],
    );
}

/// A `gleaner run` with stderr in `log`; killed if still alive when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(td: &TestDir, log: PathBuf, env: &[(&str, String)]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(td.config_path())
            .current_dir(&td.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
            .env_remove("GLEANER_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC");
        loopback_only(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().expect("spawn gleaner run"),
            log,
        }
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn wait_for(&mut self, what: &str, mut cond: impl FnMut(&str) -> bool) {
        let start = Instant::now();
        loop {
            let log = self.log();
            if cond(&log) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("gleaner run exited ({st}) before {what}\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit code (bounded wait).
    fn stop(mut self) -> Option<i32> {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed\n{}", self.log());
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_with_no_feeds_says_so_idles_and_stops_cleanly() {
    let td = TestDir::new();
    let cfg = td.write_config(&[]);
    let log = td.root.join("run.log");
    std::fs::write(&log, "").unwrap();
    // At the default log level: what a fresh package install shows.
    let mut d = Daemon::spawn(&td, log, &[]);
    d.wait_for("the no-feeds message", |l| {
        l.contains("no [[feed]] tables yet")
    });
    let log = d.log();
    assert!(
        log.contains(&*cfg.to_string_lossy()),
        "names the config\n{log}"
    );
    assert!(log.contains("idling"), "{log}");
    assert!(log.contains("systemctl reload gleaner"), "{log}");
    // Idling, not exiting: a service with no feeds must not crash-loop.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.child.try_wait().unwrap().is_none(), "exited\n{}", d.log());
    assert_eq!(d.stop(), Some(0));
}

// ---- logs under systemd -------------------------------------------------------

/// Fast schedule: every feed polled about once a second.
const FAST: &str =
    "\n[schedule]\ninterval = \"1s\"\nmin_interval = \"1s\"\nmax_interval = \"1s\"\n\
error_backoff = \"1s\"\nmax_backoff = \"1s\"\nspread = \"0s\"\njitter = 0.0\nadaptive = false\n";

/// The non-empty lines of `log`.
fn lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn under_the_journal_lines_carry_priorities_and_no_timestamp() {
    let server = TestServer::start();
    let td = TestDir::new();
    let page = server.url("/p/1.html");
    let feed = rss(
        "Good",
        &server.url("/"),
        &[Item::new(
            "Bridge reopens",
            &page,
            utc("2024-03-05T10:00:00Z"),
        )],
    );
    server.route(
        "/good.rss",
        crate::common::server::conditional(
            Response::rss(feed),
            "\"v1\"",
            "Tue, 05 Mar 2024 10:00:00 GMT",
        ),
    );
    server.route_fixed(
        "/p/1.html",
        Response::html(article_page("Bridge reopens", &paragraphs(0), None)),
    );
    server.route_fixed("/bad.rss", Response::status(500));
    let mut text = TestDir::config_text(&[
        ("good", &server.url("/good.rss")),
        ("bad", &server.url("/bad.rss")),
    ]);
    text.push_str(FAST);
    td.write_config_text(&text);

    // stderr is this file, and JOURNAL_STREAM names it, as systemd does.
    let log = td.root.join("journal.log");
    std::fs::write(&log, "").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut d = Daemon::spawn(&td, log, &[("JOURNAL_STREAM", stream)]);
    d.wait_for("the story, the warning and three more polls of good", |l| {
        l.contains("feed done") && l.contains("feed failed") && server.hits("/good.rss") >= 4
    });
    let steady = d.log();
    assert_eq!(d.stop(), Some(0));
    let log = std::fs::read_to_string(td.root.join("journal.log")).unwrap();
    let all = lines(&log);
    assert!(!all.is_empty());
    for l in &all {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| l.starts_with(p)),
            "every line starts with a priority: {l:?}\n{log}"
        );
        // No timestamp: the journal adds its own.
        assert!(
            !l[3..].trim_start().starts_with(char::is_numeric),
            "{l:?}\n{log}"
        );
    }
    let with = |needle: &str| all.iter().find(|l| l.contains(needle)).copied();
    assert!(
        with("daemon started").is_some_and(|l| l.starts_with("<6>")),
        "{log}"
    );
    assert!(
        with("feed done").is_some_and(|l| l.starts_with("<6>")),
        "{log}"
    );
    let warn = with("feed failed").unwrap();
    assert!(warn.starts_with("<4>"), "{log}");
    assert!(
        warn.contains("feed=bad"),
        "the warning names its feed\n{log}"
    );
    // Default level for `run` is info, and the steady state (304s, a feed
    // failing again) adds nothing: only start, the story, the first failure.
    assert!(!log.contains("DEBUG") && !log.contains("<7>"), "{log}");
    let polls_lines = lines(&steady).len();
    assert!(
        polls_lines <= 4,
        "steady state must be quiet at info ({} polls of good, {} of bad):\n{steady}",
        server.hits("/good.rss"),
        server.hits("/bad.rss")
    );

    // The same variable with stderr elsewhere (a child whose stderr was
    // redirected inherits it): plain lines with a timestamp.
    let other = td.root.join("other.log");
    std::fs::write(&other, "").unwrap();
    let meta = std::fs::metadata(td.root.join("journal.log")).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut d = Daemon::spawn(&td, other, &[("JOURNAL_STREAM", stream)]);
    d.wait_for("start", |l| l.contains("daemon started"));
    assert_eq!(d.stop(), Some(0));
    let log = std::fs::read_to_string(td.root.join("other.log")).unwrap();
    for l in lines(&log) {
        assert!(!l.starts_with('<'), "{l:?}\n{log}");
        assert!(l.starts_with(char::is_numeric), "timestamped: {l:?}\n{log}");
    }
}

#[test]
fn fetch_with_no_feeds_exits_0_and_shows_a_feed_stanza() {
    let td = TestDir::new();
    let cfg = td.write_config(&[]);
    let run = run_cfg(&td, "fetch", &cfg);
    // A config without feeds is valid (the packaged one has none): not an error.
    assert_code(&run, 0, "fetch with no feeds");
    assert!(
        run.stdout.is_empty(),
        "no summary table for no feeds\n{run}"
    );
    assert_hint(
        &run,
        &["no [[feed]] tables yet", "[[feed]]", "url", "gleaner check"],
    );
}

// ---- typos in keys and values ----------------------------------------------

fn check_text(text: &str) -> RunResult {
    let td = TestDir::new();
    let cfg = td.write_config_text(text);
    run_cfg(&td, "check", &cfg)
}

#[test]
fn typo_in_a_table_key_suggests_the_key() {
    let run =
        check_text("output_dir = \"out\"\nstate_dir = \"state\"\n\n[fetch]\nconcurency = 8\n");
    assert_code(&run, 2, "typo'd key");
    assert!(
        run.stderr.contains("gleaner.toml:5:1"),
        "file:line:col\n{run}"
    );
    assert!(run.stderr.contains("did you mean `concurrency`?"), "{run}");
}

#[test]
fn typo_in_a_feed_key_suggests_the_key() {
    let run = check_text(
        "output_dir = \"out\"\nstate_dir = \"state\"\n\n[[feed]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/f.xml\"\nintervl = \"10m\"\n",
    );
    assert_code(&run, 2, "typo'd feed key");
    assert!(run.stderr.contains("gleaner.toml:7"), "{run}");
    assert!(run.stderr.contains("did you mean `interval`?"), "{run}");
}

#[test]
fn typo_in_a_table_name_suggests_the_table() {
    let run =
        check_text("output_dir = \"out\"\nstate_dir = \"state\"\n\n[[feeds]]\nname = \"a\"\n");
    assert_code(&run, 2, "[[feeds]]");
    assert!(run.stderr.contains("gleaner.toml:4"), "{run}");
    assert!(run.stderr.contains("did you mean `feed`?"), "{run}");
}

#[test]
fn typo_in_a_value_suggests_the_value() {
    let run = check_text(
        "output_dir = \"out\"\nstate_dir = \"state\"\n\n[fetch]\nallow_private = \"alway\"\n",
    );
    assert_code(&run, 2, "allow_private = alway");
    assert!(run.stderr.contains("gleaner.toml:5"), "{run}");
    assert!(run.stderr.contains("allow_private"), "{run}");
    assert!(run.stderr.contains("did you mean `always`?"), "{run}");
}

#[test]
fn key_above_its_table_says_which_table() {
    let run = check_text("output_dir = \"out\"\nstate_dir = \"state\"\ntimeout = \"5s\"\n");
    assert_code(&run, 2, "timeout at top level");
    assert!(run.stderr.contains("gleaner.toml:3:1"), "{run}");
    assert!(run.stderr.contains("[fetch]"), "{run}");

    let run = check_text(
        "output_dir = \"out\"\nstate_dir = \"state\"\nname = \"a\"\nurl = \"http://127.0.0.1:9/f.xml\"\n",
    );
    assert_code(&run, 2, "feed keys without [[feed]]");
    assert!(run.stderr.contains("[[feed]]"), "{run}");
}

#[test]
fn unrelated_unknown_key_gets_no_false_suggestion() {
    let run = check_text("output_dir = \"out\"\nstate_dir = \"state\"\n\n[fetch]\nwibble = 1\n");
    assert_code(&run, 2, "unknown key");
    assert!(run.stderr.contains("wibble"), "{run}");
    assert!(!run.stderr.contains("did you mean"), "{run}");
}

// ---- help, completions, man pages -------------------------------------------

#[test]
fn help_has_a_quick_start_and_every_command_has_examples() {
    let td = TestDir::new();
    let top = td.run(&["--help"]);
    assert_code(&top, 0, "--help");
    assert!(top.stdout.contains("Quick start:"), "{top}");
    assert!(top.stdout.contains("gleaner init"), "{top}");
    assert!(!top.stdout.contains("\n  man "), "`man` is hidden\n{top}");
    for cmd in [
        "run",
        "status",
        "fetch",
        "extract",
        "check",
        "init",
        "completions",
    ] {
        for flag in ["-h", "--help"] {
            let run = td.run(&[cmd, flag]);
            assert_code(&run, 0, &format!("{cmd} {flag}"));
            assert!(
                run.stdout.contains("Examples:\n  gleaner ")
                    || run.stdout.contains("Examples:\n  GLEANER_LOG"),
                "`gleaner {cmd} {flag}` should show examples\n{run}"
            );
        }
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let td = TestDir::new();
    for (shell, marker) in [
        ("bash", "complete -F _gleaner"),
        ("zsh", "#compdef gleaner"),
        ("fish", "complete -c gleaner"),
    ] {
        let run = td.run(&["completions", shell]);
        assert_code(&run, 0, shell);
        assert!(run.stdout.contains(marker), "{shell}: {marker:?}\n{run}");
        assert!(run.stdout.contains("init"), "{shell} knows `init`\n{run}");
        assert!(
            !run.stdout.contains("'man'") && !run.stdout.contains(" man "),
            "{shell}: the hidden `man` is not offered\n{run}"
        );
    }
    // The bash script is valid bash.
    let bash = td.run(&["completions", "bash"]);
    let script = td.write_file("gleaner.bash", bash.stdout.as_bytes());
    if let Ok(out) = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
    {
        assert!(
            out.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bad = td.run(&["completions", "tcsh"]);
    assert_code(&bad, 2, "unknown shell");
}

#[test]
fn man_pages_for_gleaner_and_each_command() {
    let td = TestDir::new();
    let page = td.run(&["man"]);
    assert_code(&page, 0, "gleaner man");
    for n in [
        ".TH gleaner 1",
        ".SH EXAMPLES",
        ".SH FILES",
        ".SH EXIT STATUS",
    ] {
        assert!(page.stdout.contains(n), "{n:?}\n{page}");
    }
    let dir = td.root.join("man");
    let run = td.run(&[OsStr::new("man"), OsStr::new("--out-dir"), dir.as_os_str()]);
    assert_code(&run, 0, "gleaner man --out-dir");
    for cmd in [
        "", "-run", "-fetch", "-check", "-init", "-status", "-extract",
    ] {
        let p = dir.join(format!("gleaner{cmd}.1"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(text.contains(".SH SYNOPSIS"), "{}", p.display());
    }
    assert!(
        !dir.join("gleaner-man.1").exists(),
        "no page for the hidden command"
    );
}

// ---- reading the articles -------------------------------------------------------

/// Story files get the mode the umask gives an ordinary file (the packaged
/// unit's UMask=0027: readable by the service's group), not tempfile's
/// 0600, so the README's "add readers to the group" works.
#[test]
fn stories_are_created_per_the_umask_so_a_group_can_read_them() {
    let td = TestDir::new();
    let page = td.write_file(
        "pages/bridge.html",
        article_page("Harbour bridge reopens", &paragraphs(0), None),
    );
    let link = format!("file://{}", page.display());
    let feed = td.write_file(
        "conf/local.rss",
        rss(
            "Local",
            "file:///",
            &[Item::new(
                "Harbour bridge reopens",
                &link,
                utc("2024-03-05T10:00:00Z"),
            )],
        ),
    );
    let cfg = td.write_config(&[("local", &*feed.to_string_lossy())]);
    let script = format!(
        "umask 027 && exec '{BIN}' fetch --config '{}'",
        cfg.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&td.cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<PathBuf> = walk_files(&td.out_dir());
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        let mode = std::fs::metadata(&f).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}: {mode:o}", f.display());
    }
}

/// At the default level (warnings only for `fetch`), a warning still names
/// the feed and URL it is about.
#[test]
fn fetch_warnings_at_the_default_level_name_their_feed() {
    let server = TestServer::start();
    let td = TestDir::new();
    server.route_fixed("/broken.rss", Response::status(500));
    let url = server.url("/broken.rss");
    let cfg = td.write_config(&[("broken", &url)]);
    let mut cmd = Command::new(BIN);
    cmd.args(["fetch", "--config"])
        .arg(&cfg)
        .current_dir(&td.cwd)
        .env_remove("GLEANER_LOG")
        .env_remove("JOURNAL_STREAM");
    loopback_only(&mut cmd);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warn = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("feed failed"))
        .unwrap_or_else(|| panic!("no warning\n{stderr}"));
    assert!(warn.contains("feed=broken"), "{warn}");
    assert!(warn.contains(&format!("url={url}")), "{warn}");
    assert!(
        !stderr.contains(" INFO "),
        "fetch logs warnings only\n{stderr}"
    );
}
