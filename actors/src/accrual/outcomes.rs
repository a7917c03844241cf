//! Counts of what the accrual system answered, by outcome, for the operators' metrics.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::client::Answer;

/// One counter per outcome of a question to the accrual system. Cheap to clone: the
/// counters are shared.
#[derive(Clone)]
pub struct Outcomes {
    processed: IntCounter,
    invalid: IntCounter,
    registered: IntCounter,
    processing: IntCounter,
    unknown: IntCounter,
    rate_limited: IntCounter,
    error: IntCounter,
}

impl Outcomes {
    /// The counters of `gophermart_accrual_requests_total{outcome}`, registered in
    /// `registry`; every outcome is present from the start, at zero.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let family = IntCounterVec::new(
            Opts::new(
                "gophermart_accrual_requests_total",
                "Questions to the accrual system, by what it answered",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(family.clone()))?;
        let outcome = |name: &str| family.with_label_values(&[name]);
        Ok(Self {
            processed: outcome("processed"),
            invalid: outcome("invalid"),
            registered: outcome("registered"),
            processing: outcome("processing"),
            unknown: outcome("unknown"),
            rate_limited: outcome("rate_limited"),
            error: outcome("error"),
        })
    }

    /// Counts one answer.
    pub fn record(&self, answer: &Answer) {
        let counter = match answer {
            Answer::Processed(_) => &self.processed,
            Answer::Invalid => &self.invalid,
            Answer::Registered => &self.registered,
            Answer::Processing => &self.processing,
            Answer::Unknown => &self.unknown,
            Answer::TooManyRequests { .. } => &self.rate_limited,
            Answer::Failed(_) => &self.error,
        };
        counter.inc();
    }
}
