//! The `file` destination keeps a CSV or JSON-lines file equal to the synced rows.

use sluice::engine::{Engine, RunOptions};
use sluice::project::Project;
use sluice::state::RunStatus;

struct FileEnv {
    dir: tempfile::TempDir,
}

impl FileEnv {
    fn new() -> FileEnv {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sluice.toml"),
            "[sources.local]\nkind = \"duckdb\"\n\n[destinations.out]\nkind = \"file\"\nmax_batch_rows = 2\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("syncs")).unwrap();
        FileEnv { dir }
    }

    fn data(&self, csv: &str) {
        std::fs::write(self.dir.path().join("people.csv"), csv).unwrap();
    }

    fn sync(&self, header: &str) {
        let text = format!("/* sluice\n{header}\n*/\nSELECT * FROM read_csv('people.csv', header = true)\n");
        std::fs::write(self.dir.path().join("syncs/p.sql"), text).unwrap();
    }

    async fn run(&self) -> sluice::engine::SyncReport {
        let project = Project::load(self.dir.path()).unwrap();
        assert!(project.invalid.is_empty(), "{:?}", project.invalid);
        let engine = Engine::open(&project).await.unwrap();
        let report = engine.run(&project.syncs[0], &RunOptions::default()).await;
        engine.store.close().await;
        report
    }

    fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }
}

#[tokio::test]
async fn mirror_csv_follows_the_model_and_adds_unmapped_key_columns() {
    let env = FileEnv::new();
    env.data("id,name,city\n1,Ann,Oslo\n2,Bob,Rome\n3,Cy,Lima\n");
    env.sync("primary_key = \"id\"\nmode = \"mirror\"\n[target]\npath = \"out/people.csv\"\n[mapping]\nName = \"name\"\nCity = \"city\"");
    assert_eq!(env.run().await.status, RunStatus::Success);
    assert_eq!(env.output("out/people.csv"), "id,Name,City\n1,Ann,Oslo\n2,Bob,Rome\n3,Cy,Lima\n");

    env.data("id,name,city\n1,Ann,Paris\n3,Cy,Lima\n4,Di,Kyiv\n");
    let run = env.run().await;
    assert_eq!((run.counts.added, run.counts.changed, run.counts.removed), (1, 1, 1));
    assert_eq!(env.output("out/people.csv"), "id,Name,City\n1,Ann,Paris\n3,Cy,Lima\n4,Di,Kyiv\n");
}

#[tokio::test]
async fn jsonl_keeps_types_and_update_mode_rejects_unknown_keys() {
    let env = FileEnv::new();
    env.data("id,name,score\n1,Ann,1.5\n2,Bob,2\n");
    env.sync("primary_key = \"id\"\nmode = \"upsert\"\n[target]\npath = \"out/p.jsonl\"");
    env.run().await;
    assert_eq!(env.output("out/p.jsonl"), "{\"id\":1,\"name\":\"Ann\",\"score\":1.5}\n{\"id\":2,\"name\":\"Bob\",\"score\":2.0}\n");

    env.sync("primary_key = \"id\"\nmode = \"update\"\n[target]\npath = \"out/p.jsonl\"");
    env.data("id,name,score\n1,Ann,9.5\n2,Bob,2\n7,New,1\n");
    let run = env.run().await;
    assert_eq!((run.status, run.written, run.rejected), (RunStatus::Partial, 2, 1), "{:?}", run.warnings);
    assert!(run.warnings.iter().any(|w| w.contains("id=7") && w.contains("update mode changes only existing rows")), "{:?}", run.warnings);
    assert!(env.output("out/p.jsonl").contains("\"score\":9.5"));
    assert!(!env.output("out/p.jsonl").contains("New"));
}

#[tokio::test]
async fn insert_mode_appends() {
    let env = FileEnv::new();
    env.data("id,event\n1,signup\n");
    env.sync("primary_key = \"id\"\nmode = \"insert\"\n[target]\npath = \"out/events.csv\"");
    env.run().await;
    env.data("id,event\n1,signup\n2,upgrade\n3,churn\n");
    env.run().await;
    assert_eq!(env.output("out/events.csv"), "id,event\n1,signup\n2,upgrade\n3,churn\n");
}

#[tokio::test]
async fn models_read_parquet_files_relative_to_the_project() {
    let env = FileEnv::new();
    // A dataframe a notebook scored and saved as Parquet.
    let parquet = env.dir.path().join("scores.parquet");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT i AS id, i / 10.0 AS score FROM range(1, 4) r(i)) TO '{}' (FORMAT parquet)",
        parquet.display()
    ))
    .unwrap();
    drop(conn);
    std::fs::write(
        env.dir.path().join("syncs/p.sql"),
        "/* sluice\nprimary_key = \"id\"\n[target]\npath = \"out/scores.csv\"\n*/\nSELECT id, score FROM read_parquet('scores.parquet')\n",
    )
    .unwrap();
    let run = env.run().await;
    assert_eq!((run.status, run.written), (RunStatus::Success, 3), "{:?}", run.error);
    assert_eq!(env.output("out/scores.csv"), "id,score\n1,0.1\n2,0.2\n3,0.3\n");
}
