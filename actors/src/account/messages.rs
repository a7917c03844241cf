//! Messages of the account actors, each with its result.

use actix::{Addr, Message};

use super::store::{Credentials, CreditOutcome, HistoryEntry, WithdrawOutcome, WithdrawalView};
use super::AccountActor;
use crate::coupons::store::{Binding, CouponView};
use crate::domain::{OrderNumber, Points, UserId};
use crate::error::AccountError;
use crate::fulfilment::store::{RedeemRequest, Redeemed, RedemptionView};

/// A balance as shown to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// Points available.
    pub current: Points,
    /// Points spent so far.
    pub withdrawn: Points,
}

/// Asks for the balance; a warm account answers from memory.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Balance, AccountError>")]
pub struct GetBalance;

/// Spends `sum` points on `order`. A replay of the same withdrawal answers `Replayed`
/// and charges nothing.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WithdrawOutcome, AccountError>")]
pub struct Withdraw {
    /// The order paid with points.
    pub order: OrderNumber,
    /// How many.
    pub sum: Points,
}

/// Credits an order's accrual: the order becomes PROCESSED and the balance grows, in one
/// commit. An order that is final already is not credited again.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<CreditOutcome, AccountError>")]
pub struct Credit {
    /// The order whose accrual this is.
    pub order: OrderNumber,
    /// Points earned (may be zero).
    pub amount: Points,
}

/// Lists the user's withdrawals, oldest first.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<WithdrawalView>, AccountError>")]
pub struct ListWithdrawals;

/// Lists the user's statement, newest first: at most `limit` entries older than
/// `before`, if given.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<HistoryEntry>, AccountError>")]
pub struct ListHistory {
    /// Only entries with a smaller id.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u64,
}

/// Exchanges points for a reward: stock, charge, redemption and shipment request in one
/// commit.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Redeemed, AccountError>")]
pub struct Redeem {
    /// What, how many, where, and the idempotency key.
    pub request: RedeemRequest,
}

/// Cancels a redemption the fulfilment service refused, giving points and stock back.
/// `false` when it was no longer waiting for the fulfilment service.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, AccountError>")]
pub struct Refund {
    /// The redemption.
    pub redemption: String,
}

/// Lists the user's redemptions, oldest first.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<RedemptionView>, AccountError>")]
pub struct ListRedemptions;

/// One of the user's redemptions; `None` when unknown or someone else's.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<RedemptionView>, AccountError>")]
pub struct GetRedemption {
    /// Its id.
    pub id: String,
}

/// Binds a free coupon code to the user and charges its price, in one commit.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<CouponView, AccountError>")]
pub struct PayForCoupon {
    /// The code, the campaign, the price and the slot, as the campaign decided.
    pub binding: Binding,
}

/// Registers a user with an already hashed password and opens their account.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<UserId, AccountError>")]
pub struct OpenAccount {
    /// The login, unique.
    pub login: String,
    /// The bcrypt hash of the password.
    pub password_hash: String,
}

/// Looks up a login's credentials.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Credentials>, AccountError>")]
pub struct FindLogin {
    /// The login.
    pub login: String,
}

/// Replaces a user's password hash with one of the current scheme and cost, unless it
/// changed since `old` was read.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, AccountError>")]
pub struct ReplacePasswordHash {
    /// Whose.
    pub user: UserId,
    /// The hash the password was verified against.
    pub old: String,
    /// The hash to store instead.
    pub new: String,
}

/// Confirms that the user has an account (a token can outlive its user when a database
/// is reset under a configured key).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), AccountError>")]
pub struct CheckAccount;

/// Finds the user's account actor, starting it when it is not running.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Addr<AccountActor>")]
pub struct GetAccount {
    /// Whose.
    pub user: UserId,
}
