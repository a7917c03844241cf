//! `events`: the outbox of business events, written in the commit of the change they tell
//! of and numbered (`seq`) afterwards in the order they became visible.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// Insertion position; not an order consumers may rely on.
    #[sea_orm(primary_key)]
    pub pos: i64,
    /// UUID v7.
    #[sea_orm(unique)]
    pub id: String,
    /// Gap-free, increasing in the order events became visible; `None` until numbered.
    #[sea_orm(unique)]
    pub seq: Option<i64>,
    /// `user.registered`, `points.credited`, …
    pub kind: String,
    pub user_id: Option<i64>,
    /// The event's `data` as JSON text.
    pub data: String,
    pub at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
