//! Messages of the accrual pipeline.

use actix::Message;

use crate::orders::store::PendingOrder;

/// An order was accepted and waits for its first question to the accrual system.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct OrderAccepted {
    /// The order and its schedule.
    pub order: PendingOrder,
}
