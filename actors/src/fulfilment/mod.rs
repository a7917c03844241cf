//! Rewards shipped to the door: redemptions in storage, and the pipeline that delivers
//! each shipment request to the warehouse's fulfilment service and follows the parcel.

pub mod client;
mod dispatcher;
pub mod store;

pub use client::FulfilmentClient;
pub use dispatcher::{
    CountUnacknowledged, DispatchSettings, FulfilmentDispatcher, ShipmentRequested,
};
