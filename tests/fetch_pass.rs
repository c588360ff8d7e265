//! `gleaner fetch --config FILE`: one pass over every feed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::common::server::{conditional, etag_matches, switch};
use crate::common::*;

/// One article served by the test server.
struct Article {
    feed: &'static str,
    title: String,
    path: String,
    paras: Vec<String>,
    published: DateTime<Utc>,
}

impl Article {
    fn new(feed: &'static str, title: &str, path: &str, body: usize, published: &str) -> Article {
        Article {
            feed,
            title: title.to_string(),
            path: path.to_string(),
            paras: paragraphs(body),
            published: utc(published),
        }
    }

    fn page(&self, server: &TestServer) -> String {
        article_page(&self.title, &self.paras, Some(&server.url(&self.path)))
    }

    /// Register this article's page on the server (always 200).
    fn serve(&self, server: &TestServer) {
        server.route_fixed(&self.path, Response::html(self.page(server)));
    }

    fn item(&self, server: &TestServer) -> Item {
        Item::new(&self.title, &server.url(&self.path), self.published)
    }

    /// `<feed>/<YYYY>/<MM>/<DD>` relative to output_dir.
    fn expected_dir(&self) -> PathBuf {
        Path::new(self.feed).join(self.published.format("%Y/%m/%d").to_string())
    }
}

fn assert_exit(run: &RunResult, code: i32, what: &str) {
    assert_eq!(
        run.code,
        Some(code),
        "{what}: unexpected exit status\n{run}"
    );
}

fn parse_ts(v: &serde_json::Value, field: &str, ctx: &str) -> DateTime<Utc> {
    let s = v[field].as_str().unwrap_or_else(|| {
        panic!(
            "{ctx}: json `{field}` must be an RFC 3339 string, got {}",
            v[field]
        )
    });
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{ctx}: json `{field}` = {s:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Check the file name is `<slug>-<id>.txt` and the story text/json basics.
fn check_story_file(td: &TestDir, art: &Article, server: &TestServer) -> Story {
    let story = td.story_titled(&art.title);
    let ctx = format!("story {:?} ({})", art.title, story.txt.display());

    // Path: <feed>/<YYYY>/<MM>/<DD>/<slug>-<id>.txt, date from the item's published date.
    assert_eq!(
        story.txt.parent().unwrap(),
        art.expected_dir(),
        "{ctx}: wrong directory (want feed/YYYY/MM/DD from pubDate {})",
        art.published
    );
    let id = json_scalar(&story.json["id"]);
    assert!(
        !id.is_empty() && id != "null",
        "{ctx}: json `id` missing: {}",
        story.json
    );
    let stem = story.txt.file_stem().unwrap().to_str().unwrap().to_string();
    assert!(
        stem.ends_with(&format!("-{id}")),
        "{ctx}: file stem {stem:?} must end with -<id> (id = {id:?})"
    );
    let want_slug = slug_prefix(&art.title, 3);
    assert!(
        stem.starts_with(&want_slug),
        "{ctx}: file stem {stem:?} must start with the title slug {want_slug:?}"
    );

    // Text.
    assert_story_text(&story.text, &art.title, &art.paras, &ctx);

    // JSON.
    let j = &story.json;
    assert_eq!(
        j["url"].as_str(),
        Some(server.url(&art.path).as_str()),
        "{ctx}: json url\n{j:#}"
    );
    assert_eq!(
        j["canonical_url"].as_str(),
        Some(server.url(&art.path).as_str()),
        "{ctx}: json canonical_url\n{j:#}"
    );
    assert_eq!(
        j["feed"].as_str(),
        Some(art.feed),
        "{ctx}: json feed\n{j:#}"
    );
    assert_eq!(
        j["title"].as_str(),
        Some(art.title.as_str()),
        "{ctx}: json title\n{j:#}"
    );
    assert_eq!(
        parse_ts(j, "published", &ctx),
        art.published,
        "{ctx}: json published\n{j:#}"
    );
    let words = j["words"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ctx}: json `words` must be a number\n{j:#}"))
        as usize;
    let body_words = word_count(&art.paras);
    let with_title = body_words + art.title.split_whitespace().count();
    assert!(
        words == body_words || words == with_title,
        "{ctx}: json words = {words}, expected {body_words} (body) or {with_title} (title + body)"
    );
    assert_eq!(
        j["duplicates"],
        serde_json::json!([]),
        "{ctx}: a story seen once must have an empty `duplicates` list\n{j:#}"
    );
    story
}

#[test]
fn first_pass_writes_every_story_with_paths_text_and_json() {
    let server = TestServer::start();
    let td = TestDir::new();

    let bridge = Article::new(
        "harbour-times",
        "Harbour Bridge Reopens After Repairs",
        "/news/2024/03/harbour-bridge-reopens",
        0,
        "2024-03-05T13:00:00Z",
    );
    let library = Article::new(
        "harbour-times",
        "City Library Extends Opening Hours",
        "/news/2024/02/library-hours",
        1,
        "2024-02-28T09:15:00Z",
    );
    let orchard = Article::new(
        "valley-gazette",
        "Valley Orchards Report Record Apple Harvest",
        "/valley/harvest-record",
        2,
        "2023-12-31T10:00:00Z",
    );
    for a in [&bridge, &library, &orchard] {
        a.serve(&server);
    }
    // RSS: one pubDate with a non-UTC offset (08:00 -0500 == 13:00Z, same day).
    let rss_doc = rss(
        "Harbour Times",
        &server.url("/"),
        &[
            bridge
                .item(&server)
                .pub_date_raw("Tue, 05 Mar 2024 08:00:00 -0500")
                .author("Jane Doe"),
            library.item(&server).author("Sam Lee"),
        ],
    );
    server.route_fixed("/feeds/harbour.rss", Response::rss(rss_doc));
    let atom_doc = atom(
        "Valley Gazette",
        &server.url("/valley"),
        &[orchard.item(&server).author("Priya Raman")],
    );
    server.route_fixed("/feeds/valley.atom", Response::atom(atom_doc));

    td.write_config(&[
        ("harbour-times", &server.url("/feeds/harbour.rss")),
        ("valley-gazette", &server.url("/feeds/valley.atom")),
    ]);

    let before = Utc::now();
    let run = td.fetch();
    let after = Utc::now();
    assert_exit(&run, 0, "first pass");

    let txts = td.output_files("txt");
    let jsons = td.output_files("json");
    assert_eq!(txts.len(), 3, "expected 3 .txt files, got {txts:#?}\n{run}");
    assert_eq!(
        jsons.len(),
        3,
        "expected 3 .json files, got {jsons:#?}\n{run}"
    );

    for (art, author) in [
        (&bridge, "Jane Doe"),
        (&library, "Sam Lee"),
        (&orchard, "Priya Raman"),
    ] {
        let story = check_story_file(&td, art, &server);
        let ctx = format!("story {:?}", art.title);
        let j = &story.json;
        let got_author = j["author"].as_str().unwrap_or_default();
        assert!(
            got_author.contains(author),
            "{ctx}: json author = {}, want {author:?}\n{j:#}",
            j["author"]
        );
        let fetched = parse_ts(j, "fetched_at", &ctx);
        assert!(
            fetched >= before - ChronoDuration::seconds(2)
                && fetched <= after + ChronoDuration::seconds(2),
            "{ctx}: fetched_at {fetched} is not within the run ({before} .. {after})"
        );
    }

    // Summary on stdout: per-feed new / duplicate / failed counts.
    for label in ["new", "duplicate", "failed"] {
        assert!(
            run.stdout.to_lowercase().contains(label),
            "summary on stdout should report `{label}` counts\n{run}"
        );
    }
    // Summary on stdout names every feed.
    for feed in ["harbour-times", "valley-gazette"] {
        assert!(
            run.stdout.contains(feed),
            "summary on stdout should mention feed {feed:?}\n{run}"
        );
    }
    // Each page fetched exactly once.
    for a in [&bridge, &library, &orchard] {
        assert_eq!(
            server.hits(&a.path),
            1,
            "page {} should be fetched exactly once in one pass\n{}",
            a.path,
            server.log_summary()
        );
    }
}

#[test]
fn second_pass_sends_conditional_get_and_writes_nothing_new() {
    let server = TestServer::start();
    let td = TestDir::new();

    let a = Article::new(
        "metro-wire",
        "Tram Line Extension Opens to Passengers",
        "/metro/tram-extension",
        3,
        "2024-03-04T08:00:00Z",
    );
    let b = Article::new(
        "metro-wire",
        "Night Market Returns to Old Quarter",
        "/metro/night-market",
        4,
        "2024-03-03T18:30:00Z",
    );
    a.serve(&server);
    b.serve(&server);
    let etag = "\"metro-v1-5f3a\"";
    let last_modified = "Mon, 04 Mar 2024 09:00:00 GMT";
    let doc = rss(
        "Metro Wire",
        &server.url("/metro"),
        &[a.item(&server), b.item(&server)],
    );
    server.route(
        "/metro/feed.xml",
        conditional(Response::rss(doc), etag, last_modified),
    );
    td.write_config(&[("metro-wire", &server.url("/metro/feed.xml"))]);

    let run1 = td.fetch();
    assert_exit(&run1, 0, "first pass");
    assert_eq!(
        td.output_files("txt").len(),
        2,
        "first pass should write 2 stories\n{run1}"
    );
    let snapshot = td.snapshot_output();

    let run2 = td.fetch();
    assert_exit(&run2, 0, "second pass");

    let feed_reqs = server.requests_for("/metro/feed.xml");
    assert_eq!(
        feed_reqs.len(),
        2,
        "feed should be requested once per pass\n{}",
        server.log_summary()
    );
    let second = &feed_reqs[1];
    let inm = second.header("if-none-match");
    let ims = second.header("if-modified-since");
    assert!(
        inm.map(|v| etag_matches(v, etag)).unwrap_or(false) || ims == Some(last_modified),
        "second feed request must carry If-None-Match: {etag} and/or If-Modified-Since: {last_modified}; \
         got If-None-Match={inm:?} If-Modified-Since={ims:?}; headers: {:#?}",
        second.headers
    );
    assert_eq!(
        second.status, 304,
        "test server should have answered 304 on the second pass"
    );

    assert_eq!(
        server.hits(&a.path),
        1,
        "page re-fetched on 304 pass\n{}",
        server.log_summary()
    );
    assert_eq!(
        server.hits(&b.path),
        1,
        "page re-fetched on 304 pass\n{}",
        server.log_summary()
    );
    assert_eq!(
        td.snapshot_output(),
        snapshot,
        "output changed on the second (304) pass\n{run2}"
    );
}

#[test]
fn page_that_failed_with_500_is_written_on_next_pass() {
    let server = TestServer::start();
    let td = TestDir::new();

    let good = Article::new(
        "coast-news",
        "Lifeboat Crew Honoured for Winter Rescue",
        "/coast/lifeboat-honour",
        5,
        "2024-03-01T12:00:00Z",
    );
    let flaky = Article::new(
        "coast-news",
        "Sea Wall Upgrade Approved by Council",
        "/coast/sea-wall",
        6,
        "2024-03-02T12:00:00Z",
    );
    good.serve(&server);
    let healthy = Arc::new(AtomicBool::new(false));
    server.route(
        &flaky.path,
        switch(
            Arc::clone(&healthy),
            Response::status(500),
            Response::html(flaky.page(&server)),
        ),
    );
    let doc = rss(
        "Coast News",
        &server.url("/coast"),
        &[good.item(&server), flaky.item(&server)],
    );
    server.route_fixed("/coast/rss", Response::rss(doc));
    td.write_config(&[("coast-news", &server.url("/coast/rss"))]);

    let run1 = td.fetch();
    assert_exit(
        &run1,
        0,
        "pass with a 500 page (a failing page is not fatal)",
    );
    assert!(
        server.hits(&flaky.path) >= 1,
        "flaky page was never requested\n{}",
        server.log_summary()
    );
    let txts = td.output_files("txt");
    assert_eq!(
        txts.len(),
        1,
        "only the good story should be written on pass 1: {txts:#?}\n{run1}"
    );
    check_story_file(&td, &good, &server);

    healthy.store(true, Ordering::SeqCst);
    let run2 = td.fetch();
    assert_exit(&run2, 0, "second pass");
    let txts = td.output_files("txt");
    assert_eq!(
        txts.len(),
        2,
        "the failed page should be written on pass 2: {txts:#?}\n{run2}"
    );
    check_story_file(&td, &flaky, &server);
    assert_eq!(
        server.hits(&good.path),
        1,
        "the story already written must not be fetched again\n{}",
        server.log_summary()
    );
}

#[test]
fn page_that_failed_is_retried_even_though_feed_has_validators() {
    // Same as above, but the feed sends ETag/Last-Modified and would answer
    // 304 to a conditional GET: gleaner must not let the validators make it
    // forget the failed page (either re-read the feed or remember the item).
    let server = TestServer::start();
    let td = TestDir::new();

    let flaky = Article::new(
        "river-post",
        "Flood Barrier Test Passes Inspection",
        "/river/flood-barrier",
        7,
        "2024-03-02T07:45:00Z",
    );
    let healthy = Arc::new(AtomicBool::new(false));
    server.route(
        &flaky.path,
        switch(
            Arc::clone(&healthy),
            Response::status(503),
            Response::html(flaky.page(&server)),
        ),
    );
    let doc = rss("River Post", &server.url("/river"), &[flaky.item(&server)]);
    server.route(
        "/river/feed",
        conditional(
            Response::rss(doc),
            "\"river-1\"",
            "Sat, 02 Mar 2024 08:00:00 GMT",
        ),
    );
    td.write_config(&[("river-post", &server.url("/river/feed"))]);

    let run1 = td.fetch();
    assert_exit(&run1, 0, "pass with a 503 page");
    assert!(
        td.output_files("txt").is_empty(),
        "nothing should be written on pass 1\n{run1}"
    );

    healthy.store(true, Ordering::SeqCst);
    let run2 = td.fetch();
    assert_exit(&run2, 0, "second pass");
    let feed_statuses: Vec<u16> = server
        .requests_for("/river/feed")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        td.output_files("txt").len(),
        1,
        "failed page must be retried on the next pass even if the feed is 304 (feed statuses: {feed_statuses:?})\n{run2}\n{}",
        server.log_summary()
    );
    check_story_file(&td, &flaky, &server);
}

#[test]
fn malformed_feed_fails_alone() {
    let server = TestServer::start();
    let td = TestDir::new();

    let a = Article::new(
        "morning-post",
        "Regional Airport Adds Direct Flights",
        "/mp/airport-flights",
        8,
        "2024-03-05T06:00:00Z",
    );
    let b = Article::new(
        "evening-star",
        "Stadium Roof Finally Completed",
        "/es/stadium-roof",
        9,
        "2024-03-05T19:00:00Z",
    );
    a.serve(&server);
    b.serve(&server);
    server.route_fixed(
        "/mp/rss",
        Response::rss(rss("Morning Post", &server.url("/mp"), &[a.item(&server)])),
    );
    server.route_fixed(
        "/es/atom",
        Response::atom(atom("Evening Star", &server.url("/es"), &[b.item(&server)])),
    );
    // Truncated / mismatched XML served as 200.
    server.route_fixed(
        "/bw/rss",
        Response::rss(
            "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>Broken Wire</title>\
             <item><title>Half an item</item></channel>",
        ),
    );

    td.write_config(&[
        ("morning-post", &server.url("/mp/rss")),
        ("broken-wire", &server.url("/bw/rss")),
        ("evening-star", &server.url("/es/atom")),
    ]);
    let run = td.fetch();
    assert_exit(&run, 0, "a malformed feed must not be fatal");

    let txts = td.output_files("txt");
    assert_eq!(
        txts.len(),
        2,
        "both good feeds' stories should be written: {txts:#?}\n{run}"
    );
    check_story_file(&td, &a, &server);
    check_story_file(&td, &b, &server);
    assert!(
        !td.out_dir().join("broken-wire").exists()
            || walk_files(&td.out_dir().join("broken-wire")).is_empty(),
        "nothing should be written for the malformed feed"
    );
    assert!(
        run.combined().contains("broken-wire"),
        "the malformed feed should be reported by name (stdout summary or stderr)\n{run}"
    );
    for feed in ["morning-post", "evening-star"] {
        assert!(
            run.stdout.contains(feed),
            "summary should mention {feed}\n{run}"
        );
    }
}

#[test]
fn same_article_from_two_feeds_is_one_story_with_a_duplicate_entry() {
    let server = TestServer::start();
    let td = TestDir::new();

    let art = Article::new(
        "national-desk",
        "Central Bank Holds Interest Rates Steady",
        "/economy/rates-hold",
        10,
        "2024-03-05T11:00:00Z",
    );
    art.serve(&server);
    let plain = server.url(&art.path);
    let tracked = format!("{plain}?utm_source=rss&utm_medium=feed");

    server.route_fixed(
        "/national/rss",
        Response::rss(rss(
            "National Desk",
            &server.url("/national"),
            &[Item::new(&art.title, &plain, art.published)],
        )),
    );
    server.route_fixed(
        "/business/rss",
        Response::rss(rss(
            "Business Brief",
            &server.url("/business"),
            &[Item::new(&art.title, &tracked, art.published).guid("business-brief-7781")],
        )),
    );
    td.write_config(&[
        ("national-desk", &server.url("/national/rss")),
        ("business-brief", &server.url("/business/rss")),
    ]);

    let run = td.fetch();
    assert_exit(&run, 0, "pass with a duplicate");
    let txts = td.output_files("txt");
    assert_eq!(
        txts.len(),
        1,
        "a duplicate must never be a second .txt: {txts:#?}\n{run}"
    );
    let story = td.stories().remove(0);
    let j = &story.json;
    let first_feed = j["feed"].as_str().unwrap_or_default().to_string();
    let (other_feed, other_url) = match first_feed.as_str() {
        "national-desk" => ("business-brief", tracked.clone()),
        "business-brief" => ("national-desk", plain.clone()),
        other => panic!("json feed = {other:?}, expected one of the two feeds\n{j:#}"),
    };
    if first_feed == "national-desk" {
        assert_eq!(
            j["url"].as_str(),
            Some(plain.as_str()),
            "json url is the feed's link\n{j:#}"
        );
    } else {
        assert_eq!(
            j["url"].as_str(),
            Some(tracked.as_str()),
            "json url is the feed's link\n{j:#}"
        );
    }
    assert_eq!(
        j["canonical_url"].as_str(),
        Some(plain.as_str()),
        "canonical_url should be the URL without utm_* params\n{j:#}"
    );

    let check_dups = |j: &serde_json::Value, when: &str| {
        let dups = j["duplicates"]
            .as_array()
            .unwrap_or_else(|| panic!("{when}: json `duplicates` must be a list\n{j:#}"));
        assert_eq!(
            dups.len(),
            1,
            "{when}: exactly one duplicate entry expected\n{j:#}"
        );
        let d = &dups[0];
        assert_eq!(
            d["feed"].as_str(),
            Some(other_feed),
            "{when}: duplicate entry should name the other feed\n{j:#}"
        );
        assert_eq!(
            d["url"].as_str(),
            Some(other_url.as_str()),
            "{when}: duplicate entry url should be the link as in the other feed\n{j:#}"
        );
        parse_ts(d, "seen_at", when);
    };
    check_dups(j, "after pass 1");

    // A second pass sees both items again: still one story, still one entry.
    let run2 = td.fetch();
    assert_exit(&run2, 0, "second pass");
    assert_eq!(
        td.output_files("txt").len(),
        1,
        "second pass wrote another story\n{run2}"
    );
    let j2 = td.read_json(&story.json_path);
    check_dups(&j2, "after pass 2");
}

#[test]
fn http_feed_item_linking_to_file_url_reads_nothing() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    assert!(
        passwd.contains("root:"),
        "test premise: /etc/passwd should contain root:"
    );

    let server = TestServer::start();
    let td = TestDir::new();
    let ok = Article::new(
        "open-feed",
        "Museum Unveils Restored Steam Engine",
        "/open/steam-engine",
        11,
        "2024-03-05T10:00:00Z",
    );
    ok.serve(&server);
    let doc = rss(
        "Open Feed",
        &server.url("/open"),
        &[
            Item::new(
                "Local Secrets Revealed",
                "file:///etc/passwd",
                utc("2024-03-05T09:00:00Z"),
            ),
            ok.item(&server),
        ],
    );
    server.route_fixed("/open/rss", Response::rss(doc));
    td.write_config(&[("open-feed", &server.url("/open/rss"))]);

    let run = td.fetch();
    assert_exit(&run, 0, "a file:// item must fail alone");
    for p in walk_files(&td.out_dir()) {
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("root:"),
            "{} contains /etc/passwd content:\n{text}",
            p.display()
        );
    }
    for p in walk_files(&td.state_dir()) {
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("root:x:0:0"),
            "state file {} contains /etc/passwd content",
            p.display()
        );
    }
    let txts = td.output_files("txt");
    assert_eq!(
        txts.len(),
        1,
        "only the http story should be written: {txts:#?}\n{run}"
    );
    check_story_file(&td, &ok, &server);
    assert!(
        run.combined().contains("passwd") || run.combined().contains("file://"),
        "the failed file:// item should be reported\n{run}"
    );
}

#[test]
fn hostile_titles_stay_inside_output_dir_with_valid_names() {
    let server = TestServer::start();
    let td = TestDir::new();

    let emoji_title: String = "😀".repeat(300);
    let titles = [
        "../../etc/passwd".to_string(),
        emoji_title.clone(),
        // No `<`/`>`: RSS titles may legitimately be treated as HTML.
        "AC/DC: Back\\In Black? \"Live\" *|:".to_string(),
    ];
    let mut items = Vec::new();
    for (i, t) in titles.iter().enumerate() {
        let path = format!("/odd/story-{i}");
        let paras = paragraphs(i);
        server.route_fixed(&path, Response::html(article_page(t, &paras, None)));
        items.push(Item::new(
            t,
            &server.url(&path),
            utc("2024-03-05T12:00:00Z"),
        ));
    }
    server.route_fixed(
        "/odd/rss",
        Response::rss(rss("Odd Feed", &server.url("/odd"), &items)),
    );
    td.write_config(&[("odd-feed", &server.url("/odd/rss"))]);

    let run = td.fetch();
    assert_exit(&run, 0, "hostile titles");

    // Nothing outside conf/out and conf/state (besides the config itself).
    let out = td.out_dir();
    let state = td.state_dir();
    for p in walk_files(&td.root) {
        assert!(
            p.starts_with(&out) || p.starts_with(&state) || p == td.config_path(),
            "file written outside output_dir/state_dir: {}",
            p.display()
        );
    }
    assert!(
        !td.root.join("etc").exists() && !td.conf_dir.join("etc").exists(),
        "an etc/ dir escaped output_dir"
    );

    for p in walk_all(&out) {
        let name = p.file_name().unwrap();
        let name_str = name
            .to_str()
            .unwrap_or_else(|| panic!("file name is not valid UTF-8: {:?}", p));
        assert!(
            name_str.len() <= 255,
            "file name is {} bytes (> 255): {name_str}",
            name_str.len()
        );
        assert!(
            !name_str.contains('\\') && name_str != ".." && name_str != ".",
            "suspicious file name {name_str:?}"
        );
    }

    let txts = td.output_files("txt");
    assert_eq!(
        txts.len(),
        3,
        "all three stories should be written: {txts:#?}\n{run}"
    );
    for (i, t) in titles.iter().enumerate() {
        let story = td.story_titled(t);
        assert!(
            story
                .txt
                .starts_with(Path::new("odd-feed").join("2024/03/05")),
            "{} not under odd-feed/2024/03/05",
            story.txt.display()
        );
        assert_story_text(
            &story.text,
            t,
            &paragraphs(i),
            &format!("hostile title {i}"),
        );
    }
}

#[test]
fn legacy_charsets_windows_1252_and_shift_jis_decode_correctly() {
    let server = TestServer::start();
    let td = TestDir::new();

    // windows-1252: charset only in <meta>, Content-Type without charset.
    let fr_title = "Caf\u{e9} Owner Revives Old Recipes";
    let fr_paras: Vec<String> = vec![
        "The caf\u{e9} on the corner reopened this week, and its owner says it\u{2019}s the \u{201C}best\u{201D} \
         cr\u{e8}me br\u{fb}l\u{e9}e in town \u{2014} a na\u{ef}ve boast, perhaps, but the queue outside suggests \
         otherwise on a cold Tuesday morning."
            .to_string(),
        "Prices start at \u{20ac}4 for a pastry and the menu changes daily. \u{201C}We didn\u{2019}t want to \
         copy anyone,\u{201D} said Ren\u{e9}e, who trained in Lyon and returned home after twelve years \
         working in hotel kitchens abroad."
            .to_string(),
        "Regulars say the fa\u{e7}ade, repainted in the original green, is the first thing they noticed. \
         The owner hopes to add an outdoor terrace next spring if the council approves her application."
            .to_string(),
    ];
    let fr_html = article_page_with(&PageOpts {
        title: fr_title,
        byline: "Ren\u{e9} Martin",
        paragraphs: &fr_paras,
        canonical: None,
        meta_charset: Some("windows-1252"),
        lang: "en",
    });
    let (fr_bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&fr_html);
    assert!(!unmappable, "fixture must be representable in windows-1252");
    assert!(
        fr_bytes.contains(&0xE9) && fr_bytes.contains(&0x92),
        "fixture must contain 0xE9 and 0x92"
    );
    assert!(
        std::str::from_utf8(&fr_bytes).is_err(),
        "fixture must not be valid UTF-8"
    );
    server.route_fixed(
        "/intl/cafe",
        Response::ok("text/html", fr_bytes.into_owned()),
    );

    // Shift_JIS: charset only in the HTTP header, no <meta charset>.
    let ja_title = "東京の桜、例年より早く満開に";
    let ja_paras: Vec<String> = vec![
        "気象庁は五日、東京都心で桜が満開になったと発表した。平年より十日早く、観測史上二番目の早さとなった。\
         上野公園や千鳥ヶ淵には朝から多くの花見客が訪れ、満開の桜を写真に収めていた。"
            .to_string(),
        "専門家によると、今年は二月から三月にかけて気温の高い日が続いたことが開花を早めたという。\
         週末にかけては天気が崩れる見込みで、花見を計画している人は早めの外出を検討してほしいとしている。"
            .to_string(),
        "都内の商店街では、桜の季節に合わせた限定商品の販売も始まっている。ある和菓子店の店主は、\
         「毎年この時期を楽しみにしているお客さんが多いので、少しでも春の気分を味わってもらいたい」と話した。"
            .to_string(),
    ];
    let ja_html = article_page_with(&PageOpts {
        title: ja_title,
        byline: "山田 花子",
        paragraphs: &ja_paras,
        canonical: None,
        meta_charset: None,
        lang: "ja",
    });
    let (ja_bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&ja_html);
    assert!(!unmappable, "fixture must be representable in Shift_JIS");
    assert!(
        std::str::from_utf8(&ja_bytes).is_err(),
        "fixture must not be valid UTF-8"
    );
    server.route_fixed(
        "/intl/sakura",
        Response::ok("text/html; charset=Shift_JIS", ja_bytes.into_owned()),
    );

    let doc = rss(
        "International",
        &server.url("/intl"),
        &[
            Item::new(
                fr_title,
                &server.url("/intl/cafe"),
                utc("2024-03-05T09:00:00Z"),
            ),
            Item::new(
                ja_title,
                &server.url("/intl/sakura"),
                utc("2024-03-05T03:00:00Z"),
            ),
        ],
    );
    server.route_fixed("/intl/rss", Response::rss(doc));
    td.write_config(&[("intl", &server.url("/intl/rss"))]);

    let run = td.fetch();
    assert_exit(&run, 0, "charset pass");
    assert_eq!(
        td.output_files("txt").len(),
        2,
        "both stories should be written\n{run}"
    );

    let fr = td.story_titled(fr_title);
    assert!(
        !fr.text.contains('\u{FFFD}'),
        "windows-1252 page decoded with replacement chars:\n{}",
        fr.text
    );
    for needle in [
        "caf\u{e9}",
        "it\u{2019}s",
        "cr\u{e8}me br\u{fb}l\u{e9}e",
        "\u{20ac}4",
        "fa\u{e7}ade",
    ] {
        assert!(
            fr.text.contains(needle),
            "windows-1252 page: {needle:?} missing from:\n{}",
            fr.text
        );
    }
    assert_story_text(&fr.text, fr_title, &fr_paras, "windows-1252 page");

    let ja = td.story_titled(ja_title);
    assert!(
        !ja.text.contains('\u{FFFD}'),
        "Shift_JIS page decoded with replacement chars:\n{}",
        ja.text
    );
    for needle in ["気象庁は五日", "和菓子店の店主"] {
        assert!(
            ja.text.contains(needle),
            "Shift_JIS page: {needle:?} missing from:\n{}",
            ja.text
        );
    }
    assert_story_text(&ja.text, ja_title, &ja_paras, "Shift_JIS page");
}

/// A page of the "Valley Ledger": masthead, the article (a headline, its
/// paragraphs, then whatever `tail` blocks follow inside the article
/// container) and a footer.
fn ledger_page(title: &str, paras: &[String], tail: &[&str]) -> String {
    let body: String = paras
        .iter()
        .chain(
            tail.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .iter(),
        )
        .map(|p| format!("<p>{}</p>\n", html_escape(p)))
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} | Valley Ledger</title></head>\n\
         <body><header><nav><a href=\"/\">Home</a> <a href=\"/news/\">News</a></nav></header>\n\
         <main><div class=\"story-content\"><h1>{t}</h1>\n{body}</div></main>\n\
         <footer>Valley Ledger, 1 Main Street.</footer></body></html>",
        t = html_escape(title)
    )
}

/// A made-up house promo: no phrase list knows it, only learning can.
const VALLEY_PROMO: &str = "Hear the Lantern Hour with Mira Okafor on weekday evenings, \
     streamed live from our studio above the old mill on Quarry Lane.";

/// Learned boilerplate holds across passes: the promo every story carries
/// is dropped at the cold start (the batch is the evidence) and in every
/// later pass however few new items it brings (the store is), while a
/// short block unique to one story is kept.
#[test]
fn learned_boilerplate_stays_learned_in_later_small_passes() {
    let server = TestServer::start();
    let td = TestDir::new();
    let unique =
        |i: usize| format!("Correction {i}: an earlier version gave the wrong date for vote {i}.");
    let title = |i: usize| format!("River path story {i}");
    let paras = |i: usize| crate::crash::prose(500 + i as u64);
    for i in 0..16 {
        let u = unique(i);
        server.route_fixed(
            &format!("/news/story-{i}.html"),
            Response::html(ledger_page(&title(i), &paras(i), &[&u, VALLEY_PROMO])),
        );
    }
    let publish = |n: usize| {
        let items: Vec<Item> = (0..n)
            .rev()
            .map(|i| {
                Item::new(
                    &title(i),
                    &server.url(&format!("/news/story-{i}.html")),
                    utc("2024-03-05T08:00:00Z") + ChronoDuration::minutes(i as i64),
                )
            })
            .collect();
        server.route_fixed(
            "/valley.rss",
            Response::rss(rss("Valley", &server.url("/"), &items)),
        );
    };
    td.write_config(&[("valley", &server.url("/valley.rss"))]);

    // Premise: the extractor alone keeps the promo (it is in the article).
    let page = td.write_file(
        "page.html",
        ledger_page(&title(0), &paras(0), &[VALLEY_PROMO]),
    );
    let alone = td.run(&[std::ffi::OsStr::new("extract"), page.as_os_str()]);
    assert_exit(&alone, 0, "extract one page");
    assert!(
        alone.stdout.contains("Lantern Hour"),
        "premise: without learning the promo is extracted\n{alone}"
    );

    let mut written = 0;
    for (pass, n) in [8usize, 9, 13, 14, 15, 16].into_iter().enumerate() {
        publish(n);
        let run = td.fetch();
        assert_exit(&run, 0, &format!("pass {pass}"));
        let stories = td.stories();
        assert_eq!(stories.len(), n, "pass {pass}: every item written\n{run}");
        assert!(stories.len() > written);
        written = stories.len();
        for s in &stories {
            assert!(
                !s.text.contains("Lantern Hour"),
                "pass {pass} ({n} stories): the learned promo leaked into {}:\n{}",
                s.txt.display(),
                s.text
            );
            let i: usize = s.json["title"]
                .as_str()
                .and_then(|t| t.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("title of {:?}", s.json));
            assert!(
                s.text.contains(&unique(i)),
                "pass {pass}: the block unique to story {i} was dropped:\n{}",
                s.text
            );
            for p in paras(i) {
                assert!(
                    s.text.contains(p.trim()),
                    "story {i} lost prose:\n{}",
                    s.text
                );
            }
        }
    }
}

/// One page linked from more feeds than `page_attempts`, failing for one
/// pass: that is one try, not one per feed. It is not given up, and the
/// pass after it recovers writes it once, the other feeds' items listed as
/// its copies.
#[test]
fn a_page_linked_from_many_feeds_is_one_try_per_pass() {
    let server = TestServer::start();
    let td = TestDir::new();
    let art = Article::new(
        "f0",
        "Harbour Bridge Reopens After Repairs",
        "/page.html",
        0,
        "2024-03-05T10:00:00Z",
    );
    let n = 6;
    let (healthy, feeds) = many_feeds_one_page(
        &server,
        &td,
        &art,
        n,
        "\n[fetch]\npage_attempts = 3\n[schedule]\nerror_backoff = \"1s\"\n",
    );
    for pass in 1..=2 {
        let run = td.fetch();
        assert_exit(&run, 0, &format!("failing pass {pass}"));
        assert!(
            !run.combined().contains("given up"),
            "pass {pass}: {n} feeds failing once are one try of 3\n{run}"
        );
        assert!(
            run.stdout.contains(&format!("{n} failed items")),
            "pass {pass}: each feed's item is retried\n{run}"
        );
        assert_eq!(td.output_files("txt").len(), 0);
        let store = gleaner::store::SqliteStore::open(&td.state_dir()).unwrap();
        let key = gleaner::dedupe::url_key(&gleaner::dedupe::canonical_url(
            &url::Url::parse(&server.url(&art.path)).unwrap(),
        ));
        let pf = gleaner::store::StateStore::page_failure(&store, key)
            .unwrap()
            .expect("the failure is recorded");
        assert_eq!((pf.attempts, pf.given_up), (pass, false), "pass {pass}");
    }

    healthy.store(true, Ordering::SeqCst);
    // Past the page's backoff after its second try (`error_backoff`).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = td.fetch();
    assert_exit(&run, 0, "recovered pass");
    let stories = td.stories();
    assert_eq!(stories.len(), 1, "written exactly once\n{run}");
    let j = &stories[0].json;
    let dups = j["duplicates"].as_array().expect("duplicates list");
    assert_eq!(dups.len(), n - 1, "the other feeds' sightings\n{j:#}");
    let mut seen: Vec<&str> = dups
        .iter()
        .map(|d| d["feed"].as_str().unwrap())
        .chain(j["feed"].as_str())
        .collect();
    seen.sort_unstable();
    let mut want: Vec<&str> = feeds.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(seen, want, "every feed once\n{j:#}");
    assert!(run.stdout.contains("1 new,"), "{run}");
}

/// Feeds `f0..fN` each with one item (own GUID) linking `path`, which
/// answers 500 until `healthy` is set; `extra` is appended to the config.
fn many_feeds_one_page(
    server: &TestServer,
    td: &TestDir,
    art: &Article,
    n: usize,
    extra: &str,
) -> (Arc<AtomicBool>, Vec<String>) {
    let healthy = Arc::new(AtomicBool::new(false));
    server.route(
        &art.path,
        switch(
            Arc::clone(&healthy),
            Response::status(500),
            Response::html(art.page(server)),
        ),
    );
    let mut feeds = Vec::new();
    for f in 0..n {
        let item = art.item(server).guid(&format!("feed-{f}-item"));
        server.route_fixed(
            &format!("/f/{f}.rss"),
            Response::rss(rss(&format!("Feed {f}"), &server.url("/"), &[item])),
        );
        feeds.push((format!("f{f}"), server.url(&format!("/f/{f}.rss"))));
    }
    let mut cfg = TestDir::config_text(
        &feeds
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
    );
    cfg.push_str(extra);
    td.write_config_text(&cfg);
    (healthy, feeds.into_iter().map(|(f, _)| f).collect())
}

/// The same page failing in every feed's pass is given up once, after
/// `page_attempts` passes, with one warning; then it is not asked again.
#[test]
fn a_page_linked_from_many_feeds_is_given_up_once() {
    let server = TestServer::start();
    let td = TestDir::new();
    let art = Article::new(
        "f0",
        "Night Market Returns to the Old Quarter",
        "/market.html",
        4,
        "2024-03-05T10:00:00Z",
    );
    let n = 5;
    many_feeds_one_page(&server, &td, &art, n, "\n[fetch]\npage_attempts = 2\n");
    let first = td.fetch();
    assert!(!first.combined().contains("given up"), "{first}");
    let second = td.fetch();
    assert_exit(&second, 0, "the pass that gives up");
    assert_eq!(
        second.stderr.matches("page given up after 2 tries").count(),
        1,
        "the give-up is logged once\n{second}"
    );
    assert!(
        second
            .stdout
            .contains("given up after 2 tries: HTTP status 500"),
        "{second}"
    );
    let hits = server.hits(&art.path);
    let third = td.fetch();
    assert_exit(&third, 0, "after the give-up");
    assert_eq!(server.hits(&art.path), hits, "given up: not asked again");
    assert!(!third.combined().contains("given up after"), "{third}");
}

/// Links gleaner refuses (a local file or a `data:` URL in an http feed, a
/// scheme it does not fetch) can never succeed: each is reported once and
/// not retried, and they do not cost the feed its validators, so the next
/// pass is a 304.
#[test]
fn refused_links_are_reported_once_and_not_retried() {
    let server = TestServer::start();
    let td = TestDir::new();
    let ok = Article::new(
        "open-feed",
        "Tram Line Extension Opens to Passengers",
        "/open/tram",
        3,
        "2024-03-05T10:00:00Z",
    );
    ok.serve(&server);
    let refused = [
        "file:///etc/passwd",
        "data:text/html,<p>hello</p>",
        "gopher://127.0.0.1/1/news",
    ];
    let items = |extra: &[Item]| -> Vec<Item> {
        let mut v: Vec<Item> = refused
            .iter()
            .enumerate()
            .map(|(i, link)| Item::new(&format!("Odd link {i}"), link, utc("2024-03-05T09:00:00Z")))
            .collect();
        v.push(ok.item(&server));
        v.extend_from_slice(extra);
        v
    };
    let serve_feed = |items: &[Item], etag: &str| {
        server.route(
            "/open/rss",
            conditional(
                Response::rss(rss("Open Feed", &server.url("/open"), items)),
                etag,
                "Tue, 05 Mar 2024 10:00:00 GMT",
            ),
        );
    };
    serve_feed(&items(&[]), "\"v1\"");
    td.write_config(&[("open-feed", &server.url("/open/rss"))]);

    let run = td.fetch();
    assert_exit(&run, 0, "first pass");
    assert_eq!(td.output_files("txt").len(), 1, "{run}");
    assert_eq!(
        run.stdout.matches("refused, not fetched").count(),
        refused.len(),
        "each refused link is in the summary\n{run}"
    );
    assert!(run.stdout.contains("3 page(s) given up"), "{run}");
    assert!(
        !run.stdout.contains("retried next pass"),
        "a refused link is not retried\n{run}"
    );
    assert_eq!(
        run.stderr.matches("link refused").count(),
        refused.len(),
        "one warning each\n{run}"
    );

    // Nothing held the validators back: a 304, nothing reported again.
    let run = td.fetch();
    assert_exit(&run, 0, "second pass");
    assert!(run.stdout.contains("not modified"), "{run}");
    assert!(!run.combined().contains("refused"), "{run}");
    let statuses: Vec<u16> = server
        .requests_for("/open/rss")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 304]);

    // The feed changes: the new item is written, the refused ones stay quiet.
    let fresh = Article::new(
        "open-feed",
        "Lifeboat Volunteers Receive Bravery Medals",
        "/open/lifeboat",
        5,
        "2024-03-06T10:00:00Z",
    );
    fresh.serve(&server);
    serve_feed(&items(&[fresh.item(&server)]), "\"v2\"");
    let run = td.fetch();
    assert_exit(&run, 0, "third pass");
    assert_eq!(td.output_files("txt").len(), 2, "{run}");
    assert!(!run.combined().contains("refused"), "{run}");
    assert!(run.stdout.contains(" ok"), "{run}");
}

/// A tracking-parameter copy of a page in the same feed is a duplicate,
/// as it is from another feed: listed in the story's `duplicates` and
/// counted in the summary; the same item twice is one item.
#[test]
fn tracking_copy_in_the_same_feed_is_listed_as_a_duplicate() {
    let server = TestServer::start();
    let td = TestDir::new();
    let art = Article::new(
        "harbour",
        "Orchards Report Record Apple Harvest",
        "/story.html",
        2,
        "2024-03-05T10:00:00Z",
    );
    art.serve(&server);
    let plain = server.url(&art.path);
    let tracked = format!("{plain}?utm_source=x&fbclid=y");
    let items = [
        Item::new(&art.title, &plain, art.published).guid("s-1"),
        Item::new(&art.title, &tracked, art.published).guid("s-2"),
        // The same item again (same GUID, same link): not a copy.
        Item::new(&art.title, &plain, art.published).guid("s-1"),
    ];
    server.route_fixed(
        "/harbour.rss",
        Response::rss(rss("Harbour", &server.url("/"), &items)),
    );
    td.write_config(&[("harbour", &server.url("/harbour.rss"))]);

    let check = |when: &str| {
        let stories = td.stories();
        assert_eq!(stories.len(), 1, "{when}");
        let j = &stories[0].json;
        assert_eq!(j["url"].as_str(), Some(plain.as_str()), "{when}\n{j:#}");
        let dups = j["duplicates"].as_array().expect("duplicates");
        assert_eq!(dups.len(), 1, "{when}: one copy\n{j:#}");
        assert_eq!(
            dups[0]["url"].as_str(),
            Some(tracked.as_str()),
            "{when}\n{j:#}"
        );
        assert_eq!(dups[0]["feed"].as_str(), Some("harbour"), "{when}\n{j:#}");
        assert_eq!(dups[0]["matched_by"].as_str(), Some("url"), "{when}\n{j:#}");
    };
    let run = td.fetch();
    assert_exit(&run, 0, "first pass");
    check("after pass 1");
    assert!(
        run.stdout
            .contains("total: 1 feeds (0 failed), 1 new, 1 duplicate,"),
        "{run}"
    );
    assert_eq!(server.hits(&art.path), 1, "one page, fetched once");
    // Re-read (no validators): the copy is known, not listed again.
    let run = td.fetch();
    assert_exit(&run, 0, "second pass");
    check("after pass 2");
    assert!(run.stdout.contains("0 new, 0 duplicate,"), "{run}");
}

/// `gleaner fetch` with the default log filter (no GLEANER_LOG).
fn fetch_default_log(td: &TestDir) -> RunResult {
    let out = crate::common::testdir::loopback_only(&mut std::process::Command::new(
        crate::common::testdir::BIN,
    ))
    .arg("fetch")
    .arg("--config")
    .arg(td.config_path())
    .current_dir(&td.cwd)
    .env_remove("GLEANER_LOG")
    .env_remove("RUST_LOG")
    .env("NO_COLOR", "1")
    .output()
    .unwrap();
    RunResult {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: std::time::Duration::ZERO,
    }
}

/// At the default log level a warning names the feed (and the page) it is
/// about: the spans carrying them are enabled whenever warnings are.
#[test]
fn warnings_name_the_feed_and_url_at_the_default_log_level() {
    let server = TestServer::start();
    let td = TestDir::new();
    server.route_fixed("/tide.rss", Response::status(500));
    let items = [Item::new(
        "Sea Wall Works Delayed",
        &server.url("/broken.html"),
        utc("2024-03-05T10:00:00Z"),
    )];
    server.route_fixed(
        "/gull.rss",
        Response::rss(rss("Gull", &server.url("/"), &items)),
    );
    server.route_fixed("/broken.html", Response::status(502));
    td.write_config(&[
        ("tidewater", &server.url("/tide.rss")),
        ("gullcove", &server.url("/gull.rss")),
    ]);
    let run = fetch_default_log(&td);
    assert_exit(&run, 0, "a failing feed and a failing page");
    let line = |what: &str| {
        run.stderr
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} line\n{run}"))
            .to_string()
    };
    let failed = line("feed failed");
    assert!(
        failed.contains("tidewater") && failed.contains(&server.url("/tide.rss")),
        "{failed}"
    );
    let page = line("page failed");
    assert!(
        page.contains("gullcove") && page.contains(&server.url("/broken.html")),
        "{page}"
    );
}
