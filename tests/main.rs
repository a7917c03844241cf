//! Black-box tests: the real service on a random port over a fresh database, on SQLite
//! and on PostgreSQL, talked to over HTTP.

#![allow(clippy::unwrap_used)]

mod helpers;

mod balance;
mod emulator;
mod orders;
mod users;
