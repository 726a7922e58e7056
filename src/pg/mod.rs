//! Running PostgreSQL servers from the machine's own binaries: locating them, running them as an
//! unprivileged user when Berth runs as root, the embedded control database, and the one
//! [`Server`] type behind both it and the local store driver.

mod binaries;
mod embedded;
mod run_as;
mod server;

pub use binaries::PgBinaries;
pub use embedded::{EmbeddedOptions, EmbeddedPg};
pub use run_as::RunAs;
pub(crate) use server::{EPHEMERAL, run_for, socket_dir_for};
pub use server::{Netns, SUPERUSER, Server};
