//! The HubSpot destination against the HubSpot emulator.

use crate::support;

use sluice::state::RunStatus;
use support::hubspot::{Crm, Fault, HubSpot};

const HEADER: &str = r#"destination = "crm"
primary_key = "customer_id"
mode = "MODE"
[target]
object = "contacts"
id_property = "email"
[mapping]
email = "email"
firstname = "first_name"
score = "score"
signup_date = "signup_date"
is_vip = "vip"
customer_id = "customer_id""#;

const MODEL: &str = "SELECT customer_id, email, first_name, score, signup_date, vip FROM people";

/// The project of these tests: `n` people synced in `mode`, `extra` destination settings.
async fn start(mode: &str, n: u32, extra: &str) -> Crm {
    start_with_model(mode, n, extra, MODEL).await
}

async fn start_with_model(mode: &str, n: u32, extra: &str, model: &str) -> Crm {
    let setup = format!(
        "CREATE TABLE people(customer_id TEXT, email TEXT, first_name TEXT, score INT, signup_date DATE, vip BOOLEAN);
         INSERT INTO people SELECT 'c' || i, 'p' || i || '@x.com', 'P' || i, i, DATE '2024-01-01' + i::INT, i % 2 = 0 FROM range(1, {}) t(i);",
        n + 1
    );
    Crm::start(extra, &setup, &HEADER.replace("MODE", mode), model).await
}

#[tokio::test]
async fn first_sync_creates_in_batches_of_100_and_the_second_sends_nothing() {
    let crm = start("upsert", 250, "").await;
    let report = crm.run_ok().await;
    assert_eq!(report.written, 250);
    let upserts = crm.hubspot.writes("upsert");
    assert_eq!(upserts.len(), 3, "ceil(250 / 100) requests");
    assert_eq!(upserts.iter().map(|u| u.body["inputs"].as_array().unwrap().len()).collect::<Vec<_>>(), vec![100, 100, 50]);
    assert_eq!(crm.hubspot.records("contacts").len(), 250);
    assert_eq!(crm.prop("p2@x.com", "firstname").as_deref(), Some("P2"));
    assert_eq!(crm.prop("p2@x.com", "is_vip").as_deref(), Some("true"));
    assert_eq!(crm.prop("p2@x.com", "signup_date").as_deref(), Some("1704240000000"), "2024-01-03 at midnight UTC in epoch ms");
    crm.hubspot.clear_log();
    let again = crm.run_ok().await;
    assert_eq!(again.written, 0);
    assert!(crm.hubspot.log().iter().all(|l| !l.path.contains("/batch/")), "an unchanged model sends no batch");
}

#[tokio::test]
async fn changes_update_exactly_the_changed_records() {
    let crm = start("upsert", 20, "").await;
    crm.run_ok().await;
    let before = crm.hubspot.find("contacts", "email", "p5@x.com").unwrap().id;
    crm.env.exec("UPDATE people SET score = 0, first_name = NULL WHERE customer_id IN ('c5', 'c7', 'c11')").await;
    crm.hubspot.clear_log();
    let report = crm.run_ok().await;
    assert_eq!((report.counts.changed, report.written), (3, 3));
    let upserts = crm.hubspot.writes("upsert");
    assert_eq!(upserts.len(), 1);
    let mut ids: Vec<&str> = upserts[0].body["inputs"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["p11@x.com", "p5@x.com", "p7@x.com"]);
    assert_eq!(crm.hubspot.find("contacts", "email", "p5@x.com").unwrap().id, before, "the same record, updated");
    assert_eq!(crm.prop("p5@x.com", "score").as_deref(), Some("0"));
    assert_eq!(crm.prop("p5@x.com", "firstname").as_deref(), Some(""), "NULL clears the property");
    assert_eq!(crm.hubspot.records("contacts").len(), 20);
}

#[tokio::test]
async fn mirror_archives_removed_rows_by_their_stored_record_ids() {
    let crm = start("mirror", 10, "").await;
    crm.run_ok().await;
    let gone: Vec<String> = ["p3@x.com", "p8@x.com"].iter().map(|e| crm.hubspot.find("contacts", "email", e).unwrap().id).collect();
    crm.env.exec("DELETE FROM people WHERE customer_id IN ('c3', 'c8')").await;
    crm.hubspot.clear_log();
    let report = crm.run_ok().await;
    assert_eq!((report.counts.removed, report.written), (2, 2));
    assert!(crm.hubspot.log().iter().all(|l| !l.path.ends_with("/batch/read")), "no lookup: the ids were stored");
    let archives = crm.hubspot.writes("archive");
    assert_eq!(archives.len(), 1);
    let mut archived: Vec<String> =
        archives[0].body["inputs"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    archived.sort();
    let mut expected = gone.clone();
    expected.sort();
    assert_eq!(archived, expected);
    assert_eq!(crm.hubspot.records("contacts").len(), 8);
}

#[tokio::test]
async fn a_row_hubspot_refuses_is_rejected_with_its_message_and_the_rest_lands() {
    let model = "SELECT customer_id, CASE WHEN customer_id = 'c4' THEN 'not-an-email' ELSE email END AS email, first_name, \
                 CASE WHEN customer_id = 'c2' THEN 'lots' ELSE score::TEXT END AS score, signup_date, vip FROM people";
    let crm = start_with_model("upsert", 6, "", model).await;
    let report = crm.env.run("people").await;
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!((report.written, report.rejected), (4, 2));
    let warnings = report.warnings.join("\n");
    assert!(warnings.contains("customer_id=c2") && warnings.contains("lots was not a valid number"), "{warnings}");
    assert!(warnings.contains("customer_id=c4") && warnings.contains("INVALID_EMAIL"), "{warnings}");
    assert_eq!(crm.hubspot.records("contacts").len(), 4);
    assert_eq!(crm.hubspot.writes("upsert").len(), 1, "one request: the rest of the batch landed with it");
}

#[tokio::test]
async fn the_rate_limit_headers_pace_the_client_below_the_limit() {
    // One request at a time: requests already on the wire when the window fills cannot be called
    // back, and this is about the headers.
    let crm = start("upsert", 250, "max_batch_rows = 50\nrate_limit_per_10s = 100000\nmax_in_flight = 1").await;
    crm.hubspot.with(|s| {
        s.rate_max = 2;
        s.rate_window = std::time::Duration::from_millis(300);
    });
    assert_eq!(crm.run_ok().await.written, 250);
    assert_eq!(crm.hubspot.with(|s| s.rate_refusals), 0, "X-HubSpot-RateLimit-Remaining: 0 made the client wait for the window");
    assert_eq!(crm.hubspot.records("contacts").len(), 250);
}

#[tokio::test]
async fn rate_limit_answers_slow_the_run_down_but_lose_nothing() {
    let crm = start("upsert", 250, "max_batch_rows = 50\nmax_attempts = 6").await;
    // A 429 without Retry-After waits for the window the headers give (here 200 ms).
    crm.hubspot.with(|s| s.rate_window = std::time::Duration::from_millis(200));
    crm.hubspot.fail_next(&[Fault::Slow(std::time::Duration::ZERO), Fault::Status(429), Fault::Status(429), Fault::Status(429)]);
    let report = crm.run_ok().await;
    assert_eq!((report.written, report.rejected, report.retryable), (250, 0, 0));
    assert_eq!(crm.hubspot.log().iter().filter(|l| l.status == 429).count(), 3);
    assert_eq!(crm.hubspot.records("contacts").len(), 250);
    assert_eq!(crm.hubspot.writes("upsert").len(), 5, "each batch landed once");
}

#[tokio::test]
async fn faults_and_lost_answers_neither_lose_nor_duplicate_records() {
    let crm = start("mirror", 120, "").await;
    crm.hubspot.with(|s| s.rate_window = std::time::Duration::from_millis(200));
    // (Each run first asks HubSpot which account the token belongs to: that request goes through.)
    crm.hubspot.fail_next(&[Fault::Slow(std::time::Duration::ZERO), Fault::Status(502), Fault::Status(429)]);
    crm.run_ok().await;
    crm.env.exec("UPDATE people SET score = -1 WHERE customer_id = 'c1'; DELETE FROM people WHERE customer_id = 'c2'").await;
    // The account asked, the properties read, then the upsert carried out but its answer lost, then a 503.
    crm.hubspot.fail_next(&[
        Fault::Slow(std::time::Duration::ZERO),
        Fault::Slow(std::time::Duration::ZERO),
        Fault::DropAfter,
        Fault::Status(503),
    ]);
    crm.run_ok().await;
    let records = crm.hubspot.records("contacts");
    assert_eq!(records.len(), 119);
    let mut emails: Vec<&str> = records.iter().map(|r| r.properties["email"].as_str()).collect();
    emails.dedup();
    assert_eq!(emails.len(), 119, "no duplicates");
    assert_eq!(crm.prop("p1@x.com", "score").as_deref(), Some("-1"));
}

#[tokio::test]
async fn update_mode_changes_existing_records_only() {
    let crm = start("update", 3, "").await;
    crm.hubspot.with(|s| {
        let props = serde_json::json!({"email": "P2@x.com", "firstname": "Old"});
        let _ = s.records.entry("contacts".into()).or_default();
        s.records.get_mut("contacts").unwrap().push(support::hubspot::Record {
            id: "77".into(),
            properties: props.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect(),
            archived: false,
        });
    });
    let report = crm.env.run("people").await;
    assert_eq!((report.written, report.rejected), (1, 2), "{:?}", report.warnings);
    assert!(report.warnings.iter().any(|w| w.contains("no contacts record has email = p1@x.com")), "{:?}", report.warnings);
    assert_eq!(crm.hubspot.records("contacts").len(), 1, "nothing created");
    let record = &crm.hubspot.records("contacts")[0];
    assert_eq!((record.id.as_str(), record.properties["firstname"].as_str()), ("77", "P2"));
}

#[tokio::test]
async fn insert_mode_creates_and_reports_conflicts() {
    let crm = start("insert", 2, "").await;
    crm.hubspot.with(|s| {
        s.records.entry("contacts".into()).or_default().push(support::hubspot::Record {
            id: "5".into(),
            properties: [("email".to_string(), "p1@x.com".to_string())].into_iter().collect(),
            archived: false,
        })
    });
    let report = crm.env.run("people").await;
    assert_eq!((report.written, report.rejected), (1, 1));
    assert!(
        report.warnings.iter().any(|w| w.contains("customer_id=c1") && w.contains("CONFLICT") && w.contains("Existing ID: 5")),
        "{:?}",
        report.warnings
    );
    // Batch create is all or nothing: the pair's 409 is split and only the good row's create lands.
    assert_eq!(crm.hubspot.writes("create").len(), 1);
    assert_eq!(crm.hubspot.records("contacts").len(), 2, "the good row was created");
}

#[tokio::test]
async fn check_names_the_sync_and_field_that_do_not_fit() {
    let crm = start("upsert", 1, "").await;
    let out = support::sluice_cli(crm.env.root(), &["check"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    for (from, to, expected) in [
        ("firstname = ", "first_nmae = ", "sync `people`: field `first_nmae` is not a property of contacts (did you mean `firstname`?)"),
        ("score = ", "hs_object_id = ", "field `hs_object_id` is a read-only property"),
        ("id_property = \"email\"", "id_property = \"firstname\"", "id_property `firstname` does not have unique values"),
        ("id_property = \"email\"", "id_property = \"mail\"", "id_property = \"mail\" is not one of the mapped fields"),
        ("object = \"contacts\"", "object = \"contact\"", "Unable to infer object type from: contact"),
    ] {
        crm.env.write_sync("people", &HEADER.replace("MODE", "upsert").replace(from, to), MODEL);
        let out = support::sluice_cli(crm.env.root(), &["check"], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stdout}");
        assert!(stdout.contains("ERROR  people") && stdout.contains(expected), "expected `{expected}` in {stdout}");
    }
    assert!(crm.hubspot.log().iter().all(|l| l.method == "GET"), "check only reads");
}

#[tokio::test]
async fn a_bad_token_fails_the_run_with_what_to_do() {
    let crm = start("upsert", 1, "").await;
    let config = std::fs::read_to_string(crm.env.root().join("sluice.toml")).unwrap().replace(support::hubspot::TOKEN, "pat-wrong");
    std::fs::write(crm.env.root().join("sluice.toml"), config).unwrap();
    let report = crm.env.run("people").await;
    let error = report.error.unwrap_or_default();
    assert!(error.contains("HTTP 401 INVALID_AUTHENTICATION") && error.contains("Private apps"), "{error}");
    assert!(!error.contains("pat-wrong"), "the token never shows");
}

#[tokio::test]
async fn a_fifth_of_requests_failing_still_ends_with_the_crm_equal_to_the_model() {
    let crm = start("mirror", 300, "max_batch_rows = 25\nmax_attempts = 12\ntimeout = \"1s\"").await;
    crm.hubspot.with(|s| s.rate_window = std::time::Duration::from_millis(50));
    let seed = support::faults::seed("SLUICE_FAULT_SEED");
    crm.hubspot.with(|s| s.random_faults = Some(support::faults::RandomFaults::new(0.2, seed)));
    crm.run_ok().await;
    crm.env.exec("DELETE FROM people WHERE score > 280; UPDATE people SET score = -1 WHERE score % 7 = 0").await;
    crm.run_ok().await;
    assert!(crm.hubspot.with(|s| s.random_faults.as_ref().unwrap().injected) > 0);
    let records = crm.hubspot.records("contacts");
    let emails: std::collections::HashSet<&str> = records.iter().map(|r| r.properties["email"].as_str()).collect();
    assert_eq!((records.len(), emails.len()), (280, 280), "seed {seed}: no record missing or twice");
    assert_eq!(crm.prop("p14@x.com", "score").as_deref(), Some("-1"), "seed {seed}");
}

#[tokio::test]
async fn a_batch_create_refused_for_one_bad_email_is_split_down_to_that_row() {
    let crm = start("insert", 100, "").await;
    crm.env.exec("UPDATE people SET email = 'not-an-email' WHERE customer_id = 'c42'").await;
    let report = crm.env.run("people").await;
    assert_eq!((report.written, report.rejected), (99, 1), "{:?} {:?}", report.error, report.warnings);
    assert!(
        report.warnings.iter().any(|w| w.contains("row (customer_id=c42) rejected") && w.contains("Email address not-an-email is invalid")),
        "{:?}",
        report.warnings
    );
    assert_eq!(crm.hubspot.records("contacts").len(), 99);
    let requests = crm.hubspot.log().iter().filter(|l| l.path.ends_with("/batch/create")).count();
    assert!(requests <= 1 + 2 * 100, "{requests} create requests");
}

#[tokio::test]
async fn on_remove_clear_empties_the_mapped_properties_but_keeps_the_contact_and_its_email() {
    let crm = start("upsert", 3, "").await;
    crm.env.write_sync("people", &HEADER.replace("MODE", "upsert").replacen("[target]", "on_remove = \"clear\"\n[target]", 1), MODEL);
    crm.run_ok().await;
    crm.env.exec("DELETE FROM people WHERE customer_id = 'c2'").await;
    let report = crm.run_ok().await;
    assert_eq!((report.to_send.clear, report.written), (1, 1));
    assert_eq!(crm.hubspot.records("contacts").len(), 3, "the contact stays");
    assert_eq!(crm.prop("p2@x.com", "email").as_deref(), Some("p2@x.com"), "the id property is never emptied");
    for property in ["firstname", "score", "is_vip", "customer_id"] {
        assert_eq!(crm.prop("p2@x.com", property).as_deref().unwrap_or(""), "", "{property} emptied");
    }
    assert_eq!(crm.prop("p1@x.com", "firstname").as_deref(), Some("P1"), "other contacts untouched");
}

#[tokio::test]
async fn if_empty_keeps_a_reps_value_and_skipped_nulls_leave_properties_alone() {
    let crm = start("upsert", 3, "").await;
    let header = HEADER
        .replace("MODE", "upsert")
        .replacen("[target]", "nulls = \"skip\"\n[target]", 1)
        .replace("firstname = \"first_name\"", "firstname = { column = \"first_name\", write = \"if_empty\" }");
    crm.env.write_sync("people", &header, MODEL);
    crm.run_ok().await;
    crm.hubspot.with(|s| {
        for r in s.records.get_mut("contacts").unwrap() {
            match r.properties.get("email").map(String::as_str) {
                Some("p1@x.com") => r.properties.insert("firstname".into(), "Typed by a rep".into()),
                Some("p2@x.com") => r.properties.insert("firstname".into(), String::new()),
                _ => None,
            };
        }
    });
    crm.env
        .exec("UPDATE people SET first_name = 'New' || customer_id, score = CASE WHEN customer_id = 'c3' THEN NULL ELSE score + 1 END")
        .await;
    crm.run_ok().await;
    assert_eq!(crm.prop("p1@x.com", "firstname").as_deref(), Some("Typed by a rep"));
    assert_eq!(crm.prop("p2@x.com", "firstname").as_deref(), Some("Newc2"));
    assert_eq!(crm.prop("p3@x.com", "score").as_deref(), Some("3"), "a NULL is skipped, not written");
    assert_eq!(crm.prop("p1@x.com", "score").as_deref(), Some("2"));
}

/// A row's outcome is decided once: a row the writer rejected before sending is in no request,
/// so a refusal of the request (batch create is all or nothing) does not turn it into a row the
/// engine must send again to find out.
#[tokio::test]
async fn a_row_rejected_before_sending_keeps_its_reason_when_the_request_is_refused() {
    use sluice::destinations::{Op, RowOp, RowOutcome, Target};
    use sluice::value::Value;

    let hubspot = HubSpot::start().await;
    let spec: sluice::project::DestinationSpec = toml::from_str(&hubspot.destination_toml("")).unwrap();
    let destination = sluice::destinations::build("crm", &spec, std::path::Path::new(".")).unwrap();
    let target = Target {
        sync: "people".into(),
        run_id: "r1".into(),
        mode: sluice::project::Mode::Insert,
        settings: toml::from_str("object = \"contacts\"\nid_property = \"email\"").unwrap(),
        key_columns: vec!["customer_id".into()],
        fields: vec!["email".into(), "firstname".into()],
        key_fields: vec![None],
        key_types: vec![sluice::value::ValueType::Text],
        field_types: vec![sluice::value::ValueType::Text; 2],
        skip_nulls: false,
        if_empty: vec![false, false],
    };
    let mut writer = destination.open(&target).await.unwrap();
    let row = |email: &str| RowOp {
        op: Op::Insert,
        key: vec![Value::Text(email.into())],
        fields: vec![Value::Text(email.into()), Value::Text("P".into())],
        destination_id: None,
    };
    let out = writer.write(&[row(""), row("not-an-email"), row("ok@x.com")]).await.unwrap();
    assert!(matches!(&out[0], RowOutcome::Rejected(m) if m.contains("`email` is empty")), "{:?}", out[0]);
    assert!(out[1..].iter().all(|o| matches!(o, RowOutcome::RefusedInGroup(m) if m.contains("not-an-email"))), "{out:?}");
    let creates: Vec<_> = hubspot.log().into_iter().filter(|l| l.path.ends_with("/batch/create")).collect();
    assert_eq!((creates.len(), creates[0].status), (1, 400));
    assert_eq!(creates[0].body["inputs"].as_array().map(Vec::len), Some(2), "the empty row is not sent");
}
