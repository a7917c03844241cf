//! The pages for people: the shopper's page at `/`, the operator's at `/admin` and the API
//! reference at `/docs`, with their scripts, styles and vendored libraries under
//! `/assets/`. Every file comes from `web/`, embedded into the binary at build time (in
//! debug builds too), so the pages work offline and nothing is read from disk at run time.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;
use utoipa_actix_web::service_config::ServiceConfig;

/// The files of `web/`.
#[derive(RustEmbed)]
#[folder = "web/"]
struct Web;

/// What every page may load: its own scripts, styles and calls to the API of this origin,
/// nothing inline, nothing from elsewhere. Swagger UI on `/docs` lives with it too: it
/// sets styles through the DOM (allowed), never as markup.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Mounts the pages and their assets.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/", web::get().to(shopper))
        .route("/admin", web::get().to(operator))
        .route("/docs", web::get().to(docs))
        .route("/assets/{path:.*}", web::get().to(asset));
}

/// `GET /`: the shopper's page.
async fn shopper(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

/// `GET /admin`: the operator's page.
async fn operator(req: HttpRequest) -> HttpResponse {
    serve(&req, "admin.html")
}

/// `GET /docs`: the API reference, rendering `/api/openapi.json`.
async fn docs(req: HttpRequest) -> HttpResponse {
    serve(&req, "docs.html")
}

/// `GET /assets/{path}`: a script, style or library file; `404` for anything else.
async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    serve(&req, &format!("assets/{}", path.into_inner()))
}

/// One embedded file with its type, an `ETag` of its content and the security headers;
/// `304` when the browser's copy is current. Files change only with the binary, but their
/// names carry no version, so browsers revalidate (`no-cache`) instead of guessing.
fn serve(req: &HttpRequest, file: &str) -> HttpResponse {
    let (Some(content_type), Some(found)) = (content_type(file), Web::get(file)) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body("no such page");
    };
    let etag = format!("\"{}\"", hex(&found.metadata.sha256_hash()[..16]));
    let fresh = fresh(req, &etag);
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        return response.finish();
    }
    response
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .body(found.data.into_owned())
}

/// Whether the request's `If-None-Match` names `etag`.
fn fresh(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

/// The type of a servable file by its extension; other files are not served.
fn content_type(file: &str) -> Option<&'static str> {
    let extension = file.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
