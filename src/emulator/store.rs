//! The in-memory registry of reward rules and orders, and how an order's status moves.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::rules::{outcome, Good, Outcome, Reward};
use gophermart_actors::domain::{OrderNumber, Points};

/// An order's status as the accrual system reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The first half of the processing delay.
    Registered,
    /// The second half of the processing delay.
    Processing,
    /// Final, with points or without.
    Processed,
    /// Final, nothing credited.
    Invalid,
}

/// The answer to `GET /api/orders/{number}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderView {
    /// The order number.
    pub order: String,
    /// Where processing is.
    pub status: Status,
    /// Present only once processed, and only when greater than zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accrual: Option<Points>,
}

/// A registered order: its outcome is fixed at registration (later rules don't apply),
/// and only revealed once the processing delay has passed.
#[derive(Debug, Clone, Copy)]
struct Order {
    registered_at: Instant,
    outcome: Outcome,
}

/// The most rules the emulator keeps.
pub const MAX_RULES: usize = 10_000;

/// Why a rule was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRefusal {
    /// The match is registered already.
    Taken,
    /// [`MAX_RULES`] are registered already.
    Full,
}

/// Rules and orders, each behind its own lock; no code path holds both. The rules are a
/// shared snapshot, replaced whole on each registration, so that an order is calculated
/// outside any lock.
#[derive(Debug)]
pub struct Store {
    processing_delay: Duration,
    rules: Mutex<Arc<HashMap<String, Reward>>>,
    orders: Mutex<HashMap<OrderNumber, Order>>,
}

/// Locks a mutex; nothing panics while these locks are held, so poisoned data is sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// An empty store whose orders take `processing_delay` to finish.
    pub fn new(processing_delay: Duration) -> Self {
        Self {
            processing_delay,
            rules: Mutex::default(),
            orders: Mutex::default(),
        }
    }

    /// Registers a rule, unless its match is taken or the store is full.
    pub fn add_rule(&self, pattern: String, reward: Reward) -> Result<(), RuleRefusal> {
        let mut rules = lock(&self.rules);
        if rules.contains_key(&pattern) {
            return Err(RuleRefusal::Taken);
        }
        if rules.len() >= MAX_RULES {
            return Err(RuleRefusal::Full);
        }
        // Copies the map only while an order calculation still holds the old snapshot.
        Arc::make_mut(&mut rules).insert(pattern, reward);
        Ok(())
    }

    /// Registers an order, calculating it against the rules known now; `false` when the
    /// number is already registered.
    pub fn add_order(&self, number: OrderNumber, goods: &[Good]) -> bool {
        let rules = Arc::clone(&lock(&self.rules));
        let outcome = outcome(&rules, goods);
        match lock(&self.orders).entry(number) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(Order {
                    registered_at: Instant::now(),
                    outcome,
                });
                true
            }
        }
    }

    /// The order as seen now, or `None` when unknown.
    pub fn view(&self, number: &OrderNumber) -> Option<OrderView> {
        let order = *lock(&self.orders).get(number)?;
        let elapsed = order.registered_at.elapsed();
        let (status, accrual) = if elapsed < self.processing_delay / 2 {
            (Status::Registered, None)
        } else if elapsed < self.processing_delay {
            (Status::Processing, None)
        } else {
            match order.outcome {
                Outcome::Processed(accrual) => (Status::Processed, accrual),
                Outcome::Invalid => (Status::Invalid, None),
            }
        };
        Some(OrderView {
            order: number.to_string(),
            status,
            accrual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::rules::RewardType;
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn the_rules_are_capped_and_a_match_is_registered_once() {
        let store = Store::new(Duration::ZERO);
        let reward = Reward {
            amount: Decimal::ONE,
            kind: RewardType::Points,
        };
        assert_eq!(store.add_rule("a".into(), reward), Ok(()));
        assert_eq!(store.add_rule("a".into(), reward), Err(RuleRefusal::Taken));
        for i in 1..MAX_RULES {
            assert_eq!(store.add_rule(format!("rule {i}"), reward), Ok(()));
        }
        assert_eq!(
            store.add_rule("one too many".into(), reward),
            Err(RuleRefusal::Full)
        );
    }
}
