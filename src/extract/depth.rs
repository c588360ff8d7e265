//! Caps element nesting before parsing. html5ever checks "element in scope"
//! by scanning its stack of open elements, so a page of 100,000 nested
//! `<div>`s costs quadratic time (20 s here). Real pages nest a few dozen
//! deep; tags past `limit` are dropped, with their matching end tags.
//!
//! This is a tag-level scan, not a parser: it skips comments, `<script>`,
//! `<style>` and `<textarea>` bodies, and only counts elements whose end tag
//! is required (an unclosed `<p>` or `<li>` must not look like nesting).

use std::borrow::Cow;

fn counts(name: &[u8]) -> bool {
    !matches!(
        name,
        b"area"
            | b"base"
            | b"br"
            | b"col"
            | b"embed"
            | b"hr"
            | b"img"
            | b"input"
            | b"link"
            | b"meta"
            | b"param"
            | b"source"
            | b"track"
            | b"wbr"
            | b"p"
            | b"li"
            | b"dt"
            | b"dd"
            | b"tr"
            | b"td"
            | b"th"
            | b"thead"
            | b"tbody"
            | b"tfoot"
            | b"option"
            | b"optgroup"
            | b"rt"
            | b"rp"
            | b"colgroup"
            | b"caption"
            | b"html"
            | b"head"
            | b"body"
            | b"frame"
            | b"keygen"
    )
}

/// Returns `html` with elements nested deeper than `limit` removed.
pub fn cap_depth(html: &str, limit: usize) -> Cow<'_, str> {
    let b = html.as_bytes();
    let mut depth = 0usize;
    let mut dropped = 0usize;
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
        let name_len = b[name_start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
            .count();
        if name_len == 0 {
            i = start + 1;
            continue;
        }
        let name: Vec<u8> = b[name_start..name_start + name_len]
            .iter()
            .map(u8::to_ascii_lowercase)
            .collect();
        let end = memchr(b'>', &b[name_start..]).map_or(b.len(), |e| name_start + e + 1);
        let self_closing = end >= 2 && b[end - 2] == b'/';
        let mut drop = false;
        if counts(&name) && !self_closing {
            if close {
                if dropped > 0 {
                    dropped -= 1;
                    drop = true;
                } else {
                    depth = depth.saturating_sub(1);
                }
            } else if depth >= limit {
                dropped += 1;
                drop = true;
            } else {
                depth += 1;
            }
        }
        if drop {
            let o = out.get_or_insert_with(|| String::with_capacity(html.len()));
            o.push_str(&html[copied..start]);
            copied = end;
        }
        i = end;
        if !close
            && matches!(
                name.as_slice(),
                b"script" | b"style" | b"textarea" | b"title" | b"xmp"
            )
        {
            let mut closer = b"</".to_vec();
            closer.extend_from_slice(&name);
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

fn memchr(c: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&x| x == c)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shallow_pages_are_untouched() {
        let html = "<div><p>a<p>b<script>if (a<b) {'<div>'}</script><!-- <div> --></div>";
        assert!(matches!(cap_depth(html, 2), Cow::Borrowed(_)));
    }

    #[test]
    fn deep_nesting_is_capped() {
        let html = "<div>".repeat(10) + "x" + &"</div>".repeat(10);
        assert_eq!(cap_depth(&html, 3), "<div><div><div>x</div></div></div>");
    }
}
