//! Integration tests: the real router against a real PostgreSQL, one database per test.

mod auth;
mod embedded;
mod helpers;
mod openapi;
mod orgs;
mod sessions;
