//! The release smoke scenario, one per destination: create 3 records, update 1, remove 1, read
//! them back through the service's own API, clean up. `scripts/test` runs it against the
//! emulators; `scripts/smoke` runs the same code against the real services whose credentials are
//! in the environment (docs/smoke.md), so the two cannot drift. Reading back goes through HTTP to
//! the service (or its emulator), never through the emulator's memory.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value as J};
use sluice::destinations::async_trait;
use sluice::engine::RunOptions;
use sluice::state::RunStatus;

use crate::support::{self, Env, SourceKind, StateKind};

/// Where the scenario runs: the emulators (always), or the real services (`SLUICE_SMOKE_REAL=1`,
/// set by `scripts/smoke`).
fn real() -> bool {
    std::env::var("SLUICE_SMOKE_REAL").is_ok_and(|v| v == "1")
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// One destination the scenario runs against.
#[async_trait]
trait Service: Send + Sync {
    /// The `[destinations.smoke]` table (files it needs go under `root`).
    fn destination(&self, root: &std::path::Path) -> String;
    /// The sync header's `mode`, `[target]` and `[mapping]` for rows tagged `tag`.
    fn sync(&self, tag: &str) -> String;
    /// Whether the destination can remove records (Slack cannot take a message back).
    fn removes(&self) -> bool {
        true
    }
    /// The records of rows `ids`, as id -> name, read through the service's API (`None`: the
    /// service cannot be read back).
    async fn read(&self, tag: &str, ids: &[String]) -> Result<Option<BTreeMap<String, String>>, String>;
    /// Whatever the scenario leaves behind (a tab, say), gone.
    async fn clean(&self, _tag: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The scenario; `Ok` with what it did, `Err` with the step that went wrong.
async fn scenario(service: &dyn Service) -> Result<String, String> {
    let started = Instant::now();
    let tag = format!("sluice-smoke-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.add_destination("smoke", &service.destination(env.root()));
    env.exec(&format!(
        "CREATE TABLE people(id TEXT, email TEXT, name TEXT);
         INSERT INTO people VALUES ('{tag}-1', '{tag}-1@example.com', 'Ann'), ('{tag}-2', '{tag}-2@example.com', 'Bob'),
                                   ('{tag}-3', '{tag}-3@example.com', 'Cy');"
    ))
    .await;
    env.write_sync("smoke", &format!("destination = \"smoke\"\nprimary_key = \"id\"\n{}", service.sync(&tag)), "SELECT * FROM people");
    let ids: Vec<String> = (1..=3).map(|i| format!("{tag}-{i}")).collect();
    let expect =
        |pairs: &[(usize, &str)]| -> BTreeMap<String, String> { pairs.iter().map(|(i, n)| (ids[*i].clone(), n.to_string())).collect() };
    let run = |allow_deletes: bool| env.run_with("smoke", RunOptions { allow_deletes, ..RunOptions::default() });
    let check = |step: &str, report: &sluice::engine::SyncReport, written: u64| -> Result<(), String> {
        if report.status != RunStatus::Success || report.written != written {
            return Err(format!(
                "{step}: run {:?}, {} written (expected {written}): {} {:?}",
                report.status,
                report.written,
                report.error.clone().unwrap_or_default(),
                report.warnings
            ));
        }
        Ok(())
    };
    // Whether the service could be read back (a Slack message cannot).
    let mut read = false;
    let mut read_back = async |step: &str, want: BTreeMap<String, String>| -> Result<(), String> {
        match service.read(&tag, &ids).await {
            Ok(None) => Ok(()),
            Ok(Some(got)) if got == want => {
                read = true;
                Ok(())
            }
            Ok(Some(got)) => Err(format!("{step}: read back {got:?}, expected {want:?}")),
            Err(e) => Err(format!("{step}: reading back: {e}")),
        }
    };
    let mut done = Vec::new();

    check("create 3", &run(false).await, 3)?;
    read_back("create 3", expect(&[(0, "Ann"), (1, "Bob"), (2, "Cy")])).await?;
    done.push("create 3");

    env.exec(&format!("UPDATE people SET name = 'Bobby' WHERE id = '{tag}-2'")).await;
    check("update 1", &run(false).await, 1)?;
    read_back("update 1", expect(&[(0, "Ann"), (1, "Bobby"), (2, "Cy")])).await?;
    done.push("update 1");

    if service.removes() {
        env.exec(&format!("DELETE FROM people WHERE id = '{tag}-3'")).await;
        check("remove 1", &run(true).await, 1)?;
        read_back("remove 1", expect(&[(0, "Ann"), (1, "Bobby")])).await?;
        done.push("remove 1");

        env.exec("DELETE FROM people").await;
        check("clean up", &run(true).await, 2)?;
        read_back("clean up", BTreeMap::new()).await?;
    }
    service.clean(&tag).await.map_err(|e| format!("clean up: {e}"))?;
    done.push(if service.removes() { "clean up" } else { "(messages cannot be taken back)" });
    if read {
        done.push("each step read back");
    }
    Ok(format!("{} in {:.1}s", done.join(", "), started.elapsed().as_secs_f64()))
}

/// Runs the scenario against `emulator`, or with `SLUICE_SMOKE_REAL=1` against `real` when its
/// credentials are set; prints one line of what happened either way.
async fn smoke(name: &str, emulator: impl std::future::Future<Output = Box<dyn Service>>, real_service: Result<Box<dyn Service>, String>) {
    let service = if real() {
        match real_service {
            Ok(s) => s,
            Err(missing) => {
                println!("smoke: {name}: skipped: no credentials ({missing})");
                return;
            }
        }
    } else {
        emulator.await
    };
    let against = if real() { "the real service" } else { "its emulator" };
    match scenario(service.as_ref()).await {
        Ok(summary) => println!("smoke: {name} against {against}: ok: {summary}"),
        Err(e) => panic!("smoke: {name} against {against}: FAILED: {e}"),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().expect("an HTTP client")
}

// HubSpot: contacts by email; read back with batch/read.

struct HubSpot {
    base_url: String,
    token: String,
    _emulator: Option<support::hubspot::HubSpot>,
}

#[async_trait]
impl Service for HubSpot {
    fn destination(&self, _root: &std::path::Path) -> String {
        format!("kind = \"hubspot\"\ntoken = \"{}\"\nbase_url = \"{}\"", self.token, self.base_url)
    }
    fn sync(&self, _tag: &str) -> String {
        "mode = \"mirror\"\n[target]\nobject = \"contacts\"\nid_property = \"email\"\n[mapping]\nemail = \"email\"\nfirstname = \"name\""
            .into()
    }
    async fn read(&self, _tag: &str, ids: &[String]) -> Result<Option<BTreeMap<String, String>>, String> {
        let inputs: Vec<J> = ids.iter().map(|id| json!({ "id": format!("{id}@example.com") })).collect();
        let answer: J = http()
            .post(format!("{}crm/v3/objects/contacts/batch/read", self.base_url))
            .bearer_auth(&self.token)
            .json(&json!({ "idProperty": "email", "inputs": inputs, "properties": ["email", "firstname"] }))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(
            answer["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let email = r["properties"]["email"].as_str()?;
                    Some((email.trim_end_matches("@example.com").to_string(), r["properties"]["firstname"].as_str()?.to_string()))
                })
                .collect(),
        ))
    }
}

#[tokio::test]
async fn hubspot() {
    let emulator = async {
        let hs = support::hubspot::HubSpot::start().await;
        Box::new(HubSpot { base_url: hs.base_url.clone(), token: support::hubspot::TOKEN.into(), _emulator: Some(hs) }) as Box<dyn Service>
    };
    let real = env_var("SLUICE_SMOKE_HUBSPOT_TOKEN")
        .map(|token| Box::new(HubSpot { base_url: "https://api.hubapi.com/".into(), token, _emulator: None }) as Box<dyn Service>)
        .ok_or_else(|| "set SLUICE_SMOKE_HUBSPOT_TOKEN".to_string());
    smoke("hubspot", emulator, real).await;
}

// Salesforce: Contacts by an External ID field; read back with a SOQL query after a JWT login.

struct Salesforce {
    login_url: String,
    audience: String,
    client_id: String,
    username: String,
    key_pem: String,
    external_id: String,
    _emulator: Option<support::salesforce::Salesforce>,
}

impl Salesforce {
    async fn session(&self) -> Result<(String, String), String> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: u64,
        }
        let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 180;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.key_pem.as_bytes()).map_err(|e| e.to_string())?;
        let claims = Claims { iss: &self.client_id, sub: &self.username, aud: &self.audience, exp };
        let assertion =
            jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).map_err(|e| e.to_string())?;
        let answer: J = http()
            .post(format!("{}/services/oauth2/token", self.login_url.trim_end_matches('/')))
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match (answer["access_token"].as_str(), answer["instance_url"].as_str()) {
            (Some(t), Some(i)) => Ok((t.to_string(), i.to_string())),
            _ => Err(format!("login refused: {answer}")),
        }
    }
}

#[async_trait]
impl Service for Salesforce {
    fn destination(&self, root: &std::path::Path) -> String {
        std::fs::write(root.join("smoke.pem"), &self.key_pem).expect("write the key");
        format!(
            "kind = \"salesforce\"\nlogin_url = \"{}\"\naudience = \"{}\"\nclient_id = \"{}\"\nusername = \"{}\"\nprivate_key_file = \"smoke.pem\"",
            self.login_url, self.audience, self.client_id, self.username
        )
    }
    fn sync(&self, _tag: &str) -> String {
        format!(
            "mode = \"mirror\"\n[target]\nobject = \"Contact\"\nexternal_id = \"{0}\"\n[mapping]\n{0} = \"id\"\nLastName = \"name\"",
            self.external_id
        )
    }
    async fn read(&self, _tag: &str, ids: &[String]) -> Result<Option<BTreeMap<String, String>>, String> {
        let (token, instance) = self.session().await?;
        let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        let q = format!("SELECT {0}, LastName FROM Contact WHERE {0} IN ({1})", self.external_id, list.join(", "));
        let answer: J = http()
            .get(format!("{}/services/data/v62.0/query", instance.trim_end_matches('/')))
            .query(&[("q", q)])
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(
            answer["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| Some((r[&self.external_id].as_str()?.to_string(), r["LastName"].as_str()?.to_string())))
                .collect(),
        ))
    }
}

#[tokio::test]
async fn salesforce() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let emulator = async {
        let sf = support::salesforce::Salesforce::start().await;
        let key_pem = support::jwt::test_key().to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
        Box::new(Salesforce {
            login_url: sf.base_url.clone(),
            audience: "https://login.salesforce.com".into(),
            client_id: support::salesforce::CLIENT_ID.into(),
            username: support::salesforce::USERNAME.into(),
            key_pem,
            external_id: "Customer_Id__c".into(),
            _emulator: Some(sf),
        }) as Box<dyn Service>
    };
    let names = [
        "SLUICE_SMOKE_SALESFORCE_LOGIN_URL",
        "SLUICE_SMOKE_SALESFORCE_CLIENT_ID",
        "SLUICE_SMOKE_SALESFORCE_USERNAME",
        "SLUICE_SMOKE_SALESFORCE_KEY_FILE",
        "SLUICE_SMOKE_SALESFORCE_EXTERNAL_ID",
    ];
    let real = match names.map(env_var) {
        [Some(login_url), Some(client_id), Some(username), Some(key_file), Some(external_id)] => {
            std::fs::read_to_string(&key_file).map_err(|e| format!("SLUICE_SMOKE_SALESFORCE_KEY_FILE: {e}")).map(|key_pem| {
                let audience = env_var("SLUICE_SMOKE_SALESFORCE_AUDIENCE").unwrap_or_else(|| "https://test.salesforce.com".into());
                Box::new(Salesforce { login_url, audience, client_id, username, key_pem, external_id, _emulator: None }) as Box<dyn Service>
            })
        }
        _ => Err(format!("set {}", names.join(", "))),
    };
    smoke("salesforce", emulator, real).await;
}

// Google Sheets: a tab of its own in a scratch spreadsheet; read back with values.get.

struct Sheets {
    base_url: String,
    spreadsheet_id: String,
    key_json: String,
    _emulator: Option<support::google::Google>,
}

impl Sheets {
    async fn token(&self) -> Result<String, String> {
        let key = yup_oauth2::parse_service_account_key(&self.key_json).map_err(|e| e.to_string())?;
        let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key).build().await.map_err(|e| e.to_string())?;
        let token = auth.token(&["https://www.googleapis.com/auth/spreadsheets"]).await.map_err(|e| e.to_string())?;
        token.token().map(str::to_string).ok_or_else(|| "no access token".into())
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<J, String> {
        let answer = request.bearer_auth(self.token().await?).send().await.map_err(|e| e.to_string())?;
        let status = answer.status();
        let body: J = answer.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(body)
    }

    fn url(&self, rest: &str) -> String {
        format!("{}v4/spreadsheets/{}{rest}", self.base_url, self.spreadsheet_id)
    }

    async fn sheet_id(&self, tag: &str) -> Result<Option<i64>, String> {
        let meta = self.call(http().get(self.url(""))).await?;
        Ok(meta["sheets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["properties"]["title"] == tag)
            .and_then(|s| s["properties"]["sheetId"].as_i64()))
    }
}

#[async_trait]
impl Service for Sheets {
    fn destination(&self, root: &std::path::Path) -> String {
        std::fs::write(root.join("smoke-sa.json"), &self.key_json).expect("write the key");
        format!(
            "kind = \"google_sheets\"\nspreadsheet_id = \"{}\"\ncredentials_file = \"smoke-sa.json\"\nbase_url = \"{}\"",
            self.spreadsheet_id, self.base_url
        )
    }
    fn sync(&self, tag: &str) -> String {
        format!("mode = \"mirror\"\n[target]\nsheet = \"{tag}\"\n[mapping]\nKey = \"id\"\nName = \"name\"")
    }
    async fn read(&self, tag: &str, _ids: &[String]) -> Result<Option<BTreeMap<String, String>>, String> {
        if self.sheet_id(tag).await?.is_none() {
            return Ok(Some(BTreeMap::new()));
        }
        let range = format!("'{tag}'!A2:B");
        let answer = self.call(http().get(self.url(&format!("/values/{}", urlencode(&range))))).await?;
        Ok(Some(
            answer["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| Some((row[0].as_str()?.to_string(), row[1].as_str()?.to_string())))
                .collect(),
        ))
    }
    async fn clean(&self, tag: &str) -> Result<(), String> {
        if let Some(id) = self.sheet_id(tag).await? {
            self.call(http().post(self.url(":batchUpdate")).json(&json!({ "requests": [{ "deleteSheet": { "sheetId": id } }] }))).await?;
        }
        Ok(())
    }
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn google_sheets() {
    let emulator = async {
        let google = support::google::Google::start().await;
        Box::new(Sheets {
            base_url: google.base_url.clone(),
            spreadsheet_id: support::google::SPREADSHEET_ID.into(),
            key_json: google.credentials_json(),
            _emulator: Some(google),
        }) as Box<dyn Service>
    };
    let real = match (env_var("SLUICE_SMOKE_GOOGLE_CREDENTIALS_FILE"), env_var("SLUICE_SMOKE_GOOGLE_SPREADSHEET_ID")) {
        (Some(file), Some(spreadsheet_id)) => {
            std::fs::read_to_string(&file).map_err(|e| format!("SLUICE_SMOKE_GOOGLE_CREDENTIALS_FILE: {e}")).map(|key_json| {
                Box::new(Sheets { base_url: "https://sheets.googleapis.com/".into(), spreadsheet_id, key_json, _emulator: None })
                    as Box<dyn Service>
            })
        }
        _ => Err("set SLUICE_SMOKE_GOOGLE_CREDENTIALS_FILE and SLUICE_SMOKE_GOOGLE_SPREADSHEET_ID (a scratch spreadsheet)".into()),
    };
    smoke("google_sheets", emulator, real).await;
}

// Slack: an incoming webhook; messages cannot be read back or taken back.

struct Slack {
    webhook_url: String,
    _emulator: Option<support::slack::Slack>,
}

#[async_trait]
impl Service for Slack {
    fn destination(&self, _root: &std::path::Path) -> String {
        format!("kind = \"slack\"\nwebhook_url = \"{}\"", self.webhook_url)
    }
    fn sync(&self, _tag: &str) -> String {
        "mode = \"upsert\"\n[target]\ntext = \"sluice smoke test: {{ id }} is {{ name }}\"".into()
    }
    fn removes(&self) -> bool {
        false
    }
    async fn read(&self, _tag: &str, _ids: &[String]) -> Result<Option<BTreeMap<String, String>>, String> {
        Ok(None)
    }
}

#[tokio::test]
async fn slack() {
    let emulator = async {
        let slack = support::slack::Slack::start().await;
        Box::new(Slack { webhook_url: slack.url.clone(), _emulator: Some(slack) }) as Box<dyn Service>
    };
    let real = env_var("SLUICE_SMOKE_SLACK_WEBHOOK_URL")
        .map(|webhook_url| Box::new(Slack { webhook_url, _emulator: None }) as Box<dyn Service>)
        .ok_or_else(|| "set SLUICE_SMOKE_SLACK_WEBHOOK_URL".to_string());
    smoke("slack", emulator, real).await;
}
