//! The account itself: `berthctl whoami`, `berthctl password` and `berthctl invitation
//! mine|accept|decline`. Changing a password and answering invitations need the password
//! session, as in the browser, and no credential: an account invited to its first organization
//! has none yet.

use berth::http::routes::users::ChangePassword;
use secrecy::SecretString;

use super::auth::{login_with, read_passwords, signed_in, signed_in_with};
use crate::config::Profile;
use crate::context::{Ctx, Globals, server};
use crate::endpoints;
use crate::error::{CliError, Result};

pub const MY_INVITATION_COLUMNS: &[&str] = &["id", "org_name", "role", "status", "expires_at"];

/// `--email` and `--password-stdin` for the account's own commands.
#[derive(Debug, clap::Args)]
pub struct Account {
    /// The account (default: the profile's).
    #[arg(long = "email", id = "account_email")]
    pub email: Option<String>,
    /// Read the password(s) from standard input, one line each, instead of asking on the
    /// terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

impl Account {
    /// The server, the account, and the profile when it is that account's.
    fn resolve(&self, g: &Globals) -> Result<(String, String, Option<Profile>)> {
        let (url, profile) = server(g)?;
        let url = url.ok_or_else(|| CliError::Usage("no server: give --url or BERTH_URL".into()))?;
        let email = self.email.clone().or_else(|| profile.as_ref().and_then(|p| p.email.clone()));
        let email = email
            .ok_or_else(|| CliError::Usage("which account? give --email (the profile has none)".into()))?;
        let profile = profile.filter(|p| p.email.as_deref() == Some(email.as_str()) && p.url == url);
        Ok((url, email, profile))
    }
}

/// Who the credential (or the token) acts for.
pub fn whoami(ctx: &Ctx) -> Result<()> {
    let me = ctx.client.call::<()>(endpoints::ME, &[], &[], None)?;
    ctx.out.one(&me, &["login", "id", "origin", "organizations"]);
    Ok(())
}

/// Changes the account's password. The server revokes every credential the account made, this
/// machine's too, so the profile of that account signs in again with the new password.
pub fn password(g: &Globals, a: &Account) -> Result<()> {
    let (url, email, profile) = a.resolve(g)?;
    let prompts = ["Current password: ", "New password: ", "New password again: "];
    let mut given = read_passwords(a.password_stdin, &prompts[..if a.password_stdin { 2 } else { 3 }])?;
    if given.len() == 3 && given[1] != given[2] {
        return Err(CliError::Usage("the new passwords differ; nothing was changed".into()));
    }
    let new = given.remove(1);
    let current = given.remove(0);
    let body = ChangePassword {
        current_password: SecretString::from(current.clone()),
        new_password: SecretString::from(new.clone()),
    };
    signed_in_with(&url, &email, current, |s, _| s.call(endpoints::CHANGE_PASSWORD, &[], &[], Some(&body)))?;
    eprintln!("Password changed; every credential {email} made is revoked, this machine's too.");
    if let Some(p) = profile {
        let org = g.org.clone().unwrap_or(p.org);
        login_with(g, &url, &email, new, Some(&org), crate::cmd::auth::DEFAULT_DAYS)?;
    } else {
        eprintln!("Sign in again with: berthctl login --url {url} --email {email}");
    }
    Ok(())
}

/// The invitations to the account's address that can still be answered.
pub fn my_invitations(g: &Globals, a: &Account) -> Result<()> {
    let (url, email, _) = a.resolve(g)?;
    let mine = signed_in(&url, &email, a.password_stdin, |s, _| {
        s.call::<()>(endpoints::MY_INVITATIONS, &[], &[], None)
    })?;
    g.output().list_of(&mine["items"], MY_INVITATION_COLUMNS);
    Ok(())
}

/// Accepts or declines an invitation to the account's address.
pub fn answer_invitation(g: &Globals, a: &Account, id: &str, answer: &str) -> Result<()> {
    let (url, email, _) = a.resolve(g)?;
    let params = [("invitation_id", id), ("answer", answer)];
    let answered = signed_in(&url, &email, a.password_stdin, |s, _| {
        s.call::<()>(endpoints::ANSWER_INVITATION, &params, &[], None)
    })?;
    g.output().one(&answered, MY_INVITATION_COLUMNS);
    Ok(())
}
