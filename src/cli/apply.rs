//! Saved plans: `sluice plan --out FILE` writes the plan file, `sluice apply FILE` runs exactly
//! its changes or refuses. The file's shape is docs/saved-plans.md's, kept stable (`sluice_plan`
//! is its version); the engine records and compares (`engine::saved`).

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{fail, output, Cli, Failure, EXIT_INVALID, EXIT_SYNC_FAILED};
use crate::destinations::Op;
use crate::engine::saved::{hex128, hex128_opt, Expected, Recorder, SyncExpected};
use crate::engine::{Engine, RunOptions, SyncReport};
use crate::project::Project;

/// The plan file's version: `apply` refuses another.
const VERSION: u32 = 1;

/// Changed rows looked up per query for their values before.
const CHUNK: usize = 500;

/// What `apply` reads of a plan file (the values shown to people are not needed again).
#[derive(Deserialize)]
struct PlanFile {
    sluice_plan: u32,
    created_at: String,
    environment: Option<String>,
    full_resync: bool,
    syncs: Vec<PlannedSync>,
}

#[derive(Deserialize)]
struct PlannedSync {
    sync: String,
    changes: Vec<PlannedChange>,
}

#[derive(Deserialize)]
struct PlannedChange {
    #[serde(with = "hex128")]
    key_hash: u128,
    op: Op,
    #[serde(default, with = "hex128_opt")]
    fingerprint: Option<u128>,
}

/// One change as the plan file shows it.
#[derive(Serialize)]
struct Entry {
    key: IndexMap<String, serde_json::Value>,
    #[serde(with = "hex128")]
    key_hash: u128,
    op: Op,
    change: String,
    #[serde(with = "hex128_opt", skip_serializing_if = "Option::is_none")]
    fingerprint: Option<u128>,
    /// A changed row's fields as last written, where the change log has them (`log_values`).
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<serde_json::Value>,
}

/// Writes the plan file from a plan's reports and recorded changes: to `FILE.tmp`, then renamed,
/// so a plan cut short never leaves a file `apply` would take. A plan with a failed sync writes
/// nothing: half a plan is not what was reviewed.
pub async fn write(
    engine: &Engine,
    project: &Project,
    reports: &[SyncReport],
    recorder: &Recorder,
    full_resync: bool,
    out: &Path,
) -> Result<u64, String> {
    if let Some(r) = reports.iter().find(|r| !r.outcome().got_through()) {
        return Err(format!(
            "`{}` could not be planned, so no plan was written to {} (its error is above: fix it and plan again)",
            r.sync,
            out.display()
        ));
    }
    let tmp = out.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let io = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    let mut w = BufWriter::new(file);
    let head = serde_json::json!({
        "sluice_plan": VERSION,
        "created_at": crate::state::stamp(chrono::Utc::now()),
        "environment": project.config.active_env,
        "full_resync": full_resync,
    });
    // The head's fields, then `syncs`, written by hand so changes stream to the file.
    let head = head.to_string();
    write!(w, "{},\n\"syncs\": [", head.strip_suffix('}').unwrap_or(&head)).map_err(io)?;
    let mut total = 0;
    for (i, report) in reports.iter().enumerate() {
        let sync = project.syncs.iter().find(|s| s.name() == report.sync);
        let log_values = sync.is_some_and(|s| s.file.log_values);
        let section = serde_json::json!({
            "sync": report.sync,
            "destination": sync.map(|s| s.destination.clone()),
            "counts": report.counts,
            "to_send": report.to_send,
            "warnings": report.warnings,
        });
        let section = section.to_string();
        write!(w, "{}\n{},\n\"changes\": [", if i > 0 { "," } else { "" }, section.strip_suffix('}').unwrap_or(&section)).map_err(io)?;
        let mut recorded = recorder.take(&report.sync)?;
        let mut first = true;
        loop {
            let chunk = recorded.next_chunk(CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            let mut before = HashMap::new();
            if log_values {
                let changed: Vec<String> = chunk.iter().filter(|p| p.change == "changed").map(|p| p.key.clone()).collect();
                before = engine.store.last_values(&report.sync, &changed).await.map_err(|e| e.to_string())?;
            }
            for p in chunk {
                let entry = Entry {
                    key: serde_json::from_str(&p.key).unwrap_or_default(),
                    key_hash: p.key_hash,
                    op: p.op,
                    before: if p.change == "changed" { before.remove(&p.key) } else { None },
                    change: p.change,
                    fingerprint: p.fingerprint,
                    after: p.after,
                };
                w.write_all(if first { b"\n" } else { b",\n" }).map_err(io)?;
                serde_json::to_writer(&mut w, &entry).map_err(|e| io(e.into()))?;
                first = false;
                total += 1;
            }
        }
        w.write_all(b"\n]}").map_err(io)?;
    }
    w.write_all(b"\n]}\n").map_err(io)?;
    w.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    std::fs::rename(&tmp, out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(total)
}

/// `sluice apply FILE`: reads the plan, checks it may still be applied (version, environment,
/// age), then runs its syncs, each refusing (nothing sent) unless it finds exactly the plan's
/// changes.
pub async fn apply(
    cli: &Cli,
    file: &Path,
    max_age: &str,
    allow_deletes: bool,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<u8, Failure> {
    let shown = file.display();
    let opened = std::fs::File::open(file).map_err(|e| fail(EXIT_INVALID, format!("cannot read the plan {shown}: {e}")))?;
    // Read as a stream: the values shown to people are skipped, not held.
    let plan: PlanFile = serde_json::from_reader(std::io::BufReader::new(opened))
        .map_err(|e| fail(EXIT_INVALID, format!("{shown}: not a sluice plan ({e}); make one with `sluice plan --out {shown}`")))?;
    if plan.sluice_plan != VERSION {
        return Err(fail(
            EXIT_INVALID,
            format!("{shown}: a plan of version {} (this sluice reads version {VERSION}): make a new plan", plan.sluice_plan),
        ));
    }
    let max_age = humantime::parse_duration(max_age)
        .map_err(|e| fail(EXIT_INVALID, format!("--max-age `{max_age}`: {e} (a duration: \"30m\", \"2h\", \"1d\")")))?;
    let made = chrono::DateTime::parse_from_rfc3339(&plan.created_at).map_err(|e| {
        fail(EXIT_INVALID, format!("{shown}: created_at `{}`: {e} (an edited or broken plan: make a new one)", plan.created_at))
    })?;
    let age = (chrono::Utc::now() - made.to_utc()).to_std().unwrap_or_default();
    if age > max_age {
        return Err(fail(
            EXIT_SYNC_FAILED,
            format!(
                "{shown} was made {} ago, longer than --max-age {}: nothing was sent. Make a new plan and review it",
                humantime::format_duration(std::time::Duration::from_secs(age.as_secs())),
                humantime::format_duration(max_age)
            ),
        ));
    }
    let project = super::load(cli)?;
    if project.config.active_env != plan.environment {
        let name = |e: &Option<String>| e.clone().unwrap_or_else(|| "no environment".into());
        return Err(fail(
            EXIT_INVALID,
            format!(
                "{shown} was made for {} and this is {}: nothing was sent (pass the plan's --env, or make a plan here)",
                name(&plan.environment),
                name(&project.config.active_env)
            ),
        ));
    }
    let mut expected = Expected::default();
    for sync in &plan.syncs {
        let changes = sync.changes.iter().map(|c| (c.key_hash, (c.op, c.fingerprint))).collect();
        expected.syncs.insert(sync.sync.clone(), SyncExpected { changes, planned_at: plan.created_at.clone() });
    }
    let names: Vec<String> = plan.syncs.iter().map(|s| s.sync.clone()).collect();
    if names.is_empty() {
        output::say!("{shown} plans no sync: nothing to do");
        return Ok(super::EXIT_OK);
    }
    let opts = RunOptions {
        full_resync: plan.full_resync,
        allow_deletes,
        cancel,
        started_by: "`sluice apply`".into(),
        expect: Some(Arc::new(expected)),
        ..Default::default()
    };
    super::run_in(cli, project, &names, &[], opts, super::Ending::default()).await
}
