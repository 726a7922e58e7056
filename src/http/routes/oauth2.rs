//! The OAuth2 authorization server for automation: the token endpoint (RFC 6749:
//! `client_credentials` and `refresh_token`), revocation (RFC 7009) and metadata (RFC 8414).
//!
//! Errors here are RFC 6749 §5.2 bodies, not problem documents: OAuth2 client libraries parse
//! them. The endpoints ignore cookies.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oauth2::basic::BasicErrorResponseType;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::credentials::ClientAuth;
use crate::domain::{Role, Scope};
use crate::http::extract::AppJson;
use crate::http::rfc6749::{
    Form, OAuthError, OAuthErrorBody, RevokeRequest, TokenRequest, client_credentials, no_store, parse_form,
};
use crate::service::credentials::{self, TokenGrant, Tokens};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token_endpoint))
        .routes(routes!(revoke))
        .routes(routes!(metadata))
        .routes(routes!(scopes))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Opaque bearer token, `brt_…`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 3600)]
    pub expires_in: i64,
    /// Single-use: each refresh returns a new one, and presenting a used one revokes the family.
    pub refresh_token: String,
    /// The granted scopes, space-separated.
    pub scope: String,
}

impl From<Tokens> for TokenResponse {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            scope: t.scopes.join(" "),
        }
    }
}

/// The client the request authenticates (HTTP Basic or the form), as the credentials service
/// checks it.
async fn authenticate(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    form: &Form,
) -> Result<ClientAuth, OAuthError> {
    let (client_id, secret) = client_credentials(headers, form)?;
    Ok(credentials::authenticate(state, meta, &client_id, &secret).await?)
}

/// The token endpoint. Authenticate the client with HTTP Basic (`client_secret_basic`) or with
/// `client_id` and `client_secret` in the body (`client_secret_post`).
///
/// - `grant_type=client_credentials`, optional `scope`: a new grant.
/// - `grant_type=refresh_token`, `refresh_token`, optional `scope`: the next pair of the grant;
///   the refresh token is single-use, and presenting a used one revokes every token of the grant.
#[utoipa::path(
    post, path = "/api/auth/oauth2/token", tag = "oauth2",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, body = TokenResponse, headers(("Cache-Control" = String), ("Pragma" = String))),
        (status = 400, description = "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type or invalid_scope", body = OAuthErrorBody),
        (status = 401, description = "invalid_client, with `WWW-Authenticate: Basic`", body = OAuthErrorBody),
        (status = 429, description = "Too many failed authentications for this client id or from this address", body = OAuthErrorBody),
    )
)]
async fn token_endpoint(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let form = parse_form(&headers, &body)?;
    let grant =
        form.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?.clone();
    let client = authenticate(&state, &meta, &headers, &form).await?;
    let grant = match grant.as_str() {
        "client_credentials" => TokenGrant::ClientCredentials,
        "refresh_token" => TokenGrant::Refresh(
            form.get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?,
        ),
        other => {
            return Err(OAuthError::new(
                BasicErrorResponseType::UnsupportedGrantType,
                format!("grant_type {other} is not supported; use client_credentials or refresh_token"),
            ));
        }
    };
    let scope = form.get("scope").map(String::as_str);
    let response = TokenResponse::from(credentials::grant(&state, &meta, &client, grant, scope).await?);
    let mut res = axum::Json(response).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// RFC 7009 token revocation: `token` (access or refresh; a refresh token takes its whole grant
/// with it), authenticated as the client that holds it. Always 200 for an authenticated client,
/// also for a token that is unknown or not its own.
#[utoipa::path(
    post, path = "/api/auth/oauth2/revoke", tag = "oauth2",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "invalid_request", body = OAuthErrorBody),
        (status = 401, description = "invalid_client", body = OAuthErrorBody),
        (status = 429, description = "Too many failed authentications for this client id or from this address", body = OAuthErrorBody),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let form = parse_form(&headers, &body)?;
    let presented =
        form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?.clone();
    let client = authenticate(&state, &meta, &headers, &form).await?;
    credentials::revoke_token(&state, &meta, &client, &presented).await?;
    let mut res = StatusCode::OK.into_response();
    no_store(res.headers_mut());
    Ok(res)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub scopes_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
}

/// RFC 8414 authorization server metadata.
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "oauth2",
    responses((status = 200, body = ServerMetadata))
)]
async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> AppJson<ServerMetadata> {
    let issuer = state.auth.public_url.clone().unwrap_or_else(|| {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        format!("http://{host}")
    });
    let issuer = issuer.trim_end_matches('/').to_owned();
    let auth_methods = vec!["client_secret_basic", "client_secret_post"];
    AppJson(ServerMetadata {
        token_endpoint: format!("{issuer}/api/auth/oauth2/token"),
        revocation_endpoint: format!("{issuer}/api/auth/oauth2/revoke"),
        issuer,
        grant_types_supported: vec!["client_credentials", "refresh_token"],
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods,
        scopes_supported: Scope::ALL.iter().map(|s| s.as_str()).collect(),
        response_types_supported: vec![],
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// The least role whose members may hold it.
    pub least_role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeList {
    pub items: Vec<ScopeInfo>,
}

/// The scopes a client credential can be given.
#[utoipa::path(get, path = "/api/v1/scopes", tag = "oauth2", responses((status = 200, body = ScopeList)))]
async fn scopes() -> AppJson<ScopeList> {
    AppJson(ScopeList {
        items: Scope::ALL
            .iter()
            .map(|&s| ScopeInfo { name: s.as_str(), description: s.describe(), least_role: Role::least(s) })
            .collect(),
    })
}
