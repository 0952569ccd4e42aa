//! `kind = "command"`: a destination written as a program in any language. sluice writes each
//! batch as JSON lines on the program's stdin and reads one result line per row from its
//! stdout (docs/custom-destinations.md has the protocol).

mod client;
mod config;
mod encoding;
mod writer;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use self::client::Spec;
use self::config::CommandConfig;
use crate::destinations::flow::{Pace, RateLimit};
use crate::destinations::{Capabilities, Destination, DestinationError, Target, Writer};
use writer::CommandWriter;

pub struct CommandDestination {
    config: CommandConfig,
    name: String,
    root: PathBuf,
    /// `rate_limit`, read.
    rate_limit: Option<RateLimit>,
}

impl CommandDestination {
    pub fn from_settings(name: &str, settings: &toml::Table, root: &Path) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<CommandConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        if config.command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err("`command` is empty: give the program and its arguments, e.g. [\"python3\", \"destinations/crm.py\"]".into());
        }
        let rate_limit = RateLimit::setting(config.rate_limit.as_deref())?;
        Ok(CommandDestination { config, name: name.to_string(), root: root.to_path_buf(), rate_limit })
    }

    fn spec(&self) -> Spec {
        Spec {
            destination: self.name.clone(),
            argv: self.config.command.clone(),
            dir: self.root.clone(),
            env: self.config.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

#[async_trait]
impl Destination for CommandDestination {
    /// The program and its arguments: another command line may write elsewhere.
    async fn identity(&self) -> Result<String, DestinationError> {
        Ok(self.config.command.join("\u{1f}"))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rate_limit: self.rate_limit, ..self.config.requests.capabilities() }
    }

    /// The program is not started (it may write); a program given by path must exist. The
    /// sync's `[target]` is the program's to read (`SLUICE_TARGET`).
    async fn check(&self, _target: &Target) -> Result<(), DestinationError> {
        let program = &self.config.command[0];
        if program.contains('/') && !self.root.join(program).exists() {
            return Err(DestinationError::fatal(format!("`{program}` does not exist (paths in `command` are relative to the project)")));
        }
        for arg in self.config.command.iter().skip(1).filter(|a| looks_like_script(a)) {
            if !self.root.join(arg).exists() {
                return Err(DestinationError::fatal(format!("`{arg}` does not exist (paths in `command` are relative to the project)")));
            }
        }
        Ok(())
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        Ok(Box::new(CommandWriter {
            spec: self.spec(),
            target: target.clone(),
            per_batch: self.config.per_batch,
            timeout: self.config.requests.timeout,
            program: None,
            warnings: Vec::new(),
            pace: self.rate_limit.map(|limit| Pace::new(&Pace::key("command", &self.name, &self.config.command.join("\u{1f}")), limit)),
        }))
    }
}

/// An argument naming a script file (`destinations/notion.py`): checked to exist.
fn looks_like_script(arg: &str) -> bool {
    !arg.starts_with('-') && !arg.contains("://") && arg.contains('/') && Path::new(arg).extension().is_some()
}

/// This kind's settings and `[target]`, for the configuration reference. The `[target]` is the
/// program's to read: any table, handed over as it is.
pub fn reference() -> super::Reference {
    let mut reference = super::Reference::new::<config::CommandConfig, crate::project::schema::AnyTable>(&config::REQUESTS);
    reference.target = schemars::json_schema!({
        "description": "Any table: the program gets it as JSON in the environment variable `SLUICE_TARGET`."
    });
    reference
}
