//! Request extractors: bodies and paths with problem+json rejections, and authentication.

mod auth;
mod json;

pub use auth::{ActiveUser, Authenticated};
pub use json::{AppJson, AppPath};
