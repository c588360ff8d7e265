//! `gleaner run`: the long-running loop around the same pipeline stages as
//! `gleaner fetch`.
//!
//! ```text
//! signals ─► control channel ─┐
//!                             ▼
//! schedule queue ─► due feed ─► pipeline::poll_feed (≤ concurrency in flight)
//!      ▲                                      │
//!      └──── schedule::after_poll ◄── report ─┘ ─► store.set_schedule
//! ```
//!
//! Only the loop lives here: when to poll comes from `schedule` (pure), how
//! to poll from `pipeline`, what is remembered from `store`. The daemon
//! never writes under `output_dir` itself and never decides "is this story
//! new"; it must never lose or half-write a story on shutdown, which is why
//! in-flight feeds get a grace period and anything abandoned is undone by
//! `Context::recover` at the next start.
//!
//! Signals: SIGTERM/SIGINT stop taking new work, wait up to
//! `[daemon] shutdown_grace` for feeds in flight (a second signal cuts the
//! wait short), and return. SIGHUP reloads the config; a bad one is logged
//! and the running one kept. sd_notify (when `NOTIFY_SOCKET` is set):
//! READY=1, STATUS=, WATCHDOG=1 at half of `WATCHDOG_USEC`, RELOADING=1 /
//! READY=1 around a reload, STOPPING=1.
//!
//! While running, the daemon holds the state store's exclusive lock, so it
//! also writes `status.json` into `state_dir` every few seconds for
//! `gleaner status` to read. With `[daemon] metrics_addr` it serves
//! Prometheus metrics (`metrics`), counted here from each poll's report.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn, warn_span, Instrument};

use crate::config::{self, Config, Feed};
use crate::pipeline::{self, Context, FeedReport, PassError};
use crate::schedule::{self, FeedSchedule, Outcome, Policy};
use crate::store::{Lease, StateStore, StoreError};

/// File in `state_dir` holding the running daemon's view for `gleaner status`.
pub const SNAPSHOT_FILE: &str = "status.json";
/// How often the snapshot and sd_notify STATUS are refreshed, at most.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// The loop wakes at least this often, so a wall-clock jump is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the loop is asked to do from outside (signals, or a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Shutdown,
    Reload,
}

/// Counts over the daemon's life, for STATUS= and the exit log line.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub polls: u64,
    pub failed_polls: u64,
    pub new_stories: u64,
    /// Pages given up after `[fetch] page_attempts` tries.
    pub pages_given_up: u64,
    /// Feeds still in flight when the grace period ran out.
    pub abandoned: usize,
}

/// Runs the daemon until SIGTERM or SIGINT. `config.source` is re-read on SIGHUP.
pub async fn run(config: Config, store: Arc<dyn StateStore>) -> Result<Summary, DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let (tx, rx) = mpsc::channel(8);
    let forward = tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = term.recv() => Control::Shutdown,
                _ = int.recv() => Control::Shutdown,
                _ = hup.recv() => Control::Reload,
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
    });
    let r = run_with(config, store, rx).await;
    forward.abort();
    r
}

/// The loop, driven by `control` (closing the channel also stops it).
pub async fn run_with(
    config: Config,
    store: Arc<dyn StateStore>,
    mut control: mpsc::Receiver<Control>,
) -> Result<Summary, DaemonError> {
    // Bound before anything else: a taken port is a start-up error, not a
    // metrics endpoint silently missing.
    let metrics = match config.daemon.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?;
            let bound = listener.local_addr().unwrap_or(addr);
            info!(addr = %bound, "serving Prometheus metrics at http://{bound}/metrics");
            Some(AbortOnDrop(tokio::spawn(crate::metrics::serve(listener))))
        }
        None => None,
    };
    let ctx = Arc::new(Context::new(config, store.clone())?);
    let undone = ctx.recover()?;
    if undone > 0 {
        info!(undone, "undid writes interrupted by the last run");
    }
    let mut d = Daemon::new(ctx, store)?;
    let notify = Notifier::from_env();
    info!(
        feeds = d.feeds.len(),
        config = %d.ctx.config.source.display(),
        "daemon started"
    );
    notify.send(&[sd_notify::NotifyState::Ready]);
    d.publish(&notify, true);

    let mut watchdog = notify.watchdog.map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });

    loop {
        d.dispatch();
        let sleep = d.time_to_next_due();
        tokio::select! {
            ctl = control.recv() => match ctl {
                Some(Control::Reload) => d.reload(&notify),
                Some(Control::Shutdown) | None => break,
            },
            Some(done) = d.running.join_next_with_id(), if !d.running.is_empty() => d.finish(done),
            _ = tokio::time::sleep(sleep) => {}
            _ = tick(&mut watchdog) => notify.send(&[sd_notify::NotifyState::Watchdog]),
        }
        d.maybe_swap_context();
        d.ctx.prune_if_due();
        d.publish(&notify, false);
    }

    // Shutdown: no new work; in-flight feeds get the grace period.
    let grace = d.ctx.config.daemon.shutdown_grace;
    let in_flight = d.running.len();
    info!(in_flight, grace = ?grace, "stopping");
    notify.send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status(&format!("stopping: {in_flight} feed(s) in flight")),
    ]);
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    while !d.running.is_empty() {
        tokio::select! {
            Some(done) = d.running.join_next_with_id() => d.finish(done),
            _ = &mut deadline => break,
            ctl = control.recv() => {
                if ctl != Some(Control::Reload) {
                    info!("second stop signal: not waiting any longer");
                    break;
                }
            }
            _ = tick(&mut watchdog) => notify.send(&[sd_notify::NotifyState::Watchdog]),
        }
    }
    if !d.running.is_empty() {
        d.summary.abandoned = d.running.len();
        warn!(
            abandoned = d.summary.abandoned,
            "grace period over: abandoning feeds in flight; their unfinished stories are undone at the next start"
        );
        d.running.abort_all();
        while let Some(done) = d.running.join_next_with_id().await {
            d.finish(done);
        }
    }
    // The lock goes with us: `gleaner status` reads the store itself again.
    if let Some(h) = d.snapshot_task.take() {
        let _ = h.await;
    }
    let _ = std::fs::remove_file(d.ctx.config.state_dir.join(SNAPSHOT_FILE));
    drop(metrics);
    info!(
        polls = d.summary.polls,
        failed = d.summary.failed_polls,
        new = d.summary.new_stories,
        pages_given_up = d.summary.pages_given_up,
        "daemon stopped"
    );
    Ok(d.summary)
}

/// A background task that stops with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// One feed the daemon tracks.
struct Tracked {
    feed: Feed,
    policy: Policy,
    sched: FeedSchedule,
    /// When it is due (its key in the queue) while not running.
    due: DateTime<Utc>,
    running: bool,
    /// Dropped from the config while in flight: forget it when it returns.
    removed: bool,
    /// Its last poll failed (failures in a row above 0, as the store says):
    /// kept here so STATUS= never scans the store.
    failing: bool,
}

struct Daemon {
    ctx: Arc<Context>,
    /// A reloaded context waiting for the feeds in flight on the old one:
    /// two contexts must not decide "is this story new" side by side.
    next_ctx: Option<Arc<Context>>,
    store: Arc<dyn StateStore>,
    feeds: HashMap<String, Tracked>,
    queue: BTreeSet<(DateTime<Utc>, String)>,
    running: JoinSet<(String, FeedReport)>,
    tasks: HashMap<tokio::task::Id, String>,
    summary: Summary,
    last_poll: Option<(String, DateTime<Utc>)>,
    /// Why the last SIGHUP was refused, shown in STATUS= until one succeeds.
    reload_error: Option<String>,
    dirty: bool,
    last_snapshot: Option<std::time::Instant>,
    last_status: Option<std::time::Instant>,
    /// The snapshot being written, off the loop: the loop that sends
    /// WATCHDOG=1 never waits for a scan of the store.
    snapshot_task: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    fn new(ctx: Arc<Context>, store: Arc<dyn StateStore>) -> Result<Self, StoreError> {
        let mut d = Daemon {
            ctx,
            next_ctx: None,
            store,
            feeds: HashMap::new(),
            queue: BTreeSet::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            summary: Summary::default(),
            last_poll: None,
            reload_error: None,
            dirty: true,
            last_snapshot: None,
            last_status: None,
            snapshot_task: None,
        };
        let feeds = d.ctx.config.feeds.clone();
        d.apply_feeds(&feeds)?;
        Ok(d)
    }

    /// Makes the tracked set match `feeds`: new ones are scheduled (from
    /// the store, or spread over `[schedule] spread`), removed ones stop,
    /// changed ones keep their schedule under the new policy.
    fn apply_feeds(&mut self, feeds: &[Feed]) -> Result<(), StoreError> {
        let stored: HashMap<String, FeedSchedule> = self.store.schedules()?.into_iter().collect();
        let failing: BTreeSet<String> = self
            .store
            .all_feeds()?
            .into_iter()
            .filter(|(_, s)| s.failures > 0)
            .map(|(n, _)| n)
            .collect();
        let now = Utc::now();
        let global = self.ctx.config.schedule.clone();
        let wanted: HashMap<&str, &Feed> = feeds.iter().map(|f| (f.name.as_str(), f)).collect();
        let gone: Vec<String> = self
            .feeds
            .keys()
            .filter(|n| !wanted.contains_key(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(t) = self.feeds.get_mut(&name) {
                info!(feed = %name, "feed removed from the config: no longer polled");
                if t.running {
                    t.removed = true;
                } else {
                    self.queue.remove(&(t.due, name.clone()));
                    self.feeds.remove(&name);
                }
            }
        }
        for feed in feeds {
            let policy = Policy::for_feed(&global, feed);
            match self.feeds.get_mut(&feed.name) {
                Some(t) => {
                    t.removed = false;
                    t.feed = feed.clone();
                    t.policy = policy;
                }
                None => {
                    let sched = stored.get(&feed.name).cloned().unwrap_or_default();
                    let failing = failing.contains(&feed.name);
                    let due = schedule::first_poll(&policy, &sched, failing, now, fastrand::f64());
                    debug!(feed = %feed.name, url = %feed.url, %due, "scheduled");
                    self.queue.insert((due, feed.name.clone()));
                    self.feeds.insert(
                        feed.name.clone(),
                        Tracked {
                            feed: feed.clone(),
                            policy,
                            sched,
                            due,
                            running: false,
                            removed: false,
                            failing,
                        },
                    );
                }
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn max_in_flight(&self) -> usize {
        // As many feeds as `fetch` runs in one pass; the fetcher bounds
        // requests globally and per host underneath.
        self.ctx.config.fetch.concurrency.clamp(1, 64)
    }

    /// Starts due feeds until the in-flight limit.
    fn dispatch(&mut self) {
        if self.next_ctx.is_some() {
            return;
        }
        let now = Utc::now();
        while self.running.len() < self.max_in_flight() {
            let Some((due, name)) = self.queue.first().cloned() else {
                break;
            };
            if due > now {
                break;
            }
            self.queue.pop_first();
            let Some(t) = self.feeds.get_mut(&name) else {
                continue;
            };
            if let Some(until) = self.ctx.fetcher.paused_until(&t.feed.url) {
                // The host asked for a break (Retry-After): wait it out
                // without counting a failure against the feed.
                let next = until + chrono::Duration::milliseconds(fastrand::i64(0..1000));
                debug!(feed = %name, %until, "host paused; poll deferred");
                t.due = next;
                t.sched.next_poll = Some(next);
                self.queue.insert((next, name));
                continue;
            }
            // Another instance on a shared store may hold the feed, or
            // have polled it since the poll this schedule knows of.
            let deferred = match self.store.lease_feed(&name, t.sched.last_poll, now) {
                Ok(Lease::Granted) => None,
                Ok(lease) => {
                    let next = match lease {
                        Lease::Held { until } => until,
                        _ => match self.store.schedule(&name) {
                            Ok(Some(sched)) => {
                                t.sched = sched;
                                t.sched.next_poll.unwrap_or(now)
                            }
                            _ => now + chrono::Duration::seconds(60),
                        },
                    };
                    let next =
                        next.max(now) + chrono::Duration::milliseconds(fastrand::i64(0..1000));
                    debug!(feed = %name, ?lease, %next, "polled by another instance");
                    Some(next)
                }
                Err(e) => {
                    warn!(feed = %name, error = %e, "cannot lease the feed; trying again in a minute");
                    Some(now + chrono::Duration::seconds(60))
                }
            };
            if let Some(next) = deferred {
                t.due = next;
                self.queue.insert((next, name));
                continue;
            }
            t.running = true;
            let ctx = self.ctx.clone();
            let feed = t.feed.clone();
            // At warn level: the default filter (`warn`) must still print
            // which feed a warning is about.
            let span = warn_span!("feed", feed = %feed.name, url = %feed.url);
            let handle = self.running.spawn(
                async move {
                    let report = pipeline::poll_leased(&ctx, &feed).await;
                    (feed.name, report)
                }
                .instrument(span),
            );
            self.tasks.insert(handle.id(), name);
        }
    }

    /// How long until the next feed is due (or the loop should look again).
    fn time_to_next_due(&self) -> Duration {
        // A changed snapshot is written within SNAPSHOT_EVERY even when
        // nothing else wakes the loop.
        let cap = if self.dirty {
            SNAPSHOT_EVERY
        } else {
            MAX_SLEEP
        };
        if self.running.len() >= self.max_in_flight() || self.next_ctx.is_some() {
            return cap;
        }
        match self.queue.first() {
            Some((due, _)) => (*due - Utc::now()).to_std().unwrap_or_default().min(cap),
            None => cap,
        }
    }

    /// Records a finished poll and schedules the feed's next one.
    fn finish(
        &mut self,
        done: Result<(tokio::task::Id, (String, FeedReport)), tokio::task::JoinError>,
    ) {
        let (name, report) = match done {
            Ok((id, v)) => {
                self.tasks.remove(&id);
                v
            }
            Err(e) => {
                let Some(name) = self.tasks.remove(&e.id()) else {
                    return;
                };
                if e.is_cancelled() {
                    // Abandoned at shutdown: its schedule stays as it was,
                    // so the next start (or another instance) polls it again.
                    let _ = self.store.release_feed(&name, false, Utc::now());
                    return;
                }
                error!(feed = %name, error = %e, "poll crashed");
                let report = FeedReport {
                    feed: name.clone(),
                    error: Some(format!("internal: {e}")),
                    ..FeedReport::default()
                };
                (name, report)
            }
        };
        let Some(t) = self.feeds.get_mut(&name) else {
            return;
        };
        t.running = false;
        if t.removed {
            let _ = self.store.release_feed(&name, true, Utc::now());
            self.feeds.remove(&name);
            return;
        }
        let now = Utc::now();
        self.summary.polls += 1;
        self.summary.new_stories += report.new as u64;
        self.summary.pages_given_up += report.given_up as u64;
        count(&report);
        // The pipeline has recorded this poll in the store: one row tells
        // whether the feed now counts as failing, and for how long.
        let failures = match self.store.feed_state(&name) {
            Ok(s) => s.failures,
            Err(e) => {
                debug!(feed = %name, error = %e, "cannot read the feed's state");
                u32::from(report.error.is_some() || report.gone)
            }
        };
        t.failing = failures > 0;
        let outcome = if let Some(until) = report.host_paused {
            // Deferred, not failed: polled again when the host's pause ends,
            // and the empty poll does not count as a quiet feed.
            Outcome::HostPaused { until }
        } else if report.gone {
            self.summary.failed_polls += 1;
            Outcome::Gone
        } else if report.error.is_some() {
            self.summary.failed_polls += 1;
            match self.ctx.fetcher.paused_until(&t.feed.url) {
                Some(until) => Outcome::HostPaused { until },
                None => Outcome::Failed {
                    failures: failures.max(1),
                },
            }
        } else if report.not_modified {
            Outcome::NotModified
        } else {
            let ttl = schedule::freshness(report.ttl_minutes, None, None, now);
            Outcome::Fetched {
                new_items: (report.new + report.duplicates + report.near_duplicates) as u64,
                hint: ttl.into_iter().chain(report.fresh_for).max(),
                first: t.sched.interval.is_none(),
            }
        };
        t.sched = schedule::after_poll(&t.policy, &t.sched, &outcome, now, fastrand::f64());
        let due = t.sched.next_poll.unwrap_or(now);
        t.due = due;
        debug!(feed = %name, outcome = ?outcome, next = %due, "rescheduled");
        if let Err(e) = self.store.set_schedule(&name, &t.sched) {
            warn!(feed = %name, error = %e, "cannot store schedule");
        }
        if let Err(e) = self.store.release_feed(&name, true, now) {
            warn!(feed = %name, error = %e, "cannot release the feed's lease");
        }
        self.queue.insert((due, name.clone()));
        self.last_poll = Some((name, now));
        self.dirty = true;
    }

    /// SIGHUP: re-read the config; keep the running one if the new one is bad.
    /// `metrics_addr` is bound at start-up only: a change needs a restart.
    fn reload(&mut self, notify: &Notifier) {
        let mut states = vec![sd_notify::NotifyState::Reloading];
        if let Ok(t) = sd_notify::NotifyState::monotonic_usec_now() {
            states.push(t);
        }
        notify.send(&states);
        let path = self.ctx.config.source.clone();
        match self.try_reload(&path) {
            Ok(()) => {
                info!(config = %path.display(), feeds = self.feeds.len(), "config reloaded");
                self.reload_error = None;
            }
            Err(why) => {
                error!(config = %path.display(), error = %why, "config reload rejected; the running config stays in force");
                self.reload_error = Some(why);
            }
        }
        notify.send(&[sd_notify::NotifyState::Ready]);
        self.last_status = None;
    }

    fn try_reload(&mut self, path: &Path) -> Result<(), String> {
        let mut cfg = config::load(path).map_err(|e| e.to_string())?;
        let old = &self.ctx.config;
        if cfg.state_dir != old.state_dir {
            warn!(
                old = %old.state_dir.display(),
                new = %cfg.state_dir.display(),
                "state_dir cannot change while running; restart gleaner to move it"
            );
            cfg.state_dir = old.state_dir.clone();
        }
        if (cfg.state.backend, &cfg.state.url) != (old.state.backend, &old.state.url) {
            warn!("[state] backend and url cannot change while running; restart gleaner to apply them");
            cfg.state = old.state.clone();
        }
        std::fs::create_dir_all(&cfg.output_dir)
            .map_err(|e| format!("output_dir {}: {e}", cfg.output_dir.display()))?;
        if cfg.daemon.metrics_addr != old.daemon.metrics_addr {
            warn!("metrics_addr cannot change while running; restart gleaner to apply it");
        }
        let feeds = cfg.feeds.clone();
        let mut ctx = Context::new(cfg, self.store.clone()).map_err(|e| e.to_string())?;
        // Hosts that asked for a pause (Retry-After) stay paused, and
        // host_delay keeps counting, across the reload.
        ctx.fetcher.carry_host_state(&self.ctx.fetcher);
        // Policies come from the new [schedule]; apply before swapping so
        // `apply_feeds` reads it from the context it will run under.
        let old_ctx = std::mem::replace(&mut self.ctx, Arc::new(ctx));
        let applied = self.apply_feeds(&feeds);
        if self.running.is_empty() {
            self.next_ctx = None;
        } else {
            // Feeds in flight finish on the old context; new polls wait.
            let new_ctx = std::mem::replace(&mut self.ctx, old_ctx);
            self.next_ctx = Some(new_ctx);
        }
        applied.map_err(|e| e.to_string())
    }

    fn maybe_swap_context(&mut self) {
        if self.running.is_empty() {
            if let Some(ctx) = self.next_ctx.take() {
                debug!("feeds in flight done; new config in force");
                self.ctx = ctx;
            }
        }
    }

    /// Refreshes sd_notify STATUS=, the status snapshot and the gauges.
    fn publish(&mut self, notify: &Notifier, force: bool) {
        let m = crate::metrics::global();
        m.feeds.store(
            self.feeds.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        m.in_flight.store(
            self.running.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let now = std::time::Instant::now();
        let due = |last: Option<std::time::Instant>, every| {
            force || last.is_none_or(|l| now.duration_since(l) >= every)
        };
        if notify.enabled && due(self.last_status, STATUS_EVERY) {
            self.last_status = Some(now);
            notify.send(&[sd_notify::NotifyState::Status(&self.status_line())]);
        }
        // A scan of the store per snapshot: spaced out further with many
        // feeds (12 s at 10,000), and one at a time.
        let every = SNAPSHOT_EVERY + Duration::from_millis(self.feeds.len() as u64);
        let idle = self.snapshot_task.as_ref().is_none_or(|h| h.is_finished());
        if self.dirty && idle && due(self.last_snapshot, every) {
            self.last_snapshot = Some(now);
            self.dirty = false;
            let mut feeds: Vec<(Feed, bool)> = self
                .feeds
                .values()
                .map(|t| (t.feed.clone(), t.running))
                .collect();
            feeds.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            let store = self.store.clone();
            let dir = self.ctx.config.state_dir.clone();
            self.snapshot_task = Some(tokio::task::spawn_blocking(move || {
                if let Err(e) = write_snapshot(&feeds, store.as_ref(), &dir) {
                    debug!(error = %e, "cannot write status snapshot");
                }
            }));
        }
    }

    fn status_line(&self) -> String {
        let failing = self.failing();
        let last = match &self.last_poll {
            Some((name, at)) => format!("last poll {name} at {}", at.format("%H:%M:%S")),
            None => "no poll yet".to_string(),
        };
        let mut line = format!(
            "{} feeds, {} polling, {failing} failing; {last}; {} polls, {} new stories since start",
            self.feeds.len(),
            self.running.len(),
            self.summary.polls,
            self.summary.new_stories
        );
        if let Some(why) = &self.reload_error {
            line.push_str("; config reload rejected: ");
            line.push_str(why);
        }
        line
    }

    fn failing(&self) -> usize {
        self.feeds.values().filter(|t| t.failing).count()
    }
}

/// Writes `status.json` for `gleaner status`: each feed (sorted by name) and
/// whether it is being polled right now.
fn write_snapshot(
    feeds: &[(Feed, bool)],
    store: &dyn StateStore,
    dir: &Path,
) -> Result<(), String> {
    let list: Vec<Feed> = feeds.iter().map(|(f, _)| f.clone()).collect();
    let mut rows = feed_status(&list, store).map_err(|e| e.to_string())?;
    // In flight: the stored next_poll is in the past; say what is happening.
    for (r, (_, running)) in rows.iter_mut().zip(feeds) {
        r.polling = *running;
    }
    let snap = Snapshot {
        pid: std::process::id(),
        written_at: Utc::now(),
        feeds: rows,
    };
    let json = serde_json::to_vec(&snap).map_err(|e| e.to_string())?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut tmp, &json).map_err(|e| e.to_string())?;
    tmp.persist(dir.join(SNAPSHOT_FILE))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Adds one poll's report to the Prometheus counters.
fn count(report: &FeedReport) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = crate::metrics::global();
    m.polls.fetch_add(1, Relaxed);
    if report.error.is_some() {
        m.feed_errors.fetch_add(1, Relaxed);
    }
    if report.not_modified {
        m.not_modified.fetch_add(1, Relaxed);
    }
    m.articles.fetch_add(report.new as u64, Relaxed);
    m.duplicates_url
        .fetch_add(report.duplicates as u64, Relaxed);
    m.duplicates_text
        .fetch_add(report.near_duplicates as u64, Relaxed);
    m.page_errors.fetch_add(report.failed as u64, Relaxed);
    m.pages_given_up.fetch_add(report.given_up as u64, Relaxed);
}

/// One line of `gleaner status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedStatus {
    pub feed: String,
    pub url: String,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub next_poll: Option<DateTime<Utc>>,
    /// Stories written from this feed.
    pub items: u64,
    /// Failed polls in a row.
    pub failures: u32,
    #[serde(default)]
    pub polling: bool,
}

impl FeedStatus {
    /// A feed gleaner has no state for yet.
    pub fn never(feed: &Feed) -> FeedStatus {
        FeedStatus {
            feed: feed.name.clone(),
            url: feed.url.to_string(),
            last_success: None,
            last_error: None,
            last_error_at: None,
            next_poll: None,
            items: 0,
            failures: 0,
            polling: false,
        }
    }
}

/// What the running daemon publishes for `gleaner status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub pid: u32,
    pub written_at: DateTime<Utc>,
    pub feeds: Vec<FeedStatus>,
}

/// The status of each of `feeds`, from the store.
pub fn feed_status(feeds: &[Feed], store: &dyn StateStore) -> Result<Vec<FeedStatus>, StoreError> {
    let states: HashMap<String, _> = store.all_feeds()?.into_iter().collect();
    let scheds: HashMap<String, FeedSchedule> = store.schedules()?.into_iter().collect();
    Ok(feeds
        .iter()
        .map(|f| {
            let st = states.get(&f.name).cloned().unwrap_or_default();
            FeedStatus {
                last_success: st.last_success,
                last_error: st.last_error,
                last_error_at: st.last_error_at,
                next_poll: scheds.get(&f.name).and_then(|s| s.next_poll),
                items: st.items,
                failures: st.failures,
                ..FeedStatus::never(f)
            }
        })
        .collect())
}

/// Reads the running daemon's snapshot from `state_dir`, if there is one.
pub fn read_snapshot(state_dir: &Path) -> Option<Snapshot> {
    let bytes = std::fs::read(state_dir.join(SNAPSHOT_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// sd_notify, when the service manager asked for it.
struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        // Half the watchdog period, as sd_watchdog_enabled(3) advises.
        let watchdog = sd_notify::watchdog_enabled()
            .filter(|d| enabled && !d.is_zero())
            .map(|d| d / 2);
        Notifier { enabled, watchdog }
    }

    fn send(&self, states: &[sd_notify::NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            debug!(error = %e, "sd_notify failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn config(dir: &Path) -> Config {
        let feed = dir.join("feed.rss");
        std::fs::write(
            &feed,
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title></channel></rss>",
        )
        .unwrap();
        let text = format!(
            "output_dir = \"out\"\nstate_dir = \"state\"\n[schedule]\ninterval = \"1h\"\nspread = \"0s\"\n\
             [[feed]]\nname = \"local\"\nurl = \"{}\"\n",
            feed.display()
        );
        config::parse(&text, &dir.join("g.toml")).unwrap()
    }

    /// Runs the daemon until its first poll is recorded (or `wait` passes), then stops it.
    async fn run_once(cfg: &Config, wait: Duration) -> (Summary, Arc<dyn StateStore>) {
        let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(&cfg.state_dir).unwrap());
        let (tx, rx) = mpsc::channel(1);
        let handle = tokio::spawn(run_with(cfg.clone(), store.clone(), rx));
        let start = std::time::Instant::now();
        while start.elapsed() < wait && store.schedules().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(Control::Shutdown).await.unwrap();
        let summary = handle.await.unwrap().unwrap();
        (summary, store)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn restart_resumes_the_stored_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (first, store) = run_once(&cfg, Duration::from_secs(10)).await;
        assert_eq!(first.polls, 1);
        let sched = store.schedules().unwrap();
        let next = sched[0].1.next_poll.unwrap();
        assert!(next > Utc::now() + chrono::Duration::minutes(50), "{next}");
        assert!(
            !cfg.state_dir.join(SNAPSHOT_FILE).exists(),
            "snapshot removed at exit"
        );
        drop(store);

        // Restarted: the feed is not due for an hour, so nothing is polled.
        let (second, store) = run_once(&cfg, Duration::from_millis(300)).await;
        assert_eq!(second.polls, 0);
        assert_eq!(store.schedules().unwrap()[0].1.next_poll, Some(next));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn feed_status_joins_health_and_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (_, store) = run_once(&cfg, Duration::from_secs(10)).await;
        let rows = feed_status(&cfg.feeds, store.as_ref()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].feed, "local");
        assert!(rows[0].last_success.is_some() && rows[0].next_poll.is_some());
        assert_eq!((rows[0].failures, rows[0].items), (0, 0));
    }
}
