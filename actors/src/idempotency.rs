//! Shoppers' idempotency keys: one namespace per shopper, each key with the digest of the
//! request it came with and what that request produced, so that a retry gets the same
//! answer and is charged once.

use chrono::{DateTime, FixedOffset};
use gophermart_entities::idempotency_keys;
pub use gophermart_entities::idempotency_keys::Model as Remembered;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, TryInsertResult};

use crate::domain::UserId;

/// What the shopper's `key` was used for before, if it was.
pub async fn recall(
    conn: &impl ConnectionTrait,
    user: UserId,
    key: &str,
) -> Result<Option<Remembered>, DbErr> {
    idempotency_keys::Entity::find_by_id((user.0, key.to_owned()))
        .one(conn)
        .await
}

/// Stores `key` with the request's `fingerprint` and its `outcome` (the id of what it
/// produced), inside the caller's transaction. `false` when the same key is being stored
/// by another request at this moment: the caller rolls back, and the retry recalls it.
pub async fn remember(
    txn: &impl ConnectionTrait,
    user: UserId,
    (key, fingerprint): (&str, &str),
    outcome: &str,
    at: DateTime<FixedOffset>,
) -> Result<bool, DbErr> {
    let stored = idempotency_keys::Entity::insert(idempotency_keys::ActiveModel {
        user_id: Set(user.0),
        key: Set(key.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        response: Set(outcome.to_owned()),
        created_at: Set(at),
    })
    .on_conflict_do_nothing_on([
        idempotency_keys::Column::UserId,
        idempotency_keys::Column::Key,
    ])
    .exec_without_returning(txn)
    .await?;
    Ok(matches!(stored, TryInsertResult::Inserted(1)))
}
