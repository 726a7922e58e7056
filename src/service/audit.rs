//! Reading an organization's audit trail, and checking that its hash chain is unbroken.

use time::OffsetDateTime;

use crate::app::AppState;
use crate::db;
use crate::db::audit::{EventRow, Filter};
use crate::domain::{Ctx, Error, Result};

/// The largest page of events.
pub const MAX_LIMIT: i64 = 200;
const DEFAULT_LIMIT: i64 = 50;

/// Which events to read: filters, and the page (`cursor`: the previous page's `next`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Query<'a> {
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub cursor: Option<&'a str>,
    pub limit: Option<i64>,
}

/// A page of events, newest first, and the cursor of the next (older) page if there is one.
#[derive(Debug)]
pub struct Events {
    pub items: Vec<EventRow>,
    pub next: Option<String>,
}

/// The page's size (1 to [`MAX_LIMIT`], default 50) and the id it reads before.
pub fn page(q: &Query<'_>) -> Result<(i64, Option<i64>)> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::field("limit", format!("must be 1 to {MAX_LIMIT}")));
    }
    let before_id = q
        .cursor
        .map(|c| c.parse::<i64>().map_err(|_| Error::field("cursor", "is not a cursor from this API")))
        .transpose()?;
    Ok((limit, before_id))
}

/// The organization's events that `q` selects, newest first.
pub async fn list(state: &AppState, ctx: &Ctx, q: &Query<'_>) -> Result<Events> {
    let (limit, before_id) = page(q)?;
    let filter =
        Filter { actor: q.actor, action: q.action, from: q.from, to: q.to, before_id, limit: limit + 1 };
    let mut items = db::audit::list(&state.db, ctx, &filter).await?;
    let next = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|r| r.id.to_string())
    });
    Ok(Events { items, next: next.flatten() })
}

/// What checking a chain found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub checked: usize,
    /// The first event whose link or content does not match, if any.
    pub first_invalid: Option<i64>,
}

/// The first event of `chain` (oldest first) that does not link to the one before it or whose
/// hash does not match its content: an edited, inserted or deleted event breaks the chain there.
pub fn first_broken(chain: &[EventRow]) -> Option<i64> {
    let mut prev: Option<&[u8]> = None;
    for ev in chain {
        if ev.prev_hash.as_deref() != prev || ev.compute_hash(prev) != ev.hash {
            return Some(ev.id);
        }
        prev = Some(&ev.hash);
    }
    None
}

/// Recomputes the organization's hash chain.
pub async fn verify(state: &AppState, ctx: &Ctx) -> Result<Verification> {
    let chain = db::audit::chain(&state.db, ctx).await?;
    Ok(Verification { checked: chain.len(), first_invalid: first_broken(&chain) })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn chain(n: i64) -> Vec<EventRow> {
        let mut out: Vec<EventRow> = vec![];
        for id in 1..=n {
            let prev_hash = out.last().map(|e| e.hash.clone());
            let mut ev = EventRow {
                id,
                org_id: Some(crate::domain::OrgId(Uuid::nil())),
                at: OffsetDateTime::UNIX_EPOCH,
                actor_user_id: None,
                actor: Some("a@example.com".into()),
                credential_id: None,
                action: "login".into(),
                target: None,
                outcome: "success".into(),
                source_ip: None,
                request_id: None,
                details: "{}".into(),
                prev_hash,
                hash: vec![],
            };
            ev.hash = ev.compute_hash(ev.prev_hash.as_deref());
            out.push(ev);
        }
        out
    }

    #[test]
    fn an_edited_or_deleted_event_breaks_the_chain_where_it_was() {
        assert_eq!(first_broken(&[]), None);
        assert_eq!(first_broken(&chain(3)), None);
        let mut edited = chain(3);
        edited[1].action = "logout".into();
        assert_eq!(first_broken(&edited), Some(2));
        let mut deleted = chain(3);
        deleted.remove(1);
        assert_eq!(first_broken(&deleted), Some(3));
    }

    #[test]
    fn pages_are_1_to_200_and_cursors_are_ids() {
        assert_eq!(page(&Query::default()).unwrap(), (50, None));
        assert_eq!(
            page(&Query { cursor: Some("42"), limit: Some(200), ..Query::default() }).unwrap(),
            (200, Some(42))
        );
        assert!(page(&Query { limit: Some(0), ..Query::default() }).is_err());
        assert!(page(&Query { limit: Some(201), ..Query::default() }).is_err());
        assert!(page(&Query { cursor: Some("x"), ..Query::default() }).is_err());
    }
}
