//! Orders in storage: acceptance (the unique index decides who owns a number), the
//! owner's list, status changes and the durable polling schedule.

use chrono::{DateTime, FixedOffset};
use gophermart_entities::orders;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Statement, TryInsertResult,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::instrument;

use crate::db::{now, stored_points, Db};
use crate::domain::{OrderNumber, Points, UserId};
use crate::events::store::{self as events, EventKind, NewEvent};
use crate::leadership::ORDERS_CHANNEL;

/// Where an order stands with the accrual system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Uploaded; the accrual system does not know it yet.
    New,
    /// The accrual system is calculating.
    Processing,
    /// Refused by the accrual system. Final.
    Invalid,
    /// Calculated and credited. Final.
    Processed,
}

impl OrderStatus {
    /// The name stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Invalid => "INVALID",
            OrderStatus::Processed => "PROCESSED",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "NEW" => Some(OrderStatus::New),
            "PROCESSING" => Some(OrderStatus::Processing),
            "INVALID" => Some(OrderStatus::Invalid),
            "PROCESSED" => Some(OrderStatus::Processed),
            _ => None,
        }
    }
}

/// One order as listed to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    /// The number.
    pub number: OrderNumber,
    /// Where it stands.
    pub status: OrderStatus,
    /// Points credited, when there were any.
    pub accrual: Option<Points>,
    /// When it was uploaded.
    pub uploaded_at: DateTime<FixedOffset>,
}

/// An order still to be asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOrder {
    /// The number.
    pub number: OrderNumber,
    /// Its owner, who is credited.
    pub user: UserId,
    /// Its status now (NEW or PROCESSING).
    pub status: OrderStatus,
    /// How many answers were recorded so far.
    pub attempts: u32,
    /// When to ask next.
    pub next_poll_at: DateTime<FixedOffset>,
    /// When it was uploaded.
    pub uploaded_at: DateTime<FixedOffset>,
}

/// Who an uploaded number belongs to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// New: it is this user's now and waits for the accrual system.
    Accepted(PendingOrder),
    /// This user uploaded it before.
    AlreadyYours,
    /// Another user owns it.
    TakenByOther,
}

/// `order.uploaded`'s data.
#[derive(Serialize)]
struct Uploaded<'a> {
    order: &'a OrderNumber,
}

/// `order.status_changed`'s data.
#[derive(Serialize)]
pub struct StatusChanged<'a> {
    /// The order.
    pub order: &'a OrderNumber,
    /// Its new status.
    pub status: &'static str,
    /// Points credited, when it became PROCESSED with some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accrual: Option<Points>,
}

/// Accepts `number` for `user` unless someone uploaded it first, with its
/// `order.uploaded` event in the same commit.
#[instrument(skip_all, fields(user = %user, order = %number))]
pub async fn accept(db: &Db, user: UserId, number: &OrderNumber) -> Result<Acceptance, DbErr> {
    let uploaded_at = now();
    let event = NewEvent::new(
        EventKind::OrderUploaded,
        Some(user),
        &Uploaded { order: number },
    )?;
    let inserted = match db.writer.get_database_backend() {
        // One statement, so one round trip: the event is inserted only with the order.
        DbBackend::Postgres => {
            // With other instances on the database, the commit also tells the leader
            // (`NOTIFY` is delivered on commit, and only then).
            let sql = if db.shared {
                "WITH inserted AS (
                     INSERT INTO orders (number, user_id, status, uploaded_at, attempts, next_poll_at)
                     VALUES ($1, $2, $3, $4, 0, $4)
                     ON CONFLICT (number) DO NOTHING
                     RETURNING id),
                 recorded AS (
                     INSERT INTO events (id, kind, user_id, data, at)
                     SELECT $5, $6, $2, $7, $8 FROM inserted)
                 SELECT pg_notify('gophermart_orders', $2::text || ':' || $1) FROM inserted"
            } else {
                "WITH inserted AS (
                     INSERT INTO orders (number, user_id, status, uploaded_at, attempts, next_poll_at)
                     VALUES ($1, $2, $3, $4, 0, $4)
                     ON CONFLICT (number) DO NOTHING
                     RETURNING id)
                 INSERT INTO events (id, kind, user_id, data, at)
                 SELECT $5, $6, $2, $7, $8 FROM inserted"
            };
            db.writer
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [
                        number.as_str().into(),
                        user.0.into(),
                        OrderStatus::New.as_str().into(),
                        uploaded_at.into(),
                        event.id.into(),
                        event.kind.as_str().into(),
                        event.data.into(),
                        event.at.into(),
                    ],
                ))
                .await?
                .rows_affected()
                == 1
        }
        _ => {
            let txn = db.write().await?;
            let inserted = orders::Entity::insert(new_order(user, number, uploaded_at))
                .on_conflict_do_nothing_on([orders::Column::Number])
                .exec_without_returning(&txn)
                .await?;
            if matches!(inserted, TryInsertResult::Inserted(1)) {
                events::record_all(&txn, [event]).await?;
                txn.commit().await?;
                true
            } else {
                txn.rollback().await?;
                false
            }
        }
    };
    if inserted {
        db.order_lists.changed(user);
        return Ok(Acceptance::Accepted(PendingOrder {
            number: number.clone(),
            user,
            status: OrderStatus::New,
            attempts: 0,
            next_poll_at: uploaded_at,
            uploaded_at,
        }));
    }
    let owner = orders::Entity::find()
        .filter(orders::Column::Number.eq(number.as_str()))
        .one(&db.reader)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("order {number}")))?;
    Ok(if owner.user_id == user.0 {
        Acceptance::AlreadyYours
    } else {
        Acceptance::TakenByOther
    })
}

/// Accepts a group of uploads queued for the registry, decided in arrival order and
/// committed in one transaction (with their `order.uploaded` events): exactly the
/// answers they would have had one by one. One answer each.
#[instrument(skip_all, fields(uploads = uploads.len()))]
pub async fn accept_all(
    db: &Db,
    uploads: &[(UserId, OrderNumber)],
) -> Vec<Result<Acceptance, DbErr>> {
    if uploads.len() > 1 {
        match accept_together(db, uploads).await {
            Ok(Some(answers)) => return answers.into_iter().map(Ok).collect(),
            // A number was uploaded before, or a statement failed: nothing was
            // written; one at a time decides exactly.
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "a group of uploads failed; one at a time"),
        }
    }
    let mut answers = Vec::with_capacity(uploads.len());
    for (user, number) in uploads {
        answers.push(accept(db, *user, number).await);
    }
    answers
}

/// [`accept_all`]'s one transaction: `None`, with nothing written, when one of the
/// numbers was uploaded before.
async fn accept_together(
    db: &Db,
    uploads: &[(UserId, OrderNumber)],
) -> Result<Option<Vec<Acceptance>>, DbErr> {
    // Numbers are taken to be new, as they nearly always are: one uploaded before makes
    // the insert below come up short, and the group is decided one at a time instead. A
    // number uploaded earlier in the group belongs to that upload's user.
    let mut owners: HashMap<&str, UserId> = HashMap::new();
    let uploaded_at = now();
    let mut new = Vec::new();
    let mut answers = Vec::with_capacity(uploads.len());
    for (user, number) in uploads {
        let answer = match owners.get(number.as_str()) {
            Some(owner) if owner == user => Acceptance::AlreadyYours,
            Some(_) => Acceptance::TakenByOther,
            None => {
                owners.insert(number.as_str(), *user);
                new.push((*user, number));
                Acceptance::Accepted(PendingOrder {
                    number: number.clone(),
                    user: *user,
                    status: OrderStatus::New,
                    attempts: 0,
                    next_poll_at: uploaded_at,
                    uploaded_at,
                })
            }
        };
        answers.push(answer);
    }
    if new.is_empty() {
        return Ok(Some(answers));
    }
    let events = new
        .iter()
        .map(|(user, number)| {
            NewEvent::new(
                EventKind::OrderUploaded,
                Some(*user),
                &Uploaded { order: number },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let txn = db.write().await?;
    let rows = new
        .iter()
        .map(|(user, number)| new_order(*user, number, uploaded_at));
    let inserted = orders::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([orders::Column::Number])
        .exec_without_returning(&txn)
        .await?;
    if !matches!(inserted, TryInsertResult::Inserted(n) if n == new.len() as u64) {
        txn.rollback().await?;
        return Ok(None);
    }
    events::record_all(&txn, events).await?;
    if db.shared {
        // Delivered on commit, and only then, as with a single upload.
        let notices: Vec<String> = (1..=new.len())
            .map(|k| format!("pg_notify('{ORDERS_CHANNEL}', ${k})"))
            .collect();
        let payloads = new
            .iter()
            .map(|(user, number)| format!("{}:{}", user.0, number.as_str()).into());
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT {}", notices.join(", ")),
            payloads,
        ))
        .await?;
    }
    txn.commit().await?;
    for (user, _) in &new {
        db.order_lists.changed(*user);
    }
    Ok(Some(answers))
}

/// The row of a number just uploaded: NEW, to be asked about at once.
fn new_order(user: UserId, number: &OrderNumber, at: DateTime<FixedOffset>) -> orders::ActiveModel {
    orders::ActiveModel {
        number: Set(number.to_string()),
        user_id: Set(user.0),
        status: Set(OrderStatus::New.as_str().to_owned()),
        accrual: Set(None),
        uploaded_at: Set(at),
        attempts: Set(0),
        next_poll_at: Set(Some(at)),
        ..Default::default()
    }
}

/// A user's orders, oldest upload first: the kept list when alone on the database,
/// else (or when none is kept) read along the `user_id` index.
#[instrument(skip_all, fields(user = %user))]
pub async fn list(db: &Db, user: UserId) -> Result<Arc<Vec<OrderView>>, DbErr> {
    if db.shared {
        return Ok(Arc::new(read_list(db, user).await?));
    }
    match db.order_lists.get(user) {
        Ok(list) => Ok(list),
        Err(reading) => {
            let list = Arc::new(read_list(db, user).await?);
            db.order_lists.keep(user, reading, list.clone());
            Ok(list)
        }
    }
}

async fn read_list(db: &Db, user: UserId) -> Result<Vec<OrderView>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::UserId.eq(user.0))
        .order_by_asc(orders::Column::Id)
        .all(&db.reader)
        .await?
        .into_iter()
        .map(|row| {
            let status = parse_status(&row.status)?;
            let accrual = match row.accrual {
                Some(cents) if cents > 0 => Some(stored_points(cents)?),
                _ => None,
            };
            Ok(OrderView {
                number: OrderNumber::from_trusted(row.number),
                status,
                accrual,
                uploaded_at: row.uploaded_at,
            })
        })
        .collect()
}

/// Sets a non-final `order` PROCESSED with `amount`, inside the caller's transaction.
/// Returns false, changing nothing, when the order is final already (or not the user's).
pub async fn mark_processed(
    txn: &impl ConnectionTrait,
    user: UserId,
    order: &OrderNumber,
    amount: Points,
) -> Result<bool, DbErr> {
    finalize(txn, order, Some(user), OrderStatus::Processed, Some(amount)).await
}

/// Sets a non-final `order` of `user` INVALID, with its event. Returns false when it was
/// final already.
pub async fn mark_invalid(db: &Db, user: UserId, order: &OrderNumber) -> Result<bool, DbErr> {
    let txn = db.write().await?;
    if !finalize(&txn, order, Some(user), OrderStatus::Invalid, None).await? {
        txn.rollback().await?;
        return Ok(false);
    }
    let changed = StatusChanged {
        order,
        status: OrderStatus::Invalid.as_str(),
        accrual: None,
    };
    events::record(&txn, EventKind::OrderStatusChanged, Some(user), &changed).await?;
    txn.commit().await?;
    db.order_lists.changed(user);
    Ok(true)
}

/// Makes a non-final order final: the status, its accrual, off the schedule. Only a
/// non-final row matches, so a second answer changes nothing.
async fn finalize(
    conn: &impl ConnectionTrait,
    order: &OrderNumber,
    owner: Option<UserId>,
    status: OrderStatus,
    accrual: Option<Points>,
) -> Result<bool, DbErr> {
    let mut update = orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            orders::Column::Attempts,
            Expr::col(orders::Column::Attempts).add(1),
        )
        .col_expr(
            orders::Column::NextPollAt,
            Expr::value(Option::<DateTime<FixedOffset>>::None),
        )
        .col_expr(orders::Column::FinalAt, Expr::value(Some(now())))
        .filter(orders::Column::Number.eq(order.as_str()))
        .filter(orders::Column::NextPollAt.is_not_null());
    if let Some(points) = accrual {
        update = update.col_expr(orders::Column::Accrual, Expr::value(points.cents()));
    }
    if let Some(user) = owner {
        update = update.filter(orders::Column::UserId.eq(user.0));
    }
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// Records a non-final answer: the status it implies, the attempt and the next time to ask.
/// A final order is left alone. A status other than `was` is an `order.status_changed`,
/// written in the same commit.
pub async fn reschedule(
    db: &Db,
    user: UserId,
    order: &OrderNumber,
    (was, status): (OrderStatus, OrderStatus),
    attempts: u32,
    next_poll_at: DateTime<FixedOffset>,
) -> Result<(), DbErr> {
    if was != status {
        let txn = db.write().await?;
        let changed = orders::Entity::update_many()
            .col_expr(orders::Column::Status, Expr::value(status.as_str()))
            .filter(orders::Column::Number.eq(order.as_str()))
            .filter(orders::Column::Status.ne(status.as_str()))
            .filter(orders::Column::NextPollAt.is_not_null())
            .exec(&txn)
            .await?;
        if changed.rows_affected == 1 {
            let changed = StatusChanged {
                order,
                status: status.as_str(),
                accrual: None,
            };
            events::record(&txn, EventKind::OrderStatusChanged, Some(user), &changed).await?;
        }
        txn.commit().await?;
        db.order_lists.changed(user);
    }
    orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            orders::Column::Attempts,
            Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
        )
        .col_expr(orders::Column::NextPollAt, Expr::value(Some(next_poll_at)))
        .filter(orders::Column::Number.eq(order.as_str()))
        .filter(orders::Column::NextPollAt.is_not_null())
        .exec(&db.writer)
        .await?;
    Ok(())
}

/// Every order still to be asked about, soonest first: the schedule to resume at start.
pub async fn pending(db: &Db) -> Result<Vec<PendingOrder>, DbErr> {
    orders::Entity::find()
        .filter(orders::Column::NextPollAt.is_not_null())
        .order_by_asc(orders::Column::NextPollAt)
        .all(&db.reader)
        .await?
        .into_iter()
        .filter_map(|row| {
            let next_poll_at = row.next_poll_at?;
            Some(parse_status(&row.status).map(|status| PendingOrder {
                number: OrderNumber::from_trusted(row.number),
                user: UserId(row.user_id),
                status,
                attempts: u32::try_from(row.attempts).unwrap_or(0),
                next_poll_at,
                uploaded_at: row.uploaded_at,
            }))
        })
        .collect()
}

fn parse_status(text: &str) -> Result<OrderStatus, DbErr> {
    OrderStatus::parse(text).ok_or_else(|| DbErr::Custom(format!("unknown stored status {text}")))
}
