//! A `sluice daemon` process for tests: started on a throwaway project, its log read back,
//! signalled, waited for; and readers of what it left in the state store and `/metrics`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Row;

use super::{Env, SourceKind, StateKind};

pub const EVERY_SECOND: &str = "* * * * * *";

/// A daemon process with its stderr in a file.
pub struct Daemon {
    pub child: Child,
    log: PathBuf,
}

impl Daemon {
    /// The HTTP endpoint's base URL, once the daemon logged it.
    pub async fn base_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let logs = self.logs();
            if let Some(port) = logs
                .lines()
                .find(|l| l.contains("HTTP endpoint"))
                .and_then(|l| l.split("addr=").nth(1))
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.rsplit(':').next())
            {
                return format!("http://127.0.0.1:{port}");
            }
            assert!(Instant::now() < deadline, "no HTTP endpoint in the log:\n{logs}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn start(root: &Path, envs: &[(&str, String)]) -> Daemon {
        Self::start_with(root, envs, &[])
    }

    pub fn start_with(root: &Path, envs: &[(&str, String)], args: &[&str]) -> Daemon {
        let log = root.join(format!("daemon-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(super::sluice_bin())
            .args(args)
            .args(["daemon", "--project"])
            .arg(root)
            .envs(envs.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the daemon");
        Daemon { child, log }
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().expect("kill").success();
        assert!(ok, "kill -{name}");
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit (it was told to stop); its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the daemon did not exit within {within:?}; its log:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(status, started_at, finished_at)` of a sync's runs, oldest first.
pub async fn runs(env: &Env, sync: &str) -> Vec<(String, String, Option<String>)> {
    let sql = "SELECT status, started_at, finished_at FROM runs WHERE sync = $1 ORDER BY started_at";
    let rows = match &env.pg_state {
        Some(pg) => {
            let sql = sql.replace("FROM runs", &format!("FROM {}.runs", pg.name));
            sqlx::query(&sql)
                .bind(sync)
                .fetch_all(&pg.pool)
                .await
                .unwrap_or_default()
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<Option<String>, _>(2)))
                .collect()
        }
        None => {
            let path = env.root().join(".sluice/state.db");
            if !path.exists() {
                return Vec::new();
            }
            let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display())).await else { return Vec::new() };
            let rows = sqlx::query(sql).bind(sync).fetch_all(&pool).await.unwrap_or_default();
            pool.close().await;
            rows.iter().map(|r| (r.get::<String, _>(0), r.get::<String, _>(1), r.get::<Option<String>, _>(2))).collect()
        }
    };
    rows
}

pub async fn completed(env: &Env, sync: &str) -> usize {
    runs(env, sync).await.iter().filter(|(s, _, _)| s == "success").count()
}

pub async fn project(state: StateKind, extra: &str) -> Env {
    project_with(state, extra, "").await
}

/// A project whose daemon listens on a free port (found in its log) with `daemon` settings added.
pub async fn project_with(state: StateKind, extra: &str, daemon: &str) -> Env {
    let env = Env::with_sink_settings(SourceKind::DuckDb, state, extra).await;
    let config = env.root().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = if daemon.contains("listen") { String::new() } else { "listen = \"127.0.0.1:0\"\n".into() };
    std::fs::write(&config, format!("{text}\n[daemon]\ntimezone = \"UTC\"\n{listen}{daemon}\n")).unwrap();
    env.exec("CREATE TABLE t AS SELECT i AS id, i * 2 AS v FROM range(1, 31) r(i)").await;
    env
}

pub fn sync_header(schedule: &str, extra: &str) -> String {
    format!("destination = \"hook\"\nprimary_key = \"id\"\nschedule = \"{schedule}\"\n{extra}")
}

/// Every sample line of a Prometheus text exposition: name with labels, and the value.
pub fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {l}"));
            (name.to_string(), value.parse::<f64>().unwrap_or_else(|_| panic!("not a number in: {l}")))
        })
        .collect()
}

/// The API token the daemon generated into the project's state directory.
pub fn api_token(env: &Env) -> String {
    std::fs::read_to_string(env.root().join(".sluice/api_token")).expect("the daemon's generated API token").trim().to_string()
}
