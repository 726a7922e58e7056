use axum::http::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// The committed document is what the code generates and what the server serves. To update it
/// after an API change: `cargo run -- openapi > openapi/openapi.json`.
#[tokio::test]
async fn the_committed_openapi_document_matches_the_served_one() {
    let app = TestApp::spawn().await;
    let served = app.get("/api/openapi.json").send().await;
    assert_eq!(served.status, StatusCode::OK);
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).expect("openapi/openapi.json"))
            .expect("openapi/openapi.json is JSON");
    let generated = berth::http::openapi_document();
    assert_eq!(served.json(), generated);
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_documents_its_errors_and_security() {
    let doc = berth::http::openapi_document();
    let public = [
        "/api/status",
        "/api/version",
        "/api/health",
        "/api/auth/login",
        "/.well-known/oauth-authorization-server",
        "/api/v1/scopes",
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            if !public.contains(&path.as_str()) {
                assert!(op.get("security").is_some(), "{method} {path} names no security");
                assert!(codes.iter().any(|c| c.starts_with('4')), "{method} {path} documents no 4xx");
            }
        }
    }
}

/// Every `$ref` names a schema the document has: a type used only in a path or query parameter
/// is not collected by itself, and a dangling reference breaks clients and the Swagger UI.
#[test]
fn every_schema_reference_resolves() {
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let doc = berth::http::openapi_document();
    let mut found = vec![];
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    // `#/components/schemas/Problem`, `#/components/responses/NotFound`: a pointer into the
    // document.
    let dangling: Vec<&&str> = found
        .iter()
        .filter(|r| r.strip_prefix('#').is_none_or(|pointer| doc.pointer(pointer).is_none()))
        .collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/swagger/index.html").send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().to_lowercase().contains("swagger"));
    let root = app.get("/api/swagger").send().await;
    assert!(root.status.is_success() || root.status.is_redirection(), "{}", root.status);
}
