//! The pages: one HTML shell for every view (the view is the path, its filters the query
//! string, so every view is a deep link), a script and a stylesheet, all compiled into
//! the binary: no CDN, no build step, works offline. The script builds the DOM with
//! `textContent` (never HTML from a document) and talks only to `/api/v1`.

use crate::{App, guard};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/icon.svg");

/// The paths of the views (the script routes among them).
pub(crate) const VIEWS: [&str; 8] = [
    "/",
    "/machines",
    "/projects",
    "/specs",
    "/board",
    "/spec",
    "/activity",
    "/deps",
];

/// A view: the shell when logged in, else the login page.
pub(crate) async fn view(State(app): State<App>, req: Request) -> Response {
    if guard::live_session(&app, req.headers()).is_some() {
        Html(INDEX).into_response()
    } else {
        crate::login::login_page(StatusCode::UNAUTHORIZED, None)
    }
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

pub(crate) async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}
