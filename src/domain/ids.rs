//! The ids of the domain's entities, one type each, so that passing one where another is asked
//! does not compile:
//!
//! ```compile_fail
//! use berth::domain::{NodeId, StoreId};
//!
//! fn store(_: StoreId) {}
//! store(NodeId::new());
//! ```
//!
//! while the right one does:
//!
//! ```
//! use berth::domain::StoreId;
//!
//! fn store(_: StoreId) {}
//! store(StoreId::new());
//! ```
//!
//! Each is a [`Uuid`] underneath and on every wire: it serializes as the same string, binds and
//! decodes as a PostgreSQL `uuid`, and documents itself in OpenAPI as a `uuid` string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id: a UUIDv7, ordered by creation time.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn into_uuid(self) -> Uuid {
                self.0
            }

            /// The id's 16 bytes, as encryption binds a secret to its owner.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::from_str(s).map(Self)
            }
        }

        /// The schema of a [`Uuid`]. A field of this type in a `ToSchema` derive still needs
        /// `#[schema(value_type = Uuid)]` to be inlined rather than referenced.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )*};
}

ids! {
    /// An organization's id.
    OrgId;
    /// A user's id.
    UserId;
    /// A store's id.
    StoreId;
    /// A node's id (one server of a store).
    NodeId;
    /// A job's id.
    JobId;
    /// A backup's id.
    BackupId;
    /// A VPC's id.
    VpcId;
    /// A VPC peering's id.
    PeeringId;
    /// A firewall rule's id.
    RuleId;
    /// An OAuth2 client credential's id.
    CredentialId;
    /// An invitation's id.
    InvitationId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_uuid_on_every_wire() {
        let uuid = Uuid::now_v7();
        let id = StoreId::from(uuid);
        assert_eq!(serde_json::to_string(&id).unwrap(), serde_json::to_string(&uuid).unwrap());
        assert_eq!(serde_json::from_str::<StoreId>(&format!("\"{uuid}\"")).unwrap(), id);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(id.to_string().parse::<StoreId>().unwrap(), id);
        assert!("not-a-uuid".parse::<StoreId>().is_err());
        assert!(serde_json::from_str::<StoreId>("\"not-a-uuid\"").is_err());
        assert_eq!(id.into_uuid(), uuid);
        assert_eq!(id.as_bytes(), uuid.as_bytes());
    }

    #[test]
    fn its_schema_is_a_uuids() {
        use utoipa::PartialSchema;
        assert_eq!(
            serde_json::to_value(NodeId::schema()).unwrap(),
            serde_json::json!({"type": "string", "format": "uuid"})
        );
    }

    #[test]
    fn new_ids_are_v7() {
        assert_eq!(JobId::new().0.get_version_num(), 7);
    }
}
