//! Feed bytes to items: RSS 0.9x/1.0/2.0, Atom and JSON Feed via feed-rs.
//!
//! Items come out normalised: absolute links (relative ones resolved against
//! the feed URL), titles without control characters and bounded in length,
//! and `guid` only when the feed really had one (feed-rs invents ids for items
//! without; an invented id must not count as identity).

use chrono::{DateTime, Utc};
use url::Url;

/// Titles longer than this are cut: they end up in file names and logs.
const MAX_TITLE_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("not a valid RSS, Atom or JSON feed: {0}")]
    Parse(String),
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
}

/// Parses a feed fetched from `feed_url`.
pub fn parse(bytes: &[u8], feed_url: &Url) -> Result<ParsedFeed, FeedError> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(feed_url.as_str()))
        // An empty id marks "the feed gave none"; see Item::guid.
        .id_generator(|_, _, _| String::new())
        .sanitize_content(false)
        .build();
    let feed = parser
        .parse(bytes)
        .map_err(|e| FeedError::Parse(e.to_string()))?;
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
    })
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
            if n >= max {
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
    fn titles_are_one_bounded_line() {
        assert_eq!(clean_line("a\u{0}b\n  c\td", 100), "a b c d");
        assert_eq!(clean_line(&"x".repeat(1000), 300).chars().count(), 300);
    }
}
