//! What a signed-in person can do: sign in and out, run a sync now, send its rejected rows
//! again, and reset it (after a page that names the consequence). Every form needs the
//! session's CSRF token and, when the browser says where it comes from, this origin; each
//! answers with a redirect (303) to the page that shows the result.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use serde_json::json;

use super::session::{self, Session};
use super::{local_path, message, render, same_origin, see_other, sign_in};
use crate::daemon::http::{ask, Api, Control};
use crate::daemon::runs::Asked;

type Fields = Form<HashMap<String, String>>;

fn login_page(status: StatusCode, next: &str, error: Option<&str>, started: Instant) -> Response {
    let context = json!({ "signed_in": false, "next": next, "error": error });
    render(status, "login.html", context, started)
}

/// `GET /login`: the sign-in form.
pub(super) async fn login_form(Query(query): Query<HashMap<String, String>>) -> Response {
    login_page(StatusCode::OK, local_path(query.get("next").map(String::as_str)), None, Instant::now())
}

/// `POST /login`: the API token for a session cookie.
pub(super) async fn login(State(api): State<Api>, headers: HeaderMap, Form(form): Fields) -> Response {
    let started = Instant::now();
    let next = local_path(form.get("next").map(String::as_str)).to_string();
    if !same_origin(&headers) {
        return login_page(StatusCode::FORBIDDEN, &next, Some("Sign in from this console's own page."), started);
    }
    let given = form.get("token").map(String::as_str).unwrap_or("");
    let cookie = match api.shared.token.read() {
        Ok(token) if session::token_matches(&token, given) => session::issue(&token, chrono::Utc::now()),
        Ok(_) => {
            tracing::warn!("console: a sign-in with a wrong token was refused");
            return login_page(
                StatusCode::UNAUTHORIZED,
                &next,
                Some("That is not the API token. It is [daemon] api_token in sluice.toml, or the file the daemon's log names at start."),
                started,
            );
        }
        Err(_) => return login_page(StatusCode::SERVICE_UNAVAILABLE, &next, Some("The daemon's state is poisoned."), started),
    };
    let mut response = see_other(&next);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The session a form comes with, or the answer that refuses it.
fn checked(api: &Api, headers: &HeaderMap, form: &HashMap<String, String>, uri: &Uri) -> Result<Session, Box<Response>> {
    let started = Instant::now();
    if !same_origin(headers) {
        let text = "This form came from another site's page: nothing was done.";
        return Err(Box::new(message(StatusCode::FORBIDDEN, "Refused", text, None, started)));
    }
    let Some(session) = super::session(api, headers) else {
        // Not signed in (or signed out since): sign in, then see the page the form was on.
        let back = uri.path().rsplit_once('/').map_or("/", |(page, _)| page).to_string();
        return Err(Box::new(sign_in(&back.parse().unwrap_or_default())));
    };
    if !session::csrf_matches(&session, form.get("csrf").map(String::as_str).unwrap_or("")) {
        let text = "The form's token does not match this session (it may be from before a sign-in): reload the page and try again.";
        return Err(Box::new(message(StatusCode::FORBIDDEN, "Refused", text, Some(&session.csrf), started)));
    }
    Ok(session)
}

/// `POST /logout`.
pub(super) async fn logout(State(api): State<Api>, headers: HeaderMap, uri: Uri, Form(form): Fields) -> Response {
    if let Err(refused) = checked(&api, &headers, &form, &uri) {
        return *refused;
    }
    let mut response = see_other("/login");
    if let Ok(value) = HeaderValue::from_str(&session::clear()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn sync_page(name: &str) -> String {
    // Form encoding writes a space as `+` (and a `+` as `%2B`): in a path a space is `%20`.
    let segment: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/syncs/{}", segment.replace('+', "%20"))
}

async fn start(api: &Api, name: &str, asked: Asked, session: &Session, started: Instant) -> Response {
    let by = "the console";
    match ask(api, |reply| Control::Run { name: name.to_string(), asked, by, reply }).await {
        Ok(()) => see_other(&sync_page(name)),
        Err(e) if e.contains("no sync") => message(StatusCode::NOT_FOUND, "No such sync", &e, Some(&session.csrf), started),
        Err(e) => message(StatusCode::CONFLICT, "Not started", &e, Some(&session.csrf), started),
    }
}

/// `POST /syncs/{name}/run`: run now, as the schedule would.
pub(super) async fn run_now(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Fields,
) -> Response {
    let started = Instant::now();
    let session = match checked(&api, &headers, &form, &uri) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    tracing::info!(sync = %name, "console: run now");
    start(&api, &name, Asked::default(), &session, started).await
}

/// `POST /syncs/{name}/retry`: run now, sending the rejected rows again though unchanged.
pub(super) async fn retry(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap, uri: Uri, Form(form): Fields) -> Response {
    let started = Instant::now();
    let session = match checked(&api, &headers, &form, &uri) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    tracing::info!(sync = %name, "console: retry rejected rows");
    start(&api, &name, Asked { retry_rejected: true, ..Default::default() }, &session, started).await
}

/// `GET /syncs/{name}/reset`: what a reset does to this sync, and the form that does it.
pub(super) async fn reset_form(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    let started = Instant::now();
    let (session, view) = match super::signed_in(&api, &headers, &uri, started) {
        Ok(both) => both,
        Err(answer) => return *answer,
    };
    let Some(sync) = view.generation.project.syncs.iter().find(|s| s.name() == name) else {
        return message(StatusCode::NOT_FOUND, "No such sync", &format!("There is no sync named `{name}`."), Some(&session.csrf), started);
    };
    let rows = view.generation.engine.store.count_rows(&name).await.ok();
    let context = json!({
        "signed_in": true, "csrf": session.csrf, "name": name, "destination": sync.destination,
        "mode": sync.file.mode.as_str(), "rows": rows,
    });
    render(StatusCode::OK, "reset.html", context, started)
}

/// `POST /syncs/{name}/reset`: forgets what the destination holds, once the name is typed.
pub(super) async fn reset(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap, uri: Uri, Form(form): Fields) -> Response {
    let started = Instant::now();
    let session = match checked(&api, &headers, &form, &uri) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    if form.get("confirm").map(|c| c.trim()) != Some(name.as_str()) {
        let text = format!("Nothing was reset: type the sync's name, `{name}`, to confirm.");
        return message(StatusCode::UNPROCESSABLE_ENTITY, "Not confirmed", &text, Some(&session.csrf), started);
    }
    let view = match super::current(&api, &session, started) {
        Ok(view) => view,
        Err(answer) => return *answer,
    };
    // Under the sync's lock, as `sluice reset`: refused while a run of it goes on anywhere.
    match view.generation.engine.reset(&name, "a reset from the console").await {
        Ok(n) => {
            tracing::info!(sync = %name, rows = n, "console: reset");
            let text = format!("`{name}` forgot {n} row(s): its next run sends every row of its model again.");
            message(StatusCode::OK, "Reset", &text, Some(&session.csrf), started)
        }
        Err(e) => message(StatusCode::CONFLICT, "Not reset", &e.to_string(), Some(&session.csrf), started),
    }
}
