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
pub const STORE_REPAIR: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/repair");
pub const STORE_JOBS: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/jobs");
pub const STORE_STATS: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/stats/summary");

pub const ME: Endpoint = ep("GET", "/api/v1/users/me");
pub const CHANGE_PASSWORD: Endpoint = ep("POST", "/api/v1/users/me/password");
pub const MY_INVITATIONS: Endpoint = ep("GET", "/api/v1/users/me/invitations");
pub const ANSWER_INVITATION: Endpoint = ep("POST", "/api/v1/users/me/invitations/{invitation_id}/{answer}");
pub const SCOPES: Endpoint = ep("GET", "/api/v1/scopes");
pub const STORE_SERIES: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/stats");
pub const ORG_CREATE: Endpoint = ep("POST", "/api/v1/orgs");
pub const ORG_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}");
pub const MEMBER_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/members");
pub const MEMBER_ADD: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/members");
pub const MEMBER_UPDATE: Endpoint = ep("PATCH", "/api/v1/orgs/{org_id}/members/{user_id}");
pub const MEMBER_REMOVE: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/members/{user_id}");
pub const INVITATION_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/invitations");
pub const INVITATION_REVOKE: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/invitations/{invitation_id}");
pub const CREDENTIAL_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/credentials");
pub const QUOTAS: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/quotas");
pub const CA: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/ca.pem");
pub const AUDIT_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/audit-events");
pub const AUDIT_VERIFY: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/audit-events/verify");
pub const SYSTEM_STATUS: Endpoint = ep("GET", "/api/v1/system/status");

pub const FIREWALL_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules");
pub const FIREWALL_ADD: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules");
pub const FIREWALL_REPLACE: Endpoint = ep("PUT", "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules");
pub const FIREWALL_DELETE: Endpoint =
    ep("DELETE", "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules/{rule_id}");

pub const DATABASE_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/databases");
pub const DATABASE_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/databases");
pub const DATABASE_DROP: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/stores/{store_id}/databases/{name}");
pub const DB_USER_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/db-users");
pub const DB_USER_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/db-users");
pub const DB_USER_DROP: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/stores/{store_id}/db-users/{name}");
pub const DB_USER_ROTATE: Endpoint =
    ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/db-users/{name}/rotate-password");

pub const PARAMETER_CATALOG: Endpoint = ep("GET", "/api/v1/content/parameters");
pub const GROUP_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/parameter-groups");
pub const GROUP_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/parameter-groups");
pub const GROUP_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/parameter-groups/{group_id}");
pub const GROUP_UPDATE: Endpoint = ep("PUT", "/api/v1/orgs/{org_id}/parameter-groups/{group_id}");
pub const GROUP_DELETE: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/parameter-groups/{group_id}");
pub const GROUP_APPLY: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/parameter-group");
pub const STORE_PARAMETERS: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/parameters");

pub const BACKUP_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/backups");
pub const BACKUP_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/backups");
pub const BACKUP_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}");
pub const BACKUP_DELETE: Endpoint =
    ep("DELETE", "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}");
pub const BACKUP_DOWNLOAD: Endpoint =
    ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}/download");
pub const BACKUP_VERIFY: Endpoint =
    ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}/verify");
pub const RESTORE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/stores/{store_id}/restore");
pub const RESTORE_WINDOW: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/restore-window");
pub const SCHEDULE_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/stores/{store_id}/backup-schedule");
pub const SCHEDULE_PUT: Endpoint = ep("PUT", "/api/v1/orgs/{org_id}/stores/{store_id}/backup-schedule");

pub const VPC_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/vpcs");
pub const VPC_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/vpcs");
pub const VPC_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}");
pub const VPC_DELETE: Endpoint = ep("DELETE", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}");
pub const PEERING_LIST: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings");
pub const PEERING_CREATE: Endpoint = ep("POST", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings");
pub const PEERING_GET: Endpoint = ep("GET", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}");
pub const PEERING_DELETE: Endpoint =
    ep("DELETE", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}");
pub const PEERING_ACCEPT: Endpoint =
    ep("POST", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}/accept");
pub const PEERING_REJECT: Endpoint =
    ep("POST", "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}/reject");

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
    STORE_REPAIR,
    STORE_JOBS,
    STORE_STATS,
    ORG_CREATE,
    ORG_GET,
    MEMBER_LIST,
    MEMBER_ADD,
    MEMBER_UPDATE,
    MEMBER_REMOVE,
    INVITATION_LIST,
    INVITATION_REVOKE,
    CREDENTIAL_LIST,
    QUOTAS,
    CA,
    AUDIT_LIST,
    AUDIT_VERIFY,
    SYSTEM_STATUS,
    FIREWALL_LIST,
    FIREWALL_ADD,
    FIREWALL_REPLACE,
    FIREWALL_DELETE,
    DATABASE_LIST,
    DATABASE_CREATE,
    DATABASE_DROP,
    DB_USER_LIST,
    DB_USER_CREATE,
    DB_USER_DROP,
    DB_USER_ROTATE,
    PARAMETER_CATALOG,
    GROUP_LIST,
    GROUP_CREATE,
    GROUP_GET,
    GROUP_UPDATE,
    GROUP_DELETE,
    GROUP_APPLY,
    STORE_PARAMETERS,
    BACKUP_LIST,
    BACKUP_CREATE,
    BACKUP_GET,
    BACKUP_DELETE,
    BACKUP_DOWNLOAD,
    BACKUP_VERIFY,
    RESTORE,
    RESTORE_WINDOW,
    SCHEDULE_GET,
    SCHEDULE_PUT,
    VPC_LIST,
    VPC_CREATE,
    VPC_GET,
    VPC_DELETE,
    PEERING_LIST,
    PEERING_CREATE,
    PEERING_GET,
    PEERING_DELETE,
    PEERING_ACCEPT,
    PEERING_REJECT,
    ME,
    CHANGE_PASSWORD,
    MY_INVITATIONS,
    ANSWER_INVITATION,
    SCOPES,
    STORE_SERIES,
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
