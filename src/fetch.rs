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
//! Redirects are followed here, hop by hop, so every hop waits for its own
//! host's turn and a pause is set on the host that asked for it. Feed
//! requests also note permanent redirects ([`Fetcher::get_feed`]) so the
//! pipeline can poll the new address.
//!
//! Memory: bodies in memory at once, and the feeds parsed from them, are
//! bounded by `[fetch] memory_budget` (see [`Budget`]), weighed by what
//! parsing them costs, so a pass over many hosts with large answers stays
//! within a few hundred MiB at the defaults.

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

// One per request, moved once: boxing the body would buy nothing.
#[allow(clippy::large_enum_variant)]
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
    /// This body's share of `[fetch] memory_budget`, until the `Body` (or
    /// the share itself) is dropped.
    pub budget: BudgetShare,
}

/// A body's share of `[fetch] memory_budget`, released when dropped. It
/// sits beside the bytes in [`Body`], so a caller that moves the bytes out
/// (to parse them) keeps the share until the rest of the `Body` goes: a
/// feed's share covers its parse and its parsed items while the pipeline
/// works through them.
///
/// Holding many bodies while fetching more waits on the budget they hold:
/// such a wait goes ahead over budget after `[fetch] timeout` (see
/// [`Budget`]), so drop bodies (or [`BudgetShare::release`]) when done.
#[derive(Default)]
pub struct BudgetShare(Option<OwnedSemaphorePermit>);

impl BudgetShare {
    /// Gives the share back now.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// KiB of the budget held.
    pub fn kib(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl std::fmt::Debug for BudgetShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BudgetShare({} KiB)", self.kib())
    }
}

/// Parsing a feed takes several times its size (feed-rs builds every
/// entry's strings from an event stream), and the pipeline keeps the items
/// while it fetches their pages: a feed counts this many times its size,
/// so only a few large feeds are in work at once.
pub const FEED_WEIGHT: u64 = 4;
/// The same for a page: decoded text plus the DOM of the extractor.
pub const PAGE_WEIGHT: u64 = 3;
/// What a body of unknown length reserves first; one larger than this
/// reserves its whole cap (see [`Budget`]).
const FIRST_SHARE: u64 = 256 * 1024;

/// One pool of the memory budget, in KiB permits. Feeds and pages have a
/// pool each (two thirds and one third of `memory_budget`): a feed's share
/// is held while its pages are fetched, so pages drawing on the feeds' pool
/// could wait for each other for ever.
///
/// Deadlock-free by construction: a request waits for budget only while it
/// holds no budget, no host slot and no global slot, and nothing that
/// holds a share waits for one from the same pool. A body of known length
/// takes its weight before it is read; one of unknown length takes
/// [`FIRST_SHARE`] and, should it grow past that, its whole cap. Only free
/// budget is taken while a response is open: when it is not free, the
/// response is dropped unread (at most `FIRST_SHARE` of it was read), the
/// slots given back, the budget waited for, and the URL asked again with
/// the budget in hand. So no server waits on an idle connection, and no
/// request holds part of the budget while waiting for more. A share is
/// trimmed to the body's real size once it is read, and never exceeds the
/// pool, so any single request can go.
/// Should the pool still stall (a caller holding bodies while it fetches
/// more), a wait during which no share at all was granted for `[fetch]
/// timeout` goes ahead over budget with a warning rather than stopping the
/// pass; a long wait behind large feeds in work is not a stall. The time
/// waited does not count against the request's own timeout.
struct Budget {
    sem: Arc<Semaphore>,
    total_kib: u32,
    patience: Duration,
    /// Shares granted so far, by either pool (pages granted mean feeds in
    /// work are moving): a budget that grants none while requests wait is
    /// stuck.
    granted: Arc<std::sync::atomic::AtomicU64>,
}

impl Budget {
    fn new(bytes: u64, patience: Duration, granted: Arc<std::sync::atomic::AtomicU64>) -> Self {
        let total_kib = (bytes / 1024).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        Budget {
            sem: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            patience,
            granted,
        }
    }

    fn try_take(&self, kib: u32) -> Option<OwnedSemaphorePermit> {
        let p = self.sem.clone().try_acquire_many_owned(kib).ok()?;
        self.granted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(p)
    }

    /// KiB permits for `bytes` weighed `weight` times, within the total.
    fn kib(&self, bytes: u64, weight: u64) -> u32 {
        let kib = bytes.saturating_mul(weight).div_ceil(1024).max(1);
        kib.min(u64::from(self.total_kib)) as u32
    }

    /// Waits for `kib` permits; `None` when the budget granted nothing to
    /// anyone for `patience` and the request goes without.
    async fn acquire(&self, kib: u32, url: &Url) -> Option<OwnedSemaphorePermit> {
        use std::sync::atomic::Ordering::Relaxed;
        crate::metrics::global().budget_waits.fetch_add(1, Relaxed);
        // One acquire kept alive throughout: the semaphore is fair, and a
        // long wait keeps its place in the queue.
        let wait = self.sem.clone().acquire_many_owned(kib);
        tokio::pin!(wait);
        let mut seen = self.granted.load(Relaxed);
        loop {
            tokio::select! {
                p = &mut wait => {
                    self.granted.fetch_add(1, Relaxed);
                    return p.ok();
                }
                _ = tokio::time::sleep(self.patience) => {
                    let now = self.granted.load(Relaxed);
                    if now == seen {
                        tracing::warn!(url = %url, kib, "memory budget stalled (no share granted for the request timeout); reading this body over budget");
                        return None;
                    }
                    seen = now;
                }
            }
        }
    }
}

/// The two pools.
struct Budgets {
    feeds: Budget,
    pages: Budget,
}

impl Budgets {
    fn new(bytes: u64, patience: Duration) -> Self {
        let granted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        Budgets {
            feeds: Budget::new(bytes / 3 * 2, patience, granted.clone()),
            pages: Budget::new(bytes / 3, patience, granted),
        }
    }

    /// The pool for `kind`, and its weight.
    fn pool(&self, kind: Kind) -> (&Budget, u64) {
        match kind {
            Kind::Feed => (&self.feeds, FEED_WEIGHT),
            Kind::Page => (&self.pages, PAGE_WEIGHT),
        }
    }
}

/// A host slot and a global slot, held while a request is under way.
type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

/// Budget taken before a request is asked again, and the bytes it covers.
struct Reserved {
    permit: Option<OwnedSemaphorePermit>,
    covers: u64,
}

/// How reading a body ended.
#[allow(clippy::large_enum_variant)] // see `Fetched`
enum Read {
    Done(Fetched),
    /// The body needs this many bytes' worth of budget, which is not free
    /// now: drop everything, wait for it, ask again.
    NeedBudget(u64),
}

/// A body's share of its pool while it is read.
struct Share<'a> {
    budget: &'a Budget,
    permit: Option<OwnedSemaphorePermit>,
    /// Bytes the share covers (before weighing).
    covers: u64,
    weight: u64,
    /// Budget was waited for already: take more without waiting if it is
    /// free, else read on over budget (the body changed size between two
    /// asks; asking a third time would not help).
    settled: bool,
}

impl Share<'_> {
    /// Makes the share cover `len` bytes (reserving `reserve`, at least
    /// `len`), without waiting: `Err(bytes)` when the pool cannot give it
    /// now and the request should wait for `bytes` and ask again.
    fn cover(&mut self, len: u64, reserve: u64) -> Result<(), u64> {
        if len <= self.covers {
            return Ok(());
        }
        let reserve = reserve.max(len);
        let want = self.budget.kib(reserve, self.weight);
        let held = self.permit.as_ref().map_or(0, |p| p.num_permits() as u32);
        if want > held {
            match self.budget.try_take(want - held) {
                Some(more) => match &mut self.permit {
                    Some(p) => p.merge(more),
                    None => self.permit = Some(more),
                },
                None if self.settled => {
                    tracing::debug!(len, "body outgrew its budget share; read over budget");
                }
                None => return Err(reserve),
            }
        }
        self.covers = reserve;
        Ok(())
    }

    /// Trims the share to a body of `len` bytes, now read, and hands it over.
    fn settle(mut self, len: u64) -> BudgetShare {
        let need = self.budget.kib(len, self.weight) as usize;
        if let Some(p) = &mut self.permit {
            if p.num_permits() > need {
                drop(p.split(p.num_permits() - need));
            }
        }
        BudgetShare(self.permit.take())
    }
}

/// Per-host state that outlives one fetcher: a daemon reloading its config
/// builds a new one, and a host's pause or spacing must not reset with it.
type Gates = Arc<Mutex<HashMap<String, Arc<HostGate>>>>;
type Pauses = Arc<Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>>;

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
    hosts: Gates,
    /// Hosts that answered 429/503 with `Retry-After`, and until when:
    /// that host waits, the other hosts do not.
    paused: Pauses,
    budget: Arc<Budgets>,
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
            hosts: Arc::new(Mutex::new(HashMap::new())),
            paused: Arc::new(Mutex::new(HashMap::new())),
            budget: Arc::new(Budgets::new(cfg.memory_budget, cfg.timeout)),
            shared: None,
        })
    }

    /// Takes over `old`'s per-host state (a config reload): hosts that
    /// asked for a pause stay paused, and `host_delay` keeps counting from
    /// each host's last request. Shared, not copied, so a request still in
    /// flight on `old` is seen too; with a changed `per_host` the gates are
    /// rebuilt at the new size, keeping their last start.
    pub fn carry_host_state(&mut self, old: &Fetcher) {
        self.paused = old.paused.clone();
        if self.cfg.per_host == old.cfg.per_host {
            self.hosts = old.hosts.clone();
        } else {
            let old = old.hosts.lock().unwrap_or_else(|e| e.into_inner());
            let mut new = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            for (key, gate) in old.iter() {
                let last = *gate.last_start.lock().unwrap_or_else(|e| e.into_inner());
                new.insert(
                    key.clone(),
                    Arc::new(HostGate {
                        slots: Arc::new(Semaphore::new(self.cfg.per_host)),
                        last_start: Mutex::new(last),
                    }),
                );
            }
        }
        if self.cfg.memory_budget == old.cfg.memory_budget {
            self.budget = old.budget.clone();
        }
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
        let (fetched, _) = self
            .get_from(url, kind, validators, allow_file, origin)
            .await?;
        Ok(fetched)
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
        let origin = self.origin_of(url, Kind::Feed, allow_file);
        let (fetched, hops) = self
            .get_from(url, Kind::Feed, validators, allow_file, origin)
            .await?;
        Ok(FeedFetch {
            fetched,
            moved_to: permanent_target(&hops),
        })
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
        let (fetched, _) = self
            .get_from(url, kind, None, local, Origin::LinkedFrom(from))
            .await?;
        Ok(fetched)
    }

    /// Fetches `url` and follows its redirects, each hop under its own
    /// host's permits; returns the answer and the hops (status, target).
    async fn get_from(
        &self,
        url: &Url,
        kind: Kind,
        validators: Option<&Validators>,
        allow_file: bool,
        origin: Origin<'_>,
    ) -> Result<(Fetched, Vec<(u16, Url)>), FetchError> {
        let limit = match kind {
            Kind::Feed => self.cfg.max_feed_bytes,
            Kind::Page => self.cfg.max_page_bytes,
        };
        match url.scheme() {
            "http" | "https" => {}
            "file" if allow_file => return Ok((read_file(url, limit).await?, Vec::new())),
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
        // One client for the whole chain: a guarded one keeps resolving
        // names to public addresses only, hop after hop.
        let client = self.client_for(url, origin)?;
        let started = Instant::now();
        // The whole chain, body included, within `timeout` (budget waits
        // excepted: they push the deadline back).
        let mut deadline = tokio::time::Instant::now() + self.cfg.timeout;
        let mut hops: Vec<(u16, Url)> = Vec::new();
        let mut current = url.clone();
        // Budget waited for, holding nothing, before asking again.
        let mut reserved: Option<Reserved> = None;
        let r = async {
            loop {
                self.check_paused(&current)?;
                let permits = self.permits(&current).await;
                // Again: the host may have asked for a pause while we queued for it.
                self.check_paused(&current)?;
                let resp = match self.send(client, &current, validators, deadline).await? {
                    Sent::Redirect(status, to) => {
                        drop(permits);
                        let next = self.redirect_target(&current, &to, hops.len())?;
                        hops.push((status, next.clone()));
                        current = next;
                        continue;
                    }
                    Sent::Done(resp) => resp,
                };
                match self
                    .read_body(resp, kind, limit, deadline, permits, reserved.take())
                    .await
                {
                    Ok(Read::Done(f)) => break Ok(f),
                    Ok(Read::NeedBudget(bytes)) => {
                        // The answer and the slots are dropped: a server is not
                        // kept waiting on an idle connection, and nothing is held
                        // while waiting. Then the same URL is asked again.
                        let (budget, weight) = self.budget.pool(kind);
                        let waited = Instant::now();
                        reserved = Some(Reserved {
                            permit: budget.acquire(budget.kib(bytes, weight), &current).await,
                            covers: bytes,
                        });
                        deadline += waited.elapsed();
                    }
                    Err(e) => break Err(e),
                }
            }
        }
        .await;
        // A request not sent (the host is paused) has no latency.
        if !matches!(r, Err(FetchError::HostPaused { .. })) {
            crate::metrics::global().fetched(kind, started.elapsed());
        }
        r.map(|f| (f, hops))
    }

    fn check_paused(&self, url: &Url) -> Result<(), FetchError> {
        match self.paused_until(url) {
            Some(until) => Err(FetchError::HostPaused {
                host: host_key(url),
                until,
            }),
            None => Ok(()),
        }
    }

    /// Checks a redirect from `from` to `location`, the `followed`+1-th hop:
    /// at most `max_redirects`, http(s) only, and never from a public host
    /// to a private one (`netguard::hop_allowed`).
    fn redirect_target(
        &self,
        from: &Url,
        location: &str,
        followed: usize,
    ) -> Result<Url, FetchError> {
        let max = self.cfg.max_redirects;
        let not_http = || FetchError::Refused {
            url: location.chars().take(200).collect(),
            why: "redirect target is not an http or https URL",
        };
        let to = from.join(location).map_err(|_| not_http())?;
        match to.scheme() {
            "http" | "https" => {}
            "file" => return Err(not_http()),
            other => {
                return Err(FetchError::Http(format!(
                    "redirect to {}: redirect to a {other}: URL refused",
                    location.chars().take(200).collect::<String>()
                )))
            }
        }
        if followed >= max {
            return Err(FetchError::Http(format!(
                "error following redirect for url ({from}): more than {max} redirects"
            )));
        }
        let mode = self.cfg.allow_private;
        if !netguard::hop_allowed(mode, Some(from), &to) {
            let why = match mode {
                crate::config::AllowPrivate::Never => netguard::WHY_NEVER,
                _ => netguard::WHY_AUTO,
            };
            return Err(FetchError::Http(format!("redirect to {to} refused: {why}")));
        }
        Ok(to)
    }

    /// One request, up to its status line and headers.
    async fn send(
        &self,
        client: &reqwest::Client,
        url: &Url,
        validators: Option<&Validators>,
        deadline: tokio::time::Instant,
    ) -> Result<Sent, FetchError> {
        let mut req = client.get(url.clone());
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let resp = tokio::time::timeout_at(deadline, req.send())
            .await
            .map_err(|_| FetchError::Timeout)?
            .map_err(FetchError::from_reqwest)?;
        let status = resp.status();
        // The redirects a browser follows; 300, 304 and 305 are answers.
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = resp.headers().get(reqwest::header::LOCATION) {
                let loc = String::from_utf8_lossy(loc.as_bytes()).into_owned();
                return Ok(Sent::Redirect(status.as_u16(), loc));
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
                // The host that answered, which after a redirect is not
                // the one first asked.
                tracing::warn!(url = %url, status = status.as_u16(), %until, "host asks us to wait (Retry-After)");
                self.paused
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(host_key(url), until);
            }
        }
        Ok(Sent::Done(resp))
    }

    /// The body of a final answer, within `limit` and the memory budget.
    /// `permits` (the host's and a global slot) are held until it is read.
    /// Without `reserved` budget, a body that does not fit in what is free
    /// is not read: the caller waits for the budget and asks again.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        kind: Kind,
        limit: u64,
        deadline: tokio::time::Instant,
        permits: Permits,
        reserved: Option<Reserved>,
    ) -> Result<Read, FetchError> {
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Read::Done(Fetched::NotModified));
        }
        if !status.is_success() {
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
        let (budget, weight) = self.budget.pool(kind);
        let settled = reserved.is_some();
        let (permit, covers) = reserved.map_or((None, 0), |r| (r.permit, r.covers));
        let mut share = Share {
            budget,
            permit,
            covers,
            weight,
            settled,
        };
        // A known length is reserved whole; otherwise a first share, and
        // the cap if the body outgrows it.
        let first = resp
            .content_length()
            .unwrap_or(FIRST_SHARE.min(limit))
            .max(1);
        if let Err(need) = share.cover(first, first) {
            return Ok(Read::NeedBudget(need));
        }
        // A known length is allocated once (it is within the cap and the
        // budget): doubling up to it would hold the old and new buffers.
        let known = resp.content_length().unwrap_or(0).min(limit);
        let mut bytes = Vec::with_capacity(known as usize);
        loop {
            let chunk = tokio::time::timeout_at(deadline, resp.chunk())
                .await
                .map_err(|_| FetchError::Timeout)?
                .map_err(FetchError::from_reqwest)?;
            let Some(chunk) = chunk else { break };
            let len = bytes.len() as u64 + chunk.len() as u64;
            if len > limit {
                return Err(FetchError::TooLarge(limit));
            }
            if share.cover(len, limit).is_err() {
                // At most FIRST_SHARE read so far: cheaper to ask again.
                return Ok(Read::NeedBudget(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        drop(permits);
        let budget = share.settle(bytes.len() as u64);
        Ok(Read::Done(Fetched::Body(Body {
            bytes,
            content_type,
            final_url,
            validators,
            fresh_for,
            budget,
        })))
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

/// What a request got back before its body.
enum Sent {
    /// A redirect (status, `Location`), to be checked and followed.
    Redirect(u16, String),
    Done(reqwest::Response),
}

/// An HTTP client; `guarded` ones resolve names to public addresses only.
/// Redirects are not followed by the client but by [`Fetcher::get_from`],
/// hop by hop (politeness and checks per hop); the total timeout is kept
/// there too, so that waiting for the memory budget does not use it up.
fn build_client(cfg: &FetchConfig, guarded: bool) -> Result<reqwest::Client, FetchError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(cfg.user_agent.clone())
        .connect_timeout(cfg.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
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
        budget: BudgetShare::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(mib: u64) -> Budget {
        Budget::new(mib << 20, Duration::from_secs(30), Arc::default())
    }

    fn share(budget: &Budget, weight: u64) -> Share<'_> {
        Share {
            budget,
            permit: None,
            covers: 0,
            weight,
            settled: false,
        }
    }

    fn free(b: &Budget) -> usize {
        b.sem.available_permits()
    }

    #[test]
    fn budget_shares_are_weighed_taken_without_waiting_and_trimmed_to_the_body() {
        let b = pool(4);
        let mut a = share(&b, 4);
        // 512 KiB weighed 4x: 2 MiB of the 4.
        assert_eq!(a.cover(512 << 10, 512 << 10), Ok(()));
        assert_eq!(free(&b), 2048);
        // Another 600 KiB (2400 KiB weighed) does not fit now: the caller
        // is told to wait for it, holding nothing.
        let mut c = share(&b, 4);
        assert_eq!(c.cover(600 << 10, 600 << 10), Err(600 << 10));
        assert!(c.permit.is_none());
        // The first body turned out to be 100 KiB: its share shrinks to that.
        let held = a.settle(100 << 10);
        assert_eq!(held.kib(), 400);
        assert_eq!(free(&b), 4096 - 400);
        assert_eq!(c.cover(600 << 10, 600 << 10), Ok(()));
        assert_eq!(free(&b), 4096 - 400 - 2400);
        // Growing within what is covered takes nothing more.
        assert_eq!(c.cover(300 << 10, 300 << 10), Ok(()));
        assert_eq!(free(&b), 4096 - 400 - 2400);
        drop(held);
        drop(c.settle(600 << 10));
        assert_eq!(free(&b), 4096);
    }

    #[test]
    fn a_share_never_exceeds_its_pool_and_a_settled_one_reads_on_over_budget() {
        let b = pool(4);
        // 10 MiB weighed 4x is more than the pool: clamped, so it can go alone.
        let mut big = share(&b, 4);
        assert_eq!(big.cover(10 << 20, 10 << 20), Ok(()));
        assert_eq!(free(&b), 0);
        // After a wait (settled), a body larger than announced reads on
        // rather than asking a third time.
        let mut late = share(&b, 4);
        late.settled = true;
        assert_eq!(late.cover(1 << 20, 1 << 20), Ok(()));
        assert!(late.permit.is_none());
        drop(big);
        assert_eq!(free(&b), 4096);
    }

    #[tokio::test]
    async fn a_wait_on_a_stalled_budget_goes_ahead_but_a_moving_one_keeps_its_place() {
        let granted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let b = Budget::new(1 << 20, Duration::from_millis(400), granted.clone());
        let url = Url::parse("http://127.0.0.1/").unwrap();
        let hog = b.try_take(1024).unwrap();
        // Nothing is granted to anyone: after the patience, over budget.
        assert!(b.acquire(512, &url).await.is_none());
        // Grants elsewhere (the other pool) count as progress: keep waiting.
        let ticker = {
            let granted = granted.clone();
            tokio::spawn(async move {
                for _ in 0..16 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(450)).await;
            drop(hog);
        });
        let got = b.acquire(512, &url).await;
        assert_eq!(got.map(|p| p.num_permits()), Some(512));
        ticker.await.unwrap();
        release.await.unwrap();
    }
}
