//! `redemption_events`: each status a redemption reached, and when.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "redemption_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub redemption_id: String,
    pub status: String,
    pub at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
