//! The entities under short names.

pub use super::accounts::Entity as Accounts;
pub use super::events::Entity as Events;
pub use super::ledger::Entity as Ledger;
pub use super::orders::Entity as Orders;
pub use super::rewards::Entity as Rewards;
pub use super::settings::Entity as Settings;
pub use super::users::Entity as Users;
pub use super::withdrawals::Entity as Withdrawals;
