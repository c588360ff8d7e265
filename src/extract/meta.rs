//! Article metadata from the page head: title, author, date, canonical URL,
//! language. Sources in order of trust: JSON-LD, Open Graph / article meta
//! tags, then the visible page (`<h1>`, `<time>`, `<title>`).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::Value;
use url::Url;

use super::dom::{collapse, Meta};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Metadata {
    pub title: Option<String>,
    pub author: Option<String>,
    pub published: Option<DateTime<FixedOffset>>,
    pub canonical_url: Option<Url>,
    pub lang: Option<String>,
    pub site_name: Option<String>,
    /// JSON-LD `articleBody`, when the page has one.
    #[serde(skip)]
    pub ld_body: Option<String>,
}

#[derive(Default)]
struct Ld {
    headline: Option<String>,
    author: Option<String>,
    published: Option<String>,
    body: Option<String>,
}

pub(super) fn metadata(m: &Meta, base: Option<&Url>) -> Metadata {
    let ld = m
        .ld_json
        .iter()
        .find_map(|s| parse_ld(s))
        .unwrap_or_default();
    let site_name = m.meta("og:site_name").map(collapse);
    let page_title = m
        .title
        .as_deref()
        .map(collapse)
        .map(|t| strip_site_name(&t, site_name.as_deref()));
    // Sites append their name to og:title as often as to <title>.
    let title = m
        .meta("og:title")
        .or(m.meta("twitter:title"))
        .map(|t| strip_site_name(&collapse(t), site_name.as_deref()))
        .or(ld.headline.as_deref().map(collapse))
        .or_else(|| m.h1.first().cloned())
        .or(page_title)
        .filter(|t| !t.is_empty());
    let author = ld
        .author
        .or_else(|| m.meta("author").map(str::to_string))
        .or_else(|| {
            m.meta("article:author")
                .filter(|a| !a.starts_with("http"))
                .map(str::to_string)
        })
        .or_else(|| m.meta("dc.creator").map(str::to_string))
        .map(|a| collapse(&a))
        .filter(|a| !a.is_empty() && a.chars().count() < 200);
    let published = [
        ld.published.as_deref(),
        m.meta("article:published_time"),
        m.meta("datepublished"),
        m.meta("pubdate"),
        m.meta("publishdate"),
        m.meta("date"),
        m.meta("dc.date"),
        m.meta("dc.date.issued"),
        m.time_datetime.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find_map(parse_date);
    let canonical_url = m
        .canonical
        .as_deref()
        .or(m.meta("og:url"))
        .and_then(|c| match base {
            Some(b) => b.join(c.trim()).ok(),
            None => Url::parse(c.trim()).ok(),
        })
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let lang = m
        .lang
        .as_deref()
        .or(m.meta("og:locale"))
        .map(|l| l.trim().replace('_', "-"))
        .filter(|l| !l.is_empty() && l.len() <= 35);
    Metadata {
        title,
        author,
        published,
        canonical_url,
        lang,
        site_name,
        ld_body: ld.body,
    }
}

/// "Headline | Site", "Headline - Site" -> "Headline".
fn strip_site_name(title: &str, site: Option<&str>) -> String {
    for sep in [" | ", " – ", " — ", " - ", " :: ", " · "] {
        if let Some((head, tail)) = title.rsplit_once(sep) {
            let head_words = head.split_whitespace().count();
            let named = site.is_some_and(|s| tail.trim().eq_ignore_ascii_case(s.trim()));
            // A dash also joins a headline's own parts ("Boeing 737 - what
            // went wrong"), so an unnamed tail after one needs a longer head;
            // a bar or a middle dot is the site's separator.
            let min_head = match sep {
                _ if named => 1,
                " | " | " :: " | " · " => 2,
                _ => 3,
            };
            if (named || tail.split_whitespace().count() <= 4) && head_words >= min_head {
                return head.trim().to_string();
            }
        }
    }
    title.to_string()
}

pub(super) fn parse_date(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z",
        "%Y-%m-%d %H:%M:%S%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d);
        }
    }
    let utc = FixedOffset::east_opt(0)?;
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return d.and_local_timezone(utc).single();
        }
    }
    let day = s.get(..10)?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)?
        .and_local_timezone(utc)
        .single()
}

fn parse_ld(text: &str) -> Option<Ld> {
    let v: Value = serde_json::from_str(text.trim().trim_end_matches(';')).ok()?;
    let mut stack = vec![&v];
    let mut seen = 0;
    while let Some(v) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().rev()),
            Value::Object(o) => {
                if o.get("@type").is_some_and(is_article_type) {
                    return Some(Ld {
                        headline: o
                            .get("headline")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        author: o.get("author").and_then(person),
                        published: o
                            .get("datePublished")
                            .or(o.get("dateCreated"))
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        body: o
                            .get("articleBody")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    });
                }
                if let Some(g) = o.get("@graph") {
                    stack.push(g);
                }
                if let Some(m) = o.get("mainEntity") {
                    stack.push(m);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_article_type(t: &Value) -> bool {
    let is = |s: &str| {
        s.ends_with("Article") || s == "BlogPosting" || s == "Report" || s == "LiveBlogPosting"
    };
    match t {
        Value::String(s) => is(s),
        Value::Array(a) => a.iter().filter_map(Value::as_str).any(is),
        _ => false,
    }
}

fn person(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
        Value::Array(a) => {
            let names: Vec<String> = a.iter().filter_map(person).collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_come_off_titles() {
        let site = Some("Jornal do Porto");
        assert_eq!(
            strip_site_name("Obras no porto atrasam | Jornal do Porto", site),
            "Obras no porto atrasam"
        );
        assert_eq!(
            strip_site_name("Storm damage | Harbour", None),
            "Storm damage"
        );
        assert_eq!(
            strip_site_name("Floods - Harbour Post", Some("Harbour Post")),
            "Floods"
        );
        assert_eq!(
            strip_site_name("Boeing 737 - what went wrong", None),
            "Boeing 737 - what went wrong"
        );
        assert_eq!(strip_site_name("Live | Harbour", None), "Live | Harbour");
    }

    #[test]
    fn og_title_loses_the_site_name() {
        let m = Meta {
            metas: vec![
                (
                    "og:title".into(),
                    "Obras no porto atrasam | Jornal do Porto".into(),
                ),
                ("og:site_name".into(), "Jornal do Porto".into()),
            ],
            ..Meta::default()
        };
        assert_eq!(
            metadata(&m, None).title.as_deref(),
            Some("Obras no porto atrasam")
        );
    }
}
