//! dbt: `{{ ref('model') }}` in a model reads the relation dbt built (from `[dbt] manifest`, per
//! environment); an unknown ref fails `check` at its line; `--select tag:NAME` and
//! `--select dbt:MODEL` run the syncs over those dbt models, for a run right after `dbt build`.

use crate::support;

use support::{sluice_cli, Env, SourceKind, StateKind};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// A manifest.json as dbt writes it (schema v12), with the models built into `schema`.
fn manifest(schema: &str) -> String {
    serde_json::json!({
        "metadata": { "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json", "dbt_version": "1.9.0" },
        "nodes": {
            "model.shop.stg_customers": { "resource_type": "model", "name": "stg_customers", "package_name": "shop",
                "relation_name": format!("\"{schema}\".\"stg_customers\""), "tags": [], "depends_on": { "nodes": [] } },
            "model.shop.customers": { "resource_type": "model", "name": "customers", "package_name": "shop",
                "relation_name": format!("\"{schema}\".\"customers\""), "tags": ["crm"],
                "depends_on": { "nodes": ["model.shop.stg_customers"] } },
            "model.shop.orders": { "resource_type": "model", "name": "orders", "package_name": "shop",
                "relation_name": format!("\"{schema}\".\"orders\""), "tags": ["finance"], "depends_on": { "nodes": [] } }
        },
        "sources": {}
    })
    .to_string()
}

#[tokio::test]
async fn refs_read_what_dbt_built_and_select_picks_syncs_by_tag_and_lineage() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec(
        "CREATE SCHEMA dev; CREATE TABLE dev.customers AS SELECT i AS id, i * 2 AS v FROM range(1, 4) r(i);
         CREATE TABLE dev.orders AS SELECT i AS id FROM range(1, 3) r(i);
         CREATE SCHEMA prod; CREATE TABLE prod.customers AS SELECT i AS id, i * 3 AS v FROM range(1, 6) r(i);",
    )
    .await;
    for (dir, schema) in [("target", "dev"), ("target-prod", "prod")] {
        std::fs::create_dir_all(env.root().join("dbt").join(dir)).unwrap();
        std::fs::write(env.root().join("dbt").join(dir).join("manifest.json"), manifest(schema)).unwrap();
    }
    let config = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap();
    std::fs::write(
        env.root().join("sluice.toml"),
        format!(
            "[dbt]\nmanifest = \"dbt/target/manifest.json\"\n\n{config}\n\
             [env.prod.dbt]\nmanifest = \"dbt/target-prod/manifest.json\"\n[env.prod.state]\nurl = \"sqlite://.sluice/prod/state.db\"\n"
        ),
    )
    .unwrap();
    let header = "destination = \"hook\"\nprimary_key = \"id\"";
    env.write_sync("crm_customers", header, "SELECT id, v\nFROM {{ ref('customers') }}");
    env.write_sync("finance_orders", header, "SELECT id FROM {{ ref(\"shop\", \"orders\") }}");

    // Right after `dbt build --select tag:crm`: only the syncs over those models.
    let out = sluice_cli(env.root(), &["run", "--select", "tag:crm", "--json"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ran: Vec<&str> = report["syncs"].as_array().unwrap().iter().map(|r| r["sync"].as_str().unwrap()).collect();
    assert_eq!(ran, ["crm_customers"]);
    assert_eq!(env.sink.rows().len(), 3, "dev.customers' rows");
    // Downstream of a model: stg_customers -> customers -> crm_customers.
    let out = sluice_cli(env.root(), &["plan", "--select", "dbt:stg_customers", "--json"], &[]).await;
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["syncs"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["syncs"][0]["sync"], "crm_customers");
    // A selector that picks nothing is not an error: nothing to do.
    let out = sluice_cli(env.root(), &["run", "--select", "tag:marketing"], &[]).await;
    assert!(out.status.success() && text(&out).contains("nothing to do"), "{}", text(&out));
    let out = sluice_cli(env.root(), &["run", "--select", "dbt:nope"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("the dbt manifest has no model `nope`"), "{}", text(&out));

    // In prod, the same ref reads the prod target's relation.
    let out = sluice_cli(env.root(), &["run", "crm_customers", "--env", "prod", "--json"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["syncs"][0]["rows_read"], 5, "prod.customers' rows");

    // A model dbt renamed away: the selector cannot tell whether it would have picked the sync,
    // so the run says so and exits 2 rather than "nothing to do".
    env.write_sync("crm_leads", header, "SELECT id FROM {{ ref('leads') }}");
    let out = sluice_cli(env.root(), &["run", "--select", "tag:crm"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("invalid sync: syncs/crm_leads.sql:5: `ref('leads')`"), "{}", text(&out));
}

#[tokio::test]
async fn an_unknown_ref_or_a_missing_manifest_fails_check_at_its_line() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    let header = "destination = \"hook\"\nprimary_key = \"id\"";
    env.write_sync("crm", header, "SELECT id\nFROM {{ ref('custmers') }}");
    // Braces in data are data: no dbt needed.
    env.write_sync("greeting", header, "SELECT 1 AS id, 'Hi {{ first_name }}' AS greeting -- {{ ref('x') }}");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("syncs/crm.sql:6: the model uses `{{ ref(...) }}` but sluice.toml has no [dbt] manifest"),
        "{}",
        text(&out)
    );
    assert!(text(&out).lines().any(|l| l.starts_with("ok") && l.contains("greeting")), "{}", text(&out));

    std::fs::create_dir_all(env.root().join("target")).unwrap();
    std::fs::write(env.root().join("target/manifest.json"), manifest("main")).unwrap();
    env.append_config("\n[dbt]\nmanifest = \"target/manifest.json\"\n");
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out);
    assert!(said.contains("syncs/crm.sql:6: `ref('custmers')`: the dbt manifest has no model of that name"), "{said}");
    assert!(said.contains("did you mean `customers`?"), "{said}");
}
