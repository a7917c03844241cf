//! Gophermart's actors and the storage logic they own: accounts, orders and the accrual
//! pipeline. Nothing here knows about HTTP.

pub mod account;
pub mod accrual;
pub mod batch;
pub mod coupons;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod figures;
pub mod fulfilment;
pub mod http;
pub mod idempotency;
pub mod leadership;
pub mod orders;
pub mod rewards;
pub mod settings;

pub use db::Db;
