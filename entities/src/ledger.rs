//! `ledger`: append-only record of every change of every balance, with its cause.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    /// Signed change in hundredths: positive for accruals, negative for withdrawals.
    pub delta: i64,
    /// `accrual` or `withdrawal`.
    pub cause: String,
    /// The order number the change is about.
    pub reference: String,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
