//! Where a store's nodes listen: on the host, or inside a VPC.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Error, Result, VpcId};

/// Where a store's nodes listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// The host's loopback (127.0.0.1), behind the store's firewall rules.
    Public,
    /// Inside a VPC: each node has its own address from the VPC's block and is reachable from
    /// that VPC and from VPCs actively peered with it, and from nowhere else.
    Private,
}

/// A store's network, chosen at creation.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreNetwork {
    pub r#type: NetworkType,
    /// For `private`: the VPC, of the same cloud and region as the store, and available.
    #[schema(value_type = Option<Uuid>)]
    pub vpc_id: Option<VpcId>,
}

impl StoreNetwork {
    pub const PUBLIC: Self = Self { r#type: NetworkType::Public, vpc_id: None };

    /// The VPC a store asks to be placed in, if any.
    pub fn requested_vpc(&self) -> Result<Option<VpcId>> {
        match (self.r#type, self.vpc_id) {
            (NetworkType::Public, None) => Ok(None),
            (NetworkType::Public, Some(_)) => {
                Err(Error::field("network.vpc_id", "only a private network is in a VPC"))
            }
            (NetworkType::Private, None) => {
                Err(Error::field("network.vpc_id", "a private store needs the VPC to place it in"))
            }
            (NetworkType::Private, Some(id)) => Ok(Some(id)),
        }
    }

    pub fn of(vpc_id: Option<VpcId>) -> Self {
        match vpc_id {
            Some(id) => Self { r#type: NetworkType::Private, vpc_id: Some(id) },
            None => Self::PUBLIC,
        }
    }
}
