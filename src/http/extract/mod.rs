//! Request extractors: bodies, paths and queries with problem+json rejections, authentication,
//! and the request's origin for the audit trail.

mod auth;
mod json;
mod meta;

pub use auth::{ActiveUser, Authenticated};
pub use json::{AppJson, AppPath, AppQuery, MAX_JSON_BODY};
