//! Story files under `output_dir`: naming, rendering and atomic writes.
//!
//! The only module that writes under `output_dir`. A story is
//! `<feed>/<YYYY>/<MM>/<DD>/<slug>-<id>.txt` plus `.json`. Each file is
//! written to a hidden temp file in the same directory and renamed into
//! place, so a reader never sees half a file; a pass makes its new stories
//! durable together (`GroupSync`) before the store records them finished,
//! and a `.json` rewrite is fsynced before its rename.
//! A crash can leave temp files behind: those of a new story sit in its own
//! directory, which the pending-write recovery cleans; those of a rewrite of
//! a finished story's `.json` (a duplicate added) sit at the top of
//! `output_dir`, so start-up finds them with one `read_dir` instead of a
//! walk over every story directory.
//! Names are built only from a validated feed name, digits, and a slug of
//! letters, digits and dashes: nothing from the network can climb out.

mod group;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

pub use group::GroupSync;

/// Prefix of temp files; stale ones are removed at start-up.
pub const TEMP_PREFIX: &str = ".gleaner-tmp-";
/// Slugs are cut to this many characters (and bytes stay well under 255).
const SLUG_CHARS: usize = 60;
/// ... and to this many bytes: 60 four-byte letters plus `-<id>.json` would
/// pass the 255-byte file name limit (ENAMETOOLONG, the story never written).
const SLUG_BYTES: usize = 180;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot update {path}: {message}")]
    Json { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Another sighting of a story already written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Duplicate {
    pub url: String,
    pub feed: String,
    pub seen_at: DateTime<Utc>,
    /// `url`, `guid` or `text`: what made it the same story.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
}

/// The `.json` beside each `.txt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoryMeta {
    pub id: String,
    pub url: String,
    pub canonical_url: String,
    pub feed: String,
    pub title: String,
    pub author: Option<String>,
    pub published: Option<DateTime<Utc>>,
    pub fetched_at: DateTime<Utc>,
    pub words: usize,
    pub lang: Option<String>,
    pub duplicates: Vec<Duplicate>,
}

/// `<feed>/<YYYY>/<MM>/<DD>/<slug>-<id>` (no extension), relative to `output_dir`.
pub fn story_stem(feed: &str, date: DateTime<Utc>, title: &str, id: &str) -> PathBuf {
    let mut p = PathBuf::from(feed);
    p.push(format!("{:04}", date.year()));
    p.push(format!("{:02}", date.month()));
    p.push(format!("{:02}", date.day()));
    p.push(format!("{}-{}", slug(title), id));
    p
}

/// Lowercase letters and digits (any script), single dashes between words.
pub fn slug(title: &str) -> String {
    let mut s = String::new();
    let mut n = 0;
    for word in title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if n > 0 {
            if n + 1 >= SLUG_CHARS {
                break;
            }
            s.push('-');
            n += 1;
        }
        // Lowercasing can yield marks ('İ' is 'i' + U+0307): keep only letters and digits.
        for c in word
            .chars()
            .flat_map(char::to_lowercase)
            .filter(|c| c.is_alphanumeric())
        {
            if n >= SLUG_CHARS || s.len() + c.len_utf8() > SLUG_BYTES {
                n = SLUG_CHARS; // full: no further words either
                break;
            }
            s.push(c);
            n += 1;
        }
        if n >= SLUG_CHARS {
            break;
        }
    }
    let s = s.trim_end_matches('-');
    if s.is_empty() {
        "story".to_string()
    } else {
        s.to_string()
    }
}

/// Title, blank line, body, final newline.
pub fn render_text(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(title.len() + body.len() + 3);
    out.push_str(title);
    out.push_str("\n\n");
    out.push_str(body);
    out.push('\n');
    out
}

/// Writes the `.json` then the `.txt` of a story, each atomically (temp
/// file, fsync, rename), then fsyncs their directory.
pub fn write_story(
    output_dir: &Path,
    stem: &Path,
    text: &str,
    meta: &StoryMeta,
) -> Result<(), OutputError> {
    let dir = story_dir(output_dir, stem)?;
    stage_in(&dir, output_dir, stem, text, meta, true)?.publish()?;
    sync_dir(&dir);
    Ok(())
}

/// A story's two files written to temp files beside their final names, not
/// yet renamed into place. Dropped unpublished, the temp files are removed.
pub struct StagedStory {
    files: [(tempfile::TempPath, PathBuf); 2],
}

/// Writes a story whose durability `group` takes care of: on its file
/// system, to temp files without an fsync (Some), for the caller to sync,
/// `publish` and sync again before it records the story finished, so the
/// files only ever appear complete, even after a power cut. Elsewhere (a
/// feed directory symlinked to another file system) as `write_story` does
/// (None).
pub fn write_story_for(
    group: &GroupSync,
    output_dir: &Path,
    stem: &Path,
    text: &str,
    meta: &StoryMeta,
) -> Result<Option<StagedStory>, OutputError> {
    let dir = story_dir(output_dir, stem)?;
    if group.covers(&dir) {
        return stage_in(&dir, output_dir, stem, text, meta, false).map(Some);
    }
    stage_in(&dir, output_dir, stem, text, meta, true)?.publish()?;
    sync_dir(&dir);
    Ok(None)
}

/// Creates the story's directory (and its parents) if need be.
fn story_dir(output_dir: &Path, stem: &Path) -> Result<PathBuf, OutputError> {
    let base = output_dir.join(stem);
    let dir = base.parent().unwrap_or(output_dir).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Writes a story's files to temp files in `dir`, its existing directory;
/// with `sync`, each is fsynced.
fn stage_in(
    dir: &Path,
    output_dir: &Path,
    stem: &Path,
    text: &str,
    meta: &StoryMeta,
    sync: bool,
) -> Result<StagedStory, OutputError> {
    let base = output_dir.join(stem);
    let json = serde_json::to_vec_pretty(meta).map_err(|e| OutputError::Json {
        path: base.clone(),
        message: e.to_string(),
    })?;
    let json_path = base.with_extension("json");
    let txt_path = base.with_extension("txt");
    let json_tmp = write_temp(dir, &json_path, &json, sync)?;
    let txt_tmp = write_temp(dir, &txt_path, text.as_bytes(), sync)?;
    Ok(StagedStory {
        files: [(json_tmp, json_path), (txt_tmp, txt_path)],
    })
}

impl StagedStory {
    /// Renames the files into place: the `.json`, then the `.txt`.
    pub fn publish(self) -> Result<(), OutputError> {
        for (tmp, path) in self.files {
            tmp.persist(&path).map_err(|e| OutputError::Io {
                path: path.clone(),
                source: e.error,
            })?;
        }
        Ok(())
    }
}

/// Appends a sighting to a written story's `.json`, atomically.
pub fn add_duplicate(output_dir: &Path, stem: &Path, dup: &Duplicate) -> Result<(), OutputError> {
    let path = output_dir.join(stem).with_extension("json");
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let mut v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| OutputError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let entry = serde_json::to_value(dup).map_err(|e| OutputError::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    match v.get_mut("duplicates").and_then(|d| d.as_array_mut()) {
        Some(list) => {
            // The same sighting twice (a re-polled feed) is recorded once.
            if list
                .iter()
                .any(|d| d.get("url") == entry.get("url") && d.get("feed") == entry.get("feed"))
            {
                return Ok(());
            }
            list.push(entry)
        }
        None => {
            if let Some(o) = v.as_object_mut() {
                o.insert("duplicates".into(), serde_json::Value::Array(vec![entry]));
            }
        }
    }
    let out = serde_json::to_vec_pretty(&v).map_err(|e| OutputError::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    // Staged at the top of output_dir (see the module doc). A story directory
    // on another file system (a symlinked feed) cannot take that rename: fall
    // back to a temp file beside the story.
    match write_atomic_via(output_dir, &path, &out) {
        Err(OutputError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::CrossesDevices =>
        {
            write_atomic(&path, &out)?
        }
        r => r?,
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Removes a story's files (used to undo a write the state store never recorded).
pub fn remove_story(output_dir: &Path, stem: &Path) {
    let base = output_dir.join(stem);
    let _ = std::fs::remove_file(base.with_extension("txt"));
    let _ = std::fs::remove_file(base.with_extension("json"));
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_atomic_via(path.parent().unwrap_or(Path::new(".")), path, bytes)
}

/// Writes `bytes` to a temp file in `tmp_dir` (same file system as `path`),
/// fsyncs it and renames it to `path`.
fn write_atomic_via(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_temp(tmp_dir, path, bytes, true)?
        .persist(path)
        .map_err(|e| OutputError::Io {
            path: path.to_path_buf(),
            source: e.error,
        })
}

/// Writes `bytes` to a new temp file in `tmp_dir`, fsynced with `sync`;
/// `path` is what the file is for (messages).
fn write_temp(
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
    sync: bool,
) -> Result<tempfile::TempPath, OutputError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // tempfile creates 0600 files; a story is an ordinary file whose mode
    // the umask decides (UMask=0027 in the unit: readable by its group).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(tmp_dir).map_err(io(path))?;
    tmp.write_all(bytes).map_err(io(path))?;
    if sync {
        tmp.as_file().sync_all().map_err(io(path))?;
    }
    Ok(tmp.into_temp_path())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Deletes stale temp files left in `dir` by a crash.
/// Only files older than `min_age` go: instances sharing `output_dir` must
/// not take each other's writes in progress.
pub fn clean_temp(dir: &Path, min_age: std::time::Duration) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if min_age.is_zero() || age >= min_age {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_titles_make_safe_names() {
        let d = DateTime::parse_from_rfc3339("2026-11-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = story_stem("world", d, "../../etc/passwd", "abc123");
        assert_eq!(p, PathBuf::from("world/2026/11/05/etc-passwd-abc123"));
        let emoji = "😀".repeat(300);
        assert_eq!(slug(&emoji), "story");
        let long = "ü".repeat(300);
        let s = slug(&long);
        assert_eq!(s.chars().count(), SLUG_CHARS);
        assert!(s.len() < 200);
        // 4-byte letters (CJK Extension B): bounded in bytes, not only chars.
        let wide = slug(&"\u{20000}".repeat(300));
        assert!(
            wide.len() <= SLUG_BYTES && !wide.is_empty(),
            "{}",
            wide.len()
        );
        let name = format!("{wide}-0123456789ab.json");
        assert!(name.len() <= 255, "{}", name.len());
        assert_eq!(slug("Hello, World!  Again"), "hello-world-again");
        assert_eq!(slug("日本語 ニュース"), "日本語-ニュース");
        // Found by proptest: lowercasing 'İ' adds a combining dot (U+0307).
        assert_eq!(slug("İstanbul İ"), "istanbul-i");
    }

    #[test]
    fn writes_pair_and_appends_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let stem = PathBuf::from("f/2026/11/05/x-1");
        let meta = StoryMeta {
            id: "1".into(),
            url: "http://a/x".into(),
            canonical_url: "http://a/x".into(),
            feed: "f".into(),
            title: "X".into(),
            author: None,
            published: None,
            fetched_at: Utc::now(),
            words: 2,
            lang: None,
            duplicates: vec![],
        };
        write_story(dir.path(), &stem, "X\n\nhello there\n", &meta).unwrap();
        let dup = Duplicate {
            url: "http://b/x".into(),
            feed: "g".into(),
            seen_at: Utc::now(),
            matched_by: None,
            similarity: None,
        };
        add_duplicate(dir.path(), &stem, &dup).unwrap();
        add_duplicate(dir.path(), &stem, &dup).unwrap();
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("f/2026/11/05/x-1.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(v["duplicates"].as_array().unwrap().len(), 1);
        let leftovers = std::fs::read_dir(dir.path().join("f/2026/11/05"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 2);
        // The rewrite's temp file (at the top of output_dir) is gone too.
        let top: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(top, vec![std::ffi::OsString::from("f")]);
    }

    mod props {
        use super::*;
        use chrono::TimeZone;
        use proptest::prelude::*;
        use std::path::Component;

        /// Any Unicode, plus titles built from what breaks file names:
        /// separators, dot segments, NUL, combining marks, 4-byte letters.
        fn titles() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "(\\.\\./|/|\\\\|\\x00|\\.|-| |\\p{L}|\\p{M}|\\p{N}|[\u{10000}-\u{10FFFF}]|İ|ß|ﬃ){0,200}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever the title and date, a story's files stay inside
            /// output_dir, under its feed's directory, with UTF-8 names of
            /// at most 255 bytes per component (extension included).
            #[test]
            fn story_paths_stay_inside_output_dir_and_bounded(
                feed in "[A-Za-z0-9_][A-Za-z0-9._-]{0,63}",
                title in titles(),
                secs in -8_000_000_000_000i64..8_000_000_000_000i64,
                key in any::<u64>(),
            ) {
                let date = Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
                let id = format!("{:012x}", key >> 16);
                let stem = story_stem(&feed, date, &title, &id);
                let out = Path::new("/srv/gleaner/out");
                for ext in ["txt", "json"] {
                    let path = out.join(&stem).with_extension(ext);
                    prop_assert!(path.starts_with(out.join(&feed)), "{}", path.display());
                    let rel = path.strip_prefix(out).unwrap();
                    prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{}", rel.display());
                    prop_assert_eq!(rel.components().count(), 5);
                    prop_assert!(rel.to_str().is_some());
                    for c in rel.components() {
                        let len = c.as_os_str().len();
                        prop_assert!(len <= 255, "{} bytes: {:?}", len, c);
                    }
                    let tail = format!("-{id}.{ext}");
                    prop_assert!(rel.to_string_lossy().ends_with(&tail));
                }
            }

            /// A slug is letters and digits of any script in single-dash
            /// separated words, never empty, bounded in chars and bytes.
            #[test]
            fn slugs_are_plain_words(title in titles()) {
                let s = slug(&title);
                prop_assert!(!s.is_empty());
                prop_assert!(s.chars().count() <= SLUG_CHARS && s.len() <= SLUG_BYTES, "{}", s);
                prop_assert!(s.chars().all(|c| c.is_alphanumeric() || c == '-'), "{:?}", s);
                prop_assert!(!s.starts_with('-') && !s.ends_with('-') && !s.contains("--"), "{:?}", s);
                prop_assert_eq!(slug(&s), s.clone(), "not stable");
            }
        }
    }
}
