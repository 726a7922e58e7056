//! Validated values of the domain: a value of these types has passed its rules.

mod cidr;
mod ctx;
mod email;
mod error;
pub mod ha;
mod ids;
mod invitation;
pub mod names;
mod network;
pub mod password;
mod precondition;
mod quota;
mod role;
mod status;

pub use cidr::{Cidr, VpcBlock, gateway, node_addresses};
pub use ctx::{AuthMethod, Ctx, Principal, PrincipalOrg};
pub use email::Email;
pub use error::{Error, FieldError, Result, on_constraint};
pub use ids::{
    BackupId, CredentialId, InvitationId, JobId, NodeId, OrgId, PeeringId, RuleId, StoreId, UserId, VpcId,
};
pub use invitation::InvitationStatus;
pub use network::{NetworkType, StoreNetwork};
pub use password::NewPassword;
pub use precondition::Precondition;
pub use quota::{Quota, QuotaExceeded};
pub use role::{Role, Scope};
pub use status::{
    BackupKind, BackupStatus, JobStatus, NodeRole, NodeState, PeeringStatus, StoreOperation, StoreStatus,
    VpcStatus,
};
