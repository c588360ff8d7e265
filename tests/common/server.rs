//! A tiny, real HTTP/1.1 server for tests.
//!
//! * binds `127.0.0.1:0`, one thread per connection, `Connection: close`;
//! * routes are `path -> handler`; a route registered with a query string
//!   (`/feed?x=1`) is matched first, then the bare path;
//! * every request is recorded (method, target, headers, arrival time and the
//!   status that was answered) for assertions;
//! * helpers for conditional GET (`ETag` / `Last-Modified` → `304`), for
//!   responses that change on the n-th call, and for responses flipped by the
//!   test itself between passes;
//! * the server stops when dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as received by the server.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Request target as sent (`/path?query`).
    pub target: String,
    /// Path part of the target (no query).
    pub path: String,
    pub query: Option<String>,
    /// Header names are lower-cased; values are trimmed.
    pub headers: Vec<(String, String)>,
    pub at: Instant,
    /// Status code the server answered (0 while the handler is running).
    pub status: u16,
}

impl Request {
    /// First value of a header (name is case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200 OK` with the given content type and body.
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response::new(200)
            .header("Content-Type", content_type)
            .body(body)
    }

    /// `200 OK`, `text/html; charset=utf-8`.
    pub fn html(body: impl Into<Vec<u8>>) -> Self {
        Response::ok("text/html; charset=utf-8", body)
    }

    /// `200 OK`, `application/rss+xml; charset=utf-8`.
    pub fn rss(body: impl Into<Vec<u8>>) -> Self {
        Response::ok("application/rss+xml; charset=utf-8", body)
    }

    /// `200 OK`, `application/atom+xml; charset=utf-8`.
    pub fn atom(body: impl Into<Vec<u8>>) -> Self {
        Response::ok("application/atom+xml; charset=utf-8", body)
    }

    /// A bare status with a short plain-text body.
    pub fn status(status: u16) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(format!("{} {}\n", status, reason(status)))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A route handler: gets the request and the 1-based number of times this
/// route has been called (including this call).
pub type Handler = Arc<dyn Fn(&Request, usize) -> Response + Send + Sync>;

/// Always the same response.
pub fn fixed(resp: Response) -> Handler {
    Arc::new(move |_req: &Request, _n: usize| resp.clone())
}

/// The n-th call gets `responses[n-1]`; calls past the end repeat the last one.
/// E.g. `sequence(vec![Response::status(500), Response::html(page)])`.
pub fn sequence(responses: Vec<Response>) -> Handler {
    assert!(
        !responses.is_empty(),
        "sequence() needs at least one response"
    );
    Arc::new(move |_req: &Request, n: usize| {
        let i = n.saturating_sub(1).min(responses.len() - 1);
        responses[i].clone()
    })
}

/// `when_off` while the switch is false, `when_on` once the test flips it.
/// Handy to make a page fail for a whole pass, however many times the client
/// retries inside that pass.
pub fn switch(flag: Arc<AtomicBool>, when_off: Response, when_on: Response) -> Handler {
    Arc::new(move |_req: &Request, _n: usize| {
        if flag.load(Ordering::SeqCst) {
            when_on.clone()
        } else {
            when_off.clone()
        }
    })
}

/// Serve `resp` with `ETag` and `Last-Modified`; answer `304 Not Modified`
/// when the request's `If-None-Match` matches the ETag or its
/// `If-Modified-Since` equals `last_modified` (RFC 7232: If-None-Match wins
/// when both are present).
pub fn conditional(resp: Response, etag: &str, last_modified: &str) -> Handler {
    let etag = etag.to_string();
    let last_modified = last_modified.to_string();
    Arc::new(move |req: &Request, _n: usize| {
        let not_modified = match req.header("if-none-match") {
            Some(inm) => etag_matches(inm, &etag),
            None => req
                .header("if-modified-since")
                .map(|ims| ims == last_modified)
                .unwrap_or(false),
        };
        if not_modified {
            Response::new(304)
                .header("ETag", &etag)
                .header("Last-Modified", &last_modified)
        } else {
            resp.clone()
                .header("ETag", &etag)
                .header("Last-Modified", &last_modified)
        }
    })
}

/// Weak comparison of an `If-None-Match` list against one ETag.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_string();
    let want = strip(etag);
    if_none_match
        .split(',')
        .any(|candidate| candidate.trim() == "*" || strip(candidate) == want)
}

struct State {
    routes: Mutex<HashMap<String, (Handler, usize)>>,
    log: Mutex<Vec<Request>>,
    /// Paths as requests arrive, before their handler runs: a slow handler
    /// is "asked" long before it is logged.
    arrivals: Mutex<Vec<String>>,
}

/// The server. Stops (and joins its accept thread) when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(State {
            routes: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || {
                        let _ = serve_connection(stream, &state);
                    });
                }
            })
        };
        TestServer {
            addr,
            state,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Register (or replace) a route. `path` may carry a query string.
    pub fn route(&self, path: &str, handler: Handler) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), (handler, 0));
    }

    /// Register a route that always answers `resp`.
    pub fn route_fixed(&self, path: &str, resp: Response) {
        self.route(path, fixed(resp));
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    /// Paths of every request received so far, logged on arrival (before the
    /// handler answers), in arrival order.
    pub fn arrivals(&self) -> Vec<String> {
        self.state.arrivals.lock().unwrap().clone()
    }

    /// Requests whose path (query ignored) is `path`.
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Number of requests whose path (query ignored) is `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.requests_for(path).len()
    }

    /// Forget recorded requests (route call counters are kept).
    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
        self.state.arrivals.lock().unwrap().clear();
    }

    /// Human-readable request log for assertion messages.
    pub fn log_summary(&self) -> String {
        self.requests()
            .iter()
            .map(|r| format!("{} {} -> {}", r.method, r.target, r.status))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;

    // Read the head.
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 64 * 1024 {
            return write_response(&mut stream, "GET", &Response::status(431));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(()); // closed before a full request (e.g. the drop wake-up)
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();

    // Drain a body if one was announced (GET normally has none).
    let content_length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - (head_end + 4);
    while have < content_length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        have += n;
    }

    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.clone(), None),
    };
    let mut req = Request {
        method: method.clone(),
        target: target.clone(),
        path: path.clone(),
        query,
        headers,
        at,
        status: 0,
    };

    state.arrivals.lock().unwrap().push(path.clone());
    // Route lookup: full target first, then bare path.
    let found = {
        let mut routes = state.routes.lock().unwrap();
        let key = if routes.contains_key(&target) {
            Some(target.clone())
        } else if routes.contains_key(&path) {
            Some(path.clone())
        } else {
            None
        };
        key.and_then(|k| {
            routes.get_mut(&k).map(|(h, count)| {
                *count += 1;
                (Arc::clone(h), *count)
            })
        })
    };
    let resp = match (method.as_str(), found) {
        ("GET" | "HEAD", Some((handler, n))) => handler(&req, n),
        ("GET" | "HEAD", None) => Response::status(404),
        _ => Response::status(405),
    };
    req.status = resp.status;
    state.log.lock().unwrap().push(req);
    write_response(&mut stream, &method, &resp)
}

fn write_response(stream: &mut TcpStream, method: &str, resp: &Response) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).into_bytes();
    let bodyless = resp.status == 304 || resp.status == 204 || (100..200).contains(&resp.status);
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("connection") {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !bodyless {
        out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    if !bodyless && method != "HEAD" {
        out.extend_from_slice(&resp.body);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    // Give the client a moment to read before the socket is dropped.
    let mut sink = [0u8; 512];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    while let Ok(n) = stream.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Self-tests of the test server itself (so a harness bug is not mistaken
/// for a gleaner bug).
mod self_test {
    use super::*;

    fn get(
        server: &TestServer,
        target: &str,
        extra_headers: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n", server.addr());
        for (k, v) in extra_headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }

    #[test]
    fn server_routes_records_and_answers_conditionally() {
        let server = TestServer::start();
        server.route_fixed("/a", Response::html("hello"));
        server.route(
            "/seq",
            sequence(vec![Response::status(500), Response::html("ok")]),
        );
        server.route(
            "/c",
            conditional(
                Response::rss("<rss/>"),
                "\"e1\"",
                "Mon, 04 Mar 2024 09:00:00 GMT",
            ),
        );

        let (st, head, body) = get(&server, "/a?x=1", &[]);
        assert_eq!((st, body.as_str()), (200, "hello"));
        assert!(head.contains("Content-Length: 5") && head.contains("Connection: close"));
        assert_eq!(get(&server, "/missing", &[]).0, 404);
        assert_eq!(get(&server, "/seq", &[]).0, 500);
        assert_eq!(get(&server, "/seq", &[]).0, 200);
        assert_eq!(get(&server, "/seq", &[]).0, 200);
        let (st, head, _) = get(&server, "/c", &[]);
        assert_eq!(st, 200);
        assert!(head.contains("ETag: \"e1\""));
        assert_eq!(get(&server, "/c", &[("If-None-Match", "\"e1\"")]).0, 304);
        assert_eq!(
            get(&server, "/c", &[("If-None-Match", "W/\"e1\", \"zz\"")]).0,
            304
        );
        assert_eq!(get(&server, "/c", &[("If-None-Match", "\"other\"")]).0, 200);
        assert_eq!(
            get(
                &server,
                "/c",
                &[("If-Modified-Since", "Mon, 04 Mar 2024 09:00:00 GMT")]
            )
            .0,
            304
        );

        let log = server.requests();
        assert_eq!(log.len(), 10);
        assert_eq!(log[0].path, "/a");
        assert_eq!(log[0].query.as_deref(), Some("x=1"));
        assert_eq!(server.hits("/c"), 5);
        let statuses: Vec<u16> = server.requests_for("/c").iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 304, 304, 200, 304]);
        assert_eq!(
            server.requests_for("/c")[1].header("IF-NONE-MATCH"),
            Some("\"e1\"")
        );
    }
}
