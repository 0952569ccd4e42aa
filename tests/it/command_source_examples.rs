//! `examples/command-source`, as committed: the analyst's Python scoring over a CSV, and the
//! script that pages Stripe's customers (against the Stripe emulator) and scores them.

use crate::support;

use std::path::Path;

use support::stripe::{customers, Stripe, KEY};
use support::*;

fn keys(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut keys: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["customer_id"].as_str().unwrap_or_default().to_string())
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_scoring_feeds_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example("command-source", dir.path());
    let run = sluice_cli(dir.path(), &["run", "usage_risk"], &[]).await;
    assert!(run.status.success(), "{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(keys(&dir.path().join("out/usage_risk.jsonl")), ["c-002", "c-003", "c-005"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stripe_script_pages_every_customer_and_rides_out_a_429() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example("command-source", dir.path());
    let now = chrono::Utc::now().timestamp();
    let all = customers(250, now);
    let stripe = Stripe::start(all.clone()).await;
    stripe.with(|s| s.rate_limit_next = 1);
    let envs = [("STRIPE_KEY", KEY), ("STRIPE_API_BASE", stripe.base_url.as_str())];
    let run = sluice_cli(dir.path(), &["run", "stripe_risk"], &envs).await;
    assert!(run.status.success(), "{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    // 250 customers at 100 a page: three pages, plus the request refused with 429.
    assert_eq!(stripe.with(|s| (s.requests, s.rate_limited)), (4, 1));
    // Risky: delinquent (0.6), or a balance due and under 30 days old (0.2 + 0.2), and more.
    let expected: Vec<String> = {
        let mut k: Vec<String> = all
            .iter()
            .filter(|c| {
                let risk = if c["delinquent"] == true { 0.6 } else { 0.0 }
                    + if c["balance"].as_i64().unwrap_or(0) > 0 { 0.2 } else { 0.0 }
                    + if (now - c["created"].as_i64().unwrap_or(0)) < 30 * 86_400 { 0.2 } else { 0.0 };
                risk >= 0.6 - 1e-9
            })
            .map(|c| c["id"].as_str().unwrap_or_default().to_string())
            .collect();
        k.sort();
        k
    };
    assert!(expected.len() >= 50, "the data has risky customers: {}", expected.len());
    assert_eq!(keys(&dir.path().join("out/stripe_risk.jsonl")), expected);

    // A wrong key: the script exits non-zero and the run fails with Stripe's answer from stderr.
    let run = sluice_cli(
        dir.path(),
        &["run", "stripe_risk"],
        &[("STRIPE_KEY", "sk_test_wrong000000"), ("STRIPE_API_BASE", stripe.base_url.as_str())],
    )
    .await;
    let said = String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && said.contains("Stripe answered 401") && said.contains("Invalid API Key"), "{said}");
    assert!(!said.contains("sk_test_wrong000000"), "the key is not shown whole: {said}");

    // No key at all: the script says what to do.
    let run = sluice_cli(dir.path(), &["run", "stripe_risk"], &[]).await;
    let said = String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && said.contains("STRIPE_KEY is not set"), "{said}");
}
