//! `gleaner extract [--url BASE] [--out-dir DIR] INPUT...`

use std::ffi::OsStr;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::common::*;

/// Every expected paragraph is its own block (blank-line separated), in
/// order; no boilerplate anywhere.
fn assert_extracted(text: &str, paras: &[String], ctx: &str) {
    let bl: Vec<String> = blocks(text)
        .into_iter()
        .map(|b| b.trim().to_string())
        .collect();
    let mut pos = 0;
    for p in paras {
        match bl[pos..].iter().position(|b| b == p) {
            Some(i) => pos += i + 1,
            None => panic!(
                "{ctx}: paragraph missing, altered or out of order:\n  {p:?}\nblocks:\n{bl:#?}"
            ),
        }
    }
    assert_no_boilerplate(text, ctx);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn extract_html_file_prints_clean_text() {
    let td = TestDir::new();
    let paras = paragraphs(0);
    let page = article_page("Harbour Bridge Reopens After Repairs", &paras, None);
    let path = td.write_file("pages/harbour-bridge.html", page);

    let run = td.run(&[OsStr::new("extract"), path.as_os_str()]);
    assert_eq!(run.code, Some(0), "extract of a file\n{run}");
    assert_extracted(&run.stdout, &paras, "extract file");
}

#[test]
fn extract_gz_file_prints_clean_text() {
    let td = TestDir::new();
    let paras = paragraphs(9);
    let page = article_page("Archive Story Resurfaces", &paras, None);
    let path = td.write_file("pages/archive.html.gz", gzip(page.as_bytes()));

    let run = td.run(&[OsStr::new("extract"), path.as_os_str()]);
    assert_eq!(run.code, Some(0), "extract of a .gz file\n{run}");
    assert_extracted(&run.stdout, &paras, "extract .gz");
}

#[test]
fn extract_from_stdin() {
    let td = TestDir::new();
    let paras = paragraphs(2);
    let page = article_page("Piped Story", &paras, None);

    let run = td.run_with_stdin(&["extract", "-"], Some(page.as_bytes()));
    assert_eq!(run.code, Some(0), "extract -\n{run}");
    assert_extracted(&run.stdout, &paras, "extract stdin");
}

#[test]
fn extract_from_stdin_with_base_url() {
    let td = TestDir::new();
    let paras = paragraphs(3);
    let page = article_page("Based Story", &paras, None);

    let run = td.run_with_stdin(
        &[
            "extract",
            "--url",
            "https://news.example.com/2024/03/based-story",
            "-",
        ],
        Some(page.as_bytes()),
    );
    assert_eq!(run.code, Some(0), "extract --url BASE -\n{run}");
    assert_extracted(&run.stdout, &paras, "extract stdin with --url");
}

#[test]
fn extract_out_dir_writes_one_txt_per_input_named_by_stem() {
    let td = TestDir::new();
    let inputs = [
        ("in/one.html", 5usize, false),
        ("in/two.htm", 6, false),
        ("in/three.html.gz", 7, true),
        ("in/four.gz", 8, true),
    ];
    let mut args = vec![
        "extract".to_string(),
        "--out-dir".to_string(),
        td.root.join("texts").to_string_lossy().into_owned(),
    ];
    for (rel, body, gz) in &inputs {
        let page = article_page(&format!("Story number {body}"), &paragraphs(*body), None);
        let bytes = if *gz {
            gzip(page.as_bytes())
        } else {
            page.into_bytes()
        };
        let p = td.write_file(rel, bytes);
        args.push(p.to_string_lossy().into_owned());
    }
    let run = td.run(&args);
    assert_eq!(run.code, Some(0), "extract --out-dir\n{run}");

    let out = td.root.join("texts");
    let mut names: Vec<String> = walk_files(&out)
        .iter()
        .map(|p| p.strip_prefix(&out).unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["four.txt", "one.txt", "three.txt", "two.txt"],
        "--out-dir should hold exactly <stem>.txt per input\n{run}"
    );
    for (stem, body) in [("one", 5usize), ("two", 6), ("three", 7), ("four", 8)] {
        let text = std::fs::read_to_string(out.join(format!("{stem}.txt"))).unwrap();
        assert!(text.ends_with('\n'), "{stem}.txt should end with a newline");
        assert_extracted(&text, &paragraphs(body), &format!("{stem}.txt"));
        // No cross-talk between inputs.
        for (_, other, _) in &inputs {
            if *other != body {
                let first = &paragraphs(*other)[0];
                assert!(
                    !text.contains(first.as_str()),
                    "{stem}.txt contains text of input #{other}"
                );
            }
        }
    }
}

#[test]
fn extract_from_http_url() {
    let server = TestServer::start();
    let td = TestDir::new();
    let paras = paragraphs(4);
    server.route_fixed(
        "/remote/page",
        Response::html(article_page("Remote Page", &paras, None)),
    );

    let run = td.run(&["extract".to_string(), server.url("/remote/page")]);
    assert_eq!(run.code, Some(0), "extract URL\n{run}");
    assert_eq!(
        server.hits("/remote/page"),
        1,
        "the URL should be fetched once\n{}",
        server.log_summary()
    );
    assert_extracted(&run.stdout, &paras, "extract URL");
}

#[test]
fn extract_windows_1252_file_with_meta_charset() {
    let td = TestDir::new();
    let paras: Vec<String> = vec![
        "The caf\u{e9} on the corner reopened, and its owner says it\u{2019}s the best cr\u{e8}me br\u{fb}l\u{e9}e \
         in town, a claim the queue outside on a cold morning seems to support."
            .to_string(),
        "Ren\u{e9}e trained in Lyon and returned after twelve years abroad; the fa\u{e7}ade has been \
         repainted in its original green and a terrace is planned for the spring."
            .to_string(),
        "Prices start at \u{20ac}4 for a pastry, and the menu changes daily depending on what the market \
         has to offer, the owner said, adding that nothing is frozen."
            .to_string(),
    ];
    let html = article_page_with(&PageOpts {
        title: "Caf\u{e9} Reopens",
        byline: "Staff",
        paragraphs: &paras,
        canonical: None,
        meta_charset: Some("windows-1252"),
        lang: "en",
    });
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&html);
    assert!(!unmappable);
    let path = td.write_file("pages/cafe.html", &bytes[..]);
    let run = td.run(&[OsStr::new("extract"), path.as_os_str()]);
    assert_eq!(run.code, Some(0), "extract windows-1252 file\n{run}");
    assert!(
        !run.stdout.contains('\u{FFFD}'),
        "replacement characters in output\n{run}"
    );
    assert_extracted(&run.stdout, &paras, "extract windows-1252");
}

#[test]
fn extract_missing_input_fails_naming_it() {
    let td = TestDir::new();
    let missing = td.root.join("does-not-exist.html");
    let run = td.run(&[OsStr::new("extract"), missing.as_os_str()]);
    assert_ne!(
        run.code,
        Some(0),
        "extract of a missing file must fail\n{run}"
    );
    assert!(
        run.stderr.contains("does-not-exist.html"),
        "stderr should name the input\n{run}"
    );
}

#[test]
fn article_prose_mentioning_promo_words_is_kept() {
    // Short article paragraphs may contain words that also appear in site
    // chrome ("most popular", "newsletter"); they are still article text.
    let td = TestDir::new();
    let paras: Vec<String> = vec![
        "The bakery on Station Road opened in May and its rye sourdough is now the most popular loaf in the district, outselling the supermarket brand two to one.".to_string(),
        "Owner Lena Fischer said she had expected to sell forty loaves a day at most. By the autumn the ovens were running from three in the morning to keep up.".to_string(),
        "The parish council will list road closures for the coming resurfacing work in its weekly newsletter, delivered to every household on Fridays.".to_string(),
        "Work on the high street is expected to last six weeks, and the bakery plans to open a hatch on the side lane so that customers can still reach it.".to_string(),
    ];
    let page = article_page("Sourdough Bakery Wins Over the High Street", &paras, None);
    let path = td.write_file("pages/bakery.html", page);
    let run = td.run(&[OsStr::new("extract"), path.as_os_str()]);
    assert_eq!(run.code, Some(0), "extract\n{run}");
    assert_extracted(&run.stdout, &paras, "prose with promo words");
}

#[test]
fn one_failing_input_does_not_stop_the_others_and_is_named() {
    let server = TestServer::start();
    let td = TestDir::new();
    let (p1, p2) = (paragraphs(11), paragraphs(12));
    let good_file = td.write_file(
        "pages/good.html",
        article_page("Good Local Page", &p1, None),
    );
    server.route_fixed(
        "/good/page",
        Response::html(article_page("Good Remote Page", &p2, None)),
    );
    server.route_fixed("/gone/page", Response::status(404));
    let missing = td.root.join("pages/missing.html");
    let (bad_url, good_url) = (server.url("/gone/page"), server.url("/good/page"));
    let args = [
        good_file.to_string_lossy().into_owned(),
        bad_url.clone(),
        missing.to_string_lossy().into_owned(),
        good_url.clone(),
    ];

    // Printing: both good inputs are printed, each failure names its input.
    let mut cmd = vec!["extract".to_string()];
    cmd.extend(args.iter().cloned());
    let run = td.run(&cmd);
    assert_eq!(
        run.code,
        Some(0),
        "two of four inputs extracted: reported, not fatal\n{run}"
    );
    // Several inputs: each text under a `==> INPUT <==` line.
    let texts: String = run
        .stdout
        .lines()
        .map(|l| if l.starts_with("==> ") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    assert_extracted(&texts, &p1, "good file beside failures");
    assert_extracted(&texts, &p2, "good URL after failures");
    assert!(
        run.stdout.contains(&format!("==> {} <==", args[0])),
        "{run}"
    );
    assert!(run.stdout.contains(&format!("==> {good_url} <==")), "{run}");
    assert!(!run.stdout.contains(&bad_url), "{run}");
    let line_with = |needle: &str| run.stderr.lines().find(|l| l.contains(needle));
    let url_err = line_with(&bad_url).unwrap_or_else(|| panic!("404 URL not named\n{run}"));
    assert!(url_err.contains("404"), "{run}");
    assert!(
        line_with(&missing.to_string_lossy()).is_some(),
        "missing file not named\n{run}"
    );
    assert!(run.stderr.contains("2 of 4 inputs failed"), "{run}");

    // --out-dir: the good inputs are written, nothing for the failures.
    let out = td.root.join("texts");
    let mut cmd = vec![
        "extract".to_string(),
        "--out-dir".to_string(),
        out.to_string_lossy().into_owned(),
    ];
    cmd.extend(args.iter().cloned());
    let run = td.run(&cmd);
    assert_eq!(run.code, Some(0), "{run}");
    let mut names: Vec<String> = walk_files(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Both URLs have the stem `page`: the failed one keeps its name, so the
    // names do not depend on which inputs fail.
    assert_eq!(names, ["good.txt", "page-2.txt"], "{run}");
    assert_extracted(
        &std::fs::read_to_string(out.join("page-2.txt")).unwrap(),
        &p2,
        "page.txt",
    );
    assert!(line_with(&bad_url).is_some(), "{run}");
}

#[test]
fn every_input_failing_exits_1_naming_each() {
    let server = TestServer::start();
    let td = TestDir::new();
    server.route_fixed("/a", Response::status(404));
    let missing = td.root.join("nope.html");
    let run = td.run(&[
        "extract".to_string(),
        server.url("/a"),
        missing.to_string_lossy().into_owned(),
    ]);
    assert_eq!(run.code, Some(1), "nothing extracted\n{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert!(run.stderr.contains(&server.url("/a")), "{run}");
    assert!(run.stderr.contains("nope.html"), "{run}");
}

#[test]
fn out_dir_gives_inputs_with_the_same_stem_distinct_deterministic_names() {
    let td = TestDir::new();
    // d3's own stem is `x-2`, so the second `x` skips that name.
    let inputs = [
        ("d1/x.html", 13usize),
        ("d2/x.html", 14),
        ("d3/x-2.html", 15),
        ("d4/x.html.gz", 16),
    ];
    let mut paths = Vec::new();
    for (rel, n) in inputs {
        let page = article_page(&format!("Story {n}"), &paragraphs(n), None);
        let bytes = if rel.ends_with(".gz") {
            gzip(page.as_bytes())
        } else {
            page.into_bytes()
        };
        paths.push(td.write_file(rel, bytes).to_string_lossy().into_owned());
    }
    let out = td.root.join("texts");
    let mut args = vec![
        "extract".to_string(),
        "--out-dir".to_string(),
        out.to_string_lossy().into_owned(),
    ];
    args.extend(paths.iter().cloned());
    let want = [
        ("x.txt", 13usize),
        ("x-3.txt", 14),
        ("x-2.txt", 15),
        ("x-4.txt", 16),
    ];
    for round in 0..2 {
        // The second run over the same inputs gives the same names.
        let run = td.run(&args);
        assert_eq!(run.code, Some(0), "round {round}\n{run}");
        let mut names: Vec<String> = walk_files(&out)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["x-2.txt", "x-3.txt", "x-4.txt", "x.txt"],
            "round {round}\n{run}"
        );
        for (name, n) in want {
            let text = std::fs::read_to_string(out.join(name)).unwrap();
            assert_extracted(&text, &paragraphs(n), name);
        }
        // Each renamed input is named with its file name on stderr.
        assert!(
            run.stderr
                .contains(&format!("{}: written as x-3.txt", paths[1])),
            "{run}"
        );
        assert!(
            run.stderr
                .contains(&format!("{}: written as x-4.txt", paths[3])),
            "{run}"
        );
    }
}

#[test]
fn extract_help_says_how_same_stem_inputs_are_named() {
    let td = TestDir::new();
    let run = td.run(&["extract", "--help"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("<stem>-2.txt"), "{run}");
}

/// The HTML parser's notes on broken markup are about the page: they do not
/// reach stderr (a daemon would log one per page).
#[test]
fn parser_notes_on_broken_markup_stay_off_stderr() {
    let td = TestDir::new();
    let paras = paragraphs(4);
    let page = article_page("Council Tables the Budget", &paras, None).replace(
        "</body>",
        "<table><div>A stray block inside a table.</div><tr><td>cell</td></tr></table></body>",
    );
    let path = td.write_file("pages/foster.html", page);

    let run = td.run(&[OsStr::new("extract"), path.as_os_str()]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_extracted(&run.stdout, &paras, "misnested table");
    assert!(!run.stderr.contains("foster"), "{run}");
    assert!(run.stderr.trim().is_empty(), "{run}");
}
