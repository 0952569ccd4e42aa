//! Google's OAuth token endpoint for service accounts: verifies the JWT bearer assertion the
//! way Google does (RS256 over the segments exactly as sent, `aud` = this URL, a lifetime of at
//! most an hour) and issues access tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde_json::{json, Value as J};

/// yup-oauth2 pads its segments; other clients do not. Google accepts both.
const B64: GeneralPurpose =
    GeneralPurpose::new(&URL_SAFE, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

pub const SHEETS_SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn refuse(description: &str) -> (u16, J) {
    (400, json!({ "error": "invalid_grant", "error_description": description }))
}

/// Checks a form body `grant_type=...&assertion=...`. On success returns the account's
/// email (the JWT's `iss`); otherwise Google's error answer.
pub fn verify(form: &str, token_url: &str, accounts: &[(String, RsaPublicKey)]) -> Result<String, (u16, J)> {
    let pairs: Vec<(String, String)> = form.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err((400, json!({ "error": "unsupported_grant_type", "error_description": "Invalid grant_type: " })));
    }
    let assertion = get("assertion")
        .ok_or_else(|| (400, json!({ "error": "invalid_request", "error_description": "Missing required parameter: assertion" })))?;
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(refuse("Invalid JWT: Malformed"));
    }
    let segment = |s: &str| B64.decode(s).ok().and_then(|b| serde_json::from_slice::<J>(&b).ok());
    let (Some(header), Some(claims)) = (segment(parts[0]), segment(parts[1])) else {
        return Err(refuse("Invalid JWT: Malformed"));
    };
    if header["alg"] != "RS256" {
        return Err(refuse("Invalid JWT: Unsupported algorithm"));
    }
    let iss = claims["iss"].as_str().unwrap_or_default();
    let Some((_, key)) = accounts.iter().find(|(email, _)| email == iss) else {
        return Err(refuse("Invalid grant: account not found"));
    };
    let signature = B64.decode(parts[2]).ok().and_then(|b| Signature::try_from(b.as_slice()).ok());
    let signed = &assertion[..parts[0].len() + 1 + parts[1].len()];
    let valid = signature.is_some_and(|sig| VerifyingKey::<Sha256>::new(key.clone()).verify(signed.as_bytes(), &sig).is_ok());
    if !valid {
        return Err(refuse("Invalid JWT Signature."));
    }
    if claims["aud"].as_str() != Some(token_url) {
        return Err(refuse("Invalid JWT: Failed audience check. The expected value for the audience is the token URL."));
    }
    let (iat, exp, now) = (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0), now());
    if exp <= now || exp - iat > 3600 || iat > now + 300 {
        return Err(refuse(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == SHEETS_SCOPE) {
        return Err((400, json!({ "error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided." })));
    }
    Ok(iss.to_string())
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}
