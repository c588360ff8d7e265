//! `gleaner run --config FILE`: the daemon, driven by real signals.
//!
//! Each test starts the binary in the background against a 127.0.0.1:0
//! server with intervals of a second, signals it with `kill`, and waits with
//! a hard bound, so a hung daemon fails the test in seconds instead of
//! hanging the suite (the child is killed when its handle drops).

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;

/// Bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

/// Fast schedule for tests: every feed polled about once a second.
const FAST: &str =
    "\n[schedule]\ninterval = \"1s\"\nmin_interval = \"1s\"\nmax_interval = \"2s\"\n\
error_backoff = \"1s\"\nmax_backoff = \"2s\"\nspread = \"0s\"\njitter = 0.0\nadaptive = false\n";

fn config(feeds: &[(&str, &str)], grace: &str) -> String {
    let base = TestDir::config_text(&[]);
    let mut s = format!("{base}{FAST}\n[daemon]\nshutdown_grace = \"{grace}\"\n");
    for (name, url) in feeds {
        s.push_str(&format!("\n[[feed]]\nname = \"{name}\"\nurl = \"{url}\"\n"));
    }
    s
}

/// A running `gleaner run`; killed if still alive when dropped.
struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    fn start(td: &TestDir, env: &[(&str, &str)]) -> Daemon {
        let (child, stderr) = td.spawn_daemon("info", env);
        Daemon { child, stderr }
    }

    fn signal(&self, sig: &str) {
        assert!(self.try_signal(sig), "kill -{sig} failed\n{}", self.log());
    }

    fn try_signal(&self, sig: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Exit code after `sig`, within `WAIT`.
    fn stop(mut self, sig: &str) -> (Option<i32>, String) {
        // It may already be on its way out after an earlier signal.
        self.try_signal(sig);
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code(), self.log());
            }
            assert!(
                start.elapsed() < WAIT,
                "daemon did not exit within {WAIT:?} of SIG{sig}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms until true; panics with `what` and the log after `WAIT`.
fn wait_for(what: &str, d: &Daemon, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for: {what}\n--- daemon log ---\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walk_files(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".gleaner-tmp-"))
        })
        .collect()
}

fn mtimes(td: &TestDir) -> BTreeMap<PathBuf, SystemTime> {
    walk_files(&td.out_dir())
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, m)
        })
        .collect()
}

/// Pages that hang: `delay` while `on` is set; `started` counts requests
/// that began (the server logs a request only once it is answered).
#[derive(Clone, Default)]
struct Slow {
    on: Arc<AtomicBool>,
    started: Arc<AtomicUsize>,
    delay: Duration,
}

/// Serves a feed of `n` articles under `/<feed>/`; pages whose index is in
/// `slow` behave as `slowness` says. Returns the titles.
fn serve_feed(
    server: &TestServer,
    feed: &str,
    first_body: usize,
    n: usize,
    slow: &[usize],
    slowness: &Slow,
) -> Vec<String> {
    let mut items = Vec::new();
    let mut titles = Vec::new();
    for i in 0..n {
        let title = format!("{feed} story number {i} about the council budget");
        let path = format!("/{feed}/story-{i}.html");
        let page = article_page(
            &title,
            &paragraphs(first_body + i),
            Some(&server.url(&path)),
        );
        let is_slow = slow.contains(&i);
        let slowness = slowness.clone();
        server.route(
            &path,
            Arc::new(move |_req: &Request, _n: usize| {
                if is_slow && slowness.on.load(Ordering::SeqCst) {
                    slowness.started.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(slowness.delay);
                }
                Response::html(page.clone())
            }),
        );
        items.push(Item::new(
            &title,
            &server.url(&path),
            utc(&format!("2024-03-0{}T10:00:00Z", 1 + i % 9)),
        ));
        titles.push(title);
    }
    server.route_fixed(
        &format!("/{feed}.rss"),
        Response::rss(rss(feed, &server.url("/"), &items)),
    );
    titles
}

#[test]
fn sigterm_during_a_pass_exits_0_and_restart_completes_without_rewriting() {
    let server = TestServer::start();
    let slow = Slow {
        on: Arc::new(AtomicBool::new(true)),
        started: Arc::default(),
        delay: Duration::from_secs(5),
    };
    let mut titles = serve_feed(&server, "fast", 0, 3, &[], &slow);
    // The slow feed's pages hang for 5 s: the 300 ms grace period runs out on them.
    titles.extend(serve_feed(&server, "slow", 3, 3, &[0, 1, 2], &slow));
    let td = TestDir::new();
    td.write_config_text(&config(
        &[
            ("fast", &server.url("/fast.rss")),
            ("slow", &server.url("/slow.rss")),
        ],
        "300ms",
    ));

    let d = Daemon::start(&td, &[]);
    wait_for("the slow pages to be requested", &d, || {
        slow.started.load(Ordering::SeqCst) == 3
    });
    wait_for("the fast pages to be written", &d, || {
        td.output_files("txt").len() == 3
    });
    let started = Instant::now();
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "SIGTERM must exit 0\n{log}");
    assert!(
        log.contains("abandoning"),
        "the slow feed outlives the grace period\n{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the grace period (300ms) must bound the stop, took {:?}\n{log}",
        started.elapsed()
    );
    assert!(
        temp_files(&td.out_dir()).is_empty(),
        "partial files left: {:?}",
        temp_files(&td.out_dir())
    );
    let first = td.stories();
    assert_eq!(first.len(), 3, "only the fast stories are complete\n{log}");
    let before = mtimes(&td);

    // Restart with fast pages: the rest is written, nothing is written twice.
    slow.on.store(false, Ordering::SeqCst);
    let d = Daemon::start(&td, &[]);
    wait_for("all six stories", &d, || td.output_files("txt").len() >= 6);
    // A few more polls must not add anything.
    let polls = server.hits("/slow.rss");
    wait_for("two more polls", &d, || {
        server.hits("/slow.rss") >= polls + 2
    });
    let (code, log) = d.stop("INT");
    assert_eq!(code, Some(0), "SIGINT must exit 0\n{log}");
    let all = td.stories();
    assert_eq!(all.len(), 6, "{:#?}", td.output_files("txt"));
    let mut got: Vec<String> = all
        .iter()
        .map(|s| s.json["title"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want = titles.clone();
    want.sort();
    assert_eq!(got, want);
    let after = mtimes(&td);
    for (path, m) in &before {
        assert_eq!(after.get(path), Some(m), "{} was rewritten", path.display());
    }
    assert!(temp_files(&td.out_dir()).is_empty());
}

#[test]
fn sighup_adds_and_removes_feeds_and_rejects_a_bad_config() {
    let server = TestServer::start();
    let off = Slow::default();
    serve_feed(&server, "alpha", 0, 1, &[], &off);
    serve_feed(&server, "beta", 4, 1, &[], &off);
    let td = TestDir::new();
    let alpha = ("alpha", server.url("/alpha.rss"));
    let beta = ("beta", server.url("/beta.rss"));
    td.write_config_text(&config(&[(alpha.0, &alpha.1)], "5s"));

    let mut d = Daemon::start(&td, &[]);
    wait_for("alpha's story", &d, || td.output_files("txt").len() == 1);
    assert_eq!(server.hits("/beta.rss"), 0);

    // Added feed starts.
    td.write_config_text(&config(&[(alpha.0, &alpha.1), (beta.0, &beta.1)], "5s"));
    d.signal("HUP");
    wait_for("beta's story after SIGHUP", &d, || {
        td.output_files("txt").len() == 2
    });
    assert!(d.log().contains("config reloaded"), "{}", d.log());

    // Removed feed stops.
    td.write_config_text(&config(&[(beta.0, &beta.1)], "5s"));
    d.signal("HUP");
    wait_for("the second reload", &d, || {
        d.log().matches("config reloaded").count() == 2
    });
    std::thread::sleep(Duration::from_millis(300)); // a poll in flight may finish
    let alpha_polls = server.hits("/alpha.rss");
    let beta_polls = server.hits("/beta.rss");
    wait_for("beta to be polled twice more", &d, || {
        server.hits("/beta.rss") >= beta_polls + 2
    });
    assert_eq!(
        server.hits("/alpha.rss"),
        alpha_polls,
        "a removed feed must not be polled"
    );

    // A bad config is rejected, loudly, and the running one stays.
    td.write_config_text(
        "output_dir = \"out\"\nstate_dir = \"state\"\n[schedule]\ninterval = \"soon\"\n",
    );
    d.signal("HUP");
    wait_for("the rejection", &d, || d.log().contains("reload rejected"));
    let log = d.log();
    assert!(
        log.contains("gleaner.toml:4:"),
        "the error names file and line\n{log}"
    );
    assert!(log.contains("interval"), "the error names the key\n{log}");
    let beta_polls = server.hits("/beta.rss");
    wait_for("beta still polled under the old config", &d, || {
        server.hits("/beta.rss") >= beta_polls + 2
    });
    assert!(d.alive());
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(td.output_files("txt").len(), 2);
}

#[test]
fn sd_notify_ready_watchdog_reloading_and_stopping() {
    let server = TestServer::start();
    let off = Slow::default();
    serve_feed(&server, "news", 2, 1, &[], &off);
    let td = TestDir::new();
    td.write_config_text(&config(&[("news", &server.url("/news.rss"))], "5s"));
    let sock_path = td.root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let recv_until = |what: &str, seen: &mut Vec<String>, d: &Daemon| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if seen.iter().any(|m| m.lines().any(|l| l == what)) {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "no {what} on NOTIFY_SOCKET; got {seen:?}\n{}",
                d.log()
            );
            if let Ok(n) = sock.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };

    let d = Daemon::start(
        &td,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    recv_until("READY=1", &mut seen, &d);
    recv_until("WATCHDOG=1", &mut seen, &d);
    wait_for("the story", &d, || td.output_files("txt").len() == 1);
    assert!(
        seen.iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("1 feeds")),
        "{seen:?}"
    );
    seen.clear();
    d.signal("HUP");
    recv_until("RELOADING=1", &mut seen, &d);
    recv_until("READY=1", &mut seen, &d);
    let reloading = seen.iter().position(|m| m.contains("RELOADING=1")).unwrap();
    let ready = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    assert!(reloading < ready, "{seen:?}");
    assert!(
        seen[reloading].contains("MONOTONIC_USEC="),
        "RELOADING=1 carries MONOTONIC_USEC: {seen:?}"
    );
    // A rejected reload still ends in READY=1, and STATUS= says why.
    td.write_config_text("output_dir = \"out\"\nstate_dir = \"state\"\nbogus = 1\n");
    seen.clear();
    d.signal("HUP");
    recv_until("RELOADING=1", &mut seen, &d);
    recv_until("READY=1", &mut seen, &d);
    let start = Instant::now();
    while !seen.iter().any(|m| m.contains("config reload rejected")) {
        assert!(
            start.elapsed() < WAIT,
            "no STATUS= about the rejected reload: {seen:?}"
        );
        let mut buf = [0u8; 4096];
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    d.signal("TERM");
    recv_until("STOPPING=1", &mut seen, &d);
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn status_reads_the_store_or_the_running_daemons_snapshot() {
    let server = TestServer::start();
    let off = Slow::default();
    serve_feed(&server, "ok-feed", 5, 1, &[], &off);
    server.route_fixed("/broken.rss", Response::status(500));
    let td = TestDir::new();
    td.write_config_text(&config(
        &[
            ("ok-feed", &server.url("/ok-feed.rss")),
            ("broken", &server.url("/broken.rss")),
        ],
        "5s",
    ));
    let status = || td.run(&["status", "--config", td.config_path().to_str().unwrap()]);

    let before = status();
    assert_eq!(before.code, Some(0), "{before}");
    assert!(before.stdout.contains("no state yet"), "{before}");
    assert!(
        before.stdout.contains("ok-feed") && before.stdout.contains("never"),
        "{before}"
    );

    let d = Daemon::start(&td, &[]);
    wait_for("the story", &d, || td.output_files("txt").len() == 1);
    wait_for("two failures of the broken feed", &d, || {
        server.hits("/broken.rss") >= 2
    });
    std::thread::sleep(Duration::from_millis(2500)); // a snapshot is at most 2 s old
    let live = status();
    assert_eq!(live.code, Some(0), "{live}");
    assert!(
        live.stdout.contains("is running and holds the state store"),
        "{live}"
    );
    // Columns are separated by two or more spaces; cells hold single ones.
    let cells = |out: &str, feed: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(&format!("{feed} ")))
            .unwrap_or_else(|| panic!("no line for {feed}:\n{out}"))
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    // feed, last success, next poll, items, failures, last error
    let broken = cells(&live.stdout, "broken");
    assert!(broken[5].contains("HTTP status 500"), "{live}");
    assert_eq!(cells(&live.stdout, "ok-feed")[3], "1", "items: {live}");

    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    let after = status();
    assert_eq!(after.code, Some(0), "{after}");
    assert!(after.stdout.contains("no gleaner running"), "{after}");
    let broken = cells(&after.stdout, "broken");
    assert!(broken[5].contains("HTTP status 500"), "{after}");
    let failures: u32 = broken[4].parse().unwrap();
    assert!(failures >= 2, "failures in a row: {after}");
    assert_eq!(broken[1], "never", "{after}");
    let ok = cells(&after.stdout, "ok-feed");
    assert_ne!(ok[1], "never", "{after}");
    assert_eq!((ok[3].as_str(), ok[4].as_str()), ("1", "0"), "{after}");
}

#[test]
fn retry_after_pauses_only_that_host() {
    let slow_host = TestServer::start();
    let other_host = TestServer::start();
    let off = Slow::default();
    serve_feed(&other_host, "other", 6, 1, &[], &off);
    serve_feed(&slow_host, "busy", 7, 1, &[], &off);
    // The first poll of "busy" is told to come back in 3 s.
    let feed = Response::rss(rss("busy", &slow_host.url("/"), &[]));
    slow_host.route(
        "/busy.rss",
        server::sequence(vec![Response::status(429).header("Retry-After", "3"), feed]),
    );
    let td = TestDir::new();
    td.write_config_text(&config(
        &[
            ("busy", &slow_host.url("/busy.rss")),
            ("other", &other_host.url("/other.rss")),
        ],
        "5s",
    ));
    let d = Daemon::start(&td, &[]);
    wait_for("the retry", &d, || slow_host.hits("/busy.rss") >= 2);
    let busy = slow_host.requests_for("/busy.rss");
    let gap = busy[1].at.duration_since(busy[0].at);
    assert!(
        gap >= Duration::from_millis(2900),
        "Retry-After: 3 must be honoured, retried after {gap:?}"
    );
    let other = other_host.requests_for("/other.rss");
    let during = other
        .iter()
        .filter(|r| r.at > busy[0].at && r.at < busy[1].at)
        .count();
    assert!(
        during >= 2,
        "another host must not wait: {during} polls during the pause"
    );
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
}

/// Requests to `server` that arrived strictly between `from` and `to`.
fn arrivals_between(server: &TestServer, from: Instant, to: Instant) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter(|r| r.at > from && r.at < to)
        .map(|r| r.target.clone())
        .collect()
}

#[test]
fn sighup_during_a_host_pause_keeps_the_pause() {
    let host = TestServer::start();
    let off = Slow::default();
    serve_feed(&host, "steady", 8, 1, &[], &off);
    let busy = Response::rss(rss("busy", &host.url("/"), &[]));
    host.route(
        "/busy.rss",
        server::sequence(vec![Response::status(503).header("Retry-After", "4"), busy]),
    );
    let td = TestDir::new();
    let text = config(
        &[
            ("busy", &host.url("/busy.rss")),
            ("steady", &host.url("/steady.rss")),
        ],
        "5s",
    );
    td.write_config_text(&text);
    let d = Daemon::start(&td, &[]);
    wait_for("the 503", &d, || {
        host.requests_for("/busy.rss")
            .iter()
            .any(|r| r.status == 503)
    });
    let paused_at = host.requests_for("/busy.rss")[0].at;
    // Reload (the same config, touched) while the host is paused.
    td.write_config_text(&text);
    d.signal("HUP");
    wait_for("the reload", &d, || d.log().contains("config reloaded"));
    let reloaded_at = Instant::now();
    assert!(
        reloaded_at < paused_at + Duration::from_millis(3000),
        "the reload came too late to test anything"
    );
    wait_for("the host again after the pause", &d, || {
        host.requests_for("/busy.rss").len() >= 2
    });
    // From a little after the 503: the first poll of "steady" may have been
    // on its way already.
    let during = arrivals_between(
        &host,
        paused_at + Duration::from_millis(300),
        paused_at + Duration::from_millis(3800),
    );
    assert!(
        during.is_empty(),
        "a reload must not forget the host's Retry-After pause: {during:?}\n{}",
        host.log_summary()
    );
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("config reloaded"), "{log}");
}

#[test]
fn retry_after_as_an_http_date_pauses_the_host_until_then() {
    let host = TestServer::start();
    let other = TestServer::start();
    let off = Slow::default();
    serve_feed(&host, "sibling", 9, 1, &[], &off);
    serve_feed(&other, "other", 10, 1, &[], &off);
    // The first poll is told to come back at a date 4 s ahead (whole
    // seconds, so the pause is 3-4 s from the answer).
    let until: Arc<std::sync::Mutex<Option<SystemTime>>> = Arc::default();
    let seen = until.clone();
    let feed = Response::rss(rss("dated", &host.url("/"), &[]));
    host.route(
        "/dated.rss",
        Arc::new(move |_req: &Request, n: usize| {
            if n > 1 {
                return feed.clone();
            }
            let at = SystemTime::now() + Duration::from_secs(4);
            *seen.lock().unwrap() = Some(at);
            let date = chrono::DateTime::<chrono::Utc>::from(at)
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            Response::status(503).header("Retry-After", &date)
        }),
    );
    let td = TestDir::new();
    td.write_config_text(&config(
        &[
            ("dated", &host.url("/dated.rss")),
            ("sibling", &host.url("/sibling.rss")),
            ("other", &other.url("/other.rss")),
        ],
        "5s",
    ));
    let d = Daemon::start(&td, &[]);
    wait_for("the retry", &d, || host.hits("/dated.rss") >= 2);
    let dated = host.requests_for("/dated.rss");
    let answered = dated[0].at;
    // The date has whole seconds: the pause ends 3 to 4 s after the answer.
    // From a little after it: the sibling's first poll may have been on its
    // way already.
    let during = arrivals_between(
        &host,
        answered + Duration::from_millis(300),
        answered + Duration::from_millis(2900),
    );
    assert!(
        during.is_empty(),
        "nothing may reach the host before its Retry-After date: {during:?}\n{}",
        host.log_summary()
    );
    let gap = dated[1].at.duration_since(answered);
    assert!(gap >= Duration::from_millis(2900), "retried after {gap:?}");
    let others = arrivals_between(&other, answered, dated[1].at);
    assert!(others.len() >= 2, "another host must not wait: {others:?}");
    assert!(until.lock().unwrap().is_some());
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn warnings_name_the_feed_at_the_default_log_level() {
    let host = TestServer::start();
    host.route_fixed("/broken.rss", Response::status(500));
    let td = TestDir::new();
    td.write_config_text(&config(&[("brokenfeed", &host.url("/broken.rss"))], "5s"));
    // `warn` is the filter when GLEANER_LOG is not set.
    let (child, stderr) = td.spawn_daemon("warn", &[]);
    let d = Daemon { child, stderr };
    wait_for("a warning", &d, || d.log().contains(" WARN "));
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    let warns: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(!warns.is_empty(), "{log}");
    for line in &warns {
        assert!(
            line.contains("brokenfeed") && line.contains("/broken.rss"),
            "a warning must say which feed and URL: {line}"
        );
    }
}

#[test]
fn sd_notify_status_counts_failing_feeds_from_each_poll() {
    let server = TestServer::start();
    let off = Slow::default();
    serve_feed(&server, "fine", 11, 1, &[], &off);
    let healed = Arc::new(AtomicBool::new(false));
    server.route(
        "/flaky.rss",
        server::switch(
            healed.clone(),
            Response::status(500),
            Response::rss(rss("flaky", &server.url("/"), &[])),
        ),
    );
    let td = TestDir::new();
    td.write_config_text(&config(
        &[
            ("fine", &server.url("/fine.rss")),
            ("flaky", &server.url("/flaky.rss")),
        ],
        "5s",
    ));
    let sock_path = td.root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let status_with = |what: &str, d: &Daemon| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        let mut last = String::new();
        loop {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with("STATUS=") {
                    if msg.contains(what) {
                        return;
                    }
                    last = msg;
                }
            }
            assert!(
                start.elapsed() < WAIT,
                "no STATUS= with {what:?}; last {last:?}\n{}",
                d.log()
            );
        }
    };
    let d = Daemon::start(&td, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    status_with("2 feeds", &d);
    status_with("1 failing", &d);
    healed.store(true, Ordering::SeqCst);
    wait_for("a good poll of flaky", &d, || {
        server
            .requests_for("/flaky.rss")
            .iter()
            .any(|r| r.status == 200)
    });
    status_with("0 failing", &d);
    let (code, log) = d.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
}
