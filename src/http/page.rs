//! The one way the API pages a list ordered by creation: a page size within the list's
//! bounds, and an opaque cursor, `<unix nanoseconds>_<id>` of the last item of the previous page.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// What a list request asked for, checked.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// Where the previous page ended.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: i64,
}

/// The default page size of every list.
const DEFAULT_LIMIT: i64 = 50;

impl PageRequest {
    /// A page of `limit` (1 to `max`, default 50) after `cursor`.
    pub fn new(cursor: Option<&str>, limit: Option<i64>, max: i64) -> ApiResult<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=max).contains(&limit) {
            return Err(ApiError::field("limit", format!("must be 1 to {max}")));
        }
        Ok(Self { after: cursor.map(decode).transpose()?, limit })
    }

    /// How many rows to read: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// The page of `rows` (read with [`PageRequest::fetch`]), and the cursor of the next one if
    /// there is one; `key` is a row's creation time and id.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> (OffsetDateTime, Uuid),
    ) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if rows.len() <= limit {
            return (rows, None);
        }
        rows.truncate(limit);
        let next = rows.last().map(|row| encode(key(row)));
        (rows, next)
    }
}

fn encode((at, id): (OffsetDateTime, Uuid)) -> String {
    format!("{}_{id}", at.unix_timestamp_nanos())
}

fn decode(c: &str) -> ApiResult<(OffsetDateTime, Uuid)> {
    let bad = || ApiError::field("cursor", "is not a cursor from this API");
    let (at, id) = c.split_once('_').ok_or_else(bad)?;
    let at = at
        .parse::<i128>()
        .ok()
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_pages_end() {
        let at = OffsetDateTime::now_utc();
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode((at, id))).unwrap(), (at, id));
        assert!(decode("garbage").is_err());
        assert!(PageRequest::new(None, Some(0), 100).is_err());
        assert!(PageRequest::new(None, Some(101), 100).is_err());
        let page = PageRequest::new(None, Some(2), 100).unwrap();
        assert_eq!(page.fetch(), 3);
        let rows = vec![(at, id), (at, id), (at, Uuid::nil())];
        let (items, next) = page.finish(rows.clone(), |r| *r);
        assert_eq!(items.len(), 2);
        assert_eq!(next, Some(encode((at, id))));
        assert_eq!(page.finish(rows[..2].to_vec(), |r| *r).1, None);
    }
}
