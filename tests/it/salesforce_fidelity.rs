//! Salesforce as it is documented to behave: the JWT audience of a My Domain or sandbox login,
//! typed SOQL literals and case-insensitive external ids, the URI length cap, collections refused
//! whole for a value of the wrong type, multi-select picklists and millisecond datetimes. Each
//! test failed against the client before it learnt to cope (the emulator's module docs give the
//! sources).

use crate::support;

use serde_json::json;
use sluice::state::RunStatus;
use support::salesforce::Salesforce;
use support::{Env, SourceKind, StateKind};

struct Org {
    env: Env,
    sf: Salesforce,
}

impl Org {
    async fn new(extra: &str, header: &str, setup: &str, model: &str) -> Org {
        let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
        let sf = Salesforce::start().await;
        env.add_destination("sf", &sf.destination_toml(env.root(), extra));
        env.exec(setup).await;
        env.write_sync("people", header, model);
        Org { env, sf }
    }

    async fn run_ok(&self) -> sluice::engine::SyncReport {
        let report = self.env.run("people").await;
        assert_eq!(report.status, RunStatus::Success, "run failed: {:?} {:?}", report.error, report.warnings);
        report
    }
}

fn header(mode: &str, external_id: &str, mapping: &str) -> String {
    format!(
        "destination = \"sf\"\nprimary_key = \"id\"\nmode = \"{mode}\"\n[target]\nobject = \"Contact\"\nexternal_id = \"{external_id}\"\n[mapping]\n{mapping}"
    )
}

const PEOPLE: &str = "CREATE TABLE people(id TEXT, last_name TEXT); INSERT INTO people SELECT 'c' || i, 'Last' || i FROM range(1, 4) t(i);";

#[tokio::test]
async fn a_my_domain_login_names_the_login_host_as_audience_and_a_sandbox_says_so() {
    let mapping = "Customer_Id__c = \"id\"\nLastName = \"last_name\"";
    let org = Org::new("", &header("upsert", "Customer_Id__c", mapping), PEOPLE, "SELECT id, last_name FROM people").await;
    // The token is asked of the emulator's address (a My Domain), the audience is login.salesforce.com.
    assert_eq!(org.run_ok().await.written, 3);

    let sandbox = Org::new("", &header("upsert", "Customer_Id__c", mapping), PEOPLE, "SELECT id, last_name FROM people").await;
    sandbox.sf.with(|s| s.sandbox = true);
    let report = sandbox.env.run("people").await;
    let error = report.error.unwrap_or_default();
    assert!(error.contains("audience is invalid") && error.contains("`audience`"), "{error}");
    let config = std::fs::read_to_string(sandbox.env.root().join("sluice.toml")).unwrap();
    std::fs::write(
        sandbox.env.root().join("sluice.toml"),
        config.replace("kind = \"salesforce\"", "kind = \"salesforce\"\naudience = \"https://test.salesforce.com\""),
    )
    .unwrap();
    assert_eq!(sandbox.run_ok().await.written, 3);
}

#[tokio::test]
async fn number_external_ids_are_queried_as_numbers_and_matched_by_value() {
    let mapping = "Legacy_Number__c = \"legacy\"\nLastName = \"last_name\"";
    let org = Org::new(
        "",
        &header("update", "Legacy_Number__c", mapping).replace("primary_key = \"id\"", "primary_key = \"legacy\""),
        "CREATE TABLE people(legacy INT, last_name TEXT); INSERT INTO people VALUES (1001, 'New1'), (1002, 'New2'), (1003, 'New3');",
        "SELECT legacy, last_name FROM people",
    )
    .await;
    for n in [1001.0, 1002.0] {
        org.sf.insert(json!({ "LastName": "Old", "Legacy_Number__c": n }));
    }
    let report = org.env.run("people").await;
    assert_eq!((report.written, report.rejected), (2, 1), "{:?} {:?}", report.error, report.warnings);
    let names: Vec<String> = org.sf.contacts().iter().map(|r| r.fields["LastName"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, vec!["New1", "New2"]);
    assert!(report.warnings.iter().any(|w| w.contains("legacy=1003") && w.contains("update mode")), "{:?}", report.warnings);
}

#[tokio::test]
async fn external_ids_match_whatever_their_case() {
    let mapping = "Customer_Id__c = \"id\"\nLastName = \"last_name\"";
    let org = Org::new(
        "",
        &header("update", "Customer_Id__c", mapping),
        "CREATE TABLE people(id TEXT, last_name TEXT); INSERT INTO people VALUES ('ABC-1', 'New'), ('abc-2', 'New too');",
        "SELECT id, last_name FROM people",
    )
    .await;
    org.sf.insert(json!({ "LastName": "Old", "Customer_Id__c": "abc-1" }));
    org.sf.insert(json!({ "LastName": "Old", "Customer_Id__c": "ABC-2" }));
    let report = org.run_ok().await;
    assert_eq!(report.written, 2, "{:?}", report.warnings);
    assert!(org.sf.contacts().iter().all(|r| r.fields["LastName"].as_str().unwrap().starts_with("New")));
}

#[tokio::test]
async fn long_external_ids_are_looked_up_in_queries_under_the_uri_limit() {
    let mapping = "Customer_Id__c = \"id\"\nLastName = \"last_name\"";
    let org = Org::new(
        "",
        &header("update", "Customer_Id__c", mapping),
        "CREATE TABLE people(id TEXT, last_name TEXT);
         INSERT INTO people SELECT repeat('x', 110) || lpad(i::TEXT, 4, '0'), 'New' || i FROM range(1, 201) t(i);",
        "SELECT id, last_name FROM people",
    )
    .await;
    org.sf.with(|s| {
        for i in 1..=200 {
            s.create(
                "Contact",
                json!({ "LastName": "Old", "Customer_Id__c": format!("{}{i:04}", "x".repeat(110)) }).as_object().unwrap().clone(),
            );
        }
    });
    let report = org.run_ok().await;
    assert_eq!(report.written, 200);
    let queries: Vec<_> = org.sf.log().into_iter().filter(|l| l.path == "query").collect();
    assert!(queries.len() >= 2 && queries.iter().all(|q| q.status == 200), "{:?}", queries.iter().map(|q| q.status).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_value_of_the_wrong_type_fails_its_collection_and_the_row_is_found_and_rejected() {
    let mapping = "Customer_Id__c = \"id\"\nLastName = \"last_name\"\nScore__c = \"score\"";
    let org = Org::new(
        "",
        &header("upsert", "Customer_Id__c", mapping),
        "CREATE TABLE people(id TEXT, last_name TEXT, score TEXT);
         INSERT INTO people SELECT 'c' || i, 'Last' || i, CASE WHEN i = 17 THEN 'lots' ELSE i::TEXT END FROM range(1, 51) t(i);",
        "SELECT id, last_name, CASE WHEN score = 'lots' THEN score ELSE NULL END AS score FROM people",
    )
    .await;
    let report = org.env.run("people").await;
    assert_eq!((report.written, report.rejected), (49, 1), "{:?} {:?}", report.error, report.warnings);
    assert!(report.warnings.iter().any(|w| w.contains("id=c17") && w.contains("JSON_PARSER_ERROR")), "{:?}", report.warnings);
    let first = org.sf.log().into_iter().find(|l| l.path.starts_with("composite/sobjects/Contact")).unwrap();
    assert_eq!(first.status, 400, "Salesforce refuses the whole collection");
}

#[tokio::test]
async fn lists_fill_multi_select_picklists_and_datetimes_keep_milliseconds() {
    let mapping = "Customer_Id__c = \"id\"\nLastName = \"last_name\"\nInterests__c = \"interests\"\nLast_Seen__c = \"seen\"";
    let org = Org::new(
        "",
        &header("upsert", "Customer_Id__c", mapping),
        "CREATE TABLE people(id TEXT, last_name TEXT, interests TEXT[], seen TIMESTAMPTZ);
         INSERT INTO people VALUES ('c1', 'Ann', ['Product', 'Support'], TIMESTAMPTZ '2026-03-01 12:00:00.123456+00'),
                                   ('c2', 'Bob', [], NULL);",
        "SELECT id, last_name, interests, seen FROM people",
    )
    .await;
    let report = org.run_ok().await;
    assert_eq!(report.written, 2);
    let ann = org.sf.contact("c1").unwrap();
    assert_eq!(ann.fields["Interests__c"], json!("Product;Support"));
    assert_eq!(ann.fields["Last_Seen__c"], json!("2026-03-01T12:00:00.123Z"));
}
