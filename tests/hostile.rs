//! Hostile input on every POST endpoint: oversized, compressed, corrupt, mistyped,
//! over-long, SQL-looking and random bodies. Each gets the answer SPEC §2 "Edges,
//! decided" names, never a 5xx, always a short reason that leaks nothing, and none of
//! them changes a balance, an order list, a withdrawal list or the set of logins.

use std::io::{Read, Write};
use std::time::Duration;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{eventually, order_number, spawn_app, Backend, TestApp, TestUser};

crate::on_both_backends!(
    oversized_bodies_get_413_and_change_nothing,
    bodies_of_exactly_64_kib_are_not_too_large,
    gzip_bodies_are_accepted_on_every_post_endpoint,
    gzip_bombs_get_413_and_change_nothing,
    corrupt_gzip_gets_400_and_changes_nothing,
    encodings_other_than_gzip_and_identity_get_415_and_change_nothing,
    responses_are_gzip_compressed_when_the_client_accepts_it,
    invalid_utf8_gets_400_and_changes_nothing,
    wrong_json_types_get_400_and_change_nothing,
    bad_sums_get_400_and_charge_nothing,
    login_and_password_lengths_are_checked_inclusively,
    logins_with_control_characters_get_400,
    sql_looking_logins_are_stored_literally,
    json_bodies_are_read_whatever_the_content_type_says,
    answers_follow_the_documented_precedence,
    requests_the_router_refuses_still_get_a_short_reason,
    random_garbage_never_gets_a_5xx_and_changes_nothing,
);

const REGISTER: &str = "/api/user/register";
const LOGIN: &str = "/api/user/login";
const ORDERS: &str = "/api/user/orders";
const WITHDRAW: &str = "/api/user/balance/withdraw";

/// The largest body accepted, counted after decompression.
const LIMIT: usize = 64 * 1024;

const GZIP: [(&str, &str); 1] = [("Content-Encoding", "gzip")];

/// Words an error reason must never contain: they betray the storage or a crash.
const LEAKS: [&str; 8] = [
    "sql",
    "sea_orm",
    "sea-orm",
    "panicked",
    "constraint",
    "syntax error",
    "backtrace",
    "src/",
];

/// Every table whose rows a refused request must not touch.
const TABLES: [&str; 5] = ["users", "accounts", "orders", "withdrawals", "ledger"];

// ---------------------------------------------------------------------------------------
// Fixtures and checks
// ---------------------------------------------------------------------------------------

/// A service with one user who has 99 points, one processed order and one withdrawal of
/// 1 point: state for hostile requests to leave alone.
struct Funded {
    app: TestApp,
    user: TestUser,
    /// The order number of the withdrawal already made.
    spent: String,
}

async fn funded(backend: Backend) -> Funded {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.fund(&user, json!(100)).await;
    let spent = order_number();
    let response = app
        .post_withdraw(&user, &json!({"order": spent, "sum": 1}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    Funded { app, user, spent }
}

/// What the API shows `users` (balance, orders, withdrawals) and the row count of every
/// table.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    views: Vec<String>,
    rows: Vec<(&'static str, i64)>,
}

async fn snapshot(app: &TestApp, users: &[&TestUser]) -> Snapshot {
    let mut views = Vec::new();
    for user in users {
        views.push(format!(
            "{} balance {:?}",
            user.login,
            app.balance(user).await
        ));
        for response in [app.get_orders(user).await, app.get_withdrawals(user).await] {
            let status = response.status();
            views.push(format!("{status} {}", response.text().await.unwrap()));
        }
    }
    Snapshot {
        views,
        rows: row_counts(app).await,
    }
}

async fn row_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    let db = Database::connect(app.db_url()).await.unwrap();
    let mut counts = Vec::new();
    for table in TABLES {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}"),
            ))
            .await
            .unwrap();
        counts.push((table, rows[0].try_get::<i64>("", "n").unwrap()));
    }
    let _ = db.close().await;
    counts
}

/// Asserts the status of an answer and, for an error, a short reason that leaks nothing.
async fn expect(response: Response, want: StatusCode, what: &str) {
    let status = response.status();
    let body = response.bytes().await.unwrap();
    check(status, &String::from_utf8_lossy(&body), want, what);
}

fn check(status: StatusCode, body: &str, want: StatusCode, what: &str) {
    assert!(!status.is_server_error(), "{what}: {status} {body:?}");
    assert_eq!(status, want, "{what}: answered {body:?}");
    if !status.is_success() {
        assert_clean_reason(status, body, what);
    }
}

/// An error reason is there, short, and says nothing about SQL or crashes.
fn assert_clean_reason(status: StatusCode, body: &str, what: &str) {
    assert!(!body.trim().is_empty(), "{what}: {status} without a reason");
    assert!(
        body.len() < 300,
        "{what}: {status} reason too long: {body:?}"
    );
    let lower = body.to_lowercase();
    for word in LEAKS {
        assert!(
            !lower.contains(word),
            "{what}: {status} leaks {word:?}: {body:?}"
        );
    }
}

/// Every POST endpoint with the token it needs, if any.
fn posts(user: &TestUser) -> [(&'static str, Option<&str>); 4] {
    [
        (REGISTER, None),
        (LOGIN, None),
        (ORDERS, Some(&user.token)),
        (WITHDRAW, Some(&user.token)),
    ]
}

/// A body `path` accepts: a fresh login, the user's own pair, a fresh order number, a
/// withdrawal of 1 point with a fresh number.
async fn valid_body(app: &TestApp, path: &str, user: &TestUser) -> Vec<u8> {
    match path {
        REGISTER => json!({"login": fresh_login(), "password": "pw"}).to_string(),
        LOGIN => json!({"login": user.login, "password": user.password}).to_string(),
        ORDERS => final_order(app).await,
        _ => json!({"order": order_number(), "sum": 1}).to_string(),
    }
    .into_bytes()
}

/// A fresh order number the accrual system refuses at once (`INVALID`, no points), so
/// that no upload is still being polled when the test ends.
async fn final_order(app: &TestApp) -> String {
    let number = order_number();
    app.emulator().add_order(&number, &[]).await;
    number
}

/// Waits until every order of `user` has a final status.
async fn settle(app: &TestApp, user: &TestUser) {
    eventually(Duration::from_secs(15), || async {
        let orders: Vec<Value> = app.get_orders(user).await.json().await.ok()?;
        let done = |o: &Value| o["status"] == "PROCESSED" || o["status"] == "INVALID";
        orders.iter().all(done).then_some(())
    })
    .await
    .expect("every upload reaches a final status");
}

/// What `path` answers to a valid body.
fn success(path: &str) -> StatusCode {
    if path == ORDERS {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

fn fresh_login() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

/// `body` padded with whitespace (a trailing newline last) to exactly `len` bytes.
fn padded(mut body: Vec<u8>, len: usize) -> Vec<u8> {
    assert!(body.len() < len);
    body.resize(len - 1, b' ');
    body.push(b'\n');
    body
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    GzDecoder::new(bytes).read_to_string(&mut text).unwrap();
    text
}

/// A few KiB of gzip that inflate to `prefix` followed by 10 MiB of `filler`.
fn gzip_bomb(prefix: &[u8], filler: u8) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(prefix).unwrap();
    let block = vec![filler; 1 << 20];
    for _ in 0..10 {
        encoder.write_all(&block).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 32 * 1024, "a bomb of {} bytes", bomb.len());
    bomb
}

/// Whether `login` can sign in with `password`.
async fn signs_in(app: &TestApp, login: &str, password: &str) -> bool {
    let response = app
        .post_login(&json!({"login": login, "password": password}))
        .await;
    match response.status() {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("login {login:?} answered {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Bare HTTP/1.1, for what reqwest will not send: a Content-Length that lies, chunks,
// header bytes that are not UTF-8.
// ---------------------------------------------------------------------------------------

/// The head of a POST to `path`: the token (if any), `extra` header lines, and
/// `Connection: close`.
fn raw_head(path: &str, token: Option<&[u8]>, extra: &str) -> Vec<u8> {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    if let Some(token) = token {
        head.extend_from_slice(b"Authorization: Bearer ");
        head.extend_from_slice(token);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(format!("{extra}Connection: close\r\n\r\n").as_bytes());
    head
}

/// `body` in `Transfer-Encoding: chunked` framing, 4 KiB a chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::new();
    for chunk in body.chunks(4096) {
        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    framed
}

/// Sends `head` then `body` over a fresh connection and reads the answer's status and
/// body. The server may answer before it has read the whole body; that is fine.
async fn send_raw(app: &TestApp, head: &[u8], body: &[u8]) -> (StatusCode, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head).await.unwrap();
    let _ = stream.write_all(body).await;
    let answer = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            if let Some(answer) = parse_answer(&received) {
                return answer;
            }
            let read = stream.read(&mut buffer).await.unwrap_or_else(|e| {
                panic!(
                    "reading the answer: {e}; got {:?}",
                    String::from_utf8_lossy(&received)
                )
            });
            assert!(
                read > 0,
                "closed mid-answer: {:?}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buffer[..read]);
        }
    };
    // A deadline against a hung connection, not a synchronisation.
    tokio::time::timeout(Duration::from_secs(20), answer)
        .await
        .expect("an answer within 20 s")
}

/// A complete answer (head and `Content-Length` bytes of body) from `received`, if there.
fn parse_answer(received: &[u8]) -> Option<(StatusCode, String)> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&received[..end]);
    let status = head.split(' ').nth(1)?.parse::<u16>().ok()?;
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(Some(0), |(_, value)| value.trim().parse().ok())?;
    let body = received.get(end..end + length)?;
    Some((
        StatusCode::from_u16(status).ok()?,
        String::from_utf8_lossy(body).into_owned(),
    ))
}

// ---------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------

async fn oversized_bodies_get_413_and_change_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    for (path, token) in posts(&user) {
        for len in [LIMIT + 1, 1 << 20] {
            let body = padded(valid_body(&app, path, &user).await, len);
            let response = app.post_raw(path, token, body, &[]).await;
            expect(
                response,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("{path}: {len} bytes"),
            )
            .await;
        }
        let over = gzip(&padded(valid_body(&app, path, &user).await, LIMIT + 1));
        let response = app.post_raw(path, token, over, &GZIP).await;
        expect(
            response,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{path}: gzip of 64 KiB + 1"),
        )
        .await;

        let token = token.map(str::as_bytes);
        // Chunks: no Content-Length to judge by, the stream itself must be cut off.
        let stream = chunked(&padded(valid_body(&app, path, &user).await, LIMIT + 1));
        let head = raw_head(path, token, "Transfer-Encoding: chunked\r\n");
        let (status, reason) = send_raw(&app, &head, &stream).await;
        check(
            status,
            &reason,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{path}: chunked 64 KiB + 1"),
        );
        // A declared length is refused before a byte of the body arrives.
        for (framing, what) in [
            ("Content-Length: 1073741824\r\n", "declares 1 GiB"),
            ("Content-Length: 65537\r\n", "declares 64 KiB + 1"),
            (
                "Content-Length: 1073741824\r\nContent-Encoding: gzip\r\n",
                "declares 1 GiB of gzip",
            ),
        ] {
            let (status, reason) = send_raw(&app, &raw_head(path, token, framing), b"").await;
            check(
                status,
                &reason,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("{path}: {what}"),
            );
        }
    }
    assert_eq!(snapshot(&app, &[&user]).await, before);
}

async fn bodies_of_exactly_64_kib_are_not_too_large(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    for (path, token) in posts(&user) {
        let plain = padded(valid_body(&app, path, &user).await, LIMIT);
        let response = app.post_raw(path, token, plain, &[]).await;
        expect(response, success(path), &format!("{path}: exactly 64 KiB")).await;

        let compressed = gzip(&padded(valid_body(&app, path, &user).await, LIMIT));
        let response = app.post_raw(path, token, compressed, &GZIP).await;
        expect(
            response,
            success(path),
            &format!("{path}: gzip of exactly 64 KiB"),
        )
        .await;

        let stream = chunked(&padded(valid_body(&app, path, &user).await, LIMIT));
        let head = raw_head(
            path,
            token.map(str::as_bytes),
            "Transfer-Encoding: chunked\r\n",
        );
        let (status, reason) = send_raw(&app, &head, &stream).await;
        check(
            status,
            &reason,
            success(path),
            &format!("{path}: chunked exactly 64 KiB"),
        );
    }
    // Three withdrawals of 1 point and three orders more than the fixture had.
    settle(&app, &user).await;
    assert_eq!(app.balance(&user).await, ("96".into(), "4".into()));
    let orders: Vec<Value> = app.get_orders(&user).await.json().await.unwrap();
    assert_eq!(orders.len(), 4);
}

// ---------------------------------------------------------------------------------------
// Content encodings
// ---------------------------------------------------------------------------------------

async fn gzip_bodies_are_accepted_on_every_post_endpoint(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    for encoding in ["gzip", "GZIP", " gzip "] {
        let headers = [
            ("Content-Encoding", encoding),
            ("Content-Type", "application/json"),
        ];
        let login = fresh_login();
        let pair = json!({"login": login, "password": "zipped"}).to_string();
        let registered = app
            .post_raw(REGISTER, None, gzip(pair.as_bytes()), &headers)
            .await;
        expect(
            registered,
            StatusCode::OK,
            &format!("register, {encoding:?}"),
        )
        .await;
        let signed_in = app
            .post_raw(LOGIN, None, gzip(pair.as_bytes()), &headers)
            .await;
        expect(signed_in, StatusCode::OK, &format!("login, {encoding:?}")).await;
        assert!(signs_in(&app, &login, "zipped").await);

        let number = final_order(&app).await;
        let uploaded = app
            .post_raw(
                ORDERS,
                Some(&user.token),
                gzip(format!("{number}\n").as_bytes()),
                &headers,
            )
            .await;
        expect(
            uploaded,
            StatusCode::ACCEPTED,
            &format!("orders, {encoding:?}"),
        )
        .await;

        let spend = json!({"order": order_number(), "sum": 2.5}).to_string();
        let spent = app
            .post_raw(
                WITHDRAW,
                Some(&user.token),
                gzip(spend.as_bytes()),
                &headers,
            )
            .await;
        expect(spent, StatusCode::OK, &format!("withdraw, {encoding:?}")).await;
    }
    settle(&app, &user).await;
    assert_eq!(app.balance(&user).await, ("91.5".into(), "8.5".into()));
    let orders: Vec<Value> = app.get_orders(&user).await.json().await.unwrap();
    assert_eq!(orders.len(), 4);
}

async fn gzip_bombs_get_413_and_change_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    let pair = br#"{"login":"bomb","password":"boom"}"#;
    let spend = json!({"order": order_number(), "sum": 1}).to_string();
    let bombs: [(&str, Option<&str>, Vec<u8>); 5] = [
        (REGISTER, None, gzip_bomb(pair, b' ')),
        (REGISTER, None, gzip_bomb(b"", 0)),
        (LOGIN, None, gzip_bomb(pair, b'\n')),
        // Ten million zeros are digits and pass the Luhn check: only the limit stops them.
        (ORDERS, Some(&user.token), gzip_bomb(b"", b'0')),
        (
            WITHDRAW,
            Some(&user.token),
            gzip_bomb(spend.as_bytes(), b' '),
        ),
    ];
    for (path, token, bomb) in bombs {
        let response = app.post_raw(path, token, bomb, &GZIP).await;
        expect(
            response,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{path}: gzip bomb"),
        )
        .await;
    }
    assert!(!signs_in(&app, "bomb", "boom").await, "the bomb registered");
    assert_eq!(snapshot(&app, &[&user]).await, before);
}

async fn corrupt_gzip_gets_400_and_changes_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    for (path, token) in posts(&user) {
        let body = valid_body(&app, path, &user).await;
        let good = gzip(&body);
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 0xff;
        let mut bad_size = good.clone();
        let size_at = bad_size.len() - 4;
        bad_size[size_at] ^= 0x01;
        let mut mangled = good.clone();
        for byte in mangled.iter_mut().skip(10).take(8) {
            *byte ^= 0x5a;
        }
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"not gzip at all");
        let corrupt: [(&str, Vec<u8>); 7] = [
            ("plain text labelled gzip", body.clone()),
            ("truncated", good[..good.len() - 10].to_vec()),
            ("only the header", good[..10].to_vec()),
            ("a wrong CRC", bad_crc),
            ("a wrong length", bad_size),
            ("mangled deflate data", mangled),
            ("garbage after the stream", trailing),
        ];
        for (what, bytes) in corrupt {
            let response = app.post_raw(path, token, bytes, &GZIP).await;
            expect(
                response,
                StatusCode::BAD_REQUEST,
                &format!("{path}: {what}"),
            )
            .await;
        }
        let empty = app.post_raw(path, token, Vec::new(), &GZIP).await;
        expect(
            empty,
            StatusCode::BAD_REQUEST,
            &format!("{path}: empty gzip"),
        )
        .await;
    }
    assert_eq!(snapshot(&app, &[&user]).await, before);
}

async fn encodings_other_than_gzip_and_identity_get_415_and_change_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    for (path, token) in posts(&user) {
        for encoding in [
            "br",
            "deflate",
            "compress",
            "zstd",
            "x-compress",
            "chunked",
            "gzip, br",
        ] {
            let body = valid_body(&app, path, &user).await;
            let response = app
                .post_raw(path, token, body, &[("Content-Encoding", encoding)])
                .await;
            let what = format!("{path}: Content-Encoding {encoding:?}");
            expect(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, &what).await;
        }
    }
    assert_eq!(snapshot(&app, &[&user]).await, before);
    for (path, token) in posts(&user) {
        let body = valid_body(&app, path, &user).await;
        let response = app
            .post_raw(path, token, body, &[("Content-Encoding", "identity")])
            .await;
        expect(response, success(path), &format!("{path}: identity")).await;
    }
    settle(&app, &user).await;
}

async fn responses_are_gzip_compressed_when_the_client_accepts_it(backend: Backend) {
    let Funded { app, user, spent } = funded(backend).await;
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let get = |path: &str, accept: Option<&str>| {
        let mut request = raw
            .get(format!("{}{path}", app.address))
            .bearer_auth(&user.token);
        if let Some(accept) = accept {
            request = request.header("Accept-Encoding", accept);
        }
        request.send()
    };
    let response = get("/api/user/balance", Some("gzip")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let balance = gunzip(&response.bytes().await.unwrap());
    assert_eq!(balance, r#"{"current":99,"withdrawn":1}"#);

    let response = get("/api/user/orders", Some("gzip, deflate, br"))
        .await
        .unwrap();
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let orders: Vec<Value> =
        serde_json::from_str(&gunzip(&response.bytes().await.unwrap())).unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["status"], "PROCESSED");
    assert_eq!(orders[0]["accrual"], json!(100));

    let response = get("/api/user/withdrawals", Some("gzip")).await.unwrap();
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let withdrawals: Vec<Value> =
        serde_json::from_str(&gunzip(&response.bytes().await.unwrap())).unwrap();
    assert_eq!(withdrawals[0]["order"], json!(spent));

    // A client that does not ask gets plain JSON.
    for accept in [None, Some("identity")] {
        let response = get("/api/user/balance", accept).await.unwrap();
        assert!(
            response
                .headers()
                .get("content-encoding")
                .is_none_or(|v| v == "identity"),
            "{accept:?}"
        );
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"current":99,"withdrawn":1}"#
        );
    }
}

// ---------------------------------------------------------------------------------------
// Malformed content
// ---------------------------------------------------------------------------------------

async fn invalid_utf8_gets_400_and_changes_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    let number = order_number();
    let uploads: [Vec<u8>; 7] = [
        b"\xff".to_vec(),
        [number.as_bytes(), b"\xff"].concat(),
        [b"\xfe".as_slice(), number.as_bytes()].concat(),
        // An overlong '2', a lone surrogate, a truncated sequence, Latin-1 digits.
        b"\xc0\xb2".to_vec(),
        b"\xed\xa0\x80".to_vec(),
        [number.as_bytes(), b"\xe2\x82"].concat(),
        b"\xb2\xb3".to_vec(),
    ];
    for body in uploads {
        let what = format!("orders: {body:?}");
        let plain = app
            .post_raw(ORDERS, Some(&user.token), body.clone(), &[])
            .await;
        expect(plain, StatusCode::BAD_REQUEST, &what).await;
        let zipped = app
            .post_raw(ORDERS, Some(&user.token), gzip(&body), &GZIP)
            .await;
        expect(zipped, StatusCode::BAD_REQUEST, &format!("gzip {what}")).await;
    }
    let pairs: [&[u8]; 5] = [
        b"{\"login\":\"\xff\",\"password\":\"x\"}",
        b"{\"login\":\"mallory\",\"password\":\"\xc3\"}",
        b"{\"login\":\"mal\xed\xa0\x80lory\",\"password\":\"x\"}",
        b"\xef\xbf{\"login\":\"mallory\",\"password\":\"x\"}",
        br#"{"login":"mallory\ud800","password":"x"}"#,
    ];
    for body in pairs {
        for path in [REGISTER, LOGIN] {
            let response = app.post_raw(path, None, body.to_vec(), &[]).await;
            expect(
                response,
                StatusCode::BAD_REQUEST,
                &format!("{path}: {body:?}"),
            )
            .await;
        }
    }
    let spends = [
        [
            b"{\"order\":\"".as_slice(),
            number.as_bytes(),
            b"\xff\",\"sum\":1}",
        ]
        .concat(),
        b"{\"order\":\"\xff\",\"sum\":1}".to_vec(),
        [
            b"{\"order\":\"".as_slice(),
            number.as_bytes(),
            b"\",\"sum\":1\xff}",
        ]
        .concat(),
    ];
    for body in spends {
        let response = app
            .post_raw(WITHDRAW, Some(&user.token), body.clone(), &[])
            .await;
        expect(
            response,
            StatusCode::BAD_REQUEST,
            &format!("withdraw: {body:?}"),
        )
        .await;
    }
    assert!(!signs_in(&app, "mallory", "x").await);
    assert_eq!(snapshot(&app, &[&user]).await, before);
}

async fn wrong_json_types_get_400_and_change_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    let wrong = [
        json!(5),
        json!(1.5),
        json!(["mallory"]),
        json!({"login": "mallory"}),
        Value::Null,
        json!(true),
    ];
    let mut pairs: Vec<Value> = wrong
        .iter()
        .flat_map(|bad| {
            [
                json!({"login": bad, "password": "secret"}),
                json!({"login": "mallory", "password": bad}),
                json!({"login": bad, "password": bad}),
            ]
        })
        .collect();
    pairs.extend([
        json!("mallory"),
        json!(["mallory", "secret"]),
        Value::Null,
        json!(42),
    ]);
    for body in &pairs {
        for path in [REGISTER, LOGIN] {
            let response = app
                .post_raw(path, None, body.to_string().into_bytes(), &[])
                .await;
            expect(
                response,
                StatusCode::BAD_REQUEST,
                &format!("{path}: {body}"),
            )
            .await;
        }
    }
    let order = order_number();
    let numeric: u64 = order.parse().unwrap();
    let spends = [
        json!({"order": order, "sum": "10"}),
        json!({"order": order, "sum": "1e1"}),
        json!({"order": order, "sum": true}),
        json!({"order": order, "sum": false}),
        json!({"order": order, "sum": null}),
        json!({"order": order, "sum": [10]}),
        json!({"order": order, "sum": {"value": 10}}),
        json!({"order": numeric, "sum": 10}),
        json!({"order": null, "sum": 10}),
        json!({"order": true, "sum": 10}),
        json!({"order": [order], "sum": 10}),
        json!({"order": {"number": order}, "sum": 10}),
        json!({}),
        json!([order, 10]),
        json!(order),
        json!(10),
    ];
    for body in spends {
        let response = app.post_withdraw(&user, &body).await;
        expect(
            response,
            StatusCode::BAD_REQUEST,
            &format!("withdraw: {body}"),
        )
        .await;
    }
    assert!(!signs_in(&app, "mallory", "secret").await);
    assert_eq!(snapshot(&app, &[&user]).await, before);
}

async fn bad_sums_get_400_and_charge_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    let order = order_number();
    for sum in [
        "-5",
        "-0.01",
        "0",
        "-0",
        "0.00",
        "0e5",
        "0.001",
        "1.005",
        "1e-3",
        "1e400",
        "-1e400",
        "1e-400",
        "1e30",
        "123456789012345678901234567890",
        "79228162514264337593543950336",
        "92233720368547758.08",
        "NaN",
        "Infinity",
        "-Infinity",
        "+1",
        ".5",
        "5.",
        "01",
        "0x10",
        "1_000",
        "1,5",
        "",
    ] {
        let body = format!(r#"{{"order":"{order}","sum":{sum}}}"#);
        let response = app
            .post_raw(WITHDRAW, Some(&user.token), body.into_bytes(), &[])
            .await;
        expect(response, StatusCode::BAD_REQUEST, &format!("sum {sum:?}")).await;
    }
    assert_eq!(snapshot(&app, &[&user]).await, before);
    // The order number was not spent by any of them.
    let fine = app
        .post_withdraw(&user, &json!({"order": order, "sum": 1}))
        .await;
    expect(fine, StatusCode::OK, "a good sum afterwards").await;
}

// ---------------------------------------------------------------------------------------
// Logins and passwords
// ---------------------------------------------------------------------------------------

async fn login_and_password_lengths_are_checked_inclusively(backend: Backend) {
    let app = spawn_app(backend).await;
    let too_long = [
        ("a".repeat(257), "x".to_owned()),
        ("ё".repeat(257), "x".to_owned()),
        (fresh_login(), "p".repeat(1025)),
        (fresh_login(), format!("{}p", "ё".repeat(512))),
    ];
    for (login, password) in &too_long {
        let what = format!(
            "{} code points, {} password bytes",
            login.chars().count(),
            password.len()
        );
        let response = app
            .post_register(&json!({"login": login, "password": password}))
            .await;
        expect(response, StatusCode::BAD_REQUEST, &what).await;
        // Login does not judge lengths: a pair that matches nobody is 401.
        let response = app
            .post_login(&json!({"login": login, "password": password}))
            .await;
        expect(
            response,
            StatusCode::UNAUTHORIZED,
            &format!("login, {what}"),
        )
        .await;
    }
    assert_eq!(row_counts(&app).await[0], ("users", 0));

    let at_limit = [
        ("a".repeat(256), "secret".to_owned()),
        ("ё".repeat(256), "secret".to_owned()),
        ("😀".repeat(256), "secret".to_owned()),
        (fresh_login(), "p".repeat(1024)),
        (fresh_login(), "ё".repeat(512)),
    ];
    for (login, password) in &at_limit {
        let what = format!(
            "{} code points, {} password bytes",
            login.chars().count(),
            password.len()
        );
        let response = app
            .post_register(&json!({"login": login, "password": password}))
            .await;
        expect(response, StatusCode::OK, &what).await;
        assert!(signs_in(&app, login, password).await, "{what}");
        // Every byte counts, the last ones included.
        let mut other = password.clone();
        other.pop();
        assert!(
            !signs_in(&app, login, &other).await,
            "{what}: last character dropped"
        );
        other.push('q');
        if other != *password {
            assert!(
                !signs_in(&app, login, &other).await,
                "{what}: last byte changed"
            );
        }
    }
    assert_eq!(row_counts(&app).await[0], ("users", 5));
}

async fn logins_with_control_characters_get_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = row_counts(&app).await;
    for login in [
        "a\u{7}b",
        "a\nb",
        "a\rb",
        "a\tb",
        "\u{0}",
        "a\u{0}b",
        "a\u{1b}[31mb",
        "a\u{7f}b",
        "a\u{85}b",
        "a\u{9f}b",
        "tail\n",
    ] {
        let response = app
            .post_register(&json!({"login": login, "password": "secret"}))
            .await;
        expect(
            response,
            StatusCode::BAD_REQUEST,
            &format!("register {login:?}"),
        )
        .await;
        let response = app
            .post_login(&json!({"login": login, "password": "secret"}))
            .await;
        expect(
            response,
            StatusCode::UNAUTHORIZED,
            &format!("login {login:?}"),
        )
        .await;
    }
    assert_eq!(row_counts(&app).await, before);
    // Passwords are bytes: control characters there are fine.
    let response = app
        .post_register(&json!({"login": "ctrl", "password": "a\u{0}\n\u{7}b"}))
        .await;
    expect(response, StatusCode::OK, "control characters in a password").await;
    assert!(signs_in(&app, "ctrl", "a\u{0}\n\u{7}b").await);
    assert!(!signs_in(&app, "ctrl", "a").await);
}

async fn sql_looking_logins_are_stored_literally(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register_user().await;
    let hostile = [
        "robert'); DROP TABLE users;--",
        "' OR '1'='1",
        "admin\"--",
        "'; DELETE FROM accounts; --",
        "%",
        "_",
        "\\",
        "$1",
    ];
    for login in hostile {
        let password = format!("password of {login}");
        let registered = app
            .post_register(&json!({"login": login, "password": password}))
            .await;
        expect(registered, StatusCode::OK, login).await;
        assert!(signs_in(&app, login, &password).await, "{login}");
        assert!(
            !signs_in(&app, login, "wrong").await,
            "{login} with a wrong password"
        );
        let again = app
            .post_register(&json!({"login": login, "password": "another"}))
            .await;
        expect(again, StatusCode::CONFLICT, &format!("{login} again")).await;
    }
    // Injections never match another user.
    for login in [
        format!("{}' --", alice.login),
        format!("{}\" --", alice.login),
        format!("' OR login = '{}' --", alice.login),
        "' OR 1=1 --".to_owned(),
        "user-%".to_owned(),
    ] {
        assert!(!signs_in(&app, &login, &alice.password).await, "{login}");
    }
    assert!(!signs_in(&app, "' OR '1'='1", &alice.password).await);
    // Nobody was dropped or deleted: every user still signs in and has a balance.
    assert!(signs_in(&app, &alice.login, &alice.password).await);
    assert_eq!(app.balance(&alice).await, ("0".into(), "0".into()));
    for login in hostile {
        assert!(
            signs_in(&app, login, &format!("password of {login}")).await,
            "{login}"
        );
    }
    assert_eq!(
        row_counts(&app).await[0],
        ("users", 1 + hostile.len() as i64)
    );
}

async fn json_bodies_are_read_whatever_the_content_type_says(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let content_types = [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/json; charset=utf-8"),
        Some("application/octet-stream"),
    ];
    for content_type in content_types {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("Content-Type", t))
            .into_iter()
            .collect();
        let what = format!("Content-Type {content_type:?}");
        let login = fresh_login();
        let pair = json!({"login": login, "password": "typed"})
            .to_string()
            .into_bytes();
        let registered = app.post_raw(REGISTER, None, pair.clone(), &headers).await;
        expect(registered, StatusCode::OK, &format!("register, {what}")).await;
        let signed_in = app.post_raw(LOGIN, None, pair, &headers).await;
        expect(signed_in, StatusCode::OK, &format!("login, {what}")).await;
        let spend = json!({"order": order_number(), "sum": 1})
            .to_string()
            .into_bytes();
        let spent = app
            .post_raw(WITHDRAW, Some(&user.token), spend, &headers)
            .await;
        expect(spent, StatusCode::OK, &format!("withdraw, {what}")).await;
        let upload = final_order(&app).await.into_bytes();
        let uploaded = app
            .post_raw(ORDERS, Some(&user.token), upload, &headers)
            .await;
        expect(uploaded, StatusCode::ACCEPTED, &format!("orders, {what}")).await;
    }
    settle(&app, &user).await;
    assert_eq!(app.balance(&user).await, ("92".into(), "8".into()));
}

// ---------------------------------------------------------------------------------------
// Precedence and reasons
// ---------------------------------------------------------------------------------------

async fn answers_follow_the_documented_precedence(backend: Backend) {
    let Funded { app, user, spent } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    let forged = format!("{}x", user.token);
    let unauthorized = StatusCode::UNAUTHORIZED;
    let bomb = gzip_bomb(b"", b'0');
    for path in [ORDERS, WITHDRAW] {
        let huge = padded(valid_body(&app, path, &user).await, LIMIT + 1);
        // 401 before 413, 415, 400.
        for token in [None, Some("garbage"), Some(forged.as_str())] {
            let what = format!("{path}, token {token:?}");
            let response = app.post_raw(path, token, huge.clone(), &[]).await;
            expect(response, unauthorized, &format!("{what}: oversized")).await;
            let response = app.post_raw(path, token, bomb.clone(), &GZIP).await;
            expect(response, unauthorized, &format!("{what}: gzip bomb")).await;
            let response = app
                .post_raw(
                    path,
                    token,
                    valid_body(&app, path, &user).await,
                    &[("Content-Encoding", "br")],
                )
                .await;
            expect(response, unauthorized, &format!("{what}: br")).await;
            let response = app.post_raw(path, token, b"\xff{".to_vec(), &[]).await;
            expect(response, unauthorized, &format!("{what}: invalid UTF-8")).await;
        }
        let head = raw_head(path, Some(b"\xff\xfe"), "Content-Length: 1073741824\r\n");
        let (status, reason) = send_raw(&app, &head, b"").await;
        check(
            status,
            &reason,
            unauthorized,
            &format!("{path}: non-UTF-8 token, 1 GiB declared"),
        );
    }
    // 400 / 413 before 422: the body's shape is judged before the order number.
    let cases: [(&str, Vec<u8>, StatusCode); 7] = [
        (
            WITHDRAW,
            br#"{"order":"12345","sum":"10"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            WITHDRAW,
            br#"{"order":"12345","sum":-1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            WITHDRAW,
            br#"{"order":12345,"sum":1000}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            WITHDRAW,
            padded(br#"{"order":"12345","sum":1}"#.to_vec(), LIMIT + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            ORDERS,
            padded(b"not digits".to_vec(), LIMIT + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (ORDERS, b"abc\xff".to_vec(), StatusCode::BAD_REQUEST),
        (ORDERS, gzip(b"abc\xff"), StatusCode::BAD_REQUEST),
    ];
    for (path, body, want) in cases {
        let what = format!(
            "{path}: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        let headers: &[(&str, &str)] = if body.starts_with(&[0x1f, 0x8b]) {
            &GZIP
        } else {
            &[]
        };
        let response = app.post_raw(path, Some(&user.token), body, headers).await;
        expect(response, want, &what).await;
    }
    // 422 before 402, 409 before 402.
    let valid = order_number();
    let (body, check_digit) = valid.split_at(valid.len() - 1);
    let wrong_digit = (check_digit.parse::<u8>().unwrap() + 1) % 10;
    let bad_luhn = format!("{body}{wrong_digit}");
    for (body, want) in [
        (
            json!({"order": bad_luhn, "sum": 1000}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"order": "abc", "sum": 1000}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"order": "", "sum": 1000}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"order": spent, "sum": 1000}), StatusCode::CONFLICT),
    ] {
        let response = app.post_withdraw(&user, &body).await;
        expect(response, want, &format!("withdraw {body}")).await;
    }
    // Register: 413 before 409, 400 before 409; login: 400 before 401.
    let taken = padded(
        json!({"login": user.login, "password": "x"})
            .to_string()
            .into_bytes(),
        LIMIT + 1,
    );
    expect(
        app.post_raw(REGISTER, None, taken, &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "register taken, oversized",
    )
    .await;
    let response = app
        .post_register(&json!({"login": user.login, "password": 5}))
        .await;
    expect(
        response,
        StatusCode::BAD_REQUEST,
        "register taken, mistyped",
    )
    .await;
    let response = app
        .post_login(&json!({"login": "nobody", "password": ""}))
        .await;
    expect(
        response,
        StatusCode::BAD_REQUEST,
        "login unknown, empty password",
    )
    .await;
    assert_eq!(snapshot(&app, &[&user]).await, before);
}

async fn requests_the_router_refuses_still_get_a_short_reason(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    let mut failures = Vec::new();
    for (method, path) in [
        ("GET", REGISTER),
        ("GET", WITHDRAW),
        ("PUT", ORDERS),
        ("DELETE", "/api/user/balance"),
        ("POST", "/api/user/balance"),
        ("POST", "/api/user/nowhere"),
        ("GET", "/api/user/../../etc/passwd"),
        ("GET", "/api/user/orders%00"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.address))
            .bearer_auth(&user.token)
            .body(r#"{"login":"x","password":"y"}"#)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        let ok = status.is_client_error()
            && !body.trim().is_empty()
            && body.len() < 300
            && !LEAKS.iter().any(|word| body.to_lowercase().contains(word));
        if !ok {
            failures.push(format!("{method} {path}: {status} {body:?}"));
        }
    }
    assert_eq!(snapshot(&app, &[&user]).await, before);
    assert!(
        failures.is_empty(),
        "error answers without a short reason:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------

/// Knuth's MMIX linear congruential generator: the same garbage on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T: ?Sized>(&mut self, from: &[&'a T]) -> &'a T {
        from[self.below(from.len())]
    }
}

/// Garbage of four kinds, by `i`: raw bytes, printable ASCII that is never only digits,
/// awkward Unicode, and JSON-looking token soup.
fn garbage(rng: &mut Lcg, i: usize) -> Vec<u8> {
    const CHARS: [&str; 24] = [
        "a", "Z", "0", "9", " ", "\n", "\"", "\\", "{", "}", "[", "]", ":", ",", "ё", "😀",
        "\u{0}", "\u{7f}", "\u{feff}", "\u{2028}", "ÿ", "\u{85}", "'", "%",
    ];
    const TOKENS: [&str; 27] = [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "\"login\"",
        "\"password\"",
        "\"order\"",
        "\"sum\"",
        "\"\"",
        "\"x\"",
        "\"ё\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "0",
        "-1",
        "1e400",
        "1.005",
        "null",
        "true",
        "NaN",
        "\"2377225624\"",
        "2377225624",
        "\\",
        "\"",
    ];
    let len = rng.below(300);
    match i % 4 {
        0 => (0..len).map(|_| rng.next() as u8).collect(),
        1 => std::iter::once(b'x')
            .chain((0..len).map(|_| b' ' + rng.below(95) as u8))
            .collect(),
        2 => (0..len)
            .map(|_| rng.pick(&CHARS))
            .collect::<String>()
            .into_bytes(),
        _ => (0..len / 3)
            .map(|_| rng.pick(&TOKENS))
            .collect::<String>()
            .into_bytes(),
    }
}

async fn random_garbage_never_gets_a_5xx_and_changes_nothing(backend: Backend) {
    let Funded { app, user, .. } = funded(backend).await;
    let before = snapshot(&app, &[&user]).await;
    let mut rng = Lcg(0x5EED_F00D_CAFE_BEEF);
    for i in 0..200 {
        let body = garbage(&mut rng, i);
        // Plain, gzip-compressed, and raw garbage labelled gzip.
        let (body, headers): (Vec<u8>, &[(&str, &str)]) = match i % 3 {
            0 => (body, &[]),
            1 => (gzip(&body), &GZIP),
            _ => (body, &GZIP),
        };
        for (path, token) in posts(&user) {
            let response = app.post_raw(path, token, body.clone(), headers).await;
            let status = response.status();
            let reason = response.text().await.unwrap();
            let what = format!(
                "{path}: garbage #{i} {headers:?} {:?}",
                String::from_utf8_lossy(&body)
            );
            assert!(status.is_client_error(), "{what}: {status} {reason:?}");
            assert_clean_reason(status, &reason, &what);
        }
    }
    assert_eq!(snapshot(&app, &[&user]).await, before);
}
