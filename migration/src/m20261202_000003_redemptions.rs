//! Redemptions: points exchanged for rewards, each with its shipment request, its
//! status timeline, and the idempotency keys shoppers sent with them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Redemptions::Table)
                    .if_not_exists()
                    .col(string_len(Redemptions::Id, 36).primary_key())
                    .col(big_integer(Redemptions::UserId))
                    .col(string_len(Redemptions::Sku, 64))
                    .col(integer(Redemptions::Quantity))
                    .col(big_integer(Redemptions::Points))
                    .col(text(Redemptions::Address))
                    .col(string_len(Redemptions::Status, 16))
                    .col(string_len_null(Redemptions::Tracking, 128))
                    .col(integer(Redemptions::Attempts))
                    // When the fulfilment service is next to be asked; none once final.
                    .col(timestamp_with_time_zone_null(Redemptions::NextAttemptAt))
                    .col(timestamp_with_time_zone(Redemptions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Redemptions::Table, Redemptions::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_redemptions_user")
                    .table(Redemptions::Table)
                    .col(Redemptions::UserId)
                    .col(Redemptions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_redemptions_next_attempt")
                    .table(Redemptions::Table)
                    .col(Redemptions::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RedemptionEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(RedemptionEvents::Id))
                    .col(string_len(RedemptionEvents::RedemptionId, 36))
                    .col(string_len(RedemptionEvents::Status, 16))
                    .col(timestamp_with_time_zone(RedemptionEvents::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_redemption_events_redemption")
                    .table(RedemptionEvents::Table)
                    .col(RedemptionEvents::RedemptionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(big_integer(IdempotencyKeys::UserId))
                    .col(string_len(IdempotencyKeys::Key, 128))
                    .col(string_len(IdempotencyKeys::Fingerprint, 64))
                    .col(text(IdempotencyKeys::Response))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::UserId)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            RedemptionEvents::Table.into_iden(),
            Redemptions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    Id,
    UserId,
    Sku,
    Quantity,
    Points,
    Address,
    Status,
    Tracking,
    Attempts,
    NextAttemptAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RedemptionEvents {
    Table,
    Id,
    RedemptionId,
    Status,
    At,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    UserId,
    Key,
    Fingerprint,
    Response,
    CreatedAt,
}
