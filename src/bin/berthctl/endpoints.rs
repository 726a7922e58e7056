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
pub const SWITCHOVER: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/switchover");
pub const SWITCHOVER_CANCEL: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/stores/{store_id}/switchover");
pub const FAILOVER: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/failover");
pub const TOPOLOGY: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/topology");
pub const HISTORY: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/history");
pub const EVENTS: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/events");
pub const HA_PAUSE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/ha/pause");
pub const HA_RESUME: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/ha/resume");
pub const STORE_REVEAL: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/credentials/reveal");
pub const STORE_UPDATE: Endpoint = ep("PATCH", "/api/v1/orgs/{org_id}/stores/{store_id}");
pub const NODE_ADD: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/nodes");
pub const NODE_REMOVE: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}");
pub const NODE_UPDATE: Endpoint = ep("PATCH", "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}");
pub const NODE_RESTART: Endpoint =
    ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/restart");
pub const NODE_STOP: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/stop");
pub const NODE_START: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/start");
pub const NODE_REINITIALIZE: Endpoint =
    ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/reinitialize");

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
    SWITCHOVER,
    SWITCHOVER_CANCEL,
    FAILOVER,
    TOPOLOGY,
    HISTORY,
    EVENTS,
    HA_PAUSE,
    HA_RESUME,
    STORE_UPDATE,
    STORE_REVEAL,
    NODE_ADD,
    NODE_REMOVE,
    NODE_UPDATE,
    NODE_RESTART,
    NODE_STOP,
    NODE_START,
    NODE_REINITIALIZE,
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
