//! One module per resource; each turns its subcommands into calls of the one client.

pub mod api;
pub mod auth;
pub mod ha;
pub mod job;
pub mod node;
pub mod psql;
pub mod store;
pub mod version;

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

/// Every item of a paged list, following `next_cursor`.
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
        let page = ctx.client.call::<()>(ep, params, &query, None)?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => return Ok(items),
        }
    }
}
