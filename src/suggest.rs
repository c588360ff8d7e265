//! "Did you mean ...?" for config typos.
//!
//! serde already lists the accepted keys (or values) in its "unknown field"
//! and "unknown variant" messages, so the candidates come from the types
//! themselves and cannot drift from them: a key added to a config struct is
//! suggested without touching this file. A top-level key that belongs in a
//! table (`timeout` above `[fetch]`, `url` before the first `[[feed]]`) is
//! named with its table, found by probing each table for its own key list.

use serde::de::DeserializeOwned;

/// A key no table accepts, so probing a table lists all of its keys.
const PROBE_KEY: &str = "__gleaner_probe__";

/// Optimal-string-alignment distance (Levenshtein plus adjacent
/// transpositions), ASCII case-insensitive.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Three rows: i-2, i-1, i.
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a typo of
/// it: at most one edit for words up to 4 characters, else at most a third
/// of the word's length (two for `timout`, three for `learn_min_story`).
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let len = word.chars().count();
    let limit = if len <= 4 { 1 } else { (len / 3).max(2) };
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown
/// variant ..."), taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// `field` or `variant`.
    pub kind: &'static str,
    /// What was written.
    pub found: String,
    /// What is accepted there.
    pub expected: Vec<String>,
}

/// Parses serde's unknown-field / unknown-variant message.
pub fn parse_unknown(message: &str) -> Option<Unknown> {
    let (kind, rest) = if let Some(r) = message.strip_prefix("unknown field `") {
        ("field", r)
    } else if let Some(r) = message.strip_prefix("unknown variant `") {
        ("variant", r)
    } else {
        return None;
    };
    let (found, rest) = rest.split_once('`')?;
    // Every other backticked token after "expected" is an accepted name.
    let expected = rest
        .split_once("expected")
        .map(|(_, list)| {
            list.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Unknown {
        kind,
        found: found.to_string(),
        expected,
    })
}

/// The keys `table` accepts in a config of type `T` (whose required
/// top-level keys are `required`), in declaration order; `feed` is probed as
/// an array of tables. Empty when `table` is not a table.
pub fn table_keys<T: DeserializeOwned>(table: &str, required: &[&str]) -> Vec<String> {
    let mut doc = String::new();
    for key in required {
        doc.push_str(&format!("{key} = \"\"\n"));
    }
    if table == "feed" {
        doc.push_str("[[feed]]\n");
    } else {
        doc.push_str(&format!("[{table}]\n"));
    }
    doc.push_str(&format!("{PROBE_KEY} = 0\n"));
    match toml::from_str::<T>(&doc) {
        Ok(_) => Vec::new(),
        Err(e) => match parse_unknown(e.message().trim()) {
            Some(u) if u.kind == "field" && u.found == PROBE_KEY => u.expected,
            _ => Vec::new(),
        },
    }
}

/// Rewrites an unknown-key or unknown-value message with a suggestion, if
/// there is one worth making; otherwise returns the message unchanged.
/// `keys_of(table)` lists a top-level table's keys (see [`table_keys`]).
pub fn annotate(message: &str, keys_of: impl Fn(&str) -> Vec<String>) -> String {
    let Some(u) = parse_unknown(message) else {
        return message.to_string();
    };
    let list = u
        .expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (noun, accepted) = if u.kind == "field" {
        ("key", "known keys here")
    } else {
        ("value", "accepted values")
    };
    if let Some(best) = closest(&u.found, u.expected.iter().map(String::as_str)) {
        return format!(
            "unknown {noun} `{}`: did you mean `{best}`? ({accepted}: {list})",
            u.found
        );
    }
    // A top-level key that belongs in one of the tables.
    let top_level = u.kind == "field" && u.expected.iter().any(|k| k == "output_dir");
    if top_level {
        for table in &u.expected {
            let keys = keys_of(table);
            if keys.iter().any(|k| k.eq_ignore_ascii_case(&u.found)) {
                let header = if table == "feed" {
                    "[[feed]]".to_string()
                } else {
                    format!("[{table}]")
                };
                return format!(
                    "unknown top-level key `{}`: it belongs in a {header} table; put it below a `{header}` line (top-level keys: {list})",
                    u.found
                );
            }
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_transpositions() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("timout", "timeout"), 1);
        assert_eq!(distance("concurency", "concurrency"), 1);
        assert_eq!(distance("nmae", "name"), 1);
        assert_eq!(distance("Output_Dir", "output_dir"), 0);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_only_suggests_plausible_typos() {
        let keys = ["name", "url", "interval", "min_interval", "max_interval"];
        assert_eq!(closest("intervl", keys), Some("interval"));
        assert_eq!(closest("urll", keys), Some("url"));
        assert_eq!(closest("nmae", keys), Some("name"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("max_intreval", keys), Some("max_interval"));
        assert_eq!(closest("x", ["y"]), Some("y"));
        assert_eq!(closest("xy", ["ab"]), None);
    }

    #[test]
    fn parses_serde_messages() {
        let u = parse_unknown("unknown field `intervl`, expected one of `name`, `url`").unwrap();
        assert_eq!(u.kind, "field");
        assert_eq!(u.found, "intervl");
        assert_eq!(u.expected, ["name", "url"]);
        let u = parse_unknown("unknown variant `alway`, expected `auto` or `always`").unwrap();
        assert_eq!(u.kind, "variant");
        assert_eq!(u.expected, ["auto", "always"]);
        let u = parse_unknown("unknown field `x`, there are no fields").unwrap();
        assert!(u.expected.is_empty());
        assert!(parse_unknown("invalid type: integer `42`, expected a string").is_none());
    }

    #[test]
    fn annotate_suggests_or_places_or_leaves_alone() {
        let none = |_: &str| Vec::new();
        let m = annotate(
            "unknown field `concurency`, expected one of `timeout`, `concurrency`",
            none,
        );
        assert!(m.contains("did you mean `concurrency`?"), "{m}");
        let m = annotate(
            "unknown variant `alway`, expected one of `auto`, `always`, `never`",
            none,
        );
        assert!(
            m.contains("unknown value `alway`: did you mean `always`?"),
            "{m}"
        );
        let keys_of = |t: &str| match t {
            "fetch" => vec!["timeout".to_string()],
            _ => Vec::new(),
        };
        let m = annotate(
            "unknown field `timeout`, expected one of `output_dir`, `state_dir`, `fetch`",
            keys_of,
        );
        assert!(m.contains("belongs in a [fetch] table"), "{m}");
        let plain = "unknown field `zzzzzz`, expected one of `output_dir`, `fetch`";
        assert_eq!(annotate(plain, keys_of), plain);
        assert_eq!(annotate("expected a string", keys_of), "expected a string");
    }
}
