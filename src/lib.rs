//! Gophermart: a cumulative loyalty-points service. This crate is the HTTP edge and the
//! wiring; the behaviour lives in the actors crate.

pub mod auth;
pub mod body;
pub mod config;
pub mod emulator;
pub mod error;
pub mod metrics;
pub mod observe;
pub mod pages;
pub mod protect;
pub mod roles;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod throttle;
pub mod warehouse;

pub use config::Settings;
pub use startup::Application;
