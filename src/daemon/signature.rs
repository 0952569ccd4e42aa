//! Whether a request to `POST /hooks/{stream}` comes from the stream's sender: the signature
//! schemes of `[streams.NAME] signature`, checked over the raw body before anything is parsed
//! or stored, every comparison in constant time. Pure.
//!
//! What each preset does, as the providers document it:
//! - GitHub ("Validating webhook deliveries", docs.github.com): `X-Hub-Signature-256:
//!   sha256=<hex HMAC-SHA256(secret, body)>`; each delivery is named by `X-GitHub-Delivery`.
//! - Typeform ("Secure your webhooks", typeform.com/developers): `Typeform-Signature:
//!   sha256=<base64 HMAC-SHA256(secret, body)>`; the body's `event_id` names the delivery.
//! - Stripe ("Verify webhook signatures manually", docs.stripe.com; stripe-ruby's
//!   `Webhook::Signature.verify_header`): `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=...]`,
//!   the HMAC over `"{t}.{body}"`; any `v1` may match (several while a secret is rolled), and a
//!   timestamp older than the tolerance (default 300 s) is refused, so a captured request cannot
//!   be replayed later; the event's `id` names it.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::project::stream_config::{SignatureScheme, StreamConfig};

type HmacSha256 = Hmac<Sha256>;

/// Why a request was refused (answered 401; the sender's dashboard shows the message).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// Checks the request's signature; `now` is the current unix time (Stripe's timestamps).
pub fn verify(config: &StreamConfig, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refused> {
    let header = config.header();
    let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) else {
        return Err(Refused(format!("no `{header}` header: the stream takes {} signed requests only", config.signature.as_str())));
    };
    let secret = config.secret.expose_secret().as_bytes();
    let bad = || Refused(format!("the `{header}` signature does not match the body (is the secret the sender uses the stream's?)"));
    let matches = match config.signature {
        SignatureScheme::Bearer => {
            let given = if header.eq_ignore_ascii_case("authorization") { value.strip_prefix("Bearer ").unwrap_or("") } else { value };
            bool::from(given.as_bytes().ct_eq(secret))
        }
        SignatureScheme::Github => {
            value.strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()).is_some_and(|d| mac_matches(secret, &[body], &d))
        }
        SignatureScheme::Typeform => {
            value.strip_prefix("sha256=").and_then(base64_decode).is_some_and(|d| mac_matches(secret, &[body], &d))
        }
        SignatureScheme::HmacSha256 => {
            let digest = value.trim();
            let digest = digest.strip_prefix("sha256=").unwrap_or(digest);
            let decoded = if digest.len() == 64 { hex::decode(digest).ok() } else { base64_decode(digest) };
            decoded.is_some_and(|d| mac_matches(secret, &[body], &d))
        }
        SignatureScheme::Stripe => return stripe(value, secret, body, now, config.tolerance.as_secs() as i64).map_err(Refused),
    };
    if matches {
        Ok(())
    } else {
        Err(bad())
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()
}

/// Whether `digest` is the HMAC-SHA256 of `parts` (concatenated), compared in constant time.
fn mac_matches(secret: &[u8], parts: &[&[u8]], digest: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else { return false };
    parts.iter().for_each(|p| mac.update(p));
    mac.verify_slice(digest).is_ok()
}

fn stripe(value: &str, secret: &[u8], body: &[u8], now: i64, tolerance: i64) -> Result<(), String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.extend(hex::decode(s).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp else { return Err("`Stripe-Signature` has no timestamp (`t=`)".into()) };
    if signatures.is_empty() {
        return Err("`Stripe-Signature` has no v1 signature".into());
    }
    let signed = format!("{t}.");
    if !signatures.iter().any(|s| mac_matches(secret, &[signed.as_bytes(), body], s)) {
        return Err("the `Stripe-Signature` signature does not match the body (is the secret the endpoint's signing secret?)".into());
    }
    if (now - t).abs() > tolerance {
        return Err(format!(
            "the `Stripe-Signature` timestamp is {} s away from now, past the tolerance of {tolerance} s (a replay?)",
            (now - t).abs()
        ));
    }
    Ok(())
}

/// Signs `body` as `scheme` would with `secret`: the header value (tests, the example's sender).
pub fn sign(scheme: SignatureScheme, secret: &str, body: &[u8], now: i64) -> String {
    use base64::Engine;
    let mac = |parts: &[&[u8]]| {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
        parts.iter().for_each(|p| mac.update(p));
        mac.finalize().into_bytes()
    };
    match scheme {
        SignatureScheme::HmacSha256 => hex::encode(mac(&[body])),
        SignatureScheme::Github => format!("sha256={}", hex::encode(mac(&[body]))),
        SignatureScheme::Typeform => format!("sha256={}", base64::engine::general_purpose::STANDARD.encode(mac(&[body]))),
        SignatureScheme::Stripe => format!("t={now},v1={}", hex::encode(mac(&[format!("{now}.").as_bytes(), body]))),
        SignatureScheme::Bearer => format!("Bearer {secret}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(scheme: SignatureScheme) -> StreamConfig {
        let text = format!("secret = \"s3cret\"\nsignature = \"{}\"", scheme.as_str());
        toml::from_str(&text).unwrap()
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        h
    }

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn each_scheme_takes_its_own_signature_and_refuses_a_tampered_body() {
        let body = br#"{"email":"a@example.com"}"#;
        for scheme in [
            SignatureScheme::HmacSha256,
            SignatureScheme::Github,
            SignatureScheme::Typeform,
            SignatureScheme::Stripe,
            SignatureScheme::Bearer,
        ] {
            let c = config(scheme);
            let signed = sign(scheme, "s3cret", body, NOW);
            let h = headers(c.header(), &signed);
            assert_eq!(verify(&c, &h, body, NOW), Ok(()), "{scheme:?}");
            if scheme != SignatureScheme::Bearer {
                assert!(verify(&c, &h, br#"{"email":"b@example.com"}"#, NOW).is_err(), "{scheme:?}: a changed body");
            }
            let forged = sign(scheme, "other", body, NOW);
            assert!(verify(&c, &headers(c.header(), &forged), body, NOW).is_err(), "{scheme:?}: another secret");
            let missing = verify(&c, &HeaderMap::new(), body, NOW).unwrap_err();
            assert!(missing.0.contains(c.header()), "{missing:?}");
        }
    }

    #[test]
    fn a_known_github_signature_verifies() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let mut c = config(SignatureScheme::Github);
        c.secret = "It's a Secret to Everybody".to_string().into();
        let h = headers("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(verify(&c, &h, b"Hello, World!", NOW), Ok(()));
    }

    #[test]
    fn stripe_refuses_an_old_timestamp_and_takes_any_v1() {
        let c = config(SignatureScheme::Stripe);
        let body = b"{}";
        let old = sign(SignatureScheme::Stripe, "s3cret", body, NOW - 301);
        let e = verify(&c, &headers("Stripe-Signature", &old), body, NOW).unwrap_err();
        assert!(e.0.contains("tolerance"), "{e:?}");
        // While a secret is rolled, Stripe sends one v1 per secret.
        let good = sign(SignatureScheme::Stripe, "s3cret", body, NOW);
        let v1 = good.split("v1=").nth(1).unwrap();
        let two = format!("t={NOW},v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify(&c, &headers("Stripe-Signature", &two), body, NOW), Ok(()));
    }

    #[test]
    fn a_bearer_token_in_another_header_is_the_secret_as_is() {
        let mut c = config(SignatureScheme::Bearer);
        c.header = Some("X-Api-Key".into());
        assert_eq!(verify(&c, &headers("X-Api-Key", "s3cret"), b"{}", NOW), Ok(()));
        assert!(verify(&c, &headers("X-Api-Key", "s3cre"), b"{}", NOW).is_err());
    }
}
