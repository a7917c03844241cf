//! The guardian of the accrual supervisor: the pipeline must never stop, so a supervisor
//! that died is replaced by a new one, which resumes from the schedule in the database.

use std::time::Duration;

use actix::prelude::*;

use super::messages::{Drain, GetPipelineState, OrderAccepted, PipelineState};
use super::supervisor::AccrualSupervisor;

/// How often the guardian looks at its supervisor.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts the accrual supervisor and replaces it if it ever stops. Uploads and the stop
/// signal reach the supervisor through it.
pub struct AccrualGuardian {
    make: Box<dyn Fn() -> AccrualSupervisor>,
    supervisor: Addr<AccrualSupervisor>,
    draining: bool,
}

impl AccrualGuardian {
    /// A guardian starting supervisors built by `make`.
    pub fn new(make: impl Fn() -> AccrualSupervisor + 'static) -> Self {
        let supervisor = make().start();
        Self {
            make: Box::new(make),
            supervisor,
            draining: false,
        }
    }

    fn ensure_alive(&mut self) {
        if !self.draining && !self.supervisor.connected() {
            tracing::error!(
                "accrual supervisor stopped; starting a new one from the stored schedule"
            );
            self.supervisor = (self.make)().start();
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
        // A new supervisor loads the order from the database, where it is committed.
        self.ensure_alive();
        self.supervisor.do_send(msg);
    }
}

impl Handler<Drain> for AccrualGuardian {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, _: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let supervisor = self.supervisor.clone();
        Box::pin(async move {
            let _ = supervisor.send(msg).await;
        })
    }
}

impl Handler<GetPipelineState> for AccrualGuardian {
    type Result = ResponseFuture<PipelineState>;

    fn handle(&mut self, msg: GetPipelineState, _: &mut Self::Context) -> Self::Result {
        let supervisor = self.supervisor.clone();
        // A supervisor being replaced has nothing in flight and everything still to ask;
        // its successor reports the backlog once it has loaded.
        Box::pin(async move { supervisor.send(msg).await.unwrap_or_default() })
    }
}
