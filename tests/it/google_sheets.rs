//! The Google Sheets destination against the Google emulator: a tab kept equal to the model by
//! key, through hand edits, quotas and faults.

use crate::support;

use serde_json::json;
use sluice::state::RunStatus;
use support::google::{Fault, Google, Logged};
use support::{Env, SourceKind, StateKind};

const HEADER: &str = r#"destination = "sheet"
primary_key = "customer_id"
mode = "MODE"
[target]
sheet = "Customers"
[mapping]
"Customer ID" = "customer_id"
"Email" = "email"
"LTV" = "ltv""#;

const MODEL: &str = "SELECT id AS customer_id, email, ltv FROM customers";

struct Sheets {
    env: Env,
    google: Google,
}

impl Sheets {
    /// A project with `n` customers, a `customers` sync in `mode`, and a Sheets destination
    /// with `extra` settings.
    async fn new(mode: &str, n: u32, extra: &str) -> Sheets {
        let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
        let google = Google::start().await;
        env.add_destination("sheet", &google.destination_toml(env.root(), extra));
        env.exec(&format!(
            "CREATE TABLE customers(id INT, email TEXT, ltv DECIMAL(10,2));
             INSERT INTO customers SELECT i, 'c' || i || '@x.com', i * 10.5 FROM range(1, {}) t(i);",
            n + 1
        ))
        .await;
        env.write_sync("customers", &HEADER.replace("MODE", mode), MODEL);
        Sheets { env, google }
    }

    async fn run_ok(&self) -> sluice::engine::SyncReport {
        let report = self.env.run("customers").await;
        assert_eq!(report.status, RunStatus::Success, "run failed: {:?} {:?}", report.error, report.warnings);
        report
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.google.rows("Customers").expect("tab Customers exists")
    }
}

fn customer(i: u32) -> Vec<String> {
    let ltv = i as f64 * 10.5;
    vec![i.to_string(), format!("c{i}@x.com"), if ltv.fract() == 0.0 { format!("{}", ltv as i64) } else { ltv.to_string() }]
}

fn header() -> Vec<String> {
    vec!["Customer ID".into(), "Email".into(), "LTV".into()]
}

fn kinds(log: &[Logged]) -> Vec<String> {
    log.iter().map(|l| format!("{} {}", l.method, l.path.rsplit('/').next().unwrap_or(""))).collect()
}

#[tokio::test]
async fn first_sync_fills_an_empty_tab_and_the_second_sends_nothing() {
    let s = Sheets::new("mirror", 20, "").await;
    let report = s.run_ok().await;
    assert_eq!(report.written, 20);
    let mut expected = vec![header()];
    expected.extend((1..=20).map(customer));
    assert_eq!(s.rows(), expected);
    // Numbers are stored as numbers, not text.
    assert!(s.google.edit(|sp| sp.tab("Customers").unwrap().get(1, 2).unwrap().is_number()));
    let writes = kinds(&s.google.writes());
    assert_eq!(writes[0], format!("POST {}:batchUpdate", support::google::SPREADSHEET_ID), "the tab is created first: {writes:?}");

    s.google.clear_log();
    let again = s.run_ok().await;
    assert_eq!(again.written, 0);
    assert!(s.google.writes().is_empty(), "an unchanged model sends no write request: {:?}", kinds(&s.google.log()));
}

#[tokio::test]
async fn three_changed_rows_are_one_batch_update_of_exactly_their_cells() {
    let s = Sheets::new("upsert", 10, "").await;
    s.run_ok().await;
    s.env.exec("UPDATE customers SET ltv = ltv + 1 WHERE id IN (2, 5, 9)").await;
    s.google.clear_log();
    let report = s.run_ok().await;
    assert_eq!((report.counts.changed, report.written), (3, 3));
    let writes = s.google.writes();
    assert_eq!(kinds(&writes), vec!["POST values:batchUpdate".to_string()]);
    let mut ranges: Vec<&str> = writes[0].body["data"].as_array().unwrap().iter().map(|d| d["range"].as_str().unwrap()).collect();
    ranges.sort_by_key(|r| (r.len(), r.to_string()));
    assert_eq!(ranges, vec!["'Customers'!A3:C3", "'Customers'!A6:C6", "'Customers'!A10:C10"]);
    assert_eq!(s.rows()[5], vec!["5".to_string(), "c5@x.com".into(), "53.5".into()]);
}

#[tokio::test]
async fn a_user_column_between_mapped_columns_survives_every_sync() {
    let s = Sheets::new("mirror", 0, "").await;
    // A person set up the tab: their own "Notes" column sits between two mapped ones.
    s.google.edit(|sp| {
        sp.apply(0, &json!({"addSheet": {"properties": {"title": "Customers"}}})).unwrap();
        sp.write("Customers!A1", &[vec![json!("Customer ID"), json!("Notes"), json!("Email")]], false).unwrap();
    });
    s.env.exec("INSERT INTO customers SELECT i, 'c' || i || '@x.com', i * 10.5 FROM range(1, 4) t(i)").await;
    s.run_ok().await;
    s.google.edit(|sp| sp.write("Customers!B3", &[vec![json!("VIP, call first")]], false).unwrap());
    s.env.exec("UPDATE customers SET email = 'new2@x.com', ltv = 99 WHERE id = 2").await;
    s.run_ok().await;
    let rows = s.rows();
    assert_eq!(rows[0], vec!["Customer ID", "Notes", "Email", "LTV"], "headers kept in place, LTV added at the end");
    assert_eq!(rows[2], vec!["2", "VIP, call first", "new2@x.com", "99"]);
    assert_eq!(rows[1], vec!["1", "", "c1@x.com", "10.5"]);
    // The update wrote the mapped cells around the user's column, never the column itself.
    let ranges: Vec<String> = s
        .google
        .writes()
        .iter()
        .flat_map(|w| w.body["data"].as_array().cloned().unwrap_or_default())
        .map(|d| d["range"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ranges.iter().rev().take(2).collect::<Vec<_>>(), vec!["'Customers'!C3:D3", "'Customers'!A3"]);
}

#[tokio::test]
async fn rows_a_person_resorted_are_updated_where_they_now_are() {
    let s = Sheets::new("upsert", 6, "").await;
    s.run_ok().await;
    // Sort data rows by LTV descending, by hand.
    s.google.edit(|sp| {
        let tab = sp.tabs.iter_mut().find(|t| t.title == "Customers").unwrap();
        tab.cells[1..].reverse();
    });
    s.env.exec("UPDATE customers SET email = 'moved@x.com' WHERE id = 2").await;
    s.run_ok().await;
    let rows = s.rows();
    assert_eq!(rows[5], vec!["2", "moved@x.com", "21"], "customer 2 now sits in row 6");
    for row in &rows[1..] {
        if row[0] != "2" {
            assert_eq!(row[1], format!("c{}@x.com", row[0]), "no other row was touched: {rows:?}");
        }
    }
}

#[tokio::test]
async fn a_row_deleted_by_hand_is_written_again() {
    let s = Sheets::new("mirror", 5, "").await;
    s.run_ok().await;
    let sheet_id = s.google.edit(|sp| sp.tab("Customers").unwrap().sheet_id);
    s.google.edit(|sp| {
        sp.apply(0, &json!({"deleteDimension": {"range": {"sheetId": sheet_id, "dimension": "ROWS", "startIndex": 2, "endIndex": 3}}}))
            .unwrap()
    });
    assert_eq!(s.rows().len(), 5);
    let report = s.run_ok().await;
    assert_eq!((report.restored, report.written), (1, 1));
    let mut rows = s.rows();
    rows[1..].sort();
    let mut expected = vec![header()];
    expected.extend((1..=5).map(customer));
    expected[1..].sort();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn a_key_found_twice_is_updated_in_its_first_row_with_a_warning() {
    let s = Sheets::new("upsert", 3, "").await;
    s.run_ok().await;
    // Someone pasted customer 2 again at the bottom.
    s.google.edit(|sp| sp.write("Customers!A5", &[vec![json!(2), json!("old@x.com"), json!(1)]], false).unwrap());
    s.env.exec("UPDATE customers SET ltv = 7 WHERE id = 2").await;
    let report = s.run_ok().await;
    assert!(report.warnings.iter().any(|w| w.contains("key 2 is in rows 3, 5") && w.contains("updates row 3")), "{:?}", report.warnings);
    assert_eq!(s.rows()[2], vec!["2", "c2@x.com", "7"]);
    assert_eq!(s.rows()[4], vec!["2", "old@x.com", "1"]);
}

#[tokio::test]
async fn mirror_deletes_exactly_the_removed_keys() {
    let s = Sheets::new("mirror", 10, "").await;
    s.run_ok().await;
    s.env.exec("DELETE FROM customers WHERE id IN (3, 4, 8)").await;
    s.google.clear_log();
    let report = s.run_ok().await;
    assert_eq!((report.counts.removed, report.written), (3, 3));
    let writes = s.google.writes();
    assert_eq!(writes.len(), 1, "one spreadsheets:batchUpdate: {:?}", kinds(&writes));
    let starts: Vec<u64> = writes[0].body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["deleteDimension"]["range"]["startIndex"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, vec![8, 3], "descending, adjacent rows merged");
    let mut expected = vec![header()];
    expected.extend([1, 2, 5, 6, 7, 9, 10].into_iter().map(customer));
    assert_eq!(s.rows(), expected);
}

#[tokio::test]
async fn insert_mode_only_appends() {
    let s = Sheets::new("insert", 3, "").await;
    s.run_ok().await;
    s.env.exec("UPDATE customers SET ltv = 1 WHERE id = 1; INSERT INTO customers VALUES (4, 'c4@x.com', 42)").await;
    s.google.clear_log();
    s.run_ok().await;
    assert_eq!(kinds(&s.google.writes()), vec!["POST 'Customers'!A1:C1:append".to_string()]);
    let rows = s.rows();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1], customer(1), "insert mode never changes a row");
    assert_eq!(rows[4], vec!["4", "c4@x.com", "42"]);
}

#[tokio::test]
async fn quota_429s_slow_the_run_down_but_lose_nothing() {
    let s = Sheets::new("mirror", 30, "max_batch_rows = 4\nmax_attempts = 12\nwrite_requests_per_minute = 100000").await;
    s.google.with(|st| {
        st.quota.writes = 3;
        st.quota.window = std::time::Duration::from_millis(400);
    });
    s.run_ok().await;
    assert!(s.google.with(|st| st.quota_refusals) > 0, "the quota was hit");
    let mut expected = vec![header()];
    expected.extend((1..=30).map(customer));
    assert_eq!(s.rows(), expected, "every row once, in order");
}

#[tokio::test]
async fn faults_and_lost_answers_neither_lose_nor_duplicate_rows() {
    let s = Sheets::new("mirror", 40, "max_batch_rows = 5\nmax_attempts = 8").await;
    s.google.fail_next(&[Fault::Status(503)]);
    // Every 7th request is carried out but its answer lost; a retry (re-read + write) takes at
    // most 4 requests, so it gets through.
    s.google.fault_every(7, Fault::DropAfter);
    s.run_ok().await;
    s.google.fault_every(5, Fault::Status(500));
    s.env.exec("UPDATE customers SET ltv = 0 WHERE id % 7 = 0; DELETE FROM customers WHERE id > 35").await;
    s.run_ok().await;
    s.google.clear_faults();
    let mut expected = vec![header()];
    expected.extend((1..=35).map(|i| if i % 7 == 0 { vec![i.to_string(), format!("c{i}@x.com"), "0".into()] } else { customer(i) }));
    let mut rows = s.rows();
    rows[1..].sort_by_key(|r| r[0].parse::<u32>().unwrap());
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_short_lived_tokens_renewed() {
    let s = Sheets::new("mirror", 3, "").await;
    // Tokens that yup-oauth2 already treats as expired (it renews 60 s early): one per request.
    s.google.with(|st| st.expires_in = 30);
    s.run_ok().await;
    let (tokens, requests) = s.google.with(|st| (st.token_requests, st.log.len()));
    assert!(tokens >= requests, "a new token for each of {requests} requests, got {tokens}");
    s.google.with(|st| st.expires_in = 3599);
    s.env.exec("UPDATE customers SET ltv = 1").await;
    // The server revokes the token mid-run: the client gets a 401, refreshes, and goes on.
    s.google.fail_next(&[Fault::Revoke]);
    let before = s.google.with(|st| st.token_requests);
    s.run_ok().await;
    assert_eq!(s.google.with(|st| st.token_requests) - before, 2, "the first token, and one refresh after the 401");
    assert!(s.rows()[1..].iter().all(|r| r[2] == "1"));
}

#[tokio::test]
async fn slow_answers_and_dropped_connections_are_retried_without_duplicates() {
    let s = Sheets::new("mirror", 12, "timeout = \"300ms\"\nmax_batch_rows = 4").await;
    s.run_ok().await;
    s.env.exec("INSERT INTO customers SELECT i, 'c' || i || '@x.com', i * 10.5 FROM range(13, 21) t(i)").await;
    // The append is carried out but answered after the client gave up: the retry re-reads the
    // tab (a second spreadsheets.get) and finds the rows there.
    s.google.fail_next_write(Fault::Slow(std::time::Duration::from_secs(2)));
    s.google.clear_log();
    s.run_ok().await;
    let reads = s.google.log().iter().filter(|l| l.method == "GET" && l.path.ends_with(support::google::SPREADSHEET_ID)).count();
    assert_eq!(reads, 2, "opened, then re-read after the timeout");
    // A connection dropped before anything was done.
    s.google.fail_next(&[Fault::Drop]);
    s.env.exec("UPDATE customers SET ltv = 5 WHERE id = 20").await;
    s.run_ok().await;
    let mut expected = vec![header()];
    expected.extend((1..=19).map(customer));
    expected.push(vec!["20".into(), "c20@x.com".into(), "5".into()]);
    assert_eq!(s.rows(), expected);
}

#[tokio::test]
async fn large_payloads_are_split_into_requests_under_the_size_limit() {
    let s = Sheets::new("mirror", 50, "max_request_bytes = 400").await;
    s.run_ok().await;
    let appends: Vec<Logged> = s.google.writes().into_iter().filter(|w| w.path.ends_with(":append")).collect();
    // 50 rows of about 22 bytes each: 1,100 bytes, so at least 3 requests (one without the limit).
    assert!(appends.len() >= 3, "{} append requests", appends.len());
    for a in &appends {
        let size = serde_json::to_vec(&a.body["values"]).unwrap().len();
        assert!(size <= 400 + 60, "an append of {size} bytes of values");
    }
    let mut expected = vec![header()];
    expected.extend((1..=50).map(customer));
    assert_eq!(s.rows(), expected);
}

#[tokio::test]
async fn an_insert_batch_that_fails_part_way_appends_each_row_once() {
    let s = Sheets::new("insert", 1, "max_request_bytes = 400").await;
    s.run_ok().await;
    // 39 new rows in one batch: at least three appends under the size limit.
    s.env.exec("INSERT INTO customers SELECT i, 'c' || i || '@x.com', i * 10.5 FROM range(2, 41) t(i)").await;
    s.google.clear_log();
    // The first append lands; the second meets a 503. A retry of the whole batch would append
    // the first chunk again (nothing in insert mode would notice).
    s.google.fail_write(2, Fault::Status(503));
    assert_eq!(s.run_ok().await.written, 39);
    let appended: usize =
        s.google.writes().iter().filter(|w| w.path.ends_with(":append")).map(|w| w.body["values"].as_array().unwrap().len()).sum();
    assert_eq!(appended, 39, "each row appended once");
    let mut expected = vec![header()];
    expected.extend((1..=40).map(customer));
    assert_eq!(s.rows(), expected);
}

#[tokio::test]
async fn a_fifth_of_requests_failing_still_ends_with_the_sheet_equal_to_the_model() {
    let s = Sheets::new("mirror", 60, "max_batch_rows = 10\nmax_attempts = 12\ntimeout = \"1s\"").await;
    let seed = support::faults::seed("SLUICE_FAULT_SEED");
    s.google.with(|st| st.random_faults = Some(support::faults::RandomFaults::new(0.2, seed)));
    s.run_ok().await;
    s.env.exec("UPDATE customers SET ltv = 0 WHERE id % 5 = 0; DELETE FROM customers WHERE id > 50").await;
    s.run_ok().await;
    assert!(s.google.with(|st| st.random_faults.as_ref().unwrap().injected) > 0);
    s.google.with(|st| st.random_faults = None);
    let mut expected = vec![header()];
    expected.extend((1..=50).map(|i| if i % 5 == 0 { vec![i.to_string(), format!("c{i}@x.com"), "0".into()] } else { customer(i) }));
    let mut rows = s.rows();
    rows[1..].sort_by_key(|r| r[0].parse::<u32>().unwrap());
    assert_eq!(rows, expected, "seed {seed}");
}

#[tokio::test]
async fn rows_below_a_blank_row_stay_found_when_an_append_lands_above_them() {
    let s = Sheets::new("mirror", 6, "max_batch_rows = 1").await;
    s.run_ok().await;
    // A person clears customer 3's row instead of deleting it: the data now has a gap at row 4.
    s.google.edit(|sp| sp.clear("Customers!A4:C4").unwrap());
    s.env.exec("UPDATE customers SET ltv = 1 WHERE id = 6").await;
    let report = s.run_ok().await;
    assert_eq!(report.restored, 1);
    // Customer 3 was appended into the gap (Google appends after the first table), pushing the
    // rows below down; customer 6's update still found its row.
    let rows = s.rows();
    assert_eq!(rows[3], customer(3));
    assert_eq!(rows[4], Vec::<String>::new(), "the blank row moved down");
    assert_eq!(rows[6], customer(5), "customer 5 untouched");
    assert_eq!(rows[7], vec!["6".to_string(), "c6@x.com".into(), "1".into()]);
}

#[tokio::test]
async fn text_keys_survive_user_entered_values() {
    let s = Sheets::new("upsert", 0, "value_input = \"USER_ENTERED\"").await;
    s.env.write_sync(
        "codes",
        "destination = \"sheet\"\nprimary_key = \"code\"\n[target]\nsheet = \"Codes\"",
        "SELECT '00042' AS code, 7 AS n",
    );
    assert_eq!(s.env.run("codes").await.written, 1);
    assert_eq!(s.google.rows("Codes").unwrap()[1], vec!["00042", "7"], "kept as text, not parsed to 42");
    s.google.clear_log();
    let again = s.env.run("codes").await;
    assert_eq!((again.restored, again.written), (0, 0), "found again by its key");
    assert!(s.google.writes().is_empty());
}

#[tokio::test]
async fn on_remove_clear_keeps_the_row_its_key_and_the_persons_columns() {
    let s = Sheets::new("upsert", 0, "").await;
    s.google.edit(|sp| {
        sp.apply(0, &json!({"addSheet": {"properties": {"title": "Customers"}}})).unwrap();
        sp.write("Customers!A1", &[vec![json!("Customer ID"), json!("Notes"), json!("Email"), json!("LTV")]], false).unwrap();
    });
    s.env.write_sync(
        "customers",
        &format!("{}\n", HEADER.replace("MODE", "upsert")).replacen("mode = \"upsert\"", "mode = \"upsert\"\non_remove = \"clear\"", 1),
        MODEL,
    );
    s.env.exec("INSERT INTO customers SELECT i, 'c' || i || '@x.com', i * 10.5 FROM range(1, 4) t(i)").await;
    s.run_ok().await;
    s.google.edit(|sp| sp.write("Customers!B3", &[vec![json!("VIP, call first")]], false).unwrap());

    s.env.exec("DELETE FROM customers WHERE id = 2").await;
    let report = s.run_ok().await;
    assert_eq!(report.to_send.clear, 1);
    let rows = s.rows();
    assert_eq!(rows.len(), 4, "the row stays");
    // (Sheets leaves trailing empty cells out of a row's values.)
    assert_eq!(rows[2], vec!["2", "VIP, call first"], "key and the person's column kept, mapped cells emptied");
    assert_eq!(s.run_ok().await.written, 0, "a cleared row is cleared once");

    s.env.exec("INSERT INTO customers VALUES (2, 'back@x.com', 1)").await;
    s.run_ok().await;
    assert_eq!(s.rows()[2], vec!["2", "VIP, call first", "back@x.com", "1"], "a row that comes back is written again");
}

#[tokio::test]
async fn if_empty_cells_keep_what_a_person_typed_and_skipped_nulls_stay() {
    let s = Sheets::new("upsert", 3, "").await;
    let header = HEADER
        .replace("MODE", "upsert")
        .replacen("[target]", "nulls = \"skip\"\n[target]", 1)
        .replace("\"Email\" = \"email\"", "\"Email\" = { column = \"email\", write = \"if_empty\" }");
    s.env.write_sync("customers", &header, MODEL);
    s.run_ok().await;
    s.google.edit(|sp| {
        sp.write("Customers!B2", &[vec![json!("typed@by.hand")]], false).unwrap();
        sp.write("Customers!B3", &[vec![json!("")]], false).unwrap();
    });
    s.env.exec("UPDATE customers SET email = 'new' || id || '@x.com', ltv = CASE WHEN id = 3 THEN NULL ELSE 1 END").await;
    s.run_ok().await;
    let rows = s.rows();
    assert_eq!(rows[1], vec!["1", "typed@by.hand", "1"], "a typed value is kept, the rest written");
    assert_eq!(rows[2], vec!["2", "new2@x.com", "1"], "an empty cell is filled");
    assert_eq!(rows[3], vec!["3", "c3@x.com", "31.5"], "a NULL is skipped: the cell keeps its value");
}

/// A person sorts the tab (or inserts rows) after the run read it and before it writes: the
/// row numbers it read are stale. Updates and deletes go to the rows where the keys are now,
/// never to other people's rows.
#[tokio::test]
async fn rows_moved_by_hand_between_the_read_and_the_write_are_found_again() {
    let s = Sheets::new("mirror", 6, "").await;
    s.run_ok().await;
    s.env.exec("UPDATE customers SET email = 'new2@x.com' WHERE id = 2; DELETE FROM customers WHERE id = 4").await;
    // The run's reads when it opens: spreadsheets.get, row 1, the key column. Before the next
    // request (the old client's first write), someone sorts the tab by customer id, descending.
    s.google.edit_before(4, |sheet| {
        sheet.tabs.iter_mut().find(|t| t.title == "Customers").expect("tab").sort_by_column(0, true);
    });
    let report = s.run_ok().await;
    assert_eq!((report.written, report.to_send.delete), (2, 1), "{report:?}");
    assert!(report.warnings.iter().any(|w| w.contains("changed while the run was writing")), "{:?}", report.warnings);
    let mut rows = s.rows();
    assert_eq!(rows.remove(0), header());
    rows.sort();
    let mut expected: Vec<Vec<String>> = [1, 3, 5, 6].into_iter().map(customer).collect();
    expected.push(vec!["2".into(), "new2@x.com".into(), "21".into()]);
    expected.sort();
    assert_eq!(rows, expected, "every row as the model says, none overwritten or deleted by mistake");
}
