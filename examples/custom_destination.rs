//! A destination in Rust, `kind = "records_api"` (settings `url`, `token`): keeps a REST API's
//! records equal to the synced rows (PUT/DELETE /records/{key}). This program is sluice with the
//! kind added: `cargo run --example custom_destination -- --project DIR run`.
use secrecy::{ExposeSecret, SecretString};
use sluice::destinations::{self, async_trait, Capabilities, Destination, DestinationError, Op, RowOp, RowOutcome, Target, Writer};
use std::sync::Arc;

#[derive(serde::Deserialize)]
struct Config {
    url: String,
    token: SecretString, // secrets stay redacted in logs and errors
}

struct RecordsApi {
    config: Arc<Config>,
    http: reqwest::Client,
}

pub fn register() {
    destinations::register("records_api", |_name, settings, _root| {
        let config = Arc::new(destinations::parse_settings::<Config>(settings)?);
        Ok(Arc::new(RecordsApi { config, http: reqwest::Client::new() }))
    });
}

#[async_trait]
impl Destination for RecordsApi {
    fn capabilities(&self) -> Capabilities {
        Capabilities::every_mode(100, 3, std::time::Duration::from_millis(200)) // batch size, attempts, first delay
    }
    async fn check(&self, _target: &Target) -> Result<(), DestinationError> {
        Ok(()) // nothing to check without writing; a real API might fetch its schema here
    }
    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        Ok(Box::new(RecordsWriter { config: self.config.clone(), http: self.http.clone(), target: target.clone() }))
    }
}

struct RecordsWriter {
    config: Arc<Config>,
    http: reqwest::Client,
    target: Target,
}

#[async_trait]
impl Writer for RecordsWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        let mut out = vec![None; batch.len()];
        for (i, op) in batch.iter().enumerate() {
            let url = format!("{}/records/{}", self.config.url, op.key.iter().map(|v| v.to_text()).collect::<Vec<_>>().join("-"));
            let request = match op.op {
                Op::Delete => self.http.delete(&url),
                _ => self.http.put(&url).json(&serde_json::json!({ "fields": op.fields_json(&self.target) })),
            };
            let answer = match request.bearer_auth(self.config.token.expose_secret()).send().await {
                Ok(answer) => answer,
                Err(e) => return destinations::partial(out, DestinationError::transient(e.to_string())),
            };
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            let done = (200..300).contains(&status) || (status == 404 && op.op == Op::Delete); // gone is deleted
            out[i] = Some(match status {
                _ if done => RowOutcome::Written {
                    destination_id: serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|b| b["id"].as_str().map(String::from)),
                },
                401 | 403 => return destinations::partial(out, DestinationError::fatal(format!("HTTP {status}: check the token"))),
                429 | 500..=599 => RowOutcome::Retryable(format!("HTTP {status}")), // retried with backoff
                _ => RowOutcome::Rejected(format!("HTTP {status}: {body}")),        // held until the row changes
            });
        }
        Ok(out.into_iter().map(|o| o.unwrap_or_else(|| RowOutcome::Retryable("not sent".into()))).collect())
    }
}

#[allow(dead_code)] // tests/it/custom_destination.rs includes this file and calls `register`
fn main() -> std::process::ExitCode {
    register();
    sluice::cli::start()
}
