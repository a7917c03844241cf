//! The platform's foundations: the balance after each ledger entry (the statement), the
//! time an order became final, and the event outbox.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();

        // The statement shows the balance right after each entry: the running sum of the
        // user's ledger, filled in for the entries written before.
        manager
            .alter_table(
                Table::alter()
                    .table(Ledger::Table)
                    .add_column(big_integer_null(Ledger::BalanceAfter))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "UPDATE ledger SET balance_after = (
                 SELECT SUM(earlier.delta) FROM ledger AS earlier
                 WHERE earlier.user_id = ledger.user_id AND earlier.id <= ledger.id
             )",
        )
        .await?;
        // Paging a statement newest first, `before` an id.
        manager
            .create_index(
                Index::create()
                    .name("idx_ledger_user_id")
                    .table(Ledger::Table)
                    .col(Ledger::UserId)
                    .col(Ledger::Id)
                    .to_owned(),
            )
            .await?;

        // When an order became final, for the daily figures; the orders credited before
        // take their ledger entry's time, the rest their upload time.
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(timestamp_with_time_zone_null(Orders::FinalAt))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "UPDATE orders SET final_at = COALESCE(
                 (SELECT ledger.created_at FROM ledger
                  WHERE ledger.cause = 'accrual' AND ledger.reference = orders.number),
                 orders.uploaded_at
             )
             WHERE status IN ('PROCESSED', 'INVALID')",
        )
        .await?;

        // The outbox: written in the same commit as the change it tells of, numbered
        // afterwards (`seq`) by a single sequencer in the order the rows became visible.
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Events::Pos))
                    .col(string_len(Events::Id, 36).unique_key())
                    .col(big_integer_null(Events::Seq).unique_key())
                    .col(string_len(Events::Kind, 64))
                    .col(big_integer_null(Events::UserId))
                    .col(text(Events::Data))
                    .col(timestamp_with_time_zone(Events::At))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_events_unnumbered ON events (pos) WHERE seq IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_ledger_user_id")
                    .table(Ledger::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(Orders::FinalAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Ledger::Table)
                    .drop_column(Ledger::BalanceAfter)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Ledger {
    Table,
    Id,
    UserId,
    BalanceAfter,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    FinalAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Pos,
    Id,
    Seq,
    Kind,
    UserId,
    Data,
    At,
}
