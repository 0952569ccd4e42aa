//! `sluice log NAME [--key K] [--since T]`: the change log of one sync, newest first.

use super::{fail, load, open_engine, output, Cli, Failure, EXIT_INVALID, EXIT_OK, EXIT_SYNC_FAILED};
use crate::project::Project;
use crate::state::ChangeQuery;

pub async fn log(cli: &Cli, name: &str, key: Option<&str>, since: Option<&str>, limit: i64) -> Result<u8, Failure> {
    let project = load(cli)?;
    let query = query(&project, name, key, since, limit, "--").map_err(|m| fail(EXIT_INVALID, m))?;
    let engine = open_engine(&project).await?;
    let changes = engine.store.changes(name, &query).await.map_err(|e| fail(EXIT_SYNC_FAILED, e.to_string()))?;
    engine.store.close().await;
    output::changes(name, &changes, cli.json);
    Ok(EXIT_OK)
}

/// The change log query a person asked for (`flag` prefixes the settings in errors: `--` for
/// the CLI). A sync whose file is gone or broken still has its log: the key columns are then
/// unknown, and the key must be a JSON object.
pub(crate) fn query(
    project: &Project,
    name: &str,
    key: Option<&str>,
    since: Option<&str>,
    limit: i64,
    flag: &str,
) -> Result<ChangeQuery, String> {
    let key_columns = project.syncs.iter().find(|s| s.name() == name).map(|s| s.file.primary_key.value.clone());
    let query = ChangeQuery::parse(key, since, key_columns.as_deref(), flag)?;
    Ok(ChangeQuery { limit: limit.max(1), ..query })
}
