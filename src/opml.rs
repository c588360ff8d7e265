//! OPML, the feed-list format other readers export and import:
//! `gleaner import-opml` turns one into `[[feed]]` entries, `gleaner
//! export-opml` writes the config's feeds as one.
//!
//! Pure: bytes in, values or text out; the binary reads and writes files.
//! An OPML file comes from elsewhere, so nothing in it is trusted: titles
//! become feed names only through the same rules `config` enforces (ASCII
//! letters, digits, `-`, `_`, `.`; at most 64 characters; unique), URLs must
//! be http(s) with a host (a list of feeds never makes gleaner read a local
//! file), and text that lands in a TOML comment loses its control characters.

use quick_xml::events::{BytesStart, Event};
use url::Url;

use crate::config::Feed;

/// Longest feed name `config` accepts.
const MAX_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum OpmlError {
    #[error("not well-formed XML at byte {position}: {message}")]
    Xml { position: u64, message: String },
    #[error("not an OPML file: no <opml> element")]
    NotOpml,
}

/// One feed outline of an OPML file, as written there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlFeed {
    /// `title`, else `text`; may be empty.
    pub title: String,
    /// `xmlUrl`, trimmed.
    pub url: String,
    /// Titles of the folder outlines around it, outermost first.
    pub folders: Vec<String>,
}

/// Every feed outline (one with an `xmlUrl`) in an OPML document.
pub fn parse(bytes: &[u8]) -> Result<Vec<OpmlFeed>, OpmlError> {
    let text = decode(bytes);
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut feeds = Vec::new();
    // Folder titles of open outlines; `None` for an open feed outline.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut seen_opml = false;
    loop {
        let event = reader.read_event().map_err(|e| OpmlError::Xml {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "opml" => {
                seen_opml = true;
            }
            Event::Start(e) if is_outline(&e) => {
                let o = outline(&e);
                match o.url {
                    Some(url) => {
                        feeds.push(feed(o.title, url, &stack));
                        stack.push(None);
                    }
                    None => stack.push(Some(o.title)),
                }
            }
            Event::Empty(e) if is_outline(&e) => {
                let o = outline(&e);
                if let Some(url) = o.url {
                    feeds.push(feed(o.title, url, &stack));
                }
            }
            Event::End(e) if e.local_name().as_ref() == "outline" => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_opml {
        return Err(OpmlError::NotOpml);
    }
    Ok(feeds)
}

/// The document as text: UTF-8 (BOM dropped), or the encoding its XML
/// declaration names; bytes that do not decode become U+FFFD.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
    let label = head.split("encoding=").nth(1).and_then(|rest| {
        rest.trim_start_matches(['"', '\''])
            .split(['"', '\''])
            .next()
    });
    match label.and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes())) {
        Some(enc) if enc != encoding_rs::UTF_8 => {
            enc.decode_without_bom_handling(bytes).0.into_owned()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn is_outline(e: &BytesStart<'_>) -> bool {
    e.local_name().as_ref() == "outline"
}

struct Outline {
    title: String,
    url: Option<String>,
}

fn outline(e: &BytesStart<'_>) -> Outline {
    let (mut title, mut text, mut url) = (None, None, None);
    for attr in e.attributes().flatten() {
        let Ok(value) = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0) else {
            continue;
        };
        let value = value.trim().to_string();
        // Readers disagree on case (`xmlUrl`, `xmlurl`, `XMLURL`).
        match attr.key.local_name().as_ref().to_ascii_lowercase().as_str() {
            "title" => title = Some(value),
            "text" => text = Some(value),
            "xmlurl" if !value.is_empty() => url = Some(value),
            _ => {}
        }
    }
    Outline {
        title: title.filter(|t| !t.is_empty()).or(text).unwrap_or_default(),
        url,
    }
}

fn feed(title: String, url: String, stack: &[Option<String>]) -> OpmlFeed {
    OpmlFeed {
        title,
        url,
        folders: stack
            .iter()
            .flatten()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
    }
}

/// A feed ready for the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub url: Url,
    /// The OPML title and folders, for a comment.
    pub note: String,
}

/// What an import makes of an OPML file's feeds.
#[derive(Debug, Clone, Default)]
pub struct Import {
    pub entries: Vec<Entry>,
    /// Feeds left out: (URL as written, why).
    pub skipped: Vec<(String, String)>,
}

/// Turns OPML feeds into config entries next to the `existing` feeds:
/// names valid and unique (against `existing` too), URLs http(s) only,
/// feeds already in the config or listed twice left out.
pub fn import(feeds: &[OpmlFeed], existing: &[Feed]) -> Import {
    let mut out = Import::default();
    let mut names: Vec<String> = existing.iter().map(|f| f.name.clone()).collect();
    let mut urls: Vec<Url> = existing.iter().map(|f| f.url.clone()).collect();
    for f in feeds {
        let url = match feed_url(&f.url) {
            Ok(u) => u,
            Err(why) => {
                out.skipped.push((f.url.clone(), why));
                continue;
            }
        };
        if urls.contains(&url) {
            let why = if existing.iter().any(|e| e.url == url) {
                "already in the config"
            } else {
                "listed twice"
            };
            out.skipped.push((f.url.clone(), why.to_string()));
            continue;
        }
        let name = unique(&base_name(&f.title, &url), &names);
        let mut note = clean_comment(&f.title);
        if !f.folders.is_empty() {
            let folders: Vec<String> = f.folders.iter().map(|t| clean_comment(t)).collect();
            note = format!("{note} [{}]", folders.join(" / "));
        }
        names.push(name.clone());
        urls.push(url.clone());
        out.entries.push(Entry {
            name,
            url,
            note: note.trim().to_string(),
        });
    }
    out
}

/// The entries as `[[feed]]` tables, each after a comment with its title.
pub fn to_toml(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        if !e.note.is_empty() {
            s.push_str(&format!("# {}\n", e.note));
        }
        s.push_str(&format!(
            "[[feed]]\nname = {}\nurl = {}\n\n",
            toml::Value::String(e.name.clone()),
            toml::Value::String(e.url.to_string())
        ));
    }
    s
}

/// An OPML 2.0 document listing `feeds` (name as title, URL as `xmlUrl`).
pub fn export(feeds: &[Feed], title: &str) -> String {
    use quick_xml::escape::escape;
    let mut s =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n");
    s.push_str(&format!(
        "  <head>\n    <title>{}</title>\n  </head>\n  <body>\n",
        escape(title)
    ));
    for f in feeds {
        let name = escape(f.name.as_str());
        s.push_str(&format!(
            "    <outline type=\"rss\" text=\"{name}\" title=\"{name}\" xmlUrl=\"{}\"/>\n",
            escape(f.url.as_str())
        ));
    }
    s.push_str("  </body>\n</opml>\n");
    s
}

/// An OPML `xmlUrl` as a URL gleaner polls: http(s) with a host.
/// `feed:` URLs (an old convention for "subscribe to this") are unwrapped.
fn feed_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    let lower = raw.to_ascii_lowercase();
    let unwrapped = if lower.starts_with("feed:http://") || lower.starts_with("feed:https://") {
        raw[5..].to_string()
    } else if lower.starts_with("feed://") {
        format!("http://{}", &raw[7..])
    } else {
        raw.to_string()
    };
    let url = Url::parse(&unwrapped).map_err(|e| format!("not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        "http" | "https" => Err("URL has no host".to_string()),
        s => Err(format!(
            "scheme `{s}` is not imported (http and https only)"
        )),
    }
}

/// A name from the title (lower case, words joined by `-`), else from the
/// URL's host; never empty, never starting with `.` or `-`.
fn base_name(title: &str, url: &Url) -> String {
    let from_title = slug(title);
    if !from_title.is_empty() {
        return from_title;
    }
    let host = url.host_str().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    let from_host = slug(host);
    if from_host.is_empty() {
        "feed".to_string()
    } else {
        from_host
    }
}

/// ASCII letters and digits kept (lower-cased), `.` and `_` kept between
/// them, anything else a single `-`; trimmed to `MAX_NAME - 4` so that a
/// `-NNN` suffix still fits.
fn slug(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        let after_word = s.ends_with(|p: char| p.is_ascii_alphanumeric());
        if c.is_ascii_alphanumeric() || ((c == '.' || c == '_') && after_word) {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let mut s: String = s.chars().take(MAX_NAME - 4).collect();
    while s.ends_with(['-', '.', '_']) {
        s.pop();
    }
    s
}

/// `base`, or `base-2`, `base-3`, ... : the first not in `taken`.
fn unique(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_string();
    }
    (2u32..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !taken.iter().any(|t| t == c))
        .unwrap_or_else(|| base.to_string())
}

/// Text safe inside a one-line TOML comment: control characters (a newline
/// would end the comment and start TOML) become spaces, length is bounded.
fn clean_comment(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="BBC News - World" title="BBC News - World"
               xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml" htmlUrl="https://www.bbc.co.uk/news/world"/>
      <outline type="rss" text="Le Monde &amp; International" xmlurl="https://www.lemonde.fr/international/rss_full.xml"/>
      <outline text="Nested">
        <outline type="rss" text="新闻" xmlUrl="https://www.example.cn/rss"/>
      </outline>
    </outline>
    <outline type="rss" text="BBC News - World" xmlUrl="feed://feeds.bbci.co.uk/news/world/rss2.xml"/>
    <outline type="rss" text="Local" xmlUrl="file:///etc/passwd"/>
    <outline type="rss" text="Twice" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
    <outline type="rss" text=".hidden/../../x" XMLURL="http://x.example/a"></outline>
  </body>
</opml>"#;

    #[test]
    fn parses_nested_outlines_and_attribute_case() {
        let feeds = parse(SAMPLE.as_bytes()).unwrap();
        let urls: Vec<&str> = feeds.iter().map(|f| f.url.as_str()).collect();
        assert_eq!(urls.len(), 7, "{urls:?}");
        assert_eq!(feeds[1].title, "Le Monde & International");
        assert_eq!(feeds[2].folders, vec!["News", "Nested"]);
        assert!(feeds[3].folders.is_empty());
    }

    #[test]
    fn import_makes_valid_unique_names_and_skips_bad_urls() {
        let existing = vec![Feed::new(
            "bbc-news-world",
            Url::parse("https://other.example/rss").unwrap(),
        )];
        let imp = import(&parse(SAMPLE.as_bytes()).unwrap(), &existing);
        let names: Vec<&str> = imp.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "bbc-news-world-2",
                "le-monde-international",
                "example.cn",
                "bbc-news-world-3",
                "hidden-x",
            ]
        );
        assert_eq!(
            imp.entries[3].url.as_str(),
            "http://feeds.bbci.co.uk/news/world/rss2.xml"
        );
        assert_eq!(imp.skipped.len(), 2, "{:?}", imp.skipped);
        assert!(imp.skipped[0].1.contains("file"));
        assert_eq!(imp.skipped[1].1, "listed twice");
        // The entries are a valid config.
        let text = format!(
            "output_dir = \"o\"\nstate_dir = \"s\"\n{}",
            to_toml(&imp.entries)
        );
        let cfg = crate::config::parse(&text, std::path::Path::new("/x/g.toml")).unwrap();
        assert_eq!(cfg.feeds.len(), 5);
        assert!(text.contains("# 新闻 [News / Nested]\n"), "{text}");
    }

    #[test]
    fn long_and_hostile_titles_stay_within_the_rules() {
        let f = |title: &str| OpmlFeed {
            title: title.into(),
            url: "https://a.example/rss".into(),
            folders: vec![],
        };
        let long = "word ".repeat(40);
        let imp = import(&[f(&long), f("x\ny = 1\n[[feed]]")], &[]);
        assert!(imp.entries[0].name.len() <= MAX_NAME);
        assert_eq!(imp.skipped[0].1, "listed twice");
        let imp = import(&[f("x\ny = 1\n[[feed]]")], &[]);
        assert_eq!(imp.entries[0].name, "x-y-1-feed");
        let text = to_toml(&imp.entries);
        assert!(text.starts_with("# x y = 1 [[feed]]\n[[feed]]\n"), "{text}");
        let many: Vec<String> = (0..300).map(|_| "same".to_string()).collect();
        assert_eq!(unique("same", &many[..1]), "same-2");
    }

    #[test]
    fn export_round_trips() {
        let feeds = vec![
            Feed::new("a&b", Url::parse("https://x.example/rss?a=1&b=2").unwrap()),
            Feed::new("world", Url::parse("http://y.example/w.xml").unwrap()),
        ];
        let xml = export(&feeds, "gleaner <feeds>");
        assert!(
            xml.contains("xmlUrl=\"https://x.example/rss?a=1&amp;b=2\""),
            "{xml}"
        );
        let back = parse(xml.as_bytes()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].title, "a&b");
        assert_eq!(back[0].url, "https://x.example/rss?a=1&b=2");
    }

    #[test]
    fn rejects_non_opml_and_broken_xml() {
        assert!(matches!(parse(b"<rss></rss>"), Err(OpmlError::NotOpml)));
        assert!(matches!(
            parse(b"<opml><body><outline></body>"),
            Err(OpmlError::Xml { .. })
        ));
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><opml><body><outline text=\"Caf\xe9\" xmlUrl=\"http://c.example/\"/></body></opml>";
        assert_eq!(parse(latin1).unwrap()[0].title, "Café");
    }
}
