//! One run of a command sync: the program started once per run (or per batch), fed batches,
//! its result lines read back as outcomes.

use async_trait::async_trait;

use super::client::{Program, Spec};
use super::encoding::row_line;
use crate::destinations::flow::Pace;
use crate::destinations::{partial, DestinationError, RowOp, RowOutcome, Target, Writer};

pub(super) struct CommandWriter {
    pub spec: Spec,
    pub target: Target,
    pub per_batch: bool,
    pub timeout: std::time::Duration,
    /// The running program, in per-run mode between batches.
    pub program: Option<Program>,
    pub warnings: Vec<String>,
    /// The `rate_limit` batches wait for, shared by every run of the process writing through
    /// this command line.
    pub pace: Option<Pace>,
}

#[async_trait]
impl Writer for CommandWriter {
    /// `max_in_flight` above 1 runs that many copies of the program side by side (each started
    /// when its first batch comes); the program must then take concurrent writers.
    fn fork(&self) -> Option<Box<dyn Writer>> {
        Some(Box::new(CommandWriter {
            spec: self.spec.clone(),
            target: self.target.clone(),
            per_batch: self.per_batch,
            timeout: self.timeout,
            program: None,
            warnings: Vec::new(),
            pace: self.pace.clone(),
        }))
    }

    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        if let Some(pace) = &self.pace {
            pace.ready().await;
        }
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
