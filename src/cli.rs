//! Command line: `run`, `fetch`, `status`, `extract`, `check`, `import-opml`,
//! `export-opml`, `init`, `completions` (and the hidden `man`; first-run
//! messages live in `setup`, help texts and generated docs in `docs`).
//! The only place (with main.rs) that uses anyhow; library errors arrive
//! typed and leave as a message and an exit code.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use clap::{Parser, Subcommand, ValueEnum};

use gleaner::config::{self, Backend, Config};
use gleaner::pipeline::{self, Context, FeedReport};
use gleaner::store::{PgStore, SqliteStore, StateStore};
use gleaner::{charset, extract};

mod docs;
mod setup;

#[derive(Parser)]
#[command(
    name = "gleaner",
    version,
    about = "News feeds in, clean deduplicated article text out.",
    after_help = docs::TOP_HELP
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable on a terminal, plain lines (no colour) otherwise.
    Auto,
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run as a daemon: poll each feed on its own schedule until stopped.
    ///
    /// SIGTERM/SIGINT: finish in-flight feeds (within [daemon]
    /// shutdown_grace), then exit 0. SIGHUP: reload the config; a bad config
    /// is rejected and the running one kept. Speaks sd_notify under systemd.
    #[command(after_help = docs::RUN_HELP)]
    Run {
        /// Config file (TOML); `gleaner init` writes a starter one.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Show each feed's last success, last error, next poll, items and
    /// failures in a row, from the state store (or, while `gleaner run`
    /// holds the store, from its status snapshot).
    #[command(after_help = docs::STATUS_HELP)]
    Status {
        /// Config file (TOML); `gleaner init` writes a starter one.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// One pass over every feed, then exit.
    ///
    /// Exit status: 0 when the pass completed (failing feeds are reported),
    /// 2 when the config or state directory is unusable, 1 on internal error.
    #[command(after_help = docs::FETCH_HELP)]
    Fetch {
        /// Config file (TOML); `gleaner init` writes a starter one.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Print the clean article text of HTML pages.
    ///
    /// INPUT is a path, a .gz path, `-` for stdin, or an http(s) URL. An
    /// input that fails (a missing file, a URL answering 404) is named on
    /// stderr and the others are still extracted. Exit status: 0 when at
    /// least one input was extracted (failures reported, as `fetch` reports
    /// a failing feed), 1 when none could be.
    #[command(after_help = docs::EXTRACT_HELP)]
    Extract {
        /// Base URL for relative links (defaults to the input's own URL).
        #[arg(long)]
        url: Option<url::Url>,
        /// Write DIR/<stem>.txt per input instead of printing; <stem> is
        /// the file name without .gz, .html, .htm (`stdin` for `-`). When
        /// inputs share a stem (d1/x.html d2/x.html), the first in
        /// command-line order gets <stem>.txt and each later one
        /// <stem>-2.txt, <stem>-3.txt, ... (skipping names another input's
        /// stem takes); stderr says which.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Directory of per-site rules (`<host>.toml`), applied by the
        /// host of --url or of a URL input.
        #[arg(long)]
        sites: Option<PathBuf>,
        /// Paths, .gz paths, `-` (stdin) or http(s) URLs.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Validate the config and print it resolved (paths absolute, defaults filled in).
    #[command(after_help = docs::CHECK_HELP)]
    Check {
        /// Config file (TOML); `gleaner init` writes a starter one.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Write a commented starter config and create its directories.
    ///
    /// Writes DIR/gleaner.toml (every key with its default, no feeds yet)
    /// and creates DIR/articles (output_dir) and DIR/state (state_dir).
    /// Never overwrites an existing config: exits 2 instead.
    #[command(after_help = docs::INIT_HELP)]
    Init {
        /// Directory to set up (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print a shell completion script.
    #[command(after_help = docs::COMPLETIONS_HELP)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (used by packaging/build-deb.sh).
    #[command(hide = true)]
    Man {
        /// Write gleaner.1 and gleaner-COMMAND.1 here instead of printing gleaner.1.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Print [[feed]] entries for the feeds of an OPML file (another
    /// reader's export), or append them to a config.
    ///
    /// Names come from the feed titles, made valid and unique; feeds
    /// already in the config, listed twice, or not http(s) are left out
    /// (and listed on stderr).
    ///
    /// Example: gleaner import-opml subscriptions.opml --append /etc/gleaner/gleaner.toml
    ImportOpml {
        /// The OPML file; `-` for stdin.
        file: PathBuf,
        /// Append the entries to this config (validated first) instead of printing them.
        #[arg(long, value_name = "CONFIG")]
        append: Option<PathBuf>,
    },
    /// Copy the state store into another backend: the embedded store in
    /// state_dir into the PostgreSQL database of [state] url.
    ///
    /// Stop every gleaner using the embedded store first (its lock is
    /// taken); the database must be empty. Then start the instances with
    /// [state] backend = "postgres".
    ///
    /// Example: gleaner migrate-state --from embedded --to postgres --config /etc/gleaner/gleaner.toml
    MigrateState {
        /// Config file (TOML) with state_dir and a [state] url.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        #[arg(long, value_enum)]
        from: StoreKind,
        #[arg(long, value_enum)]
        to: StoreKind,
    },
    /// Write the config's feeds as OPML on stdout, for another reader.
    ///
    /// Example: gleaner export-opml --config /etc/gleaner/gleaner.toml > feeds.opml
    ExportOpml {
        /// Config file (TOML); `gleaner init` writes a starter one.
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

/// A state backend, as `migrate-state` names it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StoreKind {
    Embedded,
    Postgres,
}

impl From<StoreKind> for Backend {
    fn from(k: StoreKind) -> Self {
        match k {
            StoreKind::Embedded => Backend::Embedded,
            StoreKind::Postgres => Backend::Postgres,
        }
    }
}

/// An error that exits with status 2: the user's config or directories.
#[derive(Debug)]
struct UsageError(String);
impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs what an operator wants in the journal (start, stop,
    // reloads, recoveries, moved feeds, feeds with new stories; a 304 or an
    // unchanged feed stays at debug). One-shot commands print their own
    // summary, so they only log warnings.
    let default_level = match cli.command {
        Command::Run { .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    init_logging(cli.log_format, default_level);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("gleaner: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// What decides which spans and events are logged.
enum LogFilter {
    /// `GLEANER_LOG`, as the user wrote it.
    Env(Box<tracing_subscriber::EnvFilter>),
    /// No (valid) `GLEANER_LOG`: gleaner's events from `level` up, other
    /// crates' warnings; gleaner's spans always, so that a warning names
    /// the feed and URL it is about even when info events are off.
    Default(tracing::Level),
}

fn init_logging(format: LogFormat, default_level: tracing::Level) {
    use tracing_subscriber::filter::LevelFilter;
    let filter = match tracing_subscriber::EnvFilter::try_from_env("GLEANER_LOG") {
        Ok(f) => LogFilter::Env(Box::new(f)),
        Err(_) => LogFilter::Default(default_level),
    };
    // The filter layer decides; the formatter lets through everything it
    // might pass. No more: the `log` bridge takes its level from here, and
    // at TRACE it handed on every one of the HTML parser's per-token
    // debug! calls (~3% of a pass) just to have them filtered out.
    let most = match &filter {
        LogFilter::Env(f) => {
            tracing_subscriber::Layer::<tracing_subscriber::Registry>::max_level_hint(f.as_ref())
                .unwrap_or(LevelFilter::TRACE)
        }
        LogFilter::Default(level) => {
            LevelFilter::from_level(std::cmp::max(*level, tracing::Level::INFO))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(most)
        .with_writer(std::io::stderr);
    let journal = stderr_is_journal();
    match (format, journal) {
        (LogFormat::Json, false) => install(builder.json().finish(), filter),
        (LogFormat::Json, true) => {
            let json = tracing_subscriber::fmt::format().json();
            let sub = builder
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(journal::Prefixed(json))
                .finish();
            install(sub, filter)
        }
        // The journal stamps every line itself.
        (_, true) => {
            let text = tracing_subscriber::fmt::format().without_time();
            let sub = builder
                .with_ansi(false)
                .event_format(journal::Prefixed(text))
                .finish();
            install(sub, filter)
        }
        (LogFormat::Text, false) => install(builder.with_ansi(false).finish(), filter),
        (LogFormat::Auto, false) => install(
            builder.with_ansi(std::io::stderr().is_terminal()).finish(),
            filter,
        ),
    }
}

fn install<S>(subscriber: S, filter: LogFilter)
where
    S: tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    match filter {
        LogFilter::Env(f) => subscriber.with(f).init(),
        LogFilter::Default(level) => subscriber
            .with(tracing_subscriber::filter::filter_fn(move |meta| {
                let ours = meta.target() == "gleaner" || meta.target().starts_with("gleaner::");
                if meta.is_span() {
                    ours && *meta.level() <= tracing::Level::INFO
                } else if ours {
                    *meta.level() <= level
                } else if meta.target().starts_with("html5ever")
                    || meta.target().starts_with("markup5ever")
                {
                    // The HTML parser's own notes on broken markup ("foster
                    // parenting not implemented") are about the page, not
                    // about gleaner, and come once per page.
                    *meta.level() <= tracing::Level::ERROR
                } else {
                    *meta.level() <= tracing::Level::WARN
                }
            }))
            .init(),
    }
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM`
/// to the stream's `device:inode`, and a child whose stderr was redirected
/// elsewhere inherits the variable but not the stream (sd-daemon(3)).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

mod journal {
    use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    /// Starts each line with its syslog priority (`<3>` error, `<4>` warn,
    /// `<6>` info, `<7>` debug and trace), which journald strips and stores
    /// as the entry's priority, so `journalctl -p warning` works.
    pub(super) struct Prefixed<F>(pub(super) F);

    impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &tracing::Event<'_>,
        ) -> std::fmt::Result {
            let priority = match *event.metadata().level() {
                tracing::Level::ERROR => 3,
                tracing::Level::WARN => 4,
                tracing::Level::INFO => 6,
                tracing::Level::DEBUG | tracing::Level::TRACE => 7,
            };
            write!(writer, "<{priority}>")?;
            self.0.format_event(ctx, writer, event)
        }
    }
}

fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { config } => {
            let cfg = load_config(&config)?;
            let sites = extract::SiteRulesSet::load(&cfg.extract.sites_dir)
                .map_err(|e| usage(e.to_string()))?;
            print!("{}", cfg.to_toml());
            if !sites.is_empty() {
                eprintln!(
                    "gleaner: {} site rule file(s) in {}",
                    sites.len(),
                    cfg.extract.sites_dir.display()
                );
            }
            if cfg.feeds.is_empty() {
                eprintln!(
                    "gleaner: note: no [[feed]] tables yet; add one at the end of {}",
                    config.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fetch { config } => fetch(&config),
        Command::Run { config } => run_daemon(&config),
        Command::Status { config } => status(&config),
        Command::ImportOpml { file, append } => import_opml(&file, append.as_deref()),
        Command::MigrateState { config, from, to } => {
            migrate_state(&config, from.into(), to.into())
        }
        Command::ExportOpml { config } => {
            let cfg = load_config(&config)?;
            let title = format!("gleaner feeds ({})", config.display());
            std::io::stdout()
                .lock()
                .write_all(gleaner::opml::export(&cfg.feeds, &title).as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract {
            url,
            out_dir,
            jobs,
            sites,
            inputs,
        } => {
            let sites = match sites {
                Some(dir) => extract::SiteRulesSet::load(&dir).map_err(|e| usage(e.to_string()))?,
                None => extract::SiteRulesSet::default(),
            };
            extract_cmd(url, out_dir, jobs, &sites, inputs)
        }
        Command::Init { dir } => setup::init_cmd(&dir),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { out_dir } => docs::man(out_dir.as_deref()),
    }
}

fn import_opml(file: &Path, append: Option<&Path>) -> anyhow::Result<ExitCode> {
    let bytes = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut b)
            .context("reading stdin")?;
        b
    } else {
        std::fs::read(file).map_err(|e| usage(format!("{}: {e}", file.display())))?
    };
    let feeds =
        gleaner::opml::parse(&bytes).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let existing = match append {
        Some(path) => load_config(path)?.feeds,
        None => Vec::new(),
    };
    let import = gleaner::opml::import(&feeds, &existing);
    for (url, why) in &import.skipped {
        eprintln!("gleaner: skipped {url}: {why}");
    }
    let text = gleaner::opml::to_toml(&import.entries);
    let Some(path) = append else {
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    };
    if import.entries.is_empty() {
        eprintln!("gleaner: nothing to append to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let old =
        std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let sep = if old.is_empty() || old.ends_with("\n\n") {
        ""
    } else if old.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    let addition = format!("{sep}# Imported from {}\n{text}", file.display());
    // The result must load before a byte is written: a config is never left broken.
    config::parse(&format!("{old}{addition}"), path)
        .map_err(|e| anyhow!("the imported entries would not make a valid config: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {} to append", path.display()))?;
    f.write_all(addition.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("appending to {}", path.display()))?;
    eprintln!(
        "gleaner: appended {} feed(s) to {}; a running daemon picks them up on SIGHUP (systemctl reload gleaner)",
        import.entries.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    config::load(path).map_err(|e| usage(setup::config_error(&e, path)))
}

fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    match cfg.state.backend {
        Backend::Embedded => {
            let store =
                SqliteStore::open(&cfg.state_dir).map_err(|e| setup::store_error(&e, cfg))?;
            Ok(Arc::new(store))
        }
        Backend::Postgres => {
            let store = PgStore::open(&cfg.state).map_err(|e| setup::store_error(&e, cfg))?;
            tracing::info!(
                instance = store.holder(),
                "using the shared PostgreSQL state store"
            );
            Ok(Arc::new(store))
        }
    }
}

fn migrate_state(path: &Path, from: Backend, to: Backend) -> anyhow::Result<ExitCode> {
    let cfg = load_config(path)?;
    if (from, to) != (Backend::Embedded, Backend::Postgres) {
        return Err(usage(
            "only --from embedded --to postgres is supported".to_string(),
        ));
    }
    if cfg.state.backend != Backend::Postgres {
        return Err(usage(format!(
            "{}: set [state] backend = \"postgres\" and its url first; the embedded store is read from state_dir ({})",
            path.display(),
            cfg.state_dir.display()
        )));
    }
    let copied = gleaner::store::migrate::embedded_to_postgres(&cfg.state_dir, &cfg.state)
        .map_err(|e| setup::store_error(&e, &cfg))?;
    println!(
        "copied {} feeds, {} stories, {} keys, {} signatures, {} boilerplate blocks and {} failing pages from {} to {}",
        copied.feeds,
        copied.stories,
        copied.keys,
        copied.signatures,
        copied.blocks,
        copied.pages,
        cfg.state_dir.display(),
        config::mask_password(cfg.state.url.as_deref().unwrap_or_default())
    );
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn fetch(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = load_config(path)?;
    std::fs::create_dir_all(&cfg.output_dir)
        .map_err(|e| setup::dir_error("output_dir", &cfg.output_dir, path, &e))?;
    let store = open_store(&cfg)?;
    let feeds = cfg.feeds.clone();
    if feeds.is_empty() {
        // Not an error: a fresh install has no feeds until someone adds them.
        eprintln!(
            "gleaner: {}",
            setup::no_feeds_message(path, "there is nothing to fetch")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = Arc::new(Context::new(cfg, store.clone()).map_err(|e| match e {
        pipeline::PassError::Rules(r) => usage(r.to_string()),
        other => anyhow::Error::new(other).context("cannot set up the fetcher"),
    })?);
    ctx.recover().context("cannot recover interrupted writes")?;
    ctx.prune_if_due();

    let bar = indicatif::ProgressBar::with_draw_target(
        Some(feeds.len() as u64),
        if std::io::stderr().is_terminal() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} feeds  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let written = AtomicUsize::new(0);
    let reports = runtime()?.block_on(pipeline::run_pass(ctx, feeds, |r| {
        let n = written.fetch_add(r.new, Ordering::Relaxed) + r.new;
        bar.set_message(format!("{n} new"));
        bar.inc(1);
    }));
    bar.finish_and_clear();
    if let Some(trips) = store.round_trips() {
        tracing::info!(
            round_trips = trips,
            feeds = reports.len(),
            "state database round trips in this pass"
        );
    }
    print_summary(&reports)?;
    Ok(ExitCode::SUCCESS)
}

fn run_daemon(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = load_config(path)?;
    std::fs::create_dir_all(&cfg.output_dir)
        .map_err(|e| setup::dir_error("output_dir", &cfg.output_dir, path, &e))?;
    let store = open_store(&cfg)?;
    if cfg.feeds.is_empty() {
        // Not an error (the packaged config has no feeds and its service
        // must not crash-loop): the daemon idles until a reload adds some.
        tracing::warn!(
            "{} has no [[feed]] tables yet: idling until a reload adds some (add [[feed]] tables, then `systemctl reload gleaner` or SIGHUP)",
            path.display()
        );
    }
    let summary = runtime()?
        .block_on(gleaner::daemon::run(cfg, store))
        .context("daemon failed")?;
    if summary.abandoned > 0 {
        eprintln!(
            "gleaner: stopped with {} feed(s) unfinished; they are completed at the next start",
            summary.abandoned
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn status(path: &Path) -> anyhow::Result<ExitCode> {
    use gleaner::daemon::{self, FeedStatus};
    use gleaner::store::StoreError;
    let cfg = load_config(path)?;
    if cfg.feeds.is_empty() {
        eprintln!(
            "gleaner: {}",
            setup::no_feeds_message(path, "there is no feed to show")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if cfg.state.backend == Backend::Postgres {
        // The database is readable while instances run.
        let store = PgStore::open_existing(&cfg.state).map_err(|e| setup::store_error(&e, &cfg))?;
        let rows = daemon::feed_status(&cfg.feeds, &store)?;
        let source = format!(
            "shared state store {}",
            config::mask_password(cfg.state.url.as_deref().unwrap_or_default())
        );
        print_status(&rows, &source)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (rows, source): (Vec<FeedStatus>, String) =
        match SqliteStore::open_read_only(&cfg.state_dir) {
            Ok(store) => (
                daemon::feed_status(&cfg.feeds, &store)?,
                format!("state store {} (no gleaner running)", cfg.state_dir.display()),
            ),
            Err(StoreError::Locked(dir)) => match daemon::read_snapshot(&cfg.state_dir) {
                Some(snap) => {
                    let age = (chrono::Utc::now() - snap.written_at).num_seconds().max(0);
                    (
                        snap.feeds,
                        format!(
                            "gleaner (pid {}) is running and holds the state store in {dir}; showing its snapshot from {age}s ago",
                            snap.pid
                        ),
                    )
                }
                None => {
                    return Err(anyhow!(
                        "the state store in {dir} is locked by a running gleaner that publishes no status (a `gleaner fetch` in progress?); try again when it has finished"
                    ))
                }
            },
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => (
                cfg.feeds.iter().map(FeedStatus::never).collect(),
                format!(
                    "no state yet in {}: gleaner has not run with this config",
                    cfg.state_dir.display()
                ),
            ),
            Err(e) => return Err(setup::store_error(&e, &cfg)),
        };
    print_status(&rows, &source)?;
    Ok(ExitCode::SUCCESS)
}

fn print_status(rows: &[gleaner::daemon::FeedStatus], source: &str) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| match t {
        None => "never".to_string(),
        Some(t) => {
            let secs = (t - now).num_seconds();
            let rel = human_secs(secs.unsigned_abs());
            let at = t.format("%Y-%m-%d %H:%M:%SZ");
            if secs >= 0 {
                format!("{at} (in {rel})")
            } else {
                format!("{at} ({rel} ago)")
            }
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "# {source}")?;
    let w = rows.iter().map(|r| r.feed.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<w$}  {:<32}  {:<32}  {:>7}  {:>8}  last error",
        "feed", "last success", "next poll", "items", "failures"
    )?;
    for r in rows {
        let next = if r.polling {
            "polling now".to_string()
        } else {
            when(r.next_poll)
        };
        let err = match (&r.last_error, r.failures) {
            (Some(e), n) if n > 0 => {
                let e: String = e.chars().take(100).collect();
                format!("{} : {e}", when(r.last_error_at))
            }
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<w$}  {:<32}  {:<32}  {:>7}  {:>8}  {err}",
            r.feed,
            when(r.last_success),
            next,
            r.items,
            r.failures
        )?;
    }
    Ok(())
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn print_summary(reports: &[FeedReport]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let w = reports
        .iter()
        .map(|r| r.feed.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<w$}  {:>5}  {:>9}  {:>9}  {:>6}  status",
        "feed", "new", "duplicate", "near-dup", "failed"
    )?;
    let (mut new, mut dup, mut near, mut failed, mut bad) = (0, 0, 0, 0, 0);
    for r in reports {
        let status = match (&r.error, r.not_modified) {
            (Some(e), _) => {
                bad += 1;
                format!("FAILED: {e}")
            }
            (None, _) if r.elsewhere => "polled by another instance".to_string(),
            // The time is on the line below.
            (None, _) if r.host_paused.is_some() => "deferred (host asked us to wait)".to_string(),
            (None, true) => "not modified".to_string(),
            (None, false) if r.failed + r.given_up + r.deferred + r.items_ignored > 0 => {
                let mut parts = Vec::new();
                if r.items_ignored > 0 {
                    parts.push(format!(
                        "{} item(s) past the limit ignored",
                        r.items_ignored
                    ));
                }
                if r.failed > 0 {
                    parts.push(format!("{} item(s) failed, retried next pass", r.failed));
                }
                if r.deferred > 0 {
                    parts.push(format!("{} page(s) backing off", r.deferred));
                }
                if r.given_up > 0 {
                    parts.push(format!("{} page(s) given up", r.given_up));
                }
                parts.join("; ")
            }
            _ => "ok".to_string(),
        };
        writeln!(
            out,
            "{:<w$}  {:>5}  {:>9}  {:>9}  {:>6}  {status}",
            r.feed, r.new, r.duplicates, r.near_duplicates, r.failed
        )?;
        for e in &r.item_errors {
            writeln!(out, "{:<w$}    - {e}", "")?;
        }
        new += r.new;
        dup += r.duplicates;
        near += r.near_duplicates;
        failed += r.failed;
    }
    writeln!(
        out,
        "total: {} feeds ({bad} failed), {new} new, {dup} duplicate, {near} near-duplicate, {failed} failed items",
        reports.len()
    )?;
    Ok(())
}

/// Stem of an extract input: the file name without `.gz`, `.html`, `.htm`.
fn stem_of(input: &str) -> String {
    let name = input.rsplit(['/', '\\']).next().unwrap_or(input);
    let mut s = name;
    for ext in [".gz", ".html", ".htm", ".xhtml"] {
        if let Some(x) = s.strip_suffix(ext) {
            s = x;
        }
    }
    if input == "-" {
        "stdin".to_string()
    } else if s.is_empty() {
        // A URL ending in `/`.
        "index".to_string()
    } else {
        s.to_string()
    }
}

/// `--out-dir` file names, one per input: `<stem>.txt`, except that an
/// input whose stem an earlier input already has gets `<stem>-2.txt`,
/// `<stem>-3.txt`, ... (the first such name that no input's own stem
/// takes), so no output overwrites another and the names depend only on
/// the order of the inputs.
fn out_names(inputs: &[String]) -> Vec<String> {
    let stems: Vec<String> = inputs.iter().map(|i| stem_of(i)).collect();
    let mut taken: std::collections::HashSet<String> = stems.iter().cloned().collect();
    let mut first_seen = std::collections::HashSet::new();
    stems
        .into_iter()
        .map(|stem| {
            if first_seen.insert(stem.clone()) {
                return stem;
            }
            let name = (2..)
                .map(|n| format!("{stem}-{n}"))
                .find(|c| !taken.contains(c))
                .unwrap_or_default();
            taken.insert(name.clone());
            name
        })
        .collect()
}

fn read_input(input: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if input == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        bytes = std::fs::read(input).context("cannot read it")?;
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .take(extract::MAX_HTML_BYTES as u64 * 4)
            .read_to_end(&mut out)
            .context("cannot decompress it")?;
        bytes = out;
    }
    Ok(bytes)
}

fn is_url(input: &str) -> bool {
    input.starts_with("http://") || input.starts_with("https://")
}

/// Fetches the URL inputs (the files are read by the workers); one failing
/// URL fails only its own input.
fn fetch_url_inputs(
    inputs: &[String],
) -> anyhow::Result<Vec<Option<anyhow::Result<gleaner::fetch::Body>>>> {
    use gleaner::fetch::{Fetched, Fetcher, Kind};
    let mut fetched: Vec<Option<anyhow::Result<gleaner::fetch::Body>>> =
        inputs.iter().map(|_| None).collect();
    if !inputs.iter().any(|i| is_url(i)) {
        return Ok(fetched);
    }
    let fetcher = Fetcher::new(&config::FetchConfig::default())?;
    let rt = runtime()?;
    for (i, input) in inputs.iter().enumerate() {
        if !is_url(input) {
            continue;
        }
        let got = match url::Url::parse(input) {
            Err(e) => Err(anyhow!("not a valid URL: {e}")),
            Ok(u) => match rt.block_on(fetcher.get(&u, Kind::Page, None, false)) {
                Ok(Fetched::Body(mut b)) => {
                    // All pages are held until extraction: the budget,
                    // meant for a daemon's bodies in work, would stall the
                    // fetches after the first hundred or so.
                    b.budget.release();
                    Ok(b)
                }
                Ok(Fetched::NotModified) => Err(anyhow!("unexpected 304 Not Modified")),
                Err(e) => Err(anyhow::Error::new(e)),
            },
        };
        fetched[i] = Some(got);
    }
    Ok(fetched)
}

/// `gleaner extract`: every input is tried; a failing one is named on
/// stderr and the others are still printed or written. Like `fetch`, a
/// partial failure is reported, not fatal: exit 1 only when no input could
/// be extracted.
fn extract_cmd(
    base: Option<url::Url>,
    out_dir: Option<PathBuf>,
    jobs: Option<usize>,
    sites: &extract::SiteRulesSet,
    inputs: Vec<String>,
) -> anyhow::Result<ExitCode> {
    if let Some(d) = &out_dir {
        std::fs::create_dir_all(d).map_err(|e| usage(format!("{}: {e}", d.display())))?;
    }
    let names = out_names(&inputs);
    if out_dir.is_some() {
        for (input, name) in inputs.iter().zip(&names) {
            if *name != stem_of(input) {
                eprintln!(
                    "gleaner: {input}: written as {name}.txt (another input is named {}.txt)",
                    stem_of(input)
                );
            }
        }
    }
    let fetched = fetch_url_inputs(&inputs)?;
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<String>>> =
        inputs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(input) = inputs.get(i) else { break };
                let r = (|| -> anyhow::Result<String> {
                    let (html, own_url) = match &fetched[i] {
                        Some(Ok(b)) => (
                            charset::decode(&b.bytes, b.content_type.as_deref()),
                            Some(b.final_url.clone()),
                        ),
                        Some(Err(e)) => return Err(anyhow!("{e:#}")),
                        None => (charset::decode(&read_input(input)?, None), None),
                    };
                    let base = base.clone().or(own_url);
                    let rules = base
                        .as_ref()
                        .and_then(|u| u.host_str())
                        .and_then(|h| sites.for_host(h));
                    let article = extract::extract_with(&html, base.as_ref(), rules);
                    Ok(article.body())
                })();
                match r {
                    Ok(text) => {
                        if let Some(d) = &out_dir {
                            let path = d.join(format!("{}.txt", names[i]));
                            if let Err(e) = std::fs::write(&path, format!("{text}\n")) {
                                eprintln!("gleaner: {input}: cannot write {}: {e}", path.display());
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        } else if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(text);
                        }
                    }
                    Err(e) => {
                        eprintln!("gleaner: {input}: {e:#}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if out_dir.is_none() {
        let mut out = std::io::stdout().lock();
        let many = inputs.len() > 1;
        for (i, slot) in results.into_iter().enumerate() {
            if let Some(text) = slot.into_inner().ok().flatten() {
                if many {
                    writeln!(out, "==> {} <==", inputs[i])?;
                }
                writeln!(out, "{text}")?;
                if many {
                    writeln!(out)?;
                }
            }
        }
    }
    // As in `fetch` (DESIGN.md: a failing feed is reported, not fatal), a
    // failing input is reported and the call still succeeds when it
    // extracted something; with nothing extracted it failed.
    let failed = failures.load(Ordering::Relaxed);
    if failed == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if failed == inputs.len() {
        if failed > 1 {
            eprintln!("gleaner: none of the {failed} inputs could be extracted");
        }
        return Ok(ExitCode::from(1));
    }
    eprintln!(
        "gleaner: {failed} of {} inputs failed (named above); the other {} were extracted",
        inputs.len(),
        inputs.len() - failed
    );
    Ok(ExitCode::SUCCESS)
}
