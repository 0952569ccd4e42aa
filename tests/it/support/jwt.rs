//! RS256 JWT checks for the emulators' token endpoints: signature over the segments exactly as
//! sent (padded or not, as Google and Salesforce both accept), and form bodies.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::Value as J;

const B64: GeneralPurpose =
    GeneralPurpose::new(&URL_SAFE, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

pub enum JwtError {
    Malformed,
    Algorithm,
    UnknownIssuer,
    Signature,
}

/// Checks an RS256 assertion; the issuer (`iss`) picks the key. Returns the claims.
pub fn verify(assertion: &str, keys: &[(String, RsaPublicKey)]) -> Result<J, JwtError> {
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Malformed);
    }
    let segment = |s: &str| B64.decode(s).ok().and_then(|b| serde_json::from_slice::<J>(&b).ok());
    let (Some(header), Some(claims)) = (segment(parts[0]), segment(parts[1])) else { return Err(JwtError::Malformed) };
    if header["alg"] != "RS256" {
        return Err(JwtError::Algorithm);
    }
    let iss = claims["iss"].as_str().unwrap_or_default();
    let Some((_, key)) = keys.iter().find(|(name, _)| name == iss) else { return Err(JwtError::UnknownIssuer) };
    let signature = B64.decode(parts[2]).ok().and_then(|b| Signature::try_from(b.as_slice()).ok());
    let signed = &assertion[..parts[0].len() + 1 + parts[1].len()];
    let valid = signature.is_some_and(|sig| VerifyingKey::<Sha256>::new(key.clone()).verify(signed.as_bytes(), &sig).is_ok());
    if !valid {
        return Err(JwtError::Signature);
    }
    Ok(claims)
}

/// `application/x-www-form-urlencoded` pairs.
pub fn form(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    body.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// One RSA key per test binary (generating it is the slow part), for every emulator's accounts.
pub fn test_key() -> &'static RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate a test RSA key"))
}
