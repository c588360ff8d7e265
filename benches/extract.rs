//! Extraction speed: `cargo bench --bench extract [-- DIR]`.
//!
//! DIR holds `html/*.html.gz` (default `../shared/bench/extraction`, relative to
//! the package root, which is where cargo runs benches). Pages are gunzipped and
//! decoded up front (untimed), one untimed warm-up pass follows, then
//! `extract(&html, None)` is timed over all pages on this thread, 3 runs; the
//! median is printed. Plain std timing, no criterion.
use std::hint::black_box;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

const RUNS: usize = 3;

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/bench/extraction"));
    let html_dir = if dir.join("html").is_dir() {
        dir.join("html")
    } else {
        dir.clone()
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&html_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", html_dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".html.gz"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no *.html.gz in {}", html_dir.display());

    let pages: Vec<String> = paths
        .iter()
        .map(|p| {
            let gz = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            gleaner::charset::decode(&bytes, None)
        })
        .collect();
    let n = pages.len();

    // Warm-up (untimed).
    for html in &pages {
        black_box(gleaner::extract::extract(black_box(html), None));
    }

    let mut secs = Vec::with_capacity(RUNS);
    for run in 1..=RUNS {
        let t = Instant::now();
        for html in &pages {
            black_box(gleaner::extract::extract(black_box(html), None));
        }
        let s = t.elapsed().as_secs_f64();
        println!("  run {run}: {s:.3} s, {:.1} pages/s", n as f64 / s);
        secs.push(s);
    }
    secs.sort_by(f64::total_cmp);
    let med = secs[RUNS / 2];
    println!(
        "gleaner: {n} pages, {med:.3} s, {:.1} pages/s",
        n as f64 / med
    );
}
