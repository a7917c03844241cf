//! Messages of the order registry.

use actix::Message;

use super::store::OrderView;
use crate::domain::{OrderNumber, UserId};
use crate::error::OrderError;

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A new number, now the user's and on its way to the accrual system.
    Accepted,
    /// The user uploaded this number before.
    AlreadyYours,
    /// Another user owns this number.
    TakenByOther,
}

/// Uploads an order number for a user.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Registration, OrderError>")]
pub struct RegisterOrder {
    /// Who uploads.
    pub user: UserId,
    /// The number.
    pub number: OrderNumber,
}

/// Lists a user's orders, oldest upload first.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<std::sync::Arc<Vec<OrderView>>, OrderError>")]
pub struct ListOrders {
    /// Whose.
    pub user: UserId,
}
