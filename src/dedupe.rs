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
    // Every leading `amp.` label, so that one call reaches the fixed point.
    while let Some(rest) = u
        .host_str()
        .and_then(|h| h.strip_prefix("amp."))
        .filter(|r| r.contains('.'))
        .map(str::to_string)
    {
        if u.set_host(Some(&rest)).is_err() || u.host_str() != Some(rest.as_str()) {
            break;
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
    // Every AMP suffix (`/a/amp.amp` is `/a`), but never one whose removal
    // leaves a dot segment: `/a/..amp` must not become `/a/..`, the parent.
    loop {
        let path = u.path().to_string();
        let Some(stem) = ["/amp/", "/amp", ".amp"]
            .iter()
            .find_map(|s| path.strip_suffix(s))
            .filter(|s| !s.is_empty() && *s != "/")
        else {
            break;
        };
        u.set_path(stem);
        if u.path() != stem {
            u.set_path(&path);
            break;
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
            // HASHES multiply-shift hashes of one good hash: a multiply and an
            // add each (odd multipliers from SEEDS), which the compiler
            // vectorises; plenty independent for MinHash.
            for ((m, a), b) in mins.iter_mut().zip(SEEDS.iter()).zip(SEEDS.iter().rev()) {
                let v = ((a | 1).wrapping_mul(x).wrapping_add(*b) >> 32) as u32;
                *m = (*m).min(v);
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

    /// Estimated Jaccard similarity: the share of minhashes that agree in
    /// their low 16 bits (b-bit MinHash with b = 16, which is what the store
    /// keeps). Two different minima agree there by chance once in 65,536, so
    /// the estimate is the full-width one for any practical purpose.
    pub fn similarity(&self, other: &Signature) -> f64 {
        let same = self
            .0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| (*a ^ *b) & 0xffff == 0)
            .count();
        same as f64 / HASHES as f64
    }

    /// The stored form: the low 16 bits of each minhash, little-endian
    /// (128 bytes; `similarity` reads no more).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|v| (*v as u16).to_le_bytes())
            .collect()
    }

    /// Reads `to_bytes`, or the 256-byte full-width form that stores before
    /// schema version 4 hold.
    pub fn from_bytes(b: &[u8]) -> Option<Signature> {
        let mut a = [0u32; HASHES];
        if b.len() == HASHES * 2 {
            for (v, c) in a.iter_mut().zip(b.chunks_exact(2)) {
                *v = u32::from(u16::from_le_bytes([c[0], c[1]]));
            }
        } else if b.len() == HASHES * 4 {
            for (v, c) in a.iter_mut().zip(b.chunks_exact(4)) {
                *v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        } else {
            return None;
        }
        Some(Signature(a))
    }
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

    fn mix(mut z: u64) -> u64 {
        // splitmix64 finaliser: a fast bijection with good avalanche.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

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
        // Found by the properties below: one call reaches the fixed point,
        // and a suffix is never cut into a dot segment.
        assert_eq!(
            canonical_url(&u("https://amp.amp.news.example/a/b.amp/amp")).as_str(),
            "https://news.example/a/b"
        );
        assert_eq!(
            canonical_url(&u("https://news.example/a/..amp")).as_str(),
            "https://news.example/a/..amp"
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
        // Stored: the low 16 bits of each minhash, which is all that
        // similarity reads; stores before schema 4 hold all 32.
        let stored = sa.to_bytes();
        assert_eq!(stored.len(), 2 * HASHES);
        let back = Signature::from_bytes(&stored).unwrap();
        assert_eq!(back.similarity(&sa), 1.0);
        assert_eq!(back.to_bytes(), stored);
        let legacy: Vec<u8> = sa.0.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(Signature::from_bytes(&legacy), Some(sa.clone()));
        assert_eq!(Signature::from_bytes(&stored[1..]), None);
        // 16 bits agree exactly where 32 do, on copies and on other stories.
        for t in [&dateline, &cut, &other] {
            let s = Signature::of(t).unwrap();
            let full = sa.0.iter().zip(s.0.iter()).filter(|(a, b)| a == b).count();
            assert_eq!(sa.similarity(&s), full as f64 / HASHES as f64);
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use url::form_urlencoded::byte_serialize;

        /// Parameters that only track the reader (a sample of each family).
        const TRACKING: &[&str] = &[
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "utm_",
            "mtm_kwd",
            "pk_campaign",
            "fbclid",
            "gclid",
            "dclid",
            "gbraid",
            "wbraid",
            "msclkid",
            "mc_cid",
            "mc_eid",
            "yclid",
            "_hsenc",
            "_hsmi",
            "__hstc",
            "mkt_tok",
            "srsltid",
            "igshid",
            "twclid",
            "amp",
        ];
        /// `ref` values naming a referrer (tracking whatever the host).
        const REF_SOURCES: &[&str] = &["", "rss", "feed", "twitter", "newsletter", "RSS"];
        /// Parameters that select content.
        const CONTENT: &[&str] = &[
            "id", "page", "q", "p", "lang", "story", "v", "section", "sort", "article", "s",
            "offset", "tag", "year", "ampm", "utm", "ref_id",
        ];
        const AMP_SUFFIXES: [&str; 3] = ["/amp/", "/amp", ".amp"];

        #[derive(Debug, Clone)]
        struct Param {
            name: String,
            value: String,
            tracking: bool,
            /// `name` alone, without `=` (only when the value is empty).
            bare: bool,
        }

        fn mixed_case(s: &str, mask: u64) -> String {
            s.chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-zA-Z0-9]{0,8}",
                // Separators and escapes a value must survive: & = # + % space, any script.
                "[a-z0-9&=#+%;/?. é漢-]{0,10}",
            ]
        }

        fn param() -> impl Strategy<Value = Param> {
            let p = |name: String, value: String, tracking: bool, bare: bool| Param {
                bare: bare && value.is_empty(),
                name,
                value,
                tracking,
            };
            prop_oneof![
                3 => (prop::sample::select(TRACKING), any::<u64>(), value(), any::<bool>())
                    .prop_map(move |(n, mask, v, b)| p(mixed_case(n, mask), v, true, b)),
                1 => (prop::sample::select(&["ref", "ref_src"][..]), prop::sample::select(REF_SOURCES))
                    .prop_map(move |(n, v)| p(n.to_string(), v.to_string(), true, false)),
                4 => (
                    prop_oneof![
                        prop::sample::select(CONTENT).prop_map(str::to_string),
                        "x[a-z0-9_]{0,6}",
                    ],
                    value(),
                    any::<bool>(),
                )
                    .prop_map(move |(n, v, b)| p(n, v, false, b)),
                // `ref=v2` selects a version on some sites: kept.
                1 => (0u8..10).prop_map(move |d| p("ref".into(), format!("v{d}"), false, false)),
            ]
        }

        fn host() -> impl Strategy<Value = String> {
            let label = prop_oneof![
                4 => "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?",
                1 => Just("amp".to_string()),
                1 => "[A-Z][a-zA-Z0-9]{0,5}",
                1 => Just("bücher".to_string()),
            ];
            prop_oneof![
                6 => (0usize..3, prop::collection::vec(label, 0..3), "[a-z]{2,6}").prop_map(
                    |(amps, labels, tld)| {
                        let mut h = "amp.".repeat(amps);
                        for l in labels {
                            h.push_str(&l);
                            h.push('.');
                        }
                        h + &tld
                    }
                ),
                1 => (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.{a}.{b}.1")),
                1 => Just("localhost".to_string()),
                1 => Just("amp.localhost".to_string()),
            ]
        }

        fn path() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                6 => "[a-zA-Z0-9_~-]{1,10}",
                2 => "[a-z]{0,4}\\.[a-z]{1,4}",
                1 => Just("amp".to_string()),
                1 => prop::sample::select(&[".", "..", "", "%2e", "..amp", "...amp", "%2e.amp"][..])
                    .prop_map(str::to_string),
                1 => "[a-zé漢!$&'()*+,;=:@.%-]{1,8}",
            ];
            (
                prop::collection::vec(segment, 0..5),
                prop::sample::select(
                    &["", "/", "/amp", "/amp/", ".amp", "/amp/amp", "/amp.amp"][..],
                ),
            )
                .prop_map(|(segs, suffix)| {
                    let mut p: String = segs.iter().map(|s| format!("/{s}")).collect();
                    p.push_str(suffix);
                    p
                })
        }

        fn url_parts() -> impl Strategy<Value = (String, Vec<Param>)> {
            (
                prop::sample::select(&["http", "https", "HTTP", "Https"][..]),
                host(),
                prop_oneof![
                    Just(None),
                    Just(Some(80u16)),
                    Just(Some(443u16)),
                    (1u16..=65535).prop_map(Some),
                ],
                path(),
                prop::collection::vec(param(), 0..6),
                any::<bool>(),
                proptest::option::of("[a-z0-9#?/ =&]{0,8}"),
            )
                .prop_map(|(scheme, host, port, path, params, empty_q, fragment)| {
                    let mut s = format!("{scheme}://{host}");
                    if let Some(p) = port {
                        s.push_str(&format!(":{p}"));
                    }
                    s.push_str(&path);
                    if !params.is_empty() || empty_q {
                        s.push('?');
                    }
                    let pairs: Vec<String> = params
                        .iter()
                        .map(|p| {
                            let n: String = byte_serialize(p.name.as_bytes()).collect();
                            let v: String = byte_serialize(p.value.as_bytes()).collect();
                            if p.bare {
                                n
                            } else {
                                format!("{n}={v}")
                            }
                        })
                        .collect();
                    s.push_str(&pairs.join("&"));
                    if let Some(f) = fragment {
                        s.push('#');
                        s.push_str(&f);
                    }
                    (s, params)
                })
        }

        /// `long` is `short` plus one or more AMP suffixes.
        fn strips_to(long: &str, short: &str) -> bool {
            let mut cur = long;
            while cur != short {
                match AMP_SUFFIXES.iter().find_map(|s| cur.strip_suffix(s)) {
                    Some(r) if r.len() >= short.len() => cur = r,
                    _ => return false,
                }
            }
            true
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 2048,
                max_global_rejects: 100_000,
                ..ProptestConfig::default()
            })]

            /// For http(s): idempotent; same scheme, port and user; the host
            /// only loses leading `amp.` labels; the path only loses AMP
            /// suffixes; no fragment; tracking parameters gone and every
            /// other parameter kept, in order, with its value.
            #[test]
            fn canonical_url_keeps_meaning((s, params) in url_parts()) {
                let parsed = Url::parse(&s);
                prop_assume!(parsed.is_ok(), "unparsable: {}", s);
                let u = parsed.unwrap();
                let c = canonical_url(&u);
                let again = canonical_url(&c);
                prop_assert_eq!(again.as_str(), c.as_str(), "not idempotent: {}", s);
                prop_assert_eq!(c.scheme(), u.scheme());
                prop_assert_eq!(c.port(), u.port());
                prop_assert_eq!(c.username(), u.username());
                prop_assert_eq!(c.fragment(), None);

                let (uh, ch) = (u.host_str().unwrap_or(""), c.host_str().unwrap_or(""));
                let mut removed = uh.strip_suffix(ch).unwrap_or("?");
                while let Some(r) = removed.strip_prefix("amp.") {
                    removed = r;
                }
                prop_assert!(removed.is_empty(), "host {} became {}", uh, ch);
                prop_assert!(uh == ch || ch.contains('.'), "host {} became {}", uh, ch);

                prop_assert!(
                    c.path() == u.path() || strips_to(u.path(), c.path()),
                    "path {} became {} ({})", u.path(), c.path(), s
                );
                prop_assert!(c.path().starts_with('/'));

                let kept: Vec<(String, String)> =
                    c.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                let want: Vec<(String, String)> = params
                    .iter()
                    .filter(|p| !p.tracking)
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect();
                prop_assert_eq!(&kept, &want, "query of {}", s);
                if want.is_empty() {
                    prop_assert_eq!(c.query(), None);
                }
            }

            /// Loosely formed URL strings: still idempotent, host and path
            /// changed only as above; other schemes only lose the fragment.
            #[test]
            fn canonical_url_is_idempotent_on_odd_urls(
                s in "(https?|HTTP|ftp|wss?|mailto|foo):(//)?([a-zA-Z0-9é-]{1,8}\\.){0,3}[a-zA-Z0-9-]{1,8}(:[0-9]{1,4})?([/\\\\?#][a-zA-Z0-9.:@%/?&=#;+_~\\\\é-]{0,40})?"
            ) {
                let parsed = Url::parse(&s);
                prop_assume!(parsed.is_ok());
                let u = parsed.unwrap();
                let c = canonical_url(&u);
                let again = canonical_url(&c);
                prop_assert_eq!(again.as_str(), c.as_str(), "not idempotent: {}", s);
                prop_assert_eq!(c.fragment(), None);
                if matches!(u.scheme(), "http" | "https") {
                    let (uh, ch) = (u.host_str().unwrap_or(""), c.host_str().unwrap_or(""));
                    let mut removed = uh.strip_suffix(ch).unwrap_or("?");
                    while let Some(r) = removed.strip_prefix("amp.") {
                        removed = r;
                    }
                    prop_assert!(removed.is_empty(), "host {} became {}", uh, ch);
                    prop_assert!(
                        c.path() == u.path() || strips_to(u.path(), c.path()),
                        "path {} became {} ({})", u.path(), c.path(), s
                    );
                } else {
                    let mut bare = u.clone();
                    bare.set_fragment(None);
                    prop_assert_eq!(c.as_str(), bare.as_str());
                }
            }
        }
    }
}
