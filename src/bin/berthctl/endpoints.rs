//! Every call berthctl makes, in one table, so that a test holds each against
//! `openapi/openapi.json`. Paths are the OpenAPI document's templates.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
}

const fn ep(method: &'static str, path: &'static str) -> Endpoint {
    Endpoint { method, path }
}

pub const VERSION: Endpoint = ep("GET", "/api/version");
pub const LOGIN: Endpoint = ep("POST", "/api/auth/login");
pub const LOGOUT: Endpoint = ep("POST", "/api/auth/logout");
pub const TOKEN: Endpoint = ep("POST", "/api/auth/oauth2/token");
pub const ORGS: Endpoint = ep("GET", "/api/v1/orgs");
pub const DEPLOY_OPTIONS: Endpoint = ep("GET", "/api/v1/content/deploy-options");
pub const CREDENTIAL_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/credentials");
pub const CREDENTIAL_REVOKE: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/credentials/{client_id}");
pub const STORE_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores");
pub const STORE_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores");
pub const STORE_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}");
pub const STORE_DELETE: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/stores/{store_id}");
pub const JOB_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/jobs");
pub const JOB_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/jobs/{job_id}");
pub const JOB_CANCEL: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/jobs/{job_id}/cancel");

/// Read by the test that holds the table against the OpenAPI document.
#[allow(dead_code)]
pub const ALL: &[Endpoint] = &[
    VERSION,
    LOGIN,
    LOGOUT,
    TOKEN,
    ORGS,
    DEPLOY_OPTIONS,
    CREDENTIAL_CREATE,
    CREDENTIAL_REVOKE,
    STORE_LIST,
    STORE_CREATE,
    STORE_GET,
    STORE_DELETE,
    JOB_LIST,
    JOB_GET,
    JOB_CANCEL,
];

/// Path segments keep only unreserved characters as they are.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

impl Endpoint {
    /// The path with each `{name}` replaced by its value, percent-encoded.
    pub fn path_with(&self, params: &[(&str, &str)]) -> String {
        let mut path = self.path.to_string();
        for (name, value) in params {
            let encoded = utf8_percent_encode(value, SEGMENT).to_string();
            path = path.replace(&format!("{{{name}}}"), &encoded);
        }
        debug_assert!(!path.contains('{'), "unfilled parameter in {path}");
        path
    }
}
