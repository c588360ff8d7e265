//! `gleaner check --config FILE` and config error handling.

use std::ffi::OsStr;

use crate::common::*;

fn check(td: &TestDir) -> RunResult {
    let cfg = td.config_path();
    td.run(&[OsStr::new("check"), OsStr::new("--config"), cfg.as_os_str()])
}

#[test]
fn unknown_top_level_key_names_file_line_and_key() {
    let td = TestDir::new();
    td.write_config_text(
        "output_dir = \"out\"\n\
         state_dir = \"state\"\n\
         \n\
         bogus = true\n\
         \n\
         [[feed]]\n\
         name = \"alpha\"\n\
         url = \"http://127.0.0.1:9/feed.xml\"\n",
    );
    let run = check(&td);
    assert_eq!(run.code, Some(2), "unknown key must exit 2\n{run}");
    assert!(
        run.stderr.contains("gleaner.toml:4"),
        "stderr should name file and line as `gleaner.toml:4:...`\n{run}"
    );
    assert!(
        run.stderr.contains("bogus"),
        "stderr should name the key `bogus`\n{run}"
    );
}

#[test]
fn unknown_key_inside_feed_table_names_its_line() {
    let td = TestDir::new();
    td.write_config_text(
        "output_dir = \"out\"\n\
         state_dir = \"state\"\n\
         \n\
         [[feed]]\n\
         name = \"alpha\"\n\
         url = \"http://127.0.0.1:9/a.xml\"\n\
         \n\
         [[feed]]\n\
         name = \"beta\"\n\
         url = \"http://127.0.0.1:9/b.xml\"\n\
         colour = \"blue\"\n",
    );
    let run = check(&td);
    assert_eq!(run.code, Some(2), "unknown feed key must exit 2\n{run}");
    assert!(
        run.stderr.contains("gleaner.toml:11"),
        "stderr should point at gleaner.toml line 11\n{run}"
    );
    assert!(
        run.stderr.contains("colour"),
        "stderr should name the key `colour`\n{run}"
    );
}

#[test]
fn wrong_type_for_url_exits_2() {
    let td = TestDir::new();
    td.write_config_text(
        "output_dir = \"out\"\n\
         state_dir = \"state\"\n\
         \n\
         [[feed]]\n\
         name = \"alpha\"\n\
         url = 42\n",
    );
    let run = check(&td);
    assert_eq!(run.code, Some(2), "`url = 42` must exit 2\n{run}");
    assert!(
        run.stderr.contains("gleaner.toml"),
        "stderr should name the file\n{run}"
    );
    assert!(
        run.stderr.contains("url"),
        "stderr should name the key `url`\n{run}"
    );
    assert!(
        run.stderr.contains("gleaner.toml:6"),
        "stderr should point at line 6\n{run}"
    );
}

#[test]
fn duplicate_feed_name_exits_2() {
    let td = TestDir::new();
    td.write_config_text(
        "output_dir = \"out\"\n\
         state_dir = \"state\"\n\
         \n\
         [[feed]]\n\
         name = \"city-desk\"\n\
         url = \"http://127.0.0.1:9/a.xml\"\n\
         \n\
         [[feed]]\n\
         name = \"city-desk\"\n\
         url = \"http://127.0.0.1:9/b.xml\"\n",
    );
    let run = check(&td);
    assert_eq!(run.code, Some(2), "duplicate feed name must exit 2\n{run}");
    assert!(
        run.stderr.contains("city-desk"),
        "stderr should name the duplicated feed\n{run}"
    );
    assert!(
        run.stderr.contains("gleaner.toml"),
        "stderr should name the file\n{run}"
    );
}

#[test]
fn valid_config_check_exits_0_and_prints_resolved_config() {
    let td = TestDir::new();
    td.write_config(&[
        ("harbour-times", "http://127.0.0.1:9/harbour.rss"),
        ("valley-gazette", "http://127.0.0.1:9/valley.atom"),
    ]);
    let run = check(&td);
    assert_eq!(run.code, Some(0), "valid config must pass\n{run}");
    for name in ["harbour-times", "valley-gazette"] {
        assert!(
            run.stdout.contains(name),
            "stdout should list feed {name}\n{run}"
        );
    }
    assert!(
        run.stdout.contains("http://127.0.0.1:9/harbour.rss"),
        "stdout should show the feed URLs\n{run}"
    );
    // Relative dirs resolve against the config file's directory, not the cwd.
    let out = td.out_dir();
    assert!(
        run.stdout.contains(&*out.to_string_lossy()),
        "resolved output_dir {} should be printed\n{run}",
        out.display()
    );
    let state = td.state_dir();
    assert!(
        run.stdout.contains(&*state.to_string_lossy()),
        "resolved state_dir {} should be printed\n{run}",
        state.display()
    );
}

#[test]
fn missing_config_file_exits_2_naming_the_path() {
    let td = TestDir::new();
    let missing = td.root.join("nowhere").join("missing-gleaner.toml");
    for cmd in ["check", "fetch"] {
        let run = td.run(&[OsStr::new(cmd), OsStr::new("--config"), missing.as_os_str()]);
        assert_eq!(
            run.code,
            Some(2),
            "`{cmd}` with a missing config must exit 2\n{run}"
        );
        assert!(
            run.stderr.contains("missing-gleaner.toml"),
            "`{cmd}`: stderr should name the missing path {}\n{run}",
            missing.display()
        );
    }
}

#[test]
fn fetch_with_bad_config_exits_2() {
    let td = TestDir::new();
    td.write_config_text("output_dir = \"out\"\nstate_dir = \"state\"\nbogus = 1\n");
    let cfg = td.config_path();
    let run = td.run(&[OsStr::new("fetch"), OsStr::new("--config"), cfg.as_os_str()]);
    assert_eq!(
        run.code,
        Some(2),
        "fetch with an invalid config must exit 2\n{run}"
    );
    assert!(
        run.stderr.contains("bogus"),
        "stderr should name the key\n{run}"
    );
    assert!(
        !td.out_dir().exists() || walk_files(&td.out_dir()).is_empty(),
        "nothing should be written with an invalid config"
    );
}

#[test]
fn fetch_with_unusable_state_dir_exits_2() {
    let td = TestDir::new();
    // state_dir points at a regular file.
    std::fs::write(td.conf_dir.join("state"), b"not a directory").unwrap();
    td.write_config(&[("alpha", "http://127.0.0.1:9/a.xml")]);
    let run = td.fetch();
    assert_eq!(
        run.code,
        Some(2),
        "an unusable state_dir must exit 2\n{run}"
    );
    assert!(
        run.stderr.contains("state"),
        "stderr should mention the state dir\n{run}"
    );
}

/// `check` on `text`: exit 2, and stderr holds each of `needles`.
fn assert_rejected(text: &str, needles: &[&str]) -> RunResult {
    let td = TestDir::new();
    td.write_config_text(text);
    let run = check(&td);
    assert_eq!(run.code, Some(2), "must be rejected:\n{text}\n{run}");
    for n in needles {
        assert!(run.stderr.contains(n), "stderr should hold {n:?}\n{run}");
    }
    run
}

#[test]
fn invalid_value_is_reported_at_its_own_table_and_line() {
    // A feed's valid `interval` (line 7) comes before the invalid
    // `[schedule] interval` (line 10): the error is about line 10.
    let run = assert_rejected(
        "output_dir = \"out\"\n\
         state_dir = \"state\"\n\
         \n\
         [[feed]]\n\
         name = \"alpha\"\n\
         url = \"http://127.0.0.1:9/a.xml\"\n\
         interval = \"10m\"\n\
         \n\
         [schedule]\n\
         interval = \"0s\"\n",
        &["gleaner.toml:10:1:", "interval", "[schedule]"],
    );
    assert!(!run.stderr.contains("gleaner.toml:7:"), "{run}");

    // A per-feed `interval = "0s"` points at that key, not at the feed's name.
    assert_rejected(
        "output_dir = \"out\"\n\
         state_dir = \"state\"\n\
         \n\
         [[feed]]\n\
         name = \"alpha\"\n\
         url = \"http://127.0.0.1:9/a.xml\"\n\
         \n\
         [[feed]]\n\
         name = \"beta\"\n\
         url = \"http://127.0.0.1:9/b.xml\"\n\
         interval = \"0s\"\n",
        &["gleaner.toml:11:1:", "feed `beta`", "interval"],
    );

    // The same key name in two tables: the one that is wrong is named.
    assert_rejected(
        "output_dir = \"out\"\n\
         state_dir = \"state\"\n\
         [schedule]\n\
         jitter = 0.2\n\
         [state]\n\
         lease = \"10m\"\n\
         [fetch]\n\
         timeout = \"0s\"\n",
        &["gleaner.toml:8:1:", "`timeout` in [fetch]"],
    );
}

#[test]
fn missing_output_dir_says_to_add_it() {
    let run = assert_rejected(
        "state_dir = \"state\"\n\n[[feed]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/a.xml\"\n",
        &[
            "missing key `output_dir`",
            "add e.g. `output_dir = ",
            "hint: add it",
        ],
    );
    // Not blamed on the key that happens to be on line 1.
    assert!(!run.stderr.contains("key `state_dir`"), "{run}");
    assert!(!run.stderr.contains("fix that line"), "{run}");

    assert_rejected(
        "output_dir = \"out\"\n",
        &["missing key `state_dir`", "add e.g. `state_dir = "],
    );
}

#[test]
fn size_caps_and_limits_that_would_make_gleaner_useless_are_rejected() {
    let base = "output_dir = \"out\"\nstate_dir = \"state\"\n";
    for (table, line, key) in [
        ("fetch", "max_feed_bytes = 0", "max_feed_bytes"),
        ("fetch", "max_feed_bytes = 100", "max_feed_bytes"),
        ("fetch", "max_page_bytes = 0", "max_page_bytes"),
        ("fetch", "concurrency = 0", "concurrency"),
        ("fetch", "per_host = 0", "per_host"),
        ("fetch", "timeout = \"0s\"", "timeout"),
        ("fetch", "connect_timeout = \"0s\"", "connect_timeout"),
        ("fetch", "page_attempts = 0", "page_attempts"),
        ("fetch", "user_agent = \"\"", "user_agent"),
        ("schedule", "min_interval = \"0s\"", "min_interval"),
        ("schedule", "error_backoff = \"0s\"", "error_backoff"),
        ("state", "connections = 0", "connections"),
        ("state", "lease = \"0s\"", "lease"),
    ] {
        let text = format!("{base}[{table}]\n{line}\n");
        assert_rejected(
            &text,
            &["gleaner.toml:4:1:", &format!("`{key}` in [{table}]")],
        );
    }
    // The smallest sensible cap is accepted.
    let td = TestDir::new();
    td.write_config_text(&format!("{base}[fetch]\nmax_feed_bytes = 1024\n"));
    let run = check(&td);
    assert_eq!(run.code, Some(0), "{run}");
}

#[test]
fn a_default_made_invalid_by_another_key_points_at_that_key() {
    // max_interval keeps its default (12h); the culprit is min_interval.
    assert_rejected(
        "output_dir = \"out\"\nstate_dir = \"state\"\n[schedule]\nmin_interval = \"1day\"\n",
        &["gleaner.toml:4:1:", "max_interval", "min_interval"],
    );
}

#[test]
fn unreadable_config_hint_does_not_claim_it_holds_no_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let td = TestDir::new();
    let cfg = td.write_config(&[]);
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o000)).unwrap();
    let Some(run) = crate::firstrun::run_unprivileged(
        &td,
        &[OsStr::new("check"), OsStr::new("--config"), cfg.as_os_str()],
    ) else {
        return;
    };
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("Permission denied"), "{run}");
    assert!(run.stderr.contains("hint:"), "{run}");
    assert!(!run.stderr.contains("no secrets"), "{run}");
    assert!(run.stderr.contains("password"), "{run}");
}
