//! Coupon campaigns and their pre-generated pools of codes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .if_not_exists()
                    .col(string_len(Campaigns::Id, 64).primary_key())
                    .col(string_len(Campaigns::Title, 1000))
                    .col(string_len(Campaigns::Kind, 8))
                    // Hundredths: of points for `fixed`, of a percent for `percent`.
                    .col(big_integer(Campaigns::Value))
                    .col(big_integer(Campaigns::Quantity))
                    .col(integer(Campaigns::PerUser))
                    .col(big_integer(Campaigns::Price))
                    .col(big_integer(Campaigns::MinOrder))
                    .col(timestamp_with_time_zone_null(Campaigns::StartsAt))
                    .col(timestamp_with_time_zone_null(Campaigns::EndsAt))
                    .col(string_len(Campaigns::Prefix, 16))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Coupons::Table)
                    .if_not_exists()
                    // Unique over every campaign: a collision is regenerated.
                    .col(string_len(Coupons::Code, 40).primary_key())
                    .col(string_len(Coupons::CampaignId, 64))
                    .col(big_integer(Coupons::Pos))
                    .col(big_integer_null(Coupons::UserId))
                    .col(integer_null(Coupons::Slot))
                    .col(timestamp_with_time_zone_null(Coupons::IssuedAt))
                    .col(string_null(Coupons::OrderNumber))
                    .col(big_integer_null(Coupons::Amount))
                    .col(big_integer_null(Coupons::Discount))
                    .col(timestamp_with_time_zone_null(Coupons::RedeemedAt))
                    .to_owned(),
            )
            .await?;
        // The pool's order: a claim takes the next free position.
        manager
            .create_index(
                Index::create()
                    .name("idx_coupons_campaign_pos")
                    .table(Coupons::Table)
                    .col(Coupons::CampaignId)
                    .col(Coupons::Pos)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A shopper's n-th code of a campaign exists once: the per-user limit's backstop.
        manager
            .create_index(
                Index::create()
                    .name("idx_coupons_campaign_user_slot")
                    .table(Coupons::Table)
                    .col(Coupons::CampaignId)
                    .col(Coupons::UserId)
                    .col(Coupons::Slot)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Coupons::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Campaigns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
    Title,
    Kind,
    Value,
    Quantity,
    PerUser,
    Price,
    MinOrder,
    StartsAt,
    EndsAt,
    Prefix,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Coupons {
    Table,
    Code,
    CampaignId,
    Pos,
    UserId,
    Slot,
    IssuedAt,
    OrderNumber,
    Amount,
    Discount,
    RedeemedAt,
}
