//! Uploading order numbers and listing them.

use chrono::DateTime;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{order_number, spawn_app, with_luhn_digit, Backend};

crate::on_both_backends!(
    upload_answers_202_then_200_for_the_owner_and_409_for_another_user,
    upload_answers_422_for_non_digits_and_luhn_failures,
    upload_answers_400_for_empty_or_unreadable_bodies,
    surrounding_whitespace_is_ignored,
    list_answers_204_with_json_content_type_when_empty,
    list_is_oldest_first_with_numbers_as_strings_and_rfc3339_times,
    accrual_appears_only_when_points_were_credited,
    users_never_see_each_others_orders,
    the_same_new_number_from_two_users_at_once_is_accepted_exactly_once,
);

async fn upload_answers_202_then_200_for_the_owner_and_409_for_another_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob) = (app.register_user().await, app.register_user().await);
    let number = order_number();
    assert_eq!(
        app.post_order(&alice, &number).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.post_order(&alice, &number).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.post_order(&bob, &number).await.status(),
        StatusCode::CONFLICT
    );
    let bobs = app.get_orders(&bob).await;
    assert_eq!(
        bobs.status(),
        StatusCode::NO_CONTENT,
        "the loser owns nothing"
    );
}

async fn upload_answers_422_for_non_digits_and_luhn_failures(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let valid = order_number();
    let broken_luhn = format!(
        "{}{}",
        &valid[..valid.len() - 1],
        (valid.as_bytes()[valid.len() - 1] - b'0' + 1) % 10
    );
    for body in [
        broken_luhn.as_str(),
        "12345",
        "abc",
        "7992 7398 713",
        "-79927398713",
        "79927398713.0",
        "７９９２７３９８７１３", // full-width digits are not ASCII digits
        "0x1F",
    ] {
        let response = app.post_order(&user, body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body:?}"
        );
        assert!(!response.text().await.unwrap().is_empty());
    }
    assert_eq!(app.get_orders(&user).await.status(), StatusCode::NO_CONTENT);
}

async fn upload_answers_400_for_empty_or_unreadable_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    for body in [&b""[..], b"   \n", b"\xff\xfe79927398713"] {
        let response = app
            .post_raw("/api/user/orders", Some(&user.token), body.to_vec(), &[])
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
    }
    assert_eq!(app.get_orders(&user).await.status(), StatusCode::NO_CONTENT);
}

async fn surrounding_whitespace_is_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let number = order_number();
    let padded = format!("  {number}\r\n");
    assert_eq!(
        app.post_order(&user, &padded).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.post_order(&user, &number).await.status(),
        StatusCode::OK
    );
    let orders: Vec<Value> = app.get_orders(&user).await.json().await.unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["number"], number.as_str());
}

async fn list_answers_204_with_json_content_type_when_empty(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let response = app.get_orders(&user).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
}

async fn list_is_oldest_first_with_numbers_as_strings_and_rfc3339_times(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    // Leading zeros and more digits than any integer type must survive.
    let long = with_luhn_digit(&"9".repeat(60));
    let zeros = format!("00{}", order_number());
    let plain = order_number();
    for number in [&long, &zeros, &plain] {
        assert_eq!(
            app.post_order(&user, number).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let response = app.get_orders(&user).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let orders: Vec<Value> = response.json().await.unwrap();
    let numbers: Vec<&str> = orders
        .iter()
        .map(|o| o["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, [long.as_str(), zeros.as_str(), plain.as_str()]);
    for order in &orders {
        let uploaded = order["uploaded_at"].as_str().unwrap();
        DateTime::parse_from_rfc3339(uploaded).expect("RFC 3339");
        let status = order["status"].as_str().unwrap();
        assert!(["NEW", "PROCESSING", "INVALID", "PROCESSED"].contains(&status));
    }
}

async fn accrual_appears_only_when_points_were_credited(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let emulator = app.emulator();
    let earning = order_number();
    emulator.add_order_worth(&earning, json!(500)).await;
    let nothing = order_number();
    emulator
        .add_order(&nothing, &[("a good that matches no rule", json!(100))])
        .await;
    let invalid = order_number();
    emulator.add_order(&invalid, &[]).await;
    let unknown = order_number();
    for number in [&earning, &nothing, &invalid, &unknown] {
        assert_eq!(
            app.post_order(&user, number).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let earned = app.wait_for_status(&user, &earning, "PROCESSED").await;
    assert_eq!(earned["accrual"], json!(500));
    let zero = app.wait_for_status(&user, &nothing, "PROCESSED").await;
    assert!(zero.get("accrual").is_none(), "{zero}");
    let refused = app.wait_for_status(&user, &invalid, "INVALID").await;
    assert!(refused.get("accrual").is_none(), "{refused}");
    let orders: Vec<Value> = app.get_orders(&user).await.json().await.unwrap();
    let still_new = orders
        .iter()
        .find(|o| o["number"] == unknown.as_str())
        .unwrap();
    assert_eq!(still_new["status"], "NEW", "unknown to the accrual system");
    assert!(still_new.get("accrual").is_none());
    assert_eq!(app.balance(&user).await, ("500".into(), "0".into()));
}

async fn users_never_see_each_others_orders(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob) = (app.register_user().await, app.register_user().await);
    let (a, b) = (order_number(), order_number());
    assert_eq!(
        app.post_order(&alice, &a).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.post_order(&bob, &b).await.status(),
        StatusCode::ACCEPTED
    );
    let alices: Vec<Value> = app.get_orders(&alice).await.json().await.unwrap();
    let bobs: Vec<Value> = app.get_orders(&bob).await.json().await.unwrap();
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0]["number"], a.as_str());
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["number"], b.as_str());
}

async fn the_same_new_number_from_two_users_at_once_is_accepted_exactly_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob) = (app.register_user().await, app.register_user().await);
    let mut won = [0usize; 2];
    for _ in 0..40 {
        let number = order_number();
        let (a, b) = tokio::join!(
            app.post_order(&alice, &number),
            app.post_order(&bob, &number)
        );
        let statuses = [a.status(), b.status()];
        let accepted = statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count();
        let conflicts = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((accepted, conflicts), (1, 1), "{statuses:?} for {number}");
        won[usize::from(b.status() == StatusCode::ACCEPTED)] += 1;
    }
    let alices = app.get_orders(&alice).await;
    let bobs = app.get_orders(&bob).await;
    let count = |list: Option<Vec<Value>>| list.map_or(0, |l| l.len());
    let alice_count = count(alices.json().await.ok());
    let bob_count = count(bobs.json().await.ok());
    assert_eq!(alice_count + bob_count, 40);
    assert_eq!((alice_count, bob_count), (won[0], won[1]));
}
