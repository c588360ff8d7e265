//! Per-site rules: the escape hatch when the generic extractor gets a site
//! wrong. One TOML file per host, `<sites_dir>/<host>.toml`:
//!
//! ```toml
//! body  = "div.article-body"                 # the article container (CSS selector)
//! strip = [".newsletter-box", "p.credit"]    # subtrees removed before extraction
//! drop_phrases = ["Subscribe to The Daily"]  # blocks containing these are removed
//! ```
//!
//! `body` replaces the container search, and inside it the generic name
//! hints (`comment`, `share`, ...) drop nothing: the site said what the
//! article is. `strip` and `drop_phrases` remove more.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use scraper::Selector;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot read site rules in {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Compiled rules for one site.
#[derive(Debug, Default)]
pub struct SiteRules {
    pub(super) body: Option<Selector>,
    pub(super) strip: Vec<Selector>,
    /// Lowercased.
    pub(super) drop_phrases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    body: Option<String>,
    #[serde(default)]
    strip: Vec<String>,
    #[serde(default)]
    drop_phrases: Vec<String>,
}

fn selector(s: &str) -> Result<Selector, String> {
    Selector::parse(s).map_err(|e| format!("bad CSS selector `{s}`: {e}"))
}

impl SiteRules {
    /// Parses one rules file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<SiteRules, RulesError> {
        let invalid = |message: String| RulesError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawRules =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim().to_string()))?;
        Ok(SiteRules {
            body: raw
                .body
                .as_deref()
                .map(selector)
                .transpose()
                .map_err(invalid)?,
            strip: raw
                .strip
                .iter()
                .map(|s| selector(s))
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            drop_phrases: raw
                .drop_phrases
                .iter()
                .map(|p| p.trim().to_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        })
    }
}

/// Rules for every host that has a file in a directory.
#[derive(Debug, Default)]
pub struct SiteRulesSet {
    by_host: HashMap<String, SiteRules>,
}

impl SiteRulesSet {
    /// Loads `<dir>/<host>.toml` files. A missing directory means no rules.
    pub fn load(dir: &Path) -> Result<SiteRulesSet, RulesError> {
        let mut by_host = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SiteRulesSet::default())
            }
            Err(source) => {
                return Err(RulesError::Read {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let Some(host) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_ascii_lowercase)
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|source| RulesError::Read {
                path: path.clone(),
                source,
            })?;
            by_host.insert(host, SiteRules::parse(&text, &path)?);
        }
        Ok(SiteRulesSet { by_host })
    }

    /// Rules for `host`, also found under the host without `www.`.
    pub fn for_host(&self, host: &str) -> Option<&SiteRules> {
        let host = host.to_ascii_lowercase();
        self.by_host
            .get(&host)
            .or_else(|| host.strip_prefix("www.").and_then(|h| self.by_host.get(h)))
            .or_else(|| self.by_host.get(&format!("www.{host}")))
    }

    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}
