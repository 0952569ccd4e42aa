use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::client::{Program, Spec};
use super::config::CommandConfig;
use super::encoding::row_line;
use crate::destinations::{parse_settings, partial, Capabilities, Destination, DestinationError, RowOp, RowOutcome, Target, Writer};

pub struct CommandDestination {
    config: CommandConfig,
    name: String,
    root: PathBuf,
}

impl CommandDestination {
    pub fn from_settings(name: &str, settings: &toml::Table, root: &Path) -> Result<Self, String> {
        let config: CommandConfig = parse_settings(settings)?;
        if config.command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err("`command` is empty: give the program and its arguments, e.g. [\"python3\", \"destinations/crm.py\"]".into());
        }
        Ok(CommandDestination { config, name: name.to_string(), root: root.to_path_buf() })
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
        Capabilities::every_mode(self.config.max_batch_rows, self.config.max_attempts, self.config.retry_initial_delay)
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
            timeout: self.config.timeout,
            program: None,
            warnings: Vec::new(),
        }))
    }
}

/// An argument naming a script file (`destinations/notion.py`): checked to exist.
fn looks_like_script(arg: &str) -> bool {
    !arg.starts_with('-') && !arg.contains("://") && arg.contains('/') && Path::new(arg).extension().is_some()
}

struct CommandWriter {
    spec: Spec,
    target: Target,
    per_batch: bool,
    timeout: std::time::Duration,
    /// The running program, in per-run mode between batches.
    program: Option<Program>,
    warnings: Vec<String>,
}

#[async_trait]
impl Writer for CommandWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        let lines: Vec<u8> = batch.iter().flat_map(|op| row_line(&self.target, op)).collect();
        let mut program = match self.program.take() {
            Some(p) => p,
            None => Program::start(&self.spec, &self.target)?,
        };
        let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
        let exchange = program.exchange(&self.target, batch, &lines, self.per_batch, &mut out);
        let broke = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(broke) => broke,
            Err(_) => Some(format!(
                "the program gave {} of {} results within the {} s timeout",
                out.iter().filter(|o| o.is_some()).count(),
                batch.len(),
                self.timeout.as_secs()
            )),
        };
        match (&broke, self.per_batch) {
            // Its state is unknown: never fed again.
            (Some(_), _) => program.kill().await,
            (None, true) => {
                if let Err(why) = program.finish(self.timeout).await {
                    self.warnings.push(format!("destination `{}`: {why} (its answers were recorded)", self.spec.destination));
                }
            }
            (None, false) => self.program = Some(program),
        }
        match broke {
            // Answered rows keep their outcome; the rest is retried with backoff, then left
            // pending: never counted as written.
            Some(why) => partial(out, DestinationError::transient(why)),
            None => Ok(out.into_iter().map(|o| o.unwrap_or_else(|| RowOutcome::Retryable("the program gave no result".into()))).collect()),
        }
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    async fn close(self: Box<Self>) -> Result<(), DestinationError> {
        match self.program {
            // Every row already has its outcome; a program that ends badly still fails the run,
            // so someone looks (it may have dropped work it had buffered).
            Some(program) => program
                .finish(self.timeout)
                .await
                .map_err(|why| DestinationError::fatal(format!("{why} after its last batch; the rows it answered were recorded"))),
            None => Ok(()),
        }
    }
}
