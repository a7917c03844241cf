//! The accrual pipeline: a supervisor that owns the schedule of orders to ask about, and
//! pollers that ask the accrual system.

mod messages;

pub use messages::*;
