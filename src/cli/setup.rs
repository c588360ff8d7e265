//! First run: `gleaner init`, and error messages that say what to do next
//! (the hints themselves live in `gleaner::init`, so they are unit-tested
//! with the library).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use gleaner::config::{self, ConfigError};
use gleaner::init::{self, InitError};

use super::usage;

/// `gleaner init [DIR]`.
pub(super) fn init_cmd(dir: &Path) -> anyhow::Result<ExitCode> {
    let made = match init::init(dir) {
        Ok(made) => made,
        Err(InitError::Exists(path)) => {
            return Err(usage(format!(
                "{} already exists; not overwriting it\n  hint: check it with `gleaner check --config {}`, \
                 or move it away (or pick another DIR) to start afresh",
                path.display(),
                path.display()
            )))
        }
        Err(e @ InitError::Io { .. }) => {
            return Err(usage(format!(
                "{e}\n  hint: DIR must be a directory this user can create and write"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let cfg = made.config.display();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created {cfg} (starter config: every key with its default, no feeds yet)"
    )?;
    writeln!(out, "created {}/ (output_dir)", made.output_dir.display())?;
    writeln!(out, "created {}/ (state_dir)", made.state_dir.display())?;
    writeln!(out)?;
    writeln!(out, "Next:")?;
    writeln!(out, "  1. add a feed at the end of {cfg}:")?;
    for line in init::FEED_EXAMPLE.lines() {
        writeln!(out, "       {line}")?;
    }
    writeln!(out, "  2. gleaner check --config {cfg}")?;
    writeln!(out, "  3. gleaner fetch --config {cfg}")?;
    Ok(ExitCode::SUCCESS)
}

/// The message for a config that cannot be loaded, with what to do next.
pub(super) fn config_error(e: &ConfigError, path: &Path) -> String {
    match e {
        ConfigError::Read { source, .. } => {
            let is_default = path == Path::new(config::DEFAULT_PATH);
            format!("{e}\n{}", init::config_read_hint(path, source, is_default))
        }
        ConfigError::Invalid { message, .. } if message.starts_with("missing key") => format!(
            "{e}\n  hint: add it to {0}, then `gleaner check --config {0}`",
            path.display()
        ),
        ConfigError::Invalid { .. } => format!(
            "{e}\n  hint: fix that line, then `gleaner check --config {}`",
            path.display()
        ),
    }
}

/// `output_dir` / `state_dir` cannot be created or written.
pub(super) fn dir_error(
    key: &str,
    dir: &Path,
    config: &Path,
    err: &std::io::Error,
) -> anyhow::Error {
    usage(format!(
        "{key} {}: {err}\n{}",
        dir.display(),
        init::dir_hint(key, dir, config, err)
    ))
}

/// The state store cannot be opened.
pub(super) fn store_error(
    e: &gleaner::store::StoreError,
    cfg: &gleaner::config::Config,
) -> anyhow::Error {
    use gleaner::store::StoreError;
    match e {
        StoreError::Io { source, .. } => usage(format!(
            "{e}\n{}",
            init::dir_hint("state_dir", &cfg.state_dir, &cfg.source, source)
        )),
        StoreError::Postgres { .. } => usage(format!(
            "{e}\n  hint: check [state] url in {}, that the PostgreSQL server is up, and the password \
             (password_file, or GLEANER_PG_PASSWORD)",
            cfg.source.display()
        )),
        StoreError::Locked(_) => usage(format!(
            "{e}\n  hint: wait for it to finish (`gleaner status` shows what it is doing), \
             or give this config its own state_dir"
        )),
        _ => usage(format!(
            "{e}\n  hint: state_dir must be a directory gleaner can create and write"
        )),
    }
}

/// Said when a config has no feeds: not an error (the packaged config has
/// none until the admin adds some), but the next step is spelled out.
pub(super) fn no_feeds_message(config: &Path, so: &str) -> String {
    let mut s = format!(
        "{} has no [[feed]] tables yet, so {so}.\n  hint: add one at the end of the file, e.g.\n",
        config.display()
    );
    for line in init::FEED_EXAMPLE.lines() {
        s.push_str("      ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(&format!(
        "  then `gleaner check --config {0}` and run this again",
        config.display()
    ));
    s
}
