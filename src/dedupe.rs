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

/// The words of `text` (runs of letters and digits), each lowercased as a
/// word on its own, joined by single spaces: what signatures and block
/// fingerprints hash. One string for the whole text: a string per word was
/// a third of a pass's allocations.
pub fn normalize_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        if w.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if w.is_ascii() {
            let start = out.len();
            out.push_str(w);
            out[start..].make_ascii_lowercase();
        } else {
            // A word on its own: final sigma and the like depend on what
            // follows, and stored signatures were made word by word.
            out.push_str(&w.to_lowercase());
        }
    }
    out
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

/// Minhashes per signature: all of them in LSH bands.
pub const HASHES: usize = BANDS * ROWS;
/// LSH bands of `ROWS` minhashes each. A pair at Jaccard 0.5 shares a band
/// with probability 0.96, at 0.6 0.995, at 0.7 0.9999. Three rows, not two:
/// news text repeats 4-word phrases ("said in a statement"), so unrelated
/// stories sit around Jaccard 0.02-0.05, and with two rows every lookup
/// drew hundreds of candidates from a week of stories (the feed farm's
/// dedupe doubled the pass's CPU); with three it draws a handful. (16
/// bands of 4 rows missed one pair in ten at 0.6: a copy with a rewritten
/// lead and a cut last paragraph.)
pub const BANDS: usize = 24;
pub const ROWS: usize = 3;
/// Words per shingle.
const SHINGLE: usize = 4;
/// Texts with fewer shingles than this are too short to call copies: two
/// briefs can share a wire credit and little else.
pub const MIN_SHINGLES: usize = 30;
/// A text whose shingles are at least this share of the other's is a cut
/// copy of it, whatever their Jaccard similarity ...
const CONTAINMENT: f64 = 0.8;
/// ... when they share at least this many shingles (a paragraph or two,
/// not a credit line) ...
const MIN_SHARED: f64 = 50.0;
/// ... and their estimated Jaccard similarity is at least this. Below it the
/// estimate is too noisy to scale up to a containment: an LSH candidate
/// has a band of minhashes agreeing by selection, so at true Jaccard 0.1 an
/// estimate of 0.28 happens (seen on the feed farm); 0.35 keeps the route
/// for copies cut to half their length or more.
const CONTAINMENT_MIN_JACCARD: f64 = 0.35;

/// A b-bit MinHash signature (b = 16) over word shingles of normalised
/// text, with the text's shingle count.
///
/// 16 bits per minhash: two different minima agree there by chance once in
/// 65,536, so the similarity estimate is the full-width one for any
/// practical purpose, at half the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    mins: [u16; HASHES],
    /// Distinct shingles hashed (saturating).
    shingles: u16,
}

/// Bytes of `Signature::to_bytes`.
pub const SIGNATURE_BYTES: usize = 2 * HASHES + 2;

impl Signature {
    pub fn of(text: &str) -> Option<Signature> {
        let norm = normalize_words(text);
        let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        if words.len() < SHINGLE + MIN_SHINGLES {
            return None;
        }
        let mut hashes: Vec<u64> = words
            .windows(SHINGLE)
            .map(|w| {
                let mut h = SipHasher13::new_with_keys(K0, K1);
                for word in w {
                    h.write(word.as_bytes());
                    h.write_u8(b' ');
                }
                h.finish()
            })
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        let mut mins = [u32::MAX; HASHES];
        for x in &hashes {
            // HASHES multiply-shift hashes of one good hash: a multiply and an
            // add each (odd multipliers from SEEDS), which the compiler
            // vectorises; plenty independent for MinHash.
            for ((m, a), b) in mins.iter_mut().zip(SEEDS.iter()).zip(SEEDS.iter().rev()) {
                let v = ((a | 1).wrapping_mul(*x).wrapping_add(*b) >> 32) as u32;
                *m = (*m).min(v);
            }
        }
        Some(Signature {
            mins: mins.map(|m| m as u16),
            shingles: hashes.len().min(usize::from(u16::MAX)) as u16,
        })
    }

    /// Keys of the LSH bands: two texts share one when a whole band agrees.
    /// The band's number is hashed in, so bands do not meet each other.
    pub fn band_keys(&self) -> [u32; BANDS] {
        let mut keys = [0u32; BANDS];
        for (b, k) in keys.iter_mut().enumerate() {
            let mut h = SipHasher13::new_with_keys(K0, K1);
            h.write_u8(b as u8);
            for v in &self.mins[b * ROWS..(b + 1) * ROWS] {
                h.write_u16(*v);
            }
            *k = h.finish() as u32;
        }
        keys
    }

    /// Estimated Jaccard similarity of the two texts' shingle sets: the
    /// share of minhashes that agree.
    pub fn similarity(&self, other: &Signature) -> f64 {
        let same = self
            .mins
            .iter()
            .zip(other.mins.iter())
            .filter(|(a, b)| a == b)
            .count();
        same as f64 / HASHES as f64
    }

    /// Whether the two texts are one story: estimated Jaccard similarity at
    /// least `threshold`, or one text a cut copy of the other (most of its
    /// shingles in the other, estimated from the similarity and the two
    /// shingle counts). Returns the similarity when they are.
    pub fn same_story(&self, other: &Signature, threshold: f64) -> Option<f64> {
        let j = self.similarity(other);
        if j >= threshold {
            return Some(j);
        }
        if j < CONTAINMENT_MIN_JACCARD {
            return None;
        }
        let (a, b) = (f64::from(self.shingles), f64::from(other.shingles));
        // |A∩B| = J·|A∪B| = J·(|A| + |B| − |A∩B|)
        let shared = j * (a + b) / (1.0 + j);
        (shared >= MIN_SHARED && shared >= CONTAINMENT * a.min(b)).then_some(j)
    }

    /// The stored form: each minhash, then the shingle count, little-endian
    /// (`SIGNATURE_BYTES`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNATURE_BYTES);
        for v in self.mins.iter().chain([&self.shingles]) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads `to_bytes`.
    pub fn from_bytes(b: &[u8]) -> Option<Signature> {
        // Signatures of older versions (64 minhashes of other hash
        // functions) do not compare with these: None, and that story is
        // not near-matched.
        if b.len() != SIGNATURE_BYTES {
            return None;
        }
        let mut mins = [0u16; HASHES];
        for (v, c) in mins.iter_mut().zip(b.chunks_exact(2)) {
            *v = u16::from_le_bytes([c[0], c[1]]);
        }
        let shingles = u16::from_le_bytes([b[2 * HASHES], b[2 * HASHES + 1]]);
        Some(Signature { mins, shingles })
    }
}

/// The in-memory LSH index over the signatures of recent stories: band key
/// to story id, open addressing with linear probing (one 8-byte slot per
/// band, `key << 32 | id`, 0 empty).
///
/// Kept in memory rather than in a table: a table indexed by band key takes
/// a random page write per band per story, which cost ~5x the lookup. The
/// store rebuilds it from the stored signatures, so it holds only the
/// dedupe window: `BANDS` slots per story in it.
///
/// Split into segments of at most `SEGMENT_SLOTS` slots, filled one after
/// the other: one table for the whole window peaked at 2.25x its size while
/// it was rebuilt a size up (~600 bytes a story at 10,000 feeds), and each
/// freed table raised glibc's mmap threshold, so the pass's page buffers
/// fragmented the heap. A lookup probes every segment, a handful at any
/// realistic window (70,000 stories take two or three).
#[derive(Debug)]
pub struct NearIndex {
    /// Oldest first; only the last one takes new stories.
    segments: Vec<Segment>,
    segment_slots: usize,
}

/// 16 MiB: ~70,000 stories at the 80% load, so a lookup probes two or
/// three segments at a window of that size (8 MiB segments made the
/// lookup of `bench/index.sh` 6.5 -> 15 µs).
const SEGMENT_SLOTS: usize = 1 << 21;

#[derive(Debug)]
struct Segment {
    slots: Vec<u64>,
    used: usize,
    /// The lowest and highest id held (`u32::MAX`, 0 when none).
    min_id: u32,
    max_id: u32,
}

impl Default for NearIndex {
    fn default() -> Self {
        NearIndex {
            segments: Vec::new(),
            segment_slots: SEGMENT_SLOTS,
        }
    }
}

impl NearIndex {
    /// An index whose segments hold at most `slots` slots (tests: many
    /// segments from few stories).
    #[cfg(test)]
    fn with_segment_slots(slots: usize) -> Self {
        NearIndex {
            segments: Vec::new(),
            segment_slots: slots.max(BANDS * 2),
        }
    }

    /// Indexes story `id` (ids start at 1) under each of its band keys.
    pub fn insert(&mut self, id: u32, sig: &Signature) {
        debug_assert!(id != 0);
        let keys = sig.band_keys();
        // Indexed already (the store re-reads a row): nothing to add.
        if let Some(key) = keys.first() {
            let slot = u64::from(*key) << 32 | u64::from(id);
            if self
                .segments
                .iter()
                .any(|s| (s.min_id..=s.max_id).contains(&id) && s.contains(*key, slot))
            {
                return;
            }
        }
        let full = |s: &Segment| (s.used + BANDS) * 5 > s.slots.len() * 4;
        match self.segments.last_mut() {
            Some(s) if !full(s) => {}
            Some(s) if s.slots.len() < self.segment_slots => s.grow(self.segment_slots),
            _ => {
                let mut s = Segment {
                    slots: Vec::new(),
                    used: 0,
                    min_id: u32::MAX,
                    max_id: 0,
                };
                s.grow(self.segment_slots);
                self.segments.push(s);
            }
        }
        if let Some(s) = self.segments.last_mut() {
            for key in keys {
                s.insert(key, u64::from(key) << 32 | u64::from(id));
            }
            s.min_id = s.min_id.min(id);
            s.max_id = s.max_id.max(id);
        }
    }

    /// Ids of the stories sharing at least one band with `sig`, each once.
    pub fn candidates(&self, sig: &Signature) -> Vec<u32> {
        let mut out = Vec::new();
        if self.segments.is_empty() {
            return out;
        }
        let keys = sig.band_keys();
        for s in &self.segments {
            for key in keys {
                s.find(key, &mut out);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets every story with an id below `first` (pruned out of the
    /// window): whole segments go at once, a segment holding both sides is
    /// cleared in place.
    pub fn retain_from(&mut self, first: u32) {
        self.segments.retain(|s| s.used > 0 && s.max_id >= first);
        for s in &mut self.segments {
            if s.min_id < first {
                s.retain_from(first);
            }
        }
    }

    /// Slots in use (a story takes up to `BANDS`).
    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.used).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.slots.capacity() * std::mem::size_of::<u64>())
            .sum::<usize>()
            + self.segments.capacity() * std::mem::size_of::<Segment>()
    }
}

impl Segment {
    fn insert(&mut self, key: u32, slot: u64) {
        let n = self.slots.len();
        let mut i = home(key, n);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = slot;
                    self.used += 1;
                    return;
                }
                s if s == slot => return,
                _ => i = next(i, n),
            }
        }
    }

    fn contains(&self, key: u32, slot: u64) -> bool {
        let n = self.slots.len();
        let mut i = home(key, n);
        while self.slots[i] != 0 {
            if self.slots[i] == slot {
                return true;
            }
            i = next(i, n);
        }
        false
    }

    /// Pushes the id of every slot under `key`.
    fn find(&self, key: u32, out: &mut Vec<u32>) {
        let n = self.slots.len();
        let mut i = home(key, n);
        while self.slots[i] != 0 {
            if (self.slots[i] >> 32) as u32 == key {
                out.push(self.slots[i] as u32);
            }
            i = next(i, n);
        }
    }

    /// Clears the slots of ids below `first`, then re-seats every survivor
    /// in probe order from an empty slot, so no probe chain crosses a hole.
    /// A table left under a quarter full is rebuilt at half full instead:
    /// the oldest segment empties a prune at a time and would otherwise
    /// keep its whole size until the last of its stories left the window.
    fn retain_from(&mut self, first: u32) {
        let n = self.slots.len();
        for s in self.slots.iter_mut() {
            if *s != 0 && (*s as u32) < first {
                *s = 0;
                self.used -= 1;
            }
        }
        self.min_id = first;
        if self.used * 4 < n && n > 1024 {
            self.resize((self.used * 2).max(1024));
            return;
        }
        // The load stays under 0.8, so a non-empty table has an empty slot.
        let Some(start) = self.slots.iter().position(|s| *s == 0) else {
            return;
        };
        let mut i = start;
        for _ in 0..n {
            i = next(i, n);
            let slot = std::mem::take(&mut self.slots[i]);
            if slot != 0 {
                let mut j = home((slot >> 32) as u32, n);
                while self.slots[j] != 0 {
                    j = next(j, n);
                }
                self.slots[j] = slot;
            }
        }
    }

    /// Doubles the table, up to `max` slots: it settles between 40% and 80%
    /// full, rebuilt in O(n) at each step.
    fn grow(&mut self, max: usize) {
        self.resize((self.slots.len() * 2).clamp(1024.min(max), max));
    }

    /// Rebuilds the table at `n` slots (more than `used`).
    fn resize(&mut self, n: usize) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![0; n];
        for slot in old.into_iter().filter(|s| *s != 0) {
            let mut i = home((slot >> 32) as u32, n);
            while self.slots[i] != 0 {
                i = next(i, n);
            }
            self.slots[i] = slot;
        }
    }
}

/// Any table size, not only powers of two: the hash, spread over the table
/// by a multiply-shift range reduction.
fn home(key: u32, n: usize) -> usize {
    let h = u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((u128::from(h) * n as u128) >> 64) as usize
}

fn next(i: usize, n: usize) -> usize {
    if i + 1 == n {
        0
    } else {
        i + 1
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
        assert_eq!(sa.shingles, 397);

        let stored = sa.to_bytes();
        assert_eq!(stored.len(), SIGNATURE_BYTES);
        let back = Signature::from_bytes(&stored).unwrap();
        assert_eq!(back, sa);
        // Signatures of older versions (64 minhashes of other hashes): none.
        assert_eq!(Signature::from_bytes(&stored[..128]), None);
        assert_eq!(Signature::from_bytes(&[0; 256]), None);
        assert_eq!(Signature::from_bytes(&stored[1..]), None);
    }

    /// A copy cut to its first half is one story (containment) though its
    /// Jaccard similarity is about 0.5 or below; a short text that shares a
    /// boilerplate paragraph with a long one is not, nor is a text that
    /// shares its first paragraph and nothing else.
    #[test]
    fn cut_copies_match_by_containment_and_shared_boilerplate_does_not() {
        let a = story(600, 3);
        let half: String = a.split(' ').take(280).collect::<Vec<_>>().join(" ");
        let (sa, sh) = (Signature::of(&a).unwrap(), Signature::of(&half).unwrap());
        let j = sa.similarity(&sh);
        assert!(j < 0.5, "{j}");
        assert_eq!(sa.same_story(&sh, 0.5), Some(j));
        assert_eq!(sh.same_story(&sa, 0.5), Some(j));

        let credit = story(40, 9);
        let brief = format!("{} {credit}", story(8, 10));
        let long = format!("{} {credit} {}", story(300, 11), story(300, 12));
        let (sb, sl) = (
            Signature::of(&brief).unwrap(),
            Signature::of(&long).unwrap(),
        );
        assert_eq!(sb.same_story(&sl, 0.5), None, "{}", sb.similarity(&sl));

        let lead = story(60, 13);
        let x = format!("{lead} {}", story(300, 14));
        let y = format!("{lead} {}", story(300, 15));
        let (sx, sy) = (Signature::of(&x).unwrap(), Signature::of(&y).unwrap());
        assert_eq!(sx.same_story(&sy, 0.5), None, "{}", sx.similarity(&sy));
    }

    #[test]
    fn near_index_finds_copies_among_many_stories() {
        let mut index = NearIndex::default();
        assert!(index
            .candidates(&Signature::of(&story(200, 1)).unwrap())
            .is_empty());
        for id in 1..=3000u32 {
            index.insert(
                id,
                &Signature::of(&story(200, u64::from(id) * 7919)).unwrap(),
            );
        }
        // Indexing a story twice adds nothing.
        let len = index.len();
        index.insert(5, &Signature::of(&story(200, 5 * 7919)).unwrap());
        assert_eq!(index.len(), len);
        assert!(index.heap_bytes() >= 8 * len);

        let original = story(200, 1234 * 7919);
        let copy = format!("PARIS (AFP) — {original} (Reporting by the wire desk)");
        let found = index.candidates(&Signature::of(&copy).unwrap());
        assert!(found.contains(&1234), "{found:?}");
        assert!(found.len() < 5, "{found:?}");
        let unrelated = index.candidates(&Signature::of(&story(200, 1)).unwrap());
        assert!(unrelated.len() < 5, "{unrelated:?}");

        // Pruned out of the window: stories below 2000 go, the rest stay.
        index.retain_from(2000);
        assert!(!index
            .candidates(&Signature::of(&copy).unwrap())
            .contains(&1234));
        let kept = story(200, 2345 * 7919);
        assert!(index
            .candidates(&Signature::of(&kept).unwrap())
            .contains(&2345));
        assert!(index.len() <= 1001 * BANDS && index.len() > 900 * BANDS);
        index.retain_from(u32::MAX);
        assert!(index.is_empty());
        index.insert(7, &Signature::of(&kept).unwrap());
        assert_eq!(index.candidates(&Signature::of(&kept).unwrap()), vec![7]);
    }

    #[test]
    fn near_index_segments_fill_in_turn_and_go_whole() {
        // ~40 stories a segment.
        let mut index = NearIndex::with_segment_slots(1200);
        let sig = |id: u32| Signature::of(&story(200, u64::from(id) * 7919)).unwrap();
        for id in 1..=400u32 {
            index.insert(id, &sig(id));
        }
        assert!(index.segments.len() >= 10, "{}", index.segments.len());
        assert!(index.segments.iter().all(|s| s.slots.len() <= 1200));
        for id in [1, 41, 200, 399, 400] {
            assert!(index.candidates(&sig(id)).contains(&id), "{id}");
        }
        // Re-reading a story from an older segment adds nothing.
        let len = index.len();
        index.insert(3, &sig(3));
        assert_eq!(index.len(), len);

        // A segment mostly pruned shrinks in place.
        let mut one = NearIndex::with_segment_slots(1 << 14);
        for id in 1..=400u32 {
            one.insert(id, &sig(id));
        }
        assert_eq!(one.segments.len(), 1);
        assert_eq!(one.segments[0].slots.len(), 1 << 14);
        one.retain_from(391);
        assert_eq!(one.segments[0].slots.len(), 1024);
        for id in 385..=400u32 {
            assert_eq!(one.candidates(&sig(id)).contains(&id), id >= 391, "{id}");
        }

        let before = (index.segments.len(), index.heap_bytes());
        index.retain_from(300);
        assert!(index.segments.len() < before.0 / 2);
        assert!(index.heap_bytes() < before.1 / 2);
        assert!(!index.candidates(&sig(299)).contains(&299));
        assert!(index.candidates(&sig(300)).contains(&300));
        assert_eq!(index.len(), 101 * BANDS);
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

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            /// The same words, hashed the same, as when each was lowercased
            /// into a string of its own: stored signatures and block counts
            /// stay comparable.
            #[test]
            fn normalize_words_lowercases_word_by_word(
                text in "([a-zA-Z0-9 .,'’-]|ΟΔΟΣ|Σ|İ|ß|Ǆ|日本|\\PC){0,40}"
            ) {
                let each: Vec<String> = text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                prop_assert_eq!(normalize_words(&text), each.join(" "));
            }

            /// The index against a plain list: after any inserts (small
            /// tables, so probe chains wrap and cross, over many segments)
            /// and prunes, a lookup returns exactly the live stories sharing
            /// a band key.
            #[test]
            fn near_index_agrees_with_a_list(
                ops in prop::collection::vec((0u8..8, 1u32..400, 0usize..40), 1..400),
                segment_slots in 48usize..4000,
            ) {
                let sigs: Vec<Signature> =
                    (0..40).map(|seed| Signature::of(&story(60, seed)).unwrap()).collect();
                let sig = |seed: usize| sigs[seed].clone();
                let mut index = NearIndex::with_segment_slots(segment_slots);
                let mut model: Vec<(u32, [u32; BANDS])> = Vec::new();
                let mut first = 0u32;
                for (op, id, seed) in ops {
                    if op == 0 {
                        first = first.max(id / 2);
                        index.retain_from(first);
                        model.retain(|(i, _)| *i >= first);
                    } else if id >= first {
                        let s = sig(seed);
                        index.insert(id, &s);
                        model.push((id, s.band_keys()));
                    }
                    let probe = sig(seed);
                    let keys = probe.band_keys();
                    let mut want: Vec<u32> = model
                        .iter()
                        .filter(|(_, k)| k.iter().any(|x| keys.contains(x)))
                        .map(|(i, _)| *i)
                        .collect();
                    want.sort_unstable();
                    want.dedup();
                    prop_assert_eq!(index.candidates(&probe), want);
                }
            }
        }
    }
}
