//! Saved plans: `sluice plan --out FILE` records every change (key, op, fingerprint, values;
//! with `log_values` a changed row's values before), and `sluice apply FILE` sends exactly those
//! or refuses, sending nothing: when the model's changes are no longer the plan's, when the plan
//! is older than `--max-age`, or was made for another environment.

use crate::support;

use support::{sluice_cli, Env, SourceKind, StateKind};

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The sink's rows as (op, id), sorted.
fn sent(env: &Env) -> Vec<(String, i64)> {
    let mut rows: Vec<_> = env.sink.take().into_iter().map(|r| (r.op, r.key["id"].as_i64().unwrap())).collect();
    rows.sort();
    rows
}

async fn project() -> Env {
    let env = Env::new(SourceKind::DuckDb, StateKind::Sqlite).await;
    env.exec("CREATE TABLE t AS SELECT i AS id, i * 2 AS v, 'n' || i AS name FROM range(1, 11) r(i)").await;
    let header = "destination = \"hook\"\nprimary_key = \"id\"\nmode = \"mirror\"\nlog_values = true";
    env.write_sync("people", header, "SELECT id, v, name FROM t");
    let out = sluice_cli(env.root(), &["run"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sent(&env).len(), 10);
    env
}

#[tokio::test]
async fn apply_sends_exactly_the_saved_plan_and_refuses_it_twice() {
    let env = project().await;
    env.exec("UPDATE t SET v = 100 WHERE id = 1").await;
    env.exec("UPDATE t SET name = 'renamed' WHERE id = 2").await;
    env.exec("INSERT INTO t VALUES (11, 22, 'n11')").await;
    env.exec("DELETE FROM t WHERE id = 10").await;
    let plan = env.root().join("plan.json");
    let shown = plan.to_str().unwrap();

    // The plan shows a changed row's fields that changed, before -> after.
    let out = sluice_cli(env.root(), &["plan", "people", "--out", shown], &[]).await;
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(r#"{"id":1} {v: 2 -> 100}"#), "{said}");
    assert!(said.contains(r#"{"id":2} {name: "n2" -> "renamed"}"#), "{said}");
    assert!(said.contains("plan saved to ") && said.contains(": 4 change(s)"), "{said}");
    assert!(sent(&env).is_empty(), "a plan sends nothing");

    // The file names every change, with its values.
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(file["sluice_plan"], 1);
    let changes = file["syncs"][0]["changes"].as_array().unwrap();
    let mut listed: Vec<(i64, &str, &str)> =
        changes.iter().map(|c| (c["key"]["id"].as_i64().unwrap(), c["op"].as_str().unwrap(), c["change"].as_str().unwrap())).collect();
    listed.sort();
    assert_eq!(listed, [(1, "upsert", "changed"), (2, "upsert", "changed"), (10, "delete", "removed"), (11, "upsert", "added")]);
    let one = changes.iter().find(|c| c["key"]["id"] == 1).unwrap();
    assert_eq!((one["before"]["v"].as_i64(), one["after"]["v"].as_i64()), (Some(2), Some(100)), "{one}");
    assert_eq!(one["fingerprint"].as_str().map(str::len), Some(32), "{one}");
    let added = changes.iter().find(|c| c["key"]["id"] == 11).unwrap();
    assert!(added.get("before").is_none() && added["after"]["name"] == "n11", "{added}");

    let out = sluice_cli(env.root(), &["apply", shown, "--json"], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json_of(&out)["syncs"][0]["written"], 4);
    assert_eq!(sent(&env), [("delete".into(), 10), ("upsert".into(), 1), ("upsert".into(), 2), ("upsert".into(), 11)]);

    // Applied once: the model's changes are gone, so the same plan is refused.
    let out = sluice_cli(env.root(), &["apply", shown], &[]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("0 of its 4 change(s) still hold; 0 now differ, 0 are new, 4 are gone; nothing was sent"), "{said}");
    assert!(sent(&env).is_empty());
}

#[tokio::test]
async fn apply_refuses_when_the_model_moved_on() {
    let env = project().await;
    env.exec("UPDATE t SET v = 100 WHERE id = 1").await;
    env.exec("UPDATE t SET v = 300 WHERE id = 3").await;
    let plan = env.root().join("plan.json");
    let shown = plan.to_str().unwrap();
    assert!(sluice_cli(env.root(), &["plan", "--out", shown], &[]).await.status.success());

    // Between plan and apply: one planned row changed again, one row is new, one went back.
    env.exec("UPDATE t SET v = 101 WHERE id = 1").await;
    env.exec("UPDATE t SET v = 6 WHERE id = 3").await;
    env.exec("UPDATE t SET v = 500 WHERE id = 5").await;
    let out = sluice_cli(env.root(), &["apply", shown, "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json_of(&out);
    let error = report["syncs"][0]["error"].as_str().unwrap();
    assert!(error.contains("0 of its 2 change(s) still hold; 1 now differ, 1 are new, 1 are gone; nothing was sent"), "{error}");
    assert!(sent(&env).is_empty(), "nothing of a drifted plan is sent");
    let status = json_of(&sluice_cli(env.root(), &["status", "people", "--json"], &[]).await);
    assert_eq!(status["syncs"][0]["runs"][0]["status"], "failed", "a refused apply is in the run history");

    // A new plan of the same changes applies.
    assert!(sluice_cli(env.root(), &["plan", "--out", shown], &[]).await.status.success());
    let out = sluice_cli(env.root(), &["apply", shown], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sent(&env), [("upsert".into(), 1), ("upsert".into(), 5)]);
}

#[tokio::test]
async fn apply_refuses_old_foreign_and_broken_plans() {
    let env = project().await;
    env.exec("UPDATE t SET v = 100 WHERE id = 1").await;
    let plan = env.root().join("plan.json");
    let shown = plan.to_str().unwrap();
    assert!(sluice_cli(env.root(), &["plan", "--out", shown], &[]).await.status.success());
    let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();

    // Made two hours ago: older than --max-age 1h (the default, 24h, lets it through).
    let made = chrono::Utc::now() - chrono::Duration::hours(2);
    file["created_at"] = made.to_rfc3339().into();
    std::fs::write(&plan, file.to_string()).unwrap();
    let out = sluice_cli(env.root(), &["apply", shown, "--max-age", "1h"], &[]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("was made 2h ago, longer than --max-age 1h: nothing was sent"), "{said}");
    assert!(sent(&env).is_empty());

    // Made for another environment.
    file["environment"] = "prod".into();
    std::fs::write(&plan, file.to_string()).unwrap();
    let out = sluice_cli(env.root(), &["apply", shown], &[]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("was made for prod and this is no environment: nothing was sent"), "{said}");

    // Not a plan at all, and a bad --max-age.
    std::fs::write(&plan, "{\"syncs\": 3}").unwrap();
    let out = sluice_cli(env.root(), &["apply", shown], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not a sluice plan"), "{}", text(&out));
    file["environment"] = serde_json::Value::Null;
    std::fs::write(&plan, file.to_string()).unwrap();
    let out = sluice_cli(env.root(), &["apply", shown, "--max-age", "soon"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--max-age `soon`"), "{}", text(&out));

    // A plan that could not be made writes no file.
    std::fs::remove_file(&plan).unwrap();
    env.exec("DROP TABLE t").await;
    let out = sluice_cli(env.root(), &["plan", "--out", shown], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("could not be planned, so no plan was written"), "{}", text(&out));
    assert!(!plan.exists());
    assert!(sent(&env).is_empty());
}
