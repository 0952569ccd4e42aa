//! `--env NAME`: an `[env.NAME]` overlay of sluice.toml (state, sources, destinations) replaces
//! the base's tables of those names, as dbt's targets do; the default is the config's
//! `environment`; only the chosen environment's `${VAR}`s must be set.

use crate::support;

use support::{sluice_cli, Env, Sink, SourceKind, StateKind};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test]
async fn an_environment_sends_to_its_own_destinations_and_keeps_its_own_state() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id, i * 2 AS v FROM range(1, 6) r(i)").await;
    let prod = Sink::start().await;
    env.append_config(&format!(
        "\n[env.prod.state]\nurl = \"sqlite://.sluice/prod/state.db\"\n\
         [env.prod.destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n\
         [env.staging.sources.wh]\nkind = \"postgres\"\nurl = \"${{SLUICE_TEST_STAGING_PG_NOT_SET}}\"\n",
        prod.url
    ));
    env.write_sync("scores", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id, v FROM t");

    let out = sluice_cli(env.root(), &["run", "--env", "prod", "--json"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["environment"], "prod");
    assert_eq!((prod.rows().len(), env.sink.rows().len()), (5, 0), "prod's destination, not the base's");
    assert!(env.root().join(".sluice/prod/state.db").exists(), "prod's own state");
    assert!(!env.root().join(".sluice/state.db").exists(), "the base state untouched");

    // No --env and no `environment`: the config as written, with its own state (all 5 again).
    let out = sluice_cli(env.root(), &["run"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!((prod.rows().len(), env.sink.rows().len()), (5, 5));
    // prod's state remembers what prod got: nothing to send.
    let out = sluice_cli(env.root(), &["run", "--json"], &[("SLUICE_ENV", "prod")]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(prod.rows().len(), 5);

    let out = sluice_cli(env.root(), &["check", "--env", "prod"], &[]).await;
    assert!(text(&out).contains("environment: prod"), "{}", text(&out));

    // Mistakes: a misspelt environment, and a chosen environment's unset variable.
    let out = sluice_cli(env.root(), &["run", "--env", "prd"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out);
    assert!(said.contains("--env names environment `prd`, which sluice.toml does not define (defined: `prod`, `staging`)"), "{said}");
    assert!(said.contains("did you mean `prod`?"), "{said}");
    let out = sluice_cli(env.root(), &["check", "--env", "staging"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("SLUICE_TEST_STAGING_PG_NOT_SET, which is not set"), "{}", text(&out));
}

#[tokio::test]
async fn the_default_environment_is_stated_in_the_config() {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id FROM range(1, 4) r(i)").await;
    let dev = Sink::start().await;
    let config = std::fs::read_to_string(env.root().join("sluice.toml")).unwrap();
    let overlay = format!("\n[env.dev.destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n", dev.url);
    std::fs::write(env.root().join("sluice.toml"), format!("environment = \"dev\"\n{config}{overlay}")).unwrap();
    env.write_sync("ids", "destination = \"hook\"\nprimary_key = \"id\"", "SELECT id FROM t");
    let out = sluice_cli(env.root(), &["run"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!((dev.rows().len(), env.sink.rows().len()), (3, 0));

    std::fs::write(env.root().join("sluice.toml"), format!("environment = \"qa\"\n{config}{overlay}")).unwrap();
    let out = sluice_cli(env.root(), &["check"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("sluice.toml:1: `environment` names environment `qa`"), "{}", text(&out));
}
