//! `login`, `logout` and `profile`: a password becomes a client credential of this machine,
//! kept in the credentials file under a profile; the credential, not the password, signs every
//! later command.

use std::io::{IsTerminal, Read};

use berth::domain::{Role, Scope};
use berth::service::credentials::CreateCredential;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::client::{Auth, Client, Credential};
use crate::config::{CredentialsFile, Profile, Tokens};
use crate::context::{Globals, pick_org};
use crate::endpoints;
use crate::error::{CliError, Result};

/// How long the credential `login` makes for this machine lasts, by default.
pub const DEFAULT_DAYS: u16 = 90;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The account's e-mail address.
    #[arg(long)]
    pub email: String,
    /// Read the password from standard input (its first line) instead of asking on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
    /// Days until the credential made for this machine expires.
    #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(u16).range(1..=365))]
    pub expires_in_days: u16,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// The profiles, and which one is current.
    List,
    /// Makes a profile the current one.
    Use { name: String },
    /// One profile (the current one by default), without its secret.
    Show { name: Option<String> },
}

pub fn read_password(from_stdin: bool) -> Result<String> {
    Ok(read_passwords(from_stdin, &["Password: "])?.remove(0))
}

/// One password per prompt: asked on the terminal, or with `from_stdin` the first lines of
/// standard input, one each.
pub fn read_passwords(from_stdin: bool, prompts: &[&str]) -> Result<Vec<String>> {
    let failed = |e: std::io::Error| CliError::Usage(format!("reading the password: {e}"));
    let passwords: Vec<String> = if from_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(failed)?;
        s.lines().take(prompts.len()).map(str::to_string).collect()
    } else if std::io::stdin().is_terminal() {
        prompts.iter().map(|p| rpassword::prompt_password(p).map_err(failed)).collect::<Result<_>>()?
    } else {
        return Err(CliError::Usage(
            "no terminal to ask the password on: pass it with --password-stdin".into(),
        ));
    };
    if passwords.len() < prompts.len() || passwords.iter().any(String::is_empty) {
        return Err(CliError::Usage(format!(
            "an empty password (standard input needs {} line{})",
            prompts.len(),
            if prompts.len() == 1 { "" } else { "s, one per password" }
        )));
    }
    Ok(passwords)
}

/// Signs in with the account's password (asked on the terminal, or read from standard input),
/// runs `f` with the session and the user, and signs out again whatever `f` did. For the calls a
/// bearer token may not make: login itself, creating organizations, managing credentials.
pub fn signed_in<T>(
    url: &str,
    email: &str,
    password_stdin: bool,
    f: impl FnOnce(&Client, &Value) -> Result<T>,
) -> Result<T> {
    signed_in_with(url, email, read_password(password_stdin)?, f)
}

/// [`signed_in`] with a password in hand.
pub fn signed_in_with<T>(
    url: &str,
    email: &str,
    password: String,
    f: impl FnOnce(&Client, &Value) -> Result<T>,
) -> Result<T> {
    let anonymous = Client::new(url, Auth::None)?;
    crate::cmd::version::check(&anonymous)?;
    let (user, cookie) = anonymous.login(email, &password)?;
    drop(password);
    let session = Client::new(url, Auth::Cookie(cookie))?;
    let done = f(&session, &user);
    // The session has served its purpose whatever happened; it ends now.
    let _ = session.call::<()>(endpoints::LOGOUT, &[], &[], None);
    done
}

/// `--email` and `--password-stdin` of the commands that sign in for one call.
#[derive(Debug, clap::Args)]
pub struct SignIn {
    /// The account to sign in as (default: the profile's).
    #[arg(long = "email", id = "sign_in_email")]
    pub email: Option<String>,
    /// Read the password from standard input instead of asking on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

impl SignIn {
    /// [`signed_in`] on the command's server, as the account given or the profile's.
    pub fn run<T>(
        &self,
        ctx: &crate::context::Ctx,
        f: impl FnOnce(&Client, &Value) -> Result<T>,
    ) -> Result<T> {
        let email = self.email.clone().or_else(|| ctx.email.clone()).ok_or_else(|| {
            CliError::Usage("this needs the account's password: give --email (and --password-stdin)".into())
        })?;
        signed_in(&ctx.url, &email, self.password_stdin, f)
    }
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown".into())
}

pub fn login(g: &Globals, a: &LoginArgs) -> Result<()> {
    let url = g.url.clone().ok_or_else(|| CliError::Usage("login needs --url (or BERTH_URL)".into()))?;
    let password = read_password(a.password_stdin)?;
    login_with(g, &url, &a.email, password, g.org.as_deref(), a.expires_in_days)
}

/// Signs in, makes this machine's credential and keeps it in the profile (the current one from
/// now on), revoking the profile's previous credential on that server.
pub fn login_with(
    g: &Globals,
    url: &str,
    email: &str,
    password: String,
    org: Option<&str>,
    days: u16,
) -> Result<()> {
    let mut file = CredentialsFile::load()?;
    let name = file.name_of(g.profile.as_deref());
    let (org, org_name, created) =
        signed_in_with(url, email, password, |session, user| make_credential(session, user, org, days))?;

    let previous = file.profiles.insert(
        name.clone(),
        Profile {
            url: url.trim_end_matches('/').to_string(),
            org,
            org_name: org_name.clone(),
            email: Some(email.to_string()),
            client_id: created["client_id"].as_str().unwrap_or_default().to_string(),
            client_secret: created["client_secret"].as_str().unwrap_or_default().to_string(),
            expires_at: created["expires_at"].as_str().map(str::to_string),
            tokens: Tokens::default(),
        },
    );
    file.current = Some(name.clone());
    file.save()?;
    // A profile signed in again: its old credential is of no use any more.
    if let Some(old) = previous
        && old.url == url.trim_end_matches('/')
    {
        let _ = revoke(&old);
    }
    eprintln!(
        "Signed in to {url} as {email} in {}; profile {name:?} in {}",
        org_name.as_deref().unwrap_or("the organization"),
        crate::config::path()?.display()
    );
    Ok(())
}

/// A credential of this machine with every scope the user's role allows in the organization.
fn make_credential(
    session: &Client,
    user: &Value,
    wanted: Option<&str>,
    days: u16,
) -> Result<(String, Option<String>, Value)> {
    let orgs = user["organizations"].as_array().cloned().unwrap_or_default();
    let org = pick_org(&orgs, wanted)?;
    let this = orgs.iter().find(|o| o["id"].as_str() == Some(&org));
    let role = this.and_then(|o| o["role"].as_str()).and_then(Role::parse).unwrap_or(Role::Viewer);
    let body = CreateCredential {
        description: format!("berthctl@{}", hostname()),
        expires_at: OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)),
        scopes: Scope::ALL.into_iter().filter(|s| role.allows(*s)).collect(),
    };
    let created = session.call(endpoints::CREDENTIAL_CREATE, &[("org_id", &org)], &[], Some(&body))?;
    Ok((org, this.and_then(|o| o["name"].as_str()).map(str::to_string), created))
}

/// Revokes the profile's credential with its own token.
fn revoke(p: &Profile) -> Result<()> {
    let client = Client::new(
        &p.url,
        Auth::Credential(Credential::new(p.client_id.clone(), p.client_secret.clone(), p.tokens.clone())),
    )?;
    client.call::<()>(
        endpoints::CREDENTIAL_REVOKE,
        &[("org_id", &p.org), ("client_id", &p.client_id)],
        &[],
        None,
    )?;
    Ok(())
}

pub fn logout(g: &Globals) -> Result<()> {
    let mut file = CredentialsFile::load()?;
    let name = file.name_of(g.profile.as_deref());
    let p = file.get(&name)?.clone();
    match revoke(&p) {
        Ok(()) => {}
        // A credential the server no longer takes is revoked or expired already.
        Err(CliError::Api { status: 401, .. }) => {
            eprintln!("warning: the server no longer accepts this credential; forgetting it")
        }
        Err(e) => return Err(e),
    }
    file.profiles.remove(&name);
    if file.current.as_deref() == Some(&name) {
        file.current = None;
    }
    file.save()?;
    eprintln!("Signed out: credential {} revoked, profile {name:?} removed", p.client_id);
    Ok(())
}

fn shown(name: &str, p: &Profile, current: bool) -> Value {
    json!({
        "name": name,
        "current": current,
        "url": p.url,
        "org": p.org,
        "org_name": p.org_name,
        "email": p.email,
        "client_id": p.client_id,
        "expires_at": p.expires_at,
    })
}

const PROFILE_COLUMNS: &[&str] = &["name", "current", "url", "org_name", "email", "client_id", "expires_at"];

pub fn profile(g: &Globals, c: ProfileCommand) -> Result<()> {
    let mut file = CredentialsFile::load()?;
    let current = file.name_of(None);
    match c {
        ProfileCommand::List => {
            let rows: Vec<Value> = file.profiles.iter().map(|(n, p)| shown(n, p, *n == current)).collect();
            g.output().list(&rows, PROFILE_COLUMNS);
        }
        ProfileCommand::Use { name } => {
            file.get(&name)?;
            file.current = Some(name.clone());
            file.save()?;
            eprintln!("Profile {name:?} is now the current one");
        }
        ProfileCommand::Show { name } => {
            let name = name.unwrap_or_else(|| file.name_of(g.profile.as_deref()));
            let p = file.get(&name)?;
            g.output().one(&shown(&name, p, name == current), PROFILE_COLUMNS);
        }
    }
    Ok(())
}
