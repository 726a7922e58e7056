//! From the global flags, the environment and the profile to an authenticated client, an
//! organization and an output: flag > environment > profile.

use serde_json::Value;

use crate::client::{Auth, Client, Credential};
use crate::config::{CredentialsFile, Tokens};
use crate::endpoints;
use crate::error::{CliError, Result};
use crate::output::{Format, Output};

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct Globals {
    /// The profile in the credentials file (default: the current one, else `default`).
    #[arg(long, global = true, env = "BERTH_PROFILE")]
    pub profile: Option<String>,
    /// The server, e.g. https://berth.example.com.
    #[arg(long, global = true, env = "BERTH_URL")]
    pub url: Option<String>,
    /// A client credential's id, instead of the profile's (for CI).
    #[arg(long, global = true, env = "BERTH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The credential's secret.
    #[arg(long, global = true, env = "BERTH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// An access token to use as it is.
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The organization, by name or id (default: the profile's, or the only one).
    #[arg(long, global = true, env = "BERTH_ORG")]
    pub org: Option<String>,
    /// Output: a table, or the API's JSON.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// Tables without their header line.
    #[arg(long, global = true)]
    pub no_header: bool,
    /// The table's columns, e.g. `--format id,name,status`.
    #[arg(long, global = true, value_delimiter = ',')]
    pub format: Option<Vec<String>>,
    /// Answer yes to confirmations (needed without a terminal).
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
}

impl Globals {
    pub fn output(&self) -> Output {
        Output { format: self.output, no_header: self.no_header, columns: self.format.clone() }
    }
}

/// What a command against the API works with.
pub struct Ctx {
    pub client: Client,
    /// The server, for the calls only a password session may make.
    pub url: String,
    /// The profile's account, the default for those.
    pub email: Option<String>,
    pub org: String,
    pub out: Output,
    pub yes: bool,
}

impl Ctx {
    /// Calls an endpoint of the organization: `org_id`, then `params` fill its path.
    pub fn call<B: serde::Serialize + ?Sized>(
        &self,
        ep: endpoints::Endpoint,
        params: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<Value> {
        self.query(ep, params, &[], body)
    }

    /// [`Ctx::call`] with a query string.
    pub fn query<B: serde::Serialize + ?Sized>(
        &self,
        ep: endpoints::Endpoint,
        params: &[(&str, &str)],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Value> {
        let mut all = vec![("org_id", self.org.as_str())];
        all.extend_from_slice(params);
        self.client.call(ep, &all, query, body)
    }

    /// [`Ctx::call`] without a body.
    pub fn send(&self, ep: endpoints::Endpoint, params: &[(&str, &str)]) -> Result<Value> {
        self.call::<()>(ep, params, None)
    }
}

/// The server (flag or environment, else the profile's) and the profile's account, without
/// signing in: for the commands that work without a credential or sign in with a password.
pub fn server(g: &Globals) -> Result<(Option<String>, Option<crate::config::Profile>)> {
    let file = CredentialsFile::load()?;
    let profile = file.profiles.get(&file.name_of(g.profile.as_deref())).cloned();
    let url = g.url.clone().or_else(|| profile.as_ref().map(|p| p.url.clone()));
    Ok((url, profile))
}

/// An authenticated client for the command, its organization, after checking that the server
/// and this client can work together.
pub fn connect(g: &Globals) -> Result<Ctx> {
    let explicit = g.token.is_some() || (g.client_id.is_some() && g.client_secret.is_some());
    // Without explicit credentials the profile is needed; with them, a profile may still give
    // the URL, but a missing file is no error.
    let file = CredentialsFile::load()?;
    let name = file.name_of(g.profile.as_deref());
    let profile = match file.get(&name) {
        Ok(p) => Some(p.clone()),
        Err(e) if !explicit => return Err(e),
        Err(_) => None,
    };
    let url = g.url.clone().or_else(|| profile.as_ref().map(|p| p.url.clone())).ok_or_else(|| {
        CliError::Usage("no server: give --url or BERTH_URL, or sign in with `berthctl login`".into())
    })?;
    let auth = if let Some(t) = &g.token {
        Auth::Token(t.clone())
    } else if let (Some(id), Some(secret)) = (&g.client_id, &g.client_secret) {
        Auth::Credential(Credential::new(id.clone(), secret.clone(), Tokens::default()))
    } else {
        let p = profile.clone().expect("a profile when no explicit credential");
        let keep = name.clone();
        Auth::Credential(Credential::new(p.client_id, p.client_secret, p.tokens).keeping(move |t| {
            // Losing the cache costs only a new grant next time.
            if let Ok(mut f) = CredentialsFile::load()
                && let Some(p) = f.profiles.get_mut(&keep)
            {
                p.tokens = t.clone();
                let _ = f.save();
            }
        }))
    };
    let email = profile.as_ref().and_then(|p| p.email.clone());
    let client = Client::new(&url, auth)?;
    crate::cmd::version::check(&client)?;
    let profile_org = profile.filter(|_| g.token.is_none() && g.client_id.is_none()).map(|p| p.org);
    let org = match (&g.org, profile_org) {
        (Some(o), _) => org_id(&client, Some(o))?,
        (None, Some(o)) => o,
        (None, None) => org_id(&client, None)?,
    };
    Ok(Ctx { client, url, email, org, out: g.output(), yes: g.yes })
}

/// The organization named (by id or name), or the caller's only one.
pub fn org_id(client: &Client, wanted: Option<&str>) -> Result<String> {
    // An id needs no lookup: the server answers 404 for one not the caller's.
    if let Some(w) = wanted
        && uuid::Uuid::parse_str(w).is_ok()
    {
        return Ok(w.to_string());
    }
    let orgs = client.call::<()>(endpoints::ORGS, &[], &[], None).map_err(|e| match e {
        CliError::Api { status: 403, ref code, .. } if code.as_deref() == Some("insufficient_scope") => {
            CliError::Usage(
                "this credential may not list organizations (it lacks org:read): give the organization's id with --org or BERTH_ORG".into(),
            )
        }
        other => other,
    })?;
    let items = orgs["items"].as_array().cloned().unwrap_or_default();
    pick_org(&items, wanted)
}

/// Picks from organizations (`{id, name}` objects, as `GET /api/v1/orgs` and the login answer
/// list them).
pub fn pick_org(items: &[Value], wanted: Option<&str>) -> Result<String> {
    let id = |o: &Value| o["id"].as_str().map(str::to_string);
    match wanted {
        Some(w) => items
            .iter()
            .find(|o| o["id"].as_str() == Some(w) || o["name"].as_str() == Some(w))
            .and_then(id)
            .ok_or_else(|| CliError::Usage(format!("no organization {w:?} for this account"))),
        None => match items {
            [one] => id(one).ok_or_else(|| CliError::Network("an organization without an id".into())),
            [] => Err(CliError::Usage("this account belongs to no organization".into())),
            _ => {
                let names: Vec<&str> = items.iter().filter_map(|o| o["name"].as_str()).collect();
                Err(CliError::Usage(format!(
                    "this account belongs to several organizations ({}); choose one with --org",
                    names.join(", ")
                )))
            }
        },
    }
}
