//! The errors actors answer with. Each maps to one status code at the HTTP edge.

use actix::MailboxError;
use sea_orm::DbErr;

/// What can go wrong with a user's account: registration, balance and withdrawals.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The login is registered already.
    #[error("login is already taken")]
    LoginTaken,
    /// No such user (a token signed for a user this database does not have).
    #[error("unknown user")]
    UnknownUser,
    /// The balance does not cover the sum.
    #[error("not enough points")]
    InsufficientFunds,
    /// The order number was spent on a different withdrawal.
    #[error("the order number was already used for a withdrawal")]
    OrderAlreadyUsed,
    /// The reward is unknown or not offered.
    #[error("no such reward on offer")]
    RewardNotFound,
    /// The reward's stock does not cover the quantity.
    #[error("not enough stock")]
    OutOfStock,
    /// The idempotency key came before with another request.
    #[error("the idempotency key was used for another request")]
    KeyReused,
    /// The same idempotency key is being used at this moment; ask again.
    #[error("the idempotency key is in use")]
    KeyRace,
    /// The coupon code was bound meanwhile (by another instance).
    #[error("the code was taken")]
    CodeTaken,
    /// The shopper holds as many codes of the campaign as allowed.
    #[error("the limit per shopper is reached")]
    LimitReached,
    /// A balance would leave the range the ledger can hold.
    #[error("the balance would overflow")]
    Overflow,
    /// The balance row kept changing under us (another instance writing the same account).
    #[error("the account is busy, try again")]
    Contended,
    /// The actor could not be reached.
    #[error("account actor unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(#[from] DbErr),
}

/// What can go wrong with orders.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// No such user (a token signed for a user this database does not have).
    #[error("unknown user")]
    UnknownUser,
    /// The actor could not be reached.
    #[error("order registry unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(DbErr),
}

impl From<DbErr> for OrderError {
    fn from(error: DbErr) -> Self {
        match error.sql_err() {
            // Orders reference their owner: a missing owner is an unknown user.
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => OrderError::UnknownUser,
            _ => OrderError::Storage(error),
        }
    }
}

/// What can go wrong with events: the outbox, the feed, the broker.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The broker could not be reached or refused.
    #[error("event broker: {0}")]
    Broker(String),
    /// The relay could not be reached.
    #[error("event relay unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(#[from] DbErr),
}

/// What can go wrong with the operator's figures.
#[derive(Debug, thiserror::Error)]
pub enum FiguresError {
    /// The figures actor could not be reached.
    #[error("figures unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(#[from] DbErr),
}

/// What can go wrong with coupon campaigns.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// A campaign with this id exists.
    #[error("a campaign with this id exists")]
    IdTaken,
    /// The registry could not be reached.
    #[error("campaigns unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(#[from] DbErr),
}

/// What can go wrong with the rewards catalogue.
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    /// No reward has this sku.
    #[error("no such reward")]
    NotFound,
    /// A reward with this sku exists.
    #[error("a reward with this sku exists")]
    SkuTaken,
    /// The stock change would take the stock below zero or past the maximum.
    #[error("the stock would go below zero or above the maximum")]
    StockOutOfRange,
    /// The catalogue could not be reached.
    #[error("catalogue unavailable: {0}")]
    Unavailable(#[from] MailboxError),
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(#[from] DbErr),
}
