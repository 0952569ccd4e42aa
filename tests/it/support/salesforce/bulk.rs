//! Bulk API 2.0 ingest jobs: Open -> (one CSV upload) -> UploadComplete -> InProgress ->
//! JobComplete, processed on the polls that follow the upload, with result CSVs.

use serde_json::{json, Value as J};

use super::records::typed;
use super::{errors, State};

#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub object: String,
    pub external_id: String,
    pub state: String,
    csv: Option<String>,
    successful: String,
    failed: String,
    pub processed: usize,
    pub failures: usize,
}

fn info(job: &Job) -> String {
    json!({ "id": job.id, "operation": "upsert", "object": job.object, "createdById": "005000000000001", "state": job.state,
        "externalIdFieldName": job.external_id, "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": 62.0,
        "lineEnding": "LF", "columnDelimiter": "COMMA", "numberRecordsProcessed": job.processed, "numberRecordsFailed": job.failures })
    .to_string()
}

fn csv_line(w: &mut csv::Writer<Vec<u8>>, fields: Vec<String>) {
    w.write_record(fields).expect("write csv");
}

/// Runs the job's upserts, as Salesforce does once the upload is complete.
fn process(state: &mut State, job: &mut Job) {
    let text = job.csv.clone().unwrap_or_default();
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
    let schema = state.schemas.get(&job.object).cloned().unwrap_or_default();
    let quoted =
        || csv::WriterBuilder::new().quote_style(csv::QuoteStyle::Always).terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    let (mut ok, mut bad) = (quoted(), quoted());
    csv_line(&mut ok, ["sf__Id", "sf__Created"].iter().map(|s| s.to_string()).chain(headers.clone()).collect());
    csv_line(&mut bad, ["sf__Id", "sf__Error"].iter().map(|s| s.to_string()).chain(headers.clone()).collect());
    for row in reader.records().flatten() {
        let values: Vec<String> = row.iter().map(str::to_string).collect();
        // An empty value leaves the field as it is; `#N/A` sets it to null (Bulk API 2.0).
        let record: serde_json::Map<String, J> =
            headers.iter().zip(&values).filter(|(_, v)| !v.is_empty()).map(|(h, v)| (h.clone(), typed(&schema, h, v))).collect();
        job.processed += 1;
        match state.upsert(&job.object, &job.external_id, &record) {
            Ok((id, created)) => csv_line(&mut ok, [id, created.to_string()].into_iter().chain(values).collect()),
            Err(errors) => {
                job.failures += 1;
                let e = &errors[0];
                let fields: Vec<&str> = e["fields"].as_array().into_iter().flatten().filter_map(J::as_str).collect();
                let text =
                    format!("{}:{}:{} --", e["statusCode"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""), fields.join(","));
                csv_line(&mut bad, [String::new(), text].into_iter().chain(values).collect());
            }
        }
    }
    job.successful = String::from_utf8(ok.into_inner().unwrap_or_default()).unwrap_or_default();
    job.failed = String::from_utf8(bad.into_inner().unwrap_or_default()).unwrap_or_default();
}

pub fn handle(state: &mut State, method: &str, rest: &[&str], body: &str) -> (u16, String) {
    let spec: J = serde_json::from_str(body).unwrap_or(J::Null);
    match (method, rest) {
        ("POST", []) => {
            let object = spec["object"].as_str().unwrap_or_default().to_string();
            if !state.schemas.contains_key(&object) {
                return errors(400, "INVALIDENTITY", &format!("Entity '{object}' is not supported by the Bulk API."));
            }
            if spec["operation"] != "upsert" || spec["contentType"].as_str().unwrap_or("CSV") != "CSV" {
                return errors(400, "API_ERROR", "only CSV upsert jobs are emulated");
            }
            let Some(external_id) = spec["externalIdFieldName"].as_str() else {
                return errors(400, "INVALIDJOB", "External ID was blank for Contact. An External ID must be specified for upsert.");
            };
            let id = format!("7500000000{:05}AAA", state.jobs.len() + 1);
            let job = Job {
                id: id.clone(),
                object,
                external_id: external_id.into(),
                state: "Open".into(),
                csv: None,
                successful: String::new(),
                failed: String::new(),
                processed: 0,
                failures: 0,
            };
            let answer = info(&job);
            state.jobs.insert(id, job);
            (200, answer)
        }
        (_, [id, tail @ ..]) => {
            let Some(mut job) = state.jobs.get(*id).cloned() else {
                return errors(404, "NOT_FOUND", "The requested resource does not exist");
            };
            let answer = match (method, tail) {
                ("PUT", ["batches"]) if job.state == "Open" && job.csv.is_none() => {
                    job.csv = Some(body.to_string());
                    (201, String::new())
                }
                ("PUT", ["batches"]) => errors(400, "INVALIDJOBSTATE", &format!("Job {id} is not open for data, or already has data")),
                ("PATCH", []) => match (spec["state"].as_str(), job.state.as_str(), job.csv.is_some()) {
                    (Some("UploadComplete"), "Open", true) => {
                        job.state = "UploadComplete".into();
                        (200, info(&job))
                    }
                    (Some("Aborted"), _, _) => {
                        job.state = "Aborted".into();
                        (200, info(&job))
                    }
                    _ => errors(400, "INVALIDJOBSTATE", "Invalid state transition"),
                },
                ("GET", []) => {
                    match job.state.as_str() {
                        "UploadComplete" => job.state = "InProgress".into(),
                        "InProgress" => {
                            process(state, &mut job);
                            job.state = "JobComplete".into();
                        }
                        _ => {}
                    }
                    (200, info(&job))
                }
                ("GET", ["successfulResults"]) if job.state == "JobComplete" => (200, job.successful.clone()),
                ("GET", ["failedResults"]) if job.state == "JobComplete" => (200, job.failed.clone()),
                ("GET", [_]) => errors(400, "INVALIDJOBSTATE", "the job is not complete"),
                _ => errors(404, "NOT_FOUND", "The requested resource does not exist"),
            };
            state.jobs.insert(id.to_string(), job);
            answer
        }
        _ => errors(404, "NOT_FOUND", "The requested resource does not exist"),
    }
}
