//! The Notion destination against the Notion emulator (support/notion.rs).

use std::time::Duration;

use crate::support;

use sluice::state::RunStatus;
use support::notion::{Fault, Workspace, DB, TOKEN, USER};

const HEADER: &str = r#"destination = "notion"
primary_key = "customer_id"
mode = "MODE"
[target]
database_id = "DATABASE"
key_property = "Customer ID"
[mapping]
"Name" = "name"
"MRR" = "mrr"
"Plan" = "plan"
"Renews" = "renews_on""#;

const MODEL: &str = "SELECT customer_id, name, mrr, plan, renews_on FROM customers";

/// Client settings that keep tests quick: the emulator's limit is lifted with them.
const FAST: &str = "rate_limit = \"1000/1s\"";

fn header(mode: &str) -> String {
    HEADER.replace("MODE", mode).replace("DATABASE", DB)
}

fn setup(n: u32) -> String {
    format!(
        "CREATE TABLE customers(customer_id TEXT, name TEXT, mrr DECIMAL(10,2), plan TEXT, renews_on DATE);
         INSERT INTO customers SELECT 'c' || i, 'Customer ' || i, i * 10.5, CASE WHEN i % 2 = 0 THEN 'Pro' ELSE 'Free' END,
           DATE '2025-01-01' + i::INT FROM range(1, {}) t(i);",
        n + 1
    )
}

async fn start(mode: &str, n: u32) -> Workspace {
    Workspace::start(FAST, &setup(n), &header(mode), MODEL, true).await
}

#[tokio::test]
async fn upsert_creates_one_page_per_row_then_updates_only_what_changed() {
    let ws = start("upsert", 5).await;
    let report = ws.run_ok().await;
    assert_eq!(report.written, 5);
    assert_eq!(ws.notion.requests("POST", "pages").len(), 5, "one create per row: Notion has no batch write");
    assert_eq!(ws.notion.pages().len(), 5);
    let c2 = ws.notion.page("c2");
    assert_eq!(c2.text("Name"), "Customer 2");
    assert_eq!(c2.value("MRR"), serde_json::json!(21.0));
    assert_eq!(c2.text("Plan"), "Pro");
    assert_eq!(c2.text("Renews"), "2025-01-03");
    let log = ws.notion.log();
    assert!(log.iter().all(|l| l.status == 200), "{:?}", log.iter().map(|l| (&l.path, l.status)).collect::<Vec<_>>());

    ws.notion.clear_log();
    assert_eq!(ws.run_ok().await.written, 0);
    assert!(ws.notion.requests("POST", "pages").is_empty() && ws.notion.requests("PATCH", "pages").is_empty(), "nothing changed");

    ws.env.exec("UPDATE customers SET name = 'Renamed', plan = 'Enterprise' WHERE customer_id = 'c3'").await;
    ws.notion.clear_log();
    let report = ws.run_ok().await;
    assert_eq!((report.counts.changed, report.written), (1, 1));
    let patches = ws.notion.requests("PATCH", "pages");
    assert_eq!(patches.len(), 1);
    let c3 = ws.notion.page("c3");
    assert_eq!(patches[0].path, format!("/v1/pages/{}", c3.id), "the stored page id is written to directly");
    assert_eq!((c3.text("Name").as_str(), c3.text("Plan").as_str()), ("Renamed", "Enterprise"));
    assert!(ws.notion.requests("POST", "pages").is_empty(), "no new page");
    let options = ws.notion.with(|s| s.databases[DB].properties.iter().find(|p| p.name == "Plan").unwrap().options.clone());
    assert_eq!(options, vec!["Free", "Pro", "Enterprise"], "select options are created on write, as Notion does");
}

#[tokio::test]
async fn every_property_type_is_written_in_its_shape() {
    let setup = format!(
        "CREATE TABLE customers(customer_id INT, name TEXT, mrr DOUBLE, active BOOLEAN, plan TEXT, tags TEXT[], renews_on DATE,
           seen TIMESTAMPTZ, email TEXT, site TEXT, phone TEXT, owner TEXT, notes TEXT);
         INSERT INTO customers VALUES
           (1, 'Ada', 99.5, true, 'Pro', ['vip', 'beta'], DATE '2025-02-01', TIMESTAMPTZ '2025-02-01 10:30:00+00', 'ada@x.com',
            'https://x.com/ada', '+44 20 7946 0000', '{USER}', 'likes tea'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL);"
    );
    let header = r#"destination = "notion"
primary_key = "customer_id"
[target]
database_id = "DATABASE"
key_property = "MRR_KEY"
[mapping]
"Name" = "name"
"Customer ID" = "customer_id"
"MRR" = "mrr"
"Active" = "active"
"Plan" = "plan"
"Tags" = "tags"
"Renews" = "renews_on"
"Email" = "email"
"Website" = "site"
"Phone" = "phone"
"Owner" = "owner"
"Notes" = "notes""#
        .replace("DATABASE", DB)
        .replace("MRR_KEY", "Customer ID");
    let model = "SELECT customer_id, name, mrr, active, plan, tags, renews_on, email, site, phone, owner, notes FROM customers";
    let ws = Workspace::start(FAST, &setup, &header, model, true).await;
    assert_eq!(ws.run_ok().await.written, 2);
    let ada = ws.notion.page("1");
    let creates = ws.notion.requests("POST", "pages");
    let sent = creates.iter().find(|c| c.body["properties"]["Name"]["title"][0]["text"]["content"] == "Ada").expect("Ada's create");
    assert_eq!(sent.body["parent"]["database_id"], DB);
    assert_eq!(sent.body["properties"]["Customer ID"]["rich_text"][0]["text"]["content"], "1", "the key goes to key_property");
    assert_eq!(ada.text("Name"), "Ada");
    assert_eq!(ada.value("MRR"), serde_json::json!(99.5));
    assert_eq!(ada.value("Active"), serde_json::json!(true));
    assert_eq!(ada.text("Plan"), "Pro");
    assert_eq!(ada.text("Tags"), "vip,beta");
    assert_eq!(ada.value("Renews")["start"], "2025-02-01");
    assert_eq!(ada.text("Email"), "ada@x.com");
    assert_eq!(ada.text("Website"), "https://x.com/ada");
    assert_eq!(ada.text("Phone"), "+44 20 7946 0000");
    assert_eq!(ada.value("Owner"), serde_json::json!([{ "object": "user", "id": USER }]));
    assert_eq!(ada.text("Notes"), "likes tea");
    // NULLs (and an empty email, which Notion refuses as "") empty each property its own way.
    let empty = ws.notion.page("2");
    for (property, value) in [
        ("Name", serde_json::json!([])),
        ("MRR", serde_json::Value::Null),
        ("Active", serde_json::json!(false)),
        ("Plan", serde_json::Value::Null),
        ("Tags", serde_json::json!([])),
        ("Renews", serde_json::Value::Null),
        ("Email", serde_json::Value::Null),
        ("Owner", serde_json::json!([])),
    ] {
        assert_eq!(empty.value(property), value, "{property}");
    }
}

#[tokio::test]
async fn long_text_is_split_into_text_objects_of_2000_characters() {
    let setup = "CREATE TABLE customers(customer_id TEXT, name TEXT, mrr INT, plan TEXT, renews_on DATE, notes TEXT);
         INSERT INTO customers VALUES ('c1', 'Long', 1, 'Free', NULL, repeat('abcde', 900));";
    let header = format!("{}\n\"Notes\" = \"notes\"", header("upsert"));
    let model = "SELECT customer_id, name, mrr, plan, renews_on, notes FROM customers";
    let ws = Workspace::start(FAST, setup, &header, model, true).await;
    ws.run_ok().await;
    let page = ws.notion.page("c1");
    let parts: Vec<usize> =
        page.value("Notes").as_array().unwrap().iter().map(|t| t["plain_text"].as_str().unwrap().chars().count()).collect();
    assert_eq!(parts, vec![2000, 2000, 500], "4,500 characters in three text objects (Notion refuses one over 2,000)");
    assert_eq!(page.text("Notes"), "abcde".repeat(900));
}

#[tokio::test]
async fn a_row_notion_refuses_is_rejected_with_its_message_and_the_others_land() {
    let setup = format!(
        "{}
         ALTER TABLE customers ADD COLUMN owner TEXT;
         UPDATE customers SET owner = CASE customer_id WHEN 'c2' THEN 'not-a-user-id' ELSE '{USER}' END;
         UPDATE customers SET plan = 'Pro, Plus' WHERE customer_id = 'c4';",
        setup(5)
    );
    let header = format!("{}\n\"Owner\" = \"owner\"", header("upsert"));
    let model = "SELECT customer_id, name, mrr, plan, renews_on, owner FROM customers";
    let ws = Workspace::start(FAST, &setup, &header, model, true).await;
    let report = ws.env.run("customers").await;
    assert_eq!(report.status, RunStatus::Partial, "{:?}", report.error);
    assert_eq!((report.written, report.rejected), (3, 2), "{:?}", report.warnings);
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("customer_id=c2") && warnings.contains("body.properties.Owner.people[0].id should be a valid uuid"),
        "Notion's own message for the row it refused: {warnings}"
    );
    assert!(warnings.contains("customer_id=c4") && warnings.contains("comma"), "refused before sending: {warnings}");
    assert_eq!(ws.notion.pages().len(), 3);
    assert_eq!(ws.notion.requests("POST", "pages").len(), 4, "the row refused before sending is never sent");
}

#[tokio::test]
async fn a_value_that_does_not_fit_its_property_is_rejected_naming_both() {
    let model =
        "SELECT customer_id, name, CASE WHEN customer_id = 'c1' THEN 'lots' ELSE mrr::TEXT END AS mrr, plan, renews_on FROM customers";
    let ws = Workspace::start(FAST, &setup(2), &header("upsert"), model, true).await;
    let report = ws.env.run("customers").await;
    assert_eq!((report.written, report.rejected), (1, 1));
    let warnings = report.warnings.join("\n");
    assert!(warnings.contains("property `MRR` is a number property") && warnings.contains("\"lots\""), "{warnings}");
}

#[tokio::test]
async fn update_mode_changes_existing_pages_only() {
    let ws = start("update", 3).await;
    let id = ws.notion.add_by_hand("c2", "Typed by hand");
    let report = ws.env.run("customers").await;
    assert_eq!((report.written, report.rejected), (1, 2), "{:?}", report.warnings);
    assert!(report.warnings.iter().any(|w| w.contains("no page of the Notion database has Customer ID = c1")), "{:?}", report.warnings);
    assert_eq!(ws.notion.pages().len(), 1, "nothing created");
    let page = ws.notion.page("c2");
    assert_eq!((page.id.as_str(), page.text("Name").as_str()), (id.as_str(), "Customer 2"));
}

#[tokio::test]
async fn insert_mode_looks_its_keys_up_once_per_batch_and_never_makes_a_page_twice() {
    let ws = start("insert", 4).await;
    // A page an earlier run created before it was killed (its answer never recorded).
    let id = ws.notion.add_by_hand("c3", "Created by a killed run");
    assert_eq!(ws.run_ok().await.written, 4);
    assert_eq!(ws.notion.requests("POST", "databases").len(), 1, "no scan: one lookup for the batch");
    assert_eq!(ws.notion.pages().len(), 4);
    assert_eq!(ws.notion.by_key("c3").len(), 1, "the key's page is not made again");
    assert_eq!(ws.notion.page("c3").id, id);
}

#[tokio::test]
async fn mirror_archives_pages_of_removed_rows_by_their_stored_ids() {
    let ws = start("mirror", 4).await;
    ws.run_ok().await;
    let gone = ws.notion.page("c3").id;
    ws.env.exec("DELETE FROM customers WHERE customer_id = 'c3'").await;
    ws.notion.clear_log();
    let report = ws.run_ok().await;
    assert_eq!((report.counts.removed, report.written), (1, 1));
    let patches = ws.notion.requests("PATCH", "pages");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].path, format!("/v1/pages/{gone}"));
    assert_eq!(patches[0].body, serde_json::json!({ "archived": true }));
    assert!(ws.notion.by_key("c3").is_empty(), "archived pages are not listed");
    assert_eq!(ws.notion.pages().len(), 3);
    assert_eq!(ws.notion.all_pages().len(), 4, "archived, not deleted: it is in Notion's trash");
}

#[tokio::test]
async fn on_remove_clear_empties_the_mapped_properties_and_keeps_the_page_and_its_key() {
    let header = header("upsert").replacen("[target]", "on_remove = \"clear\"\n[target]", 1);
    let ws = Workspace::start(FAST, &setup(3), &header, MODEL, true).await;
    ws.run_ok().await;
    ws.env.exec("DELETE FROM customers WHERE customer_id = 'c2'").await;
    let report = ws.run_ok().await;
    assert_eq!((report.to_send.clear, report.written), (1, 1));
    let page = ws.notion.page("c2");
    assert_eq!(page.text("Customer ID"), "c2", "the key stays");
    assert_eq!(page.value("Name"), serde_json::json!([]));
    assert_eq!(page.value("MRR"), serde_json::Value::Null);
    assert_eq!(page.value("Plan"), serde_json::Value::Null);
    assert_eq!(page.value("Renews"), serde_json::Value::Null);
    assert_eq!(ws.notion.page("c1").text("Name"), "Customer 1", "other pages untouched");
}

#[tokio::test]
async fn a_page_archived_by_hand_is_written_again() {
    let ws = start("upsert", 3).await;
    ws.run_ok().await;
    let old = ws.notion.page("c2").id;
    ws.notion.archive_by_hand(&old);
    ws.notion.clear_log();
    let report = ws.run_ok().await;
    assert_eq!((report.restored, report.written), (1, 1), "{:?}", report.warnings);
    let page = ws.notion.page("c2");
    assert_ne!(page.id, old, "a new page: the archived one stays in the trash");
    assert_eq!(page.text("Name"), "Customer 2");
    assert!(ws.notion.requests("PATCH", "pages").is_empty(), "the archived page is not edited (Notion refuses that)");
    assert_eq!(ws.notion.pages().len(), 3);
}

#[tokio::test]
async fn a_key_on_two_pages_updates_the_first_and_warns() {
    let ws = start("upsert", 2).await;
    let first = ws.notion.add_by_hand("c1", "Old 1");
    let second = ws.notion.add_by_hand("c1", "Old 2");
    // Notion's created_time is good to the minute: the first page was made a minute earlier.
    ws.notion.with(|s| s.pages.iter_mut().find(|p| p.id == first).unwrap().created_time = "2024-01-01T00:00:00.000Z".into());
    let report = ws.run_ok().await;
    let warnings = report.warnings.join("\n");
    assert!(warnings.contains("Customer ID = c1 is on 2 pages") && warnings.contains(&first), "{warnings}");
    let pages = ws.notion.by_key("c1");
    assert_eq!(pages.len(), 2, "no third page");
    let name = |id: &str| pages.iter().find(|p| p.id == id).unwrap().text("Name");
    assert_eq!((name(&first).as_str(), name(&second).as_str()), ("Customer 1", "Old 2"), "the first created is updated");
}

#[tokio::test]
async fn a_database_larger_than_the_scan_is_searched_by_key_per_batch() {
    let ws = Workspace::start(&format!("{FAST}\nscan_limit = 1"), &setup(120), &header("upsert"), MODEL, true).await;
    for i in 1..=120 {
        ws.notion.add_by_hand(&format!("c{i}"), "By hand");
    }
    let report = ws.run_ok().await;
    assert_eq!(report.written, 120);
    assert!(ws.notion.requests("POST", "pages").is_empty(), "every row's page was found: none created");
    assert_eq!(ws.notion.requests("PATCH", "pages").len(), 120);
    let queries = ws.notion.requests("POST", "databases");
    let lookups: Vec<_> = queries.iter().filter(|q| q.body["filter"]["or"].is_array()).collect();
    assert_eq!(lookups.len(), 3, "one `or` query per batch of 50 rows: {}", queries.len());
    assert!(queries.iter().all(|q| q.path.contains("filter_properties=%3AUPp")), "only the key property is read");
    assert_eq!(ws.notion.page("c77").text("Name"), "Customer 77");
}

#[tokio::test]
async fn check_names_properties_that_do_not_exist_with_a_did_you_mean() {
    let ws = start("upsert", 1).await;
    let out = support::sluice_cli(ws.env.root(), &["check"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    for (from, to, expected) in [
        ("\"Name\" = ", "\"Nmae\" = ", "sync `customers`: field `Nmae` is not a property of the database (did you mean `Name`?)"),
        (
            "key_property = \"Customer ID\"",
            "key_property = \"Customer Id\"",
            "key_property `Customer Id` is not a property of the database (did you mean `Customer ID`?)",
        ),
        ("key_property = \"Customer ID\"", "key_property = \"Active\"", "key_property `Active` is a checkbox property"),
        (
            "key_property = \"Customer ID\"",
            "key_property = \"MRR\"",
            "key_property `MRR` is a number property, but the key `customer_id` is text",
        ),
        ("\"MRR\" = ", "\"Score\" = ", "field `Score` is a formula property, which Notion computes"),
        (DB, "nope", "database_id = \"nope\" is not a database id"),
    ] {
        ws.env.write_sync("customers", &header("upsert").replace(from, to), MODEL);
        let out = support::sluice_cli(ws.env.root(), &["check"], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stdout}");
        assert!(stdout.contains("ERROR  customers") && stdout.contains(expected), "expected `{expected}` in {stdout}");
    }
    assert!(ws.notion.log().iter().all(|l| l.method == "GET"), "check only reads");
}

#[tokio::test]
async fn a_database_not_shared_with_the_integration_fails_with_what_to_do() {
    let ws = start("upsert", 1).await;
    ws.notion.with(|s| s.databases.get_mut(DB).unwrap().shared = false);
    let report = ws.env.run("customers").await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("HTTP 404 object_not_found") && error.contains("shared with your integration"), "{error}");
    assert!(error.contains("share the database with the integration") && error.contains("Connections"), "{error}");
    assert_eq!(ws.notion.log().len(), 1, "a fatal error is not retried");
}

#[tokio::test]
async fn rate_limited_answers_are_waited_out_as_notion_asks() {
    let ws = start("upsert", 3).await;
    ws.notion.fail_next(&[Fault::Slow(Duration::ZERO), Fault::Slow(Duration::ZERO), Fault::Status(429)]);
    let report = ws.run_ok().await;
    assert_eq!((report.written, report.rejected, report.retryable), (3, 0, 0));
    let log = ws.notion.log();
    let refused = log.iter().position(|l| l.status == 429).expect("a 429 was answered");
    let next = &log[refused + 1];
    assert!(
        next.at.duration_since(log[refused].at) >= Duration::from_millis(950),
        "Retry-After: 1 was honoured: the next request came {:?} later",
        next.at.duration_since(log[refused].at)
    );
    assert_eq!(ws.notion.pages().len(), 3, "every row landed once");
}

#[tokio::test]
async fn the_default_pace_keeps_within_notions_average_of_three_a_second() {
    // The emulator's bucket holds no burst above three: a client that did not pace would meet 429s.
    let ws = Workspace::start("", &setup(9), &header("upsert"), MODEL, false).await;
    ws.notion.with(|s| {
        s.burst = 3.0;
        s.bucket = 3.0;
    });
    let report = ws.run_ok().await;
    assert_eq!(report.written, 9);
    assert_eq!(ws.notion.with(|s| s.rate_refusals), 0, "never rate limited");
    let log = ws.notion.log();
    assert_eq!(log.len(), 11, "the database, one scan, nine creates");
    let took = log.last().unwrap().at.duration_since(log[0].at);
    assert!(took >= Duration::from_secs(3), "11 requests at 3 a second take over 3 seconds: {took:?}");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_made_twice() {
    let ws = start("upsert", 3).await;
    // The database, the scan, then the first create is carried out but its answer lost.
    ws.notion.fail_next(&[Fault::Slow(Duration::ZERO), Fault::Slow(Duration::ZERO), Fault::DropAfter]);
    let report = ws.run_ok().await;
    assert_eq!(report.written, 3);
    for key in ["c1", "c2", "c3"] {
        assert_eq!(ws.notion.by_key(key).len(), 1, "{key}: one page");
    }
    assert!(ws.notion.requests("POST", "databases").iter().any(|q| !q.body["filter"].is_null()), "the lost key was looked up");
}

#[tokio::test]
async fn a_bad_token_fails_with_what_to_do_and_is_never_shown() {
    let ws = start("upsert", 1).await;
    let config = std::fs::read_to_string(ws.env.root().join("sluice.toml")).unwrap().replace(TOKEN, "ntn_wrong_but_secret_1234");
    std::fs::write(ws.env.root().join("sluice.toml"), config).unwrap();
    let out = support::sluice_cli(ws.env.root(), &["run"], &[]).await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("HTTP 401 unauthorized") && text.contains("notion.so/profile/integrations"), "{text}");
    assert!(!text.contains("ntn_wrong_but_secret_1234"), "the token never shows: {text}");
    let report = ws.env.run("customers").await;
    let error = report.error.unwrap_or_default();
    assert!(!error.contains("ntn_wrong") && error.contains("check `token`"), "{error}");
}

#[tokio::test]
async fn a_version_notion_does_not_publish_fails_naming_the_setting() {
    let ws = Workspace::start(&format!("{FAST}\nnotion_version = \"2099-01-01\""), &setup(1), &header("upsert"), MODEL, true).await;
    let report = ws.env.run("customers").await;
    let error = report.error.unwrap_or_default();
    assert!(error.contains("missing_version") && error.contains("`notion_version` = \"2099-01-01\""), "{error}");
    assert!(ws.notion.log().iter().all(|l| l.status == 400));
}

#[tokio::test]
async fn a_conflict_is_sent_again_and_lands_once() {
    let ws = start("upsert", 2).await;
    // The database, the scan, then the first create meets Notion's conflict_error.
    ws.notion.fail_next(&[Fault::Slow(Duration::ZERO), Fault::Slow(Duration::ZERO), Fault::Status(409)]);
    let report = ws.run_ok().await;
    assert_eq!((report.written, report.rejected, report.retryable), (2, 0, 0));
    assert_eq!(ws.notion.log().iter().filter(|l| l.status == 409).count(), 1);
    assert_eq!((ws.notion.by_key("c1").len(), ws.notion.by_key("c2").len()), (1, 1));
}

#[tokio::test]
async fn a_row_over_notions_500_kb_request_limit_is_rejected_with_the_reason() {
    // 150,000 two-byte characters in each of two properties: 600 KB of JSON for one page.
    let setup = "CREATE TABLE customers(customer_id TEXT, name TEXT, mrr INT, plan TEXT, renews_on DATE, notes TEXT);
         INSERT INTO customers VALUES ('big', repeat('é', 150000), 1, 'Free', NULL, repeat('é', 150000)),
                                      ('small', 'Small', 2, 'Free', NULL, 'fine');";
    let header = format!("{}\n\"Notes\" = \"notes\"", header("upsert"));
    let model = "SELECT customer_id, name, mrr, plan, renews_on, notes FROM customers";
    let ws = Workspace::start(FAST, setup, &header, model, true).await;
    let report = ws.env.run("customers").await;
    assert_eq!((report.written, report.rejected), (1, 1), "{:?}", report.warnings);
    let warnings = report.warnings.join("\n");
    assert!(warnings.contains("customer_id=big") && warnings.contains("at most 500 KB per request"), "{warnings}");
    assert_eq!(ws.notion.requests("POST", "pages").len(), 1, "the big row is not sent");
    assert_eq!(ws.notion.page("small").text("Notes"), "fine");
}

#[tokio::test]
async fn an_insert_whose_answer_was_lost_is_looked_up_not_made_twice() {
    let ws = start("insert", 2).await;
    // The database, then the first create is carried out but its answer lost.
    ws.notion.fail_next(&[Fault::Slow(Duration::ZERO), Fault::DropAfter]);
    let report = ws.run_ok().await;
    assert_eq!(report.written, 2);
    assert_eq!((ws.notion.by_key("c1").len(), ws.notion.by_key("c2").len()), (1, 1));
    // One lookup per attempt of the batch: the first, and the retry after the lost answer.
    let lookups = ws.notion.requests("POST", "databases");
    assert_eq!(lookups.len(), 2);
}

#[tokio::test]
async fn a_removed_row_archives_every_page_of_its_key() {
    let ws = start("mirror", 3).await;
    ws.notion.add_by_hand("c1", "Old 1");
    ws.notion.add_by_hand("c1", "Old 2");
    ws.run_ok().await;
    assert_eq!(ws.notion.by_key("c1").len(), 2, "the duplicate is warned about, not removed, while c1 is in the model");
    ws.env.exec("DELETE FROM customers WHERE customer_id = 'c1'").await;
    let report = ws.run_ok().await;
    assert_eq!(report.counts.removed, 1);
    assert!(ws.notion.by_key("c1").is_empty(), "both of c1's pages archived");
    assert_eq!(ws.notion.pages().len(), 2);
}
