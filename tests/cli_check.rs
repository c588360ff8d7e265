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
