//! First run: `gleaner init [DIR]`, and the "what to do next" hints that the
//! errors a newcomer meets first carry (no config, unusable directories).
//!
//! The starter config is `config/gleaner.example.toml` (every key with its
//! default, no feeds) with `output_dir` and `state_dir` made relative to
//! the config file, so a starter directory can be moved or shared as a whole.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The documented example config: every key with its default, no feeds.
pub const EXAMPLE_CONFIG: &str = include_str!("../config/gleaner.example.toml");
/// File name `gleaner init` writes in its directory.
pub const CONFIG_FILE: &str = "gleaner.toml";
/// `output_dir` of the starter config, relative to the config file.
pub const OUTPUT_DIR: &str = "articles";
/// `state_dir` of the starter config, relative to the config file.
pub const STATE_DIR: &str = "state";

/// A feed stanza to show people who have none yet.
pub const FEED_EXAMPLE: &str =
    "[[feed]]\nname = \"world\"                          # used in paths and logs\nurl  = \"https://example.org/world.rss\"  # RSS, Atom or JSON Feed";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already exists; not overwriting it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The example config no longer has the lines the starter rewrites
    /// (a build problem, caught by the tests).
    #[error("the built-in example config has no `{0} = ...` line to rewrite")]
    Template(&'static str),
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct Initialized {
    pub config: PathBuf,
    pub output_dir: PathBuf,
    pub state_dir: PathBuf,
}

/// The starter config text.
pub fn starter_config() -> Result<String, InitError> {
    let header = "\
# gleaner configuration, written by `gleaner init`.
# Every key is listed with its default value and a comment; only the feeds
# at the end are yours to add. Relative paths resolve against this file's
# directory.
#
#   gleaner check --config FILE    validate it and print it resolved
#   gleaner fetch --config FILE    one pass over the feeds
#   gleaner run   --config FILE    keep polling (the daemon)
";
    let mut out = String::from(header);
    let mut seen_header = true;
    let (mut output_dir, mut state_dir) = (false, false);
    for line in EXAMPLE_CONFIG.lines() {
        // Drop the example's own leading comment block.
        if seen_header && line.starts_with('#') {
            continue;
        }
        seen_header = false;
        if line.starts_with("output_dir =") || line.starts_with("output_dir=") {
            out.push_str(&format!("output_dir = \"{OUTPUT_DIR}\"\n"));
            output_dir = true;
        } else if line.starts_with("state_dir =") || line.starts_with("state_dir=") {
            out.push_str(&format!("state_dir = \"{STATE_DIR}\"\n"));
            state_dir = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !output_dir {
        return Err(InitError::Template("output_dir"));
    }
    if !state_dir {
        return Err(InitError::Template("state_dir"));
    }
    Ok(out)
}

/// Writes `dir/gleaner.toml` (never over an existing file) and creates
/// `dir/articles` and `dir/state`. `dir` is created if missing.
pub fn init(dir: &Path) -> Result<Initialized, InitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    let config = dir.join(CONFIG_FILE);
    // Checked first so that a refusal creates nothing.
    if config.symlink_metadata().is_ok() {
        return Err(InitError::Exists(config));
    }
    let text = starter_config()?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // Temp file + no-clobber rename: the config appears whole or not at all,
    // and a file created meanwhile is not overwritten.
    let mut tmp = tempfile::Builder::new()
        .prefix(".gleaner.toml.")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(text.as_bytes()).map_err(io(&config))?;
    tmp.as_file().sync_all().map_err(io(&config))?;
    // Readable by a service user: the starter config holds no secrets (a
    // database password belongs in [state] password_file, not here).
    set_mode(tmp.path(), 0o644).map_err(io(&config))?;
    tmp.persist_noclobber(&config).map_err(|e| {
        if e.error.kind() == ErrorKind::AlreadyExists {
            InitError::Exists(config.clone())
        } else {
            InitError::Io {
                path: config.clone(),
                source: e.error,
            }
        }
    })?;
    let output_dir = dir.join(OUTPUT_DIR);
    let state_dir = dir.join(STATE_DIR);
    for d in [&output_dir, &state_dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    Ok(Initialized {
        config,
        output_dir,
        state_dir,
    })
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// What to do when the config at `path` cannot be read. `is_default`: the
/// path is the built-in default (no `--config` given).
pub fn config_read_hint(path: &Path, err: &std::io::Error, is_default: bool) -> String {
    let p = path.display();
    match err.kind() {
        ErrorKind::NotFound if is_default => format!(
            "  hint: {p} is where gleaner looks when --config is not given (the Debian \
             package installs it); to start elsewhere, `gleaner init DIR` writes a starter \
             DIR/gleaner.toml, then pass --config DIR/gleaner.toml"
        ),
        ErrorKind::NotFound => String::from(
            "  hint: check the --config path; to start afresh, `gleaner init DIR` writes a \
             starter DIR/gleaner.toml, then pass --config DIR/gleaner.toml",
        ),
        ErrorKind::PermissionDenied => format!(
            "  hint: run gleaner as a user who can read {p}, or let this user read it: \
             `chmod 644 {p}` unless it holds a password (a [state] url with one: keep it \
             private, e.g. `chgrp GROUP {p} && chmod 640 {p}` for a group of this user)"
        ),
        ErrorKind::IsADirectory => format!(
            "  hint: --config takes the file, e.g. --config {}",
            path.join(CONFIG_FILE).display()
        ),
        _ => format!("  hint: check that {p} is a readable text (UTF-8 TOML) file"),
    }
}

/// What to do when `key` (`state_dir` or `output_dir`), resolved to `dir`
/// from the config at `config`, cannot be created or written.
pub fn dir_hint(key: &str, dir: &Path, config: &Path, err: &std::io::Error) -> String {
    let d = dir.display();
    let c = config.display();
    let not_a_dir = dir.symlink_metadata().is_ok_and(|m| !m.is_dir()) && !dir.is_dir();
    let fix = match err.kind() {
        _ if not_a_dir => format!("{d} exists but is not a directory: move it away"),
        ErrorKind::AlreadyExists => format!("{d} exists but is not a directory: move it away"),
        ErrorKind::NotADirectory => {
            format!("a component of {d} is a file, not a directory: fix the path")
        }
        ErrorKind::PermissionDenied => format!(
            "this user cannot create or write {d}: `sudo mkdir -p {d} && sudo chown $USER {d}`, \
             or run gleaner as its owner"
        ),
        ErrorKind::ReadOnlyFilesystem => format!(
            "{d} is on a read-only file system (under the packaged systemd unit only \
             /var/lib/gleaner is writable): choose a directory below /var/lib/gleaner, \
             or allow this one with `ReadWritePaths={d}` in a drop-in (`systemctl edit gleaner`)"
        ),
        ErrorKind::NotFound => format!("create {d} (`mkdir -p {d}`)"),
        _ => format!("{key} must be a directory gleaner can create and write"),
    };
    format!("  hint: {fix}; or set {key} in {c} to another directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_config_is_valid_has_no_feeds_and_relative_dirs() {
        let text = starter_config().unwrap();
        let cfg = crate::config::parse(&text, Path::new("/srv/news/gleaner.toml")).unwrap();
        assert!(cfg.feeds.is_empty());
        assert_eq!(cfg.output_dir, PathBuf::from("/srv/news/articles"));
        assert_eq!(cfg.state_dir, PathBuf::from("/srv/news/state"));
        assert!(text.contains("# [[feed]]"), "{text}");
        assert!(text.starts_with("# gleaner configuration, written by `gleaner init`"));
        // Every other line of the example survives (the comments are the docs).
        for line in EXAMPLE_CONFIG.lines().skip_while(|l| l.starts_with('#')) {
            if !line.starts_with("output_dir") && !line.starts_with("state_dir") {
                assert!(text.contains(line), "starter lost {line:?}");
            }
        }
    }

    #[test]
    fn starter_plus_feed_example_is_valid() {
        let text = format!("{}\n{FEED_EXAMPLE}\n", starter_config().unwrap());
        let cfg = crate::config::parse(&text, Path::new("/srv/news/gleaner.toml")).unwrap();
        assert_eq!(cfg.feeds.len(), 1);
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("news");
        let made = init(&dir).unwrap();
        assert!(made.config.is_file() && made.output_dir.is_dir() && made.state_dir.is_dir());
        std::fs::write(&made.config, "mine").unwrap();
        assert!(matches!(init(&dir), Err(InitError::Exists(_))));
        assert_eq!(std::fs::read_to_string(&made.config).unwrap(), "mine");
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn hints_say_what_to_do() {
        let p = Path::new("/etc/gleaner/gleaner.toml");
        let nf = std::io::Error::from(ErrorKind::NotFound);
        assert!(config_read_hint(p, &nf, true).contains("gleaner init"));
        let denied = std::io::Error::from(ErrorKind::PermissionDenied);
        assert!(config_read_hint(p, &denied, false).contains("chmod"));
        let h = dir_hint("state_dir", Path::new("/srv/s"), p, &denied);
        assert!(h.contains("chown") && h.contains("state_dir in /etc/gleaner/gleaner.toml"));
        let ro = std::io::Error::from(ErrorKind::ReadOnlyFilesystem);
        assert!(dir_hint("output_dir", Path::new("/srv/o"), p, &ro).contains("/var/lib/gleaner"));
    }
}
