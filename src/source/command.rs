//! `kind = "command"`: a program in any language feeds the model. Each run starts the program
//! (clean environment plus `env`, in the project directory, its own process group), streams
//! its stdout to a file, and waits for it within `timeout`. A program that fails (an exit code,
//! a timeout) fails the run with its stderr's last lines, before anything is read. Then the file
//! is a DuckDB view named `input` (DuckDB's JSON, CSV or Parquet reader: nothing held in memory
//! whole), and the model runs over it as any DuckDB model does.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::duckdb::DuckDbSource;
use super::{After, Column, ModelStream, SourceError, StopOnDrop};
use crate::process::StderrTail;
use crate::project::config::{CommandFormat, CommandSourceConfig};

/// Lines of the program's stderr kept for the error when it fails.
const STDERR_TAIL: usize = 10;

pub struct CommandSource {
    name: String,
    config: CommandSourceConfig,
    root: PathBuf,
}

/// What a run of the program left: its output (in a temporary directory, removed when the
/// model's stream is dropped) and where DuckDB reads it.
struct Output {
    _dir: tempfile::TempDir,
    /// The file holding the rows (the program's stdout, or the Parquet file it named).
    data: PathBuf,
    empty: bool,
}

impl CommandSource {
    pub fn new(name: &str, config: CommandSourceConfig, root: &Path) -> Result<Self, SourceError> {
        if config.command.is_empty() {
            return Err(SourceError::Connect { source_name: name.to_string(), message: "`command` is empty".into() });
        }
        Ok(CommandSource { name: name.to_string(), config, root: root.to_path_buf() })
    }

    fn fail(&self, message: String) -> SourceError {
        SourceError::Program { source_name: self.name.clone(), message }
    }

    /// Runs the program to its end; its stdout is in the returned file.
    async fn run_program(&self) -> Result<Output, SourceError> {
        let (program, args) = self.config.command.split_first().ok_or_else(|| self.fail("`command` is empty".into()))?;
        let dir =
            tempfile::Builder::new().prefix("sluice-source-").tempdir().map_err(|e| self.fail(format!("no temporary directory: {e}")))?;
        let stdout_path = dir.path().join("stdout");
        let mut cmd = crate::process::command(program, args, &self.root);
        cmd.env("SLUICE_SOURCE", &self.name).stdin(std::process::Stdio::null());
        for (name, value) in &self.config.env {
            cmd.env(name, value.expose_secret());
        }
        let mut child = cmd.spawn().map_err(|e| {
            self.fail(format!("cannot start `{program}` (in {}): {e}; check `command` in [sources.{}]", self.root.display(), self.name))
        })?;
        let pid = child.id();
        // Killed with its children if the run stops while it works (the future dropped).
        let _group = StopOnDrop(Box::new(move || crate::process::kill_group(pid)));
        let stderr = child.stderr.take().ok_or_else(|| self.fail("no stderr pipe".into()))?;
        let name = self.name.clone();
        let (tail, stderr) = StderrTail::follow(stderr, STDERR_TAIL, move |line| tracing::info!(source = %name, "{line}"));
        let mut stdout = child.stdout.take().ok_or_else(|| self.fail("no stdout pipe".into()))?;
        let work = async {
            let mut file = tokio::fs::File::create(&stdout_path).await?;
            let written = tokio::io::copy(&mut stdout, &mut file).await?;
            file.sync_all().await?;
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((written, status))
        };
        let limit = self.config.timeout;
        let (written, status) = match tokio::time::timeout(limit, work).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(self.fail(format!("reading the program's output: {e}"))),
            Err(_) => {
                crate::process::kill_group(pid);
                return Err(self.fail(format!(
                    "the program ran longer than `timeout` ({}) and was killed{}",
                    humantime::format_duration(limit),
                    said(&tail)
                )));
            }
        };
        // The pipe closes when the program's group is gone; its last lines are then in `tail`.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stderr).await;
        if !status.success() {
            return Err(self.fail(format!("the program failed ({status}){}", said(&tail))));
        }
        let data = match self.config.format {
            CommandFormat::Parquet => {
                let text = std::fs::read_to_string(&stdout_path).map_err(|e| self.fail(format!("reading its output: {e}")))?;
                let named = text.lines().map(str::trim).find(|l| !l.is_empty()).ok_or_else(|| {
                    self.fail(
                        "format = \"parquet\": the program must print the path of the Parquet file it wrote, and printed nothing".into(),
                    )
                })?;
                let path = self.root.join(named);
                if !path.is_file() {
                    return Err(self.fail(format!("format = \"parquet\": the program printed `{named}`, which is not a file")));
                }
                path
            }
            _ => stdout_path,
        };
        Ok(Output { _dir: dir, data, empty: written == 0 })
    }

    /// The DuckDB that reads `output` as the table `input`.
    fn duck(&self, output: &Output) -> Result<DuckDbSource, SourceError> {
        let file = output.data.display().to_string().replace('\'', "''");
        let pinned = |extra: &str| -> String {
            let fields: Vec<String> = self
                .config
                .columns
                .iter()
                .map(|(name, ty)| format!("'{}': '{}'", name.replace('\'', "''"), ty.replace('\'', "''")))
                .collect();
            format!(", {extra} = {{{}}}", fields.join(", "))
        };
        let pin = !self.config.columns.is_empty();
        let reader = match self.config.format {
            // An empty output with every column pinned is an empty table (DuckDB cannot type
            // columns from no data).
            CommandFormat::Jsonl => format!(
                "read_json('{file}', format = 'newline_delimited', records = true{})",
                if pin { pinned("columns") } else { String::new() }
            ),
            CommandFormat::Csv => format!("read_csv('{file}', header = true{})", if pin { pinned("types") } else { String::new() }),
            CommandFormat::Parquet => format!("read_parquet('{file}')"),
        };
        if output.empty && self.config.format != CommandFormat::Parquet && !pin {
            return Err(self.fail(
                "the program wrote nothing, so the columns of `input` are unknown: pin them in [sources.NAME.columns] to allow \
                 an empty output"
                    .into(),
            ));
        }
        let select = match (self.config.format, pin) {
            // Parquet carries its types; pinned ones are casts.
            (CommandFormat::Parquet, true) => {
                let casts: Vec<String> = self
                    .config
                    .columns
                    .iter()
                    .map(|(name, ty)| format!("CAST(\"{}\" AS {ty}) AS \"{}\"", name.replace('"', "\"\""), name.replace('"', "\"\"")))
                    .collect();
                format!("SELECT * REPLACE ({}) FROM {reader}", casts.join(", "))
            }
            _ => format!("SELECT * FROM {reader}"),
        };
        let prelude = if output.empty && pin && self.config.format != CommandFormat::Parquet {
            let cols: Vec<String> =
                self.config.columns.iter().map(|(name, ty)| format!("\"{}\" {ty}", name.replace('"', "\"\""))).collect();
            format!("CREATE TABLE input ({});", cols.join(", "))
        } else {
            format!("CREATE VIEW input AS {select};")
        };
        let mut readable = vec![self.root.clone()];
        if let Some(parent) = output.data.parent() {
            readable.push(parent.to_path_buf());
        }
        Ok(DuckDbSource::in_memory(&self.name, &self.root, readable, prelude))
    }

    pub async fn describe(&self, sql: &str) -> Result<Vec<Column>, SourceError> {
        let output = self.run_program().await?;
        self.duck(&output)?.describe(sql).await.map_err(|e| self.explain(e, &output))
    }

    pub async fn stream(&self, sql: &str, after: Option<&After>, timeout: Option<std::time::Duration>) -> Result<ModelStream, SourceError> {
        let output = self.run_program().await?;
        let mut stream = self.duck(&output)?.stream(sql, after, timeout).await.map_err(|e| self.explain(e, &output))?;
        // The output stays until the model has been read.
        let stop = stream._stop.take();
        stream._stop = Some(StopOnDrop(Box::new(move || {
            drop(stop);
            drop(output);
        })));
        Ok(stream)
    }

    /// A reader's error on the program's output, said as such: for JSON lines, the first line
    /// that is not a JSON object, found by reading the file again (only when it failed).
    fn explain(&self, e: SourceError, output: &Output) -> SourceError {
        let SourceError::Query(m) = e else { return e };
        if !(m.contains("JSON") || m.contains("CSV") || m.contains("Parquet") || m.contains("line")) {
            return SourceError::Query(m);
        }
        let first = m.lines().next().unwrap_or_default().to_string();
        let why = match self.config.format {
            CommandFormat::Jsonl => bad_json_line(&output.data).unwrap_or(first),
            _ => first,
        };
        self.fail(format!("its output is not valid {}: {why}", self.format_name()))
    }

    fn format_name(&self) -> &'static str {
        match self.config.format {
            CommandFormat::Jsonl => "JSON lines",
            CommandFormat::Csv => "CSV",
            CommandFormat::Parquet => "Parquet",
        }
    }
}

/// "line N is not a JSON object (...)" for the first such line of `path`.
fn bad_json_line(path: &Path) -> Option<String> {
    use std::io::BufRead;
    let file = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    for (n, line) in file.lines().enumerate() {
        let line = line.ok()?;
        if line.trim().is_empty() {
            continue;
        }
        if let Err(e) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line) {
            let shown: String = line.chars().take(80).collect();
            return Some(format!("line {} is not a JSON object (`{shown}`): {e}", n + 1));
        }
    }
    None
}

/// "; its stderr ended with: ..." from the kept lines, or nothing.
fn said(tail: &StderrTail) -> String {
    let lines = tail.lines();
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its stderr ended with:\n  {}", lines.join("\n  "))
    }
}
