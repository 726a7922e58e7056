use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};

pub const SESSION_SCHEME: &str = "session";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Berth",
        description = "A self-hostable, multi-tenant DBaaS control plane.\n\n\
            Sign in with `POST /api/auth/login`: the browser keeps the session cookie and sends it \
            with every request made from this page. Errors are RFC 9457 problem documents with a \
            stable `code`.\n\n\
            Roles, and what each may do in its organization:\n\n\
            | role | may |\n|---|---|\n\
            | viewer | read the organization, its members, stores and backups |\n\
            | member | as viewer, and create, change and delete stores and backups |\n\
            | admin | as member, and add, change and remove members other than owners |\n\
            | owner | as admin, and manage owners; an organization always keeps at least one |",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "auth", description = "Signing in and out"),
        (name = "system", description = "Liveness and health"),
        (name = "orgs", description = "Organizations and their members"),
        (name = "users", description = "The signed-in user's account"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "berth_session",
                "The session cookie set by POST /api/auth/login (HttpOnly: the browser sends it by itself).",
            ))),
        );
    }
}
