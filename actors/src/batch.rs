//! Group commit, shared by the actors that write: what waits in an actor's queue while
//! its previous commit is in flight is decided in arrival order and committed together,
//! in one transaction, and every caller is answered only after that commit.
//!
//! Nothing waits on purpose: a lone request is committed at once, as before; under load
//! the requests that arrive during one commit make up the next one, so a hot owner pays
//! one round of statements and one durable commit per batch instead of per request.
//!
//! An actor keeps a [`GroupCommit`] and implements [`Batched`]; its handlers call
//! [`submit`] and await the answer.

use actix::prelude::*;
use tokio::sync::oneshot;

/// The most operations one commit takes; the rest wait for the next.
const MAX_BATCH: usize = 256;

/// An actor whose writes are committed in groups.
pub trait Batched: Actor<Context = Context<Self>> {
    /// One write waiting to be decided.
    type Op: 'static;
    /// What its caller is answered.
    type Out: 'static;

    /// The actor's queue.
    fn queue(&mut self) -> &mut GroupCommit<Self::Op, Self::Out>;

    /// Decides `ops` in order and commits them; one answer per operation, in the same
    /// order, each exactly what that operation would have been answered alone. Runs
    /// while the actor goes on receiving messages; the next batch starts when it ends.
    fn commit(&mut self, ops: Vec<Self::Op>) -> ResponseActFuture<Self, Vec<Self::Out>>;
}

/// The writes waiting for an actor's next commit, and whether one is in flight.
pub struct GroupCommit<Op, Out> {
    waiting: Vec<(Op, oneshot::Sender<Out>)>,
    busy: bool,
}

impl<Op, Out> Default for GroupCommit<Op, Out> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            busy: false,
        }
    }
}

impl<Op, Out> GroupCommit<Op, Out> {
    /// Whether a commit is in flight or writes are waiting.
    pub fn busy(&self) -> bool {
        self.busy || !self.waiting.is_empty()
    }
}

/// Queues `op` with `actor` and starts a commit unless one is in flight. The receiver
/// gets the answer after the commit that holds `op`; it is closed if the actor stopped
/// first.
pub fn submit<A: Batched>(
    actor: &mut A,
    ctx: &mut Context<A>,
    op: A::Op,
) -> oneshot::Receiver<A::Out> {
    let (answer, answered) = oneshot::channel();
    actor.queue().waiting.push((op, answer));
    start(actor, ctx);
    answered
}

/// Commits what waits, if nothing is in flight; on the end of that commit answers its
/// callers and looks again.
fn start<A: Batched>(actor: &mut A, ctx: &mut Context<A>) {
    let queue = actor.queue();
    if queue.busy || queue.waiting.is_empty() {
        return;
    }
    queue.busy = true;
    let take = queue.waiting.len().min(MAX_BATCH);
    let (ops, answers): (Vec<_>, Vec<_>) = queue.waiting.drain(..take).unzip();
    let commit = actor.commit(ops).map(|outs, actor: &mut A, ctx| {
        for (answer, out) in answers.into_iter().zip(outs) {
            // A caller that went away (its client hung up) needs no answer.
            let _ = answer.send(out);
        }
        actor.queue().busy = false;
        start(actor, ctx);
    });
    ctx.spawn(commit);
}
