//! What an element's attributes say about it: `class`, `id`, `role`,
//! `itemprop` and `data-component`-style names, split into lowercase words.
//!
//! These are generic web conventions (WordPress, schema.org, ARIA, common
//! CMS templates), not rules for any one site.

use scraper::node::Element;

/// How an element's names classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hint {
    /// Names of article containers (`article-body`, `entry-content`, ...).
    pub positive: bool,
    /// Never article text: share bars, comments, related lists, promos, ...
    pub strong_negative: bool,
    /// Page structure around the article (nav, sidebar, footer, widgets):
    /// dropped when small, since some templates wrap everything in such names.
    pub structural: bool,
    /// Often not article text (ads, captions, bylines) but too common a word
    /// to drop a large subtree for.
    pub weak_negative: bool,
    /// `itemprop="articleBody"` or similar: the page says where its text is.
    pub article_body: bool,
}

const STRONG_PREFIXES: &[&str] = &[
    "share",
    "sharing",
    "social",
    "comment",
    "related",
    "recommend",
    "promo",
    "newsletter",
    "subscri",
    "cookie",
    "consent",
    "gdpr",
    "breadcrumb",
    "outbrain",
    "taboola",
    "disqus",
    "popup",
    "modal",
    "signup",
    "jp-related",
    "relatedposts",
    "sharedaddy",
    "trending",
    "mostread",
    "mostpopular",
    "readmore",
    "read-more",
    "inline-more",
    "appdownload",
    "app-promo",
    "skiplink",
    "skip-link",
    "topic-list",
    "topiclist",
    "taglist",
    "tag-list",
];
const STRONG_WORDS: &[&str] = &[
    "login",
    "comments",
    "related",
    "share",
    "social",
    "newsletter",
    "promo",
    "recirc",
];
const STRUCTURAL_PREFIXES: &[&str] = &[
    "sidebar",
    "footer",
    "navbar",
    "navigation",
    "toolbar",
    "pagination",
];
const STRUCTURAL_WORDS: &[&str] = &[
    "nav",
    "menu",
    "widget",
    "widgets",
    "banner",
    "masthead",
    "footer",
    "sidebar",
    "overlay",
    "tags",
    "more",
    "rail",
    "copyright",
];
const WEAK_WORDS: &[&str] = &[
    "ad",
    "ads",
    "adv",
    "advert",
    "advertisement",
    "advertising",
    "sponsor",
    "sponsored",
    "caption",
    "credit",
    "credits",
    "byline",
    "author",
    "meta",
    "hidden",
    "print",
    "header",
    "dateline",
    "timestamp",
    "date",
    "tag",
    "app",
    "download",
    "extra",
    "aside",
    "inline",
    "lightbox",
    "gallery",
    "slot",
    "label",
    "subline",
];
const POSITIVE_WORDS: &[&str] = &[
    "article",
    "articlebody",
    "content",
    "entry",
    "post",
    "story",
    "storybody",
    "text",
    "body",
    "main",
    "prose",
    "blog",
    "news",
    "column",
    "maincontent",
    "postcontent",
    "entrycontent",
    "articletext",
    "richtext",
    "rte",
];

pub fn hint(e: &Element) -> Hint {
    let mut h = Hint::default();
    if let Some(p) = e.attr("itemprop") {
        if p.split_whitespace()
            .any(|t| t.eq_ignore_ascii_case("articleBody"))
        {
            h.article_body = true;
            h.positive = true;
        }
    }
    if let Some(role) = e.attr("role") {
        match role.trim().to_ascii_lowercase().as_str() {
            "navigation" | "banner" | "complementary" | "contentinfo" | "dialog"
            | "alertdialog" | "search" | "menu" | "menubar" | "toolbar" => h.structural = true,
            "main" | "article" => h.positive = true,
            _ => {}
        }
    }
    let names = [
        e.attr("class"),
        e.attr("id"),
        e.attr("data-component"),
        e.attr("data-module"),
    ];
    for attr in names.into_iter().flatten() {
        for raw in attr.split_whitespace() {
            let token = raw.to_ascii_lowercase();
            if STRONG_PREFIXES.iter().any(|p| token.starts_with(p))
                && !token.starts_with("commentary")
            {
                h.strong_negative = true;
            }
            if STRUCTURAL_PREFIXES.iter().any(|p| token.starts_with(p)) {
                h.structural = true;
            }
            for word in token
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                if STRONG_WORDS.contains(&word) {
                    h.strong_negative = true;
                } else if STRUCTURAL_WORDS.contains(&word) {
                    h.structural = true;
                } else if WEAK_WORDS.contains(&word) {
                    h.weak_negative = true;
                } else if POSITIVE_WORDS.contains(&word) {
                    h.positive = true;
                }
            }
            let squashed: String = token.chars().filter(char::is_ascii_alphanumeric).collect();
            if POSITIVE_WORDS.contains(&squashed.as_str()) {
                h.positive = true;
            }
        }
    }
    h
}

/// Whether the walk should drop this element's whole subtree, given the
/// share of the page's text it holds: boilerplate names on a subtree holding
/// most of the page are a template's quirk, not boilerplate.
pub fn skip(e: &Element, share: f64) -> bool {
    if matches!(e.name(), "body" | "html" | "main" | "article") {
        return false;
    }
    let h = hint(e);
    if h.positive {
        return false;
    }
    (h.strong_negative && share < 0.6) || (h.structural && share < 0.3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::Html;

    fn first(html: &str) -> Hint {
        let doc = Html::parse_fragment(html);
        let el = doc
            .root_element()
            .children()
            .find_map(|c| c.value().as_element().cloned())
            .unwrap();
        hint(&el)
    }

    #[test]
    fn classifies_common_names() {
        assert!(first(r#"<div class="share-bar"></div>"#).strong_negative);
        assert!(first(r#"<div class="elementor-widget-container"></div>"#).structural);
        assert!(first(r#"<div id="jp-relatedposts"></div>"#).strong_negative);
        assert!(first(r#"<div data-component="newsletter"></div>"#).strong_negative);
        assert!(first(r#"<div class="ad-slot"></div>"#).weak_negative);
        assert!(first(r#"<div class="entry-content"></div>"#).positive);
        assert!(first(r#"<div itemprop="articleBody"></div>"#).article_body);
        assert!(!first(r#"<div class="commentary-body"></div>"#).strong_negative);
        assert!(!first(r#"<div class="navy"></div>"#).strong_negative);
    }
}
