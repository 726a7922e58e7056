//! A fuzzer over every operation of the OpenAPI document, in-process against the router: path
//! segments, query strings, headers and bodies from a seeded generator, half malformed on
//! purpose, with a session cookie and with a bearer token. No answer may be a 5xx, and every
//! error is a problem document (the OAuth2 endpoints' are RFC 6749 bodies).
//!
//! The seed is fixed so that CI is repeatable; `BERTH_FUZZ_SEED=<n>` explores others, and a
//! failure names the seed and every request that failed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::client::{Fields, store_body};
use crate::helpers::{TestApp, TestResponse, basic};

const DEFAULT_SEED: u64 = 15;
/// Rounds over every operation, each with a cookie and with a token: 86 × 2 × 12 ≈ 2,000
/// requests, some 15 s here. `BERTH_FUZZ_ROUNDS=<n>` runs more.
const ROUNDS: usize = 12;

/// Ids of what exists, so that a share of the requests gets past the lookups to the rules.
struct Known {
    values: Vec<(&'static str, String)>,
}

impl Known {
    fn get(&self, param: &str) -> Option<&str> {
        self.values.iter().find(|(k, _)| *k == param).map(|(_, v)| v.as_str())
    }
}

struct Gen<'a> {
    rng: StdRng,
    doc: &'a Value,
    known: &'a Known,
}

/// Strings that have broken parsers: NUL, control characters, non-UTF-8 escapes, huge numbers,
/// very long values, SQL and path tricks.
fn hostile_strings() -> Vec<String> {
    vec![
        "".into(),
        "\u{0}".into(),
        "a\u{0}b".into(),
        "\u{1}\u{1f}\u{7f}".into(),
        "x".repeat(10_000),
        "é🙂\u{feff}".into(),
        "'; drop table stores; --".into(),
        "../../etc/passwd".into(),
        "-1".into(),
        "99999999999999999999999999".into(),
        "1e400".into(),
        "NaN".into(),
        "null".into(),
        "2026-13-45T99:99:99Z".into(),
        "0000-01-01T00:00:00Z".into(),
        "9999-12-31T23:59:59Z".into(),
        "00000000-0000-0000-0000-000000000000".into(),
        "::/0".into(),
        "999.1.1.1/99".into(),
        "* * * * *".into(),
        "template1".into(),
        "pg_catalog".into(),
        // Words some fields expect, so that a share of the requests gets further.
        "client_credentials".into(),
        "refresh_token".into(),
        "app".into(),
        "read".into(),
        "admin".into(),
        "local".into(),
        "10.0.0.0/16".into(),
        "127.0.0.1/32".into(),
        "0 3 * * *".into(),
    ]
}

/// Path segments: percent-encoded already, as they go into the URI.
const HOSTILE_SEGMENTS: &[&str] = &[
    "not-a-uuid",
    "%00",
    "a%00b",
    "%FF%FE",
    "%2F",
    "%20",
    "..",
    "0",
    "-1",
    "{00000000-0000-0000-0000-000000000000}",
    "00000000-0000-0000-0000-000000000000",
    "template1",
    "template0",
    "postgres",
    "pg_x",
    "%C3%A9",
];

/// Query values: percent-encoded already.
const HOSTILE_QUERY: &[&str] = &[
    "",
    "%00",
    "a%00b",
    "%FF",
    "%ZZ",
    "-1",
    "0",
    "1",
    "101",
    "99999999999999999999",
    "1e400",
    "abc",
    "true",
    "null",
    "2026-01-01T00%3A00%3A00Z",
    "2026-13-45",
    "1m",
    "10s",
    "cpu",
    "connections",
    "available",
    "%2B",
    "a%3Db",
];

/// A schema, with its `$ref` followed into the components.
fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> &'d Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let found = &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")];
            assert!(!found.is_null(), "unresolved {r}");
            resolve(doc, found)
        }
        None => schema,
    }
}

impl Gen<'_> {
    fn pick<'s, T>(&mut self, items: &'s [T]) -> &'s T {
        items.choose(&mut self.rng).expect("a non-empty list")
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn hostile_value(&mut self) -> Value {
        match self.rng.gen_range(0..10) {
            0 => json!(1e308),
            1 => json!(-1),
            2 => json!(u64::MAX),
            3 => json!(i64::MIN),
            4 => Value::Null,
            5 => json!([]),
            6 => json!({"\u{0}": "\u{0}"}),
            7 => json!(true),
            _ => Value::String(self.pick(&hostile_strings()).clone()),
        }
    }

    fn string_for(&mut self, schema: &Value) -> Value {
        // The one byte PostgreSQL's text refuses, often enough to reach every string field.
        if self.chance(0.15) {
            return json!("nul\u{0}here");
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.is_empty() && self.chance(0.8) {
                return self.pick(values).clone();
            }
        }
        // Descriptions name the values a field takes in backquotes (`read`, `readwrite`).
        let named: Vec<String> = schema["description"]
            .as_str()
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        if !named.is_empty() && self.chance(0.5) {
            return json!(self.pick(&named));
        }
        if let Some(example) = schema.get("example") {
            if self.chance(0.5) {
                return example.clone();
            }
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("uuid") if self.chance(0.7) => {
                let known = ["org_id", "store_id", "node_id", "job_id"];
                let k = *self.pick(&known);
                json!(
                    self.known.get(k).map(str::to_owned).unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
                )
            }
            Some("date-time") if self.chance(0.7) => {
                let offset = self.rng.gen_range(-3_000_000i64..3_000_000);
                let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset);
                json!(t.format(&time::format_description::well_known::Rfc3339).unwrap())
            }
            _ => Value::String(self.pick(&hostile_strings()).clone()),
        }
    }

    /// A value for `schema`, wrong in places on purpose.
    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        let schema = &resolve(self.doc, schema).clone();
        if depth > 5 {
            return Value::Null;
        }
        if self.chance(0.1) {
            return self.hostile_value();
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let option = self.pick(options).clone();
                return self.value(&option, depth + 1);
            }
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in parts.clone() {
                match self.value(&part, depth + 1) {
                    Value::Object(m) => merged.extend(m),
                    other => return other,
                }
            }
            return Value::Object(merged);
        }
        let ty = match &schema["type"] {
            Value::String(t) => t.clone(),
            Value::Array(ts) => {
                let ts: Vec<&Value> = ts.iter().filter(|t| *t != "null").collect();
                match ts.first() {
                    Some(t) if !self.chance(0.1) => t.as_str().unwrap_or("null").to_owned(),
                    _ => "null".into(),
                }
            }
            _ if schema.get("properties").is_some() => "object".into(),
            _ if schema.get("enum").is_some() => "string".into(),
            _ => return self.hostile_value(),
        };
        match ty.as_str() {
            "object" => {
                let required: Vec<String> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let mut out = Map::new();
                if let Some(props) = schema["properties"].as_object() {
                    for (name, prop) in props.clone() {
                        let keep = if required.contains(&name) { 0.95 } else { 0.5 };
                        if self.chance(keep) {
                            let v = self.value(&prop, depth + 1);
                            out.insert(name, v);
                        }
                    }
                }
                if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    for _ in 0..self.rng.gen_range(0..3) {
                        let key = self.pick(&["work_mem", "max_connections", "x", "a\u{0}", ""]).to_string();
                        let v = self.value(&extra.clone(), depth + 1);
                        out.insert(key, v);
                    }
                }
                if self.chance(0.05) {
                    out.insert("unexpected".into(), json!(1));
                }
                Value::Object(out)
            }
            "array" => {
                let items = schema.get("items").cloned().unwrap_or(Value::Null);
                let n = self.rng.gen_range(0..4);
                Value::Array((0..n).map(|_| self.value(&items, depth + 1)).collect())
            }
            "string" => self.string_for(schema),
            "integer" => {
                json!(*self.pick(&[0i64, 1, -1, 10, 100, 1024, i64::MAX, i64::MIN, i32::MAX as i64]))
            }
            "number" => json!(*self.pick(&[0.0, 0.5, -1.0, 1e308, 3.5])),
            "boolean" => json!(self.chance(0.5)),
            _ => Value::Null,
        }
    }

    /// The URI of one case of `template` (`/api/v1/orgs/{org_id}/…`) with its query parameters.
    fn uri(&mut self, template: &str, params: &[Value]) -> String {
        let mut path = template.to_owned();
        for p in params.iter().filter(|p| p["in"] == "path") {
            let name = p.str_at("/name");
            let value = match self.known.get(name) {
                Some(v) if self.chance(0.85) => v.to_owned(),
                _ if self.chance(0.3) => uuid::Uuid::new_v4().to_string(),
                _ if self.chance(0.1) => "x".repeat(self.rng.gen_range(100..5_000)),
                _ => (*self.pick(HOSTILE_SEGMENTS)).to_owned(),
            };
            path = path.replace(&format!("{{{name}}}"), &value);
        }
        let mut query: Vec<String> = vec![];
        for p in params.iter().filter(|p| p["in"] == "query") {
            if self.chance(0.5) {
                query.push(format!("{}={}", p.str_at("/name"), self.pick(HOSTILE_QUERY)));
            }
        }
        if self.chance(0.1) {
            query.push(self.pick(&["zzz=1", "&&", "=", "%00=1", "limit=1&limit=2", "a[b]=c"]).to_string());
        }
        if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) }
    }

    /// A body for `op`: mostly from its schema, sometimes not JSON at all, or of another type.
    fn body(&mut self, op: &Value) -> Option<(Option<&'static str>, Vec<u8>)> {
        let content = op["requestBody"]["content"].as_object();
        let (media, schema) = match content.and_then(|c| c.iter().next()) {
            Some((m, c)) => (m.clone(), c["schema"].clone()),
            None if self.chance(0.7) => return None,
            None => ("application/json".into(), json!({})),
        };
        let form = media == "application/x-www-form-urlencoded";
        let media: &'static str = if form { "application/x-www-form-urlencoded" } else { "application/json" };
        Some(match self.rng.gen_range(0..20) {
            0 => (Some(media), vec![]),
            1 => (None, b"{}".to_vec()),
            2 => (Some("text/plain"), b"{}".to_vec()),
            3 => (Some(media), b"{\"a\":".to_vec()),
            4 => (Some(media), vec![0xff, 0xfe, b'{', 0]),
            5 => (Some(media), b"1e400".to_vec()),
            6 => (Some(media), format!("{}{}", "[".repeat(300), "]".repeat(300)).into_bytes()),
            7 => (Some(media), b"{\"name\": \"a\x00\"}".to_vec()),
            8 => (Some("application/x-www-form-urlencoded"), b"a=b&c=%00".to_vec()),
            9 => (Some(media), b"null".to_vec()),
            _ => {
                let mut v = self.value(&schema, 0);
                if form && !v.is_object() {
                    // A form described in words: its fields are the backquoted names.
                    let description = op["requestBody"]["description"].as_str().unwrap_or_default();
                    let fields: Map<String, Value> = description
                        .split('`')
                        .skip(1)
                        .step_by(2)
                        .chain(["client_id", "client_secret"])
                        .map(|f| (f.to_owned(), self.string_for(&json!({}))))
                        .collect();
                    v = Value::Object(fields);
                }
                if form {
                    let mut s = form_urlencoded::Serializer::new(String::new());
                    if let Value::Object(m) = &v {
                        for (k, v) in m {
                            s.append_pair(k, &v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
                        }
                    }
                    (Some(media), s.finish().into_bytes())
                } else {
                    (Some(media), v.to_string().into_bytes())
                }
            }
        })
    }

    /// Headers the operation declares, with values to break them.
    fn headers(&mut self, params: &[Value]) -> Vec<(String, String)> {
        let mut out = vec![];
        for p in params.iter().filter(|p| p["in"] == "header") {
            if self.chance(0.6) {
                let v = match self.rng.gen_range(0..6) {
                    0 => "x".repeat(300),
                    1 => "é".into(),
                    2 => "\"0\"".into(),
                    3 => "*".into(),
                    4 => " ".into(),
                    _ => uuid::Uuid::new_v4().to_string(),
                };
                out.push((p.string_at("/name"), v));
            }
        }
        if self.chance(0.05) {
            out.push(("x-request-id".into(), "r".repeat(2_000)));
        }
        out
    }
}

/// Why an answer fails the property, if it does.
fn fault(path: &str, r: &TestResponse) -> Option<String> {
    // A readiness probe: its 503 says this process runs no workers (the fuzzer stopped them).
    if path == "/api/health" {
        return None;
    }
    if r.status.is_server_error() {
        return Some(format!("{}: {}", r.status, r.text()));
    }
    if r.status.is_client_error() {
        let ct = r.header("content-type").unwrap_or_default();
        let oauth = path.starts_with("/api/auth/oauth2/");
        let ok = if oauth {
            ct == "application/json" && r.json()["error"].is_string()
        } else {
            ct == "application/problem+json"
                && serde_json::from_slice::<Value>(&r.body).is_ok_and(|j| j["code"].is_string())
        };
        if !ok {
            return Some(format!("{} with {ct:?}: {}", r.status, r.text()));
        }
    }
    None
}

#[tokio::test]
async fn no_route_answers_malformed_input_with_a_5xx_or_a_body_that_is_not_a_problem() {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse().ok());
    let seed = env("BERTH_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let rounds = env("BERTH_FUZZ_ROUNDS").unwrap_or(ROUNDS as u64);
    let mut app = TestApp::spawn().await.with_workers(1).await;
    let mut cookie = app.login_owner().await;
    let org = app.owner_org;
    let mut create = store_body("fuzzed", 1);
    create["deletion_protection"] = json!(true);
    let store = app.ready_store(&cookie, org, create).await;
    // With the store running, the workers stop: what the fuzzer starts queues and waits.
    app.workers.take().unwrap().shutdown().await;
    let base = store.path();
    let r = app.post(&format!("{base}/databases")).cookie(&cookie).json(json!({"name": "app"})).send().await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = app
        .post(&format!("{base}/db-users"))
        .cookie(&cookie)
        .json(json!({"username": "fuzzer", "privileges": "read"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let scopes: Vec<String> = app.get("/api/v1/scopes").send().await.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.string_at("/name"))
        .collect();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let token = app.bearer_token(&cookie, org, &scopes).await;

    let known = Known {
        values: vec![
            ("org_id", org.to_string()),
            ("store_id", store.id.to_string()),
            ("node_id", store.node_id().to_string()),
            ("job_id", store.created.job_id.to_string()),
            ("name", if seed % 2 == 0 { "app".into() } else { "fuzzer".into() }),
        ],
    };
    let doc = berth::http::openapi_document();
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), doc: &doc, known: &known };
    let mut operations = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                operations.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    assert!(operations.len() > 80, "{} operations", operations.len());

    let started = std::time::Instant::now();
    let (mut sent, mut faults) = (0, vec![]);
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..rounds {
        operations.shuffle(&mut g.rng);
        for (template, method, op) in &operations {
            for by_token in [false, true] {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let uri = g.uri(template, &params);
                let call = match method.as_str() {
                    "get" => app.get(&uri),
                    "post" => app.post(&uri),
                    "put" => app.put(&uri),
                    "patch" => app.patch(&uri),
                    _ => app.delete(&uri),
                };
                let mut call = match (by_token, template.starts_with("/api/auth/oauth2/")) {
                    // The OAuth2 endpoints authenticate clients, with HTTP Basic or in the body.
                    (true, true) => {
                        let id = g.string_for(&json!({})).as_str().unwrap_or_default().to_owned();
                        call.header("authorization", &basic(&id, "secret"))
                    }
                    (true, false) => call.bearer(&token),
                    (false, _) => call.cookie(&cookie),
                };
                for (k, v) in g.headers(&params) {
                    call = call.header(&k, &v);
                }
                if let Some((content_type, body)) = g.body(op) {
                    call = call.bytes(content_type, body);
                }
                let r = call.send().await;
                sent += 1;
                *statuses.entry((template.clone(), r.status.as_u16())).or_insert(0) += 1;
                if let Some(f) = fault(template, &r) {
                    faults.push(format!("round {round}: {} {uri}: {f}", method.to_uppercase()));
                }
                if template == "/api/auth/logout" && r.status.is_success() && !by_token {
                    cookie = app.login_owner().await;
                }
            }
        }
    }
    let excerpt: Vec<String> = faults.iter().map(|f| f.chars().take(600).collect()).collect();
    assert!(
        faults.is_empty(),
        "seed {seed}: {} of {sent} requests failed:\n{}",
        faults.len(),
        excerpt.join("\n")
    );
    eprintln!("{sent} requests in {:?}; (operation, status): count {statuses:?}", started.elapsed());
}
