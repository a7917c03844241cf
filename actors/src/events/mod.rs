//! Business events: the outbox written in the commit of each change, the sequencer that
//! numbers committed rows, the feed, and the relay to NATS JetStream.

mod relay;
pub mod store;

pub use relay::{CountUnpublished, EventRelay, ListEvents, RelaySettings, STREAM};
pub use store::{EventKind, EventView};
