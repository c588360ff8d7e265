//! Fixtures: realistic article pages (with the boilerplate an extractor has to
//! drop), RSS 2.0 / Atom feed builders, and assertions on extracted text.

use chrono::{DateTime, Utc};

/// Strings that only occur in page boilerplate; none may reach extracted text.
pub const BOILERPLATE: &[&str] = &[
    // nav / masthead
    "Skip to main content",
    "Newsletters",
    "Sign in",
    "Subscribe for $1",
    // share bar
    "Share this article",
    "Copy link",
    "Share on Facebook",
    // cookie banner
    "We use cookies",
    "Accept all cookies",
    "Manage preferences",
    // related stories
    "Related stories",
    "Council approves new bike lanes downtown",
    "Five things to know before the weekend",
    "Opinion: why the ferry timetable still matters",
    // app promo
    "Download our app",
    "Available for Android and iOS",
    // footer
    "All rights reserved",
    "Privacy policy",
];

/// Assert no boilerplate string occurs in `text`.
pub fn assert_no_boilerplate(text: &str, context: &str) {
    for b in BOILERPLATE {
        assert!(
            !text.contains(b),
            "{context}: boilerplate {b:?} leaked into extracted text:\n{text}"
        );
    }
}

/// Hand-written article bodies on unrelated subjects, so that no two stories
/// in one test look alike to a near-duplicate detector (shared templates
/// would make every story a "copy" of every other one).
pub const BODIES: &[[&str; 4]] = &[
    [
        "The harbour bridge reopened to traffic on Tuesday morning after eleven weeks of repairs to its corroded steel bearings, ending long detours for commuters who had been forced onto the ring road.",
        "Engineers replaced forty-two bearings and resurfaced the eastern approach, working overnight shifts to keep the shipping channel open beneath the span for container vessels and the island ferry.",
        "\u{201C}We found more corrosion than the survey suggested, but the crews absorbed the delay,\u{201D} said Martina Kovac, the chief engineer, who described the structure as sound for another forty years.",
        "Local traders on Quay Street said footfall had fallen by a third during the closure. Several of them plan to ask the port authority for rate relief to cover the lost summer weeks.",
    ],
    [
        "The central library will stay open until nine o'clock on weekday evenings from April, after a pilot scheme last autumn drew more students and shift workers than librarians had expected.",
        "Visitor counts during the trial rose by nearly sixty percent after six o'clock, with the quiet study floor and the free printers proving the most popular services among younger readers.",
        "The extra hours will be staffed by volunteers from the Friends of the Library group alongside two newly funded posts, according to a report presented to the culture committee on Thursday.",
        "Branch libraries in the northern suburbs are not included. Campaigners there argue that residents without cars cannot reach the centre easily and have started a petition for equal treatment.",
    ],
    [
        "Orchards across the valley have reported their largest apple harvest in two decades, helped by a frost-free spring and steady rain through the late summer ripening period.",
        "Growers picked an estimated eighteen thousand tonnes, much of it Cox and Bramley, and cold stores near Ashby have been running at capacity since the middle of October.",
        "Prices at the wholesale market fell sharply as a result, and some smaller farms have turned surplus fruit into cider and juice rather than selling it below the cost of picking.",
        "Seasonal workers, many of whom travel from abroad each year, were in short supply again. Farmers say visa delays meant some fruit was left on the trees in the highest orchards.",
    ],
    [
        "Passengers boarded the first trams on the new eastern branch at dawn on Monday, opening a direct link between the railway station and the hospital campus for the first time.",
        "The three-kilometre extension adds five stops and was built largely along an old freight alignment, which kept demolition to a minimum and avoided a second bridge over the canal.",
        "Operators expect about nine thousand journeys a day within a year. Trams will run every six minutes at peak times and every twelve minutes during evenings and on Sundays.",
        "Cyclists have complained that the track crossing at Mill Lane is dangerous in wet weather, and the transport authority has promised to test a rubber infill on the rails there.",
    ],
    [
        "The night market is returning to the old quarter this summer after a three-year absence, with about sixty stalls selling street food, vintage clothing and handmade jewellery on Friday evenings.",
        "Organisers moved the market away from the cathedral square after neighbours objected to noise, and it will now occupy the cobbled streets around the former corn exchange instead.",
        "Stallholders will pay a reduced pitch fee for the first month. The events office hopes the lower cost will attract young traders who could not afford the city's weekend craft fair.",
        "Police said they would close two side roads to vehicles from six in the evening and would place officers near the taxi rank to manage crowds leaving after midnight.",
    ],
    [
        "Five volunteer crew members of the lifeboat station have received bravery medals for rescuing three fishermen from a sinking trawler during a January gale off the northern headland.",
        "Waves of more than six metres battered the vessel as the crew manoeuvred alongside in darkness, passing a towline twice before the stricken boat could be pulled clear of the rocks.",
        "Coxswain Owen Pritchard, a plumber by trade, said he accepted the award on behalf of every family that waits on the slipway when the pagers go off in the middle of the night.",
        "The station relies entirely on donations. A new boathouse, needed to house a larger all-weather boat, is expected to cost two million and fundraising will begin in the spring.",
    ],
    [
        "Councillors have approved a plan to raise and strengthen the sea wall along the promenade, after winter storms overtopped the existing defences four times in two years.",
        "The scheme will add a curved concrete parapet roughly a metre high and replace the crumbling steps down to the beach, which have been fenced off since a partial collapse.",
        "Construction is due to start in September to avoid the tourist season and should take eighteen months. Beach huts on the western section will be removed temporarily during the work.",
        "Some seafront residents argued the taller wall would spoil sea views from ground-floor flats, but the coastal engineer told the meeting that flood risk outweighed those concerns.",
    ],
    [
        "The new flood barrier on the river passed its first full-scale test on Saturday, when engineers raised all six steel gates against an artificially high tide in under forty minutes.",
        "The barrier protects about four thousand homes in the lower town, many of which flooded in the winter of 2015 when the old earth embankments were overwhelmed by meltwater.",
        "Inspectors from the environment agency watched the test from the control tower and will publish a formal report next month before the structure is handed over to the river authority.",
        "Anglers have welcomed a fish pass built into the southern abutment, which allows salmon and sea trout to continue upstream when the gates are lowered during storm surges.",
    ],
    [
        "The regional airport will add direct flights to four European cities this spring, doubling its list of international routes and ending the need for many travellers to change in the capital.",
        "A low-cost carrier will base two aircraft at the airport from late March, creating about one hundred and twenty jobs in cabin crew, ground handling and aircraft maintenance.",
        "Airport managers said passenger numbers had recovered to pre-pandemic levels last year and that the terminal's security hall would be expanded to cope with the expected growth.",
        "Residents under the flight path remain worried about night noise. The airport has agreed to ban departures between eleven at night and six in the morning for the larger jets.",
    ],
    [
        "Workers have finally completed the retractable roof over the football stadium, nearly two years late and well over budget, after a long dispute between the club and its main contractor.",
        "The roof's two fabric panels slide along curved steel trusses and can close in about fifteen minutes, allowing concerts and rugby internationals to go ahead whatever the weather.",
        "The final bill is thought to exceed ninety million, against an original estimate of sixty. The club says the overrun was covered by a loan and will not affect ticket prices.",
        "The first match under the closed roof is scheduled for next Saturday, and the club has invited construction workers and their families as guests of honour in the main stand.",
    ],
    [
        "The central bank held its main interest rate at four and a half percent on Tuesday, saying that inflation was easing but remained too high to justify cutting borrowing costs yet.",
        "Seven members of the monetary policy committee voted to keep rates unchanged, while two argued for a quarter-point cut, citing weak retail sales and a slowing housing market.",
        "Mortgage lenders said fixed-rate deals had already priced in cuts later in the year. Savers, meanwhile, continue to benefit from the best returns on deposits in over a decade.",
        "Economists expect the first reduction in the summer if wage growth keeps slowing. The governor told reporters that the committee would not pre-commit to any particular date.",
    ],
    [
        "The railway museum has unveiled a restored steam locomotive built in 1912, after a volunteer team spent nine years rebuilding its boiler, wheels and cab from a rusting wreck.",
        "The engine had been rescued from a scrapyard in the 1970s and stood outdoors for decades. Restorers had to cast new brass fittings using drawings found in a company archive.",
        "It will haul heritage trains along the branch line on summer weekends, with the first public journeys already sold out, according to the museum's volunteer booking office.",
        "The project was funded by a lottery grant and thousands of small donations. Museum staff said a second engine, a tank locomotive from 1924, would be the next restoration.",
    ],
];

/// The `n`-th article body (wraps around `BODIES`).
pub fn paragraphs(n: usize) -> Vec<String> {
    BODIES[n % BODIES.len()]
        .iter()
        .map(|p| p.to_string())
        .collect()
}

/// Total whitespace-separated words.
pub fn word_count<S: AsRef<str>>(parts: &[S]) -> usize {
    parts
        .iter()
        .map(|p| p.as_ref().split_whitespace().count())
        .sum()
}

/// Minimal HTML escaping for text and attribute values.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Options for [`article_page_with`].
pub struct PageOpts<'a> {
    pub title: &'a str,
    pub byline: &'a str,
    pub paragraphs: &'a [String],
    pub canonical: Option<&'a str>,
    /// `<meta charset=...>` value; `None` omits the tag.
    pub meta_charset: Option<&'a str>,
    pub lang: &'a str,
}

/// A realistic news article page (UTF-8 meta charset) around `paragraphs`.
pub fn article_page(title: &str, paragraphs: &[String], canonical: Option<&str>) -> String {
    article_page_with(&PageOpts {
        title,
        byline: "Jane Doe",
        paragraphs,
        canonical,
        meta_charset: Some("utf-8"),
        lang: "en",
    })
}

/// A realistic news article page: masthead/nav, cookie banner, share bar,
/// the article, a "Related stories" list, an app-download promo and a footer.
/// Paragraph text is HTML-escaped.
pub fn article_page_with(o: &PageOpts<'_>) -> String {
    let t = html_escape(o.title);
    let meta = o
        .meta_charset
        .map(|c| format!("<meta charset=\"{c}\">\n"))
        .unwrap_or_default();
    let canonical = o
        .canonical
        .map(|c| format!("<link rel=\"canonical\" href=\"{}\">\n", html_escape(c)))
        .unwrap_or_default();
    let body: String = o
        .paragraphs
        .iter()
        .map(|p| format!("      <p>{}</p>\n", html_escape(p)))
        .collect();
    format!(
        r##"<!DOCTYPE html>
<html lang="{lang}">
<head>
{meta}<title>{t} | The Daily Example</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta property="og:title" content="{t}">
<meta property="og:type" content="article">
{canonical}<link rel="stylesheet" href="/static/site.css">
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
<style>.cookie-banner {{ position: fixed; bottom: 0; }}</style>
</head>
<body>
<a class="skip-link" href="#main">Skip to main content</a>
<div id="cookie-banner" class="cookie-banner" role="dialog">
  <p>We use cookies to improve your experience, measure audiences and show you personalised ads.
     By clicking Accept you agree to our use of cookies.</p>
  <button>Accept all cookies</button> <button>Manage preferences</button>
</div>
<header class="site-header">
  <a class="logo" href="/">The Daily Example</a>
  <nav class="main-nav" aria-label="Sections">
    <ul>
      <li><a href="/">Home</a></li>
      <li><a href="/world">World</a></li>
      <li><a href="/business">Business</a></li>
      <li><a href="/sport">Sport</a></li>
      <li><a href="/newsletters">Newsletters</a></li>
    </ul>
  </nav>
  <div class="account"><a href="/login">Sign in</a> <a class="cta" href="/subscribe">Subscribe for $1</a></div>
</header>
<main id="main">
  <article class="story">
    <header>
      <h1 class="headline">{t}</h1>
      <div class="byline">By <a rel="author" href="/authors/jane">{byline}</a> &middot; <time datetime="2024-03-05T14:30:00Z">5 March 2024</time></div>
    </header>
    <div class="share-bar">
      <span>Share this article</span>
      <a href="https://facebook.com/sharer">Share on Facebook</a>
      <a href="https://x.com/intent/post">Post</a>
      <button class="copy">Copy link</button>
    </div>
    <div class="article-body">
{body}    </div>
    <aside class="app-promo">
      <h3>Download our app</h3>
      <p>Get breaking news alerts, offline reading and the daily puzzle. Available for Android and iOS.</p>
    </aside>
  </article>
  <section class="related" aria-label="Related stories">
    <h2>Related stories</h2>
    <ul>
      <li><a href="/news/bike-lanes">Council approves new bike lanes downtown</a></li>
      <li><a href="/news/weekend">Five things to know before the weekend</a></li>
      <li><a href="/opinion/ferry">Opinion: why the ferry timetable still matters</a></li>
    </ul>
  </section>
</main>
<footer class="site-footer">
  <p>&copy; 2024 The Daily Example. All rights reserved.</p>
  <a href="/privacy">Privacy policy</a> <a href="/terms">Terms</a>
</footer>
<script src="/static/app.js" defer></script>
</body>
</html>
"##,
        lang = o.lang,
        byline = html_escape(o.byline),
    )
}

/// XML text escaping.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// One feed item.
#[derive(Clone, Debug)]
pub struct Item {
    pub title: String,
    pub link: String,
    pub published: DateTime<Utc>,
    /// Rendered verbatim as RSS `pubDate` when set (e.g. with a `-0500` offset);
    /// otherwise `published` in RFC 2822 / RFC 3339.
    pub pub_date_raw: Option<String>,
    pub guid: Option<String>,
    pub author: Option<String>,
    pub summary: String,
}

impl Item {
    pub fn new(title: &str, link: &str, published: DateTime<Utc>) -> Item {
        Item {
            title: title.to_string(),
            link: link.to_string(),
            published,
            pub_date_raw: None,
            guid: None,
            author: None,
            summary: format!("Summary: {title}"),
        }
    }

    pub fn author(mut self, a: &str) -> Item {
        self.author = Some(a.to_string());
        self
    }

    pub fn guid(mut self, g: &str) -> Item {
        self.guid = Some(g.to_string());
        self
    }

    pub fn pub_date_raw(mut self, raw: &str) -> Item {
        self.pub_date_raw = Some(raw.to_string());
        self
    }
}

/// Parse an RFC 3339 timestamp into UTC (panics on bad input: test fixture).
pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad fixture date {s:?}: {e}"))
        .with_timezone(&Utc)
}

/// An RSS 2.0 document (with the Dublin Core namespace for authors).
pub fn rss(channel_title: &str, site: &str, items: &[Item]) -> String {
    let mut s = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
  <title>{}</title>
  <link>{}</link>
  <description>Latest news from {}</description>
  <language>en</language>
  <lastBuildDate>Tue, 05 Mar 2024 15:00:00 GMT</lastBuildDate>
"#,
        xml_escape(channel_title),
        xml_escape(site),
        xml_escape(channel_title)
    );
    for it in items {
        let pub_date = it
            .pub_date_raw
            .clone()
            .unwrap_or_else(|| it.published.to_rfc2822());
        s.push_str("  <item>\n");
        s.push_str(&format!("    <title>{}</title>\n", xml_escape(&it.title)));
        s.push_str(&format!("    <link>{}</link>\n", xml_escape(&it.link)));
        let guid = it.guid.clone().unwrap_or_else(|| it.link.clone());
        s.push_str(&format!(
            "    <guid isPermaLink=\"false\">{}</guid>\n",
            xml_escape(&guid)
        ));
        s.push_str(&format!("    <pubDate>{pub_date}</pubDate>\n"));
        if let Some(a) = &it.author {
            s.push_str(&format!("    <dc:creator>{}</dc:creator>\n", xml_escape(a)));
        }
        s.push_str(&format!(
            "    <description>{}</description>\n",
            xml_escape(&it.summary)
        ));
        s.push_str("  </item>\n");
    }
    s.push_str("</channel>\n</rss>\n");
    s
}

/// An Atom 1.0 document.
pub fn atom(feed_title: &str, site: &str, items: &[Item]) -> String {
    let mut s = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>{}</title>
  <link href="{}"/>
  <id>{}</id>
  <updated>2024-03-05T15:00:00Z</updated>
"#,
        xml_escape(feed_title),
        xml_escape(site),
        xml_escape(site)
    );
    for it in items {
        let ts = it
            .published
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        s.push_str("  <entry>\n");
        s.push_str(&format!("    <title>{}</title>\n", xml_escape(&it.title)));
        s.push_str(&format!(
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
            xml_escape(&it.link)
        ));
        let id = it
            .guid
            .clone()
            .unwrap_or_else(|| format!("tag:example.com,2024:{}", it.link));
        s.push_str(&format!("    <id>{}</id>\n", xml_escape(&id)));
        s.push_str(&format!("    <published>{ts}</published>\n"));
        s.push_str(&format!("    <updated>{ts}</updated>\n"));
        if let Some(a) = &it.author {
            s.push_str(&format!(
                "    <author><name>{}</name></author>\n",
                xml_escape(a)
            ));
        }
        s.push_str(&format!(
            "    <summary>{}</summary>\n",
            xml_escape(&it.summary)
        ));
        s.push_str("  </entry>\n");
    }
    s.push_str("</feed>\n");
    s
}

/// Split extracted text into blocks separated by blank lines.
pub fn blocks(text: &str) -> Vec<String> {
    text.trim_end_matches('\n')
        .split("\n\n")
        .map(|b| b.to_string())
        .collect()
}

/// Assert `text` has the story layout: `title`, blank line, paragraphs
/// separated by exactly one blank line, one trailing `\n`; every expected
/// paragraph is its own block, in order; no boilerplate.
pub fn assert_story_text(text: &str, title: &str, paragraphs: &[String], context: &str) {
    assert!(
        text.ends_with('\n') && !text.ends_with("\n\n"),
        "{context}: text must end with exactly one \"\\n\":\n{text:?}"
    );
    assert!(
        !text.contains("\n\n\n"),
        "{context}: paragraphs must be separated by exactly one blank line:\n{text:?}"
    );
    assert!(
        !text.contains('\r'),
        "{context}: text contains CR characters:\n{text:?}"
    );
    let mut lines = text.split('\n');
    assert_eq!(
        lines.next(),
        Some(title),
        "{context}: first line must be the title; text:\n{text}"
    );
    assert_eq!(
        lines.next(),
        Some(""),
        "{context}: second line must be blank; text:\n{text}"
    );
    let body_blocks = blocks(text).into_iter().skip(1).collect::<Vec<_>>();
    let mut pos = 0;
    for p in paragraphs {
        match body_blocks[pos..].iter().position(|b| b == p) {
            Some(i) => pos += i + 1,
            None => panic!(
                "{context}: paragraph missing, altered or out of order:\n  {p:?}\nbody blocks:\n{body_blocks:#?}"
            ),
        }
    }
    assert_no_boilerplate(text, context);
}

/// The start of the slug we expect for a plain ASCII title: the first `n`
/// words lower-cased and joined with `-`.
pub fn slug_prefix(title: &str, n: usize) -> String {
    title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(n)
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("-")
}

/// JSON value rendered as a plain string (`"abc"` → `abc`, `42` → `42`).
pub fn json_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
