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
        (name = "ha", description = "High availability: switchovers, failovers, the topology, promotions and events"),
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

/// A problem that operations answer because of their shape rather than their logic: one entry
/// of `components.responses`, referenced by every operation that can answer it.
struct ShapeProblem {
    name: &'static str,
    status: u16,
    description: &'static str,
}

const BAD_REQUEST: ShapeProblem = ShapeProblem {
    name: "BadRequest",
    status: 400,
    description: "`bad_request`: a path parameter that does not parse (an id that is not a UUID, say), \
                  or a body that is not well-formed JSON",
};
const UNAUTHORIZED: ShapeProblem = ShapeProblem {
    name: "Unauthorized",
    status: 401,
    description: "Not authenticated: no session cookie or bearer token, or one that expired or was revoked",
};
const FORBIDDEN: ShapeProblem = ShapeProblem {
    name: "Forbidden",
    status: 403,
    description: "Not allowed: the caller's role or the token's scopes do not allow this, \
                  or a change sent with the session cookie came from another origin",
};
const NOT_FOUND: ShapeProblem = ShapeProblem {
    name: "NotFound",
    status: 404,
    description: "No such resource for the caller: none has this id, or it belongs to another organization",
};
const PAYLOAD_TOO_LARGE: ShapeProblem = ShapeProblem {
    name: "PayloadTooLarge",
    status: 413,
    description: "`payload_too_large`: the body is over 2 MiB",
};
const UNSUPPORTED_MEDIA_TYPE: ShapeProblem = ShapeProblem {
    name: "UnsupportedMediaType",
    status: 415,
    description: "`unsupported_media_type`: the body is not sent as `application/json`",
};
const UNPROCESSABLE: ShapeProblem = ShapeProblem {
    name: "Unprocessable",
    status: 422,
    description: "`validation_failed`: a field of the body, a query or path parameter is invalid \
                  (out of range, unknown, holding a NUL character); `errors` names each",
};
const UNAVAILABLE: ShapeProblem = ShapeProblem {
    name: "Unavailable",
    status: 503,
    description: "`service_unavailable`: the control database cannot be reached; try again shortly",
};

/// The sets, by what an operation has: what Berth's extractors and its control database answer.
const AUTHENTICATED: &[ShapeProblem] = &[UNAUTHORIZED, FORBIDDEN, UNAVAILABLE];
const WITH_PATH: &[ShapeProblem] = &[BAD_REQUEST, NOT_FOUND, UNPROCESSABLE];
const WITH_QUERY: &[ShapeProblem] = &[UNPROCESSABLE];
const WITH_JSON_BODY: &[ShapeProblem] =
    &[BAD_REQUEST, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, UNPROCESSABLE, UNAVAILABLE];

/// Documents, once for all operations, the problems they answer because of their shape, so that
/// no handler pastes them: an operation that needs a session or a token can answer
/// [`AUTHENTICATED`]'s, one with path parameters [`WITH_PATH`]'s (`AppPath`), with query
/// parameters [`WITH_QUERY`]'s (`AppQuery`), with a JSON body [`WITH_JSON_BODY`]'s (`AppJson`).
/// A handler documents the statuses of its own rules, and may describe one of these more
/// precisely for its operation: its own entry is kept.
pub fn document_problems(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let components = doc.components.get_or_insert_with(Default::default);
    let every = [AUTHENTICATED, WITH_PATH, WITH_QUERY, WITH_JSON_BODY];
    for problem in every.iter().flat_map(|set| set.iter()) {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
        let response =
            ResponseBuilder::new().description(problem.description).content(PROBLEM_JSON, content).build();
        components.responses.insert(problem.name.to_owned(), RefOr::T(response));
    }

    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let params = operation.parameters.as_deref().unwrap_or_default();
            let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
            let authenticated = operation.security.as_ref().is_some_and(|alternatives| {
                alternatives
                    .iter()
                    .all(|req| serde_json::to_value(req).is_ok_and(|v| v != serde_json::json!({})))
            });
            let json_body = operation
                .request_body
                .as_ref()
                .is_some_and(|body| body.content.contains_key("application/json"));
            let sets = [
                (authenticated, AUTHENTICATED),
                (has(ParameterIn::Path), WITH_PATH),
                (has(ParameterIn::Query), WITH_QUERY),
                (json_body, WITH_JSON_BODY),
            ];
            for problem in sets.into_iter().filter(|(applies, _)| *applies).flat_map(|(_, set)| set.iter()) {
                operation
                    .responses
                    .responses
                    .entry(problem.status.to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(problem.name)));
            }
        }
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The pattern of a string that holds no NUL character.
const NO_NUL: &str = r"^[^\x00]*$";

/// `AppJson`, `AppPath` and `AppQuery` refuse a NUL character in any string (422): every string
/// schema that does not already constrain its characters (by a pattern, a format or a list of
/// values; `password` is a hint, not a format of characters) says so with [`NO_NUL`]. On the document as JSON: utoipa cannot read back every
/// schema it writes.
pub fn document_no_nul(doc: &mut serde_json::Value) {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                let string = match map.get("type") {
                    Some(serde_json::Value::String(t)) => t == "string",
                    Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                    _ => false,
                };
                let constrained = ["pattern", "enum", "const"].iter().any(|k| map.contains_key(*k))
                    || map.get("format").is_some_and(|f| f != "password");
                if string && !constrained {
                    map.insert("pattern".into(), NO_NUL.into());
                }
                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(doc);
}
