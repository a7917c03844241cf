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
    /// The kind of change: `accrual` or `withdrawal` (later `redemption`, `refund`,
    /// `coupon`).
    pub cause: String,
    /// What the change is about: an order number, a redemption id, a coupon code.
    pub reference: String,
    pub created_at: DateTimeWithTimeZone,
    /// The balance right after this entry, in hundredths.
    pub balance_after: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
