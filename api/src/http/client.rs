//! Who is calling, as far as the network tells: the client's IP address (for
//! per-IP rate limits and the session list) and its User-Agent. The GraphQL
//! handler puts a [`ClientInfo`] into every request's data, so resolvers read
//! it with `ctx.data::<ClientInfo>()`.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};

/// Longest User-Agent kept, in characters; the rest is cut off, so a client
/// cannot make every session row or log line arbitrarily large.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The caller's network identity for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address; `None` when the server was run without peer
    /// addresses (an in-process router in a test).
    pub ip: Option<IpAddr>,
    /// The User-Agent header, at most [`MAX_USER_AGENT_CHARS`] characters.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// Reads the client from the TCP peer and the request headers; see
    /// [`client_ip`] for when `X-Forwarded-For` is believed.
    pub fn from_request(peer: Option<SocketAddr>, headers: &HeaderMap, trust_proxy: bool) -> Self {
        Self {
            ip: client_ip(peer, headers, trust_proxy),
            user_agent: user_agent(headers),
        }
    }
}

/// The client's IP address. Without `trust_proxy` it is the TCP peer: any
/// client can write an `X-Forwarded-For` header, so it is ignored. With
/// `trust_proxy` (Herald behind one reverse proxy) it is the **last**
/// `X-Forwarded-For` entry, the address that proxy saw: proxies append to
/// the header, so earlier entries are whatever the client sent and would
/// let it pick a fresh IP for every attempt. When the header is missing or
/// its last entry is not an address, the peer (the proxy) is used.
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trust_proxy: bool,
) -> Option<IpAddr> {
    let peer = peer.map(|p| p.ip().to_canonical());
    if !trust_proxy {
        return peer;
    }
    // Only the last entry of the last header line: whatever precedes it
    // came from the client. A garbled last line falls back to the peer
    // rather than to an earlier, client-written line.
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim);
    last.and_then(parse_forwarded).or(peer)
}

/// An `X-Forwarded-For` entry: a bare address, or one with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`) as some proxies write it.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The User-Agent header, cut to [`MAX_USER_AGENT_CHARS`] characters;
/// `None` when absent, empty or not text.
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::USER_AGENT)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.chars().take(MAX_USER_AGENT_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn peer() -> Option<SocketAddr> {
        Some("10.0.0.2:51000".parse().unwrap())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_proxy_trust_the_peer_is_the_client() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(client_ip(peer(), &h, false), ip("10.0.0.2"));
        assert_eq!(client_ip(None, &h, false), None);
    }

    #[test]
    fn behind_a_trusted_proxy_the_last_forwarded_address_is_the_client() {
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.7")]);
        assert_eq!(client_ip(peer(), &h, true), ip("203.0.113.7"));
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(client_ip(peer(), &h, true), ip("203.0.113.7"));
    }

    #[test]
    fn forwarded_entries_with_ports_and_ipv6_parse() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7:4711")]);
        assert_eq!(client_ip(peer(), &h, true), ip("203.0.113.7"));
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:4711")]);
        assert_eq!(client_ip(peer(), &h, true), ip("2001:db8::1"));
        let h = headers(&[("x-forwarded-for", " 2001:db8::2 ")]);
        assert_eq!(client_ip(peer(), &h, true), ip("2001:db8::2"));
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.7")]);
        assert_eq!(client_ip(peer(), &h, true), ip("203.0.113.7"));
    }

    #[test]
    fn a_missing_or_garbled_forwarded_header_falls_back_to_the_peer() {
        assert_eq!(client_ip(peer(), &HeaderMap::new(), true), ip("10.0.0.2"));
        let h = headers(&[("x-forwarded-for", "203.0.113.7, unknown")]);
        assert_eq!(client_ip(peer(), &h, true), ip("10.0.0.2"));
        let h = headers(&[("x-forwarded-for", "203.0.113.7, ")]);
        assert_eq!(client_ip(peer(), &h, true), ip("10.0.0.2"));
        let mut h = headers(&[("x-forwarded-for", "198.51.100.1")]);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 203.0.113.7").unwrap(),
        );
        assert_eq!(
            client_ip(peer(), &h, true),
            ip("10.0.0.2"),
            "never an earlier, client-written line"
        );
    }

    #[test]
    fn user_agent_is_trimmed_and_truncated() {
        assert_eq!(user_agent(&HeaderMap::new()), None);
        assert_eq!(user_agent(&headers(&[("user-agent", "  ")])), None);
        assert_eq!(
            user_agent(&headers(&[("user-agent", "curl/8.5")])).as_deref(),
            Some("curl/8.5")
        );
        let long = "x".repeat(1000);
        let ua = user_agent(&headers(&[("user-agent", &long)])).unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS);
    }

    #[test]
    fn client_info_combines_both() {
        let h = headers(&[
            ("user-agent", "Firefox"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        let info = ClientInfo::from_request(peer(), &h, true);
        assert_eq!(info.ip, ip("203.0.113.7"));
        assert_eq!(info.user_agent.as_deref(), Some("Firefox"));
    }
}
