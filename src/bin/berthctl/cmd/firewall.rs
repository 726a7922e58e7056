//! `berthctl firewall list|add|remove|replace STORE`: who may connect to a store, as
//! `pg_hba.conf` entries on every node.

use berth::service::firewall::NewRuleBody;

use super::{confirm, list_all, resolve_named, rfc3339, store::resolve};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::Result;

const RULE_COLUMNS: &[&str] = &["id", "source", "description", "expires_at", "created_at"];

#[derive(Debug, clap::Subcommand)]
pub enum FirewallCommand {
    /// The store's rules.
    List { store: String },
    /// Lets a network (or one address) connect.
    Add {
        store: String,
        /// An IPv4 or IPv6 network (`10.0.0.0/8`), or one address.
        source: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The rule removes itself at this time (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        expires_at: Option<time::OffsetDateTime>,
    },
    /// Removes a rule, named by its id or its source.
    Remove { store: String, rule: String },
    /// Replaces every rule with these sources (none: nobody may connect; asks first).
    Replace { store: String, sources: Vec<String> },
}

pub fn run(ctx: &Ctx, c: FirewallCommand) -> Result<()> {
    match c {
        FirewallCommand::List { store } => {
            let id = resolve(ctx, &store)?;
            ctx.out.list(&list_all(ctx, endpoints::FIREWALL_LIST, &[("store_id", &id)])?, RULE_COLUMNS);
        }
        FirewallCommand::Add { store, source, description, expires_at } => {
            let id = resolve(ctx, &store)?;
            let body = NewRuleBody { source, description, expires_at };
            ctx.out.one(&ctx.call(endpoints::FIREWALL_ADD, &[("store_id", &id)], Some(&body))?, RULE_COLUMNS);
        }
        FirewallCommand::Remove { store, rule } => {
            let id = resolve(ctx, &store)?;
            let params = [("store_id", id.as_str())];
            let rule_id =
                resolve_named(ctx, endpoints::FIREWALL_LIST, &params, ("source", "id"), &rule, "rule")?;
            ctx.send(endpoints::FIREWALL_DELETE, &[("store_id", &id), ("rule_id", &rule_id)])?;
            eprintln!("Rule {rule} removed");
        }
        FirewallCommand::Replace { store, sources } => {
            let id = resolve(ctx, &store)?;
            if sources.is_empty() {
                confirm(ctx.yes, &format!("Remove every firewall rule of {store}? Nobody could connect."))?;
            }
            let body: Vec<NewRuleBody> = sources
                .into_iter()
                .map(|source| NewRuleBody { source, description: String::new(), expires_at: None })
                .collect();
            let rules = ctx.call(endpoints::FIREWALL_REPLACE, &[("store_id", &id)], Some(&body))?;
            ctx.out.list_of(&rules["items"], RULE_COLUMNS);
        }
    }
    Ok(())
}
