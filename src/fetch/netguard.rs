//! Private-network safety: a feed on the public internet must not be able to
//! make gleaner probe the machine's own services or its network (SSRF).
//!
//! A request either may reach private addresses ("open": the operator chose
//! the starting point, or it was linked from a feed the operator runs on a
//! private network) or may not ("guarded"). Guarded requests are refused up
//! front when their host is a private IP literal or a `localhost` name, go
//! through [`PublicOnly`] (which drops private addresses from DNS answers, so
//! a public name pointing at 127.0.0.1 fails), and every redirect hop is
//! checked by [`hop_allowed`] (IP literals never reach the resolver).
//!
//! Behind an HTTP proxy names are resolved by the proxy, so only IP-literal
//! hosts and `localhost` names are checked there. An open request (say a
//! loopback feed) redirected to a public host and from there to a *name*
//! resolving to a private address is not caught either: names are filtered
//! on guarded requests only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use crate::config::AllowPrivate;

/// Why a request was refused, for the summary line the operator reads.
pub(crate) const WHY_AUTO: &str = "private or loopback address reached from a public host \
     (set [fetch] allow_private = \"always\" to allow)";
pub(crate) const WHY_NAME: &str = "the name resolves only to private or loopback addresses \
     (set [fetch] allow_private = \"always\" to allow)";
pub(crate) const WHY_NEVER: &str =
    "private or loopback address refused by [fetch] allow_private = \"never\"";

/// True for every address that is not public unicast: loopback, RFC 1918,
/// CGNAT, link-local (and with it cloud metadata at 169.254.169.254),
/// unspecified, multicast, reserved, documentation and benchmarking ranges,
/// IPv6 ULA / link-local / site-local, and IPv6 forms that embed an IPv4
/// address (mapped, compatible, NAT64, 6to4) when that address is private.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0                                     // 0.0.0.0/8 "this network"; 0.0.0.0 reaches localhost on Linux
        || o[0] == 10                             // RFC 1918
        || o[0] == 127                            // loopback
        || (o[0] == 100 && (o[1] & 0xc0) == 64)   // 100.64.0.0/10 CGNAT
        || (o[0] == 169 && o[1] == 254)           // link-local, cloud metadata
        || (o[0] == 172 && (o[1] & 0xf0) == 16)   // RFC 1918
        || (o[0] == 192 && o[1] == 168)           // RFC 1918
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // documentation
        || (o[0] == 198 && (o[1] & 0xfe) == 18)   // 198.18.0.0/15 benchmarking
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // documentation
        || (o[0] == 203 && o[1] == 0 && o[2] == 113) // documentation
        || o[0] >= 224 // multicast, reserved, broadcast
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:127.0.0.1 connects to 127.0.0.1 on a dual-stack socket.
        return is_private_v4(v4);
    }
    if s[..6] == [0; 6] {
        // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d: no public
        // server lives here.
        return true;
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64: 64:ff9b::/96 reaches the embedded IPv4 address; the
        // local-use 64:ff9b:1::/48 is private by definition.
        return s[2] != 0 || s[3..6] != [0; 3] || is_private_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4 embeds the IPv4 address in bits 16..48.
        return is_private_v4(embedded(s[1], s[2]));
    }
    (s[0] & 0xfe00) == 0xfc00                                   // fc00::/7 ULA (incl. fd00:ec2::254 metadata)
        || (s[0] & 0xffc0) == 0xfe80                            // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0                            // fec0::/10 site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00                            // multicast
        || (s[0] == 0x100 && s[1..4] == [0; 3])                 // 100::/64 discard-only
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// The URL's host is private by its very name: a private IP literal, or
/// `localhost` / `*.localhost` (RFC 6761: always loopback). Other names
/// need DNS to tell, which [`PublicOnly`] does for guarded requests.
pub fn host_is_private(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(v4)) => is_private_v4(v4),
        Some(Host::Ipv6(v6)) => is_private_v6(v6),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

/// Where the URL of a request came from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// Named by the operator: a feed in the config, a URL on the command line.
    Configured,
    /// Found in a document fetched from this URL (an item link in a feed).
    LinkedFrom(&'a Url),
    /// Found in a local (`file:`) document, which the operator put there.
    Local,
    /// Found in fetched content whose source is not known: treated as public.
    Unknown,
}

/// How a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// May connect to private addresses (redirect hops are still checked).
    Open,
    /// Public addresses only: DNS answers are filtered, hops checked.
    Guarded,
    /// The target itself is private and may not be reached.
    Refuse(&'static str),
}

/// The decision for a request to `target`: may it reach private addresses?
/// Under `auto`, only when whoever vouches for it (the operator for a
/// configured URL, else the document that linked it) is itself local: a
/// `file:` feed, or a host that is private by name.
pub fn route(mode: AllowPrivate, target: &Url, origin: Origin<'_>) -> Route {
    let vouches = |u: &Url| u.scheme() == "file" || host_is_private(u);
    let (allowed, why) = match mode {
        AllowPrivate::Always => (true, WHY_AUTO),
        AllowPrivate::Never => (false, WHY_NEVER),
        AllowPrivate::Auto => match origin {
            Origin::Configured => (vouches(target), WHY_AUTO),
            Origin::LinkedFrom(from) => (vouches(from), WHY_AUTO),
            Origin::Local => (true, WHY_AUTO),
            Origin::Unknown => (false, WHY_AUTO),
        },
    };
    if allowed {
        Route::Open
    } else if host_is_private(target) {
        Route::Refuse(why)
    } else {
        Route::Guarded
    }
}

/// Whether a redirect from `prev` to `next` may be followed: never from a
/// public host (or, under `never`, from anywhere) to a host that is private
/// by name. Names are checked by the resolver when they are connected to.
pub fn hop_allowed(mode: AllowPrivate, prev: Option<&Url>, next: &Url) -> bool {
    match mode {
        AllowPrivate::Always => true,
        AllowPrivate::Never => !host_is_private(next),
        AllowPrivate::Auto => !host_is_private(next) || prev.is_some_and(host_is_private),
    }
}

/// A name that resolved only to private addresses for a guarded request.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to private or loopback addresses; refused by [fetch] allow_private")]
pub struct PrivateName {
    host: String,
}

/// DNS for guarded requests: the system resolver, minus private addresses.
/// Filtering here (not before the request) means the address checked is the
/// address connected to, so DNS rebinding cannot slip past the check.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if all.is_empty() {
                return Err(format!("{host}: no addresses").into());
            }
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(PrivateName { host }) as Box<_>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn ipv4_classification() {
        for private in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_private(ip(private)), "{private} must be private");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "93.184.216.34",
            "223.255.255.255",
        ] {
            assert!(!is_private(ip(public)), "{public} must be public");
        }
    }

    #[test]
    fn ipv6_classification() {
        for private in [
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(is_private(ip(private)), "{private} must be private");
        }
        for public in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450::1",
        ] {
            assert!(!is_private(ip(public)), "{public} must be public");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_follow_the_embedded_address() {
        for private in [
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::ffff:100.64.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::8.8.8.8", // IPv4-compatible: deprecated, never a public server
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(is_private(ip(private)), "{private} must be private");
        }
        for public in ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"] {
            assert!(!is_private(ip(public)), "{public} must be public");
        }
    }

    #[test]
    fn hosts_private_by_name() {
        for private in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://169.254.169.254/latest/meta-data/",
            // The URL parser turns these legacy spellings into 127.0.0.1.
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://127.1/x",
            "http://0/x",
        ] {
            assert!(host_is_private(&u(private)), "{private} must be private");
        }
        for public in [
            "http://example.org/x",
            "https://8.8.8.8/x",
            "http://localhost.example.org/x",
            "http://[2606:4700:4700::1111]/x",
        ] {
            assert!(!host_is_private(&u(public)), "{public} must be public");
        }
    }

    #[test]
    fn links_from_a_public_feed_never_reach_private_addresses() {
        let public_feed = u("https://news.example.org/feed.rss");
        let from = Origin::LinkedFrom(&public_feed);
        let a = AllowPrivate::Auto;
        assert_eq!(
            route(a, &u("http://127.0.0.1:6379/"), from),
            Route::Refuse(WHY_AUTO)
        );
        assert_eq!(
            route(a, &u("http://169.254.169.254/latest/meta-data/"), from),
            Route::Refuse(WHY_AUTO)
        );
        assert_eq!(
            route(a, &u("http://[::ffff:10.0.0.1]/"), from),
            Route::Refuse(WHY_AUTO)
        );
        // A name is checked where it is resolved: guarded, not refused.
        assert_eq!(
            route(a, &u("https://cdn.example.net/a"), from),
            Route::Guarded
        );
        assert_eq!(route(a, &u("http://intranet.corp/a"), from), Route::Guarded);
        // Unknown origin counts as public.
        assert_eq!(
            route(a, &u("http://127.0.0.1/"), Origin::Unknown),
            Route::Refuse(WHY_AUTO)
        );
    }

    #[test]
    fn local_feeds_and_configured_loopback_keep_working() {
        let a = AllowPrivate::Auto;
        let loop_feed = u("http://127.0.0.1:8088/feed.rss");
        let file_feed = u("file:///srv/feeds/world.rss");
        assert_eq!(route(a, &loop_feed, Origin::Configured), Route::Open);
        assert_eq!(
            route(a, &u("http://localhost:8088/f"), Origin::Configured),
            Route::Open
        );
        assert_eq!(
            route(
                a,
                &u("http://127.0.0.1:9000/p"),
                Origin::LinkedFrom(&loop_feed)
            ),
            Route::Open
        );
        assert_eq!(
            route(a, &u("http://10.0.0.7/p"), Origin::LinkedFrom(&file_feed)),
            Route::Open
        );
        // A configured public name is guarded: its redirects and DNS answers
        // are the public side's to choose.
        assert_eq!(
            route(a, &u("https://example.org/f"), Origin::Configured),
            Route::Guarded
        );
    }

    #[test]
    fn modes_always_and_never() {
        let public_feed = u("https://news.example.org/feed.rss");
        let lo = u("http://127.0.0.1/");
        assert_eq!(
            route(AllowPrivate::Always, &lo, Origin::LinkedFrom(&public_feed)),
            Route::Open
        );
        assert_eq!(
            route(AllowPrivate::Never, &lo, Origin::Configured),
            Route::Refuse(WHY_NEVER)
        );
        assert_eq!(
            route(AllowPrivate::Never, &public_feed, Origin::Configured),
            Route::Guarded
        );
    }

    #[test]
    fn redirect_hops() {
        let a = AllowPrivate::Auto;
        let public = u("https://news.example.org/a");
        let lo = u("http://127.0.0.1:8080/b");
        let meta = u("http://169.254.169.254/latest/meta-data/");
        assert!(!hop_allowed(a, Some(&public), &lo));
        assert!(!hop_allowed(a, Some(&public), &meta));
        assert!(!hop_allowed(
            a,
            Some(&public),
            &u("http://[::ffff:127.0.0.1]/")
        ));
        assert!(hop_allowed(
            a,
            Some(&public),
            &u("https://www.example.org/")
        ));
        assert!(hop_allowed(a, Some(&lo), &u("http://localhost:8080/c")));
        assert!(hop_allowed(a, Some(&lo), &public));
        assert!(!hop_allowed(AllowPrivate::Never, Some(&lo), &lo));
        assert!(hop_allowed(AllowPrivate::Always, Some(&public), &meta));
    }

    #[test]
    fn origin_of_urls_given_to_get() {
        use super::super::{Fetcher, Kind};
        let f = Fetcher::new(&crate::config::FetchConfig::default()).unwrap();
        let page = u("http://127.0.0.1:9000/p");
        // Before any feed: a URL from the command line (`gleaner extract`).
        assert!(matches!(
            f.origin_of(&page, Kind::Page, false),
            Origin::Configured
        ));
        let feed = u("http://127.0.0.1:8000/feed.rss");
        assert!(matches!(
            f.origin_of(&feed, Kind::Feed, false),
            Origin::Configured
        ));
        // After: a page on a private feed's host is that feed's; others are
        // of unknown origin (public), unless from a local file.
        assert!(matches!(
            f.origin_of(&page, Kind::Page, false),
            Origin::Configured
        ));
        let other = u("http://10.0.0.1/p");
        assert!(matches!(
            f.origin_of(&other, Kind::Page, false),
            Origin::Unknown
        ));
        assert!(matches!(
            f.origin_of(&other, Kind::Page, true),
            Origin::Local
        ));
    }

    #[tokio::test]
    async fn resolver_drops_private_answers() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let r = PublicOnly.resolve(name).await;
        let err = match r {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("private"), "{err}");
    }
}
