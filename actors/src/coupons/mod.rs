//! Coupon campaigns: the registry creates a campaign and its whole pool of codes before
//! answering, and starts a `CampaignActor` per campaign on demand — the write path of
//! its pool: claims one at a time, the shop's checkout.

mod campaign;
pub mod store;

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

pub use campaign::{CampaignActor, Checkout, Claimed, CouponError};
pub use store::{Campaign, CampaignKind, CouponView, NewCampaign, Redemption};

use crate::account::Accounts;
use crate::db::Db;
use crate::domain::{Points, UserId};
use crate::error::CampaignError;

/// Creates a campaign with every code of its pool.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Campaign, CampaignError>")]
pub struct CreateCampaign {
    /// The campaign, validated by the caller.
    pub campaign: NewCampaign,
}

/// One campaign with its counters.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Campaign>, CampaignError>")]
pub struct GetCampaign {
    /// Its id.
    pub id: String,
}

/// Campaigns started, not ended, with codes left.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Campaign>, CampaignError>")]
pub struct ListOpenCampaigns;

/// A shopper claims a code of a campaign.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Claimed, CouponError>")]
pub struct Claim {
    /// The campaign's id.
    pub campaign: String,
    /// Who claims.
    pub user: UserId,
    /// The shopper's `Idempotency-Key` and the request's digest, if a key was sent.
    pub key: Option<(String, String)>,
}

/// The shop asks what a code takes off an order (`order: None`), or uses it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Checkout, CouponError>")]
pub struct UseCoupon {
    /// The code, upper case.
    pub code: String,
    /// The order it pays towards; `None` for a preview.
    pub order: Option<String>,
    /// The order's amount.
    pub amount: Points,
    /// Why the order or the amount cannot be used, judged after the code is found.
    pub invalid: Option<String>,
}

/// A shopper's coupons, oldest claim first.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<CouponView>, CouponError>")]
pub struct ListCoupons {
    /// Whose.
    pub user: UserId,
}

/// How long a campaign's actor lives without messages.
const CAMPAIGN_IDLE: Duration = Duration::from_secs(300);

/// The way in to campaigns, and the only map of live campaign actors.
pub struct CampaignRegistry {
    db: Db,
    accounts: Accounts,
    live: HashMap<String, Addr<CampaignActor>>,
}

impl CampaignRegistry {
    /// A registry over `db`, charging through `accounts`.
    pub fn new(db: Db, accounts: Accounts) -> Self {
        Self {
            db,
            accounts,
            live: HashMap::new(),
        }
    }

    fn actor(&mut self, campaign: &str) -> Addr<CampaignActor> {
        if let Some(addr) = self.live.get(campaign).filter(|addr| addr.connected()) {
            return addr.clone();
        }
        let addr = CampaignActor::new(
            campaign.to_owned(),
            self.db.clone(),
            self.accounts.clone(),
            CAMPAIGN_IDLE,
        )
        .start();
        self.live.insert(campaign.to_owned(), addr.clone());
        addr
    }
}

impl Actor for CampaignRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(60), |registry, _| {
            registry.live.retain(|_, addr| addr.connected());
        });
    }
}

impl Handler<Claim> for CampaignRegistry {
    type Result = ResponseFuture<Result<Claimed, CouponError>>;

    fn handle(&mut self, msg: Claim, _: &mut Self::Context) -> Self::Result {
        let actor = self.actor(&msg.campaign);
        Box::pin(async move { actor.send(msg).await? })
    }
}

impl Handler<UseCoupon> for CampaignRegistry {
    type Result = ResponseFuture<Result<Checkout, CouponError>>;

    fn handle(&mut self, msg: UseCoupon, ctx: &mut Self::Context) -> Self::Result {
        let (db, registry) = (self.db.clone(), ctx.address());
        Box::pin(async move {
            let campaign = store::campaign_of(&db, &msg.code)
                .await?
                .ok_or(CouponError::NotFound)?;
            let actor = registry.send(ActorFor { campaign }).await?;
            actor.send(msg).await?
        })
    }
}

impl Handler<ListCoupons> for CampaignRegistry {
    type Result = ResponseFuture<Result<Vec<CouponView>, CouponError>>;

    fn handle(&mut self, msg: ListCoupons, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(store::held_by(&db, msg.user.0).await?) })
    }
}

/// The actor of a campaign, started when needed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Addr<CampaignActor>")]
struct ActorFor {
    campaign: String,
}

impl Handler<ActorFor> for CampaignRegistry {
    type Result = MessageResult<ActorFor>;

    fn handle(&mut self, msg: ActorFor, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.actor(&msg.campaign))
    }
}

impl Handler<CreateCampaign> for CampaignRegistry {
    type Result = ResponseFuture<Result<Campaign, CampaignError>>;

    fn handle(&mut self, msg: CreateCampaign, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { store::create(&db, msg.campaign).await })
    }
}

impl Handler<GetCampaign> for CampaignRegistry {
    type Result = ResponseFuture<Result<Option<Campaign>, CampaignError>>;

    fn handle(&mut self, msg: GetCampaign, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(store::get(&db, &msg.id).await?) })
    }
}

impl Handler<ListOpenCampaigns> for CampaignRegistry {
    type Result = ResponseFuture<Result<Vec<Campaign>, CampaignError>>;

    fn handle(&mut self, _: ListOpenCampaigns, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(store::open(&db).await?) })
    }
}
