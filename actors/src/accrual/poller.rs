//! A poller: one question to the accrual system at a time, honouring pauses.

use std::time::Instant;

use actix::prelude::*;

use super::client::{AccrualClient, Answer};
use super::messages::{Pause, Poll};

/// Asks the accrual system about one order at a time and answers with what it said.
/// Holds nothing that must survive a crash: the supervisor replaces a lost poller and
/// asks again.
pub struct AccrualPoller {
    client: AccrualClient,
    paused_until: Option<Instant>,
}

impl AccrualPoller {
    /// A poller using the shared client.
    pub fn new(client: AccrualClient) -> Self {
        Self {
            client,
            paused_until: None,
        }
    }
}

impl Actor for AccrualPoller {
    type Context = Context<Self>;
}

impl Handler<Poll> for AccrualPoller {
    type Result = AtomicResponse<Self, Answer>;

    fn handle(&mut self, msg: Poll, _: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        let paused_until = self.paused_until.filter(|until| *until > Instant::now());
        AtomicResponse::new(Box::pin(
            async move {
                if let Some(until) = paused_until {
                    tokio::time::sleep_until(until.into()).await;
                }
                client.ask(&msg.order).await
            }
            .into_actor(self),
        ))
    }
}

impl Handler<Pause> for AccrualPoller {
    type Result = ();

    fn handle(&mut self, msg: Pause, _: &mut Self::Context) {
        self.paused_until = self.paused_until.max(Some(msg.until));
    }
}
