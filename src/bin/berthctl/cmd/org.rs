//! The organization and who may act in it: `berthctl org|member|invitation|credential|quotas|ca`.
//! Creating organizations and managing credentials need the account's password: those commands
//! sign in for the one call, as login does, since a bearer token may not mint credentials.

use berth::domain::{Role, Scope};
use berth::http::routes::orgs::UpdateMember;
use berth::service::credentials::CreateCredential;
use berth::service::members::AddMember;
use berth::service::orgs::CreateOrg;
use secrecy::SecretString;
use time::OffsetDateTime;

use super::account::{self, Account};
use super::auth::SignIn;
use super::{confirm, list_all, not_found, resolve_named};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};

const ORG_COLUMNS: &[&str] = &["id", "name", "role", "created_at"];
const MEMBER_COLUMNS: &[&str] = &["user_id", "email", "role", "must_change_password", "created_at"];
const INVITATION_COLUMNS: &[&str] = &["id", "email", "role", "status", "expires_at", "created_at"];
const CREDENTIAL_COLUMNS: &[&str] =
    &["client_id", "description", "scopes", "expires_at", "last_used_at", "revoked_at"];
const QUOTA_COLUMNS: &[&str] = &["quota", "limit", "usage"];

fn role(s: &str) -> std::result::Result<Role, String> {
    Role::parse(s).ok_or_else(|| "one of viewer, member, admin, owner".into())
}

fn scope(s: &str) -> std::result::Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("one of {}", all.join(", "))
    })
}

#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// The organizations this account or credential may act in.
    List,
    /// One organization (default: the current one).
    Get { org: Option<String> },
    /// Creates an organization, with this account as its owner (signs in for it).
    Create {
        name: String,
        #[command(flatten)]
        sign_in: SignIn,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum MemberCommand {
    /// The organization's members.
    List,
    /// Adds a member: an account of that address is invited; a new address gets an account at
    /// once when an initial password is given.
    Add {
        email: String,
        #[arg(long, value_parser = role)]
        role: Role,
        /// A file whose first line is the initial password of a new account (changed at first
        /// login). Giving one, or the role owner, signs in for the call.
        #[arg(long)]
        initial_password_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        sign_in: SignIn,
    },
    /// Changes a member's role (making or unmaking an owner signs in for the call).
    SetRole {
        /// The member's e-mail address or user id.
        member: String,
        #[arg(value_parser = role)]
        role: Role,
        #[command(flatten)]
        sign_in: SignIn,
    },
    /// Removes a member from the organization (asks first).
    Remove { member: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum InvitationCommand {
    /// The organization's invitations.
    List,
    /// Withdraws an invitation that has not been answered.
    Revoke { id: String },
    /// The invitations to your own address that can still be answered (signs in for it).
    Mine {
        #[command(flatten)]
        account: Account,
    },
    /// Accepts an invitation to your address: you become a member (signs in for it).
    Accept {
        id: String,
        #[command(flatten)]
        account: Account,
    },
    /// Declines an invitation to your address (signs in for it).
    Decline {
        id: String,
        #[command(flatten)]
        account: Account,
    },
}

impl InvitationCommand {
    /// Whether the command answers for the account, which needs no organization's credential.
    pub fn is_the_accounts(&self) -> bool {
        matches!(self, Self::Mine { .. } | Self::Accept { .. } | Self::Decline { .. })
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum CredentialCommand {
    /// The organization's OAuth2 client credentials (signs in for it).
    List {
        #[command(flatten)]
        sign_in: SignIn,
    },
    /// Creates a client credential; its secret is shown this once (signs in for it).
    Create {
        description: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=365))]
        expires_in_days: u16,
        /// A scope it may use; repeat for more (default: all the role allows).
        #[arg(long = "scope", value_parser = scope)]
        scopes: Vec<Scope>,
        #[command(flatten)]
        sign_in: SignIn,
    },
    /// The scopes a credential may be given, and what each allows.
    Scopes,
    /// Revokes a credential: at once, for every token it was given (signs in for it).
    Revoke {
        client_id: String,
        #[command(flatten)]
        sign_in: SignIn,
    },
}

pub fn org(ctx: &Ctx, c: OrgCommand) -> Result<()> {
    match c {
        OrgCommand::List => {
            let orgs = ctx.client.call::<()>(endpoints::ORGS, &[], &[], None)?;
            ctx.out.list_of(&orgs["items"], ORG_COLUMNS);
        }
        OrgCommand::Get { org } => {
            let id = match org {
                Some(o) => crate::context::org_id(&ctx.client, Some(&o))?,
                None => ctx.org.clone(),
            };
            let org = ctx.client.call::<()>(endpoints::ORG_GET, &[("org_id", &id)], &[], None)?;
            ctx.out.one(&org, ORG_COLUMNS);
        }
        OrgCommand::Create { name, sign_in } => {
            let made = sign_in.run(ctx, |session, _| {
                session.call(endpoints::ORG_CREATE, &[], &[], Some(&CreateOrg { name }))
            })?;
            ctx.out.one(&made, ORG_COLUMNS);
        }
    }
    Ok(())
}

/// A member's user id: as given, or that of the member with this address.
fn member_id(ctx: &Ctx, member: &str) -> Result<String> {
    resolve_named(ctx, endpoints::MEMBER_LIST, &[], ("email", "user_id"), member, "member")
}

pub fn member(ctx: &Ctx, c: MemberCommand) -> Result<()> {
    match c {
        MemberCommand::List => ctx.out.list(&list_all(ctx, endpoints::MEMBER_LIST, &[])?, MEMBER_COLUMNS),
        MemberCommand::Add { email, role, initial_password_file, sign_in } => {
            let password = match &initial_password_file {
                None => None,
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| CliError::Usage(format!("reading {}: {e}", path.display())))?;
                    Some(SecretString::from(text.lines().next().unwrap_or_default()))
                }
            };
            // Only a password session may give a password or make an owner.
            let session = password.is_some() || role == Role::Owner;
            let body = AddMember { email, role, password };
            let added = if session {
                let org = [("org_id", ctx.org.as_str())];
                sign_in.run(ctx, |s, _| s.call(endpoints::MEMBER_ADD, &org, &[], Some(&body)))?
            } else {
                ctx.call(endpoints::MEMBER_ADD, &[], Some(&body))?
            };
            if ctx.out.json() {
                ctx.out.one(&added, &[]);
            } else if added["member"].is_object() {
                ctx.out.one(&added["member"], MEMBER_COLUMNS);
            } else {
                // An existing account is invited; it becomes a member when it accepts.
                ctx.out.one(&added, INVITATION_COLUMNS);
            }
        }
        MemberCommand::SetRole { member, role, sign_in } => {
            let members = list_all(ctx, endpoints::MEMBER_LIST, &[])?;
            let found = members
                .iter()
                .find(|m| m["user_id"].as_str() == Some(&member) || m["email"].as_str() == Some(&member))
                .ok_or_else(|| not_found("member", &member))?;
            let id = found["user_id"].as_str().unwrap_or_default().to_string();
            let body = UpdateMember { role };
            // Only owners make or unmake owners, and only with a password session.
            let changed = if role == Role::Owner || found["role"] == "owner" {
                let params = [("org_id", ctx.org.as_str()), ("user_id", id.as_str())];
                sign_in.run(ctx, |s, _| s.call(endpoints::MEMBER_UPDATE, &params, &[], Some(&body)))?
            } else {
                ctx.call(endpoints::MEMBER_UPDATE, &[("user_id", &id)], Some(&body))?
            };
            ctx.out.one(&changed, MEMBER_COLUMNS);
        }
        MemberCommand::Remove { member } => {
            let id = member_id(ctx, &member)?;
            confirm(ctx.yes, &format!("Remove {member} from the organization?"))?;
            ctx.send(endpoints::MEMBER_REMOVE, &[("user_id", &id)])?;
            eprintln!("Removed {member}");
        }
    }
    Ok(())
}

/// The account's own invitations: signed in with the password, without a credential.
pub fn my_invitation(g: &crate::context::Globals, c: InvitationCommand) -> Result<()> {
    match c {
        InvitationCommand::Mine { account } => account::my_invitations(g, &account),
        InvitationCommand::Accept { id, account } => account::answer_invitation(g, &account, &id, "accept"),
        InvitationCommand::Decline { id, account } => account::answer_invitation(g, &account, &id, "decline"),
        other => unreachable!("not the account's: {other:?}"),
    }
}

pub fn invitation(ctx: &Ctx, c: InvitationCommand) -> Result<()> {
    match c {
        InvitationCommand::List => {
            ctx.out.list(&list_all(ctx, endpoints::INVITATION_LIST, &[])?, INVITATION_COLUMNS)
        }
        InvitationCommand::Revoke { id } => {
            ctx.send(endpoints::INVITATION_REVOKE, &[("invitation_id", &id)])?;
            eprintln!("Invitation {id} revoked");
        }
        InvitationCommand::Mine { .. }
        | InvitationCommand::Accept { .. }
        | InvitationCommand::Decline { .. } => {
            unreachable!("answered by my_invitation")
        }
    }
    Ok(())
}

pub fn credential(ctx: &Ctx, c: CredentialCommand) -> Result<()> {
    let org = [("org_id", ctx.org.as_str())];
    match c {
        CredentialCommand::List { sign_in } => {
            let listed =
                sign_in.run(ctx, |s, _| s.call::<()>(endpoints::CREDENTIAL_LIST, &org, &[], None))?;
            ctx.out.list_of(&listed["items"], CREDENTIAL_COLUMNS);
        }
        CredentialCommand::Create { description, expires_in_days, scopes, sign_in } => {
            let made = sign_in.run(ctx, |session, user| {
                let scopes = match scopes.is_empty() {
                    false => scopes,
                    true => {
                        let mine = user["organizations"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|o| o["id"].as_str() == Some(&ctx.org))
                            .and_then(|o| o["role"].as_str())
                            .and_then(Role::parse)
                            .unwrap_or(Role::Viewer);
                        Scope::ALL.into_iter().filter(|s| mine.allows(*s)).collect()
                    }
                };
                let body = CreateCredential {
                    description,
                    expires_at: OffsetDateTime::now_utc() + time::Duration::days(i64::from(expires_in_days)),
                    scopes,
                };
                session.call(endpoints::CREDENTIAL_CREATE, &org, &[], Some(&body))
            })?;
            let mut columns = CREDENTIAL_COLUMNS.to_vec();
            columns.insert(1, "client_secret");
            ctx.out.one(&made, &columns);
            if !ctx.out.json() {
                eprintln!("The secret is shown this once; Berth keeps only its hash.");
            }
        }
        CredentialCommand::Scopes => {
            let s = ctx.client.call::<()>(endpoints::SCOPES, &[], &[], None)?;
            ctx.out.list_of(&s["items"], &["name", "least_role", "description"]);
        }
        CredentialCommand::Revoke { client_id, sign_in } => {
            confirm(ctx.yes, &format!("Revoke credential {client_id}? Everything using it stops working."))?;
            let params = [("org_id", ctx.org.as_str()), ("client_id", client_id.as_str())];
            sign_in.run(ctx, |s, _| s.call::<()>(endpoints::CREDENTIAL_REVOKE, &params, &[], None))?;
            eprintln!("Credential {client_id} revoked");
        }
    }
    Ok(())
}

pub fn quotas(ctx: &Ctx) -> Result<()> {
    let q = ctx.send(endpoints::QUOTAS, &[])?;
    ctx.out.list_of(&q["items"], QUOTA_COLUMNS);
    Ok(())
}

/// The organization's CA certificate (PEM), which every store's server certificate chains to.
pub fn ca(ctx: &Ctx) -> Result<()> {
    let (status, pem) =
        ctx.client.call_raw("GET", &endpoints::CA.path_with(&[("org_id", &ctx.org)]), None)?;
    if status >= 400 {
        return Err(crate::error::CliError::from_response(status, &pem));
    }
    print!("{pem}");
    Ok(())
}
