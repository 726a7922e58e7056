//! A store's databases and database users: `berthctl db list|create|drop STORE` and
//! `berthctl db-user list|create|drop|rotate-password STORE`. A new or rotated password is
//! printed this once; Berth does not keep it.

use berth::provision::sql::Privilege;
use berth::service::databases::{CreateDatabase, CreateDbUser, RotatePassword};
use secrecy::SecretString;

use super::auth::read_password;
use super::{confirm, list_all, store::resolve};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::Result;

const DATABASE_COLUMNS: &[&str] = &["name", "owner", "size_bytes", "tables"];
const USER_COLUMNS: &[&str] = &["username", "privileges", "database", "host", "created_at"];

fn privilege(s: &str) -> std::result::Result<Privilege, String> {
    [Privilege::Read, Privilege::Readwrite, Privilege::Admin]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| "one of read, readwrite, admin".into())
}

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// The store's databases.
    List { store: String },
    /// Creates a database, owned by the store's admin user.
    Create { store: String, name: String },
    /// Drops a database and everything in it (asks first).
    Drop { store: String, name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum DbUserCommand {
    /// The store's database users.
    List { store: String },
    /// Creates a user; its password (generated unless given) is printed this once.
    Create {
        store: String,
        username: String,
        #[arg(long, value_parser = privilege)]
        privileges: Privilege,
        /// One database (default: all of them).
        #[arg(long)]
        database: Option<String>,
        /// A network (CIDR or address) the user may connect from, within the firewall.
        #[arg(long)]
        host: Option<String>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Drops a user (asks first).
    Drop { store: String, username: String },
    /// Gives a user a new password (generated unless given), printed this once; the old one
    /// stops working at once.
    RotatePassword {
        store: String,
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn given_password(from_stdin: bool) -> Result<Option<SecretString>> {
    Ok(match from_stdin {
        true => Some(SecretString::from(read_password(true)?)),
        false => None,
    })
}

pub fn db(ctx: &Ctx, c: DbCommand) -> Result<()> {
    match c {
        DbCommand::List { store } => {
            let id = resolve(ctx, &store)?;
            ctx.out.list(&list_all(ctx, endpoints::DATABASE_LIST, &[("store_id", &id)])?, DATABASE_COLUMNS);
        }
        DbCommand::Create { store, name } => {
            let id = resolve(ctx, &store)?;
            let made =
                ctx.call(endpoints::DATABASE_CREATE, &[("store_id", &id)], Some(&CreateDatabase { name }))?;
            ctx.out.one(&made, DATABASE_COLUMNS);
        }
        DbCommand::Drop { store, name } => {
            let id = resolve(ctx, &store)?;
            confirm(ctx.yes, &format!("Drop database {name} of {store} and all its data?"))?;
            ctx.send(endpoints::DATABASE_DROP, &[("store_id", &id), ("name", &name)])?;
            eprintln!("Database {name} dropped");
        }
    }
    Ok(())
}

pub fn user(ctx: &Ctx, c: DbUserCommand) -> Result<()> {
    match c {
        DbUserCommand::List { store } => {
            let id = resolve(ctx, &store)?;
            ctx.out.list(&list_all(ctx, endpoints::DB_USER_LIST, &[("store_id", &id)])?, USER_COLUMNS);
        }
        DbUserCommand::Create { store, username, privileges, database, host, password_stdin } => {
            let id = resolve(ctx, &store)?;
            let body = CreateDbUser {
                username,
                password: given_password(password_stdin)?,
                privileges,
                database,
                host,
            };
            let made = ctx.call(endpoints::DB_USER_CREATE, &[("store_id", &id)], Some(&body))?;
            if ctx.out.json() {
                ctx.out.one(&made, &[]);
            } else {
                let mut row = made["user"].clone();
                row["password"] = made["password"].clone();
                ctx.out.one(&row, &["username", "password", "privileges", "database", "host"]);
                eprintln!("The password is shown this once; Berth does not keep it.");
            }
        }
        DbUserCommand::Drop { store, username } => {
            let id = resolve(ctx, &store)?;
            confirm(ctx.yes, &format!("Drop database user {username} of {store}?"))?;
            ctx.send(endpoints::DB_USER_DROP, &[("store_id", &id), ("name", &username)])?;
            eprintln!("User {username} dropped");
        }
        DbUserCommand::RotatePassword { store, username, password_stdin } => {
            let id = resolve(ctx, &store)?;
            let body = RotatePassword { password: given_password(password_stdin)? };
            let rotated =
                ctx.call(endpoints::DB_USER_ROTATE, &[("store_id", &id), ("name", &username)], Some(&body))?;
            ctx.out.one(&rotated, &["username", "password"]);
            if !ctx.out.json() {
                eprintln!("The password is shown this once; Berth does not keep it.");
            }
        }
    }
    Ok(())
}
