//! Firewall rules: the networks allowed to connect to a store. Each change is saved, then written
//! into every node (`service::access::apply`) before the call returns.
//!
//! A private store (one in a VPC) with no rules admits its VPC's block and the blocks of the
//! VPCs actively peered with it, following peerings as they come and go. Once it has rules, they
//! replace that default: exactly the networks listed are admitted. Removing the last rule
//! restores the default.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::firewall::{NewRule, RuleRow};
use crate::domain::{Cidr, Ctx, Error, FieldError, Result, RuleId, StoreId, on_constraint};
use crate::service::access;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRuleBody {
    /// An IPv4 or IPv6 network (`10.0.0.0/8`); a bare address means that host alone. Host bits
    /// must be clear.
    #[schema(example = "203.0.113.0/24")]
    pub source: String,
    /// At most 200 characters, without control characters.
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{0,200}$")]
    pub description: String,
    /// Optional: the rule removes itself at this time (RFC 3339, in the future).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A rule that passed `validate`.
#[derive(Debug, PartialEq)]
pub struct Valid {
    pub source: Cidr,
    pub description: String,
    pub expires_at: Option<OffsetDateTime>,
}

/// Checks one rule at `now`; errors name the field under the prefix `field` (`[2].` in a list).
pub fn validate(field: &str, r: NewRuleBody, now: OffsetDateTime) -> Result<Valid, FieldError> {
    let err = |f: &str, message: String| FieldError { field: format!("{field}{f}"), message };
    let source = Cidr::parse(&r.source).map_err(|m| err("source", m))?;
    let description = r.description.trim().to_owned();
    if description.chars().count() > 200 || description.chars().any(char::is_control) {
        return Err(err("description", "at most 200 characters, no control characters".into()));
    }
    if r.expires_at.is_some_and(|e| e <= now) {
        return Err(err("expires_at", "must be in the future".into()));
    }
    Ok(Valid { source, description, expires_at: r.expires_at })
}

/// Checks a whole set: each rule, and no network listed twice. Every offending rule is named.
pub fn validate_all(rules: Vec<NewRuleBody>, now: OffsetDateTime) -> Result<Vec<Valid>> {
    let mut valid: Vec<Valid> = vec![];
    let mut errors = vec![];
    for (i, r) in rules.into_iter().enumerate() {
        match validate(&format!("[{i}]."), r, now) {
            Ok(v) if valid.iter().any(|x| x.source == v.source) => errors.push(FieldError {
                field: format!("[{i}].source"),
                message: format!("{} is listed twice", v.source),
            }),
            Ok(v) => valid.push(v),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    Ok(valid)
}

async fn store_exists(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<()> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    Ok(())
}

/// The store's rules in force now.
pub async fn list(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<Vec<RuleRow>> {
    store_exists(state, ctx, store_id).await?;
    Ok(db::firewall::list(&state.db, ctx, store_id, state.clock.now()).await?)
}

fn new_rule(id: RuleId, r: &Valid, now: OffsetDateTime) -> NewRule<'_> {
    NewRule { id, source: r.source.net(), description: &r.description, expires_at: r.expires_at, now }
}

/// Allows a network; in force on every node when this returns.
pub async fn add(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    body: NewRuleBody,
) -> Result<RuleRow> {
    let now = state.clock.now();
    let rule = validate("", body, now).map_err(|e| Error::invalid(vec![e]))?;
    let mut tx = state.db.begin().await?;
    db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    let id = RuleId::new();
    db::firewall::insert(&mut *tx, ctx, store_id, new_rule(id, &rule, now)).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "firewall_rules_source_key")
                .then(|| Error::conflict("duplicate_rule", format!("{} is allowed already", rule.source)))
        })
    })?;
    Event::new("firewall.rule_added", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("source", rule.source.to_string())
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    access::apply(state, ctx, store_id).await?;
    Ok(RuleRow {
        id,
        store_id,
        source: rule.source.net(),
        description: rule.description,
        expires_at: rule.expires_at,
        created_at: now,
    })
}

/// Replaces the whole set at once; returns the rules in force after.
pub async fn replace(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    body: Vec<NewRuleBody>,
) -> Result<Vec<RuleRow>> {
    let now = state.clock.now();
    let rules = validate_all(body, now)?;
    let mut tx = state.db.begin().await?;
    db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    db::firewall::delete_all(&mut *tx, ctx, store_id).await?;
    for r in &rules {
        db::firewall::insert(&mut *tx, ctx, store_id, new_rule(RuleId::new(), r, now)).await?;
    }
    Event::new("firewall.rules_replaced", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("sources", rules.iter().map(|r| r.source.to_string()).collect::<Vec<_>>())
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    access::apply(state, ctx, store_id).await?;
    Ok(db::firewall::list(&state.db, ctx, store_id, now).await?)
}

/// Removes a rule; out of force on every node when this returns.
pub async fn delete(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    rule_id: RuleId,
) -> Result<()> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    if !db::firewall::delete(&mut *tx, ctx, store_id, rule_id).await? {
        return Err(Error::NotFound("firewall rule"));
    }
    Event::new("firewall.rule_removed", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("rule", rule_id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    access::apply(state, ctx, store_id).await
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);

    fn body(source: &str) -> NewRuleBody {
        NewRuleBody { source: source.into(), description: String::new(), expires_at: None }
    }

    #[test]
    fn a_network_or_a_host() {
        let v = validate("", body(" 203.0.113.0/24 "), NOW).unwrap();
        assert_eq!(v.source.to_string(), "203.0.113.0/24");
        assert_eq!(validate("", body("192.0.2.7"), NOW).unwrap().source.to_string(), "192.0.2.7/32");
        assert_eq!(validate("", body("2001:db8::/32"), NOW).unwrap().source.to_string(), "2001:db8::/32");
    }

    #[test]
    fn host_bits_and_garbage_are_refused_under_the_prefix() {
        let e = validate("[3].", body("10.0.0.1/8"), NOW).unwrap_err();
        assert_eq!(e.field, "[3].source");
        assert!(e.message.contains("10.0.0.0/8"), "names the network: {}", e.message);
        assert_eq!(validate("", body("10.0.0.0/33"), NOW).unwrap_err().field, "source");
        assert_eq!(validate("", body("everywhere"), NOW).unwrap_err().field, "source");
    }

    #[test]
    fn description_is_trimmed_and_bounded() {
        let ok = NewRuleBody { description: "  office  ".into(), ..body("10.0.0.0/8") };
        assert_eq!(validate("", ok, NOW).unwrap().description, "office");
        let long = NewRuleBody { description: "x".repeat(201), ..body("10.0.0.0/8") };
        assert_eq!(validate("", long, NOW).unwrap_err().field, "description");
        let control = NewRuleBody { description: "a\nb".into(), ..body("10.0.0.0/8") };
        assert_eq!(validate("", control, NOW).unwrap_err().field, "description");
    }

    #[test]
    fn expiry_must_be_in_the_future() {
        let at = |t| NewRuleBody { expires_at: Some(t), ..body("10.0.0.0/8") };
        assert_eq!(validate("", at(NOW), NOW).unwrap_err().field, "expires_at");
        assert_eq!(validate("", at(NOW - time::Duration::seconds(1)), NOW).unwrap_err().field, "expires_at");
        assert!(validate("", at(NOW + time::Duration::seconds(1)), NOW).is_ok());
    }

    #[test]
    fn a_set_names_every_bad_and_repeated_rule() {
        let Err(Error::Invalid { errors, .. }) =
            validate_all(vec![body("10.0.0.0/8"), body("nope"), body("10.0.0.0/8")], NOW)
        else {
            panic!("invalid")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["[1].source", "[2].source"]);
        assert!(errors[1].message.contains("listed twice"));
        assert_eq!(validate_all(vec![], NOW).unwrap(), vec![]);
    }
}
