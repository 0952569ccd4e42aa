//! dbt: a model may say `{{ ref('customers') }}` (or `ref("customers")`, or
//! `ref('package', 'customers')`), read from the dbt project's `target/manifest.json` (`[dbt]
//! manifest` in sluice.toml, per environment) as the relation dbt built for that model. And
//! `--select tag:NAME` / `--select dbt:MODEL` pick the syncs over dbt models with a tag, or
//! downstream of a model, for a run right after `dbt build`.
//!
//! The manifest's shape is dbt's (https://docs.getdbt.com/reference/artifacts/manifest-json,
//! schema v7 to v12): `nodes` by unique id, each with `resource_type`, `name`, `package_name`,
//! `relation_name` (`"db"."schema"."alias"` as the adapter quotes it; null for an ephemeral
//! model, which has no relation), `tags` and `depends_on.nodes`. Only models are referable.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;

/// The parts of manifest.json sluice reads.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    nodes: HashMap<String, Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    resource_type: String,
    name: String,
    #[serde(default)]
    package_name: String,
    #[serde(default)]
    relation_name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    depends_on: DependsOn,
}

#[derive(Debug, Default, Deserialize)]
struct DependsOn {
    #[serde(default)]
    nodes: Vec<String>,
}

/// One `ref(...)` in a model: where it is (byte range of the whole `{{ ... }}`) and what it names.
#[derive(Debug, PartialEq, Eq)]
pub struct Ref {
    pub start: usize,
    pub end: usize,
    pub package: Option<String>,
    pub model: String,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the dbt manifest {}: {e} (run `dbt parse` or `dbt build` first)", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not a dbt manifest.json: {e}", path.display()))
    }

    /// The unique id of the model `reference` names, or why there is none.
    fn find(&self, reference: &Ref) -> Result<(&str, &Node), String> {
        let mut found: Vec<(&String, &Node)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.resource_type == "model" && n.name == reference.model)
            .filter(|(_, n)| reference.package.as_ref().is_none_or(|p| *p == n.package_name))
            .collect();
        found.sort_by_key(|(id, _)| id.as_str());
        match found.as_slice() {
            [(id, node)] => Ok((id.as_str(), node)),
            [] => {
                let names = self.nodes.values().filter(|n| n.resource_type == "model").map(|n| n.name.as_str());
                let hint = super::did_you_mean(&reference.model, names).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                Err(format!("`ref('{}')`: the dbt manifest has no model of that name{hint}", reference.model))
            }
            many => Err(format!(
                "`ref('{}')` names a model of {} packages ({}): write `ref('package', '{}')`",
                reference.model,
                many.len(),
                many.iter().map(|(_, n)| n.package_name.as_str()).collect::<Vec<_>>().join(", "),
                reference.model
            )),
        }
    }

    /// `model` with its `refs` (as [`refs`] found them) replaced by their relations, and the
    /// unique ids of the models it reads; or the first bad reference, with its byte offset.
    pub fn resolve(&self, model: &str, refs: &[Ref]) -> Result<(String, Vec<String>), (usize, String)> {
        let mut out = String::with_capacity(model.len());
        let mut ids = Vec::new();
        let mut at = 0;
        for r in refs {
            let (id, node) = self.find(r).map_err(|m| (r.start, m))?;
            let relation = node.relation_name.as_deref().ok_or_else(|| {
                (
                    r.start,
                    format!(
                        "`ref('{}')` is an ephemeral dbt model: it has no relation to read (materialize it as a view or table)",
                        r.model
                    ),
                )
            })?;
            out.push_str(&model[at..r.start]);
            out.push_str(relation);
            at = r.end;
            ids.push(id.to_string());
        }
        out.push_str(&model[at..]);
        Ok((out, ids))
    }

    /// The models with `tag`.
    pub fn tagged(&self, tag: &str) -> BTreeSet<String> {
        self.nodes.iter().filter(|(_, n)| n.resource_type == "model" && n.tags.iter().any(|t| t == tag)).map(|(id, _)| id.clone()).collect()
    }

    /// The model named `name` and every model downstream of it (dbt's `name+`); `None` when
    /// there is no such model.
    pub fn downstream(&self, name: &str) -> Option<BTreeSet<String>> {
        let start: Vec<&String> =
            self.nodes.iter().filter(|(_, n)| n.resource_type == "model" && n.name == name).map(|(id, _)| id).collect();
        if start.is_empty() {
            return None;
        }
        let mut found: BTreeSet<String> = start.iter().map(|s| s.to_string()).collect();
        loop {
            let more: Vec<String> = self
                .nodes
                .iter()
                .filter(|(id, n)| {
                    n.resource_type == "model" && !found.contains(*id) && n.depends_on.nodes.iter().any(|d| found.contains(d))
                })
                .map(|(id, _)| id.clone())
                .collect();
            if more.is_empty() {
                return Some(found);
            }
            found.extend(more);
        }
    }
}

/// Byte offsets of each `{{` that opens a `ref(` in SQL code: not in a string, a quoted name, a
/// dollar-quoted string or a comment (`'Hi {{ first_name }}'` is data, `-- {{ ref('old') }}` a
/// comment). Any other `{{` (a Postgres array literal, a template the model returns) is left as
/// it is.
fn openers(model: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < model.len() {
        let rest = &model[i..];
        let skip = match super::sqltext::skipped(rest) {
            0 if rest.starts_with("{{") => {
                if rest[2..].trim_start().strip_prefix("ref").is_some_and(|r| r.trim_start().starts_with('(')) {
                    out.push(i);
                }
                2
            }
            // To the next byte that may start something (all ASCII), past this character whole.
            0 => {
                let n = rest.chars().next().map_or(1, char::len_utf8);
                rest[n..].find(|c| c == '{' || super::sqltext::STARTS.contains(&c)).map(|e| e + n).unwrap_or(rest.len())
            }
            n => n,
        };
        i += skip;
    }
    out
}

/// Every `{{ ref(...) }}` in the model's SQL code, in order.
pub fn refs(model: &str) -> Result<Vec<Ref>, (usize, String)> {
    let mut out = Vec::new();
    for open in openers(model) {
        let close = model[open..].find("}}").map(|i| open + i + 2).ok_or((open, "a `{{ ref(` is never closed with `}}`".to_string()))?;
        let inner = model[open + 2..close - 2].trim();
        let args = inner
            .strip_prefix("ref")
            .map(str::trim_start)
            .and_then(|a| a.strip_prefix('('))
            .and_then(|a| a.trim_end().strip_suffix(')'))
            .ok_or((open, format!("`{{{{ {inner} }}}}`: write `{{{{ ref('model') }}}}`")))?;
        let names = args
            .split(',')
            .map(|a| {
                let a = a.trim();
                let quoted = (a.starts_with('\'') && a.ends_with('\'')) || (a.starts_with('"') && a.ends_with('"'));
                (quoted && a.len() >= 2).then(|| a[1..a.len() - 1].to_string())
            })
            .collect::<Option<Vec<String>>>()
            .filter(|n| !n.is_empty() && n.len() <= 2 && n.iter().all(|s| !s.is_empty()))
            .ok_or((open, format!("`{{{{ {inner} }}}}`: write `ref('model')` or `ref('package', 'model')`, names quoted")))?;
        let (package, model_name) = match names.as_slice() {
            [m] => (None, m.clone()),
            [p, m] => (Some(p.clone()), m.clone()),
            _ => unreachable!("checked above"),
        };
        out.push(Ref { start: open, end: close, package, model: model_name });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "metadata": { "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json" },
            "nodes": {
                "model.shop.stg_customers": { "resource_type": "model", "name": "stg_customers", "package_name": "shop",
                    "relation_name": "\"dev\".\"main\".\"stg_customers\"", "tags": ["nightly"], "depends_on": { "nodes": [] } },
                "model.shop.customers": { "resource_type": "model", "name": "customers", "package_name": "shop",
                    "relation_name": "\"dev\".\"main\".\"customers\"", "tags": ["crm"],
                    "depends_on": { "nodes": ["model.shop.stg_customers"] } },
                "model.shop.scratch": { "resource_type": "model", "name": "scratch", "package_name": "shop", "relation_name": null },
                "test.shop.not_null_customers_id.1": { "resource_type": "test", "name": "customers", "package_name": "shop" },
                "model.other.orders": { "resource_type": "model", "name": "orders", "package_name": "other",
                    "relation_name": "\"dev\".\"other\".\"orders\"" }
            }
        }))
        .unwrap()
    }

    fn resolved(m: &Manifest, model: &str) -> Result<(String, Vec<String>), (usize, String)> {
        m.resolve(model, &refs(model)?)
    }

    #[test]
    fn refs_become_the_relations_dbt_built() {
        let m = manifest();
        let (sql, ids) =
            resolved(&m, "SELECT * FROM {{ ref('customers') }} c JOIN {{ref(\"shop\", \"stg_customers\")}} s USING (id)").unwrap();
        assert_eq!(sql, "SELECT * FROM \"dev\".\"main\".\"customers\" c JOIN \"dev\".\"main\".\"stg_customers\" s USING (id)");
        assert_eq!(ids, ["model.shop.customers", "model.shop.stg_customers"]);
    }

    #[test]
    fn unknown_ephemeral_and_other_jinja_are_errors_with_their_offset() {
        let m = manifest();
        let (at, e) = resolved(&m, "SELECT * FROM {{ ref('custmers') }}").unwrap_err();
        assert_eq!(at, 14);
        assert!(e.contains("no model of that name (did you mean `customers`?)"), "{e}");
        assert!(resolved(&m, "SELECT * FROM {{ ref('scratch') }}").unwrap_err().1.contains("ephemeral"));
        assert!(resolved(&m, "SELECT * FROM {{ ref(customers) }}").unwrap_err().1.contains("names quoted"));
        assert!(resolved(&m, "SELECT * FROM {{ ref('customers')").unwrap_err().1.contains("never closed"));
    }

    #[test]
    fn braces_in_strings_comments_and_other_jinja_are_left_alone() {
        let m = manifest();
        for sql in [
            "SELECT id, 'Hi {{ first_name }}' AS greeting FROM users",
            "SELECT '{{1,2},{3,4}}'::int[] AS a -- {{ ref('old') }}",
            "SELECT 1 /* {{ ref('gone') }} */, \"{{ ref('x') }}\" FROM t",
            "SELECT '{{ var(''x'') }}', 'it''s {{ ref(''q'') }}' FROM é",
            "SELECT $$ {{ ref('x') }} $$ AS a, $t$ {{ ref('y') }} $t$ AS b FROM t",
        ] {
            assert!(refs(sql).unwrap().is_empty(), "{sql}");
            assert_eq!(resolved(&m, sql).unwrap().0, sql);
        }
        let (sql, _) = resolved(&m, "SELECT 'é {{ ref(''no'') }}', c.* FROM {{ ref('customers') }} c").unwrap();
        assert_eq!(sql, "SELECT 'é {{ ref(''no'') }}', c.* FROM \"dev\".\"main\".\"customers\" c");
    }

    #[test]
    fn selection_by_tag_and_downstream() {
        let m = manifest();
        assert_eq!(m.tagged("crm").into_iter().collect::<Vec<_>>(), ["model.shop.customers"]);
        let down = m.downstream("stg_customers").unwrap();
        assert_eq!(down.into_iter().collect::<Vec<_>>(), ["model.shop.customers", "model.shop.stg_customers"]);
        assert!(m.downstream("nope").is_none());
    }
}
