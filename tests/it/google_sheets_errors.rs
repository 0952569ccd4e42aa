//! The Google Sheets destination when things are wrong: sharing, ids, keys, tokens, limits,
//! bad rows; `sluice check`; and the emulator's own fidelity to Google's answers.

use crate::support;

use serde_json::{json, Value as J};
use sluice::state::RunStatus;
use support::google::{Google, ACCOUNT, SPREADSHEET_ID};
use support::{Env, SourceKind, StateKind};

const SYNC: &str = r#"destination = "sheet"
primary_key = "id"
mode = "MODE"
[target]
sheet = "People""#;

async fn project(google: &Google, mode: &str, model: &str, extra: &str) -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.add_destination("sheet", &google.destination_toml(env.root(), extra));
    env.write_sync("people", &SYNC.replace("MODE", mode), model);
    env
}

const PEOPLE: &str = "SELECT * FROM (VALUES (1, 'ann'), (2, 'bob')) t(id, name)";

/// `sluice check` on the project, on a blocking thread so the emulator (on this runtime) can answer.
async fn sluice_check(env: &Env) -> std::process::Output {
    support::sluice_cli(env.root(), &["check"], &[]).await
}

async fn failed_run(env: &Env) -> String {
    let report = env.run("people").await;
    assert_eq!(report.status, RunStatus::Failed, "expected a failure: {report:?}");
    report.error.unwrap_or_default()
}

#[tokio::test]
async fn a_sheet_not_shared_with_the_service_account_fails_with_what_to_do() {
    let google = Google::start().await;
    google.unshare();
    let env = project(&google, "upsert", PEOPLE, "").await;
    let error = failed_run(&env).await;
    assert!(error.contains("HTTP 403") && error.contains(&format!("share the spreadsheet {SPREADSHEET_ID} with {ACCOUNT}")), "{error}");
    // `sluice check` says the same, and exits 2.
    let out = sluice_check(&env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("ERROR  people") && stdout.contains("click Share"), "{stdout}");
}

#[tokio::test]
async fn an_unknown_spreadsheet_id_is_explained() {
    let google = Google::start().await;
    let env = project(&google, "upsert", PEOPLE, "").await;
    let config = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap().replace(SPREADSHEET_ID, "1NoSuchSheet");
    std::fs::write(env.root().join("sluice.toml"), config).unwrap();
    let error = failed_run(&env).await;
    assert!(error.contains("HTTP 404") && error.contains("no spreadsheet has the id `1NoSuchSheet`"), "{error}");
}

#[tokio::test]
async fn bad_key_files_are_reported_before_any_request() {
    let google = Google::start().await;
    let env = project(&google, "upsert", PEOPLE, "").await;
    let key = env.root().join("sa.json");
    let cases: Vec<(String, &str)> = vec![
        ("{\"type\": \"service_account\", \"client_email\": \"x@y\"".into(), "malformed"),
        (json!({"type": "service_account", "client_email": "x@y", "token_uri": "http://t"}).to_string(), "missing field `private_key`"),
        (google.credentials_json().replace("BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY"), "openssl pkcs8 -topk8"),
        ("not json at all".into(), "is not JSON"),
        (google.credentials_json().replace("service_account", "authorized_user"), "not `service_account`"),
    ];
    for (contents, expected) in cases {
        std::fs::write(&key, contents).unwrap();
        let error = failed_run(&env).await;
        assert!(error.contains(expected), "expected `{expected}` in: {error}");
        assert!(!error.contains("PRIVATE KEY-----"), "the key never shows: {error}");
    }
    std::fs::remove_file(&key).unwrap();
    let out = sluice_check(&env).await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("credentials_file") && text.contains("sa.json"), "{text}");
    assert!(google.log().is_empty(), "no request was made");
}

#[tokio::test]
async fn a_token_the_endpoint_refuses_fails_the_run_with_its_reason() {
    let google = Google::start().await;
    google.replace_account_key();
    let env = project(&google, "upsert", PEOPLE, "").await;
    let error = failed_run(&env).await;
    assert!(error.contains(&format!("refused the service account {ACCOUNT}")) && error.contains("Invalid JWT Signature"), "{error}");
    assert_eq!(google.with(|s| s.token_refusals), 1, "a refusal is not retried");
}

#[tokio::test]
async fn a_write_past_ten_million_cells_fails_before_sending() {
    let google = Google::start().await;
    google.edit(|sp| {
        sp.apply(0, &json!({"addSheet": {"properties": {"title": "Big", "gridProperties": {"rowCount": 9_970_000, "columnCount": 1}}}}))
            .unwrap()
    });
    let env = project(&google, "upsert", PEOPLE, "").await;
    let error = failed_run(&env).await;
    assert!(error.contains("past Google's limit of 10000000") && error.contains("nothing was sent"), "{error}");
    assert!(google.writes().is_empty());
}

#[tokio::test]
async fn values_are_typed_cells_and_oversized_cells_are_rejected_alone() {
    let google = Google::start().await;
    let model = "SELECT 1 AS id, TRUE AS flag, NULL::INT AS nothing, DATE '2024-02-29' AS day, \
                 TIMESTAMPTZ '2024-01-02 03:04:05+00' AS ts, 12345678901234567 AS big, 2.50::DECIMAL(5,2) AS price, 'x' AS txt \
                 UNION ALL SELECT 2, FALSE, 1, NULL, NULL, 1, 1, repeat('y', 50001)";
    let env = project(&google, "upsert", model, "").await;
    let report = env.run("people").await;
    assert_eq!((report.written, report.rejected), (1, 1), "{report:?}");
    assert!(report.warnings.iter().any(|w| w.contains("(id=2)") && w.contains("holds 50001 characters")), "{:?}", report.warnings);
    let row: Vec<J> = google.edit(|sp| (0..8).map(|c| sp.tab("People").unwrap().get(1, c).cloned().unwrap_or(J::Null)).collect());
    assert_eq!(
        row,
        vec![
            json!(1),
            json!(true),
            J::Null,
            json!("2024-02-29"),
            json!("2024-01-02T03:04:05Z"),
            json!("12345678901234567"),
            json!(2.5),
            json!("x")
        ]
    );
}

#[tokio::test]
async fn user_entered_lets_sheets_parse_values() {
    let google = Google::start().await;
    let env = project(&google, "upsert", "SELECT 1 AS id, '0042' AS code", "value_input = \"USER_ENTERED\"").await;
    assert_eq!(env.run("people").await.status, RunStatus::Success);
    assert_eq!(google.edit(|sp| sp.tab("People").unwrap().get(1, 1).cloned()), Some(json!(42.0)));
    assert!(google.writes().iter().all(|w| w.query("valueInputOption") == ["USER_ENTERED"]
        || w.body["valueInputOption"] == "USER_ENTERED"
        || w.path.ends_with(":batchUpdate") && !w.path.contains("values")));
}

#[tokio::test]
async fn update_mode_rejects_keys_the_sheet_lacks() {
    let google = Google::start().await;
    google.edit(|sp| {
        sp.apply(0, &json!({"addSheet": {"properties": {"title": "People"}}})).unwrap();
        sp.write("People!A1", &[vec![json!("id"), json!("name")], vec![json!(1), json!("old")]], false).unwrap();
    });
    let env = project(&google, "update", PEOPLE, "").await;
    let report = env.run("people").await;
    assert_eq!((report.written, report.rejected), (1, 1));
    assert!(
        report.warnings.iter().any(|w| w.contains("(id=2)") && w.contains("update mode changes existing rows only")),
        "{:?}",
        report.warnings
    );
    assert_eq!(google.rows("People").unwrap(), vec![vec!["id", "name"], vec!["1", "ann"]]);
}

#[tokio::test]
async fn check_reads_but_never_writes() {
    let google = Google::start().await;
    let env = project(&google, "mirror", PEOPLE, "").await;
    let out = sluice_check(&env).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(google.with(|s| s.token_requests) >= 1 && !google.log().is_empty(), "check fetched a token and read the spreadsheet");
    assert!(google.writes().is_empty() && google.rows("People").is_none(), "check created nothing");
}

/// The emulator answers like Google, so passing tests mean something.
#[tokio::test]
async fn the_emulator_speaks_googles_protocol() {
    let google = Google::start().await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}v4/spreadsheets/{SPREADSHEET_ID}{path}", google.base_url);
    let unauth = http.get(url("")).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    assert_eq!(unauth.json::<J>().await.unwrap()["error"]["status"], "UNAUTHENTICATED");
    // Get a token the way a client would: JWT signed with the test key (yup-oauth2 does it).
    let key = yup_oauth2::parse_service_account_key(google.credentials_json()).unwrap();
    let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key).build().await.unwrap();
    let token = auth.token(&["https://www.googleapis.com/auth/spreadsheets"]).await.unwrap().token().unwrap().to_string();
    let call = |m: reqwest::Method, path: &str, body: Option<J>| {
        let mut r = http.request(m, url(path)).bearer_auth(&token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let put =
        call(reqwest::Method::PUT, "/values/Sheet1!B2?valueInputOption=RAW", Some(json!({"values": [["a", 1, true, ""], [], ["x"]]})))
            .await
            .unwrap();
    assert_eq!(put.json::<J>().await.unwrap()["updatedRange"], "Sheet1!B2:E4");
    let got: J =
        call(reqwest::Method::GET, "/values/Sheet1!A1:Z10?valueRenderOption=UNFORMATTED_VALUE", None).await.unwrap().json().await.unwrap();
    assert_eq!(got["values"], json!([[], ["", "a", 1, true], [], ["", "x"]]), "trailing empties trimmed, leading kept");
    let bad: J = call(reqwest::Method::GET, "/values/Nope!A1", None).await.unwrap().json().await.unwrap();
    assert_eq!(bad["error"]["message"], "Unable to parse range: Nope!A1");
    let beyond = call(reqwest::Method::GET, "/values/Sheet1!A1:A5000", None).await.unwrap();
    assert_eq!(beyond.status(), 400);
    assert!(beyond.text().await.unwrap().contains("exceeds grid limits"));
    // One bad request in a batchUpdate applies nothing.
    let atomic = call(
        reqwest::Method::POST,
        ":batchUpdate",
        Some(json!({"requests": [
        {"addSheet": {"properties": {"title": "New"}}},
        {"deleteDimension": {"range": {"sheetId": 999, "dimension": "ROWS", "startIndex": 0, "endIndex": 1}}}]})),
    )
    .await
    .unwrap();
    assert_eq!(atomic.status(), 400);
    assert!(google.rows("New").is_none());
    let missing = call(reqwest::Method::POST, "/values/Sheet1!A1:append", Some(json!({"values": [[1]]}))).await.unwrap();
    assert!(missing.text().await.unwrap().contains("'valueInputOption' is required"));
    google.with(|s| s.quota.reads = 0);
    let limited = call(reqwest::Method::GET, "", None).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.json::<J>().await.unwrap()["error"]["details"][0]["reason"], "RATE_LIMIT_EXCEEDED");
}
