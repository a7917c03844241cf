//! Gophermart's schema as frozen SeaORM migrations, run at start on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_tables;
mod m20261202_000001_statement_and_events;
mod m20261202_000002_rewards;
mod m20261202_000003_redemptions;
mod m20261202_000004_coupons;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_tables::Migration),
            Box::new(m20261202_000001_statement_and_events::Migration),
            Box::new(m20261202_000002_rewards::Migration),
            Box::new(m20261202_000003_redemptions::Migration),
            Box::new(m20261202_000004_coupons::Migration),
        ]
    }
}
