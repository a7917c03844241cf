//! The accrual pipeline: a supervisor that owns the schedule of orders to ask about, and
//! pollers that ask the accrual system.

pub mod client;
mod guardian;
mod messages;
mod outcomes;
mod poller;
pub mod schedule;
mod supervisor;

pub use client::{AccrualClient, Answer};
pub use guardian::AccrualGuardian;
pub use messages::*;
pub use outcomes::Outcomes;
pub use poller::AccrualPoller;
pub use supervisor::{AccrualSettings, AccrualSupervisor};
