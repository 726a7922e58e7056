//! Request extractors: bodies, paths and queries with problem+json rejections, authentication,
//! the request's origin for the audit trail, and the headers that condition a change.

mod auth;
mod headers;
mod json;
mod meta;

pub use auth::{ActiveUser, Authenticated};
pub use headers::{idempotency_key, if_match};
pub use json::{AppJson, AppPath, AppQuery, MAX_JSON_BODY};
