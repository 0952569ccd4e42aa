//! The Salesforce destination against the Salesforce emulator.

use crate::support;

use serde_json::{json, Value as J};
use sluice::state::RunStatus;
use support::salesforce::{Fault, Salesforce};
use support::{Env, SourceKind, StateKind};

const HEADER: &str = r#"destination = "sf"
primary_key = "customer_id"
mode = "MODE"
[target]
object = "Contact"
external_id = "Customer_Id__c"
[mapping]
Customer_Id__c = "customer_id"
LastName = "last_name"
FirstName = "first_name"
Email = "email"
Score__c = "score"
Signup_Date__c = "signup"
VIP__c = "vip""#;

const MODEL: &str = "SELECT customer_id, last_name, first_name, email, score, signup, vip FROM people";

struct Org {
    env: Env,
    sf: Salesforce,
}

impl Org {
    async fn new(mode: &str, n: u32, extra: &str) -> Org {
        let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
        let sf = Salesforce::start().await;
        env.add_destination("sf", &sf.destination_toml(env.root(), extra));
        env.exec(&format!(
            "CREATE TABLE people(customer_id TEXT, last_name TEXT, first_name TEXT, email TEXT, score DOUBLE, signup DATE, vip BOOLEAN);
             INSERT INTO people SELECT 'c' || i, 'Last' || i, 'First' || i, 'p' || i || '@x.com', i / 2, DATE '2024-01-01' + i::INT, i % 2 = 0
             FROM range(1, {}) t(i);",
            n + 1
        ))
        .await;
        env.write_sync("people", &HEADER.replace("MODE", mode), MODEL);
        Org { env, sf }
    }

    async fn run_ok(&self) -> sluice::engine::SyncReport {
        let report = self.env.run("people").await;
        assert_eq!(report.status, RunStatus::Success, "run failed: {:?} {:?}", report.error, report.warnings);
        report
    }

    fn field(&self, ext: &str, name: &str) -> J {
        self.sf.contact(ext).and_then(|r| r.fields.get(name).cloned()).unwrap_or(J::Null)
    }

    fn writes(&self) -> Vec<support::salesforce::Logged> {
        self.sf.log().into_iter().filter(|l| l.method != "GET" && l.path != "/services/oauth2/token").collect()
    }
}

fn records_in(call: &support::salesforce::Logged) -> Vec<J> {
    serde_json::from_str::<J>(&call.body).unwrap()["records"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn first_sync_upserts_in_collections_of_200_and_the_second_sends_nothing() {
    let org = Org::new("upsert", 450, "").await;
    let report = org.run_ok().await;
    assert_eq!(report.written, 450);
    let calls = org.sf.calls("PATCH", "composite/sobjects/Contact/Customer_Id__c");
    assert_eq!(calls.iter().map(|c| records_in(c).len()).collect::<Vec<_>>(), vec![200, 200, 50], "ceil(450 / 200) requests");
    assert_eq!(org.sf.contacts().len(), 450);
    assert_eq!(org.field("c3", "LastName"), json!("Last3"));
    assert_eq!(org.field("c3", "Score__c"), json!(1.5));
    assert_eq!(org.field("c3", "Signup_Date__c"), json!("2024-01-04"));
    assert_eq!(org.field("c4", "VIP__c"), json!(true));
    org.sf.clear_log();
    assert_eq!(org.run_ok().await.written, 0);
    assert!(org.writes().is_empty(), "an unchanged model sends nothing");
}

#[tokio::test]
async fn changes_update_exactly_the_changed_records() {
    let org = Org::new("upsert", 30, "").await;
    org.run_ok().await;
    let id = org.sf.contact("c7").unwrap().id;
    org.env.exec("UPDATE people SET score = 99, first_name = NULL WHERE customer_id IN ('c7', 'c9', 'c21')").await;
    org.sf.clear_log();
    let report = org.run_ok().await;
    assert_eq!((report.counts.changed, report.written), (3, 3));
    let writes = org.writes();
    assert_eq!(writes.len(), 1);
    let mut exts: Vec<String> = records_in(&writes[0]).iter().map(|r| r["Customer_Id__c"].as_str().unwrap().to_string()).collect();
    exts.sort();
    assert_eq!(exts, vec!["c21", "c7", "c9"]);
    assert_eq!(org.sf.contact("c7").unwrap().id, id);
    assert_eq!((org.field("c7", "Score__c"), org.field("c7", "FirstName")), (json!(99.0), J::Null), "NULL clears the field");
}

#[tokio::test]
async fn mirror_deletes_removed_rows_by_their_stored_ids() {
    let org = Org::new("mirror", 10, "").await;
    org.run_ok().await;
    let mut gone: Vec<String> = ["c2", "c5"].iter().map(|e| org.sf.contact(e).unwrap().id).collect();
    gone.sort();
    org.env.exec("DELETE FROM people WHERE customer_id IN ('c2', 'c5')").await;
    org.sf.clear_log();
    let report = org.run_ok().await;
    assert_eq!((report.counts.removed, report.written), (2, 2));
    assert!(org.sf.log().iter().all(|l| l.path != "query"), "no lookup: ids were stored");
    let deletes = org.sf.calls("DELETE", "composite/sobjects");
    assert_eq!(deletes.len(), 1);
    let ids = support::jwt::form(&deletes[0].query).into_iter().find(|(k, _)| k == "ids").unwrap().1;
    let mut ids: Vec<&str> = ids.split(',').collect();
    ids.sort();
    assert_eq!(ids, gone);
    assert_eq!(org.sf.contacts().len(), 8);
}

#[tokio::test]
async fn a_record_salesforce_refuses_is_rejected_with_its_message_and_the_rest_lands() {
    let org = Org::new("upsert", 5, "").await;
    org.env
        .exec("UPDATE people SET last_name = NULL WHERE customer_id = 'c2'; UPDATE people SET email = 'nope' WHERE customer_id = 'c4'")
        .await;
    let report = org.env.run("people").await;
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!((report.written, report.rejected), (3, 2));
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("customer_id=c2") && warnings.contains("REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]"),
        "{warnings}"
    );
    assert!(warnings.contains("customer_id=c4") && warnings.contains("INVALID_EMAIL_ADDRESS"), "{warnings}");
    assert_eq!(org.sf.contacts().len(), 3);
    assert_eq!(org.writes().len(), 1);
}

#[tokio::test]
async fn limits_faults_and_expired_sessions_slow_down_but_lose_nothing() {
    let org = Org::new("mirror", 250, "").await;
    // Login and describe pass; the first upsert meets REQUEST_LIMIT_EXCEEDED, then a 503, then
    // is carried out with its answer lost; the next attempt upserts the same records again.
    let pass = Fault::Slow(std::time::Duration::ZERO);
    org.sf.fail_next(&[pass, pass, Fault::Status(403), Fault::Status(503), Fault::DropAfter]);
    org.run_ok().await;
    assert_eq!(org.sf.calls("PATCH", "composite").len(), 3, "two batches, the first answered only on its fourth attempt");
    assert_eq!(org.sf.contacts().len(), 250);
    // The session is revoked server-side: one new login, then on.
    org.env.exec("UPDATE people SET score = -1 WHERE customer_id = 'c1'").await;
    let logins = org.sf.with(|s| s.logins);
    // (the first request is the login itself; the revocation hits the call after it)
    org.sf.fail_next(&[Fault::Slow(std::time::Duration::ZERO), Fault::Revoke]);
    org.run_ok().await;
    assert_eq!(org.sf.with(|s| s.logins) - logins, 2, "the run's login, and one after INVALID_SESSION_ID");
    assert_eq!(org.field("c1", "Score__c"), json!(-1.0));
    assert_eq!(org.sf.contacts().len(), 250, "no duplicates");
}

#[tokio::test]
async fn large_runs_go_through_one_bulk_api_job_per_batch() {
    let org = Org::new("mirror", 300, "bulk_threshold = 100").await;
    org.env.exec("UPDATE people SET last_name = NULL WHERE customer_id = 'c10'").await;
    let report = org.env.run("people").await;
    assert_eq!((report.written, report.rejected, report.batches), (299, 1, 1), "{:?}", report.warnings);
    assert!(report.warnings.iter().any(|w| w.contains("customer_id=c10") && w.contains("REQUIRED_FIELD_MISSING")), "{:?}", report.warnings);
    assert_eq!(org.sf.calls("POST", "jobs/ingest").len(), 1);
    assert_eq!(org.sf.calls("PUT", "jobs/ingest").len(), 1);
    assert!(org.sf.calls("PATCH", "composite").is_empty(), "no collection calls");
    let job = org.sf.with(|s| s.jobs.values().next().cloned().unwrap());
    assert_eq!((job.state.as_str(), job.processed, job.failures), ("JobComplete", 300, 1));
    assert_eq!(org.sf.contacts().len(), 299);
    // The ids came back in the job's results and were stored: removals delete by id.
    org.env.exec("DELETE FROM people WHERE customer_id = 'c1'").await;
    let id = org.sf.contact("c1").unwrap().id;
    org.sf.clear_log();
    org.env.run("people").await;
    let deletes = org.sf.calls("DELETE", "composite/sobjects");
    assert!(deletes.len() == 1 && deletes[0].query.contains(&id), "{deletes:?}");
}

#[tokio::test]
async fn update_mode_changes_existing_records_and_insert_mode_reports_duplicates() {
    let org = Org::new("update", 2, "").await;
    org.sf.insert(json!({"Customer_Id__c": "c2", "LastName": "Old"}));
    let report = org.env.run("people").await;
    assert_eq!((report.written, report.rejected), (1, 1));
    assert!(report.warnings.iter().any(|w| w.contains("no Contact has Customer_Id__c = c1")), "{:?}", report.warnings);
    assert_eq!(org.field("c2", "LastName"), json!("Last2"));
    assert_eq!(org.sf.contacts().len(), 1);

    let org = Org::new("insert", 2, "").await;
    org.sf.insert(json!({"Customer_Id__c": "c1", "LastName": "Existing"}));
    let report = org.env.run("people").await;
    assert_eq!((report.written, report.rejected), (1, 1));
    assert!(report.warnings.iter().any(|w| w.contains("customer_id=c1") && w.contains("DUPLICATE_VALUE")), "{:?}", report.warnings);
    assert_eq!(org.sf.contacts().len(), 2);
}

#[tokio::test]
async fn check_names_the_sync_and_field_that_do_not_fit_and_login_refusals_say_why() {
    let org = Org::new("upsert", 1, "").await;
    let out = support::sluice_cli(org.env.root(), &["check"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    for (from, to, expected) in [
        ("Score__c = ", "Scor__c = ", "sync `people`: field `Scor__c` is not a field of Contact (did you mean `Score__c`?)"),
        (
            "external_id = \"Customer_Id__c\"\n[mapping]\nCustomer_Id__c",
            "external_id = \"Email\"\n[mapping]\nCustomer_Id__c",
            "external_id `Email` is not an External ID field",
        ),
        ("VIP__c = ", "CreatedDate = ", "field `CreatedDate` of Contact cannot be written"),
        ("object = \"Contact\"", "object = \"Contakt\"", "HTTP 404 NOT_FOUND"),
    ] {
        org.env.write_sync("people", &HEADER.replace("MODE", "upsert").replace(from, to), MODEL);
        let out = support::sluice_cli(org.env.root(), &["check"], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stdout}");
        assert!(stdout.contains("ERROR  people") && stdout.contains(expected), "expected `{expected}` in {stdout}");
    }
    assert!(org.writes().is_empty(), "check only reads");
    org.env.write_sync("people", &HEADER.replace("MODE", "upsert"), MODEL);
    org.sf.with(|s| s.users.clear());
    let report = org.env.run("people").await;
    let error = report.error.unwrap_or_default();
    assert!(error.contains("was refused: invalid_grant: user hasn't approved this consumer") && error.contains("pre-authorize"), "{error}");
    assert_eq!(org.sf.with(|s| s.login_refusals), 1, "a refusal is not retried");
}

#[tokio::test]
async fn a_fifth_of_requests_failing_still_ends_with_the_org_equal_to_the_model() {
    let org = Org::new("mirror", 600, "max_attempts = 12\ntimeout = \"1s\"").await;
    let seed = support::faults::seed("SLUICE_FAULT_SEED");
    org.sf.with(|s| s.random_faults = Some(support::faults::RandomFaults::new(0.2, seed)));
    org.run_ok().await;
    org.env.exec("UPDATE people SET score = -1 WHERE customer_id IN ('c7', 'c70', 'c300'); DELETE FROM people WHERE customer_id IN ('c1', 'c2', 'c500')").await;
    org.run_ok().await;
    assert!(org.sf.with(|s| s.random_faults.as_ref().unwrap().injected) > 0);
    let contacts = org.sf.contacts();
    let exts: std::collections::HashSet<String> = contacts.iter().map(|r| r.fields["Customer_Id__c"].to_string()).collect();
    assert_eq!((contacts.len(), exts.len()), (597, 597), "seed {seed}: no record missing or twice");
    assert_eq!(org.field("c70", "Score__c"), json!(-1.0), "seed {seed}");
    assert!(org.sf.contact("c2").is_none(), "seed {seed}");
}

#[tokio::test]
async fn a_batch_that_fails_part_way_resends_only_the_records_not_yet_created() {
    // 500 inserts in one bulk-sized batch: three sObject Collections creates of 200, 200, 100.
    let org = Org::new("insert", 500, "bulk_threshold = 100").await;
    let pass = Fault::Slow(std::time::Duration::ZERO);
    // Login, describe and the first create go through; the second create meets a 503.
    org.sf.fail_next(&[pass, pass, pass, Fault::Status(503)]);
    let report = org.run_ok().await;
    assert_eq!((report.written, report.rejected, report.batches), (500, 0, 1), "{:?}", report.warnings);
    let creates: Vec<usize> = org.sf.calls("POST", "composite/sobjects").iter().map(|c| records_in(c).len()).collect();
    assert_eq!(creates, vec![200, 200, 100], "the first 200 are not sent again");
    assert_eq!(org.sf.contacts().len(), 500);
}

#[tokio::test]
async fn if_empty_keeps_a_value_someone_typed_and_skipped_nulls_leave_fields_alone() {
    let org = Org::new("upsert", 3, "").await;
    let header = HEADER
        .replace("MODE", "upsert")
        .replacen("[target]", "nulls = \"skip\"\n[target]", 1)
        .replace("Email = \"email\"", "Email = { column = \"email\", write = \"if_empty\" }");
    org.env.write_sync("people", &header, MODEL);
    org.run_ok().await;
    // A rep types an email on c1 and empties c2's; the model's emails change and c3's first name goes NULL.
    org.sf.with(|s| {
        s.find("Contact", "Customer_Id__c", &json!("c1")).unwrap().fields.insert("Email".into(), json!("rep@typed.com"));
        s.find("Contact", "Customer_Id__c", &json!("c2")).unwrap().fields.insert("Email".into(), J::Null);
    });
    org.env.exec("UPDATE people SET email = 'new' || customer_id || '@x.com', first_name = CASE WHEN customer_id = 'c3' THEN NULL ELSE first_name END").await;
    org.run_ok().await;
    assert_eq!(org.field("c1", "Email"), json!("rep@typed.com"), "a value someone typed is kept");
    assert_eq!(org.field("c2", "Email"), json!("newc2@x.com"), "an empty field is filled");
    assert_eq!(org.field("c3", "FirstName"), json!("First3"), "a NULL is skipped, not written");
}
