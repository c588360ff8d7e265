//! Story identity, all pure: canonical URLs, exact item keys, and MinHash
//! signatures for near-duplicate text.
//!
//! Keys are 64-bit SipHash values with fixed keys, so they are stable across
//! runs, versions and machines (they live in the state store for years).

use std::hash::Hasher;

use siphasher::sip::SipHasher13;
use url::Url;

use crate::feed::Item;

/// Fixed SipHash keys: changing them orphans every stored key.
const K0: u64 = 0x676c_6561_6e65_7231;
const K1: u64 = 0x7374_6f72_795f_6964;

pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = SipHasher13::new_with_keys(K0, K1);
    for p in parts {
        h.write(p);
        h.write_u8(0xff);
    }
    h.finish()
}

/// Query parameters that only track the reader, never select the content.
fn is_tracking_param(name: &str, value: &str, host: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const PREFIXES: &[&str] = &[
        "utm_", "mtm_", "pk_", "matomo_", "piwik_", "hsa_", "oly_", "vero_", "__hs", "_hs", "ga_",
    ];
    const EXACT: &[&str] = &[
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "yclid",
        "ysclid",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "srsltid",
        "igshid",
        "igsh",
        "twclid",
        "ttclid",
        "li_fat_id",
        "s_cid",
        "cmpid",
        "wt_mc",
        "wt.mc_id",
        "ocid",
        "ncid",
        "sr_share",
        "_ga",
        "_gl",
        "amp",
        "at_medium",
        "at_campaign",
        "spm",
        "smid",
    ];
    if PREFIXES.iter().any(|p| n.starts_with(p)) || EXACT.contains(&n.as_str()) {
        return true;
    }
    if n == "ref" || n == "ref_src" {
        return ref_names_referrer(value, host);
    }
    false
}

/// `ref=` selects content on some sites (`?ref=v2`); it is tracking when it
/// names a referrer: the site itself, a feed, or a social network.
fn ref_names_referrer(value: &str, host: &str) -> bool {
    let v = value.to_ascii_lowercase();
    if v.is_empty() {
        return true;
    }
    const SOURCES: &[&str] = &[
        "rss",
        "feed",
        "feeds",
        "atom",
        "newsletter",
        "email",
        "homepage",
        "home",
        "twitter",
        "facebook",
        "linkedin",
        "reddit",
        "hn",
        "hackernews",
        "producthunt",
        "share",
        "social",
    ];
    if SOURCES.contains(&v.as_str()) {
        return true;
    }
    let labels: Vec<&str> = host
        .split('.')
        .filter(|l| l.len() > 2 && *l != "www")
        .collect();
    let site = labels
        .len()
        .checked_sub(2)
        .and_then(|i| labels.get(i))
        .or(labels.first());
    site.is_some_and(|s| v.contains(s))
}

/// The one URL of a page: lowercase scheme and host, no default port, no
/// fragment, no tracking parameters, AMP variants mapped to the article.
/// Idempotent; never changes the host (beyond an `amp.` prefix) or the path's meaning.
pub fn canonical_url(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_fragment(None);
    if !matches!(u.scheme(), "http" | "https") {
        return u;
    }
    if let Some(host) = u.host_str() {
        if let Some(rest) = host.strip_prefix("amp.") {
            if rest.contains('.') {
                let rest = rest.to_string();
                let _ = u.set_host(Some(&rest));
            }
        }
    }
    let host = u.host_str().unwrap_or("").to_string();
    if u.query().is_some() {
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, v)| !is_tracking_param(k, v, &host))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    let path = u.path().to_string();
    for suffix in ["/amp/", "/amp", ".amp"] {
        if let Some(stem) = path.strip_suffix(suffix) {
            if !stem.is_empty() && stem != "/" {
                u.set_path(stem);
                break;
            }
        }
    }
    u
}

/// Exact identity of a feed item. A GUID is scoped to its feed (feeds reuse
/// short GUIDs like "123"); the link is global (the same page from two feeds
/// is one story); title+date is the last resort.
pub fn item_key(feed: &str, item: &Item) -> u64 {
    if let Some(g) = &item.guid {
        return hash64(&[b"guid", feed.as_bytes(), g.as_bytes()]);
    }
    if let Some(l) = &item.link {
        return url_key(&canonical_url(l));
    }
    let date = item
        .published
        .map(|d| d.timestamp().to_string())
        .unwrap_or_default();
    hash64(&[
        b"title",
        feed.as_bytes(),
        item.title.as_bytes(),
        date.as_bytes(),
    ])
}

/// Key of a canonical URL.
pub fn url_key(canonical: &Url) -> u64 {
    hash64(&[b"url", canonical.as_str().as_bytes()])
}

// ---------------------------------------------------------------- near duplicates

/// Minhashes per signature, as `BANDS` bands of `ROWS`.
pub const BANDS: usize = 16;
pub const ROWS: usize = 4;
pub const HASHES: usize = BANDS * ROWS;
/// Words per shingle.
const SHINGLE: usize = 4;
/// Texts with fewer shingles than this are too short to call copies: two
/// briefs can share a wire credit and little else.
pub const MIN_SHINGLES: usize = 30;

/// A MinHash signature over word shingles of normalised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(pub [u32; HASHES]);

impl Signature {
    pub fn of(text: &str) -> Option<Signature> {
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        if words.len() < SHINGLE + MIN_SHINGLES {
            return None;
        }
        let mut mins = [u32::MAX; HASHES];
        for w in words.windows(SHINGLE) {
            let mut h = SipHasher13::new_with_keys(K0, K1);
            for word in w {
                h.write(word.as_bytes());
                h.write_u8(b' ');
            }
            let x = h.finish();
            // HASHES cheap permutations of one good hash.
            for (i, m) in mins.iter_mut().enumerate() {
                let v = mix(x ^ SEEDS[i]);
                let v = (v >> 32) as u32;
                if v < *m {
                    *m = v;
                }
            }
        }
        Some(Signature(mins))
    }

    /// Keys of the LSH bands: two texts share one when a whole band agrees.
    pub fn band_keys(&self) -> [u64; BANDS] {
        let mut keys = [0u64; BANDS];
        for (b, k) in keys.iter_mut().enumerate() {
            let mut h = SipHasher13::new_with_keys(K0, K1);
            h.write_u8(b as u8);
            for v in &self.0[b * ROWS..(b + 1) * ROWS] {
                h.write_u32(*v);
            }
            *k = h.finish();
        }
        keys
    }

    /// Estimated Jaccard similarity: the share of equal minhashes.
    pub fn similarity(&self, other: &Signature) -> f64 {
        let same = self
            .0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count();
        same as f64 / HASHES as f64
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    pub fn from_bytes(b: &[u8]) -> Option<Signature> {
        if b.len() != HASHES * 4 {
            return None;
        }
        let mut a = [0u32; HASHES];
        for (i, c) in b.chunks_exact(4).enumerate() {
            a[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Some(Signature(a))
    }
}

fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser: a fast bijection with good avalanche.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const SEEDS: [u64; HASHES] = {
    let mut s = [0u64; HASHES];
    let mut i = 0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while i < HASHES {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        s[i] = z ^ (z >> 31);
        i += 1;
    }
    s
};

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn strips_tracking_and_fragments() {
        let c = canonical_url(&u(
            "HTTPS://News.Example:443/a/b?utm_source=rss&id=7&fbclid=x#top",
        ));
        assert_eq!(c.as_str(), "https://news.example/a/b?id=7");
        let c = canonical_url(&u("http://news.example/a?utm_medium=feed&gclid=1"));
        assert_eq!(c.as_str(), "http://news.example/a");
        let c = canonical_url(&u("https://www.news.example/a?ref=news.example&page=2"));
        assert_eq!(c.as_str(), "https://www.news.example/a?page=2");
        let c = canonical_url(&u("https://news.example/a?ref=v2"));
        assert_eq!(c.as_str(), "https://news.example/a?ref=v2");
    }

    #[test]
    fn amp_variants_map_to_the_article() {
        assert_eq!(
            canonical_url(&u("https://amp.news.example/a/b")).as_str(),
            "https://news.example/a/b"
        );
        assert_eq!(
            canonical_url(&u("https://news.example/a/b/amp/")).as_str(),
            "https://news.example/a/b"
        );
        assert_eq!(
            canonical_url(&u("https://news.example/a/b?amp=1")).as_str(),
            "https://news.example/a/b"
        );
    }

    fn story(n: usize, seed: u64) -> String {
        let words = [
            "port", "strike", "union", "wages", "ships", "minister", "talks", "court", "city",
            "river", "vote", "budget", "rain", "market", "police", "school", "bridge", "festival",
            "energy", "price",
        ];
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = mix(x);
                words[(x % words.len() as u64) as usize]
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn copies_are_similar_and_other_stories_are_not() {
        let a = story(400, 1);
        let dateline = format!("LIMA (AFP) — {a}");
        let cut: String = a.split(' ').take(340).collect::<Vec<_>>().join(" ");
        let other = story(400, 2);
        let sa = Signature::of(&a).unwrap();
        assert!(sa.similarity(&Signature::of(&dateline).unwrap()) > 0.8);
        assert!(sa.similarity(&Signature::of(&cut).unwrap()) > 0.6);
        assert!(sa.similarity(&Signature::of(&other).unwrap()) < 0.2);
        assert!(Signature::of("too short to judge").is_none());
        assert_eq!(Signature::from_bytes(&sa.to_bytes()), Some(sa));
    }
}
