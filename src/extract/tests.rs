use super::*;

fn page(body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Port strike ends | Daily Ledger</title>\
         <meta property=\"og:title\" content=\"Port strike ends\"><link rel=\"canonical\" href=\"/news/port-strike\">\
         <meta property=\"article:published_time\" content=\"2026-11-10T08:30:00+01:00\">\
         <meta name=\"author\" content=\"Ana Ruiz\"></head><body>{body}</body></html>"
    )
}

const PROSE: [&str; 4] = [
    "Dock workers at the city's container port voted on Tuesday to end a strike that had idled cranes for nine days, the union said.",
    "The agreement raises wages by six percent over two years and limits night shifts, according to a statement from the port authority.",
    "Shipping lines had diverted more than forty vessels to neighbouring harbours during the stoppage, adding days to deliveries.",
    "Traders said the backlog of containers would take at least a week to clear, with perishable goods given priority at the gates.",
];

fn article_html(extra_inside: &str) -> String {
    let paras: String = PROSE.iter().map(|p| format!("<p>{p}</p>")).collect();
    page(&format!(
        "<div id=\"cookie-consent\" class=\"cc-banner\"><p>We use cookies to improve your experience.</p><button>Accept all</button></div>\
         <header class=\"site-header\"><nav><ul><li><a href=\"/\">Home</a></li><li><a href=\"/world\">World</a></li></ul></nav></header>\
         <main><article><h1>Port strike ends</h1><div class=\"share-bar\"><span>Share this article</span><a href=\"#\">Facebook</a></div>\
         <div class=\"story-body\">{paras}{extra_inside}</div></article>\
         <aside><section class=\"related\"><h2>Related stories</h2><ul><li><a href=\"/a\">Rail strike looms after talks fail</a></li></ul></section></aside></main>\
         <footer><p>© 2026 Daily Ledger. All rights reserved.</p></footer>"
    ))
}

#[test]
fn keeps_the_article_and_drops_the_site() {
    let a = extract(
        &article_html(""),
        Url::parse("https://ledger.example/x").ok().as_ref(),
    );
    assert_eq!(a.body(), PROSE.join("\n\n"));
    assert_eq!(a.meta.title.as_deref(), Some("Port strike ends"));
    assert_eq!(a.meta.author.as_deref(), Some("Ana Ruiz"));
    assert_eq!(
        a.meta.canonical_url.as_ref().map(Url::as_str),
        Some("https://ledger.example/news/port-strike")
    );
    assert_eq!(a.meta.lang.as_deref(), Some("en"));
    assert_eq!(
        a.meta.published.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-11-10T08:30:00+01:00")
    );
}

#[test]
fn drops_app_promo_and_its_heading_inside_the_container() {
    let promo = "<p>For more news your way</p><p>Download our app and read this and other great stories on the move. Available for Android and iOS.</p>";
    let a = extract(&article_html(promo), None);
    assert_eq!(a.body(), PROSE.join("\n\n"));
}

#[test]
fn keeps_subheadings_lists_and_quotes() {
    let extra = "<h2>What comes next</h2><p>The union will hold a further ballot in March on pensions, officials told reporters outside the hall.</p>\
                 <ul><li>Wages rise six percent over two years.</li><li>Night shifts are capped at three a week.</li></ul>\
                 <blockquote><p>We have won what we came for, and the port will be working again by morning.</p></blockquote>";
    let a = extract(&article_html(extra), None);
    let body = a.body();
    assert!(body.contains("\n\nWhat comes next\n\n"), "{body}");
    assert!(body.contains("Night shifts are capped"), "{body}");
    assert!(
        a.blocks.iter().any(|b| b.kind == BlockKind::Quote),
        "{body}"
    );
}

#[test]
fn br_separated_paragraphs_and_inline_ads() {
    let text: String = PROSE.iter().map(|p| format!("{p}<br><br>")).collect();
    let html = page(&format!(
        "<div class=\"top\"><div class=\"brand\">Ledger</div></div><div class=\"content-main\"><div class=\"txt\">{text}\
         <div class=\"ad-slot\">ADVERTISEMENT</div><div class=\"inline-more\">READ MORE: <a href=\"/b\">Another story entirely</a></div></div></div>"
    ));
    let a = extract(&html, None);
    assert_eq!(a.body(), PROSE.join("\n\n"));
}

#[test]
fn hostile_input_does_not_panic() {
    let deep = "<div>".repeat(100_000) + "text" + &"</div>".repeat(100_000);
    let _ = extract(&deep, None);
    let _ = extract("", None);
    let _ = extract("<p>unclosed <b>bold <i>italic", None);
    let _ = extract(&"<p>x</p>".repeat(200_000), None);
}

#[test]
fn json_ld_metadata() {
    let html = page(
        "<script type=\"application/ld+json\">{\"@context\":\"https://schema.org\",\"@graph\":[{\"@type\":\"NewsArticle\",\
         \"headline\":\"H\",\"author\":[{\"@type\":\"Person\",\"name\":\"Lee Park\"}],\"datePublished\":\"2026-11-09\"}]}</script><p>x</p>",
    );
    let a = extract(&html, None);
    assert_eq!(a.meta.author.as_deref(), Some("Lee Park"));
    assert_eq!(
        a.meta.published.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-11-09T00:00:00+00:00")
    );
}

#[test]
fn site_rules_body_strip_and_phrases() {
    let extra = "<p class=\"pic-note\">Photo by Jo Lee for the Daily Ledger, all rights to the image reserved by the agency.</p>\
                 <p>Subscribe to The Daily Ledger for more stories like this one, delivered every morning.</p>";
    let html = article_html(extra);
    // Generic extraction keeps both (they read like prose).
    let plain = extract(&html, None);
    assert!(plain.body().contains("Photo by Jo Lee"), "{}", plain.body());
    let rules = SiteRules::parse(
        "body = \"div.story-body\"\nstrip = [\"p.pic-note\"]\ndrop_phrases = [\"subscribe to the daily ledger\"]\n",
        std::path::Path::new("ledger.example.toml"),
    )
    .unwrap();
    let a = extract_with(&html, None, Some(&rules));
    assert_eq!(a.body(), PROSE.join("\n\n"));
}

#[test]
fn site_rules_body_overrides_the_search() {
    // The rule names the sidebar: the rule wins, whatever the scores say.
    let html = page(&format!(
        "<div id=\"main\">{}</div><div id=\"side\"><p>Only this short sidebar note, chosen by the rule.</p></div>",
        PROSE.iter().map(|p| format!("<p>{p}</p>")).collect::<String>()
    ));
    let rules = SiteRules::parse("body = \"#side\"", std::path::Path::new("x.toml")).unwrap();
    assert_eq!(
        extract_with(&html, None, Some(&rules)).body(),
        "Only this short sidebar note, chosen by the rule."
    );
}

#[test]
fn site_rules_files_errors_and_hosts() {
    let dir = tempfile::tempdir().unwrap();
    assert!(SiteRulesSet::load(&dir.path().join("missing"))
        .unwrap()
        .is_empty());
    std::fs::write(dir.path().join("example.org.toml"), "strip = [\".x\"]\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let set = SiteRulesSet::load(dir.path()).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.for_host("www.example.org").is_some());
    assert!(set.for_host("EXAMPLE.org").is_some());
    assert!(set.for_host("example.com").is_none());
    std::fs::write(dir.path().join("bad.example.toml"), "body = \"div[\"\n").unwrap();
    let e = SiteRulesSet::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("bad.example.toml") && e.contains("selector"),
        "{e}"
    );
    std::fs::write(dir.path().join("bad.example.toml"), "bodyy = \"div\"\n").unwrap();
    let e = SiteRulesSet::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("bodyy"), "{e}");
}

/// Markup that makes html5ever quadratic when nesting is not capped: the
/// article around it must come out whole, in bounded time.
#[test]
fn hostile_nesting_keeps_the_article_in_bounded_time() {
    let paras: String = PROSE.iter().map(|p| format!("<p>{p}</p>")).collect();
    let shapes = [
        "<div/>".repeat(100_000),
        "<div></span>".repeat(100_000),
        "<span>".to_string() + &"<div></span>".repeat(100_000),
        "<b>".repeat(50_000),
        (0..30_000).map(|i| format!("<p><b id={i}>x</p>")).collect(),
        (0..30_000)
            .map(|i| format!("<div><i class=c{i}>x</div>"))
            .collect(),
        "<table><tr><td>".repeat(30_000),
    ];
    for shape in shapes {
        let html = page(&format!(
            "<article>{paras}<div class=\"x\">{shape}</div>{paras}</article>"
        ));
        let started = std::time::Instant::now();
        let a = extract(&html, None);
        // A sanity bound for a debug build on a busy machine, not a speed test:
        // unbounded, these shapes took minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        let body = a.body();
        assert!(
            body.matches(PROSE[3]).count() == 2,
            "{}: {}",
            &shape[..40],
            &body[..body.len().min(300)]
        );
    }
}

#[test]
fn headings_linking_to_themselves_are_kept() {
    let html = page(&format!(
        "<article><p>{}</p><h2 id=\"why\"><a class=\"anchor\" href=\"#why\">Why we moved</a></h2><p>{}</p>\
         <h3 id=\"next\">What next <a href=\"#next\">¶</a></h3><p>{}</p></article>",
        PROSE[0], PROSE[1], PROSE[2]
    ));
    let a = extract(&html, None);
    assert_eq!(
        a.body(),
        [PROSE[0], "Why we moved", PROSE[1], "What next", PROSE[2]].join("\n\n")
    );
}

#[test]
fn an_unclosed_link_does_not_swallow_the_article() {
    let html = page(&format!(
        "<article><p>{}</p><a href=\"/report\"><p>{}</p><p>{}</p><p>{}</p></article>",
        PROSE[0], PROSE[1], PROSE[2], PROSE[3]
    ));
    let a = extract(&html, None);
    assert_eq!(a.body(), PROSE.join("\n\n"));
    // Closed by a paragraph, the parser would re-open it in every later one.
    let html = page(&format!(
        "<article><p>{} <b>See <a href=\"/report\">the report<p>{}</p><p>{}</p><p>{}</p></article>",
        PROSE[0], PROSE[1], PROSE[2], PROSE[3]
    ));
    let a = extract(&html, None);
    assert_eq!(
        a.body(),
        [
            &format!("{} See the report", PROSE[0]),
            PROSE[1],
            PROSE[2],
            PROSE[3]
        ]
        .join("\n\n")
    );
}

#[test]
fn a_site_body_rule_overrides_name_hints_inside_it() {
    let rules = SiteRules::parse(
        "body = \"table.comment-tree\"\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    let html = page(&format!(
        "<div class=\"toptext\"><p>{}</p></div><table class=\"comment-tree\">\
         <tr><td class=\"default\"><div class=\"comment\"><div class=\"commtext\">{}</div></div></td></tr>\
         <tr><td class=\"default\"><div class=\"comment share-ad\"><div class=\"commtext\">{}</div></div></td></tr>\
         </table><div class=\"comments\"><p>{}</p></div>",
        PROSE[0], PROSE[1], PROSE[2], PROSE[3]
    ));
    let a = extract_with(&html, None, Some(&rules));
    assert_eq!(a.body(), [PROSE[1], PROSE[2]].join("\n\n"));
}

#[test]
fn phrases_spare_the_articles_own_lists_and_sentences() {
    let names = ["Facebook", "Twitter", "LinkedIn", "Pinterest", "Reddit"];
    let items: String = names.iter().map(|n| format!("<li>{n}</li>")).collect();
    let html = page(&format!(
        "<article><p>{}</p><p>The companies fined were:</p><ul>{items}</ul>\
         <p>Sign up for the appeal hearing closes on Friday.</p><p>{}</p>\
         <p>Abonnieren Sie unseren Newsletter und erhalten Sie die wichtigsten Nachrichten jeden Morgen.</p>\
         <p>{}</p><p>Facebook</p><p>{}</p></article>",
        PROSE[0], PROSE[1], PROSE[2], PROSE[3]
    ));
    let a = extract(&html, None);
    let mut want = vec![PROSE[0], "The companies fined were:"];
    want.extend(names);
    want.extend([
        "Sign up for the appeal hearing closes on Friday.",
        PROSE[1],
        PROSE[2],
        PROSE[3],
    ]);
    assert_eq!(a.body(), want.join("\n\n"));
}

#[test]
fn a_table_ending_the_article_keeps_its_last_row() {
    let html = page(&format!(
        "<article><p>{}</p><p>{}</p><table><tr><th>Weight</th><td>1.2 kg</td></tr>\
         <tr><th>Torso length</th><td>40 to 52 cm</td></tr></table></article>",
        PROSE[0], PROSE[1]
    ));
    let a = extract(&html, None);
    assert_eq!(
        a.body(),
        [
            PROSE[0],
            PROSE[1],
            "Weight",
            "1.2 kg",
            "Torso length",
            "40 to 52 cm"
        ]
        .join("\n\n")
    );
}

#[test]
fn a_thread_keeps_every_post() {
    let post = |id: usize, bg: usize, title: &str, text: &str| {
        format!(
            "<div id=\"p{id}\" class=\"post bg{bg}\"><div class=\"inner\"><div class=\"postbody\">\
             <h3><a href=\"#p{id}\">{title}</a></h3><p class=\"author\">by <a href=\"/u/{id}\">user{id}</a></p>\
             <div class=\"content\">{text}</div></div></div></div>"
        )
    };
    let html =
        page(&format!(
        "<div id=\"wrap\"><div class=\"navbar\"><ul><li><a href=\"/faq\">FAQ</a></li></ul></div>\
         <h2 class=\"topic-title\">Strike at the port</h2>{}{}{}\
         <div class=\"copyright\">Powered by Forum Software © Example Limited</div></div>",
        post(1, 2, "Strike at the port", &format!("{} {}", PROSE[0], PROSE[1])),
        post(2, 1, "Re: Strike at the port", &format!("{} {} {}", PROSE[1], PROSE[2], PROSE[3])),
        post(3, 2, "Re: Strike at the port", PROSE[3]),
    ));
    let body = extract(&html, None).body();
    assert!(
        body.contains(&format!("{} {}", PROSE[0], PROSE[1])),
        "{body}"
    );
    assert!(
        body.contains(&format!("{} {} {}", PROSE[1], PROSE[2], PROSE[3])),
        "{body}"
    );
    assert!(
        body.ends_with(&format!("Re: Strike at the port\n\n{}", PROSE[3])),
        "{body}"
    );
}
