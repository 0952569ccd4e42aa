//! `sluice log NAME [--key K] [--since T]`: the change log of one sync, newest first.

use super::{fail, load, open_engine, output, Cli, Failure, EXIT_INVALID, EXIT_OK, EXIT_SYNC_FAILED};
use crate::state::ChangeQuery;

pub async fn log(cli: &Cli, name: &str, key: Option<&str>, since: Option<&str>, limit: i64) -> Result<u8, Failure> {
    let project = load(cli)?;
    // A sync whose file is gone or broken still has its log: the key columns are then unknown,
    // and --key must be a JSON object.
    let key_columns = project.syncs.iter().find(|s| s.name() == name).map(|s| s.file.primary_key.value.clone());
    let keys = match key {
        None => Vec::new(),
        Some(k) => key_candidates(k, key_columns.as_deref()).map_err(|m| fail(EXIT_INVALID, m))?,
    };
    let since = since.map(parse_since).transpose().map_err(|m| fail(EXIT_INVALID, m))?;
    let engine = open_engine(&project).await?;
    let query = ChangeQuery { keys, since, limit: limit.max(1) };
    let changes = engine.store.changes(name, &query).await.map_err(|e| fail(EXIT_SYNC_FAILED, e.to_string()))?;
    engine.store.close().await;
    output::changes(name, &changes, cli.json);
    Ok(EXIT_OK)
}

/// `--since`: an RFC 3339 time, or a duration back from now ("2h", "7d").
fn parse_since(text: &str) -> Result<String, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(crate::state::stamp(t.with_timezone(&chrono::Utc)));
    }
    let back = humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        .ok_or_else(|| format!("--since {text}: give a time (2026-11-25T09:00:00Z) or a duration back from now (30m, 2h, 7d)"))?;
    Ok(crate::state::stamp(back))
}

/// The stored forms (`{"id":42}`) a `--key` may mean: `42` for a one-column key,
/// `account=7,region=EU` for a composite one, or a JSON object. A value that reads as a number
/// or a boolean may have been stored as one or as text, so both are looked for.
fn key_candidates(text: &str, columns: Option<&[String]>) -> Result<Vec<String>, String> {
    let pairs: Vec<(String, Vec<serde_json::Value>)> = if text.trim_start().starts_with('{') {
        let object: indexmap::IndexMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("--key {text}: not a JSON object ({e})"))?;
        object.into_iter().map(|(k, v)| (k, vec![v])).collect()
    } else if text.contains('=') {
        text.split(',')
            .map(|part| {
                let (k, v) = part.split_once('=').ok_or_else(|| format!("--key {text}: write col=value,col=value"))?;
                Ok((k.trim().to_string(), readings(v.trim())))
            })
            .collect::<Result<_, String>>()?
    } else {
        match columns {
            Some([only]) => vec![(only.clone(), readings(text))],
            Some(cols) => {
                return Err(format!(
                    "--key {text}: the key has columns {}: write {}",
                    cols.join(", "),
                    cols.iter().map(|c| format!("{c}=...")).collect::<Vec<_>>().join(",")
                ))
            }
            None => return Err(format!("--key {text}: no sync file names this sync's key columns: write --key '{{\"column\": value}}'")),
        }
    };
    // In key-column order when the sync is known, as the log stores it.
    let mut pairs = pairs;
    if let Some(cols) = columns {
        if let Some(missing) = cols.iter().find(|c| !pairs.iter().any(|(k, _)| k == *c)) {
            return Err(format!("--key {text}: key column `{missing}` is missing (the key is {})", cols.join(", ")));
        }
        pairs.sort_by_key(|(k, _)| cols.iter().position(|c| c == k).unwrap_or(usize::MAX));
    }
    let mut out = vec![indexmap::IndexMap::<String, serde_json::Value>::new()];
    for (column, values) in pairs {
        let mut grown = Vec::new();
        for partial in &out {
            for v in &values {
                let mut next = partial.clone();
                next.insert(column.clone(), v.clone());
                grown.push(next);
            }
        }
        out = grown;
    }
    Ok(out.iter().map(|m| serde_json::to_string(m).unwrap_or_default()).collect())
}

/// What a typed-in value may have been stored as.
fn readings(v: &str) -> Vec<serde_json::Value> {
    let mut out = vec![serde_json::Value::String(v.to_string())];
    if let Ok(i) = v.parse::<i64>() {
        out.push(i.into());
    } else if let Some(f) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        out.push(serde_json::Value::Number(f));
    } else if let Ok(b) = v.parse::<bool>() {
        out.push(b.into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_numbers_and_text_in_key_order() {
        let one = vec!["id".to_string()];
        assert_eq!(key_candidates("42", Some(&one)).unwrap(), [r#"{"id":"42"}"#, r#"{"id":42}"#]);
        let two = vec!["account".to_string(), "region".to_string()];
        assert_eq!(key_candidates("region=EU,account=x", Some(&two)).unwrap(), [r#"{"account":"x","region":"EU"}"#]);
        assert!(key_candidates("EU", Some(&two)).unwrap_err().contains("account=...,region=..."));
        assert_eq!(key_candidates(r#"{"id": 7}"#, None).unwrap(), [r#"{"id":7}"#]);
    }
}
