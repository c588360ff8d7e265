//! Feed parsing and item normalisation: `feed::parse` on arbitrary bytes,
//! then what the pipeline derives from each item (keys, canonical link,
//! file name). Asserts the items are as clean as `feed` promises.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(base) = url::Url::parse("https://news.example.org/feeds/world.xml") else {
        return;
    };
    let Ok(feed) = gleaner::feed::parse(data, &base) else {
        return;
    };
    for item in &feed.items {
        for (what, text, max) in [
            ("title", Some(item.title.as_str()), 300),
            ("guid", item.guid.as_deref(), 1024),
            ("author", item.author.as_deref(), 200),
        ] {
            let Some(text) = text else { continue };
            assert!(text.chars().count() <= max, "{what} too long");
            assert!(
                !text.chars().any(|c| c.is_control()),
                "{what} has control characters: {text:?}"
            );
            assert_eq!(text, text.trim(), "{what} not trimmed");
        }
        let _ = gleaner::dedupe::item_key("world", item);
        if let Some(link) = &item.link {
            let c = gleaner::dedupe::canonical_url(link);
            assert_eq!(gleaner::dedupe::canonical_url(&c), c);
        }
        let stem = gleaner::output::story_stem(
            "world",
            item.published.unwrap_or_default(),
            &item.title,
            "0123456789ab",
        );
        assert!(stem.starts_with("world"));
        assert!(stem
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_))));
    }
});
