//! `rewards`: the catalogue of goods shoppers exchange points for.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rewards")]
pub struct Model {
    /// The operator's identifier: 1–64 of `[A-Za-z0-9._-]`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub sku: String,
    pub title: String,
    /// Points per unit, in hundredths; above zero.
    pub price: i64,
    /// Units left; never below zero.
    pub stock: i64,
    /// Offered to shoppers.
    pub active: bool,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
