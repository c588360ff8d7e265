//! Fetching feeds and pages: HTTP(S) with conditional GET, or local files.
//!
//! Every request is bounded: a total timeout (a server trickling bytes is cut
//! off, not only a slow connect), a body cap counted after decompression (a
//! gzip bomb stops at the cap), at most `max_redirects` hops and only to
//! http/https. Concurrency is bounded overall and per host. `file://` is read
//! only when the caller says the origin was itself local: an http feed can
//! never make gleaner read a local file, and (`[fetch] allow_private`,
//! `netguard`) a feed on a public host can never make it reach loopback,
//! private, link-local or metadata addresses, by links or by redirects.
//!
//! Politeness is per host (host and port), for feeds and pages together: at
//! most `per_host` requests in flight and, with `host_delay`, at least that
//! long between the starts of two requests; a host that answered 429/503
//! with `Retry-After` is not contacted until then (other hosts carry on).
//! Feed requests also note permanent redirects ([`Fetcher::get_feed`]) so
//! the pipeline can poll the new address.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::config::FetchConfig;

pub mod netguard;
pub use netguard::Origin;
use netguard::Route;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response larger than the {0} byte limit")]
    TooLarge(u64),
    #[error("timed out")]
    Timeout,
    #[error("refused URL {url}: {why}")]
    Refused { url: String, why: &'static str },
    #[error("{0}")]
    Http(String),
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build HTTP client: {0}")]
    Client(String),
    /// Not sent: the host answered 429/503 with `Retry-After` earlier.
    #[error("host {host} asked us to wait until {until} (Retry-After)")]
    HostPaused {
        host: String,
        until: chrono::DateTime<chrono::Utc>,
    },
}

impl FetchError {
    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return FetchError::Timeout;
        }
        // A name the guarded resolver refused: say that, not "dns error".
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            if s.downcast_ref::<netguard::PrivateName>().is_some() {
                return FetchError::Refused {
                    url: e.url().map(Url::to_string).unwrap_or_default(),
                    why: netguard::WHY_NAME,
                };
            }
            src = s.source();
        }
        // The chain carries the useful part ("connection refused", "too many redirects").
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        FetchError::Http(msg)
    }
}

/// Which limit applies to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Feed,
    Page,
}

/// HTTP cache validators, stored per feed for the next conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A feed fetch: the response, and where the feed moved if it did.
#[derive(Debug)]
pub struct FeedFetch {
    pub fetched: Fetched,
    /// The URL reached through permanent redirects (301/308) only: the
    /// feed's address from now on. `None` without a redirect, or when the
    /// first hop was temporary (302/303/307).
    pub moved_to: Option<Url>,
}

tokio::task_local! {
    /// Redirect hops (status, target) of the feed request in progress. Set
    /// by `get_feed` only; the redirect policy runs inside the request's own
    /// future, so it sees the value of the request that it is following.
    static HOPS: RefCell<Vec<(u16, Url)>>;
}

/// The URL after the leading run of permanent hops, if there is one.
fn permanent_target(hops: &[(u16, Url)]) -> Option<Url> {
    hops.iter()
        .take_while(|(status, _)| matches!(status, 301 | 308))
        .last()
        .map(|(_, url)| url.clone())
}

/// Request spacing shared by the instances of one PostgreSQL store, so
/// `host_delay` holds across them, not only inside each.
pub trait SharedHosts: Send + Sync {
    /// Reserves the next request start at `host`, at least `gap` after the
    /// last one any instance reserved; returns how long to wait for it.
    fn reserve(&self, host: &str, gap: Duration) -> Result<Duration, String>;
}

/// One host's politeness state.
struct HostGate {
    slots: Arc<Semaphore>,
    /// When the last request to the host started, for `host_delay`.
    last_start: Mutex<Option<Instant>>,
}

#[derive(Debug)]
pub enum Fetched {
    /// 304: the stored copy is current; nothing to parse.
    NotModified,
    Body(Body),
}

#[derive(Debug)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// Where the body came from after redirects.
    pub final_url: Url,
    pub validators: Validators,
    /// How long the server says this response stays fresh
    /// (`Cache-Control: max-age`, `Expires`): a hint for the scheduler.
    pub fresh_for: Option<std::time::Duration>,
}

pub struct Fetcher {
    /// For requests that may reach private addresses (`netguard::Route::Open`).
    client: reqwest::Client,
    /// For all others: private DNS answers dropped, redirect hops checked.
    guarded: reqwest::Client,
    /// Hosts of feeds configured on a private address: pages there stay
    /// reachable through [`Fetcher::get`] (any port: a farm of loopback
    /// servers links across ports).
    trusted: Mutex<std::collections::HashSet<String>>,
    /// A feed was fetched: from then on a page given to [`Fetcher::get`] is
    /// an item link, not a URL from the command line.
    feeds_seen: std::sync::atomic::AtomicBool,
    cfg: FetchConfig,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<HostGate>>>,
    /// Hosts that answered 429/503 with `Retry-After`, and until when:
    /// that host waits, the other hosts do not.
    paused: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
    shared: Option<Arc<dyn SharedHosts>>,
}

impl Fetcher {
    pub fn new(cfg: &FetchConfig) -> Result<Self, FetchError> {
        Ok(Fetcher {
            client: build_client(cfg, false)?,
            guarded: build_client(cfg, true)?,
            trusted: Mutex::new(std::collections::HashSet::new()),
            feeds_seen: std::sync::atomic::AtomicBool::new(false),
            cfg: cfg.clone(),
            global: Arc::new(Semaphore::new(cfg.concurrency)),
            hosts: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            shared: None,
        })
    }

    /// Spaces requests to each host together with other instances.
    pub fn with_shared_hosts(mut self, shared: Option<Arc<dyn SharedHosts>>) -> Self {
        self.shared = shared;
        self
    }

    /// Until when `url`'s host asked not to be contacted, if it did and
    /// that time is still ahead.
    pub fn paused_until(&self, url: &Url) -> Option<chrono::DateTime<chrono::Utc>> {
        let now = chrono::Utc::now();
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        paused.retain(|_, until| *until > now);
        paused.get(&host_key(url)).copied()
    }

    /// Fetches `url`. `allow_file` is true only when the URL came from a
    /// local (`file://`) source. A feed is a URL the operator configured; a
    /// page is an item link of a feed fetched before, or a URL given on the
    /// command line when no feed was fetched (see [`Fetcher::origin_of`]).
    /// Prefer [`Fetcher::get_linked`] for item links: it names the feed, so
    /// the private-network check is exact, and [`Fetcher::get_feed`] for
    /// feeds: it reports permanent redirects.
    pub async fn get(
        &self,
        url: &Url,
        kind: Kind,
        validators: Option<&Validators>,
        allow_file: bool,
    ) -> Result<Fetched, FetchError> {
        let origin = self.origin_of(url, kind, allow_file);
        self.get_from(url, kind, validators, allow_file, origin)
            .await
    }

    /// Fetches the feed at `url` like [`Fetcher::get`] with [`Kind::Feed`],
    /// noting where it moved when the redirects that led to the answer
    /// started with permanent ones (301/308).
    pub async fn get_feed(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        allow_file: bool,
    ) -> Result<FeedFetch, FetchError> {
        HOPS.scope(RefCell::new(Vec::new()), async {
            let fetched = self.get(url, Kind::Feed, validators, allow_file).await?;
            let hops = HOPS.try_with(|h| h.take()).unwrap_or_default();
            Ok(FeedFetch {
                fetched,
                moved_to: permanent_target(&hops),
            })
        })
        .await
    }

    /// Fetches `url`, found in the document fetched from `from` (an item
    /// link in a feed): `file:` only from a local document, private
    /// addresses only when `from` is itself local (`netguard::route`).
    pub async fn get_linked(
        &self,
        url: &Url,
        kind: Kind,
        from: &Url,
    ) -> Result<Fetched, FetchError> {
        let local = from.scheme() == "file";
        self.get_from(url, kind, None, local, Origin::LinkedFrom(from))
            .await
    }

    async fn get_from(
        &self,
        url: &Url,
        kind: Kind,
        validators: Option<&Validators>,
        allow_file: bool,
        origin: Origin<'_>,
    ) -> Result<Fetched, FetchError> {
        let limit = match kind {
            Kind::Feed => self.cfg.max_feed_bytes,
            Kind::Page => self.cfg.max_page_bytes,
        };
        match url.scheme() {
            "http" | "https" => {}
            "file" if allow_file => return read_file(url, limit).await,
            "file" => {
                return Err(FetchError::Refused {
                    url: url.to_string(),
                    why: "file: URLs are only followed from local feeds",
                })
            }
            _ => {
                return Err(FetchError::Refused {
                    url: url.to_string(),
                    why: "only http and https URLs are fetched",
                })
            }
        }
        if let Some(until) = self.paused_until(url) {
            return Err(FetchError::HostPaused {
                host: host_key(url),
                until,
            });
        }
        let client = self.client_for(url, origin)?;
        let _permits = self.permits(url).await;
        // Again: the host may have asked for a pause while we queued for it.
        if let Some(until) = self.paused_until(url) {
            return Err(FetchError::HostPaused {
                host: host_key(url),
                until,
            });
        }
        let started = Instant::now();
        let r = self.exchange(client, url, limit, validators).await;
        crate::metrics::global().fetched(kind, started.elapsed());
        r
    }

    /// One request and its body, under the caller's permits.
    async fn exchange(
        &self,
        client: &reqwest::Client,
        url: &Url,
        limit: u64,
        validators: Option<&Validators>,
    ) -> Result<Fetched, FetchError> {
        let mut req = client.get(url.clone());
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let mut resp = req.send().await.map_err(FetchError::from_reqwest)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            // A redirect that reaches us was not followed: its Location is
            // not an http(s) URL (reqwest hands back e.g. `file:` and bad
            // URLs without asking the policy). Say so rather than "302".
            if status.is_redirection() {
                if let Some(loc) = resp.headers().get(reqwest::header::LOCATION) {
                    let loc = loc.to_str().unwrap_or("(unreadable Location)");
                    return Err(FetchError::Refused {
                        url: loc.chars().take(200).collect(),
                        why: "redirect target is not an http or https URL",
                    });
                }
            }
            if matches!(status.as_u16(), 429 | 503) {
                let now = chrono::Utc::now();
                if let Some(until) = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| crate::schedule::retry_after(v, now))
                {
                    tracing::warn!(url = %url, status = status.as_u16(), %until, "host asks us to wait (Retry-After)");
                    self.paused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(host_key(url), until);
                }
            }
            return Err(FetchError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        let fresh_for = crate::schedule::freshness(
            None,
            header(reqwest::header::CACHE_CONTROL).as_deref(),
            header(reqwest::header::EXPIRES).as_deref(),
            chrono::Utc::now(),
        );
        let final_url = resp.url().clone();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(FetchError::from_reqwest)? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body(Body {
            bytes,
            content_type,
            final_url,
            validators,
            fresh_for,
        }))
    }

    /// Where a URL given to [`Fetcher::get`] came from. Every feed is named
    /// in the config; the private ones are remembered so that their own
    /// pages (same host) stay reachable. A page before any feed is
    /// a URL from the command line (`gleaner extract`); after, it is an item
    /// link whose feed is unknown here, so it counts as public unless it
    /// came from a local file or sits on a private feed's own host. With
    /// both public and private feeds configured, an item link of a public
    /// feed can therefore reach a private feed's host; `get_linked` cannot.
    fn origin_of(&self, url: &Url, kind: Kind, allow_file: bool) -> Origin<'static> {
        use std::sync::atomic::Ordering::Relaxed;
        let trusted = || self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            Kind::Feed => {
                self.feeds_seen.store(true, Relaxed);
                if netguard::host_is_private(url) {
                    trusted().insert(url.host_str().unwrap_or("").to_string());
                }
                Origin::Configured
            }
            Kind::Page if allow_file => Origin::Local,
            Kind::Page if !self.feeds_seen.load(Relaxed) => Origin::Configured,
            Kind::Page if trusted().contains(url.host_str().unwrap_or("")) => Origin::Configured,
            Kind::Page => Origin::Unknown,
        }
    }

    /// The client for a request to `url` under `[fetch] allow_private`, or
    /// the refusal when `url` itself is private and may not be reached.
    fn client_for(&self, url: &Url, origin: Origin<'_>) -> Result<&reqwest::Client, FetchError> {
        match netguard::route(self.cfg.allow_private, url, origin) {
            Route::Open => Ok(&self.client),
            Route::Guarded => Ok(&self.guarded),
            Route::Refuse(why) => Err(FetchError::Refused {
                url: url.to_string(),
                why,
            }),
        }
    }

    /// Waits for a slot at `url`'s host, then for `host_delay` since the
    /// host's last request started, then for a global slot.
    async fn permits(
        &self,
        url: &Url,
    ) -> (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>) {
        let key = host_key(url);
        let host = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            hosts
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(HostGate {
                        slots: Arc::new(Semaphore::new(self.cfg.per_host)),
                        last_start: Mutex::new(None),
                    })
                })
                .clone()
        };
        // Host first: waiting for a busy host must not hold a global slot.
        let h = host.slots.clone().acquire_owned().await.ok();
        let delay = self.cfg.host_delay;
        if delay.is_zero() {
            let g = self.global.clone().acquire_owned().await.ok();
            return (h, g);
        }
        loop {
            let wait = {
                let last = host.last_start.lock().unwrap_or_else(|e| e.into_inner());
                last.map_or(Duration::ZERO, |t| {
                    (t + delay).saturating_duration_since(Instant::now())
                })
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            // The delay is waited out without a global slot, and the start
            // is claimed only once one is held: then the gap between two
            // starts is never shorter than `host_delay`, however long the
            // global queue was.
            let g = self.global.clone().acquire_owned().await.ok();
            let claimed = {
                let mut last = host.last_start.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let free = last.is_none_or(|t| now >= t + delay);
                if free {
                    *last = Some(now);
                }
                free
            };
            if claimed {
                self.shared_wait(&host_key(url), delay).await;
                return (h, g);
            }
            // Another request to this host started meanwhile: queue behind it.
        }
    }
}

impl Fetcher {
    /// Waits for this request's turn at `host` among all instances.
    async fn shared_wait(&self, host: &str, delay: Duration) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let host_name = host.to_string();
        let r = tokio::task::spawn_blocking(move || shared.reserve(&host_name, delay)).await;
        match r {
            Ok(Ok(wait)) if !wait.is_zero() => tokio::time::sleep(wait).await,
            Ok(Ok(_)) => {}
            // Spacing within this instance still holds; the request goes.
            Ok(Err(e)) => tracing::warn!(host, error = %e, "cannot reserve a shared request slot"),
            Err(e) => tracing::warn!(host, error = %e, "shared request slot task failed"),
        }
    }
}

/// An HTTP client; `guarded` ones resolve names to public addresses only.
/// Both check every redirect hop: at most `max_redirects`, http(s) only,
/// and never from a public host to a private one (`netguard::hop_allowed`).
fn build_client(cfg: &FetchConfig, guarded: bool) -> Result<reqwest::Client, FetchError> {
    let max = cfg.max_redirects;
    let mode = cfg.allow_private;
    let why = match mode {
        crate::config::AllowPrivate::Never => netguard::WHY_NEVER,
        _ => netguard::WHY_AUTO,
    };
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            attempt.error(format!("more than {max} redirects"))
        } else if !matches!(attempt.url().scheme(), "http" | "https") {
            let scheme = attempt.url().scheme().to_string();
            attempt.error(format!("redirect to a {scheme}: URL refused"))
        } else if !netguard::hop_allowed(mode, attempt.previous().last(), attempt.url()) {
            let to = attempt.url().to_string();
            attempt.error(format!("redirect to {to} refused: {why}"))
        } else {
            // Only a feed request (`get_feed`) listens; pages ignore hops.
            let hop = (attempt.status().as_u16(), attempt.url().clone());
            let _ = HOPS.try_with(|h| h.borrow_mut().push(hop));
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .user_agent(cfg.user_agent.clone())
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .redirect(policy)
        .pool_max_idle_per_host(cfg.per_host);
    if guarded {
        builder = builder.dns_resolver(Arc::new(netguard::PublicOnly));
    }
    builder
        .build()
        .map_err(|e| FetchError::Client(e.to_string()))
}

/// One politeness bucket: host and port.
fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

async fn read_file(url: &Url, limit: u64) -> Result<Fetched, FetchError> {
    let path = url.to_file_path().map_err(|()| FetchError::Refused {
        url: url.to_string(),
        why: "not a local file path",
    })?;
    let err = |source| FetchError::File {
        path: path.display().to_string(),
        source,
    };
    let file = tokio::fs::File::open(&path).await.map_err(err)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(err)?;
    if bytes.len() as u64 > limit {
        return Err(FetchError::TooLarge(limit));
    }
    Ok(Fetched::Body(Body {
        bytes,
        content_type: None,
        final_url: url.clone(),
        validators: Validators::default(),
        fresh_for: None,
    }))
}
