//! Views that several resources render: a job, which every change to a store, a VPC or a
//! peering answers with.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::jobs::JobRow;
use crate::domain::JobStatus;

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
    pub id: Uuid,
    /// `create_store`, `delete_store`, `add_node`, `remove_node`, `restart_node`,
    /// `repair_store`, `resize_store`.
    pub kind: String,
    pub status: JobStatus,
    pub store_id: Option<Uuid>,
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
