use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};

pub const SESSION_SCHEME: &str = "session";
pub const BEARER_SCHEME: &str = "bearer";
pub const CLIENT_BASIC_SCHEME: &str = "client_basic";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Berth",
        description = "A self-hostable, multi-tenant DBaaS control plane.\n\n\
            Sign in with `POST /api/auth/login`: the browser keeps the session cookie and sends it \
            with every request made from this page. Automation uses OAuth2 client credentials: \
            create one (`POST /api/v1/orgs/{org_id}/credentials`), exchange it at \
            `POST /api/auth/oauth2/token` for a bearer token, and paste the token into Authorize → \
            bearer. Errors are RFC 9457 problem documents with a stable `code` (the token endpoint \
            answers RFC 6749 errors).\n\n\
            Roles, and what each may do in its organization:\n\n\
            | role | may |\n|---|---|\n\
            | viewer | read the organization, its members, stores, backups (not their archives) and VPCs |\n\
            | member | as viewer, and create, change and delete stores, backups and VPCs; download and verify backup archives |\n\
            | admin | as member, and invite, add, change and remove members other than owners |\n\
            | owner | as admin, and manage owners; an organization always keeps at least one |",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "auth", description = "Signing in and out"),
        (name = "system", description = "Liveness and health"),
        (name = "orgs", description = "Organizations, their members and invitations"),
        (name = "users", description = "The signed-in user's account and invitations"),
        (name = "oauth2", description = "OAuth2 token endpoint, revocation and metadata for automation"),
        (name = "credentials", description = "OAuth2 client credentials"),
        (name = "audit", description = "The tamper-evident audit trail"),
        (name = "content", description = "Deployment options"),
        (name = "stores", description = "Managed PostgreSQL stores and their nodes"),
        (name = "jobs", description = "The durable jobs that change stores"),
        (name = "firewall", description = "The networks allowed to connect to a store"),
        (name = "databases", description = "Databases and database users inside a store"),
        (name = "security", description = "The organization's certificate authority"),
        (name = "parameters", description = "Database parameters and parameter groups"),
        (name = "stats", description = "Store statistics sampled from the nodes"),
        (name = "backups", description = "Backups, restores and point-in-time recovery"),
        (name = "vpcs", description = "VPCs (private networks for stores) and the peerings between them"),
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
                "__Host-berth_session",
                "The session cookie set by POST /api/auth/login (HttpOnly: the browser sends it by itself). \
                 Named `__Host-<BERTH_SESSION_COOKIE>` while it is Secure, as by default.",
            ))),
        );
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "An access token from POST /api/auth/oauth2/token. The scopes an operation needs are listed beside it; \
             the token's credential must hold them and its creator's role must allow them."
                .into(),
        );
        components.add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description =
            Some("client_id and client_secret of a client credential (client_secret_basic).".into());
        components.add_security_scheme(CLIENT_BASIC_SCHEME, SecurityScheme::Http(basic));
    }
}
