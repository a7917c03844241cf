//! Coupon campaigns: the registry creates a campaign and its whole pool of codes before
//! answering, and answers what the operator and shoppers ask about campaigns.

pub mod store;

use actix::prelude::*;

pub use store::{Campaign, CampaignKind, NewCampaign};

use crate::db::Db;
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

/// The way in to campaigns.
pub struct CampaignRegistry {
    db: Db,
}

impl CampaignRegistry {
    /// A registry over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Actor for CampaignRegistry {
    type Context = Context<Self>;
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
