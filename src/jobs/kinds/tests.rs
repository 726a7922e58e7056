use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

use super::*;

#[test]
fn each_kind_says_whether_it_may_be_cancelled() {
    let cancellable = [
        (CreateStore::KIND, true),
        (DeleteStore::KIND, true),
        (AddNode::KIND, true),
        (RemoveNode::KIND, true),
        (RestartNode::KIND, true),
        (StopNode::KIND, true),
        (StartNode::KIND, true),
        (ReinitializeNode::KIND, true),
        (RepairStore::KIND, true),
        (Noop::KIND, true),
        (ResizeStore::KIND, false),
        (ApplyParameters::KIND, false),
        (Backup::KIND, false),
        (Restore::KIND, false),
        (CreateVpc::KIND, false),
        (DeleteVpc::KIND, false),
        (CreatePeering::KIND, false),
        (DeletePeering::KIND, false),
    ];
    for (kind, expected) in cancellable {
        assert_eq!(of(kind).name(), kind, "the registry finds {kind}");
        assert_eq!(of(kind).cancellable(), expected, "{kind}");
    }
    // As before: a kind this Berth does not know may be cancelled.
    assert!(of("from_the_future").cancellable());
    assert_eq!(of("from_the_future").name(), "");
}

#[test]
fn only_the_noop_kind_keeps_no_log() {
    assert!(!of(Noop::KIND).logged());
    assert!(of(CreateStore::KIND).logged());
}

#[test]
fn the_kind_texts_are_the_stored_ones() {
    use crate::jobs;
    for (kind, text) in [
        (jobs::kinds::CreateStore::KIND, "create_store"),
        (jobs::kinds::DeleteStore::KIND, "delete_store"),
        (jobs::kinds::AddNode::KIND, "add_node"),
        (jobs::kinds::RemoveNode::KIND, "remove_node"),
        (jobs::kinds::RestartNode::KIND, "restart_node"),
        (jobs::kinds::StopNode::KIND, "stop_node"),
        (jobs::kinds::StartNode::KIND, "start_node"),
        (jobs::kinds::ReinitializeNode::KIND, "reinitialize_node"),
        (jobs::kinds::RepairStore::KIND, "repair_store"),
        (jobs::kinds::ResizeStore::KIND, "resize_store"),
        (jobs::kinds::ApplyParameters::KIND, "apply_parameters"),
        (jobs::kinds::Backup::KIND, "backup"),
        (jobs::kinds::Restore::KIND, "restore"),
        (jobs::kinds::CreateVpc::KIND, "create_vpc"),
        (jobs::kinds::DeleteVpc::KIND, "delete_vpc"),
        (jobs::kinds::CreatePeering::KIND, "create_peering"),
        (jobs::kinds::DeletePeering::KIND, "delete_peering"),
        (jobs::kinds::Noop::KIND, "noop"),
    ] {
        assert_eq!(kind, text);
        assert_eq!(of(text).name(), text);
    }
}

/// Reads `stored` as `P` and writes it back: the same JSON.
fn round_trip<P: Serialize + DeserializeOwned + std::fmt::Debug + PartialEq>(stored: serde_json::Value) -> P {
    let params: P = serde_json::from_value(stored.clone()).expect("reads");
    assert_eq!(serde_json::to_value(&params).unwrap(), stored);
    params
}

#[test]
fn params_read_and_write_the_stored_json() {
    let (store_id, backup_id) = (crate::domain::StoreId::new(), crate::domain::BackupId::new());
    // As the routes wrote them with `json!`.
    assert_eq!(round_trip::<NoParams>(json!({})), NoParams {});
    assert_eq!(round_trip::<CreateStoreParams>(json!({})), CreateStoreParams { restore_from: None });
    let fork = round_trip::<CreateStoreParams>(json!({ "restore_from": {
        "store_id": store_id, "backup_id": backup_id, "point_in_time": "2026-11-30T10:15:00Z",
    }}));
    assert_eq!(
        fork.restore_from,
        Some(RestoreFrom { store_id, backup_id, point_in_time: Some(datetime!(2026-11-30 10:15 UTC)) })
    );
    let fork = round_trip::<CreateStoreParams>(json!({ "restore_from": {
        "store_id": store_id, "backup_id": backup_id, "point_in_time": null,
    }}));
    assert_eq!(fork.restore_from.unwrap().point_in_time, None);
    let restore = round_trip::<RestoreParams>(json!({ "backup_id": backup_id, "point_in_time": null }));
    assert_eq!(restore, RestoreParams { backup_id, point_in_time: None });
    let restore = round_trip::<RestoreParams>(
        json!({ "backup_id": backup_id, "point_in_time": "2026-11-30T10:15:00.5+01:00" }),
    );
    assert_eq!(restore.point_in_time, Some(datetime!(2026-11-30 10:15:00.5 +1)));
    for (text, source) in [("replica", BackupSource::Replica), ("primary", BackupSource::Primary)] {
        assert_eq!(round_trip::<BackupParams>(json!({ "source": text })), BackupParams { source });
        assert_eq!(BackupSource::from_text(text), source);
    }
}

#[test]
fn params_written_by_hand_read_leniently() {
    // Rows written straight into the queue carry the column's default, `{}`.
    let b: BackupParams = serde_json::from_value(json!({})).unwrap();
    assert_eq!(b.source, BackupSource::Replica);
    let r: RestoreParams = serde_json::from_value(json!({ "backup_id": Uuid::nil() })).unwrap();
    assert_eq!(r.point_in_time, None);
    // And a kind without params ignores whatever is there.
    let _: NoParams = serde_json::from_value(json!({ "anything": 1 })).unwrap();
}

#[test]
fn the_point_in_time_is_written_as_the_routes_wrote_it() {
    let t = datetime!(2026-11-30 10:15:00.123 UTC);
    let p = RestoreParams { backup_id: crate::domain::BackupId(Uuid::nil()), point_in_time: Some(t) };
    let today = t.format(&time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(serde_json::to_value(&p).unwrap()["point_in_time"], json!(today));
}
