//! Running gleaner for months: permanent redirects, 410 Gone, pages that
//! never load, log levels, the Prometheus endpoint and OPML import/export.
//!
//! Daemon tests start `gleaner run` against a 127.0.0.1:0 server with
//! second-long intervals and wait with hard bounds; the child is killed when
//! its handle drops, so a hung daemon fails a test instead of the suite.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::server::{conditional, sequence, switch};
use crate::common::testdir::{self, toml_str, BIN};
use crate::common::*;

/// Bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// Every feed polled about once a second; failures retried after 1 s, 2 s, 4 s, 4 s...
pub const FAST: &str =
    "\n[schedule]\ninterval = \"1s\"\nmin_interval = \"1s\"\nmax_interval = \"2s\"\n\
error_backoff = \"1s\"\nmax_backoff = \"4s\"\nspread = \"0s\"\njitter = 0.0\nadaptive = false\n";

/// A config: `extra` goes before the feeds (sections such as `[fetch]`).
pub fn config(extra: &str, feeds: &[(&str, &str)]) -> String {
    let mut s = format!("{}{extra}\n", TestDir::config_text(&[]));
    for (name, url) in feeds {
        s.push_str(&format!(
            "\n[[feed]]\nname = {}\nurl = {}\n",
            toml_str(name),
            toml_str(url)
        ));
    }
    s
}

/// A running `gleaner run`, logging at info to a file; killed on drop.
pub struct RunningDaemon {
    child: Child,
    log: PathBuf,
}

impl RunningDaemon {
    pub fn start(td: &TestDir, level: &str) -> RunningDaemon {
        let (child, log) = td.spawn_daemon(level, &[]);
        RunningDaemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code and the whole log.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code(), self.log());
            }
            assert!(
                start.elapsed() < WAIT,
                "daemon did not stop\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `cond` every 20 ms until true; panics with `what` and the log after `WAIT`.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for: {what}\n--- daemon log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `GLEANER_LOG=level`, returning (exit code, stdout, stderr).
pub fn run_logged(td: &TestDir, args: &[&str], level: &str) -> (Option<i32>, String, String) {
    let out = testdir::loopback_only(&mut Command::new(BIN))
        .args(args)
        .current_dir(&td.cwd)
        .env("GLEANER_LOG", level)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Serves `n` distinct articles under `/<feed>/story-<i>.html` (bodies from
/// `first_body` on) and returns their items.
pub fn serve_articles(server: &TestServer, feed: &str, first_body: usize, n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let title = format!("{feed} story {i} on the harbour works");
            let path = format!("/{feed}/story-{i}.html");
            let page = article_page(
                &title,
                &paragraphs(first_body + i),
                Some(&server.url(&path)),
            );
            server.route_fixed(&path, Response::html(page));
            Item::new(&title, &server.url(&path), utc("2024-03-04T10:00:00Z"))
        })
        .collect()
}

fn fetch(td: &TestDir, level: &str) -> (Option<i32>, String, String) {
    let cfg = td.config_path();
    run_logged(td, &["fetch", "--config", cfg.to_str().unwrap()], level)
}

#[test]
fn permanent_redirects_move_the_feed_until_the_config_changes() {
    let server = TestServer::start();
    let items = serve_articles(&server, "moved", 0, 1);
    let doc = Response::rss(rss("Moved", &server.url("/"), &items));
    server.route_fixed("/new.rss", doc.clone());
    server.route_fixed(
        "/old.rss",
        Response::status(301).header("Location", &server.url("/new.rss")),
    );
    // A temporary redirect does not move the feed.
    let temp_items = serve_articles(&server, "temp", 1, 1);
    server.route_fixed(
        "/temp-target.rss",
        Response::rss(rss("Temp", &server.url("/"), &temp_items)),
    );
    server.route_fixed(
        "/temp.rss",
        Response::status(302).header("Location", &server.url("/temp-target.rss")),
    );
    // 308 then 302: the feed moves to the 308's target only.
    server.route_fixed(
        "/chain.rss",
        Response::status(308).header("Location", &server.url("/chain-1.rss")),
    );
    server.route_fixed(
        "/chain-1.rss",
        Response::status(302).header("Location", &server.url("/new.rss")),
    );
    let td = TestDir::new();
    let feeds = [
        ("moved", server.url("/old.rss")),
        ("temp", server.url("/temp.rss")),
        ("chain", server.url("/chain.rss")),
    ];
    let list: Vec<(&str, &str)> = feeds.iter().map(|(n, u)| (*n, u.as_str())).collect();
    td.write_config_text(&config("", &list));

    let (code, out, log) = fetch(&td, "info");
    assert_eq!(code, Some(0), "{out}\n{log}");
    assert_eq!(td.output_files("txt").len(), 2, "{out}\n{log}");
    assert!(
        log.contains("feed moved permanently") && log.contains("/new.rss"),
        "the move is logged at info\n{log}"
    );
    assert_eq!(
        log.matches("feed moved permanently").count(),
        2,
        "moved and chain moved, temp did not\n{log}"
    );

    let (code, out, log) = fetch(&td, "info");
    assert_eq!(code, Some(0), "{out}\n{log}");
    assert_eq!(server.hits("/old.rss"), 1, "{}", server.log_summary());
    assert_eq!(server.hits("/new.rss"), 4, "{}", server.log_summary());
    assert_eq!(server.hits("/temp.rss"), 2, "302 keeps the URL");
    assert_eq!(server.hits("/chain.rss"), 1);
    assert_eq!(server.hits("/chain-1.rss"), 2, "moved to the 308's target");
    assert!(!log.contains("feed moved permanently"), "{log}");

    // The config is the user's: a new URL there wins over the stored move.
    server.route_fixed("/edited.rss", doc);
    let feeds = [("moved", server.url("/edited.rss"))];
    td.write_config_text(&config("", &[(feeds[0].0, &feeds[0].1)]));
    let (code, out, log) = fetch(&td, "info");
    assert_eq!(code, Some(0), "{out}\n{log}");
    assert_eq!(server.hits("/edited.rss"), 1, "{}", server.log_summary());
    assert_eq!(server.hits("/new.rss"), 4);
    assert!(log.contains("stored redirect no longer applies"), "{log}");
    // Going back to the old URL does not revive the forgotten move.
    let old = server.url("/old.rss");
    td.write_config_text(&config("", &[("moved", &old)]));
    fetch(&td, "info");
    assert_eq!(server.hits("/old.rss"), 2, "{}", server.log_summary());
}

#[test]
fn gone_feed_is_reported_loudly_and_polled_daily() {
    let server = TestServer::start();
    server.route_fixed("/gone.rss", Response::status(410));
    server.route_fixed("/broken.rss", Response::status(500));
    let td = TestDir::new();
    let gone = server.url("/gone.rss");
    let broken = server.url("/broken.rss");
    td.write_config_text(&config(FAST, &[("gone", &gone), ("broken", &broken)]));

    let (_, out, log) = fetch(&td, "warn");
    assert!(out.contains("HTTP status 410"), "{out}");
    assert!(
        log.contains("WARN") && log.contains("feed is gone (HTTP 410)"),
        "{log}"
    );

    let d = RunningDaemon::start(&td, "info");
    d.wait_for("three polls of the broken feed", || {
        server.hits("/broken.rss") >= 4
    });
    assert_eq!(
        server.hits("/gone.rss"),
        2,
        "a gone feed waits a day, not the error backoff\n{}",
        server.log_summary()
    );
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("feed is gone (HTTP 410)"), "{log}");
    let status = run_logged(
        &td,
        &["status", "--config", td.config_path().to_str().unwrap()],
        "warn",
    );
    let line = status
        .1
        .lines()
        .find(|l| l.starts_with("gone "))
        .unwrap_or_else(|| panic!("{}", status.1))
        .to_string();
    assert!(
        ["(in 21h)", "(in 22h)", "(in 23h)", "(in 24h)", "(in 25h)", "(in 26h)", "(in 1d)"]
            .iter()
            .any(|w| line.contains(w)),
        "next poll about a day away: {line}"
    );
}

#[test]
fn a_page_that_keeps_failing_is_given_up_and_the_feed_keeps_its_validators() {
    let server = TestServer::start();
    let mut items = serve_articles(&server, "coast", 2, 1);
    server.route_fixed("/coast/broken.html", Response::status(500));
    items.push(Item::new(
        "A page that never loads",
        &server.url("/coast/broken.html"),
        utc("2024-03-05T10:00:00Z"),
    ));
    server.route(
        "/coast.rss",
        conditional(
            Response::rss(rss("Coast", &server.url("/"), &items)),
            "\"coast-1\"",
            "Mon, 04 Mar 2024 12:00:00 GMT",
        ),
    );
    let td = TestDir::new();
    let url = server.url("/coast.rss");
    td.write_config_text(&config(
        &format!("{FAST}\n[fetch]\npage_attempts = 3\n"),
        &[("coast", &url)],
    ));

    let d = RunningDaemon::start(&td, "info");
    d.wait_for("the give-up", || d.log().contains("page given up"));
    d.wait_for("three 304s after the give-up", || {
        server
            .requests_for("/coast.rss")
            .iter()
            .filter(|r| r.status == 304)
            .count()
            >= 3
    });
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        server.hits("/coast/broken.html"),
        3,
        "page_attempts = 3\n{}",
        server.log_summary()
    );
    assert_eq!(server.hits("/coast/story-0.html"), 1);
    assert_eq!(td.output_files("txt").len(), 1);
    let statuses: Vec<u16> = server
        .requests_for("/coast.rss")
        .iter()
        .map(|r| r.status)
        .collect();
    // Re-read (200) while the page is retried, then 304 for good.
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 304), "{statuses:?}");
    assert_eq!(
        log.matches("page failed; retried at later polls").count(),
        1,
        "one warning for the first failure, not one per try\n{log}"
    );
    assert!(
        log.contains("page given up after 3 tries")
            && log.contains("/coast/broken.html")
            && log.contains(" WARN "),
        "{log}"
    );

    // A later one-shot pass reports nothing for it: given up stays given up.
    let (code, out, _) = fetch(&td, "warn");
    assert_eq!(code, Some(0));
    assert!(out.contains("not modified"), "{out}");
}

#[test]
fn one_shot_pass_reports_given_up_pages_in_the_summary() {
    let server = TestServer::start();
    server.route_fixed("/p/broken.html", Response::status(503));
    let items = vec![Item::new(
        "Broken",
        &server.url("/p/broken.html"),
        utc("2024-03-05T10:00:00Z"),
    )];
    server.route_fixed("/p.rss", Response::rss(rss("P", &server.url("/"), &items)));
    let td = TestDir::new();
    let url = server.url("/p.rss");
    td.write_config_text(&config("\n[fetch]\npage_attempts = 2\n", &[("p", &url)]));
    let (_, out, _) = fetch(&td, "warn");
    assert!(out.contains("1 item(s) failed, retried next pass"), "{out}");
    let (_, out, log) = fetch(&td, "warn");
    assert!(out.contains("1 page(s) given up"), "{out}");
    assert!(
        out.contains("given up after 2 tries: HTTP status 503"),
        "{out}"
    );
    assert!(log.contains("page given up"), "{log}");
    let (_, out, _) = fetch(&td, "warn");
    assert!(out.contains(" ok"), "{out}");
    assert_eq!(server.hits("/p/broken.html"), 2);
}

#[test]
fn failing_feed_warns_once_then_debug_until_it_recovers_and_304_is_quiet() {
    let server = TestServer::start();
    let healthy = Arc::new(AtomicBool::new(false));
    let items = serve_articles(&server, "flaky", 3, 1);
    server.route(
        "/flaky.rss",
        switch(
            Arc::clone(&healthy),
            Response::status(500),
            Response::rss(rss("Flaky", &server.url("/"), &items)),
        ),
    );
    let steady = serve_articles(&server, "steady", 4, 1);
    server.route(
        "/steady.rss",
        conditional(
            Response::rss(rss("Steady", &server.url("/"), &steady)),
            "\"s1\"",
            "Mon, 04 Mar 2024 12:00:00 GMT",
        ),
    );
    let td = TestDir::new();
    let (flaky, steady_url) = (server.url("/flaky.rss"), server.url("/steady.rss"));
    td.write_config_text(&config(FAST, &[("flaky", &flaky), ("steady", &steady_url)]));
    let d = RunningDaemon::start(&td, "info");
    d.wait_for("four failed polls", || server.hits("/flaky.rss") >= 4);
    d.wait_for("two 304s", || {
        server
            .requests_for("/steady.rss")
            .iter()
            .filter(|r| r.status == 304)
            .count()
            >= 2
    });
    healthy.store(true, Ordering::SeqCst);
    d.wait_for("the recovery", || td.output_files("txt").len() == 2);
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        log.matches("feed failed;").count(),
        1,
        "a failing feed warns once\n{log}"
    );
    assert!(!log.contains("feed still failing"), "that is debug\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(" INFO ") && l.contains("feed recovered") && l.contains("flaky")),
        "{log}"
    );
    assert!(!log.contains("not modified"), "a 304 is debug\n{log}");
}

/// `GET path` on `addr`; (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The value of the series `name` (labels included) in an exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

#[test]
fn metrics_endpoint_counts_polls_304s_errors_articles_and_latency() {
    let server = TestServer::start();
    let items = serve_articles(&server, "m", 5, 2);
    server.route(
        "/m.rss",
        conditional(
            Response::rss(rss("M", &server.url("/"), &items)),
            "\"m1\"",
            "Mon, 04 Mar 2024 12:00:00 GMT",
        ),
    );
    server.route(
        "/bad.rss",
        sequence(vec![Response::status(500), Response::status(500)]),
    );
    let td = TestDir::new();
    let (m, bad) = (server.url("/m.rss"), server.url("/bad.rss"));
    td.write_config_text(&config(
        &format!("{FAST}\n[daemon]\nmetrics_addr = \"127.0.0.1:0\"\n"),
        &[("m", &m), ("bad", &bad)],
    ));
    let d = RunningDaemon::start(&td, "info");
    let mut addr = String::new();
    d.wait_for("the metrics address in the log", || {
        let log = d.log();
        match log.split("serving Prometheus metrics at http://").nth(1) {
            Some(rest) => {
                addr = rest.split('/').next().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    d.wait_for("a 304", || {
        server
            .requests_for("/m.rss")
            .iter()
            .any(|r| r.status == 304)
    });
    std::thread::sleep(Duration::from_millis(200));
    let (status, text) = http_get(&addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(metric(&text, "gleaner_feed_polls_total") >= 3.0, "{text}");
    assert!(
        metric(&text, "gleaner_feed_not_modified_total") >= 1.0,
        "{text}"
    );
    assert!(metric(&text, "gleaner_feed_errors_total") >= 1.0, "{text}");
    assert_eq!(
        metric(&text, "gleaner_articles_written_total"),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "gleaner_duplicates_total{match=\"url\"}"),
        0.0
    );
    assert_eq!(metric(&text, "gleaner_feeds"), 2.0, "{text}");
    assert!(
        metric(&text, "gleaner_fetch_duration_seconds_count{kind=\"feed\"}") >= 3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "gleaner_fetch_duration_seconds_count{kind=\"page\"}"),
        2.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "gleaner_fetch_duration_seconds_bucket{kind=\"page\",le=\"+Inf\"}"
        ) == 2.0,
        "{text}"
    );
    assert!(text.contains("# TYPE gleaner_fetch_duration_seconds histogram"));
    assert_eq!(http_get(&addr, "/other").0, 404);
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "the endpoint stops with the daemon"
    );
}

#[test]
fn metrics_address_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let td = TestDir::new();
    td.write_config_text(&config(
        &format!("\n[daemon]\nmetrics_addr = \"{addr}\"\n"),
        &[],
    ));
    let (code, _, err) = run_logged(
        &td,
        &["run", "--config", td.config_path().to_str().unwrap()],
        "warn",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}")),
        "{err}"
    );
}

const OPML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Exported from another reader</title></head>
  <body>
    <outline text="World">
      <outline type="rss" text="World News" title="World News" xmlUrl="https://news.example/world.rss"/>
      <outline type="rss" text="World News" xmlUrl="https://other.example/world.xml"/>
    </outline>
    <outline type="rss" text="Already there" xmlUrl="https://kept.example/feed"/>
    <outline type="rss" text="Local file" xmlUrl="file:///etc/passwd"/>
  </body>
</opml>"#;

#[test]
fn import_opml_prints_or_appends_valid_unique_feeds() {
    let td = TestDir::new();
    let opml = td.write_file("subs.opml", OPML);
    let opml = opml.to_str().unwrap();
    let (code, out, err) = run_logged(&td, &["import-opml", opml], "warn");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.matches("[[feed]]").count(), 3, "{out}");
    assert!(
        out.contains("name = \"world-news\"\nurl = \"https://news.example/world.rss\""),
        "{out}"
    );
    assert!(out.contains("name = \"world-news-2\""), "{out}");
    assert!(err.contains("file:///etc/passwd"), "{err}");

    // Appending: names unique against the config's, its feeds not repeated.
    td.write_config_text(&config("", &[("world-news", "https://kept.example/feed")]));
    let cfg = td.config_path();
    let cfg = cfg.to_str().unwrap();
    let (code, _, err) = run_logged(&td, &["import-opml", opml, "--append", cfg], "warn");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("appended 2 feed(s)"), "{err}");
    assert!(err.contains("already in the config"), "{err}");
    let check = run_logged(&td, &["check", "--config", cfg], "warn");
    assert_eq!(check.0, Some(0), "{}", check.2);
    let text = std::fs::read_to_string(cfg).unwrap();
    assert!(text.contains("name = \"world-news-2\""), "{text}");
    assert!(text.contains("name = \"world-news-3\""), "{text}");

    // Again: nothing new, the file is unchanged.
    let (code, _, err) = run_logged(&td, &["import-opml", opml, "--append", cfg], "warn");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("nothing to append"), "{err}");
    assert_eq!(std::fs::read_to_string(cfg).unwrap(), text);

    // Not OPML: exit 2, config untouched.
    let bad = td.write_file("bad.opml", "<rss><channel/></rss>");
    let (code, _, err) = run_logged(
        &td,
        &["import-opml", bad.to_str().unwrap(), "--append", cfg],
        "warn",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not an OPML file"), "{err}");
    assert_eq!(std::fs::read_to_string(cfg).unwrap(), text);
}

#[test]
fn export_opml_round_trips_through_import() {
    let td = TestDir::new();
    td.write_config_text(&config(
        "",
        &[
            ("world", "https://news.example/world.rss?a=1&b=2"),
            ("local", "feeds/local.rss"),
        ],
    ));
    let cfg = td.config_path();
    let (code, xml, err) = run_logged(
        &td,
        &["export-opml", "--config", cfg.to_str().unwrap()],
        "warn",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(
            r#"text="world" title="world" xmlUrl="https://news.example/world.rss?a=1&amp;b=2""#
        ),
        "{xml}"
    );
    let file = td.write_file("out.opml", &xml);
    let (code, out, err) = run_logged(&td, &["import-opml", file.to_str().unwrap()], "warn");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("name = \"world\"\nurl = \"https://news.example/world.rss?a=1&b=2\""),
        "{out}"
    );
    // A local feed is exported but never imported.
    assert!(xml.contains("file://"), "{xml}");
    assert!(err.contains("file"), "{err}");
}

/// A host that asks for a pause (503 + Retry-After) defers its feeds; it
/// does not fail them. A feed of that host deferred in one pass is not
/// recorded as failing, so its first real error later still warns.
#[test]
fn a_host_pause_defers_feeds_without_counting_a_failure() {
    let server = TestServer::start();
    // The first feed's answer takes a moment, so the second queues behind it
    // for the host's one slot and finds the host paused.
    // In the second pass the host no longer asks for a pause.
    let broken = Arc::new(AtomicBool::new(false));
    let later = Arc::clone(&broken);
    let empty = rss("A", &server.url("/"), &[]);
    server.route(
        "/a.rss",
        Arc::new(move |_req: &Request, _n: usize| {
            if later.load(Ordering::SeqCst) {
                return Response::rss(empty.clone());
            }
            std::thread::sleep(Duration::from_millis(200));
            Response::status(503).header("Retry-After", "30")
        }),
    );
    let items = serve_articles(&server, "b", 1, 1);
    server.route(
        "/b.rss",
        switch(
            Arc::clone(&broken),
            Response::rss(rss("B", &server.url("/"), &items)),
            Response::status(500),
        ),
    );
    let td = TestDir::new();
    let (a, b) = (server.url("/a.rss"), server.url("/b.rss"));
    td.write_config_text(&config(
        "\n[fetch]\nper_host = 1\nconcurrency = 4\n",
        &[("a", &a), ("b", &b)],
    ));
    let (code, out, log) = fetch(&td, "warn");
    assert_eq!(code, Some(0), "{out}\n{log}");
    assert_eq!(server.hits("/b.rss"), 0, "b waited for the host\n{out}");
    assert!(out.contains("total: 2 feeds (0 failed)"), "{out}");
    assert_eq!(
        out.matches("deferred: host asked us to wait until").count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with("deferred (host asked us to wait)"))
            .count(),
        2,
        "{out}"
    );
    assert!(!log.contains("feed failed"), "a pause is no failure\n{log}");
    {
        let store = gleaner::store::SqliteStore::open(&td.state_dir()).unwrap();
        for feed in ["a", "b"] {
            let st = gleaner::store::StateStore::feed_state(&store, feed).unwrap();
            assert_eq!(st.failures, 0, "{feed}: {st:?}");
            assert_eq!(st.last_error, None, "{feed}: {st:?}");
        }
    }
    let (_, status, _) = run_logged(
        &td,
        &["status", "--config", td.config_path().to_str().unwrap()],
        "warn",
    );
    let row = status
        .lines()
        .find(|l| l.split_whitespace().next() == Some("b"))
        .unwrap_or_else(|| panic!("no row for b\n{status}"));
    assert!(
        row.trim_end().ends_with(" 0  -"),
        "b: no failures, no error\n{status}"
    );

    // A later pass (the pause lives in the process that was told) meets a
    // real error on b: that is b's first failure, and it warns.
    broken.store(true, Ordering::SeqCst);
    let (code, out, log) = fetch(&td, "warn");
    assert_eq!(code, Some(0), "{out}\n{log}");
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("feed failed")).collect();
    assert!(
        warned.len() == 1 && warned[0].contains("feed=b") && warned[0].contains(" WARN "),
        "b's first real failure warns once\n{log}"
    );
}
