//! URL canonicalisation: idempotent, and never moves a URL to another host
//! (beyond dropping leading `amp.` labels).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(u) = url::Url::parse(s) else {
        return;
    };
    let c = gleaner::dedupe::canonical_url(&u);
    let again = gleaner::dedupe::canonical_url(&c);
    assert_eq!(again, c, "not idempotent for {u}");
    // The same host, or that host without leading `amp.` labels.
    let (before, after) = (u.host_str(), c.host_str());
    let same_site = match before {
        None => after.is_none(),
        Some(h) => {
            std::iter::successors(Some(h), |h| h.strip_prefix("amp.")).any(|h| Some(h) == after)
        }
    };
    assert!(same_site, "host changed: {u} -> {c}");
    assert_eq!(u.scheme(), c.scheme());
    let _ = gleaner::dedupe::url_key(&c);
});
