use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tower_sessions::Session;

use crate::auth::PRINCIPAL_KEY;
use crate::domain::{AuthMethod, Principal};
use crate::error::ApiError;

/// Any authenticated principal, including one who must still change their password.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub method: AuthMethod,
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("session layer missing"))?;
        let principal = session
            .get::<Principal>(PRINCIPAL_KEY)
            .await
            .map_err(|e| anyhow::anyhow!("loading session: {e}"))?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(Self {
            principal,
            method: AuthMethod::Session,
        })
    }
}

/// An authenticated principal allowed to use the API: one whose initial password has been
/// replaced. Until then only `/api/auth/*` and `/api/v1/users/me*` answer.
#[derive(Debug, Clone)]
pub struct ActiveUser {
    pub principal: Principal,
    pub method: AuthMethod,
}

impl ActiveUser {
    pub fn in_org(&self, org_id: uuid::Uuid) -> Result<crate::domain::Ctx, ApiError> {
        self.principal.in_org(org_id, self.method.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ActiveUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated { principal, method } =
            Authenticated::from_request_parts(parts, state).await?;
        if principal.must_change_password {
            return Err(ApiError::Forbidden {
                code: "password_change_required",
                detail: "change the initial password first: POST /api/v1/users/me/password".into(),
            });
        }
        Ok(Self { principal, method })
    }
}
