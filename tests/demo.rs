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
