//! Configuration: one TOML file, validated up front.
//!
//! Every error names the file, the line and the key, because the person
//! reading it is editing that file. Relative paths (and feed URLs written as
//! bare paths) resolve against the config file's own directory, so a config
//! works the same from any working directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;
use url::Url;

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/gleaner/gleaner.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The resolved configuration: absolute paths, parsed URLs, defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    #[serde(skip)]
    pub source: PathBuf,
    pub output_dir: PathBuf,
    pub state_dir: PathBuf,
    pub fetch: FetchConfig,
    pub dedupe: DedupeConfig,
    pub extract: ExtractConfig,
    pub schedule: ScheduleConfig,
    pub daemon: DaemonConfig,
    pub state: StateConfig,
    #[serde(rename = "feed")]
    pub feeds: Vec<Feed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Feed {
    pub name: String,
    pub url: Url,
    /// Per-feed overrides of `[schedule]` (see `schedule::Policy::for_feed`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub interval: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub min_interval: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde::option"
    )]
    pub max_interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<bool>,
}

impl Feed {
    /// A feed with no schedule overrides.
    pub fn new(name: impl Into<String>, url: Url) -> Feed {
        Feed {
            name: name.into(),
            url,
            interval: None,
            min_interval: None,
            max_interval: None,
            adaptive: None,
        }
    }
}

/// When feeds are polled by `gleaner run` (`schedule.rs` has the model).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Starting interval of every feed, and the fixed one when not adaptive.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Never poll a feed more often than this, whatever it publishes.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Never poll a feed less often than this, however quiet.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Follow each feed's observed item rate (busy feeds more often).
    pub adaptive: bool,
    /// First retry after an error; doubles per failure in a row.
    #[serde(with = "humantime_serde")]
    pub error_backoff: Duration,
    /// Cap of the error backoff, jitter included: a failing feed is still
    /// retried this often. At most a day.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Fraction by which each wait is randomly shortened or lengthened.
    pub jitter: f64,
    /// First polls after start-up are spread over this long.
    #[serde(with = "humantime_serde")]
    pub spread: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            interval: Duration::from_secs(30 * 60),
            min_interval: Duration::from_secs(5 * 60),
            max_interval: Duration::from_secs(12 * 3600),
            adaptive: true,
            error_backoff: Duration::from_secs(5 * 60),
            max_backoff: Duration::from_secs(24 * 3600),
            jitter: 0.1,
            spread: Duration::from_secs(60),
        }
    }
}

/// `gleaner run` behaviour outside the schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// On SIGTERM/SIGINT, how long in-flight feeds may take to finish
    /// before they are abandoned (their half-done stories are undone at
    /// the next start).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`), e.g.
    /// `127.0.0.1:9464`; off when absent. Read at start-up only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            shutdown_grace: Duration::from_secs(10),
            metrics_addr: None,
        }
    }
}

/// Where state lives: the embedded store under `state_dir` (the default,
/// nothing to run), or a PostgreSQL database shared by several instances.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Embedded,
    Postgres,
}

/// `[state]`: the state backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub backend: Backend,
    /// `postgres://user@host:port/database` (backend = "postgres"). Shown
    /// with any password masked.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "masked_url")]
    pub url: Option<String>,
    /// A file holding the database password (first line), relative to the
    /// config file; else `GLEANER_PG_PASSWORD`; else the URL's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM file of the certificate authorities to trust for the database's
    /// TLS certificate (relative to the config file); default: the
    /// system's. TLS is used when the server offers it (`sslmode=prefer`),
    /// or required with `?sslmode=require` in `url`; the certificate and
    /// host name are always verified when it is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This instance's name in feed leases (default: host name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// How long a feed poll is leased to one instance: an instance that
    /// dies mid-poll has its feeds taken over after this.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Database connections of this instance.
    pub connections: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: Backend::Embedded,
            url: None,
            password_file: None,
            ca_file: None,
            instance: None,
            lease: Duration::from_secs(600),
            connections: 4,
        }
    }
}

fn masked_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => s.serialize_str(&mask_password(u)),
        None => s.serialize_none(),
    }
}

/// `url` with its password, if any, replaced by `***` (for logs and `check`).
pub fn mask_password(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return "(unparsable URL)".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    // libpq URLs may also carry it as `?password=`.
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// HTTP behaviour, shared by feed and page requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Sent as `User-Agent`; the default names gleaner and its version.
    pub user_agent: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Whole request, body included: a server trickling bytes is cut off here.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub max_feed_bytes: u64,
    pub max_page_bytes: u64,
    pub max_redirects: usize,
    /// Requests in flight at once, over all hosts.
    pub concurrency: usize,
    /// Requests in flight at once to one host.
    pub per_host: usize,
    /// Least time between the starts of two requests to one host (feeds
    /// and pages together). `0s`, the default, adds no wait: `per_host`
    /// alone paces a host, which keeps a pass over many feeds on one
    /// server (a farm, a self-hosted aggregator) fast.
    #[serde(with = "humantime_serde")]
    pub host_delay: Duration,
    /// Tries at a page that keeps failing (one per poll of its feed, with
    /// backoff) before it is given up: reported, recorded in the state
    /// store, and no longer a reason to re-read its feed.
    pub page_attempts: u32,
    /// Whether requests may reach loopback, private, link-local or metadata
    /// addresses (see `fetch::netguard`).
    pub allow_private: AllowPrivate,
    /// Bytes of response bodies in work at once, each weighed by what
    /// parsing it costs (a feed 4x its size, held until its items are
    /// done; a page 3x, until it is extracted): two thirds for feeds, one
    /// third for pages. Bounds the memory of a pass over many hosts with
    /// large answers. A body that does not fit is dropped unread and asked
    /// for again once there is room.
    pub memory_budget: u64,
}

/// `[fetch] allow_private`: may a request reach a non-public address?
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowPrivate {
    /// Only what the operator vouches for: feeds configured on a private
    /// address (127.0.0.1, localhost, a LAN IP) or `file://`, and the links
    /// in them. A feed on a public host, its links and every redirect from
    /// a public host stay on public addresses, so a feed cannot make gleaner
    /// probe the machine's own services.
    #[default]
    Auto,
    /// No checks (e.g. an intranet whose feeds use private DNS names).
    Always,
    /// Public addresses only, even for configured feeds.
    Never,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            user_agent: format!(
                "gleaner/{} (+https://github.com/gleaner-news/gleaner)",
                env!("CARGO_PKG_VERSION")
            ),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_feed_bytes: 10 * 1024 * 1024,
            max_page_bytes: 5 * 1024 * 1024,
            max_redirects: 5,
            concurrency: 32,
            per_host: 2,
            host_delay: Duration::ZERO,
            page_attempts: 5,
            allow_private: AllowPrivate::Auto,
            memory_budget: 96 * 1024 * 1024,
        }
    }
}

/// Near-duplicate detection over the extracted text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupeConfig {
    /// How far back a story can be matched as a copy; `0s` disables
    /// near-duplicate detection (exact URL and GUID dedupe always runs).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Estimated Jaccard similarity of word shingles from which two texts
    /// are one story. A cut copy (at least 80% of its shingles in the
    /// other) is one story too, whatever its similarity.
    pub threshold: f64,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            window: Duration::from_secs(7 * 24 * 3600),
            threshold: 0.5,
        }
    }
}

/// Extraction settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractConfig {
    /// Drop text blocks that the same host printed on this many other
    /// stories (learned boilerplate); 0 disables learning.
    pub learn_min_stories: u32,
    /// Directory of per-site rules, `<host>.toml` each (relative to the
    /// config file; a missing directory means no rules).
    pub sites_dir: PathBuf,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            learn_min_stories: 3,
            sites_dir: PathBuf::from("sites"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    output_dir: Spanned<PathBuf>,
    state_dir: Spanned<PathBuf>,
    #[serde(default)]
    fetch: FetchConfig,
    #[serde(default)]
    dedupe: DedupeConfig,
    #[serde(default)]
    extract: ExtractConfig,
    #[serde(default)]
    schedule: ScheduleConfig,
    #[serde(default)]
    daemon: DaemonConfig,
    #[serde(default)]
    state: StateConfig,
    #[serde(default)]
    feed: Vec<RawFeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default, with = "humantime_serde::option")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    min_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    max_interval: Option<Duration>,
    #[serde(default)]
    adaptive: Option<bool>,
}

/// Reads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config `text` as if read from `path` (used for relative paths
/// and error messages).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let at = |span: std::ops::Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        // A typo'd key or value gets a "did you mean" (see `suggest`).
        let message = crate::suggest::annotate(e.message().trim(), |table| {
            crate::suggest::table_keys::<RawConfig>(table, &["output_dir", "state_dir"])
        });
        // A missing required key has no line of its own: say what to add
        // rather than blame whatever key happens to be on line 1.
        if let Some(key) = missing_field(&message) {
            // A feed's missing `name`/`url` belongs to its [[feed]] table.
            let span = if matches!(key.as_str(), "output_dir" | "state_dir") {
                0..0
            } else {
                span
            };
            return at(span, missing_key_message(&key));
        }
        // toml points at the value for type errors; name the key too.
        let message = match key_at(text, span.start) {
            Some(key) if !message.contains(&format!("`{key}`")) => {
                format!("key `{key}`: {message}")
            }
            _ => message,
        };
        at(span, message)
    })?;
    // Errors found after deserialising point at the key in its own table
    // (`[schedule] interval`, not the first `interval =` in the file).
    let spans = KeySpans::new(text);

    // `gleaner.toml` has parent "": that is the working directory.
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = std::path::absolute(&base).unwrap_or(base);
    let resolve = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            normalize(&base.join(p))
        }
    };

    let f = &raw.fetch;
    let checks: [(&str, bool, &str); 10] = [
        (
            "user_agent",
            f.user_agent.trim().is_empty(),
            "must not be empty (many sites refuse requests without one)",
        ),
        ("timeout", f.timeout.is_zero(), "must be more than 0s"),
        (
            "memory_budget",
            f.memory_budget < 1024 * 1024,
            "must be at least 1048576 (1 MiB)",
        ),
        ("page_attempts", f.page_attempts == 0, "must be at least 1"),
        (
            "connect_timeout",
            f.connect_timeout.is_zero(),
            "must be more than 0s",
        ),
        ("concurrency", f.concurrency == 0, "must be at least 1"),
        ("per_host", f.per_host == 0, "must be at least 1"),
        ("max_redirects", f.max_redirects > 20, "must be at most 20"),
        (
            "max_feed_bytes",
            f.max_feed_bytes < 1024,
            "must be at least 1024 (bytes; every feed larger than this fails)",
        ),
        (
            "max_page_bytes",
            f.max_page_bytes < 1024,
            "must be at least 1024 (bytes; every page larger than this fails)",
        ),
    ];
    for (key, bad, why) in checks {
        if bad {
            let span = spans.key(&["fetch", key]);
            return Err(at(span, format!("key `{key}` in [fetch]: {why}")));
        }
    }
    let sc = &raw.schedule;
    let checks: [(&str, bool, &str); 7] = [
        ("interval", sc.interval.is_zero(), "must be more than 0s"),
        (
            "max_backoff",
            sc.max_backoff > crate::schedule::MAX_BACKOFF,
            "must be at most 1day (a failing feed is polled at least daily)",
        ),
        (
            "min_interval",
            sc.min_interval.is_zero(),
            "must be more than 0s",
        ),
        (
            "max_interval",
            sc.max_interval < sc.min_interval,
            "must not be less than min_interval",
        ),
        (
            "error_backoff",
            sc.error_backoff.is_zero(),
            "must be more than 0s",
        ),
        (
            "max_backoff",
            sc.max_backoff < sc.error_backoff,
            "must not be less than error_backoff",
        ),
        (
            "jitter",
            !(0.0..=0.5).contains(&sc.jitter),
            "must be between 0 and 0.5",
        ),
    ];
    for (key, bad, why) in checks {
        if bad {
            // A default made invalid by another setting: point at that one.
            let partner = match key {
                "max_interval" => "min_interval",
                "max_backoff" => "error_backoff",
                _ => key,
            };
            let span = spans
                .find(&["schedule", key])
                .unwrap_or_else(|| spans.key(&["schedule", partner]));
            return Err(at(span, format!("key `{key}` in [schedule]: {why}")));
        }
    }
    if !(0.0..=1.0).contains(&raw.dedupe.threshold) {
        let span = spans.key(&["dedupe", "threshold"]);
        return Err(at(
            span,
            "key `threshold` in [dedupe]: must be between 0 and 1".into(),
        ));
    }

    let st = &raw.state;
    if st.backend == Backend::Postgres {
        let span = spans.key(&["state", "backend"]);
        match st.url.as_deref().map(Url::parse) {
            None => return Err(at(
                span,
                "key `url`: backend = \"postgres\" needs `url = \"postgres://user@host/database\"`"
                    .into(),
            )),
            Some(Ok(u)) if matches!(u.scheme(), "postgres" | "postgresql") => {}
            Some(_) => {
                let span = spans.find(&["state", "url"]).unwrap_or(span);
                return Err(at(
                    span,
                    "key `url`: must be a postgres:// URL, e.g. postgres://gleaner@db.example/gleaner"
                        .into(),
                ));
            }
        }
    }
    if st.lease < Duration::from_secs(1) {
        let span = spans.key(&["state", "lease"]);
        return Err(at(
            span,
            "key `lease` in [state]: must be at least 1s".into(),
        ));
    }
    if !(1..=64).contains(&st.connections) {
        let span = spans.key(&["state", "connections"]);
        return Err(at(
            span,
            "key `connections` in [state]: must be between 1 and 64".into(),
        ));
    }

    let mut feeds: Vec<Feed> = Vec::with_capacity(raw.feed.len());
    for (i, rf) in raw.feed.into_iter().enumerate() {
        let name = rf.name.get_ref().trim().to_string();
        let feed_key = |key: &str| spans.find(&["feed", &i.to_string(), key]);
        if let Err(why) = check_name(&name) {
            return Err(at(rf.name.span(), format!("key `name`: {why}")));
        }
        if feeds.iter().any(|f| f.name == name) {
            return Err(at(
                rf.name.span(),
                format!("key `name`: feed name `{name}` is used twice; names must be unique"),
            ));
        }
        let url = resolve_feed_url(rf.url.get_ref(), &base)
            .map_err(|why| at(rf.url.span(), format!("key `url`: {why}")))?;
        for (key, value) in [("interval", rf.interval), ("min_interval", rf.min_interval)] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(at(
                    feed_key(key).unwrap_or(rf.name.span()),
                    format!("feed `{name}`: key `{key}` must be more than 0s"),
                ));
            }
        }
        let min = rf.min_interval.unwrap_or(raw.schedule.min_interval);
        let max = rf.max_interval.unwrap_or(raw.schedule.max_interval);
        if max < min {
            // Blame the feed's own setting when it has one.
            let span = feed_key("max_interval")
                .or_else(|| feed_key("min_interval"))
                .unwrap_or(rf.name.span());
            return Err(at(
                span,
                format!(
                    "feed `{name}`: key `max_interval` ({}) is less than `min_interval` ({})",
                    humantime_serde::re::humantime::format_duration(max),
                    humantime_serde::re::humantime::format_duration(min)
                ),
            ));
        }
        feeds.push(Feed {
            name,
            url,
            interval: rf.interval,
            min_interval: rf.min_interval,
            max_interval: rf.max_interval,
            adaptive: rf.adaptive,
        });
    }

    Ok(Config {
        source: path.to_path_buf(),
        output_dir: resolve(raw.output_dir.get_ref()),
        state_dir: resolve(raw.state_dir.get_ref()),
        fetch: raw.fetch,
        dedupe: raw.dedupe,
        extract: ExtractConfig {
            sites_dir: resolve(&raw.extract.sites_dir),
            ..raw.extract
        },
        schedule: raw.schedule,
        daemon: raw.daemon,
        state: StateConfig {
            password_file: raw.state.password_file.as_deref().map(resolve),
            ca_file: raw.state.ca_file.as_deref().map(resolve),
            ..raw.state
        },
        feeds,
    })
}

impl Config {
    /// The resolved config as TOML, for `gleaner check`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Feed names become directory names and log fields: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(format!("`{name}` must not start with `.` or `-`"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` may only hold ASCII letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

fn resolve_feed_url(raw: &str, base: &Path) -> Result<Url, String> {
    let raw = raw.trim();
    match Url::parse(raw) {
        Ok(url) => match url.scheme() {
            "http" | "https" if url.host_str().is_some() => Ok(url),
            "file" => Ok(url),
            s => Err(format!(
                "`{raw}`: scheme `{s}` is not supported (use http, https or file)"
            )),
        },
        // No scheme: a path to a local feed, relative to the config file.
        Err(url::ParseError::RelativeUrlWithoutBase) if !raw.is_empty() => {
            let p = Path::new(raw);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                normalize(&base.join(p))
            };
            Url::from_file_path(&abs).map_err(|()| format!("`{raw}` is not a usable file path"))
        }
        Err(e) => Err(format!("`{raw}` is not a valid URL: {e}")),
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key on the line holding `offset`, if that line is `key = value`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

/// The key serde reports as missing (`missing field `output_dir``).
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn missing_key_message(key: &str) -> String {
    let top = "before the first [table]";
    let feed = "to this [[feed]] table";
    let (what, example, place) = match key {
        "output_dir" => (
            " (where story files are written)",
            "\"/var/lib/gleaner/articles\"",
            top,
        ),
        "state_dir" => (
            " (the state store's directory)",
            "\"/var/lib/gleaner/state\"",
            top,
        ),
        "name" => ("", "\"world\"", feed),
        "url" => ("", "\"https://example.org/world.rss\"", feed),
        _ => return format!("missing key `{key}`: add it"),
    };
    format!("missing key `{key}`{what}: add e.g. `{key} = {example}` {place}")
}

/// Where each key of the (already valid) document is, by table path.
struct KeySpans<'t>(Option<toml::Spanned<toml::de::DeTable<'t>>>);

impl<'t> KeySpans<'t> {
    fn new(text: &'t str) -> Self {
        KeySpans(toml::de::DeTable::parse(text).ok())
    }

    /// Span of the key at `path` (table names, array indices as digits,
    /// then the key).
    fn find(&self, path: &[&str]) -> Option<std::ops::Range<usize>> {
        use toml::de::DeValue;
        let (last, tables) = path.split_last()?;
        let mut table = self.0.as_ref()?.get_ref();
        let mut value: Option<&DeValue<'_>> = None;
        for seg in tables {
            let v = match value {
                Some(DeValue::Array(items)) => items.get(seg.parse::<usize>().ok()?)?.get_ref(),
                Some(DeValue::Table(_)) | None => table
                    .iter()
                    .find(|(k, _)| k.get_ref() == seg)
                    .map(|(_, v)| v.get_ref())?,
                Some(_) => return None,
            };
            if let DeValue::Table(t) = v {
                table = t;
            }
            value = Some(v);
        }
        if !matches!(value, None | Some(DeValue::Table(_))) {
            return None;
        }
        table
            .iter()
            .find(|(k, _)| k.get_ref() == last)
            .map(|(k, _)| k.span())
    }

    /// Like `find`, else the start of the file (a default that is invalid
    /// in combination with another key has no line of its own).
    fn key(&self, path: &[&str]) -> std::ops::Range<usize> {
        self.find(path).unwrap_or(0..0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/etc/gleaner/g.toml"))
    }

    #[test]
    fn database_passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://u:s3cret@db:5432/g?sslmode=disable&password=s3cret"),
            "postgres://u:***@db:5432/g?sslmode=disable&password=***"
        );
        assert_eq!(mask_password("postgres://u@db/g"), "postgres://u@db/g");
        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\n[state]\nbackend = \"postgres\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("g.toml:4") && e.contains("url"), "{e}");
        let c = p("output_dir = \"o\"\nstate_dir = \"s\"\n[state]\nbackend = \"postgres\"\nurl = \"postgres://u:pw@h/d\"\n")
            .unwrap();
        assert!(c.to_toml().contains("postgres://u:***@h/d") && !c.to_toml().contains("pw@"));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/gleaner/g.toml:3:1:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn type_error_names_key() {
        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\n[[feed]]\nname = \"a\"\nurl = 42\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":5:"), "{e}");
        assert!(e.contains("`url`"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_config_dir() {
        let c = p("output_dir = \"out\"\nstate_dir = \"../s\"\n[[feed]]\nname = \"a\"\nurl = \"feeds/a.rss\"\n").unwrap();
        assert_eq!(c.output_dir, PathBuf::from("/etc/gleaner/out"));
        assert_eq!(c.state_dir, PathBuf::from("/etc/s"));
        assert_eq!(c.feeds[0].url.as_str(), "file:///etc/gleaner/feeds/a.rss");
    }

    #[test]
    fn rejects_duplicate_and_unsafe_names_and_schemes() {
        let base = "output_dir = \"o\"\nstate_dir = \"s\"\n";
        let dup = format!("{base}[[feed]]\nname = \"a\"\nurl = \"http://x/1\"\n[[feed]]\nname = \"a\"\nurl = \"http://x/2\"\n");
        assert!(p(&dup).unwrap_err().to_string().contains(":7:"));
        let bad = format!("{base}[[feed]]\nname = \"../x\"\nurl = \"http://x/1\"\n");
        assert!(p(&bad).is_err());
        let ftp = format!("{base}[[feed]]\nname = \"a\"\nurl = \"ftp://x/1\"\n");
        assert!(p(&ftp).unwrap_err().to_string().contains("ftp"));
    }

    #[test]
    fn config_named_without_a_directory_resolves_against_the_working_dir() {
        let c = parse(
            "output_dir = \"o\"\nstate_dir = \"s\"\n[[feed]]\nname = \"a\"\nurl = \"f.rss\"\n",
            Path::new("g.toml"),
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.output_dir, cwd.join("o"));
        assert_eq!(
            c.feeds[0].url,
            Url::from_file_path(cwd.join("f.rss")).unwrap()
        );
    }

    #[test]
    fn schedule_keys_global_and_per_feed() {
        let c = p("output_dir = \"o\"\nstate_dir = \"s\"\n[schedule]\ninterval = \"10m\"\n[daemon]\nshutdown_grace = \"3s\"\n[[feed]]\nname = \"a\"\nurl = \"http://x/1\"\ninterval = \"2h\"\nadaptive = false\n").unwrap();
        assert_eq!(c.schedule.interval, Duration::from_secs(600));
        assert_eq!(c.daemon.shutdown_grace, Duration::from_secs(3));
        assert_eq!(c.feeds[0].interval, Some(Duration::from_secs(7200)));
        assert_eq!(c.feeds[0].adaptive, Some(false));
        assert!(c.to_toml().contains("interval = \"2h\""), "{}", c.to_toml());

        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\n[schedule]\nmin_interval = \"1h\"\nmax_interval = \"10m\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":5:") && e.contains("max_interval"), "{e}");
        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\n[[feed]]\nname = \"a\"\nurl = \"http://x/1\"\nmax_interval = \"1m\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":6:") && e.contains("max_interval") && e.contains("`a`"),
            "{e}"
        );
        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\n[schedule]\njitter = 2.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":4:") && e.contains("jitter"), "{e}");
        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\n[schedule]\ninterval = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":4:") && e.contains("interval"), "{e}");
    }

    #[test]
    fn bad_value_after_parse_names_key() {
        let e = p("output_dir = \"o\"\nstate_dir = \"s\"\n[fetch]\nper_host = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":4:") && e.contains("per_host"), "{e}");
    }

    #[test]
    fn max_backoff_is_at_most_a_day_and_memory_budget_at_least_a_mib() {
        let base = "output_dir = \"o\"\nstate_dir = \"s\"\n";
        let e = p(&format!("{base}[schedule]\nmax_backoff = \"2days\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4:") && e.contains("max_backoff") && e.contains("1day"),
            "{e}"
        );
        assert!(p(&format!("{base}[schedule]\nmax_backoff = \"24h\"\n")).is_ok());
        let e = p(&format!("{base}[fetch]\nmemory_budget = 1000\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(":4:") && e.contains("memory_budget"), "{e}");
        let c = p(&format!("{base}[fetch]\nmemory_budget = 268435456\n")).unwrap();
        assert_eq!(c.fetch.memory_budget, 256 << 20);
        assert_eq!(FetchConfig::default().memory_budget, 96 << 20);
    }
}
