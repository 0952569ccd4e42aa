//! The request body and the optional per-row response body.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::destinations::results::{match_results, RowResult, RowsJson};
use crate::destinations::{RowOp, RowOutcome, Target};

pub const SIGNATURE_HEADER: &str = "x-sluice-signature";

/// `{"sync", "run_id", "rows": [{"op", "key", "fields", "destination_id"?}]}`
pub fn body(target: &Target, batch: &[RowOp]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        sync: &'a str,
        run_id: &'a str,
        rows: RowsJson<'a>,
    }
    let body = Body { sync: &target.sync, run_id: &target.run_id, rows: RowsJson { target, batch } };
    // Strings, numbers and maps with string keys: serialising them cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

pub fn signature(secret: &SecretString, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Deserialize)]
struct Results {
    results: Vec<RowResult>,
}

/// Per-row outcomes from a 2xx body. A body without `results` means every row was written.
/// A row the results do not mention is retryable: we cannot know it was written.
pub fn outcomes(target: &Target, batch: &[RowOp], response: &str) -> Vec<RowOutcome> {
    let Ok(parsed) = serde_json::from_str::<Results>(response) else {
        return vec![RowOutcome::written(); batch.len()];
    };
    match_results(target, batch, parsed.results)
        .into_iter()
        .map(|o| o.unwrap_or_else(|| RowOutcome::Retryable("the response's results did not mention this row".into())))
        .collect()
}
