//! HTML to article: the page's own text, without the site around it.
//!
//! `extract(html, base_url)` is pure: no I/O, no global state, deterministic.
//! It parses the page once (html5ever via scraper), walks it into text blocks
//! (`dom`), drops subtrees whose names say boilerplate (`hints`), scores the
//! remaining containers by the prose they hold and picks the article
//! (`select`), then trims what is left around it (`phrases`, trailing
//! teasers). Learned per-host boilerplate is applied later, by the pipeline,
//! with `Article::drop_blocks`.

mod depth;
mod dom;
mod hints;
mod meta;
mod parse;
mod phrases;
mod rules;
mod select;

use serde::Serialize;
use url::Url;

pub use meta::Metadata;
pub use rules::{RulesError, SiteRules, SiteRulesSet};

/// Pages larger than this are cut before parsing: the article is near the
/// top, and parse time must stay bounded.
pub const MAX_HTML_BYTES: usize = 8 * 1024 * 1024;
/// Elements nested deeper than this are dropped before parsing (see `depth`).
const MAX_NESTING: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    Paragraph,
    Heading,
    ListItem,
    Quote,
    Pre,
    /// A table cell's text.
    Cell,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Article {
    pub meta: Metadata,
    pub blocks: Vec<Block>,
}

impl Article {
    /// Paragraphs separated by one blank line, no trailing newline.
    pub fn body(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&b.text);
        }
        out
    }

    pub fn words(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.text.split_whitespace().count())
            .sum()
    }

    /// Removes blocks for which `drop` says yes, then re-trims the end (a
    /// removed promo can leave its heading behind).
    pub fn drop_blocks(&mut self, mut drop: impl FnMut(&Block) -> bool) {
        self.blocks.retain(|b| !drop(b));
        trim_tail(&mut self.blocks);
    }
}

/// Extracts the article from `html`. `base_url` resolves relative links in
/// metadata (canonical URL).
pub fn extract(html: &str, base_url: Option<&Url>) -> Article {
    extract_with(html, base_url, None)
}

/// `extract`, narrowed by a site's explicit rules.
pub fn extract_with(html: &str, base_url: Option<&Url>, rules: Option<&SiteRules>) -> Article {
    let html = if html.len() > MAX_HTML_BYTES {
        let mut end = MAX_HTML_BYTES;
        while !html.is_char_boundary(end) {
            end -= 1;
        }
        &html[..end]
    } else {
        html
    };
    let html = depth::cap_depth(html, MAX_NESTING);
    let (doc, cut) = parse::parse(&html, parse::budget(html.len()));
    if cut {
        tracing::debug!(bytes = html.len(), "parse stopped at its work budget");
    }
    let stripped: std::collections::HashSet<ego_tree::NodeId> = rules
        .map(|r| {
            r.strip
                .iter()
                .flat_map(|sel| doc.select(sel).map(|e| e.id()))
                .collect()
        })
        .unwrap_or_default();
    let body = rules
        .and_then(|r| r.body.as_ref())
        .and_then(|sel| doc.select(sel).next());
    // Inside a site's own `body`, the site has said what the article is: the
    // generic name hints (`comment`, `share`, ...) would second-guess it, so
    // only `strip` removes subtrees there.
    let forced: std::collections::HashSet<ego_tree::NodeId> = body
        .map(|b| b.descendants().map(|d| d.id()).collect())
        .unwrap_or_default();
    let skip = |id: ego_tree::NodeId, e: &scraper::node::Element, share: f64| {
        stripped.contains(&id) || (!forced.contains(&id) && hints::skip(e, share))
    };
    let walk = dom::walk(&doc, &skip);
    let meta = meta::metadata(&walk.meta, base_url);
    let body = body.map(|e| e.id());
    let keep = select::select(&doc, &walk.blocks, &walk.sizes, body);
    let mut blocks: Vec<Block> = keep
        .into_iter()
        .map(|i| {
            let b = &walk.blocks[i];
            let kind = match b.tag {
                _ if b.in_quote => BlockKind::Quote,
                dom::Tag::Heading(_) => BlockKind::Heading,
                dom::Tag::Li => BlockKind::ListItem,
                dom::Tag::Pre => BlockKind::Pre,
                dom::Tag::Cell => BlockKind::Cell,
                _ => BlockKind::Paragraph,
            };
            Block {
                kind,
                text: b.text.clone(),
            }
        })
        .collect();
    if let Some(r) = rules.filter(|r| !r.drop_phrases.is_empty()) {
        blocks.retain(|b| {
            let lower = b.text.to_lowercase();
            !r.drop_phrases.iter().any(|p| lower.contains(p))
        });
    }
    drop_title(&mut blocks, meta.title.as_deref());
    trim_tail(&mut blocks);
    if blocks.iter().map(|b| b.text.len()).sum::<usize>() < 200 {
        if let Some(body) = meta.ld_body.as_deref() {
            if body.len() > 200 {
                blocks = body
                    .split('\n')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Block {
                        kind: BlockKind::Paragraph,
                        text: p.to_string(),
                    })
                    .collect();
            }
        }
    }
    Article { meta, blocks }
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The headline printed again at the top of the body is not body text.
fn drop_title(blocks: &mut Vec<Block>, title: Option<&str>) {
    let Some(title) = title.map(norm).filter(|t| !t.is_empty()) else {
        return;
    };
    if let Some(i) = blocks.iter().take(4).position(|b| norm(&b.text) == title) {
        blocks.remove(i);
    }
}

/// A short line that ends the article with nothing after it is a teaser or
/// the heading of a removed box ("For more news your way"), not content.
fn trim_tail(blocks: &mut Vec<Block>) {
    // A list or a table ending the article is content (a recipe's steps, a
    // table of results or specifications); teaser lines come one or two at
    // a time.
    for _ in 0..2 {
        let Some(last) = blocks.last() else { break };
        if matches!(last.kind, BlockKind::ListItem | BlockKind::Cell) {
            break;
        }
        let t = last.text.trim_end();
        let words = t.split_whitespace().count();
        let sentence_end = t.ends_with(['.', '!', '?', '"', '”', '’', '»', '。', ')', '…']);
        let heading_like = last.kind == BlockKind::Heading || (!sentence_end && words < 8);
        if heading_like && t.chars().count() < 80 && blocks.len() > 1 {
            blocks.pop();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
