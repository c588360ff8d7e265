//! The bundled offline demo and the shipped example config, as a new user
//! meets them.

use std::path::{Path, PathBuf};

use crate::common::testdir::{walk_files, TestDir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_tree(from: &Path, to: &Path) {
    for f in walk_files(from) {
        let rel = f.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

const BOILERPLATE: &[&str] = &[
    "Download our app",
    "Available for Android and iOS",
    "For more news your way",
    "Accept all",
    "cookies",
    "Share this article",
    "All rights reserved",
    "Related stories",
    "newsletter",
];

#[test]
fn demo_config_writes_clean_stories_and_one_copy_of_the_syndicated_story() {
    let t = TestDir::new();
    copy_tree(&repo().join("config/demo"), &t.conf_dir.join("demo"));
    let text = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    t.write_config_text(&text);

    let r = t.fetch();
    assert_eq!(r.code, Some(0), "{r}");
    // demo.toml writes to ../demo-output relative to the config.
    let out = t.root.join("demo-output/articles");
    let txts: Vec<PathBuf> = walk_files(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    assert_eq!(
        txts.len(),
        12,
        "12 stories (13 items, one a syndicated copy): {txts:?}\n{r}"
    );
    for p in &txts {
        let body = std::fs::read_to_string(p).unwrap();
        for b in BOILERPLATE {
            assert!(!body.contains(b), "{} contains {b:?}:\n{body}", p.display());
        }
        assert!(
            body.split("\n\n").count() >= 4,
            "{} has too little text",
            p.display()
        );
    }

    // The AFP story reached both outlets: whichever feed the pass finished
    // first is written, the other copy is listed in its duplicates.
    let seed = txts
        .iter()
        .find(|p| p.to_string_lossy().contains("after-long-silence"));
    let copy = txts
        .iter()
        .find(|p| p.to_string_lossy().contains("islamic-state-releases"));
    let (written, other_feed, other_page) = match (seed, copy) {
        (Some(s), None) => (s, "wire", "is-leader-recording.html"),
        (None, Some(c)) => (c, "world", "baghdadi-audio.html"),
        _ => panic!("exactly one copy of the syndicated story must be written: {txts:?}"),
    };
    if let Some(seed) = seed {
        // The seed story: exactly its paragraphs, footer gone.
        let got = std::fs::read_to_string(seed).unwrap();
        let want = std::fs::read_to_string(repo().join("tests/data/seed-body.txt")).unwrap();
        assert_eq!(
            got,
            format!("After long silence, IS says chief calls on jihadists to ‘resist’\n\n{want}")
        );
    }
    // README: "written once ... `world/2026/11/05/after-long-silence-…` or
    // `wire/2026/11/05/islamic-state-releases-…`".
    let rel = written.strip_prefix(&out).unwrap().to_string_lossy();
    assert!(
        rel.starts_with("world/2026/11/05/after-long-silence-")
            || rel.starts_with("wire/2026/11/05/islamic-state-releases-"),
        "{rel}"
    );
    // Every place the README's "Two commands" points at exists, whichever
    // copy of the syndicated story this pass wrote.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let two = readme.split("## Two commands").nth(1).unwrap();
    let two = &two[..two.find("\n## ").unwrap()];
    let pointers: Vec<&str> = two
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|p| p.starts_with("demo-output/"))
        .collect();
    assert!(pointers.len() >= 2, "{pointers:?}");
    for p in pointers {
        assert!(
            t.root.join(p).exists(),
            "README points at {p}, which the demo did not write"
        );
    }
    assert_eq!(txts.len(), 12, "README: \"lists all 12 stories\"");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(written.with_extension("json")).unwrap()).unwrap();
    let dups = meta["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 1, "{meta}");
    assert_eq!(dups[0]["feed"], other_feed);
    assert!(
        dups[0]["url"].as_str().unwrap().ends_with(other_page),
        "{meta}"
    );
    assert_eq!(dups[0]["matched_by"], "text", "{meta}");

    // A second pass over unchanged local feeds writes nothing new.
    let before = walk_files(&out).len();
    let r2 = t.fetch();
    assert_eq!(r2.code, Some(0), "{r2}");
    assert_eq!(walk_files(&out).len(), before, "{r2}");
    assert!(r2.stdout.contains("0 new"), "{r2}");
}

#[test]
fn extract_prints_the_seed_page_exactly() {
    let t = TestDir::new();
    let page = repo().join("config/demo/pages/baghdadi-audio.html");
    let r = t.run(&[std::ffi::OsStr::new("extract"), page.as_os_str()]);
    assert_eq!(r.code, Some(0), "{r}");
    let want = std::fs::read_to_string(repo().join("tests/data/seed-body.txt")).unwrap();
    assert_eq!(r.stdout, want);
}

/// The example config documents every key with its default: `check` on it
/// must print exactly its settings, so the two cannot drift apart.
#[test]
fn example_config_matches_the_defaults() {
    let t = TestDir::new();
    let example = repo().join("config/gleaner.example.toml");
    let r = t.run(&[
        std::ffi::OsStr::new("check"),
        std::ffi::OsStr::new("--config"),
        example.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let settings = |s: &str| -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "feed = []")
            .map(str::to_string)
            .collect()
    };
    let text = std::fs::read_to_string(&example).unwrap();
    // `check` prints paths resolved against the config's directory.
    let sites = repo().join("config/sites");
    let text = text.replace(
        "sites_dir = \"sites\"",
        &format!("sites_dir = {:?}", sites.display().to_string()),
    );
    assert_eq!(settings(&r.stdout), settings(&text));
}

/// `(table, key) -> value` for every key of the example config, set or
/// commented out (`# key = value`); table "" is the top level.
fn example_keys() -> std::collections::BTreeMap<(String, String), (String, bool)> {
    let text = std::fs::read_to_string(repo().join("config/gleaner.example.toml")).unwrap();
    let mut table = String::new();
    let mut keys = std::collections::BTreeMap::new();
    for line in text.lines() {
        let (commented, body) = match line.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let body = body.trim_end();
        if body.starts_with('[') && body.ends_with(']') {
            table = body.trim_matches(['[', ']']).to_string();
            continue;
        }
        let Some((key, value)) = body.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let value = value.trim().to_string();
        let old = keys.insert((table.clone(), key.to_string()), (value, !commented));
        assert!(old.is_none(), "[{table}] {key} twice in the example");
    }
    keys
}

/// `(table, key) -> default cell` of the README's Configuration reference.
fn readme_reference() -> std::collections::BTreeMap<(String, String), String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("\n### Reference\n")
        .expect("README has a Configuration reference");
    let section = &readme[start + 1..];
    let end = section.find("\n## ").unwrap_or(section.len());
    let mut table: Option<String> = None;
    let mut rows = std::collections::BTreeMap::new();
    for line in section[..end].lines() {
        if line.starts_with("Top level") {
            table = Some(String::new());
        } else if let Some(rest) = line.strip_prefix("`[") {
            let name = rest.split(']').next().unwrap().trim_matches('[');
            table = Some(name.to_string());
        } else if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split(" | ").collect();
            let key = cells[0].trim_end_matches('`').to_string();
            let default = cells[1].trim().to_string();
            let t = table
                .clone()
                .unwrap_or_else(|| panic!("README row {key:?} before any table line"));
            let old = rows.insert((t.clone(), key.clone()), default);
            assert!(old.is_none(), "README lists [{t}] {key} twice");
        }
    }
    rows
}

/// The README's Configuration reference and the example config list the
/// same keys (issue #8: they must not drift), with the same defaults.
#[test]
fn readme_configuration_reference_matches_the_example_config() {
    let example = example_keys();
    let readme = readme_reference();
    assert!(example.len() > 30, "{example:?}");
    let name = |(t, k): &(String, String)| {
        if t.is_empty() {
            k.clone()
        } else {
            format!("[{t}] {k}")
        }
    };
    let missing: Vec<String> = example
        .keys()
        .filter(|k| !readme.contains_key(*k))
        .map(name)
        .collect();
    assert!(
        missing.is_empty(),
        "in config/gleaner.example.toml but not in README.md's Configuration reference: {missing:?}"
    );
    let extra: Vec<String> = readme
        .keys()
        .filter(|k| !example.contains_key(*k))
        .map(name)
        .collect();
    assert!(
        extra.is_empty(),
        "in README.md's Configuration reference but not in config/gleaner.example.toml: {extra:?}"
    );
    for (key, (value, set)) in &example {
        if *set {
            assert_eq!(
                readme[key],
                format!("`{value}`"),
                "default of {} differs between README.md and the example",
                name(key)
            );
        }
    }
}

/// README's command to run the tests is exactly what `.ci/run` runs.
#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let after = readme
        .split_once("Run the whole test suite:\n\n```sh\n")
        .expect("README names the test command")
        .1;
    let command = after.lines().next().unwrap().trim();
    assert!(command.starts_with("cargo test"), "{command}");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let runs: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo test"))
        .collect();
    assert_eq!(
        runs,
        [command],
        ".ci/run must run the README's test command"
    );
}
