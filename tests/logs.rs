//! `LOG_FORMAT=json`: the real binary's log, parsed line by line.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{base_args, eventually, Backend, TestAccrual, TestDb};
use crate::process::ServiceProcess;

/// The `request` span of a JSON line, when it was written while a request was handled.
fn request_span(line: &Value) -> Option<&Value> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|span| span["name"] == "request")
}

#[actix_web::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let accrual = TestAccrual::instant();
    let db = TestDb::create(Backend::Sqlite).await;
    let service = ServiceProcess::start_with_env(
        base_args(&db, &accrual.url),
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "debug")],
    )
    .await;
    let user = service.register_user().await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/api/user/balance", service.address))
        .bearer_auth(&user.token)
        .header("X-Request-Id", "json-log-check-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "json-log-check-42");

    let ours = |lines: &[Value]| -> Vec<Value> {
        lines
            .iter()
            .filter(|line| {
                request_span(line).is_some_and(|span| span["request_id"] == "json-log-check-42")
            })
            .cloned()
            .collect()
    };
    let lines = eventually(Duration::from_secs(5), || async {
        let lines: Vec<Value> = service
            .log_lines()
            .iter()
            .map(|line| {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("not one JSON object: {line:?}: {e}"))
            })
            .collect();
        let answered = ours(&lines)
            .iter()
            .any(|line| line["fields"]["message"] == "answered");
        answered.then_some(lines)
    })
    .await
    .expect("the request's lines reach the log");

    for line in &lines {
        assert!(line.is_object(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        if let Some(span) = request_span(line) {
            assert!(
                span["request_id"].as_str().is_some_and(|id| !id.is_empty()),
                "a line of a request without its id: {line}"
            );
        }
    }
    let answered: Vec<Value> = ours(&lines)
        .into_iter()
        .filter(|line| line["fields"]["message"] == "answered")
        .collect();
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["fields"]["status"], 200);
    let span = request_span(&answered[0]).unwrap();
    assert_eq!(span["method"], "GET");
    assert_eq!(span["path"], "/api/user/balance");
    assert!(
        lines
            .iter()
            .any(|line| line["fields"]["message"] == "listening" && line["fields"]["port"].is_u64()),
        "start-up lines are JSON too"
    );
    service.kill();
}
