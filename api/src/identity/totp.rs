//! TOTP (RFC 6238) second factor: secrets, the otpauth URI and its QR code,
//! code checks that report which time step matched (so the user aggregate can
//! refuse a step used before), and one-time backup codes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Seconds per step; codes of the previous and next step are accepted too,
/// for clock skew.
const STEP: u64 = 30;
/// Backup codes handed out at enrollment.
pub const BACKUP_CODES: usize = 10;
const ISSUER: &str = "Herald";

/// A new random 160-bit secret (RFC 4226's recommended length).
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret.to_vec(),
        Some(ISSUER.to_string()),
        account.replace(':', "_"),
    )
    .ok()
}

/// The otpauth URI for authenticator apps, and the same as a QR code (SVG
/// data URL).
pub fn provisioning(secret: &[u8], account: &str) -> Option<(String, String)> {
    let uri = totp(secret, account)?.get_url();
    let svg = qrcode::QrCode::new(uri.as_bytes())
        .ok()?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    let data_url = format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg));
    Some((uri, data_url))
}

/// The time step of `unix_seconds`.
pub fn step_at(unix_seconds: u64) -> u64 {
    unix_seconds / STEP
}

/// The step whose code `code` is (previous, current or next step), compared
/// in constant time.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, "check")?;
    let now = step_at(unix_seconds);
    let mut found = None;
    for step in [now.saturating_sub(1), now, now + 1] {
        let expected = totp.generate(step * STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// The code of `unix_seconds` (for tests and tools).
pub fn code_at(secret: &[u8], unix_seconds: u64) -> String {
    totp(secret, "check")
        .map(|t| t.generate(unix_seconds))
        .unwrap_or_default()
}

/// The base32 form of a secret, for manual entry in an authenticator app.
pub fn encode_secret(secret: &[u8]) -> String {
    totp_rs::Secret::Raw(secret.to_vec())
        .to_encoded()
        .to_string()
}

/// The raw bytes of a base32 secret as shown to users.
pub fn decode_secret(base32: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::Encoded(base32.to_string()).to_bytes().ok()
}

/// Fresh backup codes, like `k7mq-2xcp-9f`, shown once.
pub fn new_backup_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..BACKUP_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect();
            format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..])
        })
        .collect()
}

/// Whether `input` looks like a backup code rather than a TOTP code.
pub fn is_backup_code(input: &str) -> bool {
    input.trim().len() > 6
}

/// The stored form of a backup code (case and dashes ignored).
pub fn hash_backup_code(code: &str) -> String {
    let normalised: String = code
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_within_skew_only() {
        let secret = new_secret();
        let t = 1_800_000_000;
        let now = step_at(t);
        assert_eq!(matching_step(&secret, &code_at(&secret, t), t), Some(now));
        assert_eq!(
            matching_step(&secret, &code_at(&secret, t - 30), t),
            Some(now - 1)
        );
        assert_eq!(matching_step(&secret, &code_at(&secret, t - 90), t), None);
        assert_eq!(matching_step(&secret, "12345", t), None);
        assert_eq!(matching_step(&secret, "abcdef", t), None);
    }

    #[test]
    fn provisioning_gives_an_otpauth_uri_and_an_svg_qr_code() {
        let (uri, qr) = provisioning(&new_secret(), "ada@example.org").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Herald:ada%40example.org?"),
            "{uri}"
        );
        assert!(qr.starts_with("data:image/svg+xml;base64,"));
    }

    #[test]
    fn backup_codes_are_distinct_and_hash_loosely() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), BACKUP_CODES);
        assert_eq!(
            codes.iter().collect::<std::collections::HashSet<_>>().len(),
            BACKUP_CODES
        );
        assert!(is_backup_code(&codes[0]) && !is_backup_code("123456"));
        assert_eq!(
            hash_backup_code(&codes[0]),
            hash_backup_code(&codes[0].to_uppercase().replace('-', ""))
        );
    }
}
