//! The database parameters a parameter group may set: their types, ranges and units, and the
//! validation that turns a value as written (`64MB`, `5min`, `true`) into the setting PostgreSQL
//! reports (`8192`, `300`, `on`), so that drift is a plain comparison.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const CATALOG: &str = include_str!("parameters.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Integer,
    Real,
    Bool,
    Enum,
    String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDef {
    pub name: String,
    pub r#type: ParamType,
    /// The unit PostgreSQL reports the setting in (`kB`, `8kB`, `MB`, `ms`, `s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// In `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    pub default: String,
    /// Whether a change applies only after the server restarts.
    #[serde(default)]
    pub restart: bool,
    pub description: String,
}

#[derive(Debug, Deserialize)]
struct File {
    postgres: Vec<ParamDef>,
}

#[derive(Debug, Clone)]
pub struct ParamCatalog {
    postgres: Vec<ParamDef>,
}

fn unit_factor(unit: &str) -> Option<(f64, &'static str)> {
    Some(match unit {
        "B" => (1.0, "memory"),
        "kB" => (1024.0, "memory"),
        "8kB" => (8192.0, "memory"),
        "MB" => (1024.0 * 1024.0, "memory"),
        "GB" => (1024.0 * 1024.0 * 1024.0, "memory"),
        "TB" => (1024.0f64.powi(4), "memory"),
        "us" => (0.001, "time"),
        "ms" => (1.0, "time"),
        "s" => (1000.0, "time"),
        "min" => (60_000.0, "time"),
        "h" => (3_600_000.0, "time"),
        "d" => (86_400_000.0, "time"),
        _ => return None,
    })
}

/// The built-in catalog, parsed once.
pub fn catalog() -> &'static ParamCatalog {
    static CATALOG_ONCE: std::sync::LazyLock<ParamCatalog> = std::sync::LazyLock::new(ParamCatalog::load);
    &CATALOG_ONCE
}

impl ParamCatalog {
    pub fn load() -> Self {
        let file: File = toml::from_str(CATALOG).expect("the built-in parameter catalog parses");
        Self { postgres: file.postgres }
    }

    /// The parameters for a vendor (every supported PostgreSQL version shares them).
    pub fn for_vendor(&self, vendor: &str) -> Option<&[ParamDef]> {
        (vendor == "postgres").then_some(self.postgres.as_slice())
    }

    pub fn get(&self, vendor: &str, name: &str) -> Option<&ParamDef> {
        self.for_vendor(vendor)?.iter().find(|p| p.name == name)
    }

    /// A memory parameter's setting (as [`ParamCatalog::canonical`] gives it) in bytes; `None`
    /// for a parameter that is not a quantity of memory.
    pub fn bytes(&self, vendor: &str, name: &str, setting: &str) -> Option<f64> {
        let unit = self.get(vendor, name)?.unit.as_deref()?;
        let (factor, kind) = unit_factor(unit)?;
        let n: f64 = setting.trim().parse().ok()?;
        (kind == "memory").then_some(n * factor)
    }

    /// The setting as PostgreSQL will report it, or what is wrong with the value.
    pub fn canonical(&self, vendor: &str, name: &str, raw: &str) -> Result<String, String> {
        let def = self.get(vendor, name).ok_or_else(|| format!("{name} is not a parameter Berth manages"))?;
        let v = raw.trim();
        let range = || match (def.min, def.max) {
            (Some(a), Some(b)) => {
                format!("{a} to {b}{}", def.unit.as_deref().map(|u| format!(" (in {u})")).unwrap_or_default())
            }
            _ => String::new(),
        };
        match def.r#type {
            ParamType::Bool => match v.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => Ok("on".into()),
                "off" | "false" | "no" | "0" => Ok("off".into()),
                _ => Err("must be on or off".into()),
            },
            ParamType::Enum => {
                let values = def.values.clone().unwrap_or_default();
                let lower = v.to_ascii_lowercase();
                values
                    .iter()
                    .find(|x| **x == lower)
                    .cloned()
                    .ok_or_else(|| format!("must be one of: {}", values.join(", ")))
            }
            ParamType::String => {
                if v.is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control() || c == '\'') {
                    Err("must be 1 to 256 characters, without quotes or control characters".into())
                } else {
                    Ok(v.to_owned())
                }
            }
            ParamType::Real => {
                let x: f64 = v.parse().map_err(|_| format!("must be a number, {}", range()))?;
                if def.min.is_some_and(|m| x < m) || def.max.is_some_and(|m| x > m) || !x.is_finite() {
                    return Err(format!("must be {}", range()));
                }
                Ok(format!("{x}"))
            }
            ParamType::Integer => {
                let split = v.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(v.len());
                let (num, unit) = v.split_at(split);
                let n: f64 = num.parse().map_err(|_| {
                    format!(
                        "must be a whole number{}, {}",
                        def.unit.as_deref().map(|u| format!(" of {u} or with a unit")).unwrap_or_default(),
                        range()
                    )
                })?;
                let base = match (unit.trim(), def.unit.as_deref()) {
                    ("", _) => n,
                    (given, Some(base)) => {
                        let (g, gk) = unit_factor(given).ok_or_else(|| format!("unknown unit {given}"))?;
                        let (b, bk) = unit_factor(base).ok_or_else(|| format!("unknown base unit {base}"))?;
                        if gk != bk {
                            return Err(format!("{given} is not a unit of {bk}"));
                        }
                        (n * g / b).round()
                    }
                    (given, None) => return Err(format!("takes no unit, not {given}")),
                };
                if def.min.is_some_and(|m| base < m) || def.max.is_some_and(|m| base > m) {
                    return Err(format!("must be {}", range()));
                }
                Ok(format!("{}", base as i64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_settings_in_the_reported_unit() {
        let c = ParamCatalog::load();
        assert_eq!(c.canonical("postgres", "shared_buffers", "128MB").unwrap(), "16384");
        assert_eq!(c.canonical("postgres", "work_mem", "8MB").unwrap(), "8192");
        assert_eq!(c.canonical("postgres", "work_mem", "2048").unwrap(), "2048");
        assert_eq!(c.canonical("postgres", "statement_timeout", "5s").unwrap(), "5000");
        assert_eq!(c.canonical("postgres", "checkpoint_timeout", "5min").unwrap(), "300");
        assert_eq!(c.canonical("postgres", "jit", "false").unwrap(), "off");
        assert_eq!(
            c.canonical("postgres", "default_transaction_isolation", "Serializable").unwrap(),
            "serializable"
        );
        assert_eq!(c.canonical("postgres", "random_page_cost", "1.1").unwrap(), "1.1");
        for (name, bad) in [
            ("max_connections", "9"),
            ("max_connections", "lots"),
            ("work_mem", "8 parsecs"),
            ("work_mem", "5s"),
            ("jit", "maybe"),
            ("wal_compression", "gzip"),
            ("timezone", "UTC'; drop table x"),
            ("fsync", "off"),
        ] {
            assert!(c.canonical("postgres", name, bad).is_err(), "{name}={bad}");
        }
        let e = c.canonical("postgres", "max_connections", "9").unwrap_err();
        assert!(e.contains("10 to 5000"), "{e}");
    }
}
