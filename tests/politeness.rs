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

#[test]
fn per_host_limit_and_delay_hold_for_feeds_and_pages_together() {
    let server = TestServer::start();
    let counter = InFlight::default();
    let hold = Duration::from_millis(400);
    let mut feeds = Vec::new();
    for f in 0..3 {
        let name = format!("f{f}");
        let items = serve_articles(&server, &name, f * 3, 3);
        // Re-route the pages through the counter.
        for (i, item) in items.iter().enumerate() {
            let page = article_page(&item.title, &paragraphs(f * 3 + i), Some(&item.link));
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
