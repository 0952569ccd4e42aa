//! HubSpot as it is documented to behave, not as our client would like it: results in any order
//! and normalised, records merged or deleted behind the sync's back, locks and migrations,
//! duplicate ids, multiple-checkbox values and email's rule on partial upserts. Each test failed
//! against the client before it learnt to cope (the emulator's module docs give the sources).

use std::time::Instant;

use crate::support;

use support::hubspot::{Crm, Fault};

/// A DuckDB project whose `model` syncs to HubSpot with this `header`.
async fn start(header: &str, setup: &str, model: &str) -> Crm {
    Crm::start("", setup, header, model).await
}

/// The requests HubSpot refused, for a failure's message.
fn refused(crm: &Crm) -> Vec<String> {
    crm.hubspot.log().iter().filter(|l| l.status >= 400).map(|l| format!("{} {} {:.200}", l.status, l.path, l.body.to_string())).collect()
}

const CONTACTS: &str = r#"destination = "crm"
primary_key = "customer_id"
mode = "MODE"
[target]
object = "contacts"
id_property = "email"
[mapping]
email = "email"
firstname = "first_name"
customer_id = "customer_id""#;

fn contacts(mode: &str) -> String {
    CONTACTS.replace("MODE", mode)
}

const PEOPLE: &str = "CREATE TABLE people(customer_id TEXT, email TEXT, first_name TEXT);
     INSERT INTO people SELECT 'c' || i, 'P' || i || '@X.com', 'P' || i FROM range(1, 251) t(i);";
const MODEL: &str = "SELECT customer_id, email, first_name FROM people";

#[tokio::test]
async fn results_in_any_order_and_normalised_numbers_are_matched_by_value_never_by_position() {
    // Companies matched by a number property the model holds as zero-padded text: HubSpot
    // echoes `42` for `00042`, and in its own order.
    let header = r#"destination = "crm"
primary_key = "erp"
mode = "mirror"
[target]
object = "companies"
id_property = "erp_id"
[mapping]
erp_id = "erp"
name = "name""#;
    let crm = start(
        header,
        "CREATE TABLE firms(erp TEXT, name TEXT); INSERT INTO firms SELECT lpad(i::TEXT, 5, '0'), 'Firm ' || i FROM range(1, 251) t(i);",
        "SELECT erp, name FROM firms",
    )
    .await;
    let report = crm.run_ok().await;
    assert_eq!((report.written, report.retryable), (250, 0), "{:?}", report.warnings);
    let second = crm.run_ok().await;
    assert_eq!(second.written, 0, "nothing changed, nothing is sent again");
    // Removals archive by the stored record ids: each must be the row's own company.
    crm.env.exec("DELETE FROM firms WHERE erp IN ('00042', '00199')").await;
    crm.run_ok().await;
    let mut left: Vec<String> = crm.hubspot.records("companies").iter().map(|r| r.properties["erp_id"].clone()).collect();
    left.sort_by_key(|e| e.parse::<u32>().unwrap_or(0));
    let expected: Vec<String> = (1..=250).filter(|i| *i != 42 && *i != 199).map(|i| i.to_string()).collect();
    assert_eq!(left, expected);
}

#[tokio::test]
async fn locked_and_migrating_answers_are_waited_out() {
    let crm = start(&contacts("upsert"), PEOPLE, MODEL).await;
    crm.hubspot.fail_next(&[Fault::Status(423), Fault::Status(477)]);
    let started = Instant::now();
    let report = crm.run_ok().await;
    assert_eq!(report.written, 250);
    assert_eq!(crm.hubspot.records("contacts").len(), 250);
    // HubSpot asks for at least 2 s after a 423; 477 says 1 s in Retry-After.
    assert!(started.elapsed().as_secs_f64() >= 3.0, "waited {:?}", started.elapsed());
}

#[tokio::test]
async fn a_record_merged_or_deleted_in_hubspot_is_found_again_by_its_email() {
    let crm = start(&contacts("update"), PEOPLE, MODEL).await;
    // The contacts exist; update mode finds them by email and stores their record ids.
    crm.hubspot.with(|s| {
        for i in 1..=250 {
            let props = serde_json::json!({ "email": format!("p{i}@x.com"), "firstname": "Old" });
            s.records.entry("contacts".into()).or_default().push(support::hubspot::Record {
                id: (5000 + i).to_string(),
                properties: props.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect(),
                archived: false,
            });
        }
    });
    crm.run_ok().await;
    // Someone merges two contacts into new records (new ids, same emails) and deletes a third.
    crm.hubspot.with(|s| {
        for r in s.records.get_mut("contacts").unwrap().iter_mut() {
            if ["5001", "5002", "5003"].contains(&r.id.as_str()) {
                r.archived = true;
            }
        }
        for (id, email) in [("9001", "p1@x.com"), ("9002", "p2@x.com")] {
            let props = serde_json::json!({ "email": email, "firstname": "Merged" });
            s.records.get_mut("contacts").unwrap().push(support::hubspot::Record {
                id: id.into(),
                properties: props.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect(),
                archived: false,
            });
        }
    });
    // A batch where every stored id is gone (HubSpot: 404), then one where some are (207).
    crm.env.exec("UPDATE people SET first_name = 'New' || customer_id WHERE customer_id IN ('c1', 'c2', 'c3')").await;
    let report = crm.env.run("people").await;
    assert_eq!((report.written, report.rejected), (2, 1), "{:?} {:?}", report.error, report.warnings);
    assert_eq!(crm.prop("p1@x.com", "firstname").as_deref(), Some("Newc1"));
    assert_eq!(crm.prop("p2@x.com", "firstname").as_deref(), Some("Newc2"));
    assert!(report.warnings.iter().any(|w| w.contains("customer_id=c3") && w.contains("no contacts record has email = P3@X.com")));
    // One stored id of two gone (HubSpot: 207, OBJECT_NOT_FOUND for that one).
    crm.hubspot.with(|s| {
        let records = s.records.get_mut("contacts").unwrap();
        records.iter_mut().filter(|r| r.id == "5004").for_each(|r| r.archived = true);
        let props = serde_json::json!({ "email": "p4@x.com", "firstname": "Merged" });
        records.push(support::hubspot::Record {
            id: "9004".into(),
            properties: props.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect(),
            archived: false,
        });
    });
    crm.env.exec("UPDATE people SET first_name = 'Again' || customer_id WHERE customer_id IN ('c1', 'c4')").await;
    let report = crm.env.run("people").await;
    assert_eq!((report.written, report.rejected), (2, 0), "{:?} {:?}", report.error, report.warnings);
    assert_eq!(crm.prop("p1@x.com", "firstname").as_deref(), Some("Againc1"));
    assert_eq!(crm.prop("p4@x.com", "firstname").as_deref(), Some("Againc4"));
    // The new record ids were stored: the next change needs no lookup.
    crm.env.exec("UPDATE people SET first_name = 'Third' || customer_id WHERE customer_id IN ('c1', 'c4')").await;
    crm.hubspot.clear_log();
    let report = crm.env.run("people").await;
    assert_eq!((report.written, report.held), (2, 1), "c3 stays rejected until it changes: {:?}", report.warnings);
    assert_eq!(crm.hubspot.writes("update").len(), 1);
    assert!(
        crm.hubspot.log().iter().all(|l| !l.path.ends_with("/batch/read")),
        "{:?}",
        crm.hubspot.log().iter().map(|l| &l.path).collect::<Vec<_>>()
    );
    assert_eq!(crm.prop("p4@x.com", "firstname").as_deref(), Some("Thirdc4"));
}

#[tokio::test]
async fn two_rows_with_one_email_are_told_apart_not_sent_as_duplicates() {
    let header = contacts("upsert").replace("firstname = \"first_name\"", "firstname = { column = \"first_name\", write = \"if_empty\" }");
    let crm = start(
        &header,
        "CREATE TABLE people(customer_id TEXT, email TEXT, first_name TEXT);
         INSERT INTO people VALUES ('c1', 'ann@x.com', 'Ann'), ('c2', 'ANN@x.com', 'Annie'), ('c3', 'bob@x.com', 'Bob');",
        MODEL,
    )
    .await;
    let report = crm.env.run("people").await;
    assert_eq!((report.written, report.rejected), (2, 1), "{:?} {:?}", report.error, report.warnings);
    assert!(
        report.warnings.iter().any(|w| w.contains("customer_id=c2") && w.contains("customer_id=c1") && w.contains("email = ANN@x.com")),
        "{:?}",
        report.warnings
    );
    assert_eq!(crm.hubspot.records("contacts").len(), 2);
    assert_eq!(refused(&crm), Vec::<String>::new(), "no request with a duplicate id");
}

#[tokio::test]
async fn list_columns_fill_multiple_checkbox_properties() {
    let header = contacts("upsert").replace("customer_id = \"customer_id\"", "customer_id = \"customer_id\"\ninterests = \"interests\"");
    let crm = start(
        &header,
        "CREATE TABLE people(customer_id TEXT, email TEXT, first_name TEXT, interests TEXT[]);
         INSERT INTO people VALUES ('c1', 'ann@x.com', 'Ann', ['product', 'support']), ('c2', 'bob@x.com', 'Bob', []), ('c3', 'cy@x.com', 'Cy', NULL);",
        "SELECT customer_id, email, first_name, interests FROM people",
    )
    .await;
    crm.run_ok().await;
    assert_eq!(crm.prop("ann@x.com", "interests").as_deref(), Some("product;support"));
    assert_eq!(crm.prop("bob@x.com", "interests").as_deref(), Some(""));
    assert_eq!(crm.prop("cy@x.com", "interests").as_deref(), Some(""));
}

#[tokio::test]
async fn email_upserts_send_whole_property_sets_with_skipped_nulls_and_if_empty() {
    let header = contacts("upsert").replacen("[target]", "nulls = \"skip\"\n[target]", 1).replace(
        "customer_id = \"customer_id\"",
        "customer_id = \"customer_id\"\nlastname = { column = \"last_name\", write = \"if_empty\" }",
    );
    let crm = start(
        &header,
        "CREATE TABLE people(customer_id TEXT, email TEXT, first_name TEXT, last_name TEXT);
         INSERT INTO people SELECT 'c' || i, 'p' || i || '@x.com', CASE WHEN i % 3 = 0 THEN NULL ELSE 'P' || i END, 'L' || i FROM range(1, 31) t(i);",
        "SELECT customer_id, email, first_name, last_name FROM people",
    )
    .await;
    crm.run_ok().await;
    crm.hubspot.with(|s| {
        for r in s.records.get_mut("contacts").unwrap() {
            if r.properties.get("email").map(String::as_str) == Some("p3@x.com") {
                r.properties.insert("firstname".into(), "Typed".into());
                r.properties.insert("lastname".into(), "Typed too".into());
            }
        }
    });
    crm.env
        .exec("UPDATE people SET last_name = 'M' || customer_id, first_name = CASE WHEN first_name IS NULL THEN NULL ELSE 'Q' END")
        .await;
    let report = crm.run_ok().await;
    assert_eq!(report.written, 30);
    assert_eq!(refused(&crm), Vec::<String>::new(), "no batch refused as a partial upsert");
    assert_eq!(crm.prop("p3@x.com", "firstname").as_deref(), Some("Typed"), "a NULL leaves the value alone");
    assert_eq!(crm.prop("p3@x.com", "lastname").as_deref(), Some("Typed too"), "if_empty keeps a value");
    assert_eq!(crm.prop("p1@x.com", "firstname").as_deref(), Some("Q"));
    assert_eq!(crm.prop("p4@x.com", "lastname").as_deref(), Some("L4"), "if_empty: sluice's own value counts as a value");
}
