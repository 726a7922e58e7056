//! Request headers that change what a call does, read after it is authorized (so that a caller
//! without the scope learns nothing of their rules): `Idempotency-Key` and `If-Match`.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::domain::Precondition;
use crate::error::{ApiError, ApiResult};
use crate::http::respond::etag;

/// The `Idempotency-Key` of a request, 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let k = v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 255 || !k.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::field("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
    }
    Ok(Some(k.to_owned()))
}

/// What `If-Match` asks for: nothing when absent or `*`; else the revision of an ETag this API
/// gave, or, for any other value, a revision nothing has.
pub fn if_match(headers: &HeaderMap) -> Option<Precondition> {
    headers.get(header::IF_MATCH).and_then(precondition)
}

fn precondition(want: &HeaderValue) -> Option<Precondition> {
    if want == "*" {
        return None;
    }
    let revision = want
        .to_str()
        .ok()
        .and_then(|s| s.strip_prefix('"')?.strip_suffix('"')?.parse::<i32>().ok())
        .filter(|r| etag(*r) == want);
    Some(revision.map_or(Precondition::Never, Precondition::Revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_names_a_revision_only_as_an_etag_of_this_api() {
        let want = |s: &'static str| precondition(&HeaderValue::from_static(s));
        assert_eq!(if_match(&HeaderMap::new()), None);
        assert_eq!(want("*"), None);
        assert_eq!(want("\"7\""), Some(Precondition::Revision(7)));
        for other in ["7", "W/\"7\"", "\"07\"", "\"x\"", "\"7\", \"8\""] {
            assert_eq!(want(other), Some(Precondition::Never), "{other}");
        }
    }

    #[test]
    fn an_idempotency_key_is_visible_ascii() {
        let key = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("idempotency-key", HeaderValue::from_static(v));
            idempotency_key(&h)
        };
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(key("retry-1").unwrap().as_deref(), Some("retry-1"));
        assert!(key("").is_err());
        assert!(key("a b").is_err());
    }
}
