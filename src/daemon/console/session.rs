//! Signing in to the console: a person gives the API token once and gets a cookie.
//!
//! The cookie holds `<expiry>.<nonce>`, signed (HMAC-SHA256, the `cookie` crate's signed jar)
//! with a key derived from the API token: the daemon keeps no session table, a restart keeps
//! people signed in, and a new token (a reload that brings one) signs everyone out. It is
//! `HttpOnly` (no script reads it) and `SameSite=Strict` (no other site's page sends it).
//!
//! Every form carries a CSRF token: an HMAC of the session's value under the API token, so it
//! is different per session and cannot be made without the token. Pure: no I/O here.

use cookie::{Cookie, CookieJar, Key, SameSite};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "sluice_session";

/// How long a sign-in lasts.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// A signed-in person's session.
#[derive(Debug)]
pub struct Session {
    /// What this session's forms must send back.
    pub csrf: String,
}

/// The cookie's signing key: derived from the API token, never the token itself.
fn key(token: &SecretString) -> Key {
    let digest = Sha512::new().chain_update(b"sluice console session\0").chain_update(token.expose_secret().as_bytes()).finalize();
    Key::from(digest.as_slice())
}

fn csrf_for(token: &SecretString, value: &str) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(token.expose_secret().as_bytes()) else { return String::new() };
    mac.update(b"sluice console csrf\0");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A new session: the `Set-Cookie` header's value.
pub fn issue(token: &SecretString, now: chrono::DateTime<chrono::Utc>) -> String {
    let value = format!("{}.{}", (now + LIFETIME).timestamp(), uuid::Uuid::new_v4().simple());
    let mut jar = CookieJar::new();
    let mut cookie = Cookie::new(COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_max_age(cookie::time::Duration::seconds(LIFETIME.num_seconds()));
    jar.signed_mut(&key(token)).add(cookie);
    jar.delta().next().map(|c| c.to_string()).unwrap_or_default()
}

/// The `Set-Cookie` that signs out.
pub fn clear() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The session the request's `Cookie` headers carry, if one is valid now.
pub fn verify<'a>(cookies: impl Iterator<Item = &'a str>, token: &SecretString, now: chrono::DateTime<chrono::Utc>) -> Option<Session> {
    let mut jar = CookieJar::new();
    for header in cookies {
        for cookie in Cookie::split_parse(header).flatten() {
            if cookie.name() == COOKIE {
                jar.add_original(cookie.into_owned());
            }
        }
    }
    let value = jar.signed(&key(token)).get(COOKIE)?.value().to_string();
    let expires: i64 = value.split('.').next()?.parse().ok()?;
    (now.timestamp() < expires).then(|| Session { csrf: csrf_for(token, &value) })
}

/// Whether a form's CSRF token is this session's (constant time).
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    !session.csrf.is_empty() && bool::from(session.csrf.as_bytes().ct_eq(given.as_bytes()))
}

/// Whether `given` is the API token (constant time).
pub fn token_matches(token: &SecretString, given: &str) -> bool {
    bool::from(given.trim().as_bytes().ct_eq(token.expose_secret().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_value(set_cookie: &str) -> &str {
        set_cookie.split(';').next().unwrap()
    }

    #[test]
    fn a_cookie_from_the_token_signs_in_until_it_expires_or_the_token_changes() {
        let token = SecretString::from("t0ken-of-sixty-four-characters-or-any-length");
        let now = chrono::Utc::now();
        let set = issue(&token, now);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");
        assert!(!set.contains(token.expose_secret()), "the cookie never holds the token");
        let session = verify([cookie_value(&set)].into_iter(), &token, now).expect("signed in");
        assert_eq!(session.csrf.len(), 64);
        assert!(csrf_matches(&session, &session.csrf.clone()));
        assert!(!csrf_matches(&session, "00"));
        // Another session gets another CSRF token.
        let other = verify([cookie_value(&issue(&token, now))].into_iter(), &token, now).unwrap();
        assert_ne!(other.csrf, session.csrf);
        // Expired, another token, or a tampered value: not signed in.
        assert!(verify([cookie_value(&set)].into_iter(), &token, now + LIFETIME + chrono::Duration::seconds(1)).is_none());
        assert!(verify([cookie_value(&set)].into_iter(), &SecretString::from("other"), now).is_none());
        let tampered = cookie_value(&set).replacen('.', "9.", 1);
        assert!(verify([tampered.as_str()].into_iter(), &token, now).is_none());
        // Among other cookies, in any header.
        let header = format!("theme=dark; {}", cookie_value(&set));
        assert!(verify(["a=b", header.as_str()].into_iter(), &token, now).is_some());
    }
}
