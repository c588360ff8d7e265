//! Hostile servers and input (issue 6). Every case runs one `gleaner fetch`
//! against servers on 127.0.0.1 with a good feed beside the hostile one(s),
//! and checks: exit 0, no panic, the good feed's story written, a clear
//! error for the hostile feed in the summary, bounded time, and peak RSS of
//! the whole pass under 256 MiB (measured with `/usr/bin/time -v`, or by
//! polling `VmHWM` when it is missing).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::measure::{fetch_measured, Measured, MAX_RSS_KIB};
use crate::common::*;

const GOOD_TITLE: &str = "Harbour bridge reopens after eleven weeks of repairs";

/// Tight limits so that a hostile case ends in seconds.
const FAST: &str = "[fetch]\ntimeout = \"2s\"\nconnect_timeout = \"2s\"\nmax_feed_bytes = 1048576\nmax_page_bytes = 1048576\n";

// ---------------------------------------------------------------- helpers

/// Serves the good feed (`/good/feed.rss`, one article) on `server`.
fn serve_good(server: &TestServer) -> String {
    let paras = paragraphs(0);
    server.route_fixed(
        "/good/a1.html",
        Response::html(article_page(GOOD_TITLE, &paras, None)),
    );
    let item = Item::new(
        GOOD_TITLE,
        &server.url("/good/a1.html"),
        utc("2024-03-05T10:00:00Z"),
    );
    server.route_fixed(
        "/good/feed.rss",
        Response::rss(rss("Good", &server.url("/"), &[item])),
    );
    server.url("/good/feed.rss")
}

/// Writes the config: `good` plus `feeds`, then `fetch` (a `[fetch]` table).
fn write_config(td: &TestDir, good: &str, feeds: &[(&str, String)], fetch: &str) {
    let mut all: Vec<(&str, &str)> = vec![("good", good)];
    all.extend(feeds.iter().map(|(n, u)| (*n, u.as_str())));
    let text = format!("{}\n{fetch}", TestDir::config_text(&all));
    td.write_config_text(&text);
}

/// The summary line of `feed` and its item-error lines.
fn feed_block(stdout: &str, feed: &str) -> String {
    let mut lines = stdout
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(feed));
    let Some(first) = lines.next() else {
        panic!("feed {feed:?} missing from the summary:\n{stdout}");
    };
    let mut block = first.to_string();
    for l in lines.take_while(|l| l.starts_with(' ') && l.trim_start().starts_with("- ")) {
        block.push('\n');
        block.push_str(l);
    }
    block
}

/// What every case asserts: exit 0, no panic, the good story written and
/// its feed "ok", bounded time and memory.
fn check_pass(td: &TestDir, m: &Measured, case: &str, max_time: Duration) {
    let run = &m.run;
    eprintln!(
        "hostile case {case}: {:.1?}, peak RSS {:.1} MiB",
        run.elapsed,
        m.peak_kib as f64 / 1024.0
    );
    assert_eq!(run.code, Some(0), "{case}: exit status\n{run}");
    assert!(
        !run.stderr.contains("panicked"),
        "{case}: gleaner panicked\n{run}"
    );
    let good = td.story_titled(GOOD_TITLE);
    assert_story_text(&good.text, GOOD_TITLE, &paragraphs(0), case);
    let line = feed_block(&run.stdout, "good");
    assert!(
        line.ends_with(" ok"),
        "{case}: good feed not ok: {line}\n{run}"
    );
    assert!(
        run.elapsed < max_time,
        "{case}: took {:?} (bound {max_time:?})\n{run}",
        run.elapsed
    );
    assert!(m.peak_kib > 0, "{case}: peak RSS not measured");
    assert!(
        m.peak_kib < MAX_RSS_KIB,
        "{case}: peak RSS {} KiB over {} KiB\n{run}",
        m.peak_kib,
        MAX_RSS_KIB
    );
}

/// `feed` is reported with an error mentioning one of `needles`:
/// the feed `FAILED`, or its item(s) failed.
fn assert_feed_error(run: &RunResult, feed: &str, needles: &[&str]) {
    let block = feed_block(&run.stdout, feed);
    assert!(
        block.contains("FAILED") || block.contains("item(s) failed"),
        "{feed}: no error in the summary: {block}\n{run}"
    );
    assert!(
        needles.iter().any(|n| block.contains(n)),
        "{feed}: error should mention one of {needles:?}: {block}\n{run}"
    );
}

/// No file under the test dir, nor stdout/stderr, contains `needle`.
fn assert_nowhere(td: &TestDir, run: &RunResult, needle: &str) {
    assert!(
        !run.combined().contains(needle),
        "{needle:?} in gleaner's output\n{run}"
    );
    for f in walk_files(&td.out_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(needle),
            "{needle:?} written to {}",
            f.display()
        );
    }
}

/// A raw TCP server for responses `TestServer` cannot make (endless,
/// trickling): reads the request head, then hands the path and the socket
/// to `handler` on its own thread.
struct RawServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl RawServer {
    fn start(handler: impl Fn(&str, TcpStream) + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let accept = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for s in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut s) = s else { continue };
                    let handler = handler.clone();
                    std::thread::spawn(move || {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                        handler(&path, s);
                    });
                }
            })
        };
        RawServer {
            addr,
            stop,
            accept: Some(accept),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A one-item feed on `server` at `path` whose item links to `link`.
fn one_item_feed(server: &TestServer, path: &str, title: &str, link: &str) -> String {
    let item = Item::new(title, link, utc("2024-03-06T10:00:00Z"));
    server.route_fixed(path, Response::rss(rss(title, &server.url("/"), &[item])));
    server.url(path)
}

// ------------------------------------------------------------------ cases

#[test]
fn endless_body_hits_the_size_cap() {
    let server = TestServer::start();
    let good = serve_good(&server);
    // Close-delimited endless feed, chunked endless page: both kinds of
    // unbounded body. The server stops when gleaner hangs up (or at 1 GiB).
    let raw = RawServer::start(|path, mut s| {
        let chunk =
            "<item><title>again</title><link>http://127.0.0.1/x</link></item>\n".repeat(1000);
        let head = if path.ends_with(".rss") {
            "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nConnection: close\r\n\r\n<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>E</title>\n"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        };
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut sent = 0usize;
        while sent < 1 << 30 {
            let r = if path.ends_with(".rss") {
                s.write_all(chunk.as_bytes())
            } else {
                s.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            };
            if r.is_err() {
                return;
            }
            sent += chunk.len();
        }
    });
    let page_feed = one_item_feed(
        &server,
        "/endless-page.rss",
        "Endless page",
        &raw.url("/endless.html"),
    );
    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[
            ("endless", raw.url("/endless.rss")),
            ("endless-page", page_feed),
        ],
        FAST,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "endless body", Duration::from_secs(20));
    assert_feed_error(&m.run, "endless", &["larger than the 1048576 byte limit"]);
    assert_feed_error(
        &m.run,
        "endless-page",
        &["larger than the 1048576 byte limit"],
    );
}

#[test]
fn trickling_body_hits_the_total_timeout() {
    let server = TestServer::start();
    let good = serve_good(&server);
    // Headers at once, then one byte a second: every read succeeds, only a
    // timeout on the whole request ends it.
    let raw = RawServer::start(|path, mut s| {
        let ct = if path.ends_with(".rss") {
            "application/rss+xml"
        } else {
            "text/html"
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        for _ in 0..60 {
            if s.write_all(b"<").and_then(|()| s.flush()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let page_feed = one_item_feed(
        &server,
        "/slow-page.rss",
        "Slow page",
        &raw.url("/slow.html"),
    );
    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[
            ("trickle", raw.url("/slow.rss")),
            ("trickle-page", page_feed),
        ],
        FAST,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "trickling body", Duration::from_secs(15));
    assert_feed_error(&m.run, "trickle", &["timed out"]);
    assert_feed_error(&m.run, "trickle-page", &["timed out"]);
}

/// A gzip stream of 1 GiB of zeros (about 1 MB): one deflate segment of
/// 1 MiB of zeros, ended by a full flush so it references nothing before
/// it, repeated 1024 times; the CRC is combined, not computed over 1 GiB.
fn gzip_bomb() -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress};
    const MIB: usize = 1 << 20;
    const COPIES: usize = 1024;
    let zeros = vec![0u8; MIB];
    let mut c = Compress::new(Compression::best(), false);
    let mut segment = Vec::with_capacity(64 * 1024);
    c.compress_vec(&zeros, &mut segment, FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in(), MIB as u64, "segment must hold all the zeros");
    let mut end = Vec::with_capacity(64);
    Compress::new(Compression::best(), false)
        .compress_vec(&[], &mut end, FlushCompress::Finish)
        .unwrap();
    let mut one = Crc::new();
    one.update(&zeros);
    let mut crc = Crc::new();
    for _ in 0..COPIES {
        crc.combine(&one);
    }
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..COPIES {
        out.extend_from_slice(&segment);
    }
    out.extend_from_slice(&end);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&((COPIES * MIB) as u32).to_le_bytes());
    out
}

#[test]
fn gzip_bomb_stops_at_the_decompressed_cap() {
    let bomb = gzip_bomb();
    // The bomb is real: small on the wire, zeros as far as we care to read.
    assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
    let mut head = vec![0u8; 8 << 20];
    flate2::read::GzDecoder::new(&bomb[..])
        .read_exact(&mut head)
        .unwrap();
    assert!(head.iter().all(|&b| b == 0));

    let server = TestServer::start();
    let good = serve_good(&server);
    let gz = |ct: &str| Response::ok(ct, bomb.clone()).header("Content-Encoding", "gzip");
    server.route_fixed("/bomb.rss", gz("application/rss+xml"));
    server.route_fixed("/bomb.html", gz("text/html"));
    let page_feed = one_item_feed(
        &server,
        "/bomb-page.rss",
        "Bomb page",
        &server.url("/bomb.html"),
    );
    let td = TestDir::new();
    // Caps above the compressed size, far below the decompressed one.
    let fetch = "[fetch]\ntimeout = \"10s\"\nmax_feed_bytes = 4194304\nmax_page_bytes = 4194304\n";
    write_config(
        &td,
        &good,
        &[("bomb", server.url("/bomb.rss")), ("bomb-page", page_feed)],
        fetch,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "gzip bomb", Duration::from_secs(20));
    assert_feed_error(&m.run, "bomb", &["larger than the 4194304 byte limit"]);
    assert_feed_error(&m.run, "bomb-page", &["larger than the 4194304 byte limit"]);
}

#[test]
fn xml_entity_bombs_and_external_entities_are_not_expanded() {
    let server = TestServer::start();
    let good = serve_good(&server);
    let mut laughs = String::from(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n <!ENTITY lol \"lollollollollollollollollollol\">\n",
    );
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        laughs.push_str(&format!(
            " <!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    let page = |n: usize, title: &str, path: &str| {
        server.route_fixed(
            path,
            Response::html(article_page(title, &paragraphs(n), None)),
        );
        server.url(path)
    };
    let laugh_link = page(1, "Laughing page", "/laugh.html");
    laughs.push_str(&format!(
        "]>\n<rss version=\"2.0\"><channel><title>&lol9;</title><link>{0}</link><description>&lol9;</description>\n\
         <item><title>Laughs &lol9;</title><link>{1}</link><guid>&lol9;</guid><description>&lol9;</description></item>\n\
         </channel></rss>\n",
        server.url("/"),
        laugh_link
    ));
    server.route_fixed("/laughs.rss", Response::rss(laughs));

    let xxe_link = page(2, "Entity page", "/xxe.html");
    let xxe = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n <!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n <!ENTITY % pe SYSTEM \"file:///etc/passwd\">\n %pe;\n]>\n\
         <rss version=\"2.0\"><channel><title>X &xxe;</title><link>{0}</link><description>&xxe;</description>\n\
         <item><title>Entity &xxe;</title><link>{1}</link><description>&xxe;</description><author>&xxe;</author></item>\n\
         </channel></rss>\n",
        server.url("/"),
        xxe_link
    );
    server.route_fixed("/xxe.rss", Response::rss(xxe));

    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[
            ("laughs", server.url("/laughs.rss")),
            ("xxe", server.url("/xxe.rss")),
        ],
        FAST,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "XML entities", Duration::from_secs(20));
    // No expansion: not even one level of it.
    assert_nowhere(&td, &m.run, "lollollollollollollollollollollol");
    // No file read.
    assert_nowhere(&td, &m.run, "root:");
    assert_feed_error(&m.run, "laughs", &["entit", "DOCTYPE", "DTD"]);
    assert_feed_error(&m.run, "xxe", &["entit", "DOCTYPE", "DTD"]);
}

#[test]
fn redirect_loops_long_chains_and_other_schemes_fail_cleanly() {
    let server = TestServer::start();
    let good = serve_good(&server);
    let redirect = |to: &str| Response::new(302).header("Location", to);
    server.route_fixed("/loop.rss", redirect("/loop.rss"));
    for i in 0..20 {
        server.route_fixed(&format!("/hop/{i}"), redirect(&format!("/hop/{}", i + 1)));
    }
    server.route_fixed("/hop/20", Response::rss(rss("End", &server.url("/"), &[])));
    server.route_fixed("/to-file.rss", redirect("file:///etc/passwd"));
    server.route_fixed("/to-ftp.rss", redirect("ftp://127.0.0.1/feed.rss"));
    // An item linking straight to a local file, and one redirecting there.
    server.route_fixed("/to-file.html", redirect("file:///etc/passwd"));
    let items = [
        Item::new("Passwd", "file:///etc/passwd", utc("2024-03-06T10:00:00Z")),
        Item::new(
            "Passwd again",
            &server.url("/to-file.html"),
            utc("2024-03-06T11:00:00Z"),
        ),
    ];
    server.route_fixed(
        "/file-items.rss",
        Response::rss(rss("F", &server.url("/"), &items)),
    );

    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[
            ("loop", server.url("/loop.rss")),
            ("chain", server.url("/hop/0")),
            ("to-file", server.url("/to-file.rss")),
            ("to-ftp", server.url("/to-ftp.rss")),
            ("file-items", server.url("/file-items.rss")),
        ],
        FAST,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "redirects", Duration::from_secs(20));
    assert_feed_error(&m.run, "loop", &["more than 5 redirects"]);
    assert_feed_error(&m.run, "chain", &["more than 5 redirects"]);
    // The chain was cut at the limit, not followed to its end.
    assert!(
        server.hits("/hop/6") <= 1 && server.hits("/hop/7") == 0,
        "{}",
        server.log_summary()
    );
    assert_feed_error(
        &m.run,
        "to-file",
        &["file:///etc/passwd: redirect target is not an http or https URL"],
    );
    assert_feed_error(&m.run, "to-ftp", &["redirect to a ftp: URL refused"]);
    let block = feed_block(&m.run.stdout, "file-items");
    // A file: link can never be fetched from an http feed: given up at
    // once. A redirect to one is the server's answer of the day: retried.
    assert!(block.contains("1 item(s) failed"), "{block}");
    assert!(block.contains("1 page(s) given up"), "{block}");
    assert!(
        block.contains("file:///etc/passwd: refused, not fetched")
            && block.contains("only followed from local feeds"),
        "{block}"
    );
    assert!(
        block.contains("redirect target is not an http or https URL"),
        "{block}"
    );
    assert_nowhere(&td, &m.run, "root:");
}

#[test]
fn feeds_of_100k_items_finish_in_bounded_time_and_memory() {
    let server = TestServer::start();
    let good = serve_good(&server);
    // Six pages, each linked from thousands of items under distinct GUIDs.
    let pages: Vec<String> = (0..6)
        .map(|i| {
            let path = format!("/huge/p{i}.html");
            let title = format!("Huge feed story {i}");
            server.route_fixed(
                &path,
                Response::html(article_page(&title, &paragraphs(i + 1), None)),
            );
            server.url(&path)
        })
        .collect();
    // RSS: 100,000 full items (25 MB).
    let base = utc("2024-03-06T00:00:00Z");
    let items: Vec<Item> = (0..100_000)
        .map(|i| {
            Item::new(
                &format!("Huge feed story {}", i % 4),
                &pages[i % 4],
                base + chrono::Duration::seconds(i as i64),
            )
            .guid(&format!("huge-{i}"))
        })
        .collect();
    let body = rss("Huge", &server.url("/"), &items);
    assert!(body.len() > 20 << 20, "feed is {} bytes", body.len());
    server.route_fixed("/huge.rss", Response::rss(body));
    // RSS: 10 MB of bare items (about 290,000): the most items per byte.
    let one = format!("<item><link>{}</link></item>\n", pages[4]);
    let mut bare =
        String::from("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Bare</title>\n");
    bare.push_str(&one.repeat((10 << 20) / one.len()));
    bare.push_str("</channel></rss>\n");
    server.route_fixed("/bare.rss", Response::rss(bare));
    // JSON Feed: 100,000 items.
    let json_items: Vec<serde_json::Value> = (0..100_000)
        .map(|i| serde_json::json!({"id": format!("j{i}"), "url": pages[5], "title": "Huge feed story 5"}))
        .collect();
    let json = serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": json_items});
    server.route_fixed(
        "/huge.json",
        Response::ok("application/feed+json", json.to_string()),
    );

    // JSON Feed: 10 MB of empty items (3.5 million, 3 bytes each).
    let mut empty =
        String::from(r#"{"version":"https://jsonfeed.org/version/1.1","title":"E","items":[{}"#);
    empty.push_str(&",{}".repeat((10 << 20) / 3));
    empty.push_str("]}");
    server.route_fixed("/empty.json", Response::ok("application/feed+json", empty));

    let td = TestDir::new();
    let fetch = "[fetch]\ntimeout = \"20s\"\nmax_feed_bytes = 67108864\n";
    write_config(
        &td,
        &good,
        &[
            ("huge", server.url("/huge.rss")),
            ("bare", server.url("/bare.rss")),
            ("json", server.url("/huge.json")),
            ("json-empty", server.url("/empty.json")),
        ],
        fetch,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "100k items", Duration::from_secs(45));
    // The cut is in each feed's summary, with how many items it left out.
    let bare_items = (10 << 20) / format!("<item><link>{}</link></item>\n", pages[4]).len();
    for (feed, total) in [("huge", 100_000), ("bare", bare_items), ("json", 100_000)] {
        let block = feed_block(&m.run.stdout, feed);
        let status = block.lines().next().unwrap_or_default();
        let cut = format!("{} item(s) past the limit ignored", total - 10_000);
        assert!(status.ends_with(&cut), "{feed}: {block}\n{}", m.run);
        let note = format!(
            "{} items beyond the 10000-item limit ignored",
            total - 10_000
        );
        assert!(
            block.contains(&note),
            "{feed}: {note:?} missing: {block}\n{}",
            m.run
        );
    }
    assert!(
        feed_block(&m.run.stdout, "json-empty")
            .contains("items beyond the 10000-item limit ignored"),
        "{}",
        m.run
    );
    for i in [0, 1, 2, 3, 5] {
        td.story_titled(&format!("Huge feed story {i}"));
    }
    assert_eq!(td.stories().len(), 7, "{:#?}", td.output_files("txt"));
    // Each page fetched once, however many items link to it.
    for i in 0..6 {
        assert_eq!(
            server.hits(&format!("/huge/p{i}.html")),
            1,
            "{}",
            server.log_summary()
        );
    }
    // Items without a link are reported, up to the cut.
    assert_feed_error(&m.run, "json-empty", &["10000 item(s) failed"]);
    assert!(feed_block(&m.run.stdout, "json-empty").contains("item has no link"));
    // The cut is logged, once per feed, naming it.
    assert_eq!(
        m.run.stderr.matches("too many items").count(),
        4,
        "{}",
        m.run
    );
    for feed in ["huge", "bare", "json", "json-empty"] {
        assert!(
            m.run
                .stderr
                .lines()
                .any(|l| l.contains("too many items") && l.contains(&format!("feed={feed} "))),
            "{feed}\n{}",
            m.run
        );
    }
}

#[test]
fn page_of_100k_nested_elements_does_not_crash() {
    let server = TestServer::start();
    let good = serve_good(&server);
    let paras = paragraphs(3);
    let mut page = String::from("<!DOCTYPE html><html><head><title>Deep</title></head><body>");
    page.push_str(&"<div>".repeat(100_000));
    for p in &paras {
        page.push_str(&format!("<p>{}</p>", html_escape(p)));
    }
    page.push_str(&"</div>".repeat(100_000));
    page.push_str("</body></html>");
    server.route_fixed("/deep.html", Response::html(page));
    // Unclosed inline elements nest too (and trip the adoption agency).
    let mut inline = String::from("<!DOCTYPE html><html><body><p>");
    inline.push_str(&"<b><i>".repeat(50_000));
    inline.push_str(&html_escape(&paragraphs(4)[0]));
    inline.push_str("</p></body></html>");
    server.route_fixed("/inline.html", Response::html(inline));
    let deep = one_item_feed(&server, "/deep.rss", "Deep page", &server.url("/deep.html"));
    let inline_feed = one_item_feed(
        &server,
        "/inline.rss",
        "Inline page",
        &server.url("/inline.html"),
    );
    let td = TestDir::new();
    // The nested page is 1.1 MB of tags: let it in, to reach the parser.
    let fetch = FAST.replace("max_page_bytes = 1048576", "max_page_bytes = 4194304");
    write_config(
        &td,
        &good,
        &[("deep", deep), ("inline", inline_feed)],
        &fetch,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "100k nested elements", Duration::from_secs(30));
    // Either extracted or cleanly reported; never a crash (checked above).
    for feed in ["deep", "inline"] {
        let block = feed_block(&m.run.stdout, feed);
        assert!(
            block.ends_with(" ok") || block.contains("item(s) failed"),
            "{feed}: {block}"
        );
        eprintln!("nested case {feed}: {block}");
    }
}

const CYRILLIC: [&str; 4] = [
    "Городской совет утвердил план реконструкции набережной, которая закрыта для пешеходов с прошлой осени после сильного шторма.",
    "Работы начнутся в мае и продлятся около полутора лет. Подрядчик обещает сохранить старые фонари и чугунные скамейки вдоль реки.",
    "Жители прибрежных кварталов просили ускорить ремонт, потому что без набережной им приходится ходить к пристани в обход через рынок.",
    "Стоимость проекта оценивается в сорок миллионов рублей, половину суммы выделит областной бюджет, остальное добавит город.",
];

/// A second story, so the two pages are not near-duplicates of each other.
const CYRILLIC_2: [&str; 4] = [
    "Областная библиотека будет работать по вечерам до девяти часов, после того как осенний эксперимент привлёк много студентов.",
    "Число посетителей после шести часов выросло почти на шестьдесят процентов, особенно популярными оказались тихий зал и бесплатные принтеры.",
    "Дополнительные часы обеспечат волонтёры из общества друзей библиотеки и два новых сотрудника, сообщили в комитете по культуре.",
    "Районные филиалы в северных пригородах в программу не вошли, и местные жители уже собирают подписи за равные условия.",
];

#[test]
fn invalid_utf8_and_a_lying_charset_header() {
    let server = TestServer::start();
    let good = serve_good(&server);
    let texts: Vec<Vec<String>> = [CYRILLIC, CYRILLIC_2]
        .iter()
        .map(|t| t.iter().map(|s| s.to_string()).collect())
        .collect();
    let title = "Набережную отремонтируют к следующему лету";
    // The header says UTF-8; the bytes are windows-1251. Once with no meta
    // charset, once with a <meta charset="utf-8"> that lies too.
    for (i, (path, meta)) in [("/cyr1.html", None), ("/cyr2.html", Some("utf-8"))]
        .into_iter()
        .enumerate()
    {
        let html = article_page_with(&PageOpts {
            title,
            byline: "Иван Петров",
            paragraphs: &texts[i],
            canonical: None,
            meta_charset: meta,
            lang: "ru",
        });
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(&html);
        assert!(!unmappable);
        server.route_fixed(path, Response::html(bytes.into_owned()));
    }
    let items = [
        Item::new(
            &format!("{title} (1)"),
            &server.url("/cyr1.html"),
            utc("2024-03-06T10:00:00Z"),
        ),
        Item::new(
            &format!("{title} (2)"),
            &server.url("/cyr2.html"),
            utc("2024-03-06T11:00:00Z"),
        ),
    ];
    server.route_fixed(
        "/cyr.rss",
        Response::rss(rss("Кириллица", &server.url("/"), &items)),
    );

    // A UTF-8 feed with invalid bytes in one item's title and description,
    // and a UTF-8 page with a stray invalid byte.
    let bad_para = paragraphs(5);
    let mut bad_page = article_page("Lifeboat crew honoured", &bad_para, None).into_bytes();
    let at = bad_page
        .windows(11)
        .position(|w| w == b"Five volunt")
        .unwrap();
    bad_page.insert(at, 0xff);
    server.route_fixed("/bad-utf8.html", Response::html(bad_page));
    let mut feed = rss(
        "Bad bytes",
        &server.url("/"),
        &[Item::new(
            "Lifeboat crew honoured XXXX",
            &server.url("/bad-utf8.html"),
            utc("2024-03-06T12:00:00Z"),
        )],
    )
    .into_bytes();
    let at = feed.windows(4).position(|w| w == b"XXXX").unwrap();
    feed.splice(at..at + 4, [0xff, 0xfe, 0xc3, b'!']);
    server.route_fixed("/bad-utf8.rss", Response::rss(feed));

    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[
            ("cyr", server.url("/cyr.rss")),
            ("bad-utf8", server.url("/bad-utf8.rss")),
        ],
        FAST,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "charset", Duration::from_secs(20));
    for n in 1..=2 {
        let t = format!("{title} ({n})");
        let story = td.story_titled(&t);
        assert!(
            !story.text.contains('\u{FFFD}'),
            "U+FFFD in {}:\n{}",
            story.txt.display(),
            story.text
        );
        assert_story_text(
            &story.text,
            &t,
            &texts[n - 1],
            &format!("cyrillic page {n}"),
        );
    }
    // The feed with bad bytes still yields its story; its text is intact.
    let block = feed_block(&m.run.stdout, "bad-utf8");
    assert!(block.ends_with(" ok"), "{block}\n{}", m.run);
    let story = td
        .stories()
        .into_iter()
        .find(|s| {
            s.json["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Lifeboat crew honoured"))
        })
        .unwrap_or_else(|| panic!("no story from the feed with invalid UTF-8\n{}", m.run));
    for p in &bad_para[1..] {
        assert!(
            story.text.contains(p.as_str()),
            "{p:?} missing:\n{}",
            story.text
        );
    }
}

#[test]
fn hostile_titles_and_urls_make_safe_file_names() {
    let server = TestServer::start();
    let good = serve_good(&server);
    let mut n = 0;
    let mut page = |path: &str| {
        n += 1;
        server.route_fixed(
            path,
            Response::html(article_page("Some page", &paragraphs(n), None)),
        );
    };
    let long_path = format!("/names/{}", "a".repeat(10_000));
    page("/etc/passwd");
    page(&long_path);
    page("/names/words.html");
    page("/names/wide.html");
    page("/names/nul%00page");
    page("/names/slashes.html");
    let t0 = utc("2024-03-06T10:00:00Z");
    let h = chrono::Duration::hours(1);
    let rss_items = [
        Item::new(
            "../../../../etc/passwd",
            &server.url("/names/../../../etc/passwd"),
            t0,
        ),
        Item::new("Long URL", &server.url(&long_path), t0 + h),
        Item::new(
            &"word ".repeat(2_000),
            &server.url("/names/words.html"),
            t0 + h * 2,
        ),
        // 4-byte letters: 10 KB of them.
        Item::new(
            &"\u{20000}".repeat(2_560),
            &server.url("/names/wide.html"),
            t0 + h * 3,
        ),
    ];
    server.route_fixed(
        "/names.rss",
        Response::rss(rss("Names", &server.url("/"), &rss_items)),
    );
    // JSON Feed can carry NUL legitimately.
    let json = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Nul",
        "items": [
            {"id": "nul-1", "url": format!("{}/names/nul\u{0}page", server.url("")),
             "title": "NUL\u{0}in\u{0}the title", "date_published": "2024-03-06T15:00:00Z"},
            {"id": "nul-2", "url": server.url("/names/slashes.html"),
             "title": "/etc/..\\..\\windows\u{0}/./x\n\r\t..", "date_published": "2024-03-06T16:00:00Z"},
        ]
    });
    server.route_fixed(
        "/nul.json",
        Response::ok("application/feed+json", json.to_string()),
    );

    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[
            ("names", server.url("/names.rss")),
            ("nul", server.url("/nul.json")),
        ],
        FAST,
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "hostile names", Duration::from_secs(20));
    for feed in ["names", "nul"] {
        let block = feed_block(&m.run.stdout, feed);
        assert!(block.ends_with(" ok"), "{feed}: {block}\n{}", m.run);
    }
    // Every story written (1 good + 4 + 2), and nothing outside output_dir
    // and state_dir.
    assert_eq!(
        td.stories().len(),
        7,
        "{:#?}\n{}",
        td.output_files("txt"),
        m.run
    );
    for p in walk_all(&td.root) {
        assert!(
            p.starts_with(td.out_dir())
                || p.starts_with(td.state_dir())
                || p == td.config_path()
                || p == td.conf_dir
                || p == td.cwd,
            "{} is outside output_dir and state_dir",
            p.display()
        );
    }
    for p in walk_all(&td.out_dir()) {
        let name = p.file_name().unwrap();
        let name = name
            .to_str()
            .unwrap_or_else(|| panic!("{} is not UTF-8", p.display()));
        assert!(name.len() <= 255, "{} bytes: {name}", name.len());
        assert!(!name.contains('\0') && !name.starts_with('.'), "{name:?}");
    }
    for s in td.stories() {
        let title = s.json["title"].as_str().unwrap();
        assert!(!title.contains(['\0', '\n', '\r']), "{title:?}");
        assert!(
            title.chars().count() <= 300,
            "title of {} chars",
            title.chars().count()
        );
        assert!(s.text.starts_with(title), "{}", s.text);
    }
}

// --------------------------------------------------- private-network safety

#[test]
fn loopback_feed_reaches_loopback_pages_under_auto() {
    let server = TestServer::start();
    let other = TestServer::start();
    let good = serve_good(&server);
    other.route_fixed(
        "/p.html",
        Response::html(article_page("Other port", &paragraphs(6), None)),
    );
    let port = server.addr().port();
    server.route_fixed(
        "/lh.html",
        Response::html(article_page("Via localhost", &paragraphs(7), None)),
    );
    let items = [
        Item::new(
            "Other port",
            &other.url("/p.html"),
            utc("2024-03-06T10:00:00Z"),
        ),
        Item::new(
            "Via localhost",
            &format!("http://localhost:{port}/lh.html"),
            utc("2024-03-06T11:00:00Z"),
        ),
    ];
    server.route_fixed(
        "/lo.rss",
        Response::rss(rss("Lo", &server.url("/"), &items)),
    );
    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[
            ("lo", server.url("/lo.rss")),
            ("lo-name", format!("http://localhost:{port}/lo.rss")),
        ],
        &format!("{FAST}allow_private = \"auto\"\n"),
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "loopback under auto", Duration::from_secs(20));
    td.story_titled("Other port");
    td.story_titled("Via localhost");
    for feed in ["lo", "lo-name"] {
        let block = feed_block(&m.run.stdout, feed);
        assert!(block.ends_with(" ok"), "{feed}: {block}\n{}", m.run);
    }
}

#[test]
fn allow_private_never_refuses_loopback_with_a_clear_error() {
    let server = TestServer::start();
    let good = serve_good(&server);
    let td = TestDir::new();
    let text = format!(
        "{}\n{FAST}allow_private = \"never\"\n",
        TestDir::config_text(&[("good", &good), ("lo-name", "http://localhost:9/feed.rss")])
    );
    td.write_config_text(&text);
    let m = fetch_measured(&td);
    let run = &m.run;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    for feed in ["good", "lo-name"] {
        let block = feed_block(&run.stdout, feed);
        assert!(
            block.contains("FAILED") && block.contains("allow_private"),
            "{feed}: {block}\n{run}"
        );
    }
    assert_eq!(server.requests().len(), 0, "{}", server.log_summary());
}

/// A name other than `localhost` that resolves to loopback here (the
/// machine's own host name usually does), standing in for a public name
/// whose DNS points at a private address (DNS rebinding).
fn loopback_alias(port: u16) -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") {
        return None;
    }
    let addrs: Vec<SocketAddr> = (name, port).to_socket_addrs().ok()?.collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then(|| name.to_string())
}

#[test]
fn name_resolving_to_loopback_is_refused_under_auto_allowed_under_always() {
    let server = TestServer::start();
    let good = serve_good(&server);
    let Some(alias) = loopback_alias(server.addr().port()) else {
        eprintln!("skipped: the host name does not resolve to loopback here");
        return;
    };
    let feed = format!("http://{alias}:{}/good/feed.rss", server.addr().port());
    let td = TestDir::new();
    write_config(&td, &good, &[("alias", feed.clone())], FAST);
    let m = fetch_measured(&td);
    check_pass(
        &td,
        &m,
        "name resolving to loopback",
        Duration::from_secs(20),
    );
    assert_feed_error(
        &m.run,
        "alias",
        &[
            "refused URL http://",
            "resolves only to private or loopback addresses",
        ],
    );
    // Only the good feed's two requests reached the server.
    assert_eq!(server.requests().len(), 2, "{}", server.log_summary());

    let td = TestDir::new();
    write_config(
        &td,
        &good,
        &[("alias", feed)],
        &format!("{FAST}allow_private = \"always\"\n"),
    );
    let m = fetch_measured(&td);
    check_pass(&td, &m, "allow_private = always", Duration::from_secs(20));
    let block = feed_block(&m.run.stdout, "alias");
    // The same story again: a duplicate of the good feed's, not an error.
    assert!(block.ends_with(" ok"), "{block}\n{}", m.run);
}
