//! Prometheus metrics for `gleaner run`: process-wide counters, a fetch
//! latency histogram, and a tiny HTTP endpoint serving them as text.
//!
//! The counters are plain atomics in one static, so recording costs a few
//! nanoseconds and no stage needs a handle passed down; they count from
//! process start, which is what Prometheus counters mean (a reload does not
//! reset them). The endpoint is hand-rolled on a tokio `TcpListener`: it
//! answers `GET /metrics` with the text exposition format (version 0.0.4)
//! and anything else with 404, one request per connection, with a bounded
//! request head and a timeout, so a slow or hostile client cannot hold it.
//! It is off unless `[daemon] metrics_addr` is set.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::fetch::Kind;

/// Upper bounds (seconds) of the fetch latency buckets: loopback
/// milliseconds up to the default 30 s request timeout.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A latency histogram: cumulative on output, per bucket in memory.
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// A metric's series: label set (`{k="v"}` or empty) and value.
type Series<'a> = &'a [(&'a str, &'a AtomicU64)];

/// Everything the endpoint reports.
pub struct Metrics {
    pub polls: AtomicU64,
    pub not_modified: AtomicU64,
    pub feed_errors: AtomicU64,
    pub articles: AtomicU64,
    pub duplicates_url: AtomicU64,
    pub duplicates_text: AtomicU64,
    pub page_errors: AtomicU64,
    pub pages_given_up: AtomicU64,
    /// Response bodies that waited for `[fetch] memory_budget`.
    pub budget_waits: AtomicU64,
    /// Gauges set by the daemon loop.
    pub feeds: AtomicU64,
    pub in_flight: AtomicU64,
    pub feed_latency: Histogram,
    pub page_latency: Histogram,
}

static METRICS: Metrics = Metrics::new();

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Every counter at zero.
    const fn new() -> Metrics {
        Metrics {
            polls: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            feed_errors: AtomicU64::new(0),
            articles: AtomicU64::new(0),
            duplicates_url: AtomicU64::new(0),
            duplicates_text: AtomicU64::new(0),
            page_errors: AtomicU64::new(0),
            pages_given_up: AtomicU64::new(0),
            budget_waits: AtomicU64::new(0),
            feeds: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            feed_latency: Histogram::new(),
            page_latency: Histogram::new(),
        }
    }

    /// Records the duration of one HTTP exchange (request to end of body or error).
    pub fn fetched(&self, kind: Kind, d: Duration) {
        match kind {
            Kind::Feed => self.feed_latency.observe(d),
            Kind::Page => self.page_latency.observe(d),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, Series<'_>); 8] = [
            (
                "gleaner_feed_polls_total",
                "Feed polls finished, whatever their outcome.",
                &[("", &self.polls)],
            ),
            (
                "gleaner_feed_not_modified_total",
                "Feed polls answered 304 Not Modified.",
                &[("", &self.not_modified)],
            ),
            (
                "gleaner_feed_errors_total",
                "Feed polls that failed (fetch or parse).",
                &[("", &self.feed_errors)],
            ),
            (
                "gleaner_articles_written_total",
                "Stories written to output_dir.",
                &[("", &self.articles)],
            ),
            (
                "gleaner_duplicates_total",
                "Items recorded as copies of a story already written.",
                &[
                    ("{match=\"url\"}", &self.duplicates_url),
                    ("{match=\"text\"}", &self.duplicates_text),
                ],
            ),
            (
                "gleaner_page_errors_total",
                "Item pages that could not be fetched, extracted or written (retried later).",
                &[("", &self.page_errors)],
            ),
            (
                "gleaner_pages_given_up_total",
                "Item pages given up after [fetch] page_attempts tries.",
                &[("", &self.pages_given_up)],
            ),
            (
                "gleaner_fetch_budget_waits_total",
                "Response bodies that waited for room in [fetch] memory_budget.",
                &[("", &self.budget_waits)],
            ),
        ];
        for (name, help, series) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in series {
                let _ = writeln!(out, "{name}{labels} {}", v.load(Relaxed));
            }
        }
        for (name, help, v) in [
            ("gleaner_feeds", "Feeds in the running config.", &self.feeds),
            (
                "gleaner_feeds_in_flight",
                "Feeds being polled now.",
                &self.in_flight,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Relaxed)
            );
        }
        let name = "gleaner_fetch_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP request duration, body included.\n# TYPE {name} histogram"
        );
        for (kind, h) in [("feed", &self.feed_latency), ("page", &self.page_latency)] {
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                cumulative += n.load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Relaxed);
            let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {count}\n{name}_sum{{kind=\"{kind}\"}} {sum}\n{name}_count{{kind=\"{kind}\"}} {count}"
            );
        }
        out
    }
}

/// Longest request head read; `GET /metrics` needs a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// A client has this long to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let r = tokio::time::timeout(CLIENT_TIMEOUT, answer(&mut stream)).await;
            if !matches!(r, Ok(Ok(()))) {
                tracing::debug!(%peer, "metrics endpoint: client timed out or hung up");
            }
        });
    }
}

async fn answer(stream: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", global().render()),
        ("GET", _) => ("404 Not Found", "not found: try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(70));
        h.observe(Duration::from_secs(60));
        assert_eq!(h.count(), 3);
        let m = Metrics {
            feed_latency: h,
            ..Metrics::new()
        };
        let text = m.render();
        let line = |l: &str| {
            assert!(text.lines().any(|x| x == l), "{l} missing in\n{text}");
        };
        line("gleaner_fetch_duration_seconds_bucket{kind=\"feed\",le=\"0.005\"} 1");
        line("gleaner_fetch_duration_seconds_bucket{kind=\"feed\",le=\"0.05\"} 1");
        line("gleaner_fetch_duration_seconds_bucket{kind=\"feed\",le=\"0.1\"} 2");
        line("gleaner_fetch_duration_seconds_bucket{kind=\"feed\",le=\"30\"} 2");
        line("gleaner_fetch_duration_seconds_bucket{kind=\"feed\",le=\"+Inf\"} 3");
        line("gleaner_fetch_duration_seconds_count{kind=\"feed\"} 3");
        line("gleaner_fetch_duration_seconds_sum{kind=\"feed\"} 60.073");
        line("gleaner_duplicates_total{match=\"text\"} 0");
        line("# TYPE gleaner_feeds gauge");
    }
}
