//! The one HTTP client: every call goes through [`Client::call`], which authenticates it,
//! sends the same origin as the server (the CSRF guard's rule for cookie sessions) and turns an
//! error status into the problem it carries.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header;
use serde::Serialize;
use serde_json::Value;

use crate::config::Tokens;
use crate::endpoints::{self, Endpoint};
use crate::error::{CliError, Result};

/// How requests authenticate.
pub enum Auth {
    None,
    /// `BERTH_TOKEN`: used as given.
    Token(String),
    /// A session cookie (`name=value`), for `login` only.
    Cookie(String),
    /// A client credential, turned into tokens as they are needed.
    Credential(Credential),
}

pub struct Credential {
    pub client_id: String,
    pub client_secret: String,
    pub tokens: RefCell<Tokens>,
    /// Called with the tokens after each renewal, to keep them (in the profile).
    pub on_renew: Box<dyn Fn(&Tokens)>,
}

impl Credential {
    /// A credential whose renewed tokens are kept in memory only.
    pub fn new(client_id: String, client_secret: String, tokens: Tokens) -> Self {
        Self { client_id, client_secret, tokens: RefCell::new(tokens), on_renew: Box::new(|_| {}) }
    }

    /// Renewed tokens are also given to `keep`.
    pub fn keeping(self, keep: impl Fn(&Tokens) + 'static) -> Self {
        Self { on_renew: Box::new(keep), ..self }
    }
}

pub struct Client {
    http: reqwest::blocking::Client,
    pub base: String,
    pub auth: Auth,
}

/// Renew a little before the server would refuse the token.
const EXPIRY_MARGIN: i64 = 30;

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Client {
    pub fn new(base: &str, auth: Auth) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "the server's URL must start with http:// or https://: {base}"
            )));
        }
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("berthctl/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Self { http, base, auth })
    }

    fn request(&self, method: &str, path: &str) -> Result<RequestBuilder> {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| CliError::Usage(format!("not an HTTP method: {method}")))?;
        let rb = self.http.request(method, format!("{}{path}", self.base)).header(header::ORIGIN, &self.base);
        Ok(match &self.auth {
            Auth::None => rb,
            Auth::Token(t) => rb.bearer_auth(t),
            Auth::Cookie(c) => rb.header(header::COOKIE, c),
            Auth::Credential(c) => rb.bearer_auth(self.access_token(c)?),
        })
    }

    /// Calls `ep` with its path parameters, query and JSON body; the answer's JSON (`Null`
    /// for an empty body).
    pub fn call<B: Serialize + ?Sized>(
        &self,
        ep: Endpoint,
        params: &[(&str, &str)],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Value> {
        Ok(self.call_tagged(ep, params, query, body, None)?.0)
    }

    /// [`Client::call`] with `If-Match` when `if_match` is given; the answer and its `ETag`.
    pub fn call_tagged<B: Serialize + ?Sized>(
        &self,
        ep: Endpoint,
        params: &[(&str, &str)],
        query: &[(&str, String)],
        body: Option<&B>,
        if_match: Option<&str>,
    ) -> Result<(Value, Option<String>)> {
        let res = self.send(|| {
            let mut rb = self.request(ep.method, &ep.path_with(params))?;
            if !query.is_empty() {
                rb = rb.query(query);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            if let Some(tag) = if_match {
                rb = rb.header(header::IF_MATCH, tag);
            }
            Ok(rb)
        })?;
        let etag = res.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok((json_of(checked(res)?.1), etag))
    }

    /// Sends the request `build` makes. A cached token the server no longer takes (revoked, or
    /// a clock ahead of the server's) is forgotten and the request sent once more with a new one.
    fn send(&self, build: impl Fn() -> Result<RequestBuilder>) -> Result<Response> {
        let res = build()?.send()?;
        if res.status() == reqwest::StatusCode::UNAUTHORIZED
            && let Auth::Credential(c) = &self.auth
            && c.tokens.borrow().access_token.is_some()
        {
            c.tokens.borrow_mut().access_token = None;
            return Ok(build()?.send()?);
        }
        Ok(res)
    }

    /// A GET whose body is to be read as it comes (a backup's archive), once its status is
    /// known to be a success. No timeout: an archive may take long.
    pub fn stream(&self, ep: Endpoint, params: &[(&str, &str)]) -> Result<Response> {
        let res = self.send(|| {
            Ok(self.request(ep.method, &ep.path_with(params))?.timeout(Duration::from_secs(24 * 3600)))
        })?;
        if res.status().as_u16() >= 400 {
            checked(res)?;
            unreachable!("checked refuses an error status");
        }
        Ok(res)
    }

    /// Like [`Client::call`], with the response for its headers.
    pub fn call_raw(&self, method: &str, path: &str, data: Option<&Value>) -> Result<(u16, String)> {
        let res = self.send(|| {
            let rb = self.request(method, path)?;
            Ok(match data {
                Some(d) => rb.json(d),
                None => rb,
            })
        })?;
        let status = res.status().as_u16();
        Ok((status, res.text()?))
    }

    /// `POST /api/auth/login`: the user's body and the session cookie it set.
    pub fn login(&self, email: &str, password: &str) -> Result<(Value, String)> {
        let body = serde_json::json!({ "login": email, "password": password });
        let res = self.request(endpoints::LOGIN.method, endpoints::LOGIN.path)?.json(&body).send()?;
        let cookie = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            // Not a cookie being cleared (`name=`).
            .find(|pair| pair.split_once('=').is_some_and(|(_, value)| !value.is_empty()))
            .map(str::to_string);
        let (_, text) = checked(res)?;
        let cookie = cookie
            .ok_or_else(|| CliError::Network("the server signed in but set no session cookie".into()))?;
        Ok((json_of(text), cookie))
    }

    /// A live access token of the credential: the cached one, a refreshed one, or a new grant.
    fn access_token(&self, c: &Credential) -> Result<String> {
        {
            let t = c.tokens.borrow();
            if let (Some(tok), Some(exp)) = (&t.access_token, t.access_expires_at)
                && exp - EXPIRY_MARGIN > now_secs()
            {
                return Ok(tok.clone());
            }
        }
        let refresh = c.tokens.borrow().refresh_token.clone();
        let granted = match refresh {
            Some(r) => self
                .token_grant(c, &[("grant_type", "refresh_token"), ("refresh_token", &r)])
                .or_else(|_| self.token_grant(c, &[("grant_type", "client_credentials")]))?,
            None => self.token_grant(c, &[("grant_type", "client_credentials")])?,
        };
        let tokens = Tokens {
            access_token: granted["access_token"].as_str().map(str::to_string),
            access_expires_at: granted["expires_in"].as_i64().map(|s| now_secs() + s),
            refresh_token: granted["refresh_token"].as_str().map(str::to_string),
        };
        let access = tokens
            .access_token
            .clone()
            .ok_or_else(|| CliError::Network("the token endpoint answered no access_token".into()))?;
        (c.on_renew)(&tokens);
        *c.tokens.borrow_mut() = tokens;
        Ok(access)
    }

    fn token_grant(&self, c: &Credential, form: &[(&str, &str)]) -> Result<Value> {
        let ep = endpoints::TOKEN;
        let res = self
            .http
            .post(format!("{}{}", self.base, ep.path))
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(form)
            .send()?;
        Ok(json_of(
            checked(res)
                .map_err(|e| match e {
                    CliError::Api { status, title, detail, code } => CliError::Api {
                        status,
                        title: format!("the credential was refused ({title})"),
                        detail: Some(format!(
                            "{}; it may have expired or been revoked: sign in again with `berthctl login`",
                            detail.unwrap_or_default()
                        )),
                        code,
                    },
                    other => other,
                })?
                .1,
        ))
    }
}

fn checked(res: Response) -> Result<(u16, String)> {
    let status = res.status().as_u16();
    let text = res.text()?;
    if status >= 400 {
        return Err(CliError::from_response(status, &text));
    }
    Ok((status, text))
}

fn json_of(text: String) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}
