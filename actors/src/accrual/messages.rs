//! Messages of the accrual pipeline.

use std::time::Instant;

use actix::Message;

use super::client::Answer;
use crate::domain::OrderNumber;
use crate::orders::store::PendingOrder;

/// An order was accepted and waits for its first question to the accrual system.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct OrderAccepted {
    /// The order and its schedule.
    pub order: PendingOrder,
}

/// Asks a poller to ask the accrual system about one order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Answer")]
pub struct Poll {
    /// The order.
    pub order: OrderNumber,
}

/// Broadcast to every poller after a `429`: no request leaves before `until`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Pause {
    /// When requests may resume.
    pub until: Instant,
}

/// Stops handing out work and waits (bounded) until the answers in flight are persisted.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Drain {
    /// How long to wait at most.
    pub timeout: std::time::Duration,
}

/// What the pipeline is doing now, as the operators' metrics show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineState {
    /// Whether every poller waits out a `429`.
    pub paused: bool,
    /// The limit the accrual system announced, per minute; `0` while none is known.
    pub limit_per_minute: u32,
    /// Orders not final.
    pub backlog: usize,
    /// Pollers with a question out.
    pub pollers_busy: usize,
}

/// Asks the pipeline what it is doing now; answered from memory.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "PipelineState")]
pub struct GetPipelineState;

/// Stops the supervisor: this instance no longer leads. Answers in flight may still be
/// persisted; each is decided by the database, so the new leader's asking again is safe.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Retire;
