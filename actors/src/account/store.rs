//! The account's storage logic as plain async functions: users, balances, the ledger and
//! withdrawals. Each mutation is one transaction; the balance row is updated only at the
//! version the caller last saw.

use gophermart_entities::{accounts, ledger, users, withdrawals};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TryInsertResult,
};
use serde::Serialize;
use std::collections::HashMap;
use tracing::instrument;

use super::Withdraw;
use crate::db::{now, stored_points, Db};
use crate::domain::{Cents, OrderNumber, Points, UserId};
use crate::error::AccountError;
use crate::events::store::{self as events, EventKind, NewEvent};
use crate::orders::store::{self as order_store, OrderStatus};

/// How often a mutation re-reads the balance and tries again after losing a version race.
/// Alone on its database an account loses one only to a restart; with several instances,
/// to each of them writing the same balance at once.
pub(crate) const VERSION_RETRIES: usize = 32;

/// The longest pause before trying again after a lost race.
const RACE_PAUSE_MAX_MICROS: u64 = 2_000;

/// Ledger causes.
pub const CAUSE_ACCRUAL: &str = "accrual";
/// Ledger causes.
pub const CAUSE_WITHDRAWAL: &str = "withdrawal";

/// A balance as of one version of the `accounts` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    /// Points available.
    pub current: Points,
    /// Points spent so far.
    pub withdrawn: Points,
    /// The row's version.
    pub version: i64,
}

impl AccountState {
    /// The balance as its owner sees it.
    pub fn balance(self) -> super::Balance {
        super::Balance {
            current: self.current,
            withdrawn: self.withdrawn,
        }
    }
}

/// A registered user's id and password hash.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Whose they are.
    pub user: UserId,
    /// The bcrypt hash.
    pub password_hash: String,
}

/// One withdrawal as listed to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalView {
    /// The order paid with points.
    pub order: OrderNumber,
    /// Points spent.
    pub sum: Points,
    /// When.
    pub processed_at: chrono::DateTime<chrono::FixedOffset>,
}

/// How a withdrawal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawOutcome {
    /// Charged now.
    Charged,
    /// The same withdrawal was charged before; nothing charged now.
    Replayed,
}

/// How a credit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditOutcome {
    /// The order became PROCESSED and its accrual was added to the balance.
    Credited,
    /// The order was final already; nothing changed.
    AlreadyFinal,
}

/// Registers a user and opens their account, in one transaction.
#[instrument(skip_all)]
pub async fn create_user(
    db: &Db,
    login: &str,
    password_hash: &str,
) -> Result<UserId, AccountError> {
    let txn = db.write().await?;
    let inserted = users::Entity::insert(users::ActiveModel {
        login: Set(login.to_owned()),
        password_hash: Set(password_hash.to_owned()),
        created_at: Set(now()),
        ..Default::default()
    })
    .on_conflict_do_nothing_on([users::Column::Login])
    .exec(&txn)
    .await?;
    let user = match inserted {
        TryInsertResult::Inserted(result) => UserId(result.last_insert_id),
        TryInsertResult::Conflicted | TryInsertResult::Empty => {
            return Err(AccountError::LoginTaken)
        }
    };
    accounts::Entity::insert(accounts::ActiveModel {
        user_id: Set(user.0),
        current: Set(0),
        withdrawn: Set(0),
        version: Set(0),
    })
    .exec_without_returning(&txn)
    .await?;
    events::record(
        &txn,
        EventKind::UserRegistered,
        Some(user),
        &Registered { login },
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

/// Finds a user by login.
#[instrument(skip_all)]
pub async fn find_user(db: &Db, login: &str) -> Result<Option<Credentials>, AccountError> {
    let found = users::Entity::find()
        .filter(users::Column::Login.eq(login))
        .one(&db.reader)
        .await?;
    Ok(found.map(|user| Credentials {
        user: UserId(user.id),
        password_hash: user.password_hash,
    }))
}

/// Stores `new` as the user's password hash if it is still `old`; `false` when it was
/// changed meanwhile (another login upgraded it first).
#[instrument(skip_all, fields(user = %user))]
pub async fn replace_password_hash(
    db: &Db,
    user: UserId,
    old: &str,
    new: &str,
) -> Result<bool, AccountError> {
    let updated = users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(new))
        .filter(users::Column::Id.eq(user.0))
        .filter(users::Column::PasswordHash.eq(old))
        .exec(&db.writer)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// After losing a version race, the committed balance, read after a short random pause so
/// that instances racing for one balance do not meet again in step.
pub(crate) async fn reload_after_race(db: &Db, user: UserId) -> Result<AccountState, AccountError> {
    let pause = rand::random_range(0..=RACE_PAUSE_MAX_MICROS);
    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
    load(&db.writer, user).await
}

/// Reads a user's balance.
pub async fn load(db: &impl ConnectionTrait, user: UserId) -> Result<AccountState, AccountError> {
    let row = accounts::Entity::find_by_id(user.0)
        .one(db)
        .await?
        .ok_or(AccountError::UnknownUser)?;
    Ok(AccountState {
        current: stored_points(row.current)?,
        withdrawn: stored_points(row.withdrawn)?,
        version: row.version,
    })
}

/// Charges `sum` for `order`, or recognises a replay of the same withdrawal.
///
/// Precedence follows the API: a number already spent answers before funds are checked.
#[instrument(skip_all, fields(user = %user, order = %order))]
pub async fn withdraw(
    db: &Db,
    mut state: AccountState,
    user: UserId,
    order: &OrderNumber,
    sum: Points,
) -> Result<(WithdrawOutcome, AccountState), AccountError> {
    for _ in 0..VERSION_RETRIES {
        let Some(current) = state.current.checked_sub(sum) else {
            return match earlier_withdrawal(&db.reader, user, order, sum).await? {
                Some(outcome) => Ok((outcome, state)),
                None => Err(AccountError::InsufficientFunds),
            };
        };
        let withdrawn = state
            .withdrawn
            .checked_add(sum)
            .ok_or(AccountError::Overflow)?;
        let txn = db.write().await?;
        let inserted = withdrawals::Entity::insert(withdrawals::ActiveModel {
            order_number: Set(order.to_string()),
            user_id: Set(user.0),
            sum: Set(sum.cents()),
            processed_at: Set(now()),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([withdrawals::Column::OrderNumber])
        .exec_without_returning(&txn)
        .await?;
        if !matches!(inserted, TryInsertResult::Inserted(1)) {
            txn.rollback().await?;
            return match earlier_withdrawal(&db.writer, user, order, sum).await? {
                Some(outcome) => Ok((outcome, state)),
                // Spent and refunded in between cannot happen; treat as a conflict.
                None => Err(AccountError::OrderAlreadyUsed),
            };
        }
        let change = Change {
            current,
            withdrawn,
            delta: -sum.cents(),
            cause: CAUSE_WITHDRAWAL,
        };
        match post(&txn, user, state, change, order.as_str()).await? {
            Some(next) => {
                let withdrawn = Withdrawn {
                    order,
                    sum,
                    balance: next.current,
                    withdrawn: next.withdrawn,
                };
                events::record(&txn, EventKind::PointsWithdrawn, Some(user), &withdrawn).await?;
                txn.commit().await?;
                return Ok((WithdrawOutcome::Charged, next));
            }
            None => {
                txn.rollback().await?;
                state = reload_after_race(db, user).await?;
            }
        }
    }
    Err(AccountError::Contended)
}

/// Charges a run of withdrawals queued for one account: decided in order against
/// `state` and committed in one transaction, with exactly the answers, ledger entries,
/// events and version they would have had one by one. Returns one answer each and the
/// state to keep (`None` when the last one failed: the next decision reloads).
#[instrument(skip_all, fields(user = %user, withdrawals = run.len()))]
pub async fn withdraw_all(
    db: &Db,
    state: AccountState,
    user: UserId,
    run: &[Withdraw],
) -> (
    Vec<Result<WithdrawOutcome, AccountError>>,
    Option<AccountState>,
) {
    if run.len() > 1 {
        match withdraw_together(db, state, user, run).await {
            Ok(Some((answers, next))) => return (answers, Some(next)),
            // A number was spent before, another instance wrote this balance, or a
            // statement failed: nothing was written; one at a time, each with its own
            // retries, decides exactly.
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "a group of withdrawals failed; one at a time"),
        }
    }
    let mut answers = Vec::with_capacity(run.len());
    let mut now = Some(state);
    for msg in run {
        let state = match now {
            Some(state) => state,
            None => match load(&db.reader, user).await {
                Ok(state) => state,
                Err(error) => {
                    answers.push(Err(error));
                    continue;
                }
            },
        };
        match withdraw(db, state, user, &msg.order, msg.sum).await {
            Ok((outcome, next)) => {
                answers.push(Ok(outcome));
                now = Some(next);
            }
            Err(error) => {
                answers.push(Err(error));
                now = None;
            }
        }
    }
    (answers, now)
}

/// [`withdraw_all`]'s one transaction: `None`, with nothing written, when one of the
/// numbers was spent before or the balance changed since `state` was read.
async fn withdraw_together(
    db: &Db,
    state: AccountState,
    user: UserId,
    run: &[Withdraw],
) -> Result<Option<(Vec<Result<WithdrawOutcome, AccountError>>, AccountState)>, AccountError> {
    // Numbers are taken to be new, as they nearly always are: a number spent before makes
    // the insert below come up short, and the run is decided one at a time instead. A
    // number spent earlier in the run is this user's.
    let mut spent: HashMap<&str, Points> = HashMap::new();
    let mut next = state;
    let mut answers = Vec::with_capacity(run.len());
    let mut charged = Vec::new();
    for msg in run {
        let answer = match spent.get(msg.order.as_str()) {
            Some(&sum) if sum == msg.sum => Ok(WithdrawOutcome::Replayed),
            Some(_) => Err(AccountError::OrderAlreadyUsed),
            None => match (
                next.current.checked_sub(msg.sum),
                next.withdrawn.checked_add(msg.sum),
            ) {
                // Precedence as one by one: a number spent before answers before funds.
                (None, _) => {
                    match earlier_withdrawal(&db.reader, user, &msg.order, msg.sum).await {
                        Ok(Some(outcome)) => Ok(outcome),
                        Ok(None) => Err(AccountError::InsufficientFunds),
                        Err(refusal) => Err(refusal),
                    }
                }
                (Some(_), None) => Err(AccountError::Overflow),
                (Some(current), Some(withdrawn)) => {
                    next = AccountState {
                        current,
                        withdrawn,
                        version: next.version + 1,
                    };
                    spent.insert(msg.order.as_str(), msg.sum);
                    charged.push((msg, next));
                    Ok(WithdrawOutcome::Charged)
                }
            },
        };
        answers.push(answer);
    }
    if charged.is_empty() {
        return Ok(Some((answers, state)));
    }
    let at = now();
    let txn = db.write().await?;
    let inserted =
        withdrawals::Entity::insert_many(charged.iter().map(|(msg, _)| withdrawals::ActiveModel {
            order_number: Set(msg.order.to_string()),
            user_id: Set(user.0),
            sum: Set(msg.sum.cents()),
            processed_at: Set(at),
            ..Default::default()
        }))
        .on_conflict_do_nothing_on([withdrawals::Column::OrderNumber])
        .exec_without_returning(&txn)
        .await?;
    if !matches!(inserted, TryInsertResult::Inserted(n) if n == charged.len() as u64) {
        txn.rollback().await?;
        return Ok(None);
    }
    let entries = charged.iter().map(|(msg, after)| Entry {
        delta: -msg.sum.cents(),
        cause: CAUSE_WITHDRAWAL,
        reference: msg.order.as_str(),
        balance: after.current,
    });
    let events = charged
        .iter()
        .map(|(msg, after)| {
            let withdrawn = Withdrawn {
                order: &msg.order,
                sum: msg.sum,
                balance: after.current,
                withdrawn: after.withdrawn,
            };
            NewEvent::new(EventKind::PointsWithdrawn, Some(user), &withdrawn)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !post_entries(&txn, user, state, entries, next).await? {
        txn.rollback().await?;
        return Ok(None);
    }
    events::record_all(&txn, events).await?;
    txn.commit().await?;
    Ok(Some((answers, next)))
}

/// Marks `order` PROCESSED with `amount` and adds `amount` to the balance, in one
/// transaction; an order that is final already is left alone.
#[instrument(skip_all, fields(user = %user, order = %order))]
pub async fn credit(
    db: &Db,
    mut state: AccountState,
    user: UserId,
    order: &OrderNumber,
    amount: Points,
) -> Result<(CreditOutcome, AccountState), AccountError> {
    for _ in 0..VERSION_RETRIES {
        let current = state
            .current
            .checked_add(amount)
            .ok_or(AccountError::Overflow)?;
        let txn = db.write().await?;
        if !order_store::mark_processed(&txn, user, order, amount).await? {
            txn.rollback().await?;
            // Whoever made it final may have changed the balance too (another instance
            // on the same database): hand back the committed balance, not our cache.
            let fresh = load(&db.reader, user).await?;
            return Ok((CreditOutcome::AlreadyFinal, fresh));
        }
        let status = NewEvent::new(
            EventKind::OrderStatusChanged,
            Some(user),
            &order_store::StatusChanged {
                order,
                status: OrderStatus::Processed.as_str(),
                accrual: (!amount.is_zero()).then_some(amount),
            },
        )?;
        if amount.is_zero() {
            events::record_all(&txn, [status]).await?;
            txn.commit().await?;
            db.order_lists.changed(user);
            return Ok((CreditOutcome::Credited, state));
        }
        let change = Change {
            current,
            withdrawn: state.withdrawn,
            delta: amount.cents(),
            cause: CAUSE_ACCRUAL,
        };
        match post(&txn, user, state, change, order.as_str()).await? {
            Some(next) => {
                let credited = Credited {
                    order,
                    amount,
                    balance: next.current,
                };
                let credited = NewEvent::new(EventKind::PointsCredited, Some(user), &credited)?;
                events::record_all(&txn, [status, credited]).await?;
                txn.commit().await?;
                db.order_lists.changed(user);
                return Ok((CreditOutcome::Credited, next));
            }
            None => {
                txn.rollback().await?;
                state = reload_after_race(db, user).await?;
            }
        }
    }
    Err(AccountError::Contended)
}

/// A user's withdrawals, oldest first.
#[instrument(skip_all, fields(user = %user))]
pub async fn list_withdrawals(db: &Db, user: UserId) -> Result<Vec<WithdrawalView>, AccountError> {
    withdrawals::Entity::find()
        .filter(withdrawals::Column::UserId.eq(user.0))
        .order_by_asc(withdrawals::Column::Id)
        .all(&db.reader)
        .await?
        .into_iter()
        .map(|row| {
            Ok(WithdrawalView {
                order: OrderNumber::from_trusted(row.order_number),
                sum: stored_points(row.sum)?,
                processed_at: row.processed_at,
            })
        })
        .collect()
}

/// One entry of a statement: a change of the balance and the balance right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The ledger entry's id; pages go `before` it.
    pub id: i64,
    /// When.
    pub at: chrono::DateTime<chrono::FixedOffset>,
    /// `accrual`, `withdrawal`, …
    pub kind: String,
    /// The signed change.
    pub amount: Cents,
    /// The balance right after it.
    pub balance: Cents,
    /// The order number, redemption id or coupon code it is about.
    pub reference: String,
}

/// A user's ledger, newest first: at most `limit` entries older than `before`, if given.
/// Read straight from the ledger along its `(user_id, id)` index.
#[instrument(skip_all, fields(user = %user))]
pub async fn history(
    db: &Db,
    user: UserId,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<HistoryEntry>, AccountError> {
    let mut query = ledger::Entity::find().filter(ledger::Column::UserId.eq(user.0));
    if let Some(before) = before {
        query = query.filter(ledger::Column::Id.lt(before));
    }
    query
        .order_by_desc(ledger::Column::Id)
        .limit(limit)
        .all(&db.reader)
        .await?
        .into_iter()
        .map(|row| {
            let balance = row
                .balance_after
                .ok_or_else(|| DbErr::Custom(format!("ledger entry {} has no balance", row.id)))?;
            Ok(HistoryEntry {
                id: row.id,
                at: row.created_at,
                kind: row.cause,
                amount: Cents(row.delta),
                balance: Cents(balance),
                reference: row.reference,
            })
        })
        .collect()
}

/// Classifies an existing withdrawal of `order`: the same one again, or a different use.
async fn earlier_withdrawal(
    db: &impl ConnectionTrait,
    user: UserId,
    order: &OrderNumber,
    sum: Points,
) -> Result<Option<WithdrawOutcome>, AccountError> {
    let earlier = withdrawals::Entity::find()
        .filter(withdrawals::Column::OrderNumber.eq(order.as_str()))
        .one(db)
        .await?;
    match earlier {
        None => Ok(None),
        Some(row) if row.user_id == user.0 && row.sum == sum.cents() => {
            Ok(Some(WithdrawOutcome::Replayed))
        }
        Some(_) => Err(AccountError::OrderAlreadyUsed),
    }
}

/// `user.registered`'s data.
#[derive(Serialize)]
struct Registered<'a> {
    login: &'a str,
}

/// `points.withdrawn`'s data.
#[derive(Serialize)]
struct Withdrawn<'a> {
    order: &'a OrderNumber,
    sum: Points,
    balance: Points,
    withdrawn: Points,
}

/// `points.credited`'s data.
#[derive(Serialize)]
struct Credited<'a> {
    order: &'a OrderNumber,
    amount: Points,
    balance: Points,
}

/// One change of a balance: the new totals and the ledger entry that explains them.
pub(crate) struct Change {
    pub(crate) current: Points,
    pub(crate) withdrawn: Points,
    pub(crate) delta: i64,
    pub(crate) cause: &'static str,
}

/// Appends the ledger row and writes the new balance inside `txn`, if the balance row is
/// still at `state.version`. `None` when someone wrote first: the caller rolls back,
/// reloads and decides again.
pub(crate) async fn post(
    txn: &DatabaseTransaction,
    user: UserId,
    state: AccountState,
    change: Change,
    reference: &str,
) -> Result<Option<AccountState>, DbErr> {
    let next = AccountState {
        current: change.current,
        withdrawn: change.withdrawn,
        version: state.version + 1,
    };
    let entry = Entry {
        delta: change.delta,
        cause: change.cause,
        reference,
        balance: change.current,
    };
    Ok(post_entries(txn, user, state, [entry], next)
        .await?
        .then_some(next))
}

/// One ledger entry: a signed change and the balance right after it.
struct Entry<'a> {
    delta: i64,
    cause: &'static str,
    reference: &'a str,
    balance: Points,
}

/// Appends `entries` to the ledger and writes `next` as the balance inside `txn`, if the
/// balance row is still at `state.version`; `false`, with the caller to roll back, when
/// someone wrote first.
async fn post_entries<'a>(
    txn: &DatabaseTransaction,
    user: UserId,
    state: AccountState,
    entries: impl IntoIterator<Item = Entry<'a>>,
    next: AccountState,
) -> Result<bool, DbErr> {
    let at = now();
    ledger::Entity::insert_many(entries.into_iter().map(|entry| ledger::ActiveModel {
        user_id: Set(user.0),
        delta: Set(entry.delta),
        cause: Set(entry.cause.to_owned()),
        reference: Set(entry.reference.to_owned()),
        created_at: Set(at),
        balance_after: Set(Some(entry.balance.cents())),
        ..Default::default()
    }))
    .exec_without_returning(txn)
    .await?;
    let result = accounts::Entity::update_many()
        .col_expr(accounts::Column::Current, Expr::value(next.current.cents()))
        .col_expr(
            accounts::Column::Withdrawn,
            Expr::value(next.withdrawn.cents()),
        )
        .col_expr(accounts::Column::Version, Expr::value(next.version))
        .filter(accounts::Column::UserId.eq(user.0))
        .filter(accounts::Column::Version.eq(state.version))
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}
