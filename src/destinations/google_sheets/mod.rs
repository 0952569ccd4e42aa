//! `google_sheets`: keeps a tab equal to the model by key. See docs/destinations.md.
//!
//! Each run reads the tab's header row and key column(s) (`writer::Tab`), so rows people
//! inserted, sorted or deleted by hand are found where they are now. Changed rows are written in
//! place (only mapped cells), new rows appended, removed rows deleted. `client` decides
//! *whether* a failed request is worth retrying; the engine decides *how*.
//!
//! Files: `config` (settings), `auth` (service-account OAuth via yup-oauth2), `client` (HTTP,
//! quotas, error meaning), `encoding` (cells, keys, A1 notation), `layout` (header alignment,
//! key index), `writer` (a run), `destination` (the trait impl and `check`).

mod auth;
mod client;
mod config;
mod encoding;
mod layout;
mod writer;

pub use config::SheetsConfig;

use std::sync::Arc;

use async_trait::async_trait;

use self::auth::Auth;
use self::client::SheetsClient;
use self::config::SheetsTarget;
use self::writer::{SheetsWriter, Tab};
use crate::destinations::{parse_settings, Capabilities, Destination, DestinationError, Target, Writer};
use crate::project::Mode;

/// Google's limit on the cells of one spreadsheet, across its tabs.
pub const MAX_CELLS: u64 = 10_000_000;
/// The grid a new tab gets (Google's own default).
pub const NEW_TAB_ROWS: u64 = 1000;
pub const NEW_TAB_COLUMNS: u64 = 26;

pub struct SheetsDestination {
    config: SheetsConfig,
    /// Shared by every run of every sync writing to this spreadsheet: one token cache and one
    /// quota for the service account.
    client: Arc<SheetsClient>,
}

impl SheetsDestination {
    pub fn from_settings(name: &str, settings: &toml::Table) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<SheetsConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        let credentials = config.credentials.as_ref().ok_or(
            "no credentials: set `credentials_file` to the path of the service account's JSON key, or `credentials_json` to its contents",
        )?;
        let auth = Auth::new(credentials, config.token_url.as_deref())?;
        let client = SheetsClient::new(name, &config, auth)?;
        Ok(SheetsDestination { config, client: Arc::new(client) })
    }
}

/// The sync's `[target]` (its tab title defaulted) and the checks that need no network.
pub fn resolve_target(target: &Target) -> Result<SheetsTarget, DestinationError> {
    let settings: SheetsTarget = parse_settings(&target.settings)
        .map_err(|e| DestinationError::fatal(format!("[target]: {e} (the settings are `sheet` and `formulas`)")))?;
    let title = settings.sheet.clone().unwrap_or_else(|| target.sync.clone());
    if title.trim().is_empty() || title.chars().count() > 100 {
        return Err(DestinationError::fatal(format!("[target] sheet = \"{title}\": a tab title must be 1 to 100 characters")));
    }
    if target.mode != Mode::Insert {
        if let Some(k) = target.key_fields.iter().position(Option::is_none) {
            return Err(DestinationError::fatal(format!(
                "primary key column `{}` is not mapped to a sheet column: add it to [mapping] so sluice can find each row in the sheet",
                target.key_columns[k]
            )));
        }
    }
    if let Some(f) = target.fields.iter().find(|f| f.trim().is_empty()) {
        return Err(DestinationError::fatal(format!("field `{f}` has an empty name: every mapped field becomes a header in row 1")));
    }
    Ok(SheetsTarget { sheet: Some(title), ..settings })
}

#[async_trait]
impl Destination for SheetsDestination {
    /// The spreadsheet, and the API it is reached through.
    async fn identity(&self) -> Result<String, DestinationError> {
        Ok(format!("{} {}", self.config.base_url, self.config.spreadsheet_id))
    }

    fn capabilities(&self) -> Capabilities {
        // Runs against one spreadsheet take turns: each reads row numbers the other would shift.
        Capabilities {
            concurrent_runs: Some(1),
            // `if_empty`: the columns of such fields are read with the keys when a run opens.
            if_empty: true,
            rate_limit: Some(self.client.write_limit()),
            ..self.config.requests.capabilities()
        }
    }

    /// Token obtainable, spreadsheet reachable, tab present or creatable, headers alignable.
    /// Reads only.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        let title = resolve_target(target)?.sheet.unwrap_or_default();
        let tab = Tab::read(&self.client, &title, target).await.map_err(DestinationError::from)?;
        tab.check_fits(target).map_err(DestinationError::fatal)
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        let settings = resolve_target(target)?;
        let (title, formulas) = (settings.sheet.unwrap_or_default(), settings.formulas);
        Ok(Box::new(SheetsWriter::open(self.client.clone(), title, target.clone(), self.config.max_request_bytes, formulas).await?))
    }
}

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::SheetsConfig, config::SheetsTarget>(&config::REQUESTS)
}
