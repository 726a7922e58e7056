//! `berthctl`: Berth's command-line client. Each command is one API call, or one call and a
//! wait; tables for people, `-o json` (the API's body) for scripts.
//!
//! Exit codes: 0 done, 1 an API, network or credentials-file error, 2 usage, 3 a wait that timed
//! out or a job that failed.

mod client;
mod cmd;
mod config;
mod context;
mod endpoints;
mod error;
mod output;
mod wait;

use clap::{Parser, Subcommand};

use crate::context::Globals;

#[derive(Debug, Parser)]
#[command(name = "berthctl", version, about = "Berth's command-line client")]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in with a password and keep a client credential for this machine.
    Login(cmd::auth::LoginArgs),
    /// Revoke this profile's credential on the server and forget it here.
    Logout,
    /// The profiles in the credentials file.
    #[command(subcommand)]
    Profile(cmd::auth::ProfileCommand),
    /// Stores: managed PostgreSQL clusters.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
    /// Jobs: the work that changes stores.
    #[command(subcommand)]
    Job(cmd::job::JobCommand),
    /// A store's nodes: add, remove, restart, stop, start, reinitialize, maintenance.
    #[command(subcommand)]
    Node(cmd::node::NodeCommand),
    /// psql on the store (its password revealed through the API, which audits it).
    Psql(cmd::psql::PsqlArgs),
    /// Switches the primary over to a replica, now or at a time (nothing is lost).
    Switchover(cmd::ha::SwitchoverArgs),
    /// Promotes a replica because the primary is gone (asks first; `--yes` without a terminal).
    Failover(cmd::ha::FailoverArgs),
    /// The primary and each replica as last checked, and the store's HA phase.
    Topology { store: String },
    /// Every promotion of the store, newest first.
    History { store: String },
    /// What happened to the store, newest first.
    Events { store: String },
    /// The store's HA settings: pause, resume, set.
    #[command(subcommand)]
    Ha(cmd::ha::HaCommand),
    /// Who the credential acts for, and in which organizations.
    Whoami,
    /// Changes your password (every credential you made is revoked; this profile signs in again).
    Password(cmd::account::Account),
    /// Organizations: list, get, create.
    #[command(subcommand)]
    Org(cmd::org::OrgCommand),
    /// The organization's members and their roles.
    #[command(subcommand)]
    Member(cmd::org::MemberCommand),
    /// Invitations to the organization.
    #[command(subcommand)]
    Invitation(cmd::org::InvitationCommand),
    /// OAuth2 client credentials for scripts and CI (these sign in with the password).
    #[command(subcommand)]
    Credential(cmd::org::CredentialCommand),
    /// The organization's quotas and what it uses of them.
    Quotas,
    /// The organization's CA certificate (PEM), for `sslmode=verify-full`.
    Ca,
    /// A store's firewall: who may connect.
    #[command(subcommand)]
    Firewall(cmd::firewall::FirewallCommand),
    /// A store's databases.
    #[command(subcommand)]
    Db(cmd::db::DbCommand),
    /// A store's database users and their passwords.
    #[command(subcommand)]
    DbUser(cmd::db::DbUserCommand),
    /// Parameter groups: named sets of PostgreSQL settings that stores use.
    #[command(subcommand)]
    ParamGroup(cmd::params::GroupCommand),
    /// The parameters in force on a store, and the catalog of those a group may set.
    #[command(subcommand)]
    Parameters(cmd::params::ParametersCommand),
    /// Backups, their schedule, downloads and restores.
    #[command(subcommand)]
    Backup(cmd::backup::BackupCommand),
    /// VPCs: private networks for stores.
    #[command(subcommand)]
    Vpc(cmd::vpc::VpcCommand),
    /// Peerings between VPCs.
    #[command(subcommand)]
    Peering(cmd::vpc::PeeringCommand),
    /// The organization's audit trail.
    #[command(subcommand)]
    Audit(cmd::system::AuditCommand),
    /// The service's own state.
    #[command(subcommand)]
    System(cmd::system::SystemCommand),
    /// What a store can be made of: versions, sizes, clouds, regions.
    DeployOptions,
    /// The client's and the server's versions.
    Version,
    /// A shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Any API call, authenticated like the rest: `berthctl api GET /api/v1/orgs`.
    Api(cmd::api::ApiArgs),
    /// Writes man pages (berthctl.1 and one per subcommand) into a folder.
    Man {
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = cmd::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
