//! One pass over the feeds: the stages in order, per feed.
//!
//! ```text
//! poll feed (304?) -> parse -> per item: seen? same URL? -> fetch page -> decode
//!   -> extract -> learned boilerplate -> same story? -> write -> record
//! ```
//!
//! Feeds run concurrently; pages of one feed are fetched concurrently and
//! extracted on the blocking pool. Deciding "is this story new" and recording
//! it happen under one short lock (database work only), so two feeds carrying
//! the same story in the same pass cannot both write it; files are written
//! outside the lock, and a failed write un-records the story so the next pass
//! retries it. A feed whose items did not all succeed keeps no validators:
//! the next pass re-reads it instead of getting a 304 and forgetting them.
//! A page that keeps failing is retried with backoff (`schedule::page_retry_after`)
//! and given up after `[fetch] page_attempts` tries: reported, recorded in
//! the store, and from then on no reason to withhold the feed's validators.
//! A pass counts one try per page however many feeds link it (`Pass`); a
//! link refused for what it is (scheme, local file, private address) is
//! given up at its first try. A feed whose host asked for a pause
//! (Retry-After) is deferred, not failed.
//! A feed that answered with permanent redirects is polled at its new URL
//! (stored) for as long as the config names the URL it moved from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use tracing::{debug, error_span, info, warn, Instrument};
use url::Url;

use crate::charset;
use crate::config::{Config, Feed};
use crate::dedupe::{self, Signature};
use crate::extract::{self, Article};
use crate::feed::{self, Item};
use crate::fetch::{Fetched, Fetcher, Kind, Validators};
use crate::output::{self, Duplicate, StoryMeta};
use crate::store::{
    Claim, FeedMove, FeedState, Lease, NearCheck, NewStory, PageAttempt, PageCount, StateStore,
    StoreError,
};

/// Blocks longer than this are article prose, not site furniture: they are
/// neither learned nor dropped as boilerplate.
const MAX_LEARNED_BLOCK_CHARS: usize = 400;
/// Blocks at either end of an article that are learned whatever their length.
const EDGE_BLOCKS: usize = 3;
/// Blocks this short are learned wherever they sit.
const SHORT_BLOCK_CHARS: usize = 100;
/// Share of a site's stories that must carry a block for it to be furniture.
const BOILERPLATE_SHARE: f64 = 0.25;

/// How one feed fared in a pass.
#[derive(Debug, Clone, Default)]
pub struct FeedReport {
    pub feed: String,
    /// The feed itself could not be fetched or parsed.
    pub error: Option<String>,
    pub not_modified: bool,
    pub items: usize,
    pub new: usize,
    /// Same item or same URL (tracking parameters aside) as a story already written.
    pub duplicates: usize,
    /// Same text as a story already written (another outlet's copy).
    pub near_duplicates: usize,
    /// Items whose page could not be fetched, extracted or written; retried next pass.
    pub failed: usize,
    /// Pages given up in this pass after `[fetch] page_attempts` tries.
    pub given_up: usize,
    /// Pages not tried in this pass: backing off after failures, or their
    /// host asked for a pause. Like `failed`, they keep the feed re-read.
    pub deferred: usize,
    /// The feed was not fetched: its host asked us to wait until then
    /// (429/503 with Retry-After). Not a failure of the feed.
    pub host_paused: Option<DateTime<Utc>>,
    /// Items past `feed::MAX_ITEMS` that were not read.
    pub items_ignored: usize,
    /// The feed answered 410 Gone.
    pub gone: bool,
    /// Another instance sharing the state store polls (or polled) it in
    /// this pass: not polled here.
    pub elsewhere: bool,
    /// Lines for the summary under the feed: what went wrong with items,
    /// and notes on the feed (items ignored, a host's pause).
    pub item_errors: Vec<String>,
    /// Items whose files could not be written or updated (counted in
    /// `failed` too); a full or read-only disk is logged once per feed.
    pub write_errors: usize,
    /// The feed's RSS `<ttl>`, and how long its response said it stays
    /// fresh (Cache-Control, Expires): hints for the daemon's schedule.
    pub ttl_minutes: Option<u32>,
    pub fresh_for: Option<std::time::Duration>,
}

/// Everything a pass needs, shared by all feeds.
pub struct Context {
    pub config: Config,
    pub fetcher: Fetcher,
    pub store: Arc<dyn StateStore>,
    /// Explicit per-site extraction rules (`[extract] sites_dir`).
    pub sites: Arc<extract::SiteRulesSet>,
    decide: tokio::sync::Mutex<()>,
    /// Parsing and extraction in progress at once: one per core. More only
    /// queued on the cores while each held its page's tree and a thread of
    /// its own (a pass at 32 requests ran 125 threads).
    cpu: tokio::sync::Semaphore,
    /// Makes written stories durable in batches.
    durable: Arc<output::GroupSync>,
    story_locks: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// When `prune_if_due` last ran.
    pruned_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// When `recover` last ran (abandoned writes were looked for).
    recovered_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Tenths of a second a copy waits for another instance's first copy to
/// appear on disk.
const SHARED_WRITE_WAITS: usize = 30;

/// How often a long-running daemon prunes the store.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] extract::RulesError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
}

impl Context {
    pub fn new(config: Config, store: Arc<dyn StateStore>) -> Result<Self, PassError> {
        let fetcher = Fetcher::new(&config.fetch)?.with_shared_hosts(store.shared_hosts());
        let sites = Arc::new(extract::SiteRulesSet::load(&config.extract.sites_dir)?);
        let durable = output::GroupSync::new(&config.output_dir);
        Ok(Context {
            config,
            fetcher,
            store,
            sites,
            decide: tokio::sync::Mutex::new(()),
            cpu: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            durable,
            story_locks: std::sync::Mutex::new(HashMap::new()),
            pruned_at: std::sync::Mutex::new(None),
            recovered_at: std::sync::Mutex::new(None),
        })
    }

    /// Undoes writes a crash interrupted: files of stories whose write never
    /// finished are removed and the stories forgotten, temp files deleted,
    /// and every feed re-read on the next pass.
    pub fn recover(&self) -> Result<usize, PassError> {
        *self.recovered_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now());
        // Temp files of interrupted `.json` rewrites (duplicates added).
        // With a shared store other instances may be writing right now:
        // only theirs older than a lease are certainly abandoned.
        let min_age = if self.store.is_shared() {
            self.config.state.lease
        } else {
            std::time::Duration::ZERO
        };
        output::clean_temp(&self.config.output_dir, min_age);
        let pending = self.store.pending_writes()?;
        if !pending.is_empty() {
            // First: a crash during this recovery must not leave validators
            // that hide the undone items once the pending entries are gone.
            self.store.clear_validators()?;
        }
        for (stem, key) in &pending {
            let stem_path = PathBuf::from(stem);
            output::remove_story(&self.config.output_dir, &stem_path);
            if let Some(dir) = self.config.output_dir.join(&stem_path).parent() {
                output::clean_temp(dir, min_age);
            }
            if let Some(story) = self.store.story_by_key(*key)? {
                if story.stem == *stem {
                    self.store.remove_story(story.id)?;
                }
            }
            self.store.end_write(stem)?;
        }
        if !pending.is_empty() {
            warn!(
                writes = pending.len(),
                "undid story writes interrupted by a crash"
            );
        }
        Ok(pending.len())
    }

    /// Drops stored state no lookup can use any more (signatures out of the
    /// dedupe window, stale boilerplate counts): at the first call, then at
    /// most hourly. A failure is logged and retried next time.
    pub fn prune_if_due(&self) {
        // A shared store: writes left pending by an instance that died (and
        // may never start again) are undone by the others, once they are
        // older than a lease.
        if self.store.is_shared() {
            let due = self
                .recovered_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none_or(|t| t.elapsed() >= self.config.state.lease);
            if due {
                if let Err(e) = self.recover() {
                    warn!(error = %e, "cannot undo writes abandoned by other instances");
                }
            }
        }
        {
            let mut at = self.pruned_at.lock().unwrap_or_else(|e| e.into_inner());
            if at.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
                return;
            }
            *at = Some(std::time::Instant::now());
        }
        let now = Utc::now();
        let window =
            chrono::Duration::from_std(self.config.dedupe.window).unwrap_or(chrono::Duration::MAX);
        let near_before = now
            .checked_sub_signed(window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match self.store.prune(near_before, now) {
            Ok(p) if p != Default::default() => {
                debug!(
                    signatures = p.signatures,
                    blocks = p.blocks,
                    "pruned the state store"
                )
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot prune the state store"),
        }
    }

    /// Runs `f` on the blocking pool once a core is free for it.
    async fn cpu_bound<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        // Never closed, so acquiring only waits.
        let _core = self.cpu.acquire().await.ok();
        tokio::task::spawn_blocking(f).await
    }

    fn story_lock(&self, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.story_locks.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(id).or_default().clone()
    }
}

/// What the feeds of one pass share: the pages whose failure was already
/// counted in it, with the error. A page linked from many feeds is one try
/// per pass, not one per feed, or a single bad moment would use up all of
/// `[fetch] page_attempts` at once.
#[derive(Default)]
pub struct Pass {
    /// Per page: the error of its failure in this pass, if it failed.
    /// Held while that failure is recorded, so a feed that finds the page
    /// failed also finds the store's record of it (given up, say).
    pages: std::sync::Mutex<HashMap<u64, Arc<std::sync::Mutex<Option<String>>>>>,
}

impl Pass {
    fn page(&self, key: u64) -> Arc<std::sync::Mutex<Option<String>>> {
        self.pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }

    /// The error the page failed with in this pass, if it did.
    fn failed(&self, key: u64) -> Option<String> {
        let page = self
            .pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        page.and_then(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The span of one feed's work. At error level so that it is enabled
/// whenever any event is printed (the default filter is `warn`): every
/// line about a feed names it and its URL.
fn feed_span(feed: &Feed) -> tracing::Span {
    error_span!("feed", feed = %feed.name, url = %feed.url)
}

/// Runs one pass over `feeds`, calling `done` after each feed.
pub async fn run_pass(
    ctx: Arc<Context>,
    feeds: Vec<Feed>,
    done: impl Fn(&FeedReport),
) -> Vec<FeedReport> {
    let parallel = ctx.config.fetch.concurrency.clamp(1, 64);
    // With a shared store, a feed another instance polled since this pass
    // began counts as polled: each feed once per pass, whoever runs it.
    let started = Utc::now();
    let pass = Arc::new(Pass::default());
    let mut reports: Vec<FeedReport> = stream::iter(feeds.into_iter().map(|f| {
        let ctx = ctx.clone();
        let pass = pass.clone();
        let span = feed_span(&f);
        async move {
            match ctx.store.lease_feed(&f.name, Some(started), Utc::now()) {
                Ok(Lease::Granted) => {}
                Ok(other) => {
                    debug!(lease = ?other, "polled by another instance");
                    return FeedReport {
                        feed: f.name.clone(),
                        elsewhere: true,
                        ..FeedReport::default()
                    };
                }
                Err(e) => {
                    return FeedReport {
                        feed: f.name.clone(),
                        error: Some(format!("cannot lease the feed: {e}")),
                        ..FeedReport::default()
                    }
                }
            }
            let report = poll_leased_in(&ctx, &f, &pass).await;
            if let Err(e) = ctx.store.release_feed(&f.name, true, Utc::now()) {
                warn!(error = %e, "cannot release the feed's lease");
            }
            report
        }
        .instrument(span)
    }))
    .buffer_unordered(parallel)
    .inspect(|r| done(r))
    .collect()
    .await;
    reports.sort_by(|a, b| a.feed.cmp(&b.feed));
    reports
}

/// `poll_feed` under a lease already taken: on a shared store the lease is
/// renewed every third of its term while the poll runs, so a long poll is
/// not taken over by another instance halfway.
pub async fn poll_leased(ctx: &Context, feed: &Feed) -> FeedReport {
    poll_leased_in(ctx, feed, &Pass::default()).await
}

/// `poll_leased` as part of `pass`.
pub async fn poll_leased_in(ctx: &Context, feed: &Feed, pass: &Pass) -> FeedReport {
    if !ctx.store.is_shared() {
        return poll_feed_in(ctx, feed, pass).await;
    }
    let every = ctx.config.state.lease / 3;
    let renew = async {
        loop {
            tokio::time::sleep(every).await;
            match ctx.store.lease_feed(&feed.name, None, Utc::now()) {
                Ok(Lease::Granted) => debug!("lease renewed"),
                Ok(other) => warn!(lease = ?other, "lease lost to another instance mid-poll"),
                Err(e) => warn!(error = %e, "cannot renew the feed's lease"),
            }
        }
    };
    tokio::select! {
        report = poll_feed_in(ctx, feed, pass) => report,
        never = renew => never,
    }
}

/// A candidate story: an item whose page is to be fetched.
struct Candidate {
    item: Item,
    link: Url,
    item_key: u64,
    canonical: Url,
    url_key: u64,
}

struct Extracted {
    cand: Candidate,
    /// Fingerprints of the article's blocks as extracted (`block_keys`),
    /// before learned boilerplate dropped any: what the site is counted
    /// with, so a block learned as furniture keeps being counted as such.
    blocks: Vec<u64>,
    article: Article,
    /// Near-duplicate signature of `article`'s body, kept in step with it.
    sig: Option<Signature>,
}

/// Polls one feed and processes its new items.
pub async fn poll_feed(ctx: &Context, feed: &Feed) -> FeedReport {
    poll_feed_in(ctx, feed, &Pass::default()).await
}

/// `poll_feed` as part of `pass`.
pub async fn poll_feed_in(ctx: &Context, feed: &Feed, pass: &Pass) -> FeedReport {
    let mut report = FeedReport {
        feed: feed.name.clone(),
        ..FeedReport::default()
    };
    // `failing`: failures in a row before this poll. A failing feed warns
    // once, then logs at debug until it recovers, not at every poll.
    let (failing, result) = match ctx.store.feed_state(&feed.name) {
        Ok(state) => (
            state.failures,
            poll_feed_inner(ctx, feed, &state, pass, &mut report).await,
        ),
        Err(e) => (0, Err(FeedFailure::Store(e))),
    };
    match result {
        Ok(()) => {
            if failing > 0 {
                info!(failures = failing, "feed recovered");
            }
        }
        Err(FeedFailure::Fetch(e)) if host_paused(ctx, feed, &e).is_some() => {
            // The host asked for a break (Retry-After): the feed is polled
            // after it, and this is no failure of the feed (its one warning
            // is kept for a real error).
            let until = host_paused(ctx, feed, &e);
            debug!(error = %e, "feed deferred: its host asked us to wait");
            report.host_paused = until;
            if let Some(until) = until {
                report.item_errors.insert(
                    0,
                    format!(
                        "deferred: host asked us to wait until {}",
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                );
            }
        }
        Err(e) => {
            report.gone = matches!(e, FeedFailure::Fetch(crate::fetch::FetchError::Status(410)));
            if report.gone {
                // Loud every time, but the daemon polls a gone feed once a day.
                warn!(error = %e, failures = failing + 1, "feed is gone (HTTP 410): remove it from the config; still retried daily");
            } else if failing == 0 {
                warn!(error = %e, "feed failed; until it recovers, further failures are logged at debug level");
            } else {
                debug!(error = %e, failures = failing + 1, "feed still failing");
            }
            report.error = Some(e.to_string());
            if let Err(e) = ctx
                .store
                .feed_failed(&feed.name, &e.to_string(), Utc::now())
            {
                warn!(error = %e, "cannot record feed failure");
            }
        }
    }
    report
}

/// Until when the feed's host asked us to wait, when that is why its fetch
/// failed: it was not sent (`HostPaused`), or it was answered 429/503 with
/// a Retry-After.
fn host_paused(ctx: &Context, feed: &Feed, e: &crate::fetch::FetchError) -> Option<DateTime<Utc>> {
    use crate::fetch::FetchError;
    match e {
        FetchError::HostPaused { until, .. } => Some(*until),
        FetchError::Status(429 | 503) => ctx.fetcher.paused_until(&feed.url),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
enum FeedFailure {
    #[error("fetch: {0}")]
    Fetch(#[from] crate::fetch::FetchError),
    #[error("{0}")]
    Parse(#[from] feed::FeedError),
    #[error("state: {0}")]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Join(String),
}

async fn poll_feed_inner(
    ctx: &Context,
    feed: &Feed,
    state: &FeedState,
    pass: &Pass,
    report: &mut FeedReport,
) -> Result<(), FeedFailure> {
    // A permanent redirect seen earlier holds while the config still names
    // the URL it was seen for; from here on `feed` is where the feed lives.
    let configured = &feed.url;
    let moved_feed: Feed;
    let feed = match ctx.store.feed_moved(&feed.name)? {
        Some(m) if m.from == configured.as_str() => match Url::parse(&m.to) {
            Ok(to) => {
                moved_feed = Feed {
                    url: to,
                    ..feed.clone()
                };
                &moved_feed
            }
            Err(_) => feed,
        },
        Some(m) => {
            info!(moved_to = %m.to, "feed URL changed in the config: the stored redirect no longer applies");
            ctx.store.set_feed_moved(&feed.name, None)?;
            feed
        }
        None => feed,
    };
    let local = feed.url.scheme() == "file";
    let fetched = ctx
        .fetcher
        .get_feed(&feed.url, Some(&state.validators), local)
        .await?;
    if let Some(to) = fetched.moved_to.filter(|to| *to != feed.url) {
        if to == *configured {
            info!(to = %to, "feed moved back to its configured URL");
            ctx.store.set_feed_moved(&feed.name, None)?;
        } else {
            info!(from = %feed.url, to = %to, "feed moved permanently (301/308): polling the new URL from now on; put it in the config to make that explicit");
            let m = FeedMove {
                from: configured.to_string(),
                to: to.to_string(),
            };
            ctx.store.set_feed_moved(&feed.name, Some(&m))?;
        }
    }
    let body = match fetched.fetched {
        Fetched::NotModified => {
            debug!("not modified");
            report.not_modified = true;
            ctx.store.feed_ok(&feed.name, None, 0, Utc::now())?;
            return Ok(());
        }
        Fetched::Body(b) => b,
    };
    let base = body.final_url.clone();
    let bytes = body.bytes;
    let parsed = ctx
        .cpu_bound(move || feed::parse(&bytes, &base))
        .await
        .map_err(|e| FeedFailure::Join(e.to_string()))??;
    report.items = parsed.items.len();
    if parsed.items_ignored > 0 {
        report.items_ignored = parsed.items_ignored;
        let note = format!(
            "{} items beyond the {}-item limit ignored",
            parsed.items_ignored,
            feed::MAX_ITEMS
        );
        warn!(
            kept = feed::MAX_ITEMS,
            ignored = parsed.items_ignored,
            "feed has too many items: {note}"
        );
        report.item_errors.push(note);
    }
    report.ttl_minutes = parsed.ttl_minutes;
    report.fresh_for = body.fresh_for;

    // Exact dedupe first: most items of a polled feed were seen before.
    // One look-up for the whole feed (a round trip each would add up on a
    // networked store).
    type Keyed = (Item, u64, Option<(Url, u64)>);
    let items: Vec<Keyed> = parsed
        .items
        .into_iter()
        .map(|item| {
            let item_key = dedupe::item_key(&feed.name, &item);
            let link = item.link.clone().map(|link| {
                let url_key = dedupe::url_key(&dedupe::canonical_url(&link));
                (link, url_key)
            });
            (item, item_key, link)
        })
        .collect();
    let keys: Vec<u64> = items
        .iter()
        .flat_map(|(_, k, l)| std::iter::once(*k).chain(l.as_ref().map(|l| l.1)))
        .collect();
    let known = ctx.store.stories_by_keys(&keys)?;
    let mut candidates = Vec::new();
    // Later items of this feed naming a candidate's page (tracking
    // parameters aside): copies, listed once the first one is decided.
    let mut copies: Vec<Candidate> = Vec::new();
    for (item, item_key, link) in items {
        let Some((link, url_key)) = link else {
            if !known.contains_key(&item_key) {
                item_failed(report, &item.title, "item has no link");
            }
            continue;
        };
        let canonical = dedupe::canonical_url(&link);
        if let Some(story) = known.get(&item_key) {
            // A GUID reused for another page is a new story, not a repeat.
            if item.guid.is_none() || known.get(&url_key).is_some_and(|s| s.id == story.id) {
                continue;
            }
        }
        if let Some(first) = candidates
            .iter()
            .find(|c: &&Candidate| c.url_key == url_key)
        {
            // The same item twice is one item; another item on the same
            // page is a copy, as it would be in another feed.
            if first.item_key != item_key && !copies.iter().any(|c| c.item_key == item_key) {
                copies.push(Candidate {
                    item,
                    link,
                    item_key,
                    canonical,
                    url_key,
                });
            }
            continue;
        }
        candidates.push(Candidate {
            item,
            link,
            item_key,
            canonical,
            url_key,
        });
    }

    let mut pages = Vec::new();
    let mut fetches = Vec::new();
    let now = Utc::now();
    let failures = ctx
        .store
        .page_failures(&candidates.iter().map(|c| c.url_key).collect::<Vec<_>>())?;
    for cand in candidates {
        if let Some(story) = known.get(&cand.url_key) {
            record_duplicate(ctx, feed, &cand, story.id, &story.stem, "url", None, report).await;
            continue;
        }
        // A page that already failed in this pass (another feed links it)
        // is not asked again before the next pass.
        if let Some(why) = pass.failed(cand.url_key) {
            let seen = failures.get(&cand.url_key).map(|pf| pf.attempts);
            page_failed(ctx, pass, feed, &cand, seen, &why, false, report);
            continue;
        }
        // Pages that failed before: given up ones are skipped for good (they
        // were reported then), the others wait out their backoff.
        let failed_before = match failures.get(&cand.url_key).cloned() {
            Some(pf) if pf.given_up => {
                debug!(url = %cand.link, attempts = pf.attempts, "page was given up earlier; skipped");
                continue;
            }
            Some(pf) => {
                let wait = crate::schedule::page_retry_after(
                    ctx.config.schedule.error_backoff,
                    ctx.config.schedule.max_backoff,
                    pf.attempts,
                );
                let due = pf.last_at + crate::schedule::to_chrono(wait);
                if due > now {
                    debug!(url = %cand.link, attempts = pf.attempts, %due, "page backing off after failures");
                    report.deferred += 1;
                    continue;
                }
                Some(pf.attempts)
            }
            None => None,
        };
        fetches.push((cand, failed_before));
    }
    let per_feed = ctx.config.fetch.per_host.max(2) * 2;
    let learn = ctx.config.extract.learn_min_stories > 0;
    let mut results = stream::iter(fetches.into_iter().map(|(cand, failed_before)| {
        let span = error_span!("page", url = %cand.link);
        async move {
            let r = fetch_and_extract(ctx, feed, &cand).await;
            (cand, failed_before, r)
        }
        .instrument(span)
    }))
    .buffered(per_feed);
    while let Some((cand, failed_before, r)) = results.next().await {
        match r {
            Ok(article) => {
                if failed_before.is_some() {
                    if let Err(e) = ctx.store.page_ok(cand.url_key) {
                        warn!(url = %cand.link, error = %e, "cannot clear the page's failures");
                    }
                }
                let sig = Signature::of(&article.body());
                let blocks = if learn {
                    block_keys(&article)
                } else {
                    Vec::new()
                };
                pages.push(Extracted {
                    cand,
                    blocks,
                    article,
                    sig,
                })
            }
            Err(PageError::Paused(e)) => {
                debug!(url = %cand.link, error = %e, "page deferred: its host asked for a pause");
                report.deferred += 1;
            }
            Err(PageError::Failed(e)) => {
                page_failed(ctx, pass, feed, &cand, failed_before, &e, false, report)
            }
            Err(PageError::Refused(e)) => {
                page_failed(ctx, pass, feed, &cand, failed_before, &e, true, report)
            }
        }
    }
    drop(results);

    learned_boilerplate(ctx, &mut pages)?;
    for page in pages {
        store_story(ctx, feed, page, report).await;
    }
    for copy in copies {
        // Its first item is decided by now: written, or a copy itself. If
        // it failed, the feed keeps no validators and both come back.
        match ctx.store.story_by_key(copy.url_key) {
            Ok(Some(story)) => {
                record_duplicate(ctx, feed, &copy, story.id, &story.stem, "url", None, report).await
            }
            Ok(None) => {
                debug!(url = %copy.link, "copy of a page not written in this pass; seen again next pass")
            }
            Err(e) => item_failed(report, copy.link.as_str(), &e.to_string()),
        }
    }

    // Validators only when every item is done (written, a duplicate, or
    // given up); otherwise the next pass must see the items again.
    let validators = if report.failed == 0 && report.deferred == 0 {
        body.validators
    } else {
        Validators::default()
    };
    ctx.store
        .feed_ok(&feed.name, Some(&validators), report.new as u64, Utc::now())?;
    if report.new + report.failed + report.given_up > 0 {
        info!(
            new = report.new,
            duplicates = report.duplicates,
            near = report.near_duplicates,
            failed = report.failed,
            given_up = report.given_up,
            "feed done"
        );
    } else {
        debug!(
            duplicates = report.duplicates,
            near = report.near_duplicates,
            deferred = report.deferred,
            "feed done, nothing new"
        );
    }
    Ok(())
}

/// Why a page gave no article.
#[derive(Debug, thiserror::Error)]
enum PageError {
    /// Its host asked for a pause (Retry-After): not the page's fault, so
    /// no attempt is counted.
    #[error("{0}")]
    Paused(String),
    #[error("{0}")]
    Failed(String),
    /// gleaner will not fetch it (scheme, local file, private address):
    /// asking again cannot change that.
    #[error("{0}")]
    Refused(String),
}

/// Counts a failed attempt at a page (`seen`: the attempts recorded when
/// this feed looked), at most one per pass; at `[fetch] page_attempts` it
/// is given up: a warning (once, by whichever feed gave it up), a line in
/// the summary, a mark in the store. A refused link (`permanent`) is given
/// up at once: it is reported, and no reason to withhold the feed's
/// validators.
#[allow(clippy::too_many_arguments)]
fn page_failed(
    ctx: &Context,
    pass: &Pass,
    feed: &Feed,
    cand: &Candidate,
    seen: Option<u32>,
    why: &str,
    permanent: bool,
    report: &mut FeedReport,
) {
    let max = ctx.config.fetch.page_attempts.max(1);
    let page = pass.page(cand.url_key);
    let mut failed = page.lock().unwrap_or_else(|e| e.into_inner());
    let first = failed.is_none();
    if first {
        *failed = Some(why.to_string());
    }
    let recorded = if permanent || first {
        ctx.store.page_failed(&PageAttempt {
            key: cand.url_key,
            feed: &feed.name,
            url: cand.link.as_str(),
            error: why,
            now: Utc::now(),
            seen,
            max_attempts: max,
            permanent,
        })
    } else {
        // Another feed of this pass counted this page's try already.
        ctx.store.page_failure(cand.url_key).map(|pf| PageCount {
            attempts: pf.as_ref().map_or(0, |pf| pf.attempts),
            counted: false,
            given_up: pf.is_some_and(|pf| pf.given_up),
            gave_up: false,
        })
    };
    drop(failed);
    let count = match recorded {
        Ok(c) => c,
        Err(e) => {
            warn!(url = %cand.link, error = %e, "cannot record the page failure");
            item_failed(report, cand.link.as_str(), why);
            return;
        }
    };
    let attempts = count.attempts;
    if count.given_up {
        report.given_up += 1;
        let line = if permanent {
            format!("{}: refused, not fetched: {why}", cand.link)
        } else {
            format!("{}: given up after {attempts} tries: {why}", cand.link)
        };
        if report.item_errors.len() < 20 {
            report.item_errors.push(line);
        }
        if count.gave_up && permanent {
            warn!(url = %cand.link, error = %why, "link refused; it is not fetched");
        } else if count.gave_up {
            warn!(url = %cand.link, error = %why, attempts, "page given up after {attempts} tries; it is no longer fetched");
        } else {
            debug!(url = %cand.link, error = %why, attempts, "page given up (by another feed)");
        }
        return;
    }
    if count.counted && attempts == 1 {
        warn!(url = %cand.link, error = %why, "page failed; retried at later polls, up to {max} tries");
    } else {
        debug!(url = %cand.link, error = %why, attempts, counted = count.counted, "page failed again");
    }
    item_failed(report, cand.link.as_str(), why);
}

/// A story's files could not be written or its `.json` updated. A full or
/// read-only disk fails every item of a feed alike, so one warning per feed
/// (the summary still lists each item).
fn write_failed(report: &mut FeedReport, url: &Url, why: &str) {
    if report.write_errors == 0 {
        warn!(url = %url, error = %why, "cannot write story files; retried next pass (further write errors of this feed at debug level)");
    } else {
        debug!(url = %url, error = %why, "cannot write story files");
    }
    report.write_errors += 1;
    item_failed(report, url.as_str(), why);
}

fn item_failed(report: &mut FeedReport, what: &str, why: &str) {
    report.failed += 1;
    if report.item_errors.len() < 20 {
        report.item_errors.push(format!("{what}: {why}"));
    }
}

async fn fetch_and_extract(
    ctx: &Context,
    feed: &Feed,
    cand: &Candidate,
) -> Result<Article, PageError> {
    // file: pages only from a file: feed, private addresses only from a
    // private feed: the fetcher decides from the feed the link came from.
    let body = match ctx
        .fetcher
        .get_linked(&cand.link, Kind::Page, &feed.url)
        .await
    {
        Ok(Fetched::Body(b)) => b,
        Ok(Fetched::NotModified) => return Err(PageError::Failed("unexpected 304".into())),
        // The host asked for a pause, now or with this very answer.
        Err(e @ crate::fetch::FetchError::HostPaused { .. }) => {
            return Err(PageError::Paused(e.to_string()))
        }
        Err(e @ crate::fetch::FetchError::Status(429 | 503))
            if ctx.fetcher.paused_until(&cand.link).is_some() =>
        {
            return Err(PageError::Paused(e.to_string()))
        }
        // Refused for what the link itself is (scheme, local file, private
        // address): that never changes. A redirect's target or a name's
        // DNS answer might, so those are failures like any other.
        Err(ref e @ crate::fetch::FetchError::Refused { ref url, why })
            if url == cand.link.as_str() && why != crate::fetch::netguard::WHY_NAME =>
        {
            return Err(PageError::Refused(e.to_string()))
        }
        Err(e) => return Err(PageError::Failed(e.to_string())),
    };
    let base = body.final_url;
    let ct = body.content_type;
    let bytes = body.bytes;
    let sites = ctx.sites.clone();
    let article = ctx
        .cpu_bound(move || {
            let html = charset::decode(&bytes, ct.as_deref());
            let rules = base.host_str().and_then(|h| sites.for_host(h));
            extract::extract_with(&html, Some(&base), rules)
        })
        .await
        .map_err(|e| PageError::Failed(format!("extractor crashed: {e}")))?;
    if article.blocks.is_empty() {
        return Err(PageError::Failed(
            "no article text found on the page".into(),
        ));
    }
    Ok(article)
}

fn block_key(text: &str) -> u64 {
    dedupe::hash64(&[b"block", dedupe::normalize_words(text).as_bytes()])
}

/// The "sites" a page belongs to for learned boilerplate: its host, and its
/// host plus first path segment (many hosts serve several publications, or
/// sections with their own furniture, under one name).
fn site_keys(url: &Url) -> Vec<u64> {
    let host = url.host_str().unwrap_or("");
    let mut keys = vec![dedupe::hash64(&[b"site", host.as_bytes()])];
    let mut segs = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty());
    if let (Some(first), Some(_)) = (segs.next(), segs.next()) {
        if !first.bytes().all(|b| b.is_ascii_digit()) {
            keys.push(dedupe::hash64(&[
                b"site",
                host.as_bytes(),
                first.as_bytes(),
            ]));
        }
    }
    keys
}

/// Fingerprints of the blocks where furniture sits inside an article: the
/// first and last few, and any short one; sorted and distinct. Long prose
/// in the middle is never furniture, and not storing it keeps the table small.
fn block_keys(article: &Article) -> Vec<u64> {
    let n = article.blocks.len();
    let mut k: Vec<u64> = article
        .blocks
        .iter()
        .enumerate()
        .filter(|(i, b)| {
            let chars = b.text.chars().count();
            chars <= MAX_LEARNED_BLOCK_CHARS
                && (*i < EDGE_BLOCKS || i + EDGE_BLOCKS >= n || chars <= SHORT_BLOCK_CHARS)
        })
        .map(|(_, b)| block_key(&b.text))
        .collect();
    k.sort_unstable();
    k.dedup();
    k
}

/// Drops blocks that many other stories of the same site also printed:
/// promos and footers inside the article container. Evidence is what the
/// store learned from earlier stories plus the other pages of this batch (a
/// cold start). A block counts as boilerplate when at least `min` other
/// stories and a `BOILERPLATE_SHARE` of the site's stories carried it: a
/// sentence two stories happen to share is not furniture. A block unique to
/// its article is never dropped.
fn learned_boilerplate(ctx: &Context, pages: &mut [Extracted]) -> Result<(), StoreError> {
    let min = ctx.config.extract.learn_min_stories;
    if min == 0 || pages.is_empty() {
        return Ok(());
    }
    let keys: Vec<Vec<u64>> = pages.iter().map(|p| p.blocks.clone()).collect();
    // Copies of one story in the batch are one piece of evidence, not several.
    let sigs: Vec<Option<Signature>> = pages.iter().map(|p| p.sig.clone()).collect();
    let mut group: Vec<usize> = (0..pages.len()).collect();
    for i in 0..pages.len() {
        for j in 0..i {
            if let (Some(a), Some(b)) = (&sigs[i], &sigs[j]) {
                if group[j] == j && a.same_story(b, ctx.config.dedupe.threshold).is_some() {
                    group[i] = j;
                    break;
                }
            }
        }
    }
    // Per site: the batch's story groups, and per block the groups carrying it.
    let mut site_groups: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut batch: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    let sites: Vec<Vec<u64>> = pages.iter().map(|p| site_keys(&p.cand.link)).collect();
    for i in 0..pages.len() {
        for site in &sites[i] {
            let g = site_groups.entry(*site).or_default();
            if !g.contains(&group[i]) {
                g.push(group[i]);
            }
            for k in &keys[i] {
                let g = batch.entry((*site, *k)).or_default();
                if !g.contains(&group[i]) {
                    g.push(group[i]);
                }
            }
        }
    }
    // What the store learned, per site of the batch: one look-up each.
    let mut learned: HashMap<u64, (u32, HashMap<u64, u32>)> = HashMap::new();
    for site in site_groups.keys() {
        let mut blocks: Vec<u64> = (0..pages.len())
            .filter(|i| sites[*i].contains(site))
            .flat_map(|i| keys[i].iter().copied())
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        let (stories, counts) = ctx.store.block_counts(*site, &blocks)?;
        learned.insert(*site, (stories, blocks.into_iter().zip(counts).collect()));
    }
    for (i, page) in pages.iter_mut().enumerate() {
        let mut boiler: Vec<u64> = Vec::new();
        for site in &sites[i] {
            let (stored_stories, known) = &learned[site];
            let stored_stories = *stored_stories;
            let stored = keys[i]
                .iter()
                .map(|k| known.get(k).copied().unwrap_or_default());
            let others_in_batch = site_groups
                .get(site)
                .map_or(0, |g| g.iter().filter(|&&x| x != group[i]).count());
            let stories = stored_stories as usize + others_in_batch;
            for (k, stored) in keys[i].iter().zip(stored) {
                let others = batch
                    .get(&(*site, *k))
                    .map_or(0, |g| g.iter().filter(|&&x| x != group[i]).count());
                let count = stored as usize + others;
                if count >= min as usize && count as f64 >= BOILERPLATE_SHARE * stories as f64 {
                    boiler.push(*k);
                }
            }
        }
        if !boiler.is_empty() {
            let before = page.article.blocks.len();
            page.article
                .drop_blocks(|b| boiler.contains(&block_key(&b.text)));
            if page.article.blocks.len() != before {
                page.sig = Signature::of(&page.article.body());
            }
            debug!(url = %page.cand.link, dropped = before - page.article.blocks.len(), "learned boilerplate");
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record_duplicate(
    ctx: &Context,
    feed: &Feed,
    cand: &Candidate,
    story: i64,
    stem: &str,
    matched_by: &str,
    similarity: Option<f64>,
    report: &mut FeedReport,
) {
    let dup = Duplicate {
        url: cand.link.to_string(),
        feed: feed.name.clone(),
        seen_at: Utc::now(),
        matched_by: Some(matched_by.to_string()),
        similarity,
    };
    let lock = ctx.story_lock(story);
    let _g = lock.lock().await;
    if ctx.store.is_shared() {
        // The first copy may be another instance's, its files still being
        // written: give them a moment rather than fail the item.
        let json = ctx.config.output_dir.join(stem).with_extension("json");
        for _ in 0..SHARED_WRITE_WAITS {
            if json.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let (out_dir, stem_path) = (ctx.config.output_dir.clone(), PathBuf::from(stem));
    let r = ctx
        .store
        .with_story_lock(
            story,
            Box::new(move || {
                output::add_duplicate(&out_dir, &stem_path, &dup).map_err(|e| e.to_string())
            }),
        )
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .and_then(|()| {
            ctx.store
                .add_keys(story, &[cand.item_key, cand.url_key])
                .map_err(|e| e.to_string())
        });
    match r {
        Ok(()) => {
            if matched_by == "text" {
                report.near_duplicates += 1;
            } else {
                report.duplicates += 1;
            }
            debug!(url = %cand.link, original = stem, matched_by, "duplicate");
        }
        Err(e) => {
            write_failed(report, &cand.link, &format!("cannot record duplicate: {e}"));
        }
    }
}

enum Decision {
    Duplicate {
        story: i64,
        stem: String,
        by: &'static str,
        similarity: Option<f64>,
    },
    Write {
        story: i64,
        stem: PathBuf,
        lock: Arc<tokio::sync::Mutex<()>>,
        guard: tokio::sync::OwnedMutexGuard<()>,
    },
}

/// Makes a story's staged files durable in place: one group sync for the
/// temp files, the renames, one more for the renames. Until the caller
/// records the story finished it is a pending write, which recovery undoes
/// after a crash; a name never points at a file whose content could be
/// lost.
async fn make_durable(ctx: &Context, files: output::StagedStory) -> Result<(), String> {
    ctx.durable.sync().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || files.publish())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    ctx.durable.sync().await.map_err(|e| e.to_string())
}

async fn store_story(ctx: &Context, feed: &Feed, page: Extracted, report: &mut FeedReport) {
    let Extracted {
        cand,
        blocks,
        article,
        sig,
    } = page;
    let now = Utc::now();
    let title = if cand.item.title.is_empty() {
        article
            .meta
            .title
            .clone()
            .map(|t| feed::clean_line(&t, 300))
            .unwrap_or_default()
    } else {
        cand.item.title.clone()
    };
    // The page's own canonical URL counts when it stays on the same site.
    let page_canonical = article
        .meta
        .canonical_url
        .as_ref()
        .filter(|c| c.host_str() == cand.link.host_str())
        .map(dedupe::canonical_url);
    let page_key = page_canonical.as_ref().map(dedupe::url_key);
    let body = article.body();
    let date: DateTime<Utc> = cand
        .item
        .published
        .or(article.meta.published.map(|d| d.with_timezone(&Utc)))
        .unwrap_or(now);
    let id = format!("{:012x}", cand.url_key >> 16);
    let stem = output::story_stem(&feed.name, date, &title, &id);
    let stem_str = stem.to_string_lossy().to_string();

    let decision: Result<Decision, StoreError> = async {
        // A shared store decides inside `add_story`, atomically with the
        // insert and for every process: looking here first would only double
        // the round trips, and this lock would queue every story of the
        // pass behind one database transaction at a time.
        let look = !ctx.store.is_shared();
        let near = (!ctx.config.dedupe.window.is_zero()).then(|| NearCheck {
            since: now
                - chrono::Duration::from_std(ctx.config.dedupe.window)
                    .unwrap_or(chrono::Duration::days(7)),
            threshold: ctx.config.dedupe.threshold,
        });
        let _g = if look {
            Some(ctx.decide.lock().await)
        } else {
            None
        };
        for (key, by) in [(Some(cand.url_key), "url"), (page_key, "url")] {
            let key = key.filter(|_| look);
            if let Some(story) = key
                .map(|k| ctx.store.story_by_key(k))
                .transpose()?
                .flatten()
            {
                return Ok(Decision::Duplicate {
                    story: story.id,
                    stem: story.stem,
                    by,
                    similarity: None,
                });
            }
        }
        if let (Some(sig), Some(n), true) = (&sig, near, look) {
            if let Some((story, sim)) = ctx.store.near_best(sig, n.since, n.threshold)? {
                return Ok(Decision::Duplicate {
                    story: story.id,
                    stem: story.stem,
                    by: "text",
                    similarity: Some(sim),
                });
            }
        }
        let mut keys = vec![cand.url_key];
        keys.extend(page_key);
        let story = match ctx.store.add_story(&NewStory {
            stem: &stem_str,
            feed: &feed.name,
            created: now,
            keys: &keys,
            aliases: &[cand.item_key],
            signature: sig.as_ref(),
            near,
        })? {
            Claim::New(id) => id,
            // Another instance recorded it between our look-up and now.
            Claim::Taken {
                story,
                by,
                similarity,
            } => {
                return Ok(Decision::Duplicate {
                    story: story.id,
                    stem: story.stem,
                    by,
                    similarity,
                })
            }
        };
        let lock = ctx.story_lock(story);
        let guard = lock.clone().lock_owned().await;
        Ok(Decision::Write {
            story,
            stem: stem.clone(),
            lock,
            guard,
        })
    }
    .await;

    match decision {
        Err(e) => item_failed(report, cand.link.as_str(), &e.to_string()),
        Ok(Decision::Duplicate {
            story,
            stem,
            by,
            similarity,
        }) => record_duplicate(ctx, feed, &cand, story, &stem, by, similarity, report).await,
        Ok(Decision::Write {
            story,
            stem,
            lock: _lock,
            guard: _guard,
        }) => {
            let meta = StoryMeta {
                id: id.clone(),
                url: cand.link.to_string(),
                canonical_url: page_canonical
                    .as_ref()
                    .unwrap_or(&cand.canonical)
                    .to_string(),
                feed: feed.name.clone(),
                title: title.clone(),
                author: cand.item.author.clone().or(article.meta.author.clone()),
                published: cand
                    .item
                    .published
                    .or(article.meta.published.map(|d| d.with_timezone(&Utc))),
                fetched_at: now,
                words: article.words(),
                lang: article.meta.lang.clone(),
                duplicates: Vec::new(),
            };
            let text = output::render_text(&title, &body);
            let out_dir = ctx.config.output_dir.clone();
            let stem2 = stem.clone();
            let durable = ctx.durable.clone();
            let written = tokio::task::spawn_blocking(move || {
                output::write_story_for(&durable, &out_dir, &stem2, &text, &meta)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            // Under the story's lock: a copy found meanwhile waits for the
            // files it adds itself to.
            let written = match written {
                Ok(Some(files)) => make_durable(ctx, files).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => {
                    // The blocks as extracted: a block dropped as learned
                    // furniture still counts, or its count would stall
                    // while the site's story count grows and it would leak.
                    let sites = if ctx.config.extract.learn_min_stories > 0 {
                        site_keys(&cand.link)
                    } else {
                        Vec::new()
                    };
                    if let Err(e) = ctx.store.finish_story(&stem_str, &sites, &blocks, now) {
                        warn!(error = %e, "cannot record finished write");
                    }
                    report.new += 1;
                    debug!(url = %cand.link, path = %stem_str, "written");
                }
                Err(e) => {
                    output::remove_story(&ctx.config.output_dir, &stem);
                    let _ = ctx.store.remove_story(story);
                    let _ = ctx.store.end_write(&stem_str);
                    write_failed(report, &cand.link, &e);
                }
            }
        }
    }
}
