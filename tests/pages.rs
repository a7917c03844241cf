//! The pages for people: served from the binary, with their assets, types and a strict
//! content security policy.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, Backend, TestApp};

crate::on_both_backends!(
    the_pages_answer_200_html_with_a_strict_content_security_policy,
    every_asset_the_pages_reference_is_served_with_its_type,
    unknown_assets_and_files_outside_the_assets_answer_404,
    a_page_answers_304_while_the_browsers_copy_is_current,
);

const STRICT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn the_pages_answer_200_html_with_a_strict_content_security_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/", "/admin", "/docs"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(
            header(&response, "content-security-policy"),
            STRICT_CSP,
            "{path}"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        assert!(!header(&response, "etag").is_empty(), "{path}");
        let html = response.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{path}");
        assert!(!html.contains("<script>"), "no inline script in {path}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{path} loads nothing from elsewhere"
        );
    }
}

/// The `/assets/…` files an HTML page (`src="…"`, `href="…"`) or a module (`from '…'`)
/// names, as absolute paths.
fn references(base: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (opening, quote) in [("src=\"", '"'), ("href=\"", '"'), ("from '", '\'')] {
        for piece in text.split(opening).skip(1) {
            let Some((target, _)) = piece.split_once(quote) else {
                continue;
            };
            let path = if target.starts_with("/assets/") {
                target.to_owned()
            } else if let Some(relative) = target.strip_prefix("./") {
                // A module import relative to the module itself.
                let directory = base.rsplit_once('/').map_or("", |(directory, _)| directory);
                format!("{directory}/{relative}")
            } else {
                continue;
            };
            if path.ends_with(".js") || path.ends_with(".css") {
                found.push(path);
            }
        }
    }
    found
}

async fn every_asset_the_pages_reference_is_served_with_its_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut queue: Vec<String> = Vec::new();
    for page in ["/", "/admin", "/docs"] {
        let html = app.get(page, None).await.text().await.unwrap();
        queue.extend(references(page, &html));
    }
    assert!(
        queue.iter().any(|path| path.ends_with("shopper.js")),
        "{queue:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let response = app.get(&path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let expected = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(header(&response, "content-type"), expected, "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "cache-control"), "no-cache", "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.is_empty(), "{path}");
        // Our own modules import one another; the vendored files are not followed.
        if path.ends_with(".js") && !path.contains("/vendor/") {
            queue.extend(references(&path, &text));
        }
    }
    for expected in [
        "/assets/common.js",
        "/assets/operator.js",
        "/assets/docs.js",
        "/assets/style.css",
        "/assets/vendor/uplot/uPlot.esm.js",
        "/assets/vendor/swagger-ui/swagger-ui-bundle.js",
        "/assets/vendor/swagger-ui/swagger-ui.css",
    ] {
        assert!(seen.contains(expected), "{expected} in {seen:?}");
    }
}

async fn not_found(app: &TestApp, path: &str) {
    let response = app.get(path, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
}

async fn unknown_assets_and_files_outside_the_assets_answer_404(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/assets/nope.js",
        "/assets/",
        "/assets/vendor/VERSIONS",
        "/assets/vendor/uplot/LICENSE",
        "/assets/../vendor.sh",
        "/assets/%2e%2e/vendor.sh",
        "/assets/..%2fvendor.sh",
        "/assets/index.html",
        "/index.html",
        "/vendor.sh",
        "/admin/",
    ] {
        not_found(&app, path).await;
    }
}

async fn a_page_answers_304_while_the_browsers_copy_is_current(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/", "/assets/shopper.js"] {
        let first = app.get(path, None).await;
        let etag = header(&first, "etag");
        assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
        let again = app
            .client
            .get(format!("{}{path}", app.address))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(&again, "etag"), etag);
        let other = app
            .client
            .get(format!("{}{path}", app.address))
            .header("If-None-Match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::OK, "{path}");
    }
}
