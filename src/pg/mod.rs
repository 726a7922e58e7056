//! Running PostgreSQL servers from the machine's own binaries: locating them, running them as an
//! unprivileged user when Berth runs as root, and the embedded control database. Shared by
//! `berth serve`, the tests, and (later) the local store driver.

mod binaries;
mod embedded;
mod run_as;

pub use binaries::PgBinaries;
pub use embedded::{EmbeddedOptions, EmbeddedPg};
pub use run_as::RunAs;
