//! Statuses: the enums of `berth::domain` and the check constraints of the migrated database
//! list the same values (a status added on one side only fails here, not at the first write),
//! and the table of what each store status allows refuses at the entry points it alone guards.

use axum::http::StatusCode;
use berth::domain::ha::{EventKind, PromotionKind, SyncMode};
use berth::domain::{
    BackupKind, BackupStatus, JobStatus, NodeRole, NodeState, PeeringStatus, StoreStatus, VpcStatus,
};

use uuid::Uuid;

use crate::helpers::TestApp;

/// The quoted values of a check constraint, as PostgreSQL prints it back
/// (`CHECK ((status = ANY (ARRAY['a'::text, 'b'::text])))`).
async fn allowed(app: &TestApp, constraint: &str) -> Vec<String> {
    let def: String =
        sqlx::query_scalar("select pg_get_constraintdef(oid) from pg_constraint where conname = $1")
            .bind(constraint)
            .fetch_one(&app.db)
            .await
            .unwrap_or_else(|e| panic!("constraint {constraint}: {e}"));
    let mut values: Vec<String> = def.split('\'').skip(1).step_by(2).map(str::to_owned).collect();
    values.sort();
    values
}

fn sorted(values: impl IntoIterator<Item = &'static str>) -> Vec<String> {
    let mut values: Vec<String> = values.into_iter().map(str::to_owned).collect();
    values.sort();
    values
}

#[tokio::test]
async fn every_status_enum_lists_what_its_check_constraint_allows() {
    let app = TestApp::spawn().await;
    let cases = [
        ("stores_status_check", sorted(StoreStatus::ALL.iter().map(|s| s.as_str()))),
        ("store_nodes_state_check", sorted(NodeState::ALL.iter().map(|s| s.as_str()))),
        ("jobs_status_check", sorted(JobStatus::ALL.iter().map(|s| s.as_str()))),
        ("backups_status_check", sorted(BackupStatus::ALL.iter().map(|s| s.as_str()))),
        ("backups_kind_check", sorted(BackupKind::ALL.iter().map(|s| s.as_str()))),
        ("store_nodes_role_check", sorted(NodeRole::ALL.iter().map(|s| s.as_str()))),
        ("vpcs_status_check", sorted(VpcStatus::ALL.iter().map(|s| s.as_str()))),
        ("vpc_peerings_status_check", sorted(PeeringStatus::ALL.iter().map(|s| s.as_str()))),
        ("stores_synchronous_check", sorted(SyncMode::ALL.iter().map(|s| s.as_str()))),
        ("store_promotions_kind_check", sorted(PromotionKind::ALL.iter().map(|s| s.as_str()))),
        ("store_events_kind_check", sorted(EventKind::ALL.iter().map(|s| s.as_str()))),
    ];
    for (constraint, values) in cases {
        assert_eq!(allowed(&app, constraint).await, values, "{constraint}");
    }
}

#[tokio::test]
async fn a_store_still_deploying_is_not_restored_and_one_being_deleted_is_not_deleted_again() {
    // No workers: the create job stays queued and the store deploying.
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let id = app.new_store(&owner, "early", 1).await.id;
    let r = app
        .post(&format!("/api/v1/orgs/{org}/stores/{id}/restore"))
        .cookie(&owner)
        .json(serde_json::json!({ "backup_id": Uuid::now_v7(), "confirm": "early" }))
        .send()
        .await;
    r.assert_problem(StatusCode::CONFLICT, "store_busy");
    assert!(r.string_at("/detail").contains("deploying"), "{}", r.text());

    sqlx::query("update stores set status = 'deleting' where id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
    let r = app.delete(&format!("/api/v1/orgs/{org}/stores/{id}")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::CONFLICT, "store_busy");
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&app.db).await.unwrap();
    assert_eq!(jobs, 1, "nothing else was enqueued");
}
