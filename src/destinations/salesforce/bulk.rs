//! Bulk API 2.0 ingest, for large runs: create a job, upload the CSV once, mark it
//! UploadComplete, poll until it ends, then read the successful, failed and unprocessed records.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value as J};

use super::client::{Body, SfClient};
use super::encoding::bulk_results;
use crate::destinations::http::CallError;
use crate::destinations::DestinationError;

/// What a finished job did, by external id value.
pub struct JobResult {
    /// External id -> Salesforce id.
    pub succeeded: HashMap<String, String>,
    /// External id -> `sf__Error`.
    pub failed: HashMap<String, String>,
}

fn unexpected(what: &str, e: impl std::fmt::Display) -> CallError {
    CallError::Failed(DestinationError::transient(format!("Bulk API {what}: {e}")))
}

pub async fn upsert(
    client: &SfClient,
    object: &str,
    external_id: &str,
    csv: String,
    poll: Duration,
    timeout: Duration,
) -> Result<JobResult, CallError> {
    let spec =
        json!({ "object": object, "externalIdFieldName": external_id, "contentType": "CSV", "operation": "upsert", "lineEnding": "LF" });
    let (_, created) = client.call(Method::POST, "jobs/ingest", &[], Some(&Body::Json(spec))).await?;
    let job: J = serde_json::from_str(&created).map_err(|e| unexpected("job creation", e))?;
    let id = job["id"].as_str().ok_or_else(|| unexpected("job creation", "no job id"))?.to_string();
    client.call(Method::PUT, &format!("jobs/ingest/{id}/batches"), &[], Some(&Body::Csv(csv))).await?;
    client.call(Method::PATCH, &format!("jobs/ingest/{id}"), &[], Some(&Body::Json(json!({ "state": "UploadComplete" })))).await?;
    // (A `bulk_timeout` past what the clock can count means no deadline.)
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let (_, status) = client.call(Method::GET, &format!("jobs/ingest/{id}"), &[], None).await?;
        let status: J = serde_json::from_str(&status).map_err(|e| unexpected("job status", e))?;
        match status["state"].as_str().unwrap_or_default() {
            "JobComplete" => break,
            "Failed" | "Aborted" => {
                let message = status["errorMessage"].as_str().unwrap_or("no message");
                return Err(CallError::Failed(DestinationError::transient(format!(
                    "Bulk API job {id} ended {}: {message}",
                    status["state"]
                ))));
            }
            _ if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Err(CallError::Failed(DestinationError::transient(format!(
                    "Bulk API job {id} did not finish within {}s; its rows are retried",
                    timeout.as_secs()
                ))))
            }
            _ => tokio::time::sleep(poll).await,
        }
    }
    let (_, ok) = client.call(Method::GET, &format!("jobs/ingest/{id}/successfulResults"), &[], None).await?;
    let (_, bad) = client.call(Method::GET, &format!("jobs/ingest/{id}/failedResults"), &[], None).await?;
    let succeeded = bulk_results(&ok, external_id).map_err(|e| unexpected("successful results", e))?;
    let failed = bulk_results(&bad, external_id).map_err(|e| unexpected("failed results", e))?;
    Ok(JobResult {
        succeeded: succeeded.into_iter().map(|(ext, (sf_id, _))| (ext, sf_id)).collect(),
        failed: failed.into_iter().map(|(ext, (_, error))| (ext, error)).collect(),
    })
}
