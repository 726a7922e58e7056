//! One module per resource; each turns its subcommands into calls of the one client.

pub mod account;
pub mod api;
pub mod auth;
pub mod backup;
pub mod db;
pub mod firewall;
pub mod ha;
pub mod job;
pub mod node;
pub mod org;
pub mod params;
pub mod psql;
pub mod store;
pub mod system;
pub mod version;
pub mod vpc;

use clap::CommandFactory;

use crate::context::connect;
use crate::error::Result;
use crate::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    let g = &cli.globals;
    match cli.command {
        Command::Login(args) => auth::login(g, &args),
        Command::Logout => auth::logout(g),
        Command::Profile(c) => auth::profile(g, c),
        Command::Store(c) => store::run(&connect(g)?, c),
        Command::Job(c) => job::run(&connect(g)?, c),
        Command::Node(c) => node::run(&connect(g)?, c),
        Command::Psql(a) => psql::run(&connect(g)?, a),
        Command::Switchover(a) => ha::switchover(&connect(g)?, a),
        Command::Failover(a) => ha::failover(&connect(g)?, a),
        Command::Topology { store } => ha::topology(&connect(g)?, &store),
        Command::History { store } => ha::history(&connect(g)?, &store),
        Command::Events { store } => ha::events(&connect(g)?, &store),
        Command::Ha(c) => ha::run(&connect(g)?, c),
        Command::Org(c) => org::org(&connect(g)?, c),
        Command::Member(c) => org::member(&connect(g)?, c),
        Command::Invitation(c) if c.is_the_accounts() => org::my_invitation(g, c),
        Command::Invitation(c) => org::invitation(&connect(g)?, c),
        Command::Whoami => account::whoami(&connect(g)?),
        Command::Password(a) => account::password(g, &a),
        Command::Credential(c) => org::credential(&connect(g)?, c),
        Command::Quotas => org::quotas(&connect(g)?),
        Command::Ca => org::ca(&connect(g)?),
        Command::Firewall(c) => firewall::run(&connect(g)?, c),
        Command::Db(c) => db::db(&connect(g)?, c),
        Command::DbUser(c) => db::user(&connect(g)?, c),
        Command::ParamGroup(c) => params::group(&connect(g)?, c),
        Command::Parameters(c) => params::parameters(&connect(g)?, c),
        Command::Backup(c) => backup::run(&connect(g)?, c),
        Command::Vpc(c) => vpc::vpc(&connect(g)?, c),
        Command::Peering(c) => vpc::peering(&connect(g)?, c),
        Command::Audit(c) => system::audit(&connect(g)?, c),
        Command::System(c) => system::system(&connect(g)?, c),
        Command::DeployOptions => system::deploy_options(&connect(g)?),
        Command::Version => version::run(g),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "berthctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Api(args) => api::run(&connect(g)?, &args),
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
                .map_err(|e| {
                    crate::error::CliError::Usage(format!("writing man pages to {}: {e}", dir.display()))
                })?;
            eprintln!("Man pages written to {}", dir.display());
            Ok(())
        }
    }
}

/// A time as the API writes it (RFC 3339), for clap.
pub fn rfc3339(s: &str) -> std::result::Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time (2026-12-02T17:00:00Z): {e}"))
}

/// A time as the API takes it in a query (RFC 3339).
pub fn rfc3339_text(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).expect("a time formats")
}

/// An id the lookups gave (the user's UUID, or the server's id of a name), as the type a
/// request wants.
pub fn parse_id<T: std::str::FromStr>(id: &str) -> Result<T> {
    id.parse().map_err(|_| {
        crate::error::CliError::Network(format!("the server named something by {id:?}, not an id"))
    })
}

/// Asks on the terminal before something that cannot be undone; without a terminal, only
/// `--yes` lets it go ahead.
pub fn confirm(yes: bool, question: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::error::CliError::Usage(format!(
            "{question} Not without a terminal to confirm on: add --yes to go ahead"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok();
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(crate::error::CliError::Usage("not confirmed; nothing was done".into()))
    }
}

/// The id of what the user named: the argument itself when it is a UUID, else the id (`id_key`)
/// of the one item of list `ep` whose `name_key` is it (a 404 naming it otherwise).
pub fn resolve_named(
    ctx: &crate::context::Ctx,
    ep: crate::endpoints::Endpoint,
    params: &[(&str, &str)],
    (name_key, id_key): (&str, &str),
    wanted: &str,
    what: &str,
) -> Result<String> {
    if uuid::Uuid::parse_str(wanted).is_ok() {
        return Ok(wanted.to_string());
    }
    list_all(ctx, ep, params)?
        .iter()
        .find(|s| s[name_key].as_str() == Some(wanted))
        .and_then(|s| s[id_key].as_str().map(str::to_string))
        .ok_or_else(|| not_found(what, wanted))
}

/// What the server would answer for something of the organization it does not have.
pub fn not_found(what: &str, wanted: &str) -> crate::error::CliError {
    crate::error::CliError::Api {
        status: 404,
        title: "Not found".into(),
        detail: Some(format!("no {what} {wanted:?} in this organization")),
        code: Some("not_found".into()),
    }
}

/// Every item of a list of the organization (`params` after `org_id`), following
/// `next_cursor` where it is paged.
pub fn list_all(
    ctx: &crate::context::Ctx,
    ep: crate::endpoints::Endpoint,
    params: &[(&str, &str)],
) -> Result<Vec<serde_json::Value>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "100".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = ctx.query::<()>(ep, params, &query, None)?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => return Ok(items),
        }
    }
}
