//! The guardian of the accrual supervisor: the pipeline must never stop, so a supervisor
//! that died is replaced by a new one, which resumes from the schedule in the database.
//! It runs while this instance leads; an instance that stops leading retires it, and the
//! new leader's supervisor resumes from the same schedule.

use std::time::Duration;

use actix::prelude::*;

use super::messages::{Drain, GetPipelineState, OrderAccepted, PipelineState, Retire};
use super::supervisor::AccrualSupervisor;
use crate::leadership::Leadership;

/// How often the guardian looks at its supervisor and at the leadership.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Starts the accrual supervisor and replaces it if it ever stops. Uploads and the stop
/// signal reach the supervisor through it.
pub struct AccrualGuardian {
    make: Box<dyn Fn() -> AccrualSupervisor>,
    leadership: Leadership,
    supervisor: Option<Addr<AccrualSupervisor>>,
    draining: bool,
}

impl AccrualGuardian {
    /// A guardian starting supervisors built by `make` while `leadership` says so.
    pub fn new(leadership: Leadership, make: impl Fn() -> AccrualSupervisor + 'static) -> Self {
        let mut guardian = Self {
            make: Box::new(make),
            leadership,
            supervisor: None,
            draining: false,
        };
        guardian.ensure_alive();
        guardian
    }

    /// Starts a supervisor when leading and none runs (or it died); retires it when
    /// no longer leading.
    fn ensure_alive(&mut self) {
        if self.draining {
            return;
        }
        if !self.leadership.is_leader() {
            if let Some(supervisor) = self.supervisor.take() {
                tracing::warn!("no longer leading: the accrual supervisor retires");
                supervisor.do_send(Retire);
            }
            return;
        }
        match &self.supervisor {
            Some(supervisor) if supervisor.connected() => {}
            Some(_) => {
                tracing::error!(
                    "accrual supervisor stopped; starting a new one from the stored schedule"
                );
                self.supervisor = Some((self.make)().start());
            }
            None => self.supervisor = Some((self.make)().start()),
        }
    }
}

impl Actor for AccrualGuardian {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(CHECK_EVERY, |guardian, _| guardian.ensure_alive());
    }
}

impl Handler<OrderAccepted> for AccrualGuardian {
    type Result = ();

    fn handle(&mut self, msg: OrderAccepted, _: &mut Self::Context) {
        // A new supervisor loads the order from the database, where it is committed; a
        // follower leaves it to the leader, who hears of it from the database.
        self.ensure_alive();
        if let Some(supervisor) = &self.supervisor {
            supervisor.do_send(msg);
        }
    }
}

impl Handler<Drain> for AccrualGuardian {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, _: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let supervisor = self.supervisor.clone();
        Box::pin(async move {
            if let Some(supervisor) = supervisor {
                let _ = supervisor.send(msg).await;
            }
        })
    }
}

impl Handler<GetPipelineState> for AccrualGuardian {
    type Result = ResponseFuture<PipelineState>;

    fn handle(&mut self, msg: GetPipelineState, _: &mut Self::Context) -> Self::Result {
        let supervisor = self.supervisor.clone();
        // A supervisor being replaced has nothing in flight and everything still to ask;
        // its successor reports the backlog once it has loaded. A follower has none.
        Box::pin(async move {
            match supervisor {
                Some(supervisor) => supervisor.send(msg).await.unwrap_or_default(),
                None => PipelineState::default(),
            }
        })
    }
}
