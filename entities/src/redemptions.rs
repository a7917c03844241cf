//! `redemptions`: points exchanged for a reward, and the shipment request that delivers it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "redemptions")]
pub struct Model {
    /// UUID v7; also the shipment request's idempotency key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: i64,
    pub sku: String,
    pub quantity: i32,
    /// Points charged, in hundredths.
    pub points: i64,
    pub address: String,
    /// `REQUESTED`, `ACCEPTED`, `SHIPPED`, `DELIVERED` or `CANCELLED`.
    pub status: String,
    pub tracking: Option<String>,
    /// Questions to the fulfilment service so far.
    pub attempts: i32,
    /// When to ask the fulfilment service next; `None` once final.
    pub next_attempt_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
