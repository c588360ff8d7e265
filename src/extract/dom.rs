//! One walk over the parsed page: text blocks in document order, plus the
//! metadata found on the way (`<title>`, `<meta>`, canonical link, JSON-LD).
//!
//! The walk is iterative (no recursion: 100,000 nested elements must not
//! overflow the stack) and stops descending past `MAX_DEPTH`.

use ego_tree::iter::Edge;
use ego_tree::NodeId;
use scraper::node::Element;
use scraper::{Html, Node};

const MAX_DEPTH: usize = 400;
/// Text under one `<a>` beyond which, in two or more paragraphs, it is
/// prose, not a link.
const LINK_PROSE_CHARS: usize = 300;

/// What kind of block a run of text sits in, for scoring and rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    P,
    Heading(u8),
    Li,
    Pre,
    Cell,
    Div,
}

/// A run of inline text between two block boundaries.
#[derive(Debug, Clone)]
pub struct RawBlock {
    pub text: String,
    pub chars: usize,
    pub link_chars: usize,
    /// The nearest block-level element holding the text.
    pub node: NodeId,
    pub tag: Tag,
    /// Inside a `<blockquote>`.
    pub in_quote: bool,
}

#[derive(Debug, Default)]
pub struct Meta {
    pub title: Option<String>,
    pub lang: Option<String>,
    pub canonical: Option<String>,
    /// `<meta name|property|itemprop=... content=...>`, lowercase keys, first wins.
    pub metas: Vec<(String, String)>,
    pub ld_json: Vec<String>,
    pub time_datetime: Option<String>,
    pub h1: Vec<String>,
}

impl Meta {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metas
            .iter()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Elements whose content is never article text.
fn is_skipped(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "svg"
            | "math"
            | "iframe"
            | "object"
            | "embed"
            | "canvas"
            | "video"
            | "audio"
            | "select"
            | "option"
            | "button"
            | "input"
            | "textarea"
            | "dialog"
            | "map"
            | "picture"
            | "source"
            | "track"
            | "figcaption"
            | "label"
    )
}

/// Page-structure elements: dropped unless they hold most of the page's text
/// (some templates put the whole page in an `<aside>` or `<nav>`). A
/// `<figure>`'s text is its caption and credit, not the article's.
fn is_structural(name: &str) -> bool {
    matches!(name, "nav" | "aside" | "footer" | "menu" | "figure")
}

/// Text characters under each element, counted once before the walk.
fn text_sizes(doc: &Html) -> (std::collections::HashMap<NodeId, usize>, usize) {
    let mut sizes = std::collections::HashMap::new();
    let mut stack: Vec<(NodeId, usize)> = Vec::new();
    let mut skip: Option<NodeId> = None;
    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => {
                if skip.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Element(e) => {
                        if is_skipped(e.name()) || e.name() == "head" {
                            skip = Some(node.id());
                        } else {
                            stack.push((node.id(), 0));
                        }
                    }
                    Node::Text(t) => {
                        if let Some(top) = stack.last_mut() {
                            top.1 += t.trim().len();
                        }
                    }
                    _ => {}
                }
            }
            Edge::Close(node) => {
                if skip == Some(node.id()) {
                    skip = None;
                    continue;
                }
                if skip.is_some() || !node.value().is_element() {
                    continue;
                }
                if let Some((id, n)) = stack.pop() {
                    sizes.insert(id, n);
                    if let Some(parent) = stack.last_mut() {
                        parent.1 += n;
                    }
                }
            }
        }
    }
    let total = sizes
        .get(&doc.tree.root().id())
        .copied()
        .unwrap_or_else(|| {
            doc.tree
                .root()
                .children()
                .filter_map(|c| sizes.get(&c.id()))
                .sum()
        });
    (sizes, total)
}

fn is_inline(name: &str) -> bool {
    matches!(
        name,
        "a" | "abbr"
            | "b"
            | "bdi"
            | "bdo"
            | "cite"
            | "code"
            | "data"
            | "dfn"
            | "em"
            | "font"
            | "i"
            | "kbd"
            | "mark"
            | "q"
            | "rp"
            | "rt"
            | "ruby"
            | "s"
            | "samp"
            | "small"
            | "span"
            | "strong"
            | "sub"
            | "sup"
            | "time"
            | "u"
            | "var"
            | "wbr"
            | "img"
            | "strike"
            | "big"
            | "tt"
            | "nobr"
            | "del"
            | "ins"
            | "acronym"
    )
}

fn tag_of(name: &str) -> Tag {
    match name {
        "p" => Tag::P,
        "h1" => Tag::Heading(1),
        "h2" => Tag::Heading(2),
        "h3" => Tag::Heading(3),
        "h4" => Tag::Heading(4),
        "h5" => Tag::Heading(5),
        "h6" => Tag::Heading(6),
        "li" | "dt" | "dd" => Tag::Li,
        "pre" => Tag::Pre,
        "td" | "th" => Tag::Cell,
        _ => Tag::Div,
    }
}

/// `hidden`, `aria-hidden` on a container, or an inline `display:none`.
fn is_hidden(e: &Element) -> bool {
    if e.attr("hidden").is_some() {
        return true;
    }
    if let Some(style) = e.attr("style") {
        let s: String = style
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if s.contains("display:none") || s.contains("visibility:hidden") {
            return true;
        }
    }
    false
}

pub struct Walk {
    pub blocks: Vec<RawBlock>,
    pub meta: Meta,
    /// Text characters under each element (scripts and styles excluded).
    pub sizes: std::collections::HashMap<NodeId, usize>,
}

struct Frame {
    id: NodeId,
    tag: Tag,
}

/// Collects blocks and metadata. `skip` decides, per element and the share
/// of the page's text it holds, whether its whole subtree is boilerplate.
pub fn walk(doc: &Html, skip: &dyn Fn(NodeId, &Element, f64) -> bool) -> Walk {
    let (sizes, total) = text_sizes(doc);
    let share = |id: NodeId| sizes.get(&id).copied().unwrap_or(0) as f64 / total.max(1) as f64;
    // A link holding paragraphs of prose is an unclosed `<a>` that swallowed
    // the article (or a whole-story link): its text is not link text. A
    // teaser card (a title and a line) is shorter and has one paragraph.
    let holds_prose = |id: NodeId| {
        sizes.get(&id).is_some_and(|&n| n > LINK_PROSE_CHARS)
            && doc.tree.get(id).is_some_and(|a| {
                a.descendants()
                    .filter(|d| d.value().as_element().is_some_and(|e| e.name() == "p"))
                    .nth(1)
                    .is_some()
            })
    };
    let mut blocks = Vec::new();
    let mut meta = Meta::default();
    let mut stack: Vec<Frame> = vec![Frame {
        id: doc.tree.root().id(),
        tag: Tag::Div,
    }];
    let mut buf = String::new();
    let mut chars = 0usize;
    let mut link_chars = 0usize;
    let mut in_link = 0usize;
    let mut quote = 0usize;
    let mut pre = 0usize;
    let mut depth = 0usize;
    let mut skipping: Option<NodeId> = None;
    let mut in_h1: Option<String> = None;

    let flush = |buf: &mut String,
                 chars: &mut usize,
                 link_chars: &mut usize,
                 stack: &[Frame],
                 quote: usize,
                 blocks: &mut Vec<RawBlock>| {
        if *chars > 0 {
            let text = buf.trim().to_string();
            if !text.is_empty() {
                let (node, tag) = stack
                    .last()
                    .map_or((None, Tag::Div), |f| (Some(f.id), f.tag));
                if let Some(node) = node {
                    blocks.push(RawBlock {
                        chars: text.chars().count(),
                        text,
                        link_chars: *link_chars,
                        node,
                        tag,
                        in_quote: quote > 0,
                    });
                }
            }
        }
        buf.clear();
        *chars = 0;
        *link_chars = 0;
    };

    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => {
                if skipping.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Element(e) => {
                        depth += 1;
                        let name = e.name();
                        // Metadata lives in <head>, which the text walk skips.
                        match name {
                            "html" => {
                                meta.lang = e
                                    .attr("lang")
                                    .or_else(|| e.attr("xml:lang"))
                                    .map(str::to_string)
                            }
                            "meta" => {
                                let key = e
                                    .attr("property")
                                    .or_else(|| e.attr("name"))
                                    .or_else(|| e.attr("itemprop"));
                                if let (Some(k), Some(v)) = (key, e.attr("content")) {
                                    meta.metas.push((k.to_ascii_lowercase(), v.to_string()));
                                }
                            }
                            "link"
                                if meta.canonical.is_none()
                                    && has_token(e.attr("rel"), "canonical") =>
                            {
                                meta.canonical = e.attr("href").map(str::to_string);
                            }
                            "script" if has_token(e.attr("type"), "application/ld+json") => {
                                let text: String = node
                                    .children()
                                    .filter_map(|c| c.value().as_text().map(|t| t.to_string()))
                                    .collect();
                                meta.ld_json.push(text);
                            }
                            "time" if meta.time_datetime.is_none() => {
                                meta.time_datetime = e.attr("datetime").map(str::to_string)
                            }
                            _ => {}
                        }
                        if name == "title" {
                            // Title text is read below; its subtree is not body text.
                            skipping = Some(node.id());
                            let t: String = node
                                .children()
                                .filter_map(|c| c.value().as_text().map(|t| t.to_string()))
                                .collect();
                            if meta.title.is_none() {
                                meta.title = Some(t);
                            }
                            continue;
                        }
                        if depth > MAX_DEPTH
                            || is_skipped(name)
                            || is_permalink_mark(node, e)
                            || (is_structural(name) && share(node.id()) < 0.3)
                            || (is_hidden(e) && share(node.id()) < 0.3)
                            || skip(node.id(), e, share(node.id()))
                        {
                            skipping = Some(node.id());
                            continue;
                        }
                        if name == "br" || name == "hr" {
                            flush(
                                &mut buf,
                                &mut chars,
                                &mut link_chars,
                                &stack,
                                quote,
                                &mut blocks,
                            );
                            continue;
                        }
                        if is_link(e) && !holds_prose(node.id()) {
                            in_link += 1;
                        }
                        if name == "h1" {
                            in_h1 = Some(String::new());
                        }
                        if is_inline(name) {
                            continue;
                        }
                        flush(
                            &mut buf,
                            &mut chars,
                            &mut link_chars,
                            &stack,
                            quote,
                            &mut blocks,
                        );
                        if name == "blockquote" {
                            quote += 1;
                        }
                        if name == "pre" {
                            pre += 1;
                        }
                        let tag = match tag_of(name) {
                            Tag::Div => stack.last().map_or(Tag::Div, |f| match f.tag {
                                // A <div> inside a heading or list item is still part of it.
                                t @ (Tag::Heading(_) | Tag::Li | Tag::Pre) => t,
                                _ => Tag::Div,
                            }),
                            t => t,
                        };
                        stack.push(Frame { id: node.id(), tag });
                    }
                    Node::Text(t) => {
                        let s: &str = t;
                        if pre > 0 {
                            buf.push_str(s);
                            chars += s.len();
                            if in_link > 0 {
                                link_chars += s.len();
                            }
                        } else {
                            let n = push_collapsed(&mut buf, s);
                            chars += n;
                            if in_link > 0 {
                                link_chars += n;
                            }
                        }
                        if let Some(h) = in_h1.as_mut() {
                            h.push_str(s);
                        }
                    }
                    _ => {}
                }
            }
            Edge::Close(node) => {
                if let Some(id) = skipping {
                    if id == node.id() {
                        skipping = None;
                        depth -= 1;
                    }
                    continue;
                }
                if let Node::Element(e) = node.value() {
                    depth -= 1;
                    let name = e.name();
                    if name == "br" || name == "hr" {
                        continue;
                    }
                    if is_link(e) && !holds_prose(node.id()) {
                        in_link = in_link.saturating_sub(1);
                    }
                    if name == "h1" {
                        if let Some(h) = in_h1.take() {
                            let h = collapse(&h);
                            if !h.is_empty() {
                                meta.h1.push(h);
                            }
                        }
                    }
                    if is_inline(name) {
                        continue;
                    }
                    flush(
                        &mut buf,
                        &mut chars,
                        &mut link_chars,
                        &stack,
                        quote,
                        &mut blocks,
                    );
                    if name == "blockquote" {
                        quote = quote.saturating_sub(1);
                    }
                    if name == "pre" {
                        pre = pre.saturating_sub(1);
                    }
                    if stack.last().is_some_and(|f| f.id == node.id()) {
                        stack.pop();
                    }
                }
            }
        }
    }
    flush(
        &mut buf,
        &mut chars,
        &mut link_chars,
        &stack,
        quote,
        &mut blocks,
    );
    // Link characters were counted on raw text; keep the ratio in [0, 1].
    for b in &mut blocks {
        b.link_chars = b.link_chars.min(b.chars);
    }
    Walk {
        blocks,
        meta,
        sizes,
    }
}

/// An `<a>` that leads elsewhere. A same-page fragment (`#section`, a
/// heading's permalink or `¶`) and an anchor without `href` are part of the
/// text they mark, not navigation, so they do not make a block link-dense.
/// A bare `#` (or `#!`) is a script's button (share, menu): still a link.
fn is_link(e: &Element) -> bool {
    e.name() == "a"
        && e.attr("href").is_some_and(|h| {
            let h = h.trim();
            !(h.starts_with('#') && h.len() > 1 && !h.starts_with("#!"))
        })
}

/// A same-page link with no word in it (`¶`, `#`, `§`, an icon) beside a
/// heading: a permalink, not text.
fn is_permalink_mark(node: ego_tree::NodeRef<'_, Node>, e: &Element) -> bool {
    e.name() == "a"
        && e.attr("href").is_some_and(|h| h.trim().starts_with('#'))
        && !node.descendants().any(|d| {
            d.value()
                .as_text()
                .is_some_and(|t| t.chars().any(char::is_alphanumeric))
        })
}

/// Whether a space-separated attribute value holds `token` (any case).
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split_whitespace().any(|t| t.eq_ignore_ascii_case(token)))
}

/// Appends `s` with runs of whitespace collapsed to one space; returns the
/// number of non-space characters added.
fn push_collapsed(buf: &mut String, s: &str) -> usize {
    let mut n = 0;
    for c in s.chars() {
        if c.is_whitespace() || c == '\u{a0}' || c.is_control() {
            if !buf.is_empty() && !buf.ends_with(' ') {
                buf.push(' ');
            }
        } else {
            buf.push(c);
            n += 1;
        }
    }
    n
}

pub fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_collapsed(&mut out, s);
    out.trim().to_string()
}
