//! OAuth2 on the wire (RFC 6749): its error bodies, the forms of the token and revocation
//! requests and their schemas, and how a client authenticates in them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oauth2::basic::BasicErrorResponseType;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use uuid::Uuid;

use crate::auth::throttle::Throttled;
use crate::service::credentials::GrantError;

/// An RFC 6749 §5.2 error.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, or `temporarily_unavailable` (throttled).
    pub error: String,
    pub error_description: String,
}

#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: BasicErrorResponseType,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(error: BasicErrorResponseType, description: impl Into<String>) -> Self {
        let status = match error {
            BasicErrorResponseType::InvalidClient => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        Self { status, error, description: description.into(), retry_after: None }
    }
    /// A refusal by a throttle: 429, with `Retry-After`.
    pub fn throttled(t: Throttled) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(t.retry_after_secs),
            ..Self::new(
                BasicErrorResponseType::Extension("temporarily_unavailable".into()),
                "too many failed authentications for this client or from this address; retry later",
            )
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(BasicErrorResponseType::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(BasicErrorResponseType::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(BasicErrorResponseType::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(BasicErrorResponseType::InvalidScope, d)
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        let id = Uuid::now_v7();
        tracing::error!(error_id = %id, error = ?e, "token endpoint");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: BasicErrorResponseType::Extension("temporarily_unavailable".into()),
            description: format!("internal error; quote {id} to the operator"),
            retry_after: Some(1),
        }
    }
}

impl From<GrantError> for OAuthError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::InvalidClient(d) => Self::invalid_client(d),
            GrantError::UnauthorizedClient(d) => Self::new(BasicErrorResponseType::UnauthorizedClient, d),
            GrantError::InvalidGrant(d) => Self::invalid_grant(d),
            GrantError::InvalidScope(d) => Self::invalid_scope(d),
            GrantError::Throttled(t) => Self::throttled(t),
            GrantError::Database(e) => e.into(),
        }
    }
}

pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body =
            OAuthErrorBody { error: self.error.as_ref().to_owned(), error_description: self.description };
        let mut res = (self.status, axum::Json(body)).into_response();
        let headers = res.headers_mut();
        no_store(headers);
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="berth""#));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// The form of a token request (`application/x-www-form-urlencoded`).
pub struct TokenRequest;

impl utoipa::PartialSchema for TokenRequest {
    fn schema() -> RefOr<Schema> {
        form_schema(
            "The form of a token request (`application/x-www-form-urlencoded`).",
            &[
                (
                    "grant_type",
                    true,
                    "`client_credentials` or `refresh_token`.",
                    Some("^(client_credentials|refresh_token)$"),
                ),
                (
                    "scope",
                    false,
                    "Space-separated scopes, at most those of the credential (or of the refreshed grant).",
                    None,
                ),
                ("refresh_token", false, "With `grant_type=refresh_token`.", None),
                (
                    "client_id",
                    false,
                    "With `client_secret_post`; otherwise authenticate with HTTP Basic.",
                    None,
                ),
                ("client_secret", false, "With `client_secret_post`.", None),
            ],
        )
    }
}

impl utoipa::ToSchema for TokenRequest {}

/// The form of a revocation request (RFC 7009, `application/x-www-form-urlencoded`).
pub struct RevokeRequest;

impl utoipa::PartialSchema for RevokeRequest {
    fn schema() -> RefOr<Schema> {
        form_schema(
            "The form of a revocation request (RFC 7009, `application/x-www-form-urlencoded`), with the \
             client authenticated as at the token endpoint.",
            &[
                ("token", true, "The access or refresh token to revoke.", None),
                (
                    "token_type_hint",
                    false,
                    "`access_token` or `refresh_token`: a hint, which Berth does not need.",
                    None,
                ),
                (
                    "client_id",
                    false,
                    "With `client_secret_post`; otherwise authenticate with HTTP Basic.",
                    None,
                ),
                ("client_secret", false, "With `client_secret_post`.", None),
            ],
        )
    }
}

impl utoipa::ToSchema for RevokeRequest {}

/// An OAuth2 form: string parameters, each given once (a repeated one is `invalid_request`),
/// others ignored (RFC 6749 §3.1, §3.2).
fn form_schema(description: &str, fields: &[(&str, bool, &str, Option<&str>)]) -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let mut form = ObjectBuilder::new().description(Some(description)).additional_properties(Some(string()));
    for (name, required, about, pattern) in fields {
        form = form.property(*name, string().description(Some(*about)).pattern(*pattern));
        if *required {
            form = form.required(*name);
        }
    }
    RefOr::T(Schema::Object(form.build()))
}

pub type Form = HashMap<String, String>;

/// Parses the form body; a parameter given twice is an `invalid_request` (RFC 6749 §3.2).
pub fn parse_form(headers: &HeaderMap, body: &Bytes) -> Result<Form, OAuthError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let mut form = Form::new();
    for (k, v) in form_urlencoded::parse(body) {
        // PostgreSQL stores no NUL: a parameter holding one names nothing Berth has.
        if k.contains('\0') || v.contains('\0') {
            return Err(OAuthError::invalid_request(format!(
                "parameter {} holds a NUL character",
                k.replace('\0', "")
            )));
        }
        if form.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {k} is given more than once")));
        }
    }
    Ok(form)
}

/// The client id and secret from HTTP Basic (form-URL-decoded after base64, RFC 6749 §2.3.1) or
/// from the body (`client_secret_post`); not both.
pub fn client_credentials(headers: &HeaderMap, form: &Form) -> Result<(String, String), OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
            let (scheme, b64) = v
                .split_once(' ')
                .ok_or_else(|| OAuthError::invalid_client("malformed Authorization header"))?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "authenticate the client with HTTP Basic or in the body",
                ));
            }
            let raw = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = raw
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            Some((form_decode(id)?, form_decode(secret)?))
        }
    };
    match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => {
            Err(OAuthError::invalid_request("use one client authentication method, not two"))
        }
        (Some((id, _)), Some(body_id), None) if *body_id != id => {
            Err(OAuthError::invalid_request("client_id differs from the authenticated client"))
        }
        (Some(pair), _, None) => Ok(pair),
        (None, Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
        (None, _, _) => Err(OAuthError::invalid_client("client authentication is required")),
    }
}

fn form_decode(s: &str) -> Result<String, OAuthError> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .filter(|c| !c.contains('\0'))
        .map(|c| c.into_owned())
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))
}
