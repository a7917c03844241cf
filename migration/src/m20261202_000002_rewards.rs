//! The rewards catalogue: goods shoppers exchange points for, with their stock.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rewards::Table)
                    .if_not_exists()
                    .col(string_len(Rewards::Sku, 64).primary_key())
                    .col(string_len(Rewards::Title, 1000))
                    // Points in hundredths, and units: never below what a sale can take.
                    .col(big_integer(Rewards::Price).check(Expr::col(Rewards::Price).gt(0)))
                    .col(big_integer(Rewards::Stock).check(Expr::col(Rewards::Stock).gte(0)))
                    .col(boolean(Rewards::Active))
                    .col(timestamp_with_time_zone(Rewards::CreatedAt))
                    .col(timestamp_with_time_zone(Rewards::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Rewards::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Rewards {
    Table,
    Sku,
    Title,
    Price,
    Stock,
    Active,
    CreatedAt,
    UpdatedAt,
}
