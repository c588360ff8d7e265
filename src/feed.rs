//! Feed bytes to items: RSS 0.9x/1.0/2.0, Atom and JSON Feed via feed-rs.
//!
//! Items come out normalised: absolute links (relative ones resolved against
//! the feed URL), titles without control characters and bounded in length,
//! and `guid` only when the feed really had one (feed-rs invents ids for items
//! without; an invented id must not count as identity).
//!
//! Hostile feeds are bounded before feed-rs sees them: at most `MAX_ITEMS`
//! items are read, DTDs declaring external, parameter or nested entities
//! (XXE, billion laughs) are refused, and a UTF-8 feed with a few invalid
//! bytes is read with U+FFFD in their place instead of failing whole.

use chrono::{DateTime, Utc};
use url::Url;

/// Titles longer than this are cut: they end up in file names and logs.
const MAX_TITLE_CHARS: usize = 300;

/// Items read from one feed; the rest are dropped before parsing. Real
/// feeds carry tens of items, archives a few thousand. feed-rs holds every
/// item in memory at about 1.5 KB whatever its size in the document:
/// 300,000 bare `<item>`s (a 10 MB feed, within the default cap) took
/// 400 MB, 3.5 million `{}` items of a JSON Feed 2.5 GB. Feeds list the
/// newest first, so the first ones are kept.
pub const MAX_ITEMS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("not a valid RSS, Atom or JSON feed: {0}")]
    Parse(String),
    #[error("feed refused: {0}")]
    Hostile(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub guid: Option<String>,
    pub link: Option<Url>,
    pub title: String,
    pub published: Option<DateTime<Utc>>,
    pub author: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFeed {
    pub title: Option<String>,
    /// RSS `<ttl>` in minutes, a hint for the scheduler.
    pub ttl_minutes: Option<u32>,
    pub items: Vec<Item>,
    /// Items past `MAX_ITEMS`, dropped unread.
    pub items_ignored: usize,
}

/// Parses a feed fetched from `feed_url`.
pub fn parse(bytes: &[u8], feed_url: &Url) -> Result<ParsedFeed, FeedError> {
    // feed-rs never expands declared entities (it keeps `&name;` as text),
    // so these are harmless to us; refusing them still tells the operator
    // that the feed is hostile instead of printing `&lol9;` in a title.
    if let Some(why) = hostile_dtd(bytes) {
        return Err(FeedError::Hostile(why));
    }
    let limited = limit_items(bytes, MAX_ITEMS);
    let (bytes, items_ignored) = match &limited {
        Some((b, dropped)) => (b.as_slice(), *dropped),
        None => (bytes, 0),
    };
    let parser = || {
        feed_rs::parser::Builder::new()
            .base_uri(Some(feed_url.as_str()))
            // An empty id marks "the feed gave none"; see Item::guid.
            .id_generator(|_, _, _| String::new())
            .sanitize_content(false)
            .build()
    };
    let feed = match parser().parse(bytes) {
        Ok(feed) => feed,
        // One invalid byte in a UTF-8 feed fails the whole document in the
        // XML reader ("no root element"): read it again with U+FFFD for the
        // bad bytes rather than lose every item. With a fresh parser: one
        // that failed inside an item keeps that item's MediaRSS state and
        // panics on the next item (found by fuzzing).
        Err(e) if std::str::from_utf8(bytes).is_err() && declares_utf8(bytes) => {
            let fixed = String::from_utf8_lossy(bytes);
            parser()
                .parse(fixed.as_bytes())
                .map_err(|_| FeedError::Parse(e.to_string()))?
        }
        Err(e) => return Err(FeedError::Parse(e.to_string())),
    };
    let items = feed
        .entries
        .into_iter()
        .map(|e| {
            // Relative links resolve against the feed (feed-rs does not for JSON Feed).
            let link = pick_link(&e.links).and_then(|h| feed_url.join(h.trim()).ok());
            let guid = Some(clean_line(&e.id, 1024)).filter(|g| !g.is_empty());
            let title = e
                .title
                .map(|t| clean_line(&strip_tags(&t.content), MAX_TITLE_CHARS))
                .unwrap_or_default();
            Item {
                guid,
                link,
                title,
                published: e.published.or(e.updated),
                author: e
                    .authors
                    .first()
                    .and_then(|p| p.name.as_deref().map(|n| clean_line(n, 200)))
                    .filter(|a| !a.is_empty()),
                summary: e.summary.map(|s| s.content),
            }
        })
        .collect();
    Ok(ParsedFeed {
        title: feed.title.map(|t| clean_line(&t.content, MAX_TITLE_CHARS)),
        ttl_minutes: feed.ttl,
        items,
        items_ignored,
    })
}

/// Entity declarations no real feed needs: external entities (XXE, reading
/// local files or URLs), parameter entities, and entities whose text refers
/// to other entities (the "billion laughs" expansion bomb). Plain ones like
/// `<!ENTITY nbsp "&#160;">` pass. Only the internal DTD subset of the
/// prolog is looked at, so this costs nothing on ordinary feeds.
fn hostile_dtd(bytes: &[u8]) -> Option<&'static str> {
    let subset = String::from_utf8_lossy(dtd_subset(bytes)?);
    for decl in subset.split("<!ENTITY").skip(1) {
        let decl = decl.trim_start();
        if decl.starts_with('%') {
            return Some("its DTD declares an XML parameter entity");
        }
        let rest = decl
            .trim_start_matches(|c: char| !c.is_whitespace())
            .trim_start();
        if rest.starts_with("SYSTEM") || rest.starts_with("PUBLIC") {
            return Some("its DTD declares an external XML entity (XXE)");
        }
        let Some(q) = rest.chars().next().filter(|&c| c == '"' || c == '\'') else {
            continue;
        };
        let value = rest[1..].split(q).next().unwrap_or("");
        let refers = value.contains('%')
            || value
                .split('&')
                .skip(1)
                .any(|after| !after.starts_with('#'));
        if refers {
            return Some(
                "its DTD declares XML entities that expand to other entities (billion laughs)",
            );
        }
    }
    None
}

/// The internal subset (`[...]`) of a `<!DOCTYPE>` in the prolog, if any.
fn dtd_subset(bytes: &[u8]) -> Option<&[u8]> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    loop {
        rest = rest.trim_ascii_start();
        if rest.starts_with(b"<?") {
            rest = &rest[find(rest, b"?>")? + 2..];
        } else if rest.starts_with(b"<!--") {
            rest = &rest[find(rest, b"-->")? + 3..];
        } else if rest.starts_with(b"<!DOCTYPE") {
            let open = rest.iter().position(|&b| b == b'[' || b == b'>')?;
            if rest[open] == b'>' {
                return None; // external DTD only (RSS 0.91's): nothing declared here
            }
            let subset = &rest[open + 1..];
            let end = find(subset, b"]>")
                .or_else(|| subset.iter().rposition(|&b| b == b']'))
                .unwrap_or(subset.len());
            return Some(&subset[..end]);
        } else {
            return None;
        }
    }
}

/// Whether a feed is meant to be UTF-8: JSON, or XML without a BOM for
/// another encoding and without an `encoding=` naming another one.
fn declares_utf8(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return false;
    }
    let head = &bytes[..bytes.len().min(200)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let decl = match (head.find("<?xml"), head.find("?>")) {
        (Some(a), Some(b)) if a < b => &head[a..b],
        _ => return true,
    };
    match decl.split_once("encoding") {
        None => true,
        Some((_, rest)) => {
            let v = rest.trim_start_matches(|c: char| c == '=' || c.is_whitespace());
            let v = v.trim_start_matches(['"', '\'']);
            v.starts_with("utf-8") || v.starts_with("utf8")
        }
    }
}

/// The feed with only its first `max` items, and how many were dropped;
/// `None` when it has no more than `max` (or is not recognisably a feed:
/// the parser reports that).
fn limit_items(bytes: &[u8], max: usize) -> Option<(Vec<u8>, usize)> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => limit_json(body, max),
        Some(b'<') => limit_xml(body, max),
        _ => None,
    }
}

/// XML: items are `<item>` (RSS) or, under a `<feed>` root, `<entry>`
/// (Atom), with or without a namespace prefix. The items past `max` are cut
/// out from the start of item `max + 1` to the end of the last item, so the
/// closing tags of the document stay. A cheap scan of the tags, not a parse.
fn limit_xml(bytes: &[u8], max: usize) -> Option<(Vec<u8>, usize)> {
    let name_at = |at: usize| {
        let n = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'))
            .count();
        let name = &bytes[at..at + n];
        let local = name.rsplit(|&b| b == b':').next().unwrap_or(name);
        (local, at + n)
    };
    let mut item: &[u8] = b"";
    let (mut count, mut cut, mut last_end) = (0usize, None, None);
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'<') {
        let at = i + off;
        let closing = bytes.get(at + 1) == Some(&b'/');
        let (local, end) = name_at(at + 1 + usize::from(closing));
        i = end.max(at + 1);
        if local.is_empty() {
            continue; // `<?`, `<!`, or not a tag
        }
        if item.is_empty() {
            // The root element decides what an item is.
            item = if local == b"feed" { b"entry" } else { b"item" };
            continue;
        }
        if local != item {
            continue;
        }
        let gt = bytes[end..]
            .iter()
            .position(|&b| b == b'>')
            .map(|p| end + p);
        if closing {
            last_end = gt.map(|g| g + 1).or(last_end);
        } else if matches!(
            bytes.get(end),
            Some(b'>' | b'/') | Some(b' ' | b'\t' | b'\r' | b'\n')
        ) {
            count += 1;
            if count == max + 1 {
                cut = Some(at);
            }
            if let Some(g) = gt.filter(|&g| g > 0 && bytes[g - 1] == b'/') {
                last_end = Some(g + 1); // `<item/>`
            }
        }
    }
    let (cut, last_end) = (cut?, last_end?);
    if last_end <= cut {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() - (last_end - cut));
    out.extend_from_slice(&bytes[..cut]);
    out.extend_from_slice(&bytes[last_end..]);
    Some((out, count - max))
}

/// JSON Feed: the document again with `items` cut to `max`. The first pass
/// keeps `max` items as values and skips the rest without allocating; keys
/// JSON Feed does not define are skipped too (feed-rs ignores them).
fn limit_json(bytes: &[u8], max: usize) -> Option<(Vec<u8>, usize)> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    const KEYS: &[&str] = &[
        "version",
        "title",
        "home_page_url",
        "feed_url",
        "description",
        "user_comment",
        "next_url",
        "icon",
        "favicon",
        "author",
        "authors",
        "language",
        "expired",
        "hubs",
    ];
    struct Top(usize);
    struct Items(usize);
    impl<'de> DeserializeSeed<'de> for Top {
        type Value = (Map<String, Value>, usize);
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Top {
        type Value = (Map<String, Value>, usize);
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON Feed object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut out, mut total) = (Map::new(), 0);
            while let Some(key) = map.next_key::<String>()? {
                if key == "items" {
                    let (items, n) = map.next_value_seed(Items(self.0))?;
                    total = n;
                    out.insert(key, Value::Array(items));
                } else if KEYS.contains(&key.as_str()) {
                    let v: Value = map.next_value()?;
                    out.insert(key, v);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok((out, total))
        }
    }
    impl<'de> DeserializeSeed<'de> for Items {
        type Value = (Vec<Value>, usize);
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Items {
        type Value = (Vec<Value>, usize);
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of items")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let (mut kept, mut n) = (Vec::new(), 0);
            loop {
                if kept.len() < self.0 {
                    match seq.next_element::<Value>()? {
                        Some(v) => kept.push(v),
                        None => break,
                    }
                } else if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                n += 1;
            }
            Ok((kept, n))
        }
    }

    let mut de = serde_json::Deserializer::from_slice(bytes);
    let (top, total) = Top(max).deserialize(&mut de).ok()?;
    if total <= max {
        return None;
    }
    let out = serde_json::to_vec(&Value::Object(top)).ok()?;
    Some((out, total - max))
}

/// The article link: Atom's `alternate` (or rel-less) link first.
fn pick_link(links: &[feed_rs::model::Link]) -> Option<&str> {
    links
        .iter()
        .find(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .or_else(|| links.first())
        .map(|l| l.href.as_str())
}

/// One line of plain text: no control characters, whitespace collapsed, at
/// most `max` characters.
pub fn clean_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut n = 0;
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if n > 0 {
            // A space only when a letter of the next word fits after it: a
            // line cut at `max` must not end in a space (found by fuzzing).
            if n + 1 >= max {
                break;
            }
            out.push(' ');
            n += 1;
        }
        for c in word.chars() {
            if n >= max {
                break;
            }
            out.push(c);
            n += 1;
        }
    }
    out
}

/// Feed titles sometimes carry markup (`<b>`, entities already decoded by the
/// XML parser); keep the words.
fn strip_tags(s: &str) -> String {
    if !s.contains('<') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://news.example/feeds/world.rss").unwrap()
    }

    #[test]
    fn rss_items_with_and_without_guid() {
        let rss =
            br#"<?xml version="1.0"?><rss version="2.0"><channel><title>W</title><ttl>15</ttl>
            <item><title>One</title><link>/a/1.html</link><guid isPermaLink="false">g-1</guid>
            <pubDate>Tue, 10 Nov 2026 10:00:00 GMT</pubDate></item>
            <item><title>Two &amp; more</title><link>http://other.example/2</link></item>
            </channel></rss>"#;
        let f = parse(rss, &base()).unwrap();
        assert_eq!(f.ttl_minutes, Some(15));
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.items[0].guid.as_deref(), Some("g-1"));
        assert_eq!(
            f.items[0].link.as_ref().unwrap().as_str(),
            "http://news.example/a/1.html"
        );
        assert!(f.items[0].published.is_some());
        assert_eq!(f.items[1].guid, None);
        assert_eq!(f.items[1].title, "Two & more");
    }

    #[test]
    fn atom_and_json_feed() {
        let atom = br#"<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>x</id>
            <entry><id>tag:a,1</id><title>E</title><link rel="alternate" href="http://a.example/e"/>
            <updated>2026-11-10T10:00:00Z</updated><author><name>Ann</name></author></entry></feed>"#;
        let f = parse(atom, &base()).unwrap();
        assert_eq!(f.items[0].author.as_deref(), Some("Ann"));
        assert_eq!(f.items[0].guid.as_deref(), Some("tag:a,1"));
        let json = br#"{"version":"https://jsonfeed.org/version/1.1","title":"J",
            "items":[{"id":"j1","url":"http://j.example/1","title":"J one","date_published":"2026-11-10T10:00:00Z"}]}"#;
        let f = parse(json, &base()).unwrap();
        assert_eq!(
            f.items[0].link.as_ref().unwrap().as_str(),
            "http://j.example/1"
        );
    }

    #[test]
    fn malformed_feed_is_an_error() {
        assert!(parse(b"<html><body>not a feed</body></html>", &base()).is_err());
        assert!(parse(b"", &base()).is_err());
    }

    #[test]
    fn entity_bombs_and_external_entities_are_refused() {
        let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]><rss version="2.0"><channel><title>&lol1;</title></channel></rss>"#;
        let xxe = br#"<?xml version="1.0"?><!-- c --><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&xxe;</title></channel></rss>"#;
        let pe = br#"<!DOCTYPE rss [<!ENTITY % pe SYSTEM "http://evil/x.dtd"> %pe;]><rss/>"#;
        for (doc, want) in [
            (&laughs[..], "billion laughs"),
            (&xxe[..], "XXE"),
            (&pe[..], "parameter entity"),
        ] {
            let e = parse(doc, &base()).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // An external DTD and plain character entities are fine.
        let ok = br#"<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>T</title><item><title>A</title><link>http://a.example/1</link></item></channel></rss>"#;
        assert_eq!(parse(ok, &base()).unwrap().items.len(), 1);
        let plain = br#"<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]><rss version="2.0"><channel><title>T</title>
<item><title>A</title><link>http://a.example/1</link></item></channel></rss>"#;
        assert_eq!(parse(plain, &base()).unwrap().items.len(), 1);
    }

    #[test]
    fn long_feeds_keep_their_first_items() {
        let item =
            |i: usize| format!("<item><title>T{i}</title><link>http://a.example/{i}</link></item>");
        let mut rss =
            String::from("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>C</title>");
        for i in 0..25 {
            rss.push_str(&item(i));
        }
        rss.push_str("<item/></channel></rss>");
        let (cut, dropped) = limit_items(rss.as_bytes(), 10).unwrap();
        assert_eq!(dropped, 16);
        let f = parse(&cut, &base()).unwrap();
        assert_eq!(f.items.len(), 10);
        assert_eq!(f.items[9].title, "T9");
        assert!(limit_items(rss.as_bytes(), 26).is_none());

        let mut atom =
            String::from(r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>x</id>"#);
        for i in 0..5 {
            atom.push_str(&format!(r#"<entry><id>e{i}</id><title>E{i}</title><link href="http://a.example/{i}"/></entry>"#));
        }
        atom.push_str("</feed>");
        let (cut, dropped) = limit_items(atom.as_bytes(), 2).unwrap();
        assert_eq!(dropped, 3);
        assert_eq!(parse(&cut, &base()).unwrap().items.len(), 2);

        let items: Vec<String> = (0..7)
            .map(|i| format!(r#"{{"id":"j{i}","url":"http://j.example/{i}"}}"#))
            .collect();
        let json = format!(
            r#"{{"version":"https://jsonfeed.org/version/1.1","title":"J","_x":[1,2],"items":[{}]}}"#,
            items.join(",")
        );
        let (cut, dropped) = limit_items(json.as_bytes(), 3).unwrap();
        assert_eq!(dropped, 4);
        let f = parse(&cut, &base()).unwrap();
        assert_eq!(f.title.as_deref(), Some("J"));
        assert_eq!(f.items.len(), 3);
        assert!(limit_items(json.as_bytes(), 7).is_none());
    }

    #[test]
    fn one_bad_byte_does_not_lose_a_utf8_feed() {
        let mut rss = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>C</title><item><title>A ".to_vec();
        rss.extend_from_slice(&[0xff, 0xfe]);
        rss.extend_from_slice(b"</title><link>http://a.example/1</link></item></channel></rss>");
        let f = parse(&rss, &base()).unwrap();
        assert_eq!(f.items.len(), 1);
        assert!(f.items[0].title.starts_with("A "));
        assert!(declares_utf8(b"<rss/>") && declares_utf8(b"{}"));
        assert!(!declares_utf8(
            b"<?xml version='1.0' encoding='windows-1251'?><rss/>"
        ));
    }

    /// Fuzzing found it: a bad byte past the XML reader's first 8 KiB
    /// buffer fails the parse inside an item; the retry must not reuse that
    /// parser (feed-rs asserts on its leftover MediaRSS state).
    #[test]
    fn bad_byte_deep_inside_an_item_does_not_panic() {
        let mut rss = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><item><title>A</title><link>https://e.org/a</link><description>".to_vec();
        rss.extend(std::iter::repeat_n(b'x', 9000));
        rss.push(0xff);
        rss.extend_from_slice(b"</description></item><item><title>B</title><link>https://e.org/b</link></item></channel></rss>");
        let f = parse(&rss, &base()).unwrap();
        assert_eq!(f.items.len(), 2);
        assert_eq!(f.items[1].title, "B");
        // The fuzzer's own (minimised) input: malformed, so an error, not a panic.
        let found = include_bytes!("../tests/data/fuzz-regressions/feed-mediarss-retry.xml");
        assert!(parse(found, &base()).is_err());
    }

    #[test]
    fn titles_are_one_bounded_line() {
        assert_eq!(clean_line("a\u{0}b\n  c\td", 100), "a b c d");
        assert_eq!(clean_line(&"x".repeat(1000), 300).chars().count(), 300);
        assert_eq!(clean_line("ab cd", 3), "ab");
        assert_eq!(clean_line("ab cd", 4), "ab c");
    }
}
