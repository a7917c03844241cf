//! The rewards catalogue: the `Catalogue` actor is the write path of rewards — creation
//! and changes by the operator, stock moved by deltas — each change with its
//! `reward.changed` event in the same commit.

use actix::prelude::*;
use gophermart_entities::rewards;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, TryInsertResult,
};
use serde::Serialize;

use crate::db::{now, stored_points, Db};
use crate::domain::Points;
use crate::error::RewardError;
use crate::events::store::{self as events, EventKind};

/// The most units a reward may have in stock.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A reward as the operator and shoppers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reward {
    /// The operator's identifier.
    pub sku: String,
    /// What it is.
    pub title: String,
    /// Points per unit.
    pub price: Points,
    /// Units left.
    pub stock: i64,
    /// Offered to shoppers.
    pub active: bool,
}

impl TryFrom<rewards::Model> for Reward {
    type Error = DbErr;

    fn try_from(row: rewards::Model) -> Result<Self, DbErr> {
        Ok(Self {
            price: stored_points(row.price)?,
            sku: row.sku,
            title: row.title,
            stock: row.stock,
            active: row.active,
        })
    }
}

/// Adds a reward to the catalogue, active.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Reward, RewardError>")]
pub struct CreateReward {
    /// Its identifier, validated by the caller.
    pub sku: String,
    /// Its title, validated by the caller.
    pub title: String,
    /// Points per unit.
    pub price: Points,
    /// Units in stock, 0 to [`MAX_STOCK`].
    pub stock: i64,
}

/// Changes a reward: the fields given, stock by a delta (never below zero).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Reward, RewardError>")]
pub struct ChangeReward {
    /// Which.
    pub sku: String,
    /// A new title.
    pub title: Option<String>,
    /// A new price.
    pub price: Option<Points>,
    /// Units to add (or, negative, to remove).
    pub stock_delta: Option<i64>,
    /// Offered or withdrawn.
    pub active: Option<bool>,
}

/// Lists the catalogue by sku: every reward, or only the active ones.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Reward>, RewardError>")]
pub struct ListRewards {
    /// Only rewards offered to shoppers.
    pub active_only: bool,
}

/// The write path of the catalogue. Stock is changed with conditional updates, so the
/// database stays the arbiter whatever else writes it.
pub struct Catalogue {
    db: Db,
}

impl Catalogue {
    /// The catalogue over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Actor for Catalogue {
    type Context = Context<Self>;
}

impl Handler<CreateReward> for Catalogue {
    type Result = ResponseFuture<Result<Reward, RewardError>>;

    fn handle(&mut self, msg: CreateReward, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { create(&db, msg).await })
    }
}

impl Handler<ChangeReward> for Catalogue {
    type Result = ResponseFuture<Result<Reward, RewardError>>;

    fn handle(&mut self, msg: ChangeReward, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { change(&db, msg).await })
    }
}

impl Handler<ListRewards> for Catalogue {
    type Result = ResponseFuture<Result<Vec<Reward>, RewardError>>;

    fn handle(&mut self, msg: ListRewards, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(list(&db, msg.active_only).await?) })
    }
}

async fn create(db: &Db, msg: CreateReward) -> Result<Reward, RewardError> {
    let at = now();
    let txn = db.write().await?;
    let inserted = rewards::Entity::insert(rewards::ActiveModel {
        sku: Set(msg.sku.clone()),
        title: Set(msg.title),
        price: Set(msg.price.cents()),
        stock: Set(msg.stock),
        active: Set(true),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .on_conflict_do_nothing_on([rewards::Column::Sku])
    .exec_without_returning(&txn)
    .await?;
    if !matches!(inserted, TryInsertResult::Inserted(1)) {
        txn.rollback().await?;
        return Err(RewardError::SkuTaken);
    }
    let reward = read(&txn, &msg.sku).await?.ok_or(RewardError::NotFound)?;
    events::record(&txn, EventKind::RewardChanged, None, &reward).await?;
    txn.commit().await?;
    Ok(reward)
}

async fn change(db: &Db, msg: ChangeReward) -> Result<Reward, RewardError> {
    let txn = db.write().await?;
    let mut update = rewards::Entity::update_many()
        .col_expr(rewards::Column::UpdatedAt, Expr::value(now()))
        .filter(rewards::Column::Sku.eq(msg.sku.as_str()));
    if let Some(title) = msg.title {
        update = update.col_expr(rewards::Column::Title, Expr::value(title));
    }
    if let Some(price) = msg.price {
        update = update.col_expr(rewards::Column::Price, Expr::value(price.cents()));
    }
    if let Some(active) = msg.active {
        update = update.col_expr(rewards::Column::Active, Expr::value(active));
    }
    if let Some(delta) = msg.stock_delta {
        // Relative, and only when the result stays in range: a restock never overwrites
        // what sales took meanwhile, and a removal never takes stock below zero.
        let after = Expr::col(rewards::Column::Stock).add(delta);
        update = update
            .col_expr(rewards::Column::Stock, after.clone())
            .filter(after.clone().gte(0))
            .filter(after.lte(MAX_STOCK));
    }
    if update.exec(&txn).await?.rows_affected == 0 {
        let exists = read(&txn, &msg.sku).await?.is_some();
        txn.rollback().await?;
        return Err(if exists {
            RewardError::StockOutOfRange
        } else {
            RewardError::NotFound
        });
    }
    let reward = read(&txn, &msg.sku).await?.ok_or(RewardError::NotFound)?;
    events::record(&txn, EventKind::RewardChanged, None, &reward).await?;
    txn.commit().await?;
    Ok(reward)
}

async fn read(conn: &impl sea_orm::ConnectionTrait, sku: &str) -> Result<Option<Reward>, DbErr> {
    rewards::Entity::find_by_id(sku)
        .one(conn)
        .await?
        .map(Reward::try_from)
        .transpose()
}

async fn list(db: &Db, active_only: bool) -> Result<Vec<Reward>, DbErr> {
    let mut query = rewards::Entity::find().order_by_asc(rewards::Column::Sku);
    if active_only {
        query = query.filter(rewards::Column::Active.eq(true));
    }
    query
        .all(&db.reader)
        .await?
        .into_iter()
        .map(Reward::try_from)
        .collect()
}
