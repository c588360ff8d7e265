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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use tracing::{debug, info, info_span, warn, Instrument};
use url::Url;

use crate::charset;
use crate::config::{Config, Feed};
use crate::dedupe::{self, Signature};
use crate::extract::{self, Article};
use crate::feed::{self, Item};
use crate::fetch::{Fetched, Fetcher, Kind, Validators};
use crate::output::{self, Duplicate, StoryMeta};
use crate::store::{NewStory, StateStore, StoreError};

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
    pub item_errors: Vec<String>,
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
    decide: tokio::sync::Mutex<()>,
    story_locks: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
}

impl Context {
    pub fn new(config: Config, store: Arc<dyn StateStore>) -> Result<Self, PassError> {
        let fetcher = Fetcher::new(&config.fetch)?;
        Ok(Context {
            config,
            fetcher,
            store,
            decide: tokio::sync::Mutex::new(()),
            story_locks: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Undoes writes a crash interrupted: files of stories whose write never
    /// finished are removed and the stories forgotten, temp files deleted,
    /// and every feed re-read on the next pass.
    pub fn recover(&self) -> Result<usize, PassError> {
        let pending = self.store.pending_writes()?;
        for (stem, key) in &pending {
            let stem_path = PathBuf::from(stem);
            output::remove_story(&self.config.output_dir, &stem_path);
            if let Some(dir) = self.config.output_dir.join(&stem_path).parent() {
                output::clean_temp(dir);
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
            self.store.clear_validators()?;
        }
        Ok(pending.len())
    }

    fn story_lock(&self, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.story_locks.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(id).or_default().clone()
    }
}

/// Runs one pass over `feeds`, calling `done` after each feed.
pub async fn run_pass(
    ctx: Arc<Context>,
    feeds: Vec<Feed>,
    done: impl Fn(&FeedReport),
) -> Vec<FeedReport> {
    let parallel = ctx.config.fetch.concurrency.clamp(1, 64);
    let mut reports: Vec<FeedReport> = stream::iter(feeds.into_iter().map(|f| {
        let ctx = ctx.clone();
        let span = info_span!("feed", feed = %f.name, url = %f.url);
        async move { poll_feed(&ctx, &f).await }.instrument(span)
    }))
    .buffer_unordered(parallel)
    .inspect(|r| done(r))
    .collect()
    .await;
    reports.sort_by(|a, b| a.feed.cmp(&b.feed));
    reports
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
    article: Article,
}

/// Polls one feed and processes its new items.
pub async fn poll_feed(ctx: &Context, feed: &Feed) -> FeedReport {
    let mut report = FeedReport {
        feed: feed.name.clone(),
        ..FeedReport::default()
    };
    match poll_feed_inner(ctx, feed, &mut report).await {
        Ok(()) => {}
        Err(e) => {
            warn!(error = %e, "feed failed");
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
    report: &mut FeedReport,
) -> Result<(), FeedFailure> {
    let state = ctx.store.feed_state(&feed.name)?;
    let local = feed.url.scheme() == "file";
    let body = match ctx
        .fetcher
        .get(&feed.url, Kind::Feed, Some(&state.validators), local)
        .await?
    {
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
    let parsed = tokio::task::spawn_blocking(move || feed::parse(&bytes, &base))
        .await
        .map_err(|e| FeedFailure::Join(e.to_string()))??;
    report.items = parsed.items.len();
    report.ttl_minutes = parsed.ttl_minutes;
    report.fresh_for = body.fresh_for;

    // Exact dedupe first: most items of a polled feed were seen before.
    let mut candidates = Vec::new();
    for item in parsed.items {
        let item_key = dedupe::item_key(&feed.name, &item);
        let Some(link) = item.link.clone() else {
            if ctx.store.story_by_key(item_key)?.is_none() {
                item_failed(report, &item.title, "item has no link");
            }
            continue;
        };
        let canonical = dedupe::canonical_url(&link);
        let url_key = dedupe::url_key(&canonical);
        if let Some(story) = ctx.store.story_by_key(item_key)? {
            // A GUID reused for another page is a new story, not a repeat.
            if item.guid.is_none()
                || ctx
                    .store
                    .story_by_key(url_key)?
                    .is_some_and(|s| s.id == story.id)
            {
                continue;
            }
        }
        if candidates.iter().any(|c: &Candidate| c.url_key == url_key) {
            continue; // the same page twice in one feed
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
    for cand in candidates {
        if let Some(story) = ctx.store.story_by_key(cand.url_key)? {
            record_duplicate(ctx, feed, &cand, story.id, &story.stem, "url", None, report).await;
            continue;
        }
        fetches.push(cand);
    }
    let per_feed = ctx.config.fetch.per_host.max(2) * 2;
    let mut results = stream::iter(fetches.into_iter().map(|cand| {
        let span = info_span!("page", url = %cand.link);
        async move {
            let r = fetch_and_extract(ctx, feed, &cand).await;
            (cand, r)
        }
        .instrument(span)
    }))
    .buffered(per_feed);
    while let Some((cand, r)) = results.next().await {
        match r {
            Ok(article) => pages.push(Extracted { cand, article }),
            Err(e) => {
                warn!(url = %cand.link, error = %e, "page failed");
                item_failed(report, cand.link.as_str(), &e);
            }
        }
    }
    drop(results);

    learned_boilerplate(ctx, &mut pages)?;
    for page in pages {
        store_story(ctx, feed, page, report).await;
    }

    // Validators only when every item is done; otherwise the next pass must
    // see the items again.
    let validators = if report.failed == 0 {
        body.validators
    } else {
        Validators::default()
    };
    ctx.store
        .feed_ok(&feed.name, Some(&validators), report.new as u64, Utc::now())?;
    info!(
        new = report.new,
        duplicates = report.duplicates,
        near = report.near_duplicates,
        failed = report.failed,
        "feed done"
    );
    Ok(())
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
) -> Result<Article, String> {
    // file: pages only from a file: feed, private addresses only from a
    // private feed: the fetcher decides from the feed the link came from.
    let body = match ctx
        .fetcher
        .get_linked(&cand.link, Kind::Page, &feed.url)
        .await
    {
        Ok(Fetched::Body(b)) => b,
        Ok(Fetched::NotModified) => return Err("unexpected 304".into()),
        Err(e) => return Err(e.to_string()),
    };
    let base = body.final_url;
    let ct = body.content_type;
    let bytes = body.bytes;
    let article = tokio::task::spawn_blocking(move || {
        let html = charset::decode(&bytes, ct.as_deref());
        extract::extract(&html, Some(&base))
    })
    .await
    .map_err(|e| format!("extractor crashed: {e}"))?;
    if article.blocks.is_empty() {
        return Err("no article text found on the page".into());
    }
    Ok(article)
}

fn block_key(text: &str) -> u64 {
    let norm: String = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    dedupe::hash64(&[b"block", norm.as_bytes()])
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
    let keys: Vec<Vec<u64>> = pages.iter().map(|p| block_keys(&p.article)).collect();
    // Copies of one story in the batch are one piece of evidence, not several.
    let sigs: Vec<Option<Signature>> = pages
        .iter()
        .map(|p| Signature::of(&p.article.body()))
        .collect();
    let mut group: Vec<usize> = (0..pages.len()).collect();
    for i in 0..pages.len() {
        for j in 0..i {
            if let (Some(a), Some(b)) = (&sigs[i], &sigs[j]) {
                if group[j] == j && a.similarity(b) >= ctx.config.dedupe.threshold {
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
    for (i, page) in pages.iter_mut().enumerate() {
        let mut boiler: Vec<u64> = Vec::new();
        for site in &sites[i] {
            let (stored_stories, stored) = ctx.store.block_counts(*site, &keys[i])?;
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
    let r = output::add_duplicate(&ctx.config.output_dir, Path::new(stem), &dup)
        .map_err(|e| e.to_string())
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
            warn!(url = %cand.link, error = %e, "cannot record duplicate");
            item_failed(report, cand.link.as_str(), &e);
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

async fn store_story(ctx: &Context, feed: &Feed, page: Extracted, report: &mut FeedReport) {
    let Extracted { cand, article } = page;
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
    let sig = Signature::of(&body);
    let date: DateTime<Utc> = cand
        .item
        .published
        .or(article.meta.published.map(|d| d.with_timezone(&Utc)))
        .unwrap_or(now);
    let id = format!("{:012x}", cand.url_key >> 16);
    let stem = output::story_stem(&feed.name, date, &title, &id);
    let stem_str = stem.to_string_lossy().to_string();

    let decision: Result<Decision, StoreError> = async {
        let _g = ctx.decide.lock().await;
        for (key, by) in [(Some(cand.url_key), "url"), (page_key, "url")] {
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
        if let (Some(sig), false) = (&sig, ctx.config.dedupe.window.is_zero()) {
            let since = now
                - chrono::Duration::from_std(ctx.config.dedupe.window)
                    .unwrap_or(chrono::Duration::days(7));
            let best = ctx
                .store
                .near_candidates(sig, since)?
                .into_iter()
                .map(|(s, other)| (sig.similarity(&other), s))
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.id.cmp(&a.1.id)));
            if let Some((sim, story)) = best {
                if sim >= ctx.config.dedupe.threshold {
                    return Ok(Decision::Duplicate {
                        story: story.id,
                        stem: story.stem,
                        by: "text",
                        similarity: Some(sim),
                    });
                }
            }
        }
        let mut keys = vec![cand.url_key, cand.item_key];
        keys.extend(page_key);
        let story = ctx.store.add_story(&NewStory {
            stem: &stem_str,
            feed: &feed.name,
            created: now,
            keys: &keys,
            signature: sig.as_ref(),
        })?;
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
            let written = tokio::task::spawn_blocking(move || {
                output::write_story(&out_dir, &stem2, &text, &meta)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            match written {
                Ok(()) => {
                    let (sites, blocks) = if ctx.config.extract.learn_min_stories > 0 {
                        (site_keys(&cand.link), block_keys(&article))
                    } else {
                        (Vec::new(), Vec::new())
                    };
                    if let Err(e) = ctx.store.finish_story(&stem_str, &sites, &blocks, now) {
                        warn!(error = %e, "cannot record finished write");
                    }
                    report.new += 1;
                    debug!(url = %cand.link, path = %stem_str, "written");
                }
                Err(e) => {
                    warn!(url = %cand.link, error = %e, "write failed; will retry next pass");
                    output::remove_story(&ctx.config.output_dir, &stem);
                    let _ = ctx.store.remove_story(story);
                    let _ = ctx.store.end_write(&stem_str);
                    item_failed(report, cand.link.as_str(), &e);
                }
            }
        }
    }
}
