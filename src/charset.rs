//! Bytes to text: find the character encoding a page or file was written in.
//!
//! Order: byte-order mark, the HTTP `Content-Type` charset, a `<meta>` charset
//! near the top of the document, then a statistical guess (chardetng). A
//! declared legacy charset loses to bytes that are valid, non-ASCII UTF-8:
//! servers that label UTF-8 pages `iso-8859-1` are common, the reverse is not.

use encoding_rs::Encoding;

/// How far into a document to look for `<meta charset>`. Browsers use 1024
/// bytes; real pages put long scripts first, so look further.
const META_SCAN: usize = 8192;

/// Decodes `bytes` to a `String`, never failing: undecodable bytes become U+FFFD.
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> String {
    let enc = detect(bytes, content_type);
    let (text, _, _) = enc.decode(bytes);
    text.into_owned()
}

/// The encoding `decode` would use.
pub fn detect(bytes: &[u8], content_type: Option<&str>) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return enc;
    }
    let declared = content_type
        .and_then(charset_param)
        .or_else(|| meta_charset(&bytes[..bytes.len().min(META_SCAN)]));
    match declared {
        Some(enc) if enc == encoding_rs::UTF_8 => {
            if std::str::from_utf8(bytes).is_ok() || mostly_utf8(bytes) {
                encoding_rs::UTF_8
            } else {
                guess(bytes)
            }
        }
        Some(enc) => {
            if !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok() {
                encoding_rs::UTF_8
            } else {
                enc
            }
        }
        None => guess(bytes),
    }
}

fn guess(bytes: &[u8]) -> &'static Encoding {
    if std::str::from_utf8(bytes).is_ok() {
        return encoding_rs::UTF_8;
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    det.guess(None, chardetng::Utf8Detection::Allow)
}

/// A page declared UTF-8 with a stray bad byte or two is still UTF-8.
fn mostly_utf8(bytes: &[u8]) -> bool {
    let (_, _, had_errors) = encoding_rs::UTF_8.decode(bytes);
    if !had_errors {
        return true;
    }
    let text = String::from_utf8_lossy(bytes);
    let bad = text.matches('\u{FFFD}').count();
    let non_ascii = text.chars().filter(|c| !c.is_ascii()).count();
    bad * 10 < non_ascii.max(1)
}

fn charset_param(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        label(v.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

fn label(l: &str) -> Option<&'static Encoding> {
    let enc = Encoding::for_label(l.as_bytes())?;
    // A document that reached us as bytes cannot really be UTF-16 when the
    // declaration is ASCII-compatible text; the HTML standard says to read UTF-8.
    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
        return Some(encoding_rs::UTF_8);
    }
    Some(enc)
}

/// `<meta charset=...>` or `<meta http-equiv=content-type content="...; charset=...">`,
/// and the XML declaration's `encoding=` for feeds and XHTML.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut from = 0;
    while let Some(i) = find(&lower[from..], b"<meta") {
        let start = from + i;
        let end = find(&lower[start..], b">").map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(j) = find(tag, b"charset") {
            let rest = &tag[j + 7..];
            let rest = trim_start(rest);
            if let Some(rest) = rest.strip_prefix(b"=") {
                let value = trim_start(rest);
                let value = value
                    .strip_prefix(b"\"")
                    .or_else(|| value.strip_prefix(b"'"))
                    .unwrap_or(value);
                let n = value
                    .iter()
                    .position(|&c| {
                        !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':' | b'.'))
                    })
                    .unwrap_or(value.len());
                if let Some(enc) = std::str::from_utf8(&value[..n]).ok().and_then(label) {
                    return Some(enc);
                }
            }
        }
        from = end;
    }
    if lower.starts_with(b"<?xml") {
        let end = find(&lower, b"?>")?;
        let decl = &lower[..end];
        let j = find(decl, b"encoding")?;
        let rest = trim_start(&decl[j + 8..]).strip_prefix(b"=")?;
        let rest = trim_start(rest);
        let q = *rest.first()?;
        let rest = &rest[1..];
        let n = rest.iter().position(|&c| c == q)?;
        return std::str::from_utf8(&rest[..n]).ok().and_then(label);
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_charset_wins_for_legacy_bytes() {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode("日本語のニュース");
        assert_eq!(
            decode(&bytes, Some("text/html; charset=Shift_JIS")),
            "日本語のニュース"
        );
    }

    #[test]
    fn meta_charset_is_read() {
        let mut page = b"<html><head><meta charset=\"windows-1252\"></head><body>".to_vec();
        page.extend_from_slice(&[0x93, b'c', 0x92, b'e', 0xe9, 0x94]);
        assert!(decode(&page, Some("text/html")).contains("\u{201c}c\u{2019}e\u{e9}\u{201d}"));
    }

    #[test]
    fn utf8_bytes_beat_a_lying_latin1_label() {
        let page = "<p>café — naïve</p>".as_bytes();
        assert_eq!(
            decode(page, Some("text/html; charset=iso-8859-1")),
            "<p>café — naïve</p>"
        );
    }

    #[test]
    fn bom_wins() {
        let mut page = vec![0xef, 0xbb, 0xbf];
        page.extend_from_slice("é".as_bytes());
        assert_eq!(decode(&page, Some("text/html; charset=windows-1252")), "é");
    }

    #[test]
    fn undeclared_cyrillic_is_guessed() {
        let (bytes, _, _) =
            encoding_rs::WINDOWS_1251.encode("Москва — столица России, крупнейший город страны.");
        assert!(decode(&bytes, None).contains("Москва"));
    }
}
