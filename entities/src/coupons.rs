//! `coupons`: the codes of every campaign's pool, who holds each and where it was used.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coupons")]
pub struct Model {
    /// `PREFIX-YYYYMMDD-XXXXXXXXXX`, unique over every campaign.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    pub campaign_id: String,
    /// Position in the campaign's pool, from 1.
    pub pos: i64,
    /// The shopper holding it, once claimed.
    pub user_id: Option<i64>,
    /// Which of the shopper's codes of this campaign it is, from 1.
    pub slot: Option<i32>,
    pub issued_at: Option<DateTimeWithTimeZone>,
    /// The order it was redeemed for.
    pub order_number: Option<String>,
    /// That order's amount, in hundredths.
    pub amount: Option<i64>,
    /// The discount given, in hundredths.
    pub discount: Option<i64>,
    pub redeemed_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
