//! Politeness, measured at a 127.0.0.1 server that records when each request
//! arrives and how many are in flight: the per-host limit and the minimum
//! delay between requests to one host (feeds and pages together), pages
//! deferred while a host asks for a pause (Retry-After), and error backoff
//! growing and capped in the daemon.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::operating::{config, run_logged, serve_articles, RunningDaemon, FAST};

/// Counts requests in flight at the server; every response takes `hold`.
#[derive(Clone, Default)]
struct InFlight {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    starts: Arc<Mutex<Vec<Instant>>>,
}

impl InFlight {
    /// Wraps `resp` so that it is answered after `hold`, counted in flight.
    fn handler(&self, resp: Response, hold: Duration) -> Handler {
        let me = self.clone();
        Arc::new(move |_req: &Request, _n: usize| {
            me.starts.lock().unwrap().push(Instant::now());
            let n = me.now.fetch_add(1, Ordering::SeqCst) + 1;
            me.max.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(hold);
            me.now.fetch_sub(1, Ordering::SeqCst);
            resp.clone()
        })
    }

    /// Gaps between consecutive request arrivals.
    fn gaps(&self) -> Vec<Duration> {
        let mut s = self.starts.lock().unwrap().clone();
        s.sort();
        s.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Three feeds `{prefix}0..2` of three articles each (stories from
/// `first` on), every feed and page answered through `counter`, held
/// `hold`. Returns (name, feed URL) pairs.
fn counted_feeds(
    server: &TestServer,
    counter: &InFlight,
    hold: Duration,
    prefix: &str,
    first: usize,
) -> Vec<(String, String)> {
    let mut feeds = Vec::new();
    for f in 0..3 {
        let name = format!("{prefix}{f}");
        let items = serve_articles(server, &name, first + f * 3, 3);
        // Re-route the pages through the counter.
        for (i, item) in items.iter().enumerate() {
            let page = article_page(
                &item.title,
                &paragraphs(first + f * 3 + i),
                Some(&item.link),
            );
            server.route(
                &format!("/{name}/story-{i}.html"),
                counter.handler(Response::html(page), hold),
            );
        }
        server.route(
            &format!("/{name}.rss"),
            counter.handler(Response::rss(rss(&name, &server.url("/"), &items)), hold),
        );
        feeds.push((name.clone(), server.url(&format!("/{name}.rss"))));
    }
    feeds
}

#[test]
fn per_host_limit_and_delay_hold_for_feeds_and_pages_together() {
    let server = TestServer::start();
    let counter = InFlight::default();
    let hold = Duration::from_millis(400);
    let feeds = counted_feeds(&server, &counter, hold, "f", 0);
    let td = TestDir::new();
    let list: Vec<(&str, &str)> = feeds
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    td.write_config_text(&config(
        "\n[fetch]\nconcurrency = 16\nper_host = 2\nhost_delay = \"200ms\"\n",
        &list,
    ));
    let started = Instant::now();
    let (code, out, err) = run_logged(
        &td,
        &["fetch", "--config", td.config_path().to_str().unwrap()],
        "warn",
    );
    let wall = started.elapsed();
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(td.output_files("txt").len(), 9, "{out}\n{err}");
    let requests = counter.starts.lock().unwrap().len();
    assert_eq!(requests, 12, "{}", server.log_summary());
    let max = counter.max.load(Ordering::SeqCst);
    assert_eq!(
        max, 2,
        "never more than per_host = 2 in flight (and the limit is used)"
    );
    // Arrival gaps: at least host_delay, less a little for scheduling
    // between the client's start and the server's accept.
    let gaps = counter.gaps();
    let short: Vec<&Duration> = gaps
        .iter()
        .filter(|g| **g < Duration::from_millis(150))
        .collect();
    assert!(short.is_empty(), "host_delay = 200ms broken: {gaps:?}");
    assert!(wall >= Duration::from_millis(11 * 200), "{wall:?}");
}

#[test]
fn without_host_delay_the_per_host_limit_alone_paces_a_host() {
    let server = TestServer::start();
    let counter = InFlight::default();
    let mut feeds = Vec::new();
    for f in 0..12 {
        let name = format!("g{f}");
        server.route(
            &format!("/{name}.rss"),
            counter.handler(
                Response::rss(rss(&name, &server.url("/"), &[])),
                Duration::from_millis(100),
            ),
        );
        feeds.push((name.clone(), server.url(&format!("/{name}.rss"))));
    }
    let td = TestDir::new();
    let list: Vec<(&str, &str)> = feeds
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    td.write_config_text(&config("\n[fetch]\nper_host = 3\n", &list));
    let (code, out, err) = run_logged(
        &td,
        &["fetch", "--config", td.config_path().to_str().unwrap()],
        "warn",
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(counter.max.load(Ordering::SeqCst), 3);
    // No delay: three start together.
    let gaps = counter.gaps();
    assert!(
        gaps.iter()
            .filter(|g| **g < Duration::from_millis(30))
            .count()
            >= 6,
        "{gaps:?}"
    );
}

#[test]
fn a_host_that_asks_for_a_pause_gets_no_page_requests_until_then() {
    let server = TestServer::start();
    let items = serve_articles(&server, "busy", 6, 3);
    // The first page asks for 2 s; the other two are deferred, not failed.
    let page = article_page(&items[0].title, &paragraphs(6), Some(&items[0].link));
    server.route(
        "/busy/story-0.html",
        crate::common::server::sequence(vec![
            Response::status(429).header("Retry-After", "2"),
            Response::html(page),
        ]),
    );
    server.route_fixed(
        "/busy.rss",
        Response::rss(rss("Busy", &server.url("/"), &items)),
    );
    let td = TestDir::new();
    let url = server.url("/busy.rss");
    td.write_config_text(&config(
        &format!("{FAST}\n[fetch]\nper_host = 1\n"),
        &[("busy", &url)],
    ));
    let d = RunningDaemon::start(&td, "info");
    d.wait_for("all three stories", || td.output_files("txt").len() == 3);
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    let reqs = server.requests();
    let paused_at = reqs
        .iter()
        .find(|r| r.status == 429)
        .map(|r| r.at)
        .unwrap_or_else(|| panic!("{}", server.log_summary()));
    let during: Vec<String> = reqs
        .iter()
        .filter(|r| r.at > paused_at && r.at < paused_at + Duration::from_millis(1900))
        .map(|r| r.target.clone())
        .collect();
    assert!(
        during.is_empty(),
        "nothing may reach the host during its Retry-After pause: {during:?}"
    );
    for i in 0..3 {
        assert_eq!(
            server
                .requests_for(&format!("/busy/story-{i}.html"))
                .iter()
                .filter(|r| r.status == 200)
                .count(),
            1,
            "{}",
            server.log_summary()
        );
    }
    assert!(
        !log.contains("page failed"),
        "a pause is not a failure\n{log}"
    );
}

#[test]
fn error_backoff_grows_and_is_capped() {
    let server = TestServer::start();
    server.route_fixed("/down.rss", Response::status(503));
    let td = TestDir::new();
    let url = server.url("/down.rss");
    // FAST: error_backoff 1 s, max_backoff 4 s, no jitter.
    td.write_config_text(&config(FAST, &[("down", &url)]));
    let d = RunningDaemon::start(&td, "info");
    d.wait_for("six polls", || server.hits("/down.rss") >= 6);
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    let at: Vec<Instant> = server
        .requests_for("/down.rss")
        .iter()
        .map(|r| r.at)
        .collect();
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    let want = [1.0, 2.0, 4.0, 4.0, 4.0];
    for (got, want) in gaps.iter().zip(want) {
        assert!(
            *got >= want - 0.05 && *got <= want + 0.6,
            "backoff gaps {gaps:?}, want about {want:?}"
        );
    }
}

#[test]
fn run_keeps_the_per_host_limit_and_delay_for_feeds_and_pages() {
    let server = TestServer::start();
    let counter = InFlight::default();
    let hold = Duration::from_millis(300);
    let feeds = counted_feeds(&server, &counter, hold, "r", 20);
    let td = TestDir::new();
    let list: Vec<(&str, &str)> = feeds
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    td.write_config_text(&config(
        &format!("{FAST}\n[fetch]\nconcurrency = 16\nper_host = 2\nhost_delay = \"200ms\"\n"),
        &list,
    ));
    let d = RunningDaemon::start(&td, "info");
    d.wait_for("all nine stories", || td.output_files("txt").len() == 9);
    // And the feeds polled again, on top of the first pass.
    d.wait_for("second polls", || {
        (0..3).all(|f| server.hits(&format!("/r{f}.rss")) >= 2)
    });
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        counter.max.load(Ordering::SeqCst),
        2,
        "never more than per_host = 2 in flight (and the limit is used)\n{}",
        server.log_summary()
    );
    let gaps = counter.gaps();
    let short: Vec<&Duration> = gaps
        .iter()
        .filter(|g| **g < Duration::from_millis(150))
        .collect();
    assert!(
        short.is_empty(),
        "host_delay = 200ms broken under run: {gaps:?}"
    );
}

#[test]
fn a_redirect_hop_waits_for_its_own_host_like_any_request() {
    // Same host: the hop is a request of its own, host_delay apart.
    let same = TestServer::start();
    let items = serve_articles(&same, "moved", 30, 1);
    same.route_fixed(
        "/old.rss",
        Response::new(301).header("Location", "/new.rss"),
    );
    same.route_fixed(
        "/new.rss",
        Response::rss(rss("Moved", &same.url("/"), &items)),
    );
    // Another host: the hop takes one of that host's slots (per_host = 1),
    // where two feeds of its own already compete for the one slot.
    let origin = TestServer::start();
    let target = TestServer::start();
    let counter = InFlight::default();
    let hold = Duration::from_millis(400);
    for name in ["t1", "t2", "t3"] {
        target.route(
            &format!("/{name}.rss"),
            counter.handler(Response::rss(rss(name, &target.url("/"), &[])), hold),
        );
    }
    origin.route_fixed(
        "/to-target.rss",
        Response::new(302).header("Location", &target.url("/t3.rss")),
    );
    let td = TestDir::new();
    let (old, t1, t2, hop) = (
        same.url("/old.rss"),
        target.url("/t1.rss"),
        target.url("/t2.rss"),
        origin.url("/to-target.rss"),
    );
    td.write_config_text(&config(
        "\n[fetch]\nper_host = 1\nhost_delay = \"300ms\"\n",
        &[("moved", &old), ("t1", &t1), ("t2", &t2), ("hop", &hop)],
    ));
    let (code, out, err) = run_logged(
        &td,
        &["fetch", "--config", td.config_path().to_str().unwrap()],
        "warn",
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(td.output_files("txt").len(), 1, "{out}\n{err}");
    let old_at = same.requests_for("/old.rss")[0].at;
    let new_at = same.requests_for("/new.rss")[0].at;
    assert!(
        new_at.duration_since(old_at) >= Duration::from_millis(250),
        "a same-host hop must respect host_delay: {:?}",
        new_at.duration_since(old_at)
    );
    assert_eq!(target.hits("/t3.rss"), 1, "{}", target.log_summary());
    assert_eq!(
        counter.max.load(Ordering::SeqCst),
        1,
        "a hop to another host takes that host's slot (per_host = 1)\n{}",
        target.log_summary()
    );
    let gaps = counter.gaps();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(250)),
        "host_delay at the target, hop included: {gaps:?}"
    );
}

#[test]
fn a_429_from_a_redirect_target_pauses_the_host_that_answered() {
    let origin = TestServer::start();
    let target = TestServer::start();
    origin.route_fixed(
        "/hop.rss",
        Response::new(302).header("Location", &target.url("/busy.rss")),
    );
    origin.route_fixed("/own.rss", Response::rss(rss("Own", &origin.url("/"), &[])));
    target.route(
        "/busy.rss",
        crate::common::server::sequence(vec![
            Response::status(429).header("Retry-After", "3"),
            Response::rss(rss("Busy", &target.url("/"), &[])),
        ]),
    );
    target.route_fixed("/sib.rss", Response::rss(rss("Sib", &target.url("/"), &[])));
    let td = TestDir::new();
    let (hop, own, sib) = (
        origin.url("/hop.rss"),
        origin.url("/own.rss"),
        target.url("/sib.rss"),
    );
    td.write_config_text(&config(
        FAST,
        &[("hop", &hop), ("own", &own), ("sib", &sib)],
    ));
    let d = RunningDaemon::start(&td, "info");
    d.wait_for("the target again after its pause", || {
        target.hits("/busy.rss") >= 2
    });
    let (code, log) = d.stop();
    assert_eq!(code, Some(0), "{log}");
    let asked = target.requests_for("/busy.rss")[0].at;
    // From a little after the 429: a poll of "sib" may have been under way.
    let from = asked + Duration::from_millis(300);
    let to = asked + Duration::from_millis(2800);
    let at_target: Vec<String> = target
        .requests()
        .iter()
        .filter(|r| r.at > from && r.at < to)
        .map(|r| r.target.clone())
        .collect();
    assert!(
        at_target.is_empty(),
        "the host that answered 429 must be left alone: {at_target:?}\n{}",
        target.log_summary()
    );
    let at_origin = origin
        .requests()
        .iter()
        .filter(|r| r.at > from && r.at < to)
        .count();
    assert!(
        at_origin >= 2,
        "the redirecting host did not ask for a pause and is polled on: {at_origin}\n{}",
        origin.log_summary()
    );
}
