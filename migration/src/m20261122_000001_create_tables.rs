//! The first schema: users, accounts, orders, withdrawals, the ledger and settings.
//!
//! Points are integer hundredths (`BIGINT`) so that both databases keep them exact.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .if_not_exists()
                    .col(string(Settings::Key).primary_key())
                    .col(string(Settings::Value))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    .col(string(Users::Login).unique_key())
                    .col(string(Users::PasswordHash))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(big_integer(Accounts::UserId).primary_key())
                    .col(big_integer(Accounts::Current).default(0))
                    .col(big_integer(Accounts::Withdrawn).default(0))
                    .col(big_integer(Accounts::Version).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Accounts::Table, Accounts::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .check(Expr::col(Accounts::Current).gte(0))
                    .check(Expr::col(Accounts::Withdrawn).gte(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Orders::Id))
                    .col(string(Orders::Number).unique_key())
                    .col(big_integer(Orders::UserId))
                    .col(string_len(Orders::Status, 16))
                    .col(big_integer_null(Orders::Accrual))
                    .col(timestamp_with_time_zone(Orders::UploadedAt))
                    .col(integer(Orders::Attempts).default(0))
                    .col(timestamp_with_time_zone_null(Orders::NextPollAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Orders::Table, Orders::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_user")
                    .table(Orders::Table)
                    .col(Orders::UserId)
                    .col(Orders::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_next_poll")
                    .table(Orders::Table)
                    .col(Orders::NextPollAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Withdrawals::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Withdrawals::Id))
                    .col(string(Withdrawals::OrderNumber).unique_key())
                    .col(big_integer(Withdrawals::UserId))
                    .col(big_integer(Withdrawals::Sum))
                    .col(timestamp_with_time_zone(Withdrawals::ProcessedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Withdrawals::Table, Withdrawals::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .check(Expr::col(Withdrawals::Sum).gt(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_withdrawals_user")
                    .table(Withdrawals::Table)
                    .col(Withdrawals::UserId)
                    .col(Withdrawals::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Ledger::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Ledger::Id))
                    .col(big_integer(Ledger::UserId))
                    .col(big_integer(Ledger::Delta))
                    .col(string_len(Ledger::Cause, 16))
                    .col(string(Ledger::Reference))
                    .col(timestamp_with_time_zone(Ledger::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Ledger::Table, Ledger::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One ledger row per cause: an accrual is credited once, a withdrawal charged once.
        manager
            .create_index(
                Index::create()
                    .name("idx_ledger_cause_reference")
                    .table(Ledger::Table)
                    .col(Ledger::Cause)
                    .col(Ledger::Reference)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ledger_user")
                    .table(Ledger::Table)
                    .col(Ledger::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Ledger::Table.into_iden(),
            Withdrawals::Table.into_iden(),
            Orders::Table.into_iden(),
            Accounts::Table.into_iden(),
            Users::Table.into_iden(),
            Settings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Login,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    UserId,
    Current,
    Withdrawn,
    Version,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    Number,
    UserId,
    Status,
    Accrual,
    UploadedAt,
    Attempts,
    NextPollAt,
}

#[derive(DeriveIden)]
enum Withdrawals {
    Table,
    Id,
    OrderNumber,
    UserId,
    Sum,
    ProcessedAt,
}

#[derive(DeriveIden)]
enum Ledger {
    Table,
    Id,
    UserId,
    Delta,
    Cause,
    Reference,
    CreatedAt,
}
