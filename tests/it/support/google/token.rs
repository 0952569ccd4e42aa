//! Google's OAuth token endpoint for service accounts: verifies the JWT bearer assertion the
//! way Google does (RS256 over the segments exactly as sent, `aud` = this URL, a lifetime of at
//! most an hour) and issues access tokens.

use rsa::RsaPublicKey;
use serde_json::{json, Value as J};

pub use crate::support::jwt::now;
use crate::support::jwt::{self, JwtError};

pub const SHEETS_SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

fn refuse(description: &str) -> (u16, J) {
    (400, json!({ "error": "invalid_grant", "error_description": description }))
}

/// Checks a form body `grant_type=...&assertion=...`. On success returns the account's
/// email (the JWT's `iss`); otherwise Google's error answer.
pub fn verify(form: &str, token_url: &str, accounts: &[(String, RsaPublicKey)]) -> Result<String, (u16, J)> {
    let pairs = jwt::form(form);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err((400, json!({ "error": "unsupported_grant_type", "error_description": "Invalid grant_type: " })));
    }
    let assertion = get("assertion")
        .ok_or_else(|| (400, json!({ "error": "invalid_request", "error_description": "Missing required parameter: assertion" })))?;
    let claims = jwt::verify(assertion, accounts).map_err(|e| match e {
        JwtError::Malformed => refuse("Invalid JWT: Malformed"),
        JwtError::Algorithm => refuse("Invalid JWT: Unsupported algorithm"),
        JwtError::UnknownIssuer => refuse("Invalid grant: account not found"),
        JwtError::Signature => refuse("Invalid JWT Signature."),
    })?;
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
    Ok(claims["iss"].as_str().unwrap_or_default().to_string())
}
