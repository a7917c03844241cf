//! Black-box tests: the real service on a random port over a fresh database, on SQLite
//! and on PostgreSQL, talked to over HTTP.

#![allow(clippy::unwrap_used)]

mod helpers;

mod abuse;
mod accrual;
mod balance;
mod campaigns;
mod cluster;
mod coupons;
mod emulator;
mod events;
mod figures;
mod history;
mod hostile;
mod lifecycle;
mod logs;
mod metrics;
mod openapi;
mod orders;
mod pages;
mod process;
mod redemptions;
mod rewards;
mod roles;
mod scripted;
mod shipping;
mod users;
mod warehouse;
