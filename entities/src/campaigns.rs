//! `campaigns`: coupon campaigns, each with a pool of codes generated at creation.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub title: String,
    /// `fixed` or `percent`.
    pub kind: String,
    /// Hundredths: of points for `fixed`, of a percent for `percent`.
    pub value: i64,
    /// Codes in the pool.
    pub quantity: i64,
    /// Codes one shopper may hold.
    pub per_user: i32,
    /// Points a claim costs, in hundredths.
    pub price: i64,
    /// The smallest order amount a code applies to, in hundredths.
    pub min_order: i64,
    pub starts_at: Option<DateTimeWithTimeZone>,
    pub ends_at: Option<DateTimeWithTimeZone>,
    pub prefix: String,
    pub created_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
