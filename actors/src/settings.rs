//! Service-wide values kept in the database (the token signing key).

use gophermart_entities::settings;
use sea_orm::{ActiveValue::Set, DbErr, EntityTrait};

use crate::Db;

/// Returns the value stored under `key`, storing `generate()` first when there is none.
/// Safe when several instances start at once: the first insert wins and all read it back.
pub async fn get_or_insert(
    db: &Db,
    key: &str,
    generate: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    if let Some(found) = settings::Entity::find_by_id(key).one(&db.writer).await? {
        return Ok(found.value);
    }
    settings::Entity::insert(settings::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(generate()),
    })
    .on_conflict_do_nothing_on([settings::Column::Key])
    .exec_without_returning(&db.writer)
    .await?;
    settings::Entity::find_by_id(key)
        .one(&db.writer)
        .await?
        .map(|row| row.value)
        .ok_or_else(|| DbErr::RecordNotFound(format!("setting {key}")))
}

/// Stores `value` under `key`, replacing what was there.
pub async fn set(db: &Db, key: &str, value: &str) -> Result<(), DbErr> {
    settings::Entity::insert(settings::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value.to_owned()),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(settings::Column::Key)
            .update_column(settings::Column::Value)
            .to_owned(),
    )
    .exec_without_returning(&db.writer)
    .await?;
    Ok(())
}
