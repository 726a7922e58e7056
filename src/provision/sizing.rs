//! What an instance size can hold: the bounds its memory puts on the parameters a parameter
//! group sets. A group is not tied to a size, so the bounds are checked wherever a group meets
//! one: a new or changed group must fit at least one offered size, applying a group needs the
//! store's size to hold it, and a store is resized only to a size that holds its group.
//!
//! For a size of `M` MB of memory:
//!
//! - `shared_buffers` ≤ 40 % of `M`. PostgreSQL's advice is 25 % to start with; past about 40 %
//!   the buffer cache crowds out the backends' own memory and the OS page cache, which
//!   PostgreSQL also reads through.
//! - `max_connections` ≤ `M` / 4 MB. Every connection is a process holding some megabytes of its
//!   own (catalog caches, plans, buffers) before it sorts anything; with less than 4 MB each, a
//!   full house swaps.
//! - `work_mem` × `max_connections` ≤ `M`: one sort or hash per connection at once, each using
//!   all its `work_mem`, must fit in memory. A loose bound (a query may run several), but one
//!   that refuses the settings certain to run out.
//! - `maintenance_work_mem` ≤ 25 % of `M`: VACUUM, CREATE INDEX and autovacuum take it beside
//!   the buffer cache.
//! - `effective_cache_size` ≤ `M`. It allocates nothing, but a cache larger than the machine
//!   makes the planner choose index scans that then read from disk.
//!
//! A parameter the group does not set keeps the size's own setting (`shared_buffers`,
//! `max_connections`, `work_mem`) or PostgreSQL's default; a bound is checked when the group
//! sets one of its parameters. Every size of the catalog must hold its own settings.

use serde_json::Value;

use super::catalog::{InstanceSize, invalid};
use super::parameters::catalog;
use crate::domain::{FieldError, Result};

/// The bounds are PostgreSQL's.
const VENDOR: &str = "postgres";
const MB: f64 = 1024.0 * 1024.0;

/// The largest settings a size holds, from its memory (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub memory_mb: u64,
    pub shared_buffers_mb: u64,
    pub max_connections: u64,
    pub maintenance_work_mem_mb: u64,
    pub effective_cache_size_mb: u64,
}

impl Bounds {
    pub fn of(size: &InstanceSize) -> Self {
        let m = u64::from(size.memory_mb);
        Self {
            memory_mb: m,
            shared_buffers_mb: m * 2 / 5,
            max_connections: m / 4,
            maintenance_work_mem_mb: m / 4,
            effective_cache_size_mb: m,
        }
    }
}

/// A parameter of a group that a size cannot hold, and the bound it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub parameter: &'static str,
    pub message: String,
}

/// A memory parameter the group sets, in MB.
fn mb(group: &Value, name: &str) -> Option<f64> {
    let setting = group.get(name)?.as_str()?;
    Some(catalog().bytes(VENDOR, name, setting)? / MB)
}

fn number(group: &Value, name: &str) -> Option<f64> {
    group.get(name)?.as_str()?.parse().ok()
}

/// Megabytes as a person writes them: whole, or to two places.
fn show(mb: f64) -> String {
    if mb.fract() == 0.0 { format!("{mb:.0}") } else { format!("{mb:.2}") }
}

/// Every parameter of `group` (settings as [`ParamCatalog::canonical`] gives them) that a store
/// of `size` cannot hold.
///
/// [`ParamCatalog::canonical`]: super::parameters::ParamCatalog::canonical
pub fn misfits(size: &InstanceSize, group: &Value) -> Vec<Misfit> {
    let b = Bounds::of(size);
    let (code, memory) = (&size.code, b.memory_mb);
    let mut out = vec![];
    let mut over = |parameter: &'static str, value: f64, limit: u64, unit: &str, why: String| {
        if value > limit as f64 {
            let message = format!(
                "{}{unit} is more than the {code} size holds: at most {limit}{unit} ({why})",
                show(value)
            );
            out.push(Misfit { parameter, message });
        }
    };
    if let Some(v) = mb(group, "shared_buffers") {
        over("shared_buffers", v, b.shared_buffers_mb, " MB", format!("40% of its {memory} MB of memory"));
    }
    let connections = number(group, "max_connections");
    if let Some(v) = connections {
        over(
            "max_connections",
            v,
            b.max_connections,
            "",
            format!("one per 4 MB of its {memory} MB of memory"),
        );
    }
    if let Some(v) = mb(group, "maintenance_work_mem") {
        let why = format!("25% of its {memory} MB of memory");
        over("maintenance_work_mem", v, b.maintenance_work_mem_mb, " MB", why);
    }
    if let Some(v) = mb(group, "effective_cache_size") {
        over("effective_cache_size", v, b.effective_cache_size_mb, " MB", "its memory".into());
    }
    let work_mem = mb(group, "work_mem");
    if work_mem.is_some() || connections.is_some() {
        let w = work_mem.unwrap_or(f64::from(size.work_mem_mb));
        let c = connections.unwrap_or(f64::from(size.max_connections));
        if w * c > memory as f64 {
            let parameter = if work_mem.is_some() { "work_mem" } else { "max_connections" };
            let message = format!(
                "work_mem × max_connections is {} MB × {c} = {} MB, more than the {memory} MB of memory of the {code} size",
                show(w),
                show(w * c)
            );
            out.push(Misfit { parameter, message });
        }
    }
    out
}

fn field(parameter: &str, message: String) -> FieldError {
    FieldError { field: format!("parameters.{parameter}"), message }
}

fn refuse(misfits: Vec<Misfit>, error: impl Fn(Misfit) -> FieldError) -> Result<()> {
    invalid(misfits.into_iter().map(error).collect())
}

/// A store of `size` holds the group, or 422 names each parameter over its bound.
pub fn check(size: &InstanceSize, group: &Value) -> Result<()> {
    refuse(misfits(size, group), |m| field(m.parameter, m.message))
}

/// A changed group still fits the store `store` that uses it, or 422 names the store too.
pub fn check_user(store: &str, size: &InstanceSize, group: &Value) -> Result<()> {
    refuse(misfits(size, group), |m| {
        field(m.parameter, format!("store {store} uses this group: {}", m.message))
    })
}

/// A store may take the size `size` with its group, or 422 on `instance_size` names the
/// group's parameters the size cannot hold.
pub fn check_resize(size: &InstanceSize, group: &Value) -> Result<()> {
    refuse(misfits(size, group), |m| FieldError {
        field: "instance_size".into(),
        message: format!("the store's parameter group sets {}: {}", m.parameter, m.message),
    })
}

/// Some size of `sizes` holds the group, or 422 names each parameter the largest cannot hold.
pub fn check_any(sizes: &[InstanceSize], group: &Value) -> Result<()> {
    if sizes.iter().any(|s| misfits(s, group).is_empty()) {
        return Ok(());
    }
    let Some(largest) = sizes.iter().max_by_key(|s| s.memory_mb) else { return Ok(()) };
    refuse(misfits(largest, group), |m| {
        field(m.parameter, format!("no instance size holds it: {}", m.message))
    })
}

/// The size's own settings, as a group would set them.
fn own_settings(size: &InstanceSize) -> Value {
    serde_json::json!({
        "shared_buffers": (u64::from(size.shared_buffers_mb) * 128).to_string(),
        "max_connections": size.max_connections.to_string(),
        "work_mem": (u64::from(size.work_mem_mb) * 1024).to_string(),
    })
}

/// A size of the catalog holds its own settings, or what it does not hold.
pub fn check_own(size: &InstanceSize) -> Result<(), String> {
    let m = misfits(size, &own_settings(size));
    if m.is_empty() {
        Ok(())
    } else {
        Err(m.into_iter().map(|m| format!("{}: {}", m.parameter, m.message)).collect::<Vec<_>>().join("; "))
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::provision::catalog::Catalog;

    fn sizes() -> Vec<InstanceSize> {
        Catalog::load(None, vec!["15".into()]).unwrap().options().instance_sizes.clone()
    }

    fn size(code: &str) -> InstanceSize {
        sizes().into_iter().find(|s| s.code == code).unwrap()
    }

    fn canonical(pairs: &[(&str, &str)]) -> Value {
        let c = catalog();
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String(c.canonical(VENDOR, k, v).unwrap())))
                .collect(),
        )
    }

    #[test]
    fn the_bounds_follow_memory_and_every_size_holds_its_own_settings() {
        let tiny = Bounds::of(&size("tiny"));
        assert_eq!(
            (tiny.shared_buffers_mb, tiny.max_connections, tiny.maintenance_work_mem_mb),
            (102, 64, 64)
        );
        for s in sizes() {
            assert_eq!(check_own(&s), Ok(()), "{}", s.code);
        }
        let mut greedy = size("tiny");
        greedy.shared_buffers_mb = 200;
        assert!(check_own(&greedy).unwrap_err().contains("shared_buffers"));
    }

    #[test]
    fn each_bound_names_its_parameter_and_limit() {
        let tiny = size("tiny");
        let m = misfits(&tiny, &canonical(&[("shared_buffers", "128MB")]));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].parameter, "shared_buffers");
        assert!(m[0].message.contains("at most 102 MB"), "{}", m[0].message);
        assert!(misfits(&tiny, &canonical(&[("shared_buffers", "100MB")])).is_empty());

        let m = misfits(&tiny, &canonical(&[("max_connections", "100")]));
        let names: Vec<_> = m.iter().map(|m| m.parameter).collect();
        assert_eq!(names, ["max_connections"], "2 MB × 100 fits 256 MB: {m:?}");
        let m = misfits(&tiny, &canonical(&[("work_mem", "8MB")]));
        assert_eq!(m[0].parameter, "work_mem");
        assert!(m[0].message.contains("8 MB × 50 = 400 MB"), "{}", m[0].message);
        // The size's own work_mem times the group's connections.
        let m = misfits(&size("small"), &canonical(&[("max_connections", "256"), ("work_mem", "5MB")]));
        assert_eq!(m[0].parameter, "work_mem");
        assert!(misfits(&size("small"), &canonical(&[("max_connections", "250")])).is_empty());

        let m =
            misfits(&tiny, &canonical(&[("maintenance_work_mem", "65MB"), ("effective_cache_size", "4GB")]));
        let names: Vec<_> = m.iter().map(|m| m.parameter).collect();
        assert_eq!(names, ["maintenance_work_mem", "effective_cache_size"]);
        assert!(misfits(&tiny, &canonical(&[("statement_timeout", "5s"), ("jit", "off")])).is_empty());
    }

    #[test]
    fn a_group_no_size_holds_is_refused_naming_the_largest() {
        let all = sizes();
        assert!(check_any(&all, &canonical(&[("shared_buffers", "1GB")])).is_ok(), "medium holds it");
        assert!(check(&size("tiny"), &canonical(&[("shared_buffers", "1GB")])).is_err());
        let err = check_any(&all, &canonical(&[("shared_buffers", "64GB")])).unwrap_err();
        let crate::domain::Error::Invalid { errors, .. } = err else { panic!() };
        assert_eq!(errors[0].field, "parameters.shared_buffers");
        assert!(errors[0].message.contains("medium") && errors[0].message.contains("1638 MB"), "{errors:?}");
    }
}
