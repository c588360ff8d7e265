//! Short blocks that are boilerplate by what they say, wherever they sit:
//! app-download promos, newsletter and share prompts, cookie notices, ad
//! labels, "read more" teasers. The generic vocabulary of the web in the
//! major languages (en de fr es it pt nl ru pl ja zh ko), not any site's
//! wording.
//!
//! A phrase removes only a block that it dominates, never prose that happens
//! to contain it:
//! - a `PROMO` phrase is a whole call to action addressed to the reader
//!   ("download our app"); it marks a block of at most two sentences;
//! - a `WEAK` word ("newsletter", "most read") marks a short block that is
//!   little more than the word itself;
//! - a `LABEL` followed by a colon starts a teaser line ("Read more: ...");
//! - an `EXACT` block is nothing but a label ("Advertisement"); the names of
//!   share buttons ("Facebook", "Email") only outside a list, where an
//!   article may well enumerate them.

/// Blocks longer than this (in chars) are article prose whatever they say.
const MAX_CHARS: usize = 220;
/// `WEAK` and `LABEL` judge only blocks this short.
const MAX_WEAK_CHARS: usize = 80;
const MAX_LABEL_CHARS: usize = 160;
/// What a `WEAK` word may leave of its block: a few words ("Get the best
/// stories" around "in your inbox"), not a sentence of its own.
const MAX_REST_WORDS: f64 = 4.0;

/// Calls to action that only a promo, notice or share prompt says.
const PROMO: &[&str] = &[
    // en
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
    // de
    "laden sie unsere app",
    "laden sie die app",
    "unsere app herunterladen",
    "app jetzt herunterladen",
    "abonnieren sie unseren newsletter",
    "melden sie sich für unseren newsletter",
    "newsletter abonnieren",
    "wir verwenden cookies",
    "verwendet cookies",
    "artikel teilen",
    "alle rechte vorbehalten",
    // fr
    "téléchargez notre application",
    "téléchargez l'application",
    "abonnez-vous à notre newsletter",
    "inscrivez-vous à notre newsletter",
    "abonnez-vous à notre lettre",
    "inscrivez-vous à la newsletter",
    "nous utilisons des cookies",
    "utilise des cookies",
    "partager cet article",
    "tous droits réservés",
    // es
    "descarga nuestra app",
    "descarga la app",
    "descargue nuestra aplicación",
    "descarga nuestra aplicación",
    "suscríbete a nuestro boletín",
    "suscríbase a nuestro boletín",
    "suscríbete a nuestra newsletter",
    "suscríbete a la newsletter",
    "utilizamos cookies",
    "usamos cookies",
    "utiliza cookies",
    "comparte este artículo",
    "compartir este artículo",
    "todos los derechos reservados",
    // it
    "scarica la nostra app",
    "scarica l'app",
    "iscriviti alla nostra newsletter",
    "iscriviti alla newsletter",
    "utilizziamo i cookie",
    "utilizza i cookie",
    "utilizza cookie",
    "condividi questo articolo",
    "tutti i diritti riservati",
    // pt
    "baixe o aplicativo",
    "baixe nosso aplicativo",
    "baixe o app",
    "baixe o nosso app",
    "descarregue a aplicação",
    "assine nossa newsletter",
    "assine a nossa newsletter",
    "inscreva-se na nossa newsletter",
    "inscreva-se em nossa newsletter",
    "receba as notícias no seu",
    "usamos cookies",
    "utilizamos cookies",
    "compartilhe esta notícia",
    "partilhe este artigo",
    "todos os direitos reservados",
    // nl
    "download onze app",
    "download de app",
    "schrijf je in voor onze nieuwsbrief",
    "meld je aan voor onze nieuwsbrief",
    "abonneer je op onze nieuwsbrief",
    "wij gebruiken cookies",
    "we gebruiken cookies",
    "gebruikt cookies",
    "deel dit artikel",
    "alle rechten voorbehouden",
    // ru
    "скачайте наше приложение",
    "скачайте приложение",
    "установите наше приложение",
    "установите приложение",
    "подпишитесь на нашу рассылку",
    "подпишитесь на рассылку",
    "подпишитесь на наш",
    "подписывайтесь на наш",
    "мы используем cookie",
    "мы используем файлы cookie",
    "использует файлы cookie",
    "поделиться статьей",
    "поделитесь статьей",
    "все права защищены",
    // pl
    "pobierz naszą aplikację",
    "pobierz aplikację",
    "zapisz się do naszego newslettera",
    "zapisz się na newsletter",
    "zapisz się do newslettera",
    "używamy plików cookie",
    "używa plików cookie",
    "udostępnij artykuł",
    "wszelkie prawa zastrzeżone",
    // ja
    "アプリをダウンロード",
    "アプリのダウンロード",
    "ニュースレターに登録",
    "ニュースレターを購読",
    "メールマガジン登録",
    "メルマガ登録",
    "cookieを使用",
    "クッキーを使用",
    "この記事をシェア",
    "無断転載",
    // zh
    "下载客户端",
    "下载app",
    "下载我们的应用",
    "下载应用",
    "订阅我们的",
    "订阅新闻",
    "使用cookie",
    "分享这篇文章",
    "版权所有",
    // ko
    "앱 다운로드",
    "앱을 다운로드",
    "뉴스레터 구독",
    "뉴스레터를 구독",
    "쿠키를 사용",
    "기사 공유",
    "무단 전재",
    "무단전재",
];

/// Copyright notices: a notice whatever else its block says.
const NOTICE: &[&str] = &[
    "all rights reserved",
    "alle rechte vorbehalten",
    "tous droits réservés",
    "todos los derechos reservados",
    "tutti i diritti riservati",
    "todos os direitos reservados",
    "alle rechten voorbehouden",
    "все права защищены",
    "wszelkie prawa zastrzeżone",
    "無断転載",
    "版权所有",
    "무단 전재",
    "무단전재",
];

/// Words that mark any short block they appear in: a newsletter box or a
/// "click here" prompt is never a line of the story.
const MARKER: &[&str] = &[
    "newsletter",
    "nieuwsbrief",
    "in your inbox",
    "click here",
    "рассылк",
    "ニュースレター",
    "뉴스레터",
];

/// Generic words: boilerplate when they are most of a short block.
const WEAK: &[&str] = &[
    "newsletter",
    "in your inbox",
    "follow us on",
    "follow us",
    "like us on facebook",
    "related stories",
    "related articles",
    "you may also like",
    "recommended for you",
    "most popular",
    "most read",
    "read more",
    "continue reading",
    "click here to",
    "cookie policy",
    "share on facebook",
    "share on twitter",
    "sign up",
    "subscribe",
    // de fr es it pt nl
    "folgen sie uns",
    "meistgelesen",
    "weiterlesen",
    "mehr zum thema",
    "ähnliche artikel",
    "suivez-nous",
    "les plus lus",
    "lire la suite",
    "articles similaires",
    "síguenos",
    "lo más leído",
    "leer más",
    "noticias relacionadas",
    "artículos relacionados",
    "seguici",
    "più letti",
    "leggi di più",
    "articoli correlati",
    "siga-nos",
    "mais lidas",
    "leia mais",
    "continua a ler",
    "notícias relacionadas",
    "nieuwsbrief",
    "volg ons",
    "meest gelezen",
    "lees meer",
    "gerelateerde artikelen",
    // ru pl
    "рассылка",
    "подписывайтесь",
    "самое читаемое",
    "читать далее",
    "похожие статьи",
    "obserwuj nas",
    "najczęściej czytane",
    "czytaj dalej",
    "podobne artykuły",
    // ja zh ko
    "ニュースレター",
    "フォロー",
    "よく読まれている",
    "続きを読む",
    "関連記事",
    "关注我们",
    "热门文章",
    "阅读全文",
    "相关文章",
    "相关阅读",
    "뉴스레터",
    "팔로우",
    "많이 본",
    "더 보기",
    "관련 기사",
    "관련기사",
];

/// Labels that start a teaser line when a colon follows them.
const LABEL: &[&str] = &[
    "read more",
    "read also",
    "also read",
    "see also",
    "related",
    "more",
    "lesen sie auch",
    "lesen sie mehr",
    "mehr zum thema",
    "auch interessant",
    "lire aussi",
    "à lire aussi",
    "voir aussi",
    "lee también",
    "leer también",
    "te puede interesar",
    "leggi anche",
    "leia também",
    "leia mais",
    "veja também",
    "lees ook",
    "читайте также",
    "смотрите также",
    "читайте еще",
    "czytaj także",
    "czytaj też",
    "zobacz też",
    "zobacz także",
    "関連記事",
    "あわせて読みたい",
    "相关阅读",
    "延伸阅读",
    "관련기사",
    "관련 기사",
];

/// Blocks that are exactly one of these (ignoring case and punctuation).
const EXACT: &[&str] = &[
    "advertisement",
    "advertising",
    "ad",
    "sponsored",
    "sponsored content",
    "read more",
    "more",
    "related",
    "top stories",
    "anzeige",
    "werbung",
    "publicidad",
    "publicité",
    "pubblicità",
    "publicidade",
    "advertentie",
    "реклама",
    "reklama",
    "広告",
    "广告",
    "광고",
    "loading",
    "skip to content",
    "skip to main content",
    "back to top",
    "menu",
    "close",
];

/// Share-button names: boilerplate alone in a paragraph, content in a list.
const EXACT_OUTSIDE_LISTS: &[&str] = &[
    "share",
    "tweet",
    "email",
    "print",
    "comments",
    "copy link",
    "share this",
    "share this article",
    "facebook",
    "twitter",
    "whatsapp",
    "linkedin",
    "pinterest",
    "reddit",
    "teilen",
    "partager",
    "compartir",
    "condividi",
    "compartilhar",
    "partilhar",
    "delen",
    "поделиться",
    "udostępnij",
    "シェア",
    "分享",
    "공유",
];

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff)
}

/// Words in `text`, a CJK character counting as a third of one (those
/// scripts write a word in two or three characters, without spaces).
fn word_weight(text: &str) -> f64 {
    let mut w = 0.0;
    for token in text.split(|c: char| !c.is_alphanumeric()) {
        let cjk = token.chars().filter(|c| is_cjk(*c)).count();
        let other = token.chars().count() - cjk;
        w += cjk as f64 / 3.0 + if other > 0 { 1.0 } else { 0.0 };
    }
    w
}

/// Sentences in `text`: sentence ends followed by more text, plus one.
fn sentences(text: &str) -> usize {
    let t = text.trim_end();
    let mut n = 1;
    for (i, c) in t.char_indices() {
        let Some(next) = t[i + c.len_utf8()..].chars().next() else {
            break;
        };
        if (matches!(c, '.' | '!' | '?') && next.is_whitespace()) || matches!(c, '。' | '！' | '？')
        {
            n += 1;
        }
    }
    n
}

/// Whether `text` is boilerplate by what it says. `listed`: the block is an
/// item of a list the article introduces.
pub fn is_boilerplate(text: &str, listed: bool) -> bool {
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        return false;
    }
    let lower = text.to_lowercase().replace('’', "'");
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
    if !listed && EXACT_OUTSIDE_LISTS.contains(&bare.as_str()) {
        return true;
    }
    if sentences(text) <= 2 && PROMO.iter().any(|p| lower.contains(p)) {
        return true;
    }
    if NOTICE.iter().any(|p| lower.contains(p)) {
        return true;
    }
    if chars <= MAX_LABEL_CHARS {
        let start = lower.trim_start();
        let labelled = LABEL.iter().any(|l| {
            start.strip_prefix(l).is_some_and(|rest| {
                let rest = rest.trim_start();
                rest.starts_with([':', '：', '»', '›', '|'])
            })
        });
        if labelled {
            return true;
        }
    }
    if chars <= MAX_WEAK_CHARS && MARKER.iter().any(|p| lower.contains(p)) {
        return true;
    }
    if chars <= MAX_WEAK_CHARS {
        let mut rest = lower.clone();
        let mut hit = false;
        for p in WEAK {
            if rest.contains(p) {
                rest = rest.replace(p, " ");
                hit = true;
            }
        }
        if hit && word_weight(&rest) <= MAX_REST_WORDS {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_footer_is_boilerplate() {
        assert!(is_boilerplate(
            "Download our app and read this and other great stories on the move. Available for Android and iOS.",
            false
        ));
        assert!(is_boilerplate("ADVERTISEMENT", false));
        assert!(is_boilerplate("READ MORE: Rates rise again", false));
        assert!(is_boilerplate(
            "READ MORE: Port strike ends after nine days of talks in the capital",
            false
        ));
        assert!(is_boilerplate("Get the best stories in your inbox", false));
        assert!(is_boilerplate("Newsletter", false));
    }

    #[test]
    fn promos_in_other_languages() {
        for promo in [
            "Baixe o aplicativo do Jornal da Cidade e receba as notícias no seu celular.",
            "Leia também: Obras no viaduto terminam em maio",
            "Скачайте наше приложение и читайте новости в любом месте.",
            "ニュースアプリをダウンロードして、最新ニュースをいつでもチェック。",
            "Abonnieren Sie unseren Newsletter und erhalten Sie die wichtigsten Nachrichten jeden Morgen.",
            "Téléchargez l’application et suivez l’actualité en direct.",
            "Suscríbete a nuestro boletín y recibe las noticias cada mañana.",
            "Iscriviti alla newsletter",
            "Schrijf je in voor onze nieuwsbrief.",
            "Pobierz naszą aplikację mobilną.",
            "下载客户端，随时随地看新闻。",
            "뉴스레터를 구독하세요",
            "Читайте также: Мост откроют в мае",
            "Werbung",
        ] {
            assert!(is_boilerplate(promo, false), "{promo}");
        }
    }

    #[test]
    fn prose_is_not() {
        assert!(!is_boilerplate(
            "The minister said the app would be available next year.",
            false
        ));
        let long = "Download our app ".repeat(20);
        assert!(!is_boilerplate(&long, false));
        assert!(!is_boilerplate(
            "Its rye sourdough is now the most popular loaf in the district, and the owners plan a second shop.",
            false
        ));
        // Short unique sentences that merely contain a generic word.
        assert!(!is_boilerplate(
            "Sign up for the appeal hearing closes on Friday.",
            false
        ));
        assert!(!is_boilerplate(
            "Most read by regulators: the 2020 court ruling.",
            false
        ));
        // An article's own list of networks.
        for name in ["Facebook", "Twitter", "LinkedIn", "Pinterest", "Reddit"] {
            assert!(!is_boilerplate(name, true));
        }
        // Three sentences of prose quoting a promo are prose.
        assert!(!is_boilerplate(
            "The paper told readers: download our app. Few did. The app closed in May.",
            false
        ));
    }
}
