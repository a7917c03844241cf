//! Service-wide values kept in the database (the token signing key).

use gophermart_entities::settings;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};

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

/// Stores the number `to` under `key` (created by now) unless a greater one is stored.
pub async fn advance(db: &Db, key: &str, to: i64) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    settings::Entity::update_many()
        .col_expr(settings::Column::Value, Expr::value(to.to_string()))
        .filter(settings::Column::Key.eq(key))
        .filter(Expr::cust_with_values("CAST(value AS BIGINT) < ?", [to]))
        .exec(&db.writer)
        .await?;
    Ok(())
}
