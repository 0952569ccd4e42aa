//! The console's read-only pages. Each handler gathers what it shows from the published `View`
//! and the state store into plain structs, and the template draws them. Long lists are pages
//! of `PAGE` rows: a sync with 10,000 failed rows costs one count and one page.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;
use serde_json::json;

use super::chart::{self, Chart, Point};
use super::{duration_text, message, render, seconds_between, Clock};
use crate::daemon::http::Api;
use crate::daemon::runs::Live;
use crate::project::{SyncSpec, Trigger};
use crate::state::{ChangeQuery, RunRecord};

/// Rows per page of runs, failed rows and change-log entries.
pub(super) const PAGE: i64 = 50;
/// Runs the charts show.
const CHART_RUNS: i64 = 30;

/// One run as the tables show it.
#[derive(Serialize)]
struct RunView {
    id: String,
    started: String,
    duration: String,
    status: &'static str,
    full_resync: bool,
    rows_read: i64,
    added: i64,
    changed: i64,
    removed: i64,
    written: i64,
    rejected: i64,
    retryable: i64,
    batches: i64,
    error: Option<String>,
}

impl RunView {
    fn of(run: &RunRecord, clock: Clock) -> RunView {
        RunView {
            id: run.id.clone(),
            started: clock.show(&run.started_at),
            duration: duration_text(seconds_between(&run.started_at, run.finished_at.as_deref())),
            status: run.status.map_or("running", |s| s.as_str()),
            full_resync: run.full_resync,
            rows_read: run.rows_read,
            added: run.added,
            changed: run.changed,
            removed: run.removed,
            written: run.written,
            rejected: run.rejected,
            retryable: run.retryable,
            batches: run.batches,
            error: run.error.clone(),
        }
    }
}

/// A sync's definition in a line: what the syncs table and a sync's page head show.
#[derive(Serialize)]
struct Summary {
    name: String,
    file: String,
    source: String,
    destination: String,
    mode: &'static str,
    schedule: String,
    on_event: bool,
    next_run: Option<String>,
    running: bool,
    live: Option<Live>,
}

fn summary(sync: &SyncSpec, view: &crate::daemon::http::View, live: &HashMap<String, Live>, clock: Clock) -> Summary {
    let name = sync.name();
    Summary {
        name: name.to_string(),
        file: sync.file.path.display().to_string(),
        source: sync.source.clone(),
        destination: sync.destination.clone(),
        mode: sync.file.mode.as_str(),
        schedule: sync.file.schedule.text().to_string(),
        on_event: matches!(sync.file.trigger, Trigger::OnEvent { .. }),
        next_run: view.next_runs.get(name).map(|t| clock.show_time(*t)),
        running: view.running.iter().any(|r| r == name),
        live: live.get(name).copied(),
    }
}

/// Rows sent per run, oldest first (`runs` come newest first).
fn sent_chart(runs: &[RunRecord], clock: Clock) -> Chart {
    let points: Vec<Point> = runs
        .iter()
        .rev()
        .map(|r| {
            let status = r.status.map_or("running", |s| s.as_str()).to_string();
            Point { value: r.written as f64, title: format!("{}: {status}, {} sent", clock.show(&r.started_at), r.written), status }
        })
        .collect();
    chart::bars(&points, "Rows sent per run")
}

fn duration_chart(runs: &[RunRecord], clock: Clock) -> Chart {
    let points: Vec<Point> = runs
        .iter()
        .rev()
        .map(|r| {
            let status = r.status.map_or("running", |s| s.as_str()).to_string();
            let seconds = seconds_between(&r.started_at, r.finished_at.as_deref()).unwrap_or(0.0);
            Point { value: seconds, title: format!("{}: {status}, {}", clock.show(&r.started_at), duration_text(Some(seconds))), status }
        })
        .collect();
    chart::bars(&points, "Seconds per run")
}

fn live_runs(api: &Api) -> HashMap<String, Live> {
    api.shared.live.lock().map(|l| l.clone()).unwrap_or_default()
}

/// `/`: every sync, how it last went, and the sync files that are invalid.
pub(super) async fn syncs(State(api): State<Api>, headers: HeaderMap, uri: Uri) -> Response {
    let started = Instant::now();
    let (session, view) = match super::signed_in(&api, &headers, &uri, started) {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let generation = &view.generation;
    let clock = Clock { tz: generation.tz };
    let store = &generation.engine.store;
    let live = live_runs(&api);
    let mut problems = Vec::new();
    let pending = store.error_counts_all().await.unwrap_or_else(|e| {
        problems.push(format!("failed rows: {e}"));
        HashMap::new()
    });
    // Logged at -vv: a slow view is its run reads or the rest (docs/benchmarks.md, "Console").
    let mut reading = std::time::Duration::ZERO;
    let mut rows = Vec::new();
    // One indexed read per sync (its newest runs): on SQLite, 200 of them take about 14 ms; one
    // compound statement for them all measured slower (scripts/bench_console.py).
    for sync in &generation.project.syncs {
        let read = Instant::now();
        let runs = match store.runs(sync.name(), CHART_RUNS).await {
            Ok(runs) => runs,
            Err(e) => {
                problems.push(format!("runs of `{}`: {e}", sync.name()));
                Vec::new()
            }
        };
        reading += read.elapsed();
        let (rejected, retryable) = pending.get(sync.name()).copied().unwrap_or((0, 0));
        rows.push(json!({
            "sync": summary(sync, &view, &live, clock),
            "last": runs.first().map(|r| RunView::of(r, clock)),
            "rejected": rejected,
            "retryable": retryable,
            "chart": sent_chart(&runs, clock),
        }));
    }
    let invalid: Vec<_> = generation
        .project
        .invalid
        .iter()
        .map(|e| {
            let at = match e.line {
                Some(line) => format!("{}:{line}", e.file.display()),
                None => e.file.display().to_string(),
            };
            json!({ "at": at, "message": e.message, "hint": e.hint })
        })
        .collect();
    let any_running = !view.running.is_empty();
    tracing::debug!(
        syncs = rows.len(),
        runs_read_ms = reading.as_secs_f64() * 1e3,
        gathered_ms = started.elapsed().as_secs_f64() * 1e3,
        "console: the Syncs page's data read"
    );
    let context = json!({
        "signed_in": true, "csrf": session.csrf, "tz": generation.tz.name(), "syncs": rows, "invalid": invalid,
        "problems": problems, "refresh": if any_running { Some(2) } else { None },
    });
    render(StatusCode::OK, "syncs.html", context, started)
}

fn number(query: &HashMap<String, String>, name: &str) -> i64 {
    query.get(name).and_then(|v| v.trim().parse::<i64>().ok()).filter(|n| *n >= 1).unwrap_or(1)
}

fn text<'q>(query: &'q HashMap<String, String>, name: &str) -> Option<&'q str> {
    query.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Page `page` of `total` rows (`None`: unknown, `more` says whether a next page exists):
/// what the pager shows, with links that keep the rest of the query.
fn pager(query: &HashMap<String, String>, param: &str, page: i64, total: Option<i64>, more: bool) -> serde_json::Value {
    let link = |to: i64| {
        let mut pairs: Vec<(&String, String)> = query.iter().filter(|(k, _)| k.as_str() != param).map(|(k, v)| (k, v.clone())).collect();
        pairs.sort();
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, &v);
        }
        q.append_pair(param, &to.to_string());
        format!("?{}", q.finish())
    };
    let (pages, has_next) = match total {
        Some(total) => {
            let pages = ((total + PAGE - 1) / PAGE).max(1);
            (pages, page < pages)
        }
        None => (page + more as i64, more),
    };
    json!({
        "page": page, "pages": pages, "total": total, "first": (page - 1) * PAGE + 1,
        "last": total.map(|t| (page * PAGE).min(t)),
        "prev": (page > 1).then(|| link(page - 1)), "next": has_next.then(|| link(page + 1)),
    })
}

/// `/syncs/{name}`: the definition, the actions, the runs, the failed rows and the change log.
/// Query: `runs_page`, `failed_q`, `failed_page`, `log_key`, `log_since`, `log_page`.
pub(super) async fn sync(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let started = Instant::now();
    let (session, view) = match super::signed_in(&api, &headers, &uri, started) {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let generation = &view.generation;
    let Some(sync) = generation.project.syncs.iter().find(|s| s.name() == name) else {
        return message(StatusCode::NOT_FOUND, "No such sync", &format!("There is no sync named `{name}`."), Some(&session.csrf), started);
    };
    let clock = Clock { tz: generation.tz };
    let store = &generation.engine.store;
    let mut problems = Vec::new();
    let mut note = |what: &str, e: crate::state::StateError| problems.push(format!("{what}: {e}"));

    let runs_page = number(&query, "runs_page");
    let total_runs = store.count_runs(&name).await.unwrap_or(0);
    let runs = store.runs_page(&name, (runs_page - 1) * PAGE, PAGE).await.unwrap_or_else(|e| {
        note("runs", e);
        Vec::new()
    });
    // The charts' runs are the newest: the first page's, unless another page is shown.
    let recent = if runs_page == 1 {
        runs.iter().take(CHART_RUNS as usize).cloned().collect()
    } else {
        store.runs(&name, CHART_RUNS).await.unwrap_or_else(|e| {
            note("runs", e);
            Vec::new()
        })
    };

    let failed_q = text(&query, "failed_q");
    let failed_page = number(&query, "failed_page");
    let (failed, failed_total) = store.row_errors_page(&name, failed_q, (failed_page - 1) * PAGE, PAGE).await.unwrap_or_else(|e| {
        note("failed rows", e);
        (Vec::new(), 0)
    });
    let (rejected, retryable) = store.error_counts(&name).await.unwrap_or((0, 0));

    let log_key = text(&query, "log_key");
    let log_since = text(&query, "log_since");
    let log_page = number(&query, "log_page");
    let mut log_error = None;
    let changes = match ChangeQuery::parse(log_key, log_since, Some(&sync.file.primary_key.value), "") {
        Ok(q) => {
            // One more than a page: whether there is a next one.
            let q = ChangeQuery { limit: PAGE + 1, offset: (log_page - 1) * PAGE, ..q };
            store.changes(&name, &q).await.unwrap_or_else(|e| {
                note("change log", e);
                Vec::new()
            })
        }
        Err(e) => {
            log_error = Some(e);
            Vec::new()
        }
    };
    let log_more = changes.len() as i64 > PAGE;
    let changes: Vec<_> = changes
        .into_iter()
        .take(PAGE as usize)
        .map(|c| {
            json!({
                "run_id": c.run_id, "key": c.key.to_string(), "op": c.op, "outcome": c.outcome,
                "destination_id": c.destination_id, "error": c.error, "at": clock.show(&c.changed_at),
                "fields": c.fields.map(|f| f.to_string()),
            })
        })
        .collect();
    let failed: Vec<_> = failed
        .iter()
        .map(|f| {
            json!({
                "key": f.key.to_string(), "kind": f.kind, "message": f.message, "attempts": f.attempts,
                "first_seen": clock.show(&f.first_seen), "last_seen": clock.show(&f.last_seen),
            })
        })
        .collect();

    let live = live_runs(&api);
    let summary = summary(sync, &view, &live, clock);
    let refresh = summary.running.then_some(2);
    let context = json!({
        "signed_in": true, "csrf": session.csrf, "tz": generation.tz.name(), "refresh": refresh,
        "sync": summary,
        "header": sync.file.header_text, "header_line": sync.file.header_line,
        "model": super::highlight::sql(&sync.file.model), "model_line": sync.file.model_line,
        "log_values": sync.file.log_values,
        "last": recent.first().map(|r| RunView::of(r, clock)),
        "runs": runs.iter().map(|r| RunView::of(r, clock)).collect::<Vec<_>>(),
        "runs_pager": pager(&query, "runs_page", runs_page, Some(total_runs), false),
        "sent_chart": sent_chart(&recent, clock), "duration_chart": duration_chart(&recent, clock),
        "failed": failed, "failed_q": failed_q, "failed_pager": pager(&query, "failed_page", failed_page, Some(failed_total), false),
        "rejected": rejected, "retryable": retryable,
        "changes": changes, "log_key": log_key, "log_since": log_since, "log_pager": pager(&query, "log_page", log_page, None, log_more),
        "log_error": log_error,
        "problems": problems,
    });
    render(StatusCode::OK, "sync.html", context, started)
}

/// `/syncs/{name}/runs/{id}`: a run's report, as `sluice run --json` prints it, and its alerts.
pub(super) async fn run(State(api): State<Api>, Path((name, id)): Path<(String, String)>, headers: HeaderMap, uri: Uri) -> Response {
    let started = Instant::now();
    let (session, view) = match super::signed_in(&api, &headers, &uri, started) {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let generation = &view.generation;
    let clock = Clock { tz: generation.tz };
    let found = match generation.engine.store.run_with_report(&name, &id).await {
        Ok(found) => found,
        Err(e) => return message(StatusCode::SERVICE_UNAVAILABLE, "State store error", &e.to_string(), Some(&session.csrf), started),
    };
    let Some((run, report)) = found else {
        return message(StatusCode::NOT_FOUND, "No such run", &format!("`{name}` has no run {id}."), Some(&session.csrf), started);
    };
    // Shown as kept (pretty, in the report's field order); read for its alerts and warnings.
    let parsed: Option<serde_json::Value> = report.as_deref().and_then(|r| serde_json::from_str(r).ok());
    let alerts = parsed.as_ref().and_then(|r| r.get("alerts")).cloned().unwrap_or(json!([]));
    let warnings = parsed.as_ref().and_then(|r| r.get("warnings")).cloned().unwrap_or(json!([]));
    let pretty = report;
    let running = run.status.is_none_or(|s| s == crate::state::RunStatus::Running);
    let context = json!({
        "signed_in": true, "csrf": session.csrf, "tz": generation.tz.name(),
        "refresh": running.then_some(2),
        "name": name, "run": RunView::of(&run, clock),
        "finished": run.finished_at.as_deref().map(|t| clock.show(t)),
        "report": pretty, "alerts": alerts, "warnings": warnings,
    });
    render(StatusCode::OK, "run.html", context, started)
}
