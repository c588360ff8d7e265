//! Caps element nesting before parsing. html5ever checks "element in scope"
//! by scanning its stack of open elements, so a page of 100,000 nested
//! `<div>`s costs quadratic time (20 s here). Real pages nest a few dozen
//! deep; start tags past `limit` are dropped, with their end tags, and the
//! text between them is kept (at the limit's depth).
//!
//! This is a tag-level scan, not a parser: it skips comments, `<script>`,
//! `<style>` and `<textarea>` bodies, and keeps its own stack of open
//! elements with the HTML rules that matter for depth, so that markup the
//! parser nests cannot slip under the count:
//! - `<div/>` opens a `<div>` in HTML (the slash means nothing outside
//!   `<svg>` and `<math>`), so it counts as an open tag;
//! - an end tag lowers the depth only when it closes an open element the way
//!   the parser would (`</span>` does not cross a `<div>`, nothing crosses a
//!   table cell, an end tag with no open element is ignored);
//! - elements whose end tag is optional (`<p>`, `<li>`, `<td>`, `<option>`,
//!   ...) are closed by the tags that close them in HTML.
//!
//! What the scan still gets wrong (the adoption agency's reconstruction of
//! formatting elements can nest more than it sees) is bounded by the parse
//! work budget in `parse`.

use std::borrow::Cow;
use std::collections::HashMap;

/// A tag name, lowercased, when short enough to be a standard element
/// (longer names are custom elements, which have no special rules).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Name {
    buf: [u8; 12],
    len: u8,
    hash: u64,
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// `Name` carries its FNV hash: the maps need no second hashing pass.
#[derive(Default)]
struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type NameMap<V> = HashMap<Name, V, std::hash::BuildHasherDefault<NameHasher>>;

impl Name {
    fn new(raw: &[u8]) -> Name {
        let mut buf = [0u8; 12];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for c in raw {
            h = (h ^ u64::from(c.to_ascii_lowercase())).wrapping_mul(0x100_0000_01b3);
        }
        if raw.len() <= buf.len() {
            for (d, s) in buf.iter_mut().zip(raw) {
                *d = s.to_ascii_lowercase();
            }
            Name {
                buf,
                len: raw.len() as u8,
                hash: h,
            }
        } else {
            // Custom elements: identified by a hash, never equal to a short name.
            buf[..8].copy_from_slice(&h.to_le_bytes());
            Name {
                buf,
                len: 255,
                hash: h,
            }
        }
    }

    fn is(&self, s: &[u8]) -> bool {
        usize::from(self.len) == s.len() && &self.buf[..s.len()] == s
    }

    fn any(&self, names: &[&[u8]]) -> bool {
        names.iter().any(|n| self.is(n))
    }
}

/// Elements without content: never on the stack.
const VOID: &[&[u8]] = &[
    b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"link", b"meta", b"param",
    b"source", b"track", b"wbr", b"frame", b"keygen", b"image",
    // The page's skeleton: one each, however often the tags repeat.
    b"html", b"head", b"body",
];

const RAW_TEXT: &[&[u8]] = &[b"script", b"style", b"textarea", b"title", b"xmp"];

/// Boundaries of the parser's "in scope" checks: an end tag never closes
/// anything below one of these.
const SCOPE: &[&[u8]] = &[
    b"applet",
    b"caption",
    b"table",
    b"td",
    b"th",
    b"marquee",
    b"object",
    b"template",
    b"svg",
    b"math",
];

/// Formatting elements: their end tags run the adoption agency, which keeps
/// the depth when a block sits inside them.
const FORMATTING: &[&[u8]] = &[
    b"a", b"b", b"big", b"code", b"em", b"font", b"i", b"nobr", b"s", b"small", b"strike",
    b"strong", b"tt", b"u",
];

/// Start tags that close an open `<p>`.
const CLOSES_P: &[&[u8]] = &[
    b"address",
    b"article",
    b"aside",
    b"blockquote",
    b"center",
    b"details",
    b"dialog",
    b"dir",
    b"div",
    b"dl",
    b"fieldset",
    b"figcaption",
    b"figure",
    b"footer",
    b"form",
    b"header",
    b"hgroup",
    b"main",
    b"menu",
    b"nav",
    b"ol",
    b"p",
    b"search",
    b"section",
    b"summary",
    b"ul",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"pre",
    b"listing",
    b"table",
    b"xmp",
    b"plaintext",
    b"li",
    b"dd",
    b"dt",
];

/// Elements that stop a non-matching end tag (the parser's "special"
/// category, the ones that matter here).
fn is_special(n: &Name) -> bool {
    n.any(CLOSES_P)
        || n.any(SCOPE)
        || n.any(&[
            b"button",
            b"tr",
            b"tbody",
            b"thead",
            b"tfoot",
            b"select",
            b"textarea",
            b"iframe",
            b"noscript",
            b"colgroup",
        ])
}

const HEADINGS: &[&[u8]] = &[b"h1", b"h2", b"h3", b"h4", b"h5", b"h6"];

struct Stack {
    names: Vec<Name>,
    /// How many of each name are on the stack: skips scans for absent names.
    count: NameMap<u32>,
    /// `<svg>`/`<math>` open: there, `/>` does close an element.
    foreign: usize,
    /// Formatting elements just closed by another tag (see `pop_to`).
    implicit: Vec<Name>,
}

impl Stack {
    fn push(&mut self, n: Name) {
        if n.is(b"svg") || n.is(b"math") {
            self.foreign += 1;
        }
        *self.count.entry(n).or_insert(0) += 1;
        self.names.push(n);
    }

    /// Pops `names[idx..]`. Formatting elements among them other than
    /// `names[idx]` itself (closed by its own end tag when `own`) go to
    /// `implicit`: the parser would re-open them later, so they get an
    /// explicit end tag.
    fn pop_to(&mut self, idx: usize, own: bool) {
        while self.names.len() > idx {
            if let Some(n) = self.names.pop() {
                if n.is(b"svg") || n.is(b"math") {
                    self.foreign -= 1;
                }
                if let Some(c) = self.count.get_mut(&n) {
                    *c -= 1;
                }
                if n.any(FORMATTING) && !(own && self.names.len() == idx) {
                    self.implicit.push(n);
                }
            }
        }
    }

    fn has(&self, n: &Name) -> bool {
        self.count.get(n).is_some_and(|&c| c > 0)
    }

    /// Index of the nearest open element named one of `targets`, searching
    /// down from the top and stopping at any of `stop`.
    fn find(&self, targets: &[&[u8]], stop: impl Fn(&Name) -> bool) -> Option<usize> {
        for (i, n) in self.names.iter().enumerate().rev() {
            if n.any(targets) {
                return Some(i);
            }
            if stop(n) {
                return None;
            }
        }
        None
    }

    /// Closes what a start tag `n` implicitly closes.
    fn implied_close(&mut self, n: &Name) {
        let p = Name::new(b"p");
        if n.any(CLOSES_P) && self.has(&p) {
            let stop = |x: &Name| x.any(SCOPE) || x.is(b"button");
            if let Some(i) = self.find(&[b"p"], stop) {
                self.pop_to(i, false);
            }
        }
        let list_stop = |x: &Name| is_special(x) && !x.any(&[b"address", b"div", b"p"]);
        if n.is(b"li") {
            if let Some(i) = self.find(&[b"li"], list_stop) {
                self.pop_to(i, false);
            }
        } else if n.is(b"dd") || n.is(b"dt") {
            if let Some(i) = self.find(&[b"dd", b"dt"], list_stop) {
                self.pop_to(i, false);
            }
        } else if n.any(&[b"td", b"th"]) {
            if let Some(i) = self.find(&[b"td", b"th"], |x| x.any(&[b"tr", b"table"])) {
                self.pop_to(i, false);
            }
        } else if n.is(b"tr") {
            if let Some(i) = self.find(&[b"tr"], |x| x.is(b"table")) {
                self.pop_to(i, false);
            }
        } else if n.any(&[b"tbody", b"thead", b"tfoot", b"caption", b"colgroup"]) {
            let sections: &[&[u8]] = &[b"tbody", b"thead", b"tfoot", b"caption", b"colgroup"];
            if let Some(i) = self.find(sections, |x| x.is(b"table")) {
                self.pop_to(i, false);
            }
        } else if n.is(b"option") || n.is(b"optgroup") {
            if let Some(i) = self.find(&[b"option"], |x| !x.is(b"option")) {
                self.pop_to(i, false);
            }
        } else if n.any(HEADINGS) {
            if self.names.last().is_some_and(|t| t.any(HEADINGS)) {
                self.pop_to(self.names.len() - 1, false);
            }
        } else if (n.is(b"a") || n.is(b"nobr")) && self.has(n) {
            // The adoption agency closes the open one; the elements after it
            // stay open (moved), so the depth drops by one.
            if let Some(i) = self.find(&[&n.buf[..usize::from(n.len)]], |x| x.any(SCOPE)) {
                let removed = self.names.remove(i);
                if let Some(c) = self.count.get_mut(&removed) {
                    *c -= 1;
                }
            }
        }
    }

    /// Applies an end tag; returns whether it closed anything.
    fn close(&mut self, n: &Name) -> bool {
        if !self.has(n) {
            return false;
        }
        let target = &n.buf[..usize::from(n.len.min(12))];
        let idx = if n.len == 255 {
            // Custom element: ordinary, stops at special elements.
            self.names
                .iter()
                .enumerate()
                .rev()
                .take_while(|(_, x)| *x == n || !is_special(x))
                .find(|(_, x)| *x == n)
                .map(|(i, _)| i)
        } else if n.any(FORMATTING) {
            // With a block after it, the adoption agency moves the block and
            // re-opens a copy inside: nothing gets shallower.
            let i = self.find(&[target], |x| x.any(SCOPE));
            i.filter(|&i| !self.names[i + 1..].iter().any(is_special))
        } else if is_special(n) {
            self.find(&[target], |x| x.any(SCOPE))
        } else {
            self.find(&[target], is_special)
        };
        match idx {
            Some(i) => {
                self.pop_to(i, true);
                true
            }
            None => false,
        }
    }
}

/// Returns `html` with elements nested deeper than `limit` removed.
pub fn cap_depth(html: &str, limit: usize) -> Cow<'_, str> {
    let b = html.as_bytes();
    let mut stack = Stack {
        names: Vec::new(),
        count: NameMap::default(),
        foreign: 0,
        implicit: Vec::new(),
    };
    // Start tags dropped past the limit, by name: their end tags go too.
    let mut dropped: NameMap<usize> = NameMap::default();
    let mut out: Option<String> = None;
    let mut copied = 0usize; // bytes of `html` already in `out`
    let mut i = 0usize;
    while let Some(off) = memchr(b'<', &b[i..]) {
        let start = i + off;
        let rest = &b[start..];
        if rest.starts_with(b"<!--") {
            i = find(&b[start + 4..], b"-->").map_or(b.len(), |e| start + 4 + e + 3);
            continue;
        }
        let close = rest.get(1) == Some(&b'/');
        let name_start = start + 1 + usize::from(close);
        // A tag name starts with a letter; `<1` and `< ` are text.
        if !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            i = start + 1;
            continue;
        }
        let name_len = b[name_start..]
            .iter()
            .take_while(|c| !c.is_ascii_whitespace() && !matches!(c, b'/' | b'>'))
            .count();
        let raw = &b[name_start..name_start + name_len];
        let name = Name::new(raw);
        let end = tag_end(b, name_start + name_len);
        let self_closing = end >= 2 && b[end - 2] == b'/';
        let mut drop = false;
        // Raw-text elements hold no tags, so they cannot nest; dropping
        // one would turn its script or style into text.
        if !name.any(VOID) && !name.any(RAW_TEXT) {
            if close {
                if let Some(c) = dropped.get_mut(&name).filter(|c| **c > 0) {
                    *c -= 1;
                    drop = true;
                } else {
                    stack.close(&name);
                }
            } else if !(self_closing && stack.foreign > 0) {
                stack.implied_close(&name);
                if stack.names.len() >= limit {
                    *dropped.entry(name).or_insert(0) += 1;
                    drop = true;
                } else {
                    stack.push(name);
                }
            }
        }
        if drop || !stack.implicit.is_empty() {
            let o = out.get_or_insert_with(|| String::with_capacity(html.len()));
            o.push_str(&html[copied..start]);
            // The adoption agency re-opens a formatting element closed by
            // another tag at the next text, nesting a copy of every such
            // element each time: `<p><b id=1>x</p>` repeated is quadratic.
            // Closing them here is what a careful author would have written.
            for n in stack.implicit.drain(..) {
                o.push_str("</");
                o.push_str(std::str::from_utf8(&n.buf[..usize::from(n.len)]).unwrap_or("b"));
                o.push('>');
            }
            copied = if drop { end } else { start };
        }
        i = end;
        if !close && name.any(RAW_TEXT) {
            let closer: Vec<u8> = [b"</".as_slice(), raw].concat();
            i = find_ci(&b[i..], &closer).map_or(b.len(), |e| i + e);
        }
    }
    match out {
        None => Cow::Borrowed(html),
        Some(mut o) => {
            o.push_str(&html[copied..]);
            Cow::Owned(o)
        }
    }
}

/// The byte after a tag's `>`, skipping quoted attribute values (a `>` in
/// `title="a > b"` does not end the tag).
fn tag_end(b: &[u8], mut i: usize) -> usize {
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => {
                // Only a quote right after `=` (possibly spaced) opens a value.
                let prev = b[..i].iter().rev().find(|x| !x.is_ascii_whitespace());
                if prev == Some(&b'=') {
                    quote = Some(c);
                }
            }
            None if c == b'>' => return i + 1,
            None => {}
        }
        i += 1;
    }
    b.len()
}

fn memchr(c: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&x| x == c)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `needle` (which starts with `<`) in `hay`, ignoring ASCII case; jumps
/// from `<` to `<` instead of comparing at every byte.
fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = memchr(b'<', &hay[i..]) {
        let at = i + off;
        if hay
            .get(at..at + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shallow_pages_are_untouched() {
        let html = "<div><p>a<p>b<script>if (a<b) {'<div>'}</script><!-- <div> --></div>";
        assert!(matches!(cap_depth(html, 2), Cow::Borrowed(_)));
        let html = "<div><div><script>x = '<div>'</script>";
        assert_eq!(cap_depth(html, 2), html);
        let paras = "<div>".to_string() + &"<p><span>z</p>".repeat(50);
        assert!(matches!(cap_depth(&paras, 8), Cow::Borrowed(_)));
        let lists = "<ul>".to_string() + &"<li><span>a<li>b".repeat(50) + "</ul>";
        assert!(matches!(cap_depth(&lists, 8), Cow::Borrowed(_)));
        let table = "<table>".to_string() + &"<tr><td><span>a<td>b".repeat(50) + "</table>";
        assert!(matches!(cap_depth(&table, 8), Cow::Borrowed(_)));
        let svg = "<div><svg>".to_string() + &"<path d='M0 0'/>".repeat(50) + "</svg></div>";
        assert!(matches!(cap_depth(&svg, 8), Cow::Borrowed(_)));
    }

    #[test]
    fn deep_nesting_is_capped() {
        let html = "<div>".repeat(10) + "x" + &"</div>".repeat(10);
        assert_eq!(cap_depth(&html, 3), "<div><div><div>x</div></div></div>");
    }

    #[test]
    fn self_closing_divs_count_as_open() {
        let html = "<div/>".repeat(10) + "x";
        assert_eq!(cap_depth(&html, 3), "<div/><div/><div/>x");
    }

    #[test]
    fn end_tags_that_close_nothing_do_not_lower_the_depth() {
        let html = "<div></span>".repeat(10) + "x";
        assert_eq!(
            cap_depth(&html, 3),
            "<div></span>".repeat(3) + &"</span>".repeat(7) + "x"
        );
        // `</span>` does not cross the `<div>` opened inside the span.
        let html = "<span>".to_string() + &"<div></span>".repeat(10);
        assert_eq!(
            cap_depth(&html, 3),
            "<span><div></span><div></span>".to_string() + &"</span>".repeat(8)
        );
        // `</b>` around a block re-opens the `<b>` inside it.
        let html = "<b><div></b>".repeat(4);
        assert_eq!(cap_depth(&html, 4), "<b><div></b>".repeat(2));
    }

    #[test]
    fn formatting_closed_by_another_tag_gets_its_end_tag() {
        // The parser would re-open each `<b>` in every later paragraph.
        let html = "<p><b id=1>x</p><p><b id=2>y</p>";
        assert_eq!(
            cap_depth(html, 8),
            "<p><b id=1>x</b></p><p><b id=2>y</b></p>"
        );
        let html = "<ul><li><a href=x>a<li>b</ul>";
        assert_eq!(cap_depth(html, 8), "<ul><li><a href=x>a</a><li>b</ul>");
    }

    #[test]
    fn attribute_values_do_not_end_a_tag() {
        let html = "<div title='a > b'>".repeat(4);
        assert_eq!(cap_depth(&html, 2), "<div title='a > b'>".repeat(2));
    }
}
