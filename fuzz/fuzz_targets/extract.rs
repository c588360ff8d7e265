//! HTML extraction: `charset::decode` (with one of a few Content-Type
//! headers, picked by the first byte) then `extract::extract`, as the
//! pipeline runs them on a fetched page.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("text/html; charset=utf-8"),
    Some("text/html; charset=iso-8859-1"),
    Some("text/html; charset=shift_jis"),
    Some("text/html; charset=utf-16le"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let ct = CONTENT_TYPES[pick as usize % CONTENT_TYPES.len()];
    let html = gleaner::charset::decode(bytes, ct);
    let Ok(base) = url::Url::parse("https://news.example.org/world/2026/11/05/story.html") else {
        return;
    };
    let article = gleaner::extract::extract(&html, Some(&base));
    let body = article.body();
    let _ = article.words();
    for b in &article.blocks {
        assert!(!b.text.trim().is_empty(), "empty block");
    }
    let _ = gleaner::dedupe::Signature::of(&body);
});
