//! The owners' order lists, kept in memory between reads: a list is read from the
//! database once and served from here until one of its orders changes.
//!
//! Every writer of an order says so ([`OrderLists::changed`]) after its commit and before
//! anyone is answered, so a list here holds every change acknowledged before the read
//! began. A read that raced with a change does not keep what it read. With other
//! instances on the database nothing is kept: they change orders without telling us.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::store::OrderView;
use crate::domain::UserId;

/// How many lists are kept at most; past that, all are dropped and read again on demand.
const CAPACITY: usize = 65_536;

/// Cached order lists; cheap to clone, shared by every writer of orders.
#[derive(Debug, Clone, Default)]
pub struct OrderLists(Arc<Mutex<Lists>>);

#[derive(Debug, Default)]
struct Lists {
    /// Ticks once per change.
    clock: u64,
    /// When the lists were last all dropped.
    cleared_at: u64,
    /// Per user: the list, when kept, and the tick of the user's last change.
    users: HashMap<UserId, Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    list: Option<Arc<Vec<OrderView>>>,
    changed_at: u64,
}

/// A read from the database in progress: when it began.
#[derive(Debug, Clone, Copy)]
pub struct Reading(u64);

impl OrderLists {
    fn lock(&self) -> MutexGuard<'_, Lists> {
        // The map holds no invariant a panicking holder could break halfway.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The user's kept list, or the mark of a read that may keep what it reads.
    pub fn get(&self, user: UserId) -> Result<Arc<Vec<OrderView>>, Reading> {
        let lists = self.lock();
        match lists.users.get(&user).and_then(|slot| slot.list.clone()) {
            Some(list) => Ok(list),
            None => Err(Reading(lists.clock)),
        }
    }

    /// Keeps `list`, read from the database during `reading`, unless the user's orders
    /// changed (or the lists were dropped) since it began.
    pub fn keep(&self, user: UserId, reading: Reading, list: Arc<Vec<OrderView>>) {
        let mut lists = self.lock();
        if lists.cleared_at > reading.0 {
            return;
        }
        if lists.users.len() >= CAPACITY && !lists.users.contains_key(&user) {
            lists.cleared_at = lists.clock;
            lists.users.clear();
            return;
        }
        let slot = lists.users.entry(user).or_default();
        if slot.changed_at <= reading.0 {
            slot.list = Some(list);
        }
    }

    /// Tells that one of `user`'s orders changed (committed): the kept list goes, and a
    /// read in progress will not keep what it read.
    pub fn changed(&self, user: UserId) {
        let mut lists = self.lock();
        lists.clock += 1;
        let now = lists.clock;
        if lists.users.len() >= CAPACITY && !lists.users.contains_key(&user) {
            lists.cleared_at = now;
            lists.users.clear();
        }
        let slot = lists.users.entry(user).or_default();
        slot.list = None;
        slot.changed_at = now;
    }
}
