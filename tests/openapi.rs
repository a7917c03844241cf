//! The OpenAPI document: valid OpenAPI 3.1, naming exactly the endpoints of the contract,
//! each of them mounted, and the answers of a real flow matching their documented schemas.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    base_args, eventually, spawn_app, spawn_app_with, with_flags, Backend, TestAccrual, TestApp,
    TestDb, ADMIN_TOKEN, SHOP_TOKEN,
};
use crate::on_both_backends;
use gophermart::warehouse::{run, WarehouseSettings};

/// Every endpoint of the core contract and of the platform, and nothing else.
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/api/user/register"),
    ("post", "/api/user/login"),
    // Beyond the written contract: the pages sign out by expiring the cookie.
    ("post", "/api/user/logout"),
    ("post", "/api/user/orders"),
    ("get", "/api/user/orders"),
    ("get", "/api/user/balance"),
    ("post", "/api/user/balance/withdraw"),
    ("get", "/api/user/withdrawals"),
    ("get", "/api/user/balance/withdrawals"),
    ("get", "/api/user/history"),
    ("get", "/api/rewards"),
    ("post", "/api/user/redemptions"),
    ("get", "/api/user/redemptions"),
    ("get", "/api/user/redemptions/{id}"),
    ("get", "/api/campaigns"),
    ("post", "/api/user/coupons"),
    ("get", "/api/user/coupons"),
    ("post", "/api/admin/rewards"),
    ("get", "/api/admin/rewards"),
    ("patch", "/api/admin/rewards/{sku}"),
    ("post", "/api/admin/campaigns"),
    ("get", "/api/admin/campaigns/{id}"),
    ("get", "/api/admin/events"),
    ("get", "/api/admin/stats/summary"),
    ("get", "/api/admin/stats/daily"),
    ("get", "/api/admin/stats/top"),
    ("get", "/api/admin/audit"),
    ("get", "/api/shop/coupons/{code}"),
    ("post", "/api/shop/coupons/{code}/redeem"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let response = app.get("/api/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// Every `(method, path)` the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                found.insert((method.clone(), path.clone()));
            }
        }
    }
    found
}

/// Every `$ref` in `value`, as JSON pointers into the document.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

/// The reference validator of the OpenAPI Initiative's ecosystem, `openapi-spec-validator`
/// (PyPI), run on the document. `.ci/run` installs it; elsewhere the check says `skipped`
/// when it is missing.
fn openapi_spec_validator(doc: &Value) {
    let file = std::env::temp_dir().join(format!(
        "gophermart-openapi-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, doc.to_string()).unwrap();
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             try:\n    from openapi_spec_validator import validate\n\
             except ImportError:\n    sys.exit(3)\n\
             spec = json.load(open(sys.argv[1]))\n\
             validate(spec)\n\
             print('valid', spec['openapi'])",
        ])
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let missing = match &output {
        Ok(output) => output.status.code() == Some(3),
        Err(_) => true,
    };
    if missing {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "python3 with openapi-spec-validator is required under CI"
        );
        eprintln!("skipped: openapi-spec-validator (pip) not installed");
        return;
    }
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "valid 3.1.0"
    );
}

async fn the_document_is_openapi_3_1_and_names_exactly_the_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let expected: BTreeSet<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let found = operations(&doc);
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(missing.is_empty(), "not documented: {missing:?}");
    assert!(
        extra.is_empty(),
        "documented beyond the contract: {extra:?}"
    );

    let mut ids = BTreeSet::new();
    for (method, path) in &found {
        let operation = &doc["paths"][path][method];
        let id = operation["operationId"].as_str().expect("an operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} documents no success"
        );
        let security = operation["security"].as_array();
        let public = ["register", "login", "logout"].contains(&id);
        assert_eq!(security.is_none(), public, "{method} {path}: security");
        for requirement in security.into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    doc["components"]["securitySchemes"][scheme].is_object(),
                    "{method} {path}: unknown scheme {scheme}"
                );
            }
        }
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, in_path, "{method} {path}: path parameters");
    }
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target.strip_prefix('#').expect("a local $ref");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
    openapi_spec_validator(&doc);
}

/// The same request with placeholders for path parameters and the role's token.
async fn call(app: &TestApp, method: &str, path: &str) -> (StatusCode, String) {
    let url = format!(
        "{}{}",
        app.address,
        path.replace("{id}", "placeholder")
            .replace("{sku}", "placeholder")
            .replace("{code}", "PLACEHOLDER")
    );
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app.client.request(method, url);
    if path.starts_with("/api/admin/") {
        request = request.bearer_auth(ADMIN_TOKEN);
    } else if path.starts_with("/api/shop/") {
        request = request.bearer_auth(SHOP_TOKEN);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Whether the router found nothing for the request (the service's own `404`, or `405`).
fn unrouted((status, body): &(StatusCode, String)) -> bool {
    *status == StatusCode::METHOD_NOT_ALLOWED
        || (*status == StatusCode::NOT_FOUND && body == "no such endpoint")
}

async fn every_documented_operation_is_mounted(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    // The check itself bites: what is not mounted is recognised as such.
    for (method, path) in [
        ("get", "/api/user/nothing"),
        ("delete", "/api/user/orders"),
        ("get", "/api/admin/nothing"),
        ("get", "/api/shop/nothing"),
    ] {
        assert!(
            unrouted(&call(&app, method, path).await),
            "{method} {path} looks mounted"
        );
    }
    for (method, path) in operations(&doc) {
        let answer = call(&app, &method, &path).await;
        assert!(
            !unrouted(&answer),
            "{method} {path} is documented but not mounted: {answer:?}"
        );
    }
}

/// A validator for the schema the document gives `status` of `method path` (JSON only).
fn validator(doc: &Value, method: &str, path: &str, status: u16) -> jsonschema::Validator {
    let schema = doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"]
        .clone();
    assert!(
        schema.is_object(),
        "{method} {path} documents no JSON for {status}"
    );
    let mut root = schema.as_object().unwrap().clone();
    root.insert("components".to_owned(), doc["components"].clone());
    jsonschema::draft202012::new(&Value::Object(root)).expect("a valid JSON Schema")
}

/// Sends a request and checks a JSON answer against its documented schema.
struct Checked<'a> {
    app: &'a TestApp,
    doc: Value,
    seen: BTreeSet<(String, String)>,
}

impl Checked<'_> {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .app
            .client
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                format!("{}{url}", self.app.address),
            )
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert!(
            (200..300).contains(&status) && status != 204,
            "{method} {url}: {status}"
        );
        let value: Value = response.json().await.unwrap();
        let validator = validator(&self.doc, method, path, status);
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {url} answered {value} against its schema: {errors:?}"
        );
        self.seen.insert((method.to_owned(), path.to_owned()));
        value
    }
}

async fn answers_match_their_documented_schemas(backend: Backend) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let warehouse = format!("http://{}", listener.local_addr().unwrap());
    actix_web::rt::spawn(
        run(
            listener,
            WarehouseSettings {
                shipping_delay: Duration::from_millis(50),
                fail_rate: 0.0,
                stop_on_signals: false,
            },
        )
        .unwrap(),
    );
    let accrual = TestAccrual::instant();
    let db = TestDb::create(backend).await;
    let args = with_flags(
        base_args(&db, &accrual.url),
        &[
            ("--fulfilment-address", warehouse.as_str()),
            ("--fulfilment-retry-min", "20ms"),
        ],
    );
    let app = spawn_app_with(db, args, Some(accrual)).await;
    let doc = document(&app).await;
    // The schemas bite: a sum as a string, or a field missing, is refused.
    let balance = validator(&doc, "get", "/api/user/balance", 200);
    assert!(balance.is_valid(&json!({"current": 500.5, "withdrawn": 42})));
    assert!(!balance.is_valid(&json!({"current": "500.5", "withdrawn": 42})));
    assert!(!balance.is_valid(&json!({"current": 500.5})));
    let user = app.register_user().await;
    let order = app.fund(&user, json!(5000.5)).await;
    let token = user.token.clone();
    let mut checked = Checked {
        app: &app,
        doc,
        seen: BTreeSet::new(),
    };
    let c = &mut checked;
    c.call("get", "/api/user/orders", "/api/user/orders", &token, None)
        .await;
    c.call(
        "get",
        "/api/user/balance",
        "/api/user/balance",
        &token,
        None,
    )
    .await;
    let withdrawal = json!({"order": "2377225624", "sum": 0.5});
    let response = app.post_withdraw(&user, &withdrawal).await;
    assert_eq!(response.status(), StatusCode::OK);
    for path in ["/api/user/withdrawals", "/api/user/balance/withdrawals"] {
        c.call("get", path, path, &token, None).await;
    }
    c.call(
        "get",
        "/api/user/history",
        "/api/user/history?limit=10",
        &token,
        None,
    )
    .await;

    let reward = json!({"sku": "kettle", "title": "Kettle", "price": 100.25, "stock": 5});
    c.call(
        "post",
        "/api/admin/rewards",
        "/api/admin/rewards",
        ADMIN_TOKEN,
        Some(reward),
    )
    .await;
    c.call(
        "patch",
        "/api/admin/rewards/{sku}",
        "/api/admin/rewards/kettle",
        ADMIN_TOKEN,
        Some(json!({"stock_delta": 3})),
    )
    .await;
    c.call(
        "get",
        "/api/admin/rewards",
        "/api/admin/rewards",
        ADMIN_TOKEN,
        None,
    )
    .await;
    c.call("get", "/api/rewards", "/api/rewards", &token, None)
        .await;
    let redemption = c
        .call(
            "post",
            "/api/user/redemptions",
            "/api/user/redemptions",
            &token,
            Some(json!({"reward": "kettle", "quantity": 2, "address": "1 Main St"})),
        )
        .await;
    let id = redemption["id"].as_str().unwrap().to_owned();
    let delivered = eventually(Duration::from_secs(10), || async {
        let response = app
            .get(&format!("/api/user/redemptions/{id}"), Some(&token))
            .await;
        let value: Value = response.json().await.ok()?;
        (value["status"] == "DELIVERED").then_some(())
    })
    .await;
    assert!(delivered.is_some(), "the redemption reaches the door");
    c.call(
        "get",
        "/api/user/redemptions/{id}",
        &format!("/api/user/redemptions/{id}"),
        &token,
        None,
    )
    .await;
    c.call(
        "get",
        "/api/user/redemptions",
        "/api/user/redemptions",
        &token,
        None,
    )
    .await;

    let campaign = json!({
        "id": "spring", "title": "Spring", "kind": "percent", "value": 12.5,
        "quantity": 3, "per_user": 1, "price": 10, "min_order": 0,
        "ends_at": "2999-01-01T00:00:00Z", "prefix": "SPRING"
    });
    c.call(
        "post",
        "/api/admin/campaigns",
        "/api/admin/campaigns",
        ADMIN_TOKEN,
        Some(campaign),
    )
    .await;
    c.call("get", "/api/campaigns", "/api/campaigns", &token, None)
        .await;
    let coupon = c
        .call(
            "post",
            "/api/user/coupons",
            "/api/user/coupons",
            &token,
            Some(json!({"campaign": "spring"})),
        )
        .await;
    let code = coupon["code"].as_str().unwrap().to_owned();
    c.call(
        "get",
        "/api/user/coupons",
        "/api/user/coupons",
        &token,
        None,
    )
    .await;
    c.call(
        "get",
        "/api/admin/campaigns/{id}",
        "/api/admin/campaigns/spring",
        ADMIN_TOKEN,
        None,
    )
    .await;
    c.call(
        "get",
        "/api/shop/coupons/{code}",
        &format!("/api/shop/coupons/{code}?amount=99.99"),
        SHOP_TOKEN,
        None,
    )
    .await;
    c.call(
        "post",
        "/api/shop/coupons/{code}/redeem",
        &format!("/api/shop/coupons/{code}/redeem"),
        SHOP_TOKEN,
        Some(json!({"order": order, "amount": 99.99})),
    )
    .await;

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let range = format!("from={today}&to={today}");
    for (path, url) in [
        (
            "/api/admin/stats/summary",
            "/api/admin/stats/summary".to_owned(),
        ),
        (
            "/api/admin/stats/daily",
            format!("/api/admin/stats/daily?{range}"),
        ),
        (
            "/api/admin/stats/top",
            format!("/api/admin/stats/top?{range}"),
        ),
        ("/api/admin/audit", "/api/admin/audit".to_owned()),
        (
            "/api/admin/events",
            "/api/admin/events?after=0&limit=1000".to_owned(),
        ),
    ] {
        c.call("get", path, &url, ADMIN_TOKEN, None).await;
    }
    // Every documented JSON answer was met: only sign-in, upload and withdraw answer text.
    let documented: BTreeSet<(String, String)> = operations(&checked.doc)
        .into_iter()
        .filter(|(method, path)| {
            let responses = &checked.doc["paths"][path][method]["responses"];
            ["200", "201"]
                .iter()
                .any(|s| responses[s]["content"]["application/json"].is_object())
        })
        .collect();
    let unmet: Vec<_> = documented.difference(&checked.seen).collect();
    assert!(unmet.is_empty(), "JSON answers not checked: {unmet:?}");
}

on_both_backends!(
    the_document_is_openapi_3_1_and_names_exactly_the_contract,
    every_documented_operation_is_mounted,
    answers_match_their_documented_schemas,
);
