//! Memory at the default config with many hosts: more large feeds than the
//! global concurrency, each on its own port (a host of its own), so only
//! `[fetch] memory_budget` stands between the pass and holding every body
//! and every parse at once.

use crate::common::measure::{fetch_measured, MAX_RSS_KIB};
use crate::common::pages::{article_page, rss, utc, Item};
use crate::common::server::{Response, TestServer};
use crate::common::testdir::{self, TestDir};

/// Peak resident set (KiB) and output of `gleaner fetch` on `td`.
fn fetch_with_peak(td: &TestDir) -> (testdir::RunResult, u64) {
    let m = fetch_measured(td);
    (m.run, m.peak_kib)
}

/// A valid RSS feed of `n` items with long descriptions (about 1.9 KB
/// each), all linking to the server's one article (fetched once per feed).
fn large_feed(server: &TestServer, n: usize) -> String {
    let filler = "Councillors debated the harbour budget late into the night. ".repeat(30);
    let link = server.url("/story.html");
    let items: Vec<Item> = (0..n)
        .map(|i| {
            let mut it = Item::new(
                &format!("Harbour budget item {i}"),
                &link,
                utc("2024-03-05T10:00:00Z"),
            )
            .guid(&format!("item-{i}"));
            it.summary = filler.clone();
            it
        })
        .collect();
    rss("Large", &server.url("/"), &items)
}

/// Paragraphs of pseudo-random words, different for each `seed`, so that
/// no host's article is a near copy of another's.
fn distinct_paragraphs(seed: u64) -> Vec<String> {
    const WORDS: [&str; 40] = [
        "harbour", "council", "budget", "ferry", "storm", "school", "market", "bridge", "library",
        "river", "farmers", "festival", "police", "hospital", "museum", "station", "workers",
        "tenants", "mayor", "court", "railway", "island", "tourists", "fishing", "teachers",
        "drivers", "voters", "builders", "nurses", "students", "pilots", "bakers", "artists",
        "miners", "sailors", "doctors", "farmland", "housing", "water", "power",
    ];
    let mut x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..6)
        .map(|_| {
            let words: Vec<&str> = (0..60)
                .map(|_| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    WORDS[(x >> 33) as usize % WORDS.len()]
                })
                .collect();
            format!("The {}.", words.join(" "))
        })
        .collect()
}

#[test]
fn more_large_feeds_than_the_concurrency_stay_within_the_memory_bound_at_defaults() {
    // 36 > the default concurrency (32): without a budget every one of the
    // 32 requests in flight buffers and parses a 6 MiB feed at once.
    const FEEDS: usize = 36;
    let servers: Vec<TestServer> = (0..FEEDS).map(|_| TestServer::start()).collect();
    let mut feeds = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let body = large_feed(server, 3_400);
        assert!(body.len() > 6 << 20, "feed is {} bytes", body.len());
        server.route_fixed("/feed.rss", Response::rss(body));
        let text = distinct_paragraphs(i as u64);
        server.route_fixed(
            "/story.html",
            Response::html(article_page(&format!("Harbour budget {i}"), &text, None)),
        );
        feeds.push((format!("f{i:02}"), server.url("/feed.rss")));
    }
    let td = TestDir::new();
    let list: Vec<(&str, &str)> = feeds
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    td.write_config(&list);

    let (run, peak_kib) = fetch_with_peak(&td);
    assert_eq!(run.code, Some(0), "{}", run.combined());
    assert!(!run.combined().contains("panicked"), "{}", run.combined());
    assert!(
        run.stdout
            .contains(&format!("total: {FEEDS} feeds (0 failed), {FEEDS} new")),
        "{}",
        run.stdout
    );
    assert_eq!(td.output_files("txt").len(), FEEDS);
    // A feed that did not fit in the budget when it answered was dropped
    // unread and asked again once the budget was free: never more often.
    for server in &servers {
        let hits = server.hits("/feed.rss");
        assert!((1..=2).contains(&hits), "{}", server.log_summary());
    }
    assert!(
        peak_kib < MAX_RSS_KIB,
        "peak RSS {} MiB over the {} MiB bound",
        peak_kib / 1024,
        MAX_RSS_KIB / 1024
    );
    eprintln!(
        "{FEEDS} large feeds: peak RSS {} MiB in {:?}",
        peak_kib / 1024,
        run.elapsed
    );
}
