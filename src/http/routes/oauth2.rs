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
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, Outcome, RequestMeta};
use crate::auth::throttle::{self, Limit};
use crate::auth::token::{self, TagKey};
use crate::db;
use crate::db::credentials::ClientAuth;
use crate::db::tokens::{NewPair, Refresh};
use crate::domain::Scope;
use crate::http::extract::AppJson;
use crate::http::rfc6749::{
    Form, OAuthError, OAuthErrorBody, RevokeRequest, TokenRequest, client_credentials, no_store, parse_form,
};

pub const ACCESS_TTL: Duration = Duration::HOUR;
pub const REFRESH_TTL: Duration = Duration::days(30);

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

/// Authenticates the client under the throttles of its client id and of the request's source
/// address. The secret is checked first (a SHA-256); a wrong one is then counted, and answered
/// 401 only if the windows had room for it, 429 otherwise, however many arrive at once.
async fn authenticate(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    form: &Form,
) -> Result<ClientAuth, OAuthError> {
    let (client_id, secret) = client_credentials(headers, form)?;
    let now = state.clock.now();
    let refuse = |reason: &str, org: Option<Uuid>, credential: Option<Uuid>| {
        let mut ev = Event::new("token.refused", meta)
            .claimed_actor(&client_id)
            .outcome(Outcome::Denied)
            .detail("reason", reason);
        if let Some(org) = org {
            ev = ev.org(org);
        }
        if let Some(c) = credential {
            ev = ev.credential(c);
        }
        ev
    };
    // A made-up client id is refused before the database. It is not counted either: with no
    // credential behind it, there is no secret to guess.
    if !state.token_tags.may_be_genuine(token::CLIENT_ID, &client_id) {
        refuse("made-up client id", None, None).tally(&state.refusals, now);
        return Err(OAuthError::invalid_client("unknown client or wrong secret"));
    }
    let limits = [Limit::client(&client_id), Limit::address(&state.auth, meta.source_ip.as_deref())];
    if let Err(t) = throttle::check(&state.db, &limits, now).await? {
        refuse("throttled", None, None).tally(&state.refusals, now);
        return Err(OAuthError::throttled(t));
    }
    let found = db::credentials::for_client_auth(&state.db, &client_id).await?;
    // Hash the presented secret even for an unknown client, so both take the same time.
    let stored = found.as_ref().map_or(&[0u8; 32][..], |c| &c.secret_hash[..]);
    let secret_ok = token::matches(&secret, stored) && found.is_some();
    let (known_org, known_credential) = found.as_ref().map(|c| (c.org_id, c.id)).unzip();
    let Some(client) = found.filter(|_| secret_ok) else {
        // The failure stays counted: the reservation is not given back.
        if let Err(t) = throttle::reserve(&state.db, &limits, now).await?.map(drop) {
            refuse("throttled", known_org, known_credential).tally(&state.refusals, now);
            return Err(OAuthError::throttled(t));
        }
        refuse("wrong client secret or unknown client", known_org, known_credential)
            .tally(&state.refusals, now);
        return Err(OAuthError::invalid_client("unknown client or wrong secret"));
    };
    let dead = if client.revoked_at.is_some() {
        Some("the credential is revoked")
    } else if client.expires_at <= now {
        Some("the credential has expired")
    } else {
        None
    };
    if let Some(reason) = dead {
        refuse(reason, Some(client.org_id), Some(client.id)).record(&state.db, now).await?;
        return Err(OAuthError::invalid_client(reason));
    }
    if client.creator_role.is_none() {
        refuse("the credential's creator left the organization", Some(client.org_id), Some(client.id))
            .record(&state.db, now)
            .await?;
        return Err(OAuthError::new(
            BasicErrorResponseType::UnauthorizedClient,
            "the credential's creator is no longer a member of its organization",
        ));
    }
    Ok(client)
}

/// The requested scopes, which must all be in `allowed`; none requested: all of `allowed`.
fn granted_scopes(requested: Option<&String>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let mut out: Vec<String> = vec![];
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if Scope::parse(s).is_none() {
            return Err(OAuthError::invalid_scope(format!("unknown scope {s}")));
        }
        if !allowed.iter().any(|a| a == s) {
            return Err(OAuthError::invalid_scope(format!("scope {s} is not granted to this client")));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Err(OAuthError::invalid_scope("scope is empty"));
    }
    Ok(out)
}

/// The grant a token pair belongs to.
enum Grant {
    /// A new grant (`client_credentials`): its pair is committed without waiting for the WAL
    /// flush, see [`db::tokens::insert_pair`].
    New,
    /// The next pair of a grant, in the transaction that used its refresh token: durable.
    Rotated(Uuid),
}

/// Issues an access token and a refresh token of `grant`, neither outliving the credential.
async fn issue(
    conn: &mut PgConnection,
    tags: &TagKey,
    client: &ClientAuth,
    grant: Grant,
    scopes: Vec<String>,
    now: OffsetDateTime,
) -> Result<TokenResponse, OAuthError> {
    let (family_id, durable) = match grant {
        Grant::New => (Uuid::now_v7(), false),
        Grant::Rotated(family_id) => (family_id, true),
    };
    let access = tags.generate(token::ACCESS);
    let refresh = tags.generate(token::REFRESH);
    let access_expires = (now + ACCESS_TTL).min(client.expires_at);
    let refresh_expires = (now + REFRESH_TTL).min(client.expires_at);
    db::tokens::insert_pair(
        conn,
        NewPair {
            access_hash: &token::hash(&access),
            refresh_hash: &token::hash(&refresh),
            credential_id: client.id,
            family_id,
            scopes: &scopes,
            now,
            access_expires_at: access_expires,
            refresh_expires_at: refresh_expires,
        },
        durable,
    )
    .await?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: (access_expires - now).whole_seconds(),
        refresh_token: refresh,
        scope: scopes.join(" "),
    })
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
    let now = state.clock.now();
    let response = match grant.as_str() {
        "client_credentials" => {
            let scopes = granted_scopes(form.get("scope"), &client.scopes)?;
            let mut conn = state.db.acquire().await?;
            issue(&mut conn, &state.token_tags, &client, Grant::New, scopes, now).await?
        }
        "refresh_token" => {
            let presented = form
                .get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            // Counted, not appended, like every refusal a client can repeat at will.
            let refuse = || {
                Event::new("token.refused", &meta)
                    .org(client.org_id)
                    .credential(client.id)
                    .outcome(Outcome::Denied)
                    .detail("reason", "invalid, expired or revoked refresh token")
                    .tally(&state.refusals, now);
                OAuthError::invalid_grant("the refresh token is invalid, expired or revoked")
            };
            // A made-up one is refused before the database.
            if !state.token_tags.may_be_genuine(token::REFRESH, presented) {
                return Err(refuse());
            }
            let mut tx = state.db.begin().await?;
            match db::tokens::use_refresh(&mut tx, &token::hash(presented), client.id, now).await? {
                Refresh::Rotated { family_id, scopes } => {
                    let scopes = granted_scopes(form.get("scope"), &scopes)?;
                    let r =
                        issue(&mut tx, &state.token_tags, &client, Grant::Rotated(family_id), scopes, now)
                            .await?;
                    tx.commit().await?;
                    r
                }
                Refresh::Reused { family_id } => {
                    let revoked = db::tokens::revoke_family(&mut *tx, family_id, now).await?;
                    Event::new("token.family_revoked", &meta)
                        .org(client.org_id)
                        .credential(client.id)
                        .actor_user(client.created_by)
                        .outcome(Outcome::Denied)
                        .detail("reason", "a used refresh token was presented again")
                        .detail("tokens_revoked", revoked)
                        .record_in(&mut tx, now)
                        .await?;
                    tx.commit().await?;
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was already used; the grant is revoked",
                    ));
                }
                Refresh::Invalid => return Err(refuse()),
            }
        }
        other => {
            return Err(OAuthError::new(
                BasicErrorResponseType::UnsupportedGrantType,
                format!("grant_type {other} is not supported; use client_credentials or refresh_token"),
            ));
        }
    };
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
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    if db::tokens::revoke_token(&mut tx, &token::hash(&presented), client.id, now).await? {
        Event::new("token.revoked", &meta)
            .org(client.org_id)
            .credential(client.id)
            .actor_user(client.created_by)
            .record_in(&mut tx, now)
            .await?;
    }
    tx.commit().await?;
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
    pub least_role: crate::domain::Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeList {
    pub items: Vec<ScopeInfo>,
}

/// The scopes a client credential can be given.
#[utoipa::path(get, path = "/api/v1/scopes", tag = "oauth2", responses((status = 200, body = ScopeList)))]
async fn scopes() -> AppJson<ScopeList> {
    use crate::domain::Role;
    let least = |s: Scope| {
        [Role::Viewer, Role::Member, Role::Admin, Role::Owner]
            .into_iter()
            .find(|r| r.allows(s))
            .unwrap_or(Role::Owner)
    };
    AppJson(ScopeList {
        items: Scope::ALL
            .iter()
            .map(|&s| ScopeInfo { name: s.as_str(), description: s.describe(), least_role: least(s) })
            .collect(),
    })
}
