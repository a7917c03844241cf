//! `orders`: uploaded order numbers, their accrual status and their polling schedule.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub number: String,
    pub user_id: i64,
    pub status: String,
    pub accrual: Option<i64>,
    pub uploaded_at: DateTimeWithTimeZone,
    pub attempts: i32,
    pub next_poll_at: Option<DateTimeWithTimeZone>,
    /// When the order became PROCESSED or INVALID.
    pub final_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
