//! The keys rate limits count under: a policy's name and a keyed hash of
//! the subject (an account's address or a client's network), so the
//! `rate_limits` table holds neither addresses nor IPs in plaintext.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::policy::Policy;

/// The key under which `policy` counts attempts of `subject`:
/// `"<policy name>:<hex HMAC-SHA256(secret, policy name ‖ 0 ‖ subject)>"`.
/// The subject is trimmed and lower-cased first, so `Alice@Example.org ` and
/// `alice@example.org` share a count. Without `secret` the hash of a known
/// address could be recomputed, so pass a server-side key.
pub fn key(policy: &Policy, subject: &str, secret: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(policy.name.as_bytes());
    mac.update(&[0]);
    mac.update(subject.trim().to_lowercase().as_bytes());
    format!(
        "{}:{}",
        policy.name,
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The subject for per-IP policies: an IPv4 address as is (also when it
/// arrives IPv4-mapped), an IPv6 address as its /64 network, because one
/// host usually controls a whole /64.
pub fn ip_subject(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"server secret";

    #[test]
    fn key_hides_the_subject_and_separates_policies() {
        let k = key(&Policy::LOGIN_PER_ACCOUNT, "alice@example.org", SECRET);
        let (prefix, mac) = k.split_once(':').unwrap();
        assert_eq!(prefix, "login_account");
        assert_eq!(mac.len(), 64);
        assert!(mac.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!k.contains("alice"));
        assert_ne!(
            mac,
            key(&Policy::TOTP_PER_ACCOUNT, "alice@example.org", SECRET)
                .split_once(':')
                .unwrap()
                .1
        );
    }

    #[test]
    fn key_is_stable_normalised_and_secret_dependent() {
        let p = Policy::LOGIN_PER_ACCOUNT;
        let k = key(&p, "alice@example.org", SECRET);
        assert_eq!(k, key(&p, "  Alice@Example.ORG ", SECRET));
        assert_ne!(k, key(&p, "bob@example.org", SECRET));
        assert_ne!(k, key(&p, "alice@example.org", b"another secret"));
    }

    #[test]
    fn key_is_hmac_sha256() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let p = Policy {
            name: "what do ya want ",
            ..Policy::LOGIN_PER_IP
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The key MACs name ‖ 0 ‖ subject, so only that exact input matches.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want \0for nothing?");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            key(&p, "for nothing?", b"Jefe"),
            format!("what do ya want :{expected}")
        );
    }

    #[test]
    fn ip_subject_groups_ipv6_by_64_and_unmaps_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip_subject(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(ip_subject(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(
            ip_subject(ip("2001:db8:1:2:aaaa::1")),
            ip_subject(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_eq!(ip_subject(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_ne!(
            ip_subject(ip("2001:db8:1:2::1")),
            ip_subject(ip("2001:db8:1:3::1"))
        );
    }
}
