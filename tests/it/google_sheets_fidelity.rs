//! Google Sheets as it is documented to behave with sheets people made by hand: `values.append`
//! starting at the first column of the table it finds, tab titles that clash whatever their case,
//! keys typed by hand that Sheets turned into dates and numbers. Each test failed against the
//! client before it learnt to cope (the emulator's docs give the sources).

use crate::support;

use serde_json::{json, Value as J};
use sluice::state::RunStatus;
use support::google::Google;
use support::{Env, SourceKind, StateKind};

struct Sheets {
    env: Env,
    google: Google,
}

impl Sheets {
    async fn new(header: &str, setup: &str, model: &str) -> Sheets {
        let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
        let google = Google::start().await;
        env.add_destination("sheet", &google.destination_toml(env.root(), ""));
        env.exec(setup).await;
        env.write_sync("customers", header, model);
        Sheets { env, google }
    }

    /// A tab someone made, with `rows` from cell `at` on.
    fn made_by_hand(&self, title: &str, at: &str, rows: Vec<Vec<J>>) {
        self.google.edit(|sp| {
            sp.apply(0, &json!({ "addSheet": { "properties": { "title": title } } })).expect("add the tab");
            sp.write(&format!("'{}'!{at}", title.replace('\'', "''")), &rows, false).expect("fill the tab");
        });
    }

    async fn run_ok(&self) -> sluice::engine::SyncReport {
        let report = self.env.run("customers").await;
        assert_eq!(report.status, RunStatus::Success, "run failed: {:?} {:?}", report.error, report.warnings);
        report
    }
}

fn header(sheet: &str) -> String {
    format!(
        "destination = \"sheet\"\nprimary_key = \"customer_id\"\n[target]\nsheet = \"{}\"\n[mapping]\n\"Customer ID\" = \"customer_id\"\n\"Email\" = \"email\"",
        sheet.replace('"', "\\\"")
    )
}

const CUSTOMERS: &str =
    "CREATE TABLE customers(id INT, email TEXT); INSERT INTO customers SELECT i, 'c' || i || '@x.com' FROM range(1, 4) t(i);";
const MODEL: &str = "SELECT id AS customer_id, email FROM customers";

#[tokio::test]
async fn rows_are_appended_under_their_headers_when_the_headers_start_in_column_b() {
    let s = Sheets::new(&header("Customers"), CUSTOMERS, MODEL).await;
    s.made_by_hand("Customers", "B1", vec![vec![json!("Customer ID"), json!("Email")]]);
    s.run_ok().await;
    let rows = s.google.rows("Customers").unwrap();
    let expected: Vec<Vec<String>> = std::iter::once(vec!["".into(), "Customer ID".into(), "Email".into()])
        .chain((1..=3).map(|i| vec![String::new(), i.to_string(), format!("c{i}@x.com")]))
        .collect();
    assert_eq!(rows, expected);
    // The next run finds them where they are: nothing is sent again.
    assert_eq!(s.run_ok().await.written, 0);
    assert_eq!(s.google.rows("Customers").unwrap().len(), 4);
}

#[tokio::test]
async fn a_tab_is_found_whatever_the_case_of_its_title_and_titles_may_hold_quotes_and_colons() {
    let s = Sheets::new(&header("Customers"), CUSTOMERS, MODEL).await;
    s.made_by_hand("customers", "A1", vec![vec![json!("Customer ID"), json!("Email")], vec![json!(1), json!("old@x.com")]]);
    s.run_ok().await;
    assert_eq!(s.google.rows("customers").unwrap().len(), 4, "the rows went to the tab that was there");
    assert_eq!(s.google.rows("customers").unwrap()[1], vec!["1".to_string(), "c1@x.com".into()]);
    assert!(s.google.rows("Customers").is_none(), "no second tab");

    let odd = "Q1: Bob's list";
    let t = Sheets::new(&header(odd), CUSTOMERS, MODEL).await;
    t.run_ok().await;
    t.env.exec("UPDATE customers SET email = 'new@x.com' WHERE id = 2").await;
    assert_eq!(t.run_ok().await.written, 1);
    assert_eq!(t.google.rows(odd).unwrap()[2], vec!["2".to_string(), "new@x.com".into()]);
}

#[tokio::test]
async fn a_date_key_retyped_by_hand_is_the_same_row_and_a_number_made_of_a_text_key_is_named() {
    let header =
        "destination = \"sheet\"\nprimary_key = \"day\"\n[target]\nsheet = \"Days\"\n[mapping]\nDay = \"day\"\nVisits = \"visits\"";
    let s = Sheets::new(
        header,
        "CREATE TABLE days(day DATE, visits INT); INSERT INTO days VALUES (DATE '2026-03-01', 10), (DATE '2026-03-02', 20);",
        "SELECT day, visits FROM days",
    )
    .await;
    s.run_ok().await;
    // Someone retypes a key: Sheets stores a typed date as its serial number (2026-03-01 is 46082).
    s.google.edit(|sp| sp.write("'Days'!A2", &[vec![json!(46082)]], false).map(drop)).unwrap();
    s.env.exec("UPDATE days SET visits = visits + 1").await;
    let report = s.run_ok().await;
    assert_eq!(report.written, 2);
    let rows = s.google.rows("Days").unwrap();
    assert_eq!(rows.len(), 3, "updated in place, not appended: {rows:?}");
    assert_eq!((rows[1][1].as_str(), rows[2][1].as_str()), ("11", "21"));

    // A text key typed as a number is another key: a row is added, and the warning says why.
    let header =
        "destination = \"sheet\"\nprimary_key = \"code\"\n[target]\nsheet = \"Codes\"\n[mapping]\nCode = \"code\"\nName = \"name\"";
    let t = Sheets::new(
        header,
        "CREATE TABLE codes(code TEXT, name TEXT); INSERT INTO codes VALUES ('007', 'Bond');",
        "SELECT code, name FROM codes",
    )
    .await;
    t.run_ok().await;
    t.google.edit(|sp| sp.write("'Codes'!A2", &[vec![json!(7)]], false).map(drop)).unwrap();
    t.env.exec("UPDATE codes SET name = 'James Bond'").await;
    let report = t.run_ok().await;
    assert!(
        report.warnings.iter().any(|w| w.contains("code=007") && w.contains("row 2 holds 7") && w.contains("Plain text")),
        "{:?}",
        report.warnings
    );
}
