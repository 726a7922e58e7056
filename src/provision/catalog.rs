//! Deployment options ("content"): what can be created here, and the validation of a store
//! request against it.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InstanceSettings;
use crate::domain::{Error, FieldError};

const DEFAULT: &str = include_str!("catalog.default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub vendors: Vec<VendorFile>,
    pub instance_sizes: Vec<InstanceSize>,
    pub clouds: Vec<Cloud>,
    pub volume_size_gb: VolumeRange,
    pub topologies: Vec<Topology>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorFile {
    pub code: String,
    pub name: String,
}

/// What the catalog offers, with the versions the driver can actually run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeployOptions {
    pub vendors: Vec<Vendor>,
    pub instance_sizes: Vec<InstanceSize>,
    pub clouds: Vec<Cloud>,
    pub volume_size_gb: VolumeRange,
    pub topologies: Vec<Topology>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Vendor {
    #[schema(example = "postgres")]
    pub code: String,
    pub name: String,
    /// Major versions installed on the host, ascending.
    #[schema(example = json!(["15"]))]
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceSize {
    #[schema(example = "small")]
    pub code: String,
    pub name: String,
    pub memory_mb: u32,
    pub shared_buffers_mb: u32,
    pub max_connections: u32,
    pub work_mem_mb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cloud {
    #[schema(example = "local")]
    pub code: String,
    pub name: String,
    pub regions: Vec<Region>,
    /// Whether VPCs can be made on this cloud here; decided by the host, not the catalog file.
    #[serde(default, deserialize_with = "decided_by_the_host")]
    pub vpcs: VpcSupport,
    /// What separates one store from another on this cloud here (OS users, volume sizes);
    /// decided by the host, not the catalog file.
    #[serde(default, deserialize_with = "decided_by_the_host")]
    pub isolation: crate::provision::Isolation,
}

/// A catalog file that sets what the host decides is refused, rather than silently overruled.
fn decided_by_the_host<'de, D: serde::Deserializer<'de>, T>(_: D) -> Result<T, D::Error> {
    Err(serde::de::Error::custom("is decided by the host, not set in the catalog file"))
}

/// Whether private networks (VPCs) are available, and if not, why.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct VpcSupport {
    pub available: bool,
    /// Why VPCs are unavailable.
    #[schema(
        example = "VPCs on this cloud need Berth to run as root, to make network namespaces; it runs as uid 1000"
    )]
    pub reason: Option<String>,
}

impl From<Result<(), String>> for VpcSupport {
    fn from(r: Result<(), String>) -> Self {
        Self { available: r.is_ok(), reason: r.err() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    #[schema(example = "local-1")]
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeRange {
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub code: String,
    pub name: String,
    pub min_nodes: u32,
    pub max_nodes: u32,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    options: DeployOptions,
}

/// A store request's choices, to validate.
pub struct Choice<'a> {
    pub vendor: &'a str,
    pub version: &'a str,
    pub instance_size: &'a str,
    pub volume_size: i64,
    pub nodes: i64,
    pub cloud: &'a str,
    pub region: &'a str,
}

impl Catalog {
    /// The catalog from `path`, or the built-in one; `postgres_versions` come from the driver.
    pub fn load(path: Option<&Path>, postgres_versions: Vec<String>) -> anyhow::Result<Self> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading BERTH_CATALOG {}", p.display()))?,
            None => DEFAULT.to_owned(),
        };
        let file: CatalogFile = toml::from_str(&text).context("parsing the catalog")?;
        for size in &file.instance_sizes {
            super::sizing::check_own(size).map_err(|e| {
                anyhow::anyhow!(
                    "the catalog's instance size {} does not hold its own settings: {e}",
                    size.code
                )
            })?;
        }
        let vendors = file
            .vendors
            .into_iter()
            .map(|v| Vendor {
                versions: if v.code == "postgres" { postgres_versions.clone() } else { vec![] },
                code: v.code,
                name: v.name,
            })
            .collect();
        Ok(Self {
            options: DeployOptions {
                vendors,
                instance_sizes: file.instance_sizes,
                clouds: file.clouds,
                volume_size_gb: file.volume_size_gb,
                topologies: file.topologies,
            },
        })
    }

    pub fn options(&self) -> &DeployOptions {
        &self.options
    }

    /// A cloud and one of its regions, for what is placed there besides stores (VPCs).
    pub fn validate_location(&self, cloud: &str, region: &str) -> Result<(), Error> {
        let mut errors = vec![];
        self.location_errors(cloud, region, &mut errors);
        invalid(errors)
    }

    fn location_errors(&self, cloud: &str, region: &str, errors: &mut Vec<FieldError>) {
        let o = &self.options;
        let list = |v: Vec<&str>| v.join(", ");
        let mut bad = |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
        match o.clouds.iter().find(|cl| cl.code == cloud) {
            None => bad(
                "cloud",
                format!("must be one of: {}", list(o.clouds.iter().map(|c| c.code.as_str()).collect())),
            ),
            Some(cl) if !cl.regions.iter().any(|r| r.code == region) => bad(
                "region",
                format!("must be one of: {}", list(cl.regions.iter().map(|r| r.code.as_str()).collect())),
            ),
            Some(_) => {}
        }
    }

    pub fn instance_size(&self, code: &str) -> Option<&InstanceSize> {
        self.options.instance_sizes.iter().find(|s| s.code == code)
    }

    pub fn settings(&self, size: &str) -> Option<InstanceSettings> {
        self.instance_size(size).map(|s| InstanceSettings {
            shared_buffers_mb: s.shared_buffers_mb,
            max_connections: s.max_connections,
            work_mem_mb: s.work_mem_mb,
        })
    }

    pub fn node_range(&self) -> (u32, u32) {
        let t = &self.options.topologies;
        (t.iter().map(|t| t.min_nodes).min().unwrap_or(1), t.iter().map(|t| t.max_nodes).max().unwrap_or(1))
    }

    /// Every field that does not fit the catalog, each naming the values allowed.
    pub fn validate(&self, c: &Choice<'_>) -> Result<(), Error> {
        let o = &self.options;
        let mut errors = vec![];
        let mut bad = |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
        let list = |v: Vec<&str>| v.join(", ");
        match o.vendors.iter().find(|v| v.code == c.vendor) {
            None => bad(
                "vendor",
                format!("must be one of: {}", list(o.vendors.iter().map(|v| v.code.as_str()).collect())),
            ),
            Some(v) if !v.versions.iter().any(|x| x == c.version) => bad(
                "version",
                format!(
                    "{} {} is not installed here; available: {}",
                    v.name,
                    c.version,
                    list(v.versions.iter().map(String::as_str).collect())
                ),
            ),
            Some(_) => {}
        }
        if self.instance_size(c.instance_size).is_none() {
            bad(
                "instance_size",
                format!(
                    "must be one of: {}",
                    list(o.instance_sizes.iter().map(|s| s.code.as_str()).collect())
                ),
            );
        }
        let vol = &o.volume_size_gb;
        if c.volume_size < i64::from(vol.min) || c.volume_size > i64::from(vol.max) {
            bad("volume_size", format!("must be {} to {} GB", vol.min, vol.max));
        }
        let (min, max) = self.node_range();
        if c.nodes < i64::from(min) || c.nodes > i64::from(max) {
            bad("nodes", format!("must be {min} to {max}"));
        }
        self.location_errors(c.cloud, c.region, &mut errors);
        invalid(errors)
    }
}

pub(crate) fn invalid(errors: Vec<FieldError>) -> Result<(), Error> {
    if errors.is_empty() { Ok(()) } else { Err(Error::invalid(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice() -> Choice<'static> {
        Choice {
            vendor: "postgres",
            version: "15",
            instance_size: "small",
            volume_size: 10,
            nodes: 3,
            cloud: "local",
            region: "local-1",
        }
    }

    #[test]
    fn the_default_catalog_loads_and_validates() {
        let c = Catalog::load(None, vec!["15".into()]).unwrap();
        assert!(c.validate(&choice()).is_ok());
        assert_eq!(c.settings("small").unwrap().shared_buffers_mb, 256);
        let err = c
            .validate(&Choice {
                vendor: "mysql",
                instance_size: "huge",
                nodes: 0,
                volume_size: 0,
                ..choice()
            })
            .unwrap_err();
        let Error::Invalid { errors, .. } = err else { panic!() };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["vendor", "instance_size", "volume_size", "nodes"]);
        assert!(errors[1].message.contains("tiny, small, medium"));
        let err = c.validate(&Choice { version: "9.6", region: "mars", ..choice() }).unwrap_err();
        let Error::Invalid { errors, .. } = err else { panic!() };
        assert_eq!(errors[0].field, "version");
        assert!(errors[0].message.contains("available: 15"));
        assert_eq!(errors[1].field, "region");
    }
}
