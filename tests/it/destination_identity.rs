//! A sync pointed at another place (another spreadsheet, endpoint, output file, HubSpot account
//! or Salesforce user) sends every row there once, as a mapping change does; a rotated secret
//! (a URL's query token, another token of the same account) sends nothing again. Stores written
//! before identities were kept re-send nothing on upgrade. The identity is kept as a hash only.

use crate::support;

use sluice::state::RunStatus;
use support::{Env, SourceKind, StateKind};

const MOVED: &str = "now points at another place";

async fn env_with(rows: u32) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec(&format!("CREATE TABLE t AS SELECT i AS id, 'n' || i AS name FROM range(1, {}) r(i)", rows + 1)).await;
    env
}

/// Replaces `from` with `to` in sluice.toml.
fn edit_config(env: &Env, from: &str, to: &str) {
    let path = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "`{from}` in {text}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn moved(report: &sluice::engine::SyncReport) -> bool {
    report.warnings.iter().any(|w| w.contains(MOVED))
}

#[tokio::test]
async fn another_webhook_endpoint_gets_every_row_and_a_new_query_token_gets_none() {
    let env = env_with(5).await;
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT * FROM t");
    let first = env.run("people").await;
    assert_eq!((first.status, first.written), (RunStatus::Success, 5), "{first:?}");

    // The URL's query often carries the credential: rotating it is no move.
    let url = env.sink.url.clone();
    edit_config(&env, &format!("url = \"{url}\""), &format!("url = \"{url}?token=rotated\""));
    let rotated = env.run("people").await;
    assert_eq!((rotated.written, rotated.config_changed, moved(&rotated)), (0, false, false), "{rotated:?}");

    let other = support::Sink::start().await;
    edit_config(&env, &format!("url = \"{url}?token=rotated\""), &format!("url = \"{}\"", other.url));
    let report = env.run("people").await;
    assert_eq!((report.status, report.written), (RunStatus::Success, 5), "{report:?}");
    assert!(moved(&report), "the run says why: {:?}", report.warnings);
    assert_eq!(support::keys_of(&other.rows()).len(), 5, "the new endpoint has every row");
    let again = env.run("people").await;
    assert_eq!((again.written, moved(&again)), (0, false), "once");

    // Back to the first endpoint: it is another place than the last run's, so every row again.
    edit_config(&env, &format!("url = \"{}\"", other.url), &format!("url = \"{url}\""));
    let back = env.run("people").await;
    assert_eq!((back.written, moved(&back)), (5, true), "{back:?}");

    // The store holds hashes, never the address.
    let db = std::fs::read(env.root().join(".sluice/state.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("rotated"));
}

#[tokio::test]
async fn another_output_file_gets_every_row() {
    let env = env_with(4).await;
    env.add_destination("out", "kind = \"file\"\npath = \"out/a.csv\"");
    env.write_sync("people", "destination = \"out\"\nprimary_key = \"id\"", "SELECT * FROM t");
    assert_eq!(env.run("people").await.written, 4);
    edit_config(&env, "path = \"out/a.csv\"", "path = \"out/b.csv\"");
    let report = env.run("people").await;
    assert_eq!((report.written, moved(&report)), (4, true), "{report:?}");
    let b = std::fs::read_to_string(env.root().join("out/b.csv")).unwrap();
    assert_eq!(b.lines().count(), 5, "header and every row: {b}");
}

#[tokio::test]
async fn another_spreadsheet_gets_every_row() {
    use support::google::{Google, Spreadsheet, ACCOUNT, SPREADSHEET_ID};
    let env = env_with(3).await;
    let google = Google::start().await;
    const OTHER: &str = "1otherSpreadsheetIdxxxxxxxxxxxxxxxxxxxxxxxxx";
    google.with(|s| {
        s.spreadsheets.insert(OTHER.into(), Spreadsheet::new(OTHER));
        s.shared.insert(OTHER.into(), std::collections::HashSet::from([ACCOUNT.to_string()]));
    });
    env.add_destination("sheet", &google.destination_toml(env.root(), ""));
    env.write_sync("people", "destination = \"sheet\"\nprimary_key = \"id\"", "SELECT * FROM t");
    assert_eq!(env.run("people").await.written, 3);
    edit_config(&env, SPREADSHEET_ID, OTHER);
    let report = env.run("people").await;
    assert_eq!((report.status, report.written, moved(&report)), (RunStatus::Success, 3, true), "{report:?}");
    let rows = google.with(|s| s.spreadsheets[OTHER].tab("people").map(|t| t.rows_text().len()));
    assert_eq!(rows, Some(4), "header and every row in the new spreadsheet");
}

#[tokio::test]
async fn a_token_of_another_hubspot_account_sends_every_row_and_a_rotated_token_none() {
    use support::hubspot::{HubSpot, PORTAL, TOKEN};
    let env = env_with(3).await;
    env.exec("CREATE TABLE c AS SELECT 'p' || id || '@example.com' AS email, name AS firstname FROM t").await;
    let hubspot = HubSpot::start().await;
    let (rotated, other) = ("pat-na1-rotated-same-portal", "pat-na1-another-portal");
    hubspot.with(|s| {
        s.tokens.insert(rotated.into(), PORTAL);
        s.tokens.insert(other.into(), PORTAL + 1);
    });
    env.add_destination("crm", &hubspot.destination_toml(""));
    let header = "destination = \"crm\"\nprimary_key = \"email\"\n[target]\nobject = \"contacts\"\nid_property = \"email\"";
    env.write_sync("people", header, "SELECT email, firstname FROM c");
    assert_eq!(env.run("people").await.written, 3);

    edit_config(&env, TOKEN, rotated);
    let same = env.run("people").await;
    assert_eq!((same.written, moved(&same)), (0, false), "{same:?}");
    edit_config(&env, rotated, other);
    let report = env.run("people").await;
    assert_eq!((report.status, report.written, moved(&report)), (RunStatus::Success, 3, true), "{report:?}");
}

#[tokio::test]
async fn another_salesforce_user_sends_every_row() {
    use support::salesforce::{Salesforce, USERNAME};
    let env = env_with(3).await;
    env.exec("CREATE TABLE c AS SELECT 'C-' || id AS customer_id, 'Name' || id AS last_name FROM t").await;
    let sf = Salesforce::start().await;
    let other = "integration@other-org.example.com";
    sf.with(|s| s.users.push(other.to_string()));
    env.add_destination("sf", &sf.destination_toml(env.root(), ""));
    let header = "destination = \"sf\"\nprimary_key = \"customer_id\"\n[target]\nobject = \"Contact\"\nexternal_id = \"Customer_Id__c\"\n\
                  [mapping]\nCustomer_Id__c = \"customer_id\"\nLastName = \"last_name\"";
    env.write_sync("people", header, "SELECT * FROM c");
    let first = env.run("people").await;
    assert_eq!(first.written, 3, "{first:?}");
    edit_config(&env, USERNAME, other);
    let report = env.run("people").await;
    assert_eq!((report.written, moved(&report)), (3, true), "{report:?}");
}

/// A store from before identities were kept: its syncs' fingerprints stay as they were, so an
/// upgrade re-sends nothing; the identity is recorded from then on.
#[tokio::test]
async fn an_upgraded_store_re_sends_nothing() {
    let env = env_with(5).await;
    env.write_sync("people", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT * FROM t");
    assert_eq!(env.run("people").await.written, 5);
    let url = format!("sqlite://{}", env.root().join(".sluice/state.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE sync_meta SET first_identity = NULL, identity = NULL").execute(&pool).await.unwrap();
    let report = env.run("people").await;
    assert_eq!((report.written, report.config_changed, moved(&report)), (0, false, false), "{report:?}");
    let kept: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT first_identity, identity FROM sync_meta").fetch_one(&pool).await.unwrap();
    assert!(kept.0.as_ref().is_some_and(|h| h.len() == 32 && h.chars().all(|c| c.is_ascii_hexdigit())), "{kept:?}");
    assert_eq!(kept.0, kept.1);
    pool.close().await;
}
