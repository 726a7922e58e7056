//! Views that several resources render: a job, which every change to a store, a VPC or a
//! peering answers with, and the signed-in user, which login and `users/me` answer with.

mod store;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::db::invitations::InvitationRow;
use crate::db::jobs::JobRow;
use crate::db::stores::StoreRow;
use crate::domain::ha::SyncMode;
use crate::domain::{
    InvitationId, InvitationStatus, JobId, JobStatus, OrgId, Principal, Role, StoreId, UserId,
};
use crate::error::ApiResult;
use crate::service::invitations::status_at;
use crate::service::members::parse_role;

pub use self::store::{Connection, Endpoint, NodeView, StoreAccepted, StoreCredentials, StoreView, view};

/// A store's high availability settings and whether the failover monitor is paused.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HaView {
    /// Promote a replica automatically when the primary is gone (stores with replicas).
    pub auto_failover: bool,
    /// Seconds the primary must have failed every probe before a failover.
    pub failover_delay: i32,
    /// A replica further behind than this (bytes of WAL) is not promoted automatically.
    pub max_lag_on_failover_bytes: i64,
    /// `off`, `any_1` (a commit waits for one replica) or `quorum` (for a majority of the
    /// nodes): in a synchronous mode a failover never loses an acknowledged commit.
    pub synchronous: SyncMode,
    /// The failover monitor leaves the store alone.
    pub paused: bool,
    /// Who or what paused it.
    pub paused_reason: Option<String>,
}

impl HaView {
    pub fn of(s: &StoreRow) -> Self {
        Self {
            auto_failover: s.auto_failover,
            failover_delay: s.failover_delay_seconds,
            max_lag_on_failover_bytes: s.max_lag_on_failover_bytes,
            synchronous: s.synchronous,
            paused: s.ha_paused_at.is_some(),
            paused_reason: s.ha_paused_reason.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    pub name: String,
    pub state: StepState,
}

/// Where one step of a job stands: read from the job's status and the index of its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Done,
    Running,
    Pending,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    #[schema(value_type = Uuid)]
    pub id: JobId,
    /// `create_store`, `delete_store`, `add_node`, `remove_node`, `restart_node`,
    /// `repair_store`, `resize_store`.
    pub kind: String,
    pub status: JobStatus,
    #[schema(value_type = Option<Uuid>)]
    pub store_id: Option<StoreId>,
    /// Steps done, as a percentage of all steps.
    pub progress: u8,
    pub steps: Vec<StepView>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// Why the last attempt failed (and, for a failed job, why it gave up).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Only on `GET .../jobs/{job_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<LogLine>>,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        let done = usize::try_from(j.step).unwrap_or(0);
        let total = j.steps.len().max(1);
        let steps = j
            .steps
            .iter()
            .enumerate()
            .map(|(i, name)| StepView {
                name: name.clone(),
                state: if i < done {
                    StepState::Done
                } else if i == done && j.status == JobStatus::Running {
                    StepState::Running
                } else {
                    StepState::Pending
                },
            })
            .collect();
        let progress = if j.status == JobStatus::Succeeded { 100 } else { (done * 100 / total) as u8 };
        Self {
            id: j.id,
            kind: j.kind,
            status: j.status,
            store_id: j.store_id,
            progress,
            steps,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            error: j.error,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            log: None,
        }
    }
}

/// A point in time as CCX writes it: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOrg {
    #[schema(value_type = Uuid)]
    pub id: OrgId,
    pub name: String,
    pub role: Role,
}

/// The user, in the shape of CCX's login response, with their organizations and roles.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[schema(value_type = Uuid)]
    pub id: UserId,
    /// The login: the user's e-mail address.
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    /// Where the account comes from (`local`: a password kept by Berth).
    pub origin: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// True until the initial password set by an administrator is replaced; until then only
    /// `/api/auth/*` and `/api/v1/users/me*` answer.
    pub must_change_password: bool,
    pub organizations: Vec<UserOrg>,
    pub additional_fields: serde_json::Map<String, serde_json::Value>,
}

impl From<Principal> for UserView {
    fn from(p: Principal) -> Self {
        Self {
            id: p.user_id,
            login: p.email,
            first_name: p.first_name,
            last_name: p.last_name,
            origin: p.origin,
            created_at: p.created_at.into(),
            updated_at: p.updated_at.into(),
            must_change_password: p.must_change_password,
            organizations: p
                .orgs
                .into_iter()
                .map(|o| UserOrg { id: o.id, name: o.name, role: o.role })
                .collect(),
            additional_fields: Default::default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    #[schema(value_type = Uuid)]
    pub id: InvitationId,
    #[schema(value_type = Uuid)]
    pub org_id: OrgId,
    pub org_name: String,
    /// The address invited.
    pub email: String,
    /// The role the invitee gets by accepting.
    pub role: Role,
    pub status: InvitationStatus,
    /// Who invited (last, when the address was invited again).
    pub invited_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Until when it can be accepted (7 days after it was made).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub answered_at: Option<OffsetDateTime>,
}

/// An invitation as `now` sees it (a pending one past its expiry is `expired`).
pub fn invitation_view(r: InvitationRow, now: OffsetDateTime) -> ApiResult<InvitationView> {
    Ok(InvitationView {
        status: status_at(&r.status, r.expires_at, now)?,
        role: parse_role(&r.role)?,
        id: r.id,
        org_id: r.org_id,
        org_name: r.org_name,
        email: r.email,
        invited_by: r.invited_by,
        created_at: r.created_at,
        expires_at: r.expires_at,
        answered_at: r.answered_at,
    })
}
