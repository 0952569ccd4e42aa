//! The web console: server-rendered pages for the people who live with the syncs (which
//! contacts went to HubSpot, and why not this one?), served by the daemon from the binary.
//!
//! - `pages`: the syncs (`/`), one sync (`/syncs/{name}`: definition, runs, failed rows, change
//!   log), one run (`/syncs/{name}/runs/{id}`). Read from the published `View` and the store.
//! - `actions`: sign in and out, run now, retry rejected rows, reset (with a confirmation page).
//!   Runs go through the daemon's loop (`Control::Run`), as the API's do.
//! - `session`: the sign-in cookie and CSRF tokens (pure); `chart` (inline SVG bars) and
//!   `highlight` (the model's SQL in classed pieces) are pure too.
//!
//! Templates (minijinja, HTML-escaped by their `.html` names) and the stylesheet and script are
//! compiled into the binary: no CDN, no build step. Every page needs a signed-in session (the API
//! token, given once); every form a CSRF token and, when the browser says, the same origin.
//! Responses forbid framing, inline script and caching.

mod actions;
mod chart;
mod highlight;
mod pages;
mod session;

use std::sync::OnceLock;
use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;

use super::http::{snapshot, Api, View};
use session::Session;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(pages::syncs))
        .route("/login", get(actions::login_form).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/syncs/{name}", get(pages::sync))
        .route("/syncs/{name}/runs/{id}", get(pages::run))
        .route("/syncs/{name}/run", post(actions::run_now))
        .route("/syncs/{name}/retry", post(actions::retry))
        .route("/syncs/{name}/reset", get(actions::reset_form).post(actions::reset))
        .route("/console/style.css", get(|| asset("text/css", include_str!("assets/console.css"))))
        .route("/console/console.js", get(|| asset("text/javascript", include_str!("assets/console.js"))))
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("macros.html", include_str!("templates/macros.html")),
            ("login.html", include_str!("templates/login.html")),
            ("syncs.html", include_str!("templates/syncs.html")),
            ("sync.html", include_str!("templates/sync.html")),
            ("run.html", include_str!("templates/run.html")),
            ("reset.html", include_str!("templates/reset.html")),
            ("message.html", include_str!("templates/message.html")),
        ] {
            // The templates are part of the binary: one that does not compile is a bug that
            // every console test shows, and the page then says so instead of panicking.
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(template = name, error = %e, "a console template does not compile");
            }
        }
        env
    })
}

/// A rendered page with the console's headers; `Server-Timing` says how long the server took.
fn render(status: StatusCode, template: &str, context: serde_json::Value, started: Instant) -> Response {
    let rendering = Instant::now();
    let body = templates().get_template(template).and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&context))));
    tracing::debug!(template, render_ms = rendering.elapsed().as_secs_f64() * 1e3, "console: page rendered");
    let (status, body) = match body {
        Ok(body) => (status, body),
        Err(e) => {
            tracing::error!(template, error = %e, "a console page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("the page could not be rendered: {e}"))
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    harden(headers);
    if let Ok(timing) = HeaderValue::from_str(&format!("app;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0)) {
        headers.insert("server-timing", timing);
    }
    response
}

/// Pages run no inline script, load nothing from elsewhere, are never framed and never cached
/// (they show row data).
fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Not `no-referrer`: under it Chromium sends `Origin: null` with a form, and a same-origin
    // form would read as one from elsewhere. `same-origin` still tells other sites nothing.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// The signed-in session the request carries, if any.
fn session(api: &Api, headers: &HeaderMap) -> Option<Session> {
    let token = api.shared.token.read().ok()?;
    let cookies = headers.get_all(header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
    session::verify(cookies, &token, chrono::Utc::now())
}

/// The page's session and the published view, or the answer to give instead (to the sign-in
/// page; unavailable).
fn signed_in(api: &Api, headers: &HeaderMap, uri: &Uri, started: Instant) -> Result<(Session, View), Box<Response>> {
    let Some(session) = session(api, headers) else { return Err(Box::new(sign_in(uri))) };
    let view = current(api, &session, started)?;
    Ok((session, view))
}

/// The published view, or a page saying it cannot be read.
fn current(api: &Api, session: &Session, started: Instant) -> Result<View, Box<Response>> {
    snapshot(api).ok_or_else(|| {
        let text = "The daemon's state is poisoned (a bug: its log says more); restart it.";
        Box::new(message(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", text, Some(&session.csrf), started))
    })
}

/// To the sign-in page, coming back to `uri` after.
fn sign_in(uri: &Uri) -> Response {
    let next = uri.path_and_query().map_or("/", |p| p.as_str());
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
    see_other(&format!("/login?{query}"))
}

/// 303: after a form, the browser GETs `to`.
fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    harden(response.headers_mut());
    response
}

/// A local path to go back to after signing in: never another site (`//evil`, `https:`).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") => p,
        _ => "/",
    }
}

/// What the browser says of a form's origin: refused when it is another site's page. A
/// client that sends neither header (curl) still needs the session and its CSRF token.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if origin != format!("http://{host}") && origin != format!("https://{host}") {
            return false;
        }
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

/// A message page (not found, refused, done) with the console's frame.
fn message(status: StatusCode, title: &str, text: &str, csrf: Option<&str>, started: Instant) -> Response {
    let context = serde_json::json!({ "title": title, "text": text, "csrf": csrf, "signed_in": csrf.is_some() });
    render(status, "message.html", context, started)
}

/// Times as the daemon's time zone shows them: stored stamps are RFC 3339 UTC.
#[derive(Clone, Copy)]
struct Clock {
    tz: chrono_tz::Tz,
}

impl Clock {
    fn show(&self, stamp: &str) -> String {
        match chrono::DateTime::parse_from_rfc3339(stamp) {
            Ok(t) => t.with_timezone(&self.tz).format("%Y-%m-%d %H:%M:%S %Z").to_string(),
            Err(_) => stamp.to_string(),
        }
    }

    fn show_time(&self, t: chrono::DateTime<chrono::Utc>) -> String {
        t.with_timezone(&self.tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()
    }
}

/// A run's length from its stored start and end, in seconds.
fn seconds_between(start: &str, end: Option<&str>) -> Option<f64> {
    let start = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let end = chrono::DateTime::parse_from_rfc3339(end?).ok()?;
    Some((end - start).num_milliseconds().max(0) as f64 / 1000.0)
}

fn duration_text(seconds: Option<f64>) -> String {
    match seconds {
        None => String::new(),
        Some(s) if s < 10.0 => format!("{s:.1} s"),
        Some(s) => humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_in_returns_only_to_a_local_path() {
        assert_eq!(local_path(Some("/syncs/a?x=1")), "/syncs/a?x=1");
        for bad in ["//evil.example/x", "https://evil.example", "/\\evil.example", "syncs", ""] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn forms_from_another_site_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9187"));
        assert!(same_origin(&h), "no browser headers: the CSRF token decides");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9187"));
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn every_template_compiles() {
        for name in ["base.html", "macros.html", "login.html", "syncs.html", "sync.html", "run.html", "reset.html", "message.html"] {
            assert!(templates().get_template(name).is_ok(), "{name}");
        }
    }
}
