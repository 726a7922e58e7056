//! Integration tests: the real router against a real PostgreSQL, one database per test.

mod audit;
mod auth;
mod backups;
mod crashes;
mod dbs;
mod embedded;
mod firewall;
mod fuzz;
mod guardrails;
mod hardening;
mod helpers;
mod inputs;
mod invitations;
mod isolation;
mod jobs;
mod local_driver;
mod oauth2;
mod openapi;
mod orgs;
mod parameters;
mod sessions;
mod stats;
mod stores;
mod throttle;
mod tls;
mod vpcs;
