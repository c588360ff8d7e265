//! Short blocks that are boilerplate by what they say, wherever they sit:
//! app-download promos, newsletter and share prompts, cookie notices, ad
//! labels, "read more" teasers. Generic phrases of the web, in a few
//! languages; long blocks are never judged by phrase (an article may quote
//! any of these words).

/// Blocks longer than this (in chars) are article prose whatever they say.
const MAX_CHARS: usize = 220;
/// Generic words ("newsletter", "most popular") judge only blocks this short.
const MAX_WEAK_CHARS: usize = 80;

/// Phrases that only a promo, notice or share prompt says.
const STRONG: &[&str] = &[
    "download our app",
    "download the app",
    "get the app",
    "get our app",
    "available for android",
    "available on android",
    "available for ios",
    "available on ios",
    "available on the app store",
    "on google play",
    "app store and google play",
    "sign up for our newsletter",
    "subscribe to our newsletter",
    "sign up for the newsletter",
    "sign up to our newsletter",
    "we use cookies",
    "uses cookies to",
    "accept all cookies",
    "all rights reserved",
    "share this article",
    "share this story",
    "click to share",
    "thoughts on “",
    "thoughts on \"",
    "responses to “",
    "leave a reply",
    "leave a comment",
    "laden sie unsere app",
    "descarga nuestra app",
    "téléchargez notre application",
    "scarica la nostra app",
    "todos los derechos reservados",
    "tous droits réservés",
    "alle rechte vorbehalten",
    "tutti i diritti riservati",
];

/// Phrases that mark a block only when it is short, not a sentence of prose.
const WEAK: &[&str] = &[
    "newsletter",
    "in your inbox",
    "follow us on",
    "like us on facebook",
    "related stories",
    "related articles",
    "you may also like",
    "recommended for you",
    "most popular",
    "most read",
    "read more:",
    "read more »",
    "continue reading",
    "click here to",
    "cookie policy",
    "share on facebook",
    "share on twitter",
    "sign up",
];

/// Blocks that are exactly one of these (ignoring case and punctuation).
const EXACT: &[&str] = &[
    "advertisement",
    "advertising",
    "ad",
    "sponsored",
    "sponsored content",
    "share",
    "tweet",
    "email",
    "print",
    "comments",
    "read more",
    "more",
    "related",
    "top stories",
    "copy link",
    "share this",
    "share this article",
    "anzeige",
    "werbung",
    "publicidad",
    "publicité",
    "pubblicità",
    "реклама",
    "loading",
    "skip to content",
    "skip to main content",
    "back to top",
    "facebook",
    "twitter",
    "whatsapp",
    "linkedin",
    "pinterest",
    "reddit",
    "menu",
    "close",
];

pub fn is_boilerplate(text: &str) -> bool {
    if text.chars().count() > MAX_CHARS {
        return false;
    }
    let lower = text.to_lowercase();
    let bare: String = lower
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if EXACT.contains(&bare.as_str()) {
        return true;
    }
    if STRONG.iter().any(|p| lower.contains(p)) {
        return true;
    }
    text.chars().count() <= MAX_WEAK_CHARS && WEAK.iter().any(|p| lower.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_footer_is_boilerplate() {
        assert!(is_boilerplate(
            "Download our app and read this and other great stories on the move. Available for Android and iOS."
        ));
        assert!(is_boilerplate("ADVERTISEMENT"));
        assert!(is_boilerplate("READ MORE: Rates rise again"));
    }

    #[test]
    fn prose_is_not() {
        assert!(!is_boilerplate(
            "The minister said the app would be available next year."
        ));
        let long = "Download our app ".repeat(20);
        assert!(!is_boilerplate(&long));
        assert!(!is_boilerplate(
            "Its rye sourdough is now the most popular loaf in the district, and the owners plan a second shop."
        ));
    }
}
