//! The responses of changes: `201 Created` and `202 Accepted` with the `Location` of what they
//! made or changed and, where it has a revision, its `ETag`, written once for every route.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::jobs::JobRow;
use crate::domain::{OrgId, StoreId};
use crate::http::views::JobView;

/// The strong `ETag` of a resource at `revision`, as `If-Match` compares it.
pub fn etag(revision: i32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("a number is ASCII")
}

/// `202 Accepted`: a job was started. `Location` names what it changes (by default the job).
#[derive(Debug)]
pub struct Accepted<T> {
    body: T,
    location: String,
    revision: Option<i32>,
}

/// `201 Created`: a resource was made at once. `Location` names it.
#[derive(Debug)]
pub struct Created<T> {
    body: T,
    location: String,
    revision: Option<i32>,
}

/// The path of a job, as its `Location`.
pub fn job_location(job: &JobRow) -> String {
    format!("/api/v1/orgs/{}/jobs/{}", job.org_id, job.id)
}

/// The path of a store, as its `Location`.
pub fn store_location(org_id: OrgId, store_id: StoreId) -> String {
    format!("/api/v1/orgs/{org_id}/stores/{store_id}")
}

impl Accepted<JobView> {
    /// The job itself, located at its own path.
    pub fn job(job: JobRow) -> Self {
        let location = job_location(&job);
        Self { body: job.into(), location, revision: None }
    }
}

impl<T> Accepted<T> {
    /// `body`, located at `location` (a path under `/api/v1`).
    pub fn new(body: T, location: String) -> Self {
        Self { body, location, revision: None }
    }

    /// With the `ETag` of what `Location` names, at `revision`.
    pub fn revision(self, revision: i32) -> Self {
        Self { revision: Some(revision), ..self }
    }
}

impl<T> Created<T> {
    /// `body`, located at `location` (a path under `/api/v1`).
    pub fn new(body: T, location: String) -> Self {
        Self { body, location, revision: None }
    }

    /// With the `ETag` of what was made, at `revision`.
    pub fn revision(self, revision: i32) -> Self {
        Self { revision: Some(revision), ..self }
    }
}

fn respond(status: StatusCode, body: impl Serialize, location: &str, revision: Option<i32>) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    let headers = res.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            headers.insert(header::LOCATION, v);
        }
        // Paths are built from ids and fixed text; one that is not a header value is a bug, and
        // a response without its Location still tells the client what happened.
        Err(_) => tracing::error!(location, "a Location that is not a header value"),
    }
    if let Some(r) = revision {
        headers.insert(header::ETAG, etag(r));
    }
    res
}

impl<T: Serialize> IntoResponse for Accepted<T> {
    fn into_response(self) -> Response {
        respond(StatusCode::ACCEPTED, self.body, &self.location, self.revision)
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        respond(StatusCode::CREATED, self.body, &self.location, self.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_carries_location_and_etag() {
        let res = Accepted::new(serde_json::json!({"ok": true}), "/api/v1/orgs/a/stores/b".into())
            .revision(3)
            .into_response();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(res.headers()[header::LOCATION], "/api/v1/orgs/a/stores/b");
        assert_eq!(res.headers()[header::ETAG], "\"3\"");
    }

    #[test]
    fn created_without_revision_has_no_etag() {
        let res = Created::new(serde_json::json!({}), "/api/v1/orgs/a/vpcs/c".into()).into_response();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()[header::LOCATION], "/api/v1/orgs/a/vpcs/c");
        assert!(res.headers().get(header::ETAG).is_none());
    }
}
