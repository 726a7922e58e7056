use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Span;

use crate::config::AuthConfig;
use crate::error::ApiError;

/// The API answers JSON and files, never pages: nothing in a response may load, run or be framed.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The Swagger UI at `/api/swagger/` (utoipa-swagger-ui's vendored files): its `index.html` has
/// no inline script or style, only files of its own; its stylesheet draws icons from `data:`
/// SVGs; it fetches the OpenAPI document and makes "Try it out" calls on this origin. The one
/// inline `<style>` is the logo's, rendered by `swagger-ui-standalone-preset.js`, admitted by its
/// hash (a test recomputes it from the served file); styles React sets through the DOM are not
/// inline style in CSP's sense. Nothing else is allowed.
pub const SWAGGER_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Browsers keep to HTTPS for a year once they have seen it; sent only when Berth serves TLS.
pub const HSTS: &str = "max-age=31536000";

/// Refuses a cross-site request that would act with the session cookie (or log in).
///
/// A browser says where a request comes from in `Sec-Fetch-Site` and `Origin`; a request with
/// neither is not from a browser, and cannot carry a victim's cookie by accident. Requests with
/// a bearer token carry their credential explicitly and are not affected.
pub async fn csrf_guard(State(cfg): State<Arc<AuthConfig>>, req: Request, next: Next) -> Response {
    if is_safe(req.method()) || has_bearer(req.headers()) || req.uri().path().starts_with("/api/auth/oauth2/")
    {
        return next.run(req).await;
    }
    let uses_cookie = carries_cookie(req.headers(), &cfg.cookie_name());
    let is_login = req.uri().path() == "/api/auth/login";
    // HTTP/2 carries the host in the `:authority` pseudo-header, which lands in the URI, not `Host`.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(req.uri().authority().map(|a| a.as_str()));
    if (uses_cookie || is_login) && !same_origin(req.headers(), host, &cfg.allowed_origins) {
        return ApiError::forbidden_as(
            "cross_site_request",
            "a cookie-authenticated change must come from the same origin",
        )
        .into_response();
    }
    next.run(req).await
}

/// Answers a refused credential late: a 401 to a request that carried credentials (an
/// `Authorization` header, a cookie, or a body such as a login's or a token request's) leaves
/// only after [`AuthConfig::refusal_delay`]. Nothing is held meanwhile but the caller's own
/// connection: no pool connection, no lock, no worker. A request with no credentials at all gets
/// its 401 at once, as a client discovering that it must sign in expects.
pub async fn slow_refusals(State(cfg): State<Arc<AuthConfig>>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let carried = h.contains_key(header::AUTHORIZATION)
        || h.contains_key(header::COOKIE)
        || h.get(header::CONTENT_LENGTH).is_some_and(|v| v != "0")
        || h.contains_key(header::TRANSFER_ENCODING);
    let res = next.run(req).await;
    if carried && res.status() == StatusCode::UNAUTHORIZED && !cfg.refusal_delay.is_zero() {
        tokio::time::sleep(cfg.refusal_delay).await;
    }
    res
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn has_bearer(h: &HeaderMap) -> bool {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..7))
        .is_some_and(|s| s.eq_ignore_ascii_case("bearer "))
}

fn carries_cookie(h: &HeaderMap, name: &str) -> bool {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .any(|c| c.is_ok_and(|c| c.name() == name))
}

fn same_origin(h: &HeaderMap, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(o) = origin {
        if allowed.iter().any(|a| a.trim_end_matches('/') == o) {
            return true;
        }
    }
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match origin {
        None => true,
        Some(o) => origin_authority(o).is_some_and(|a| Some(a) == host),
    }
}

/// `https://host:port` → `host:port` (default ports are left out by browsers, and by `Host`).
fn origin_authority(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// The span every request's logs belong to: method, route template and request id, never the
/// raw URI's query, headers or cookies.
pub fn request_span(req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", method = %req.method(), route, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_rules() {
        let none: &[String] = &[];
        let a = Some("a:1");
        assert!(same_origin(&headers(&[]), a, none), "no browser headers: not a browser");
        assert!(same_origin(&headers(&[("origin", "http://a:1")]), a, none));
        assert!(!same_origin(&headers(&[("origin", "http://b:1")]), a, none));
        assert!(!same_origin(&headers(&[("origin", "http://a:1")]), None, none), "no host to compare");
        assert!(!same_origin(&headers(&[("origin", "null")]), a, none));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")]), a, none));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")]), a, none));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")]), a, none));
        let ui = ["https://ui.example.com".to_owned()];
        assert!(same_origin(
            &headers(&[("origin", "https://ui.example.com"), ("sec-fetch-site", "same-site")]),
            a,
            &ui
        ));
    }

    #[test]
    fn finds_the_session_cookie_only() {
        assert!(carries_cookie(&headers(&[("cookie", "a=1; berth_session=x")]), "berth_session"));
        assert!(!carries_cookie(&headers(&[("cookie", "xberth_session=x")]), "berth_session"));
    }
}
