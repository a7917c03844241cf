//! SeaORM entities of Gophermart: one module per table, nothing else.

pub mod prelude;

pub mod accounts;
pub mod events;
pub mod ledger;
pub mod orders;
pub mod rewards;
pub mod settings;
pub mod users;
pub mod withdrawals;
