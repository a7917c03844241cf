//! SeaORM entities of Gophermart: one module per table, nothing else.

pub mod prelude;

pub mod accounts;
pub mod campaigns;
pub mod coupons;
pub mod events;
pub mod idempotency_keys;
pub mod ledger;
pub mod orders;
pub mod redemption_events;
pub mod redemptions;
pub mod rewards;
pub mod settings;
pub mod users;
pub mod withdrawals;
