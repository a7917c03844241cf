//! Reward rules and the accrual they give an order's goods.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use gophermart_actors::domain::{JsonDecimal, Points};

/// How a rule's reward applies to a matching good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RewardType {
    /// `%`: a percentage of the good's price.
    #[serde(rename = "%")]
    Percent,
    /// `pt`: fixed points per matching good.
    #[serde(rename = "pt")]
    Points,
}

/// What a rule gives each good whose description contains its match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reward {
    /// Greater than zero: a percentage or a number of points.
    pub amount: Decimal,
    /// How `amount` applies.
    pub kind: RewardType,
}

impl Reward {
    /// The reward for one good of this price, exact; `None` past `Decimal`'s range.
    fn for_price(self, price: Decimal) -> Option<Decimal> {
        match self.kind {
            RewardType::Percent => price
                .checked_mul(self.amount)?
                .checked_div(Decimal::ONE_HUNDRED),
            RewardType::Points => Some(self.amount),
        }
    }
}

/// The body of `POST /api/goods`.
#[derive(Debug, Deserialize)]
pub struct RuleBody {
    /// The text a good's description must contain.
    #[serde(rename = "match")]
    pub pattern: String,
    /// The reward, read exactly.
    pub reward: JsonDecimal,
    /// `%` or `pt`; anything else fails deserialization.
    pub reward_type: RewardType,
}

impl RuleBody {
    /// The match and its reward, or why the rule is refused.
    pub fn validate(self) -> Result<(String, Reward), &'static str> {
        if self.pattern.is_empty() {
            return Err("the match is empty");
        }
        if self.reward.0 <= Decimal::ZERO {
            return Err("the reward must be greater than zero");
        }
        let reward = Reward {
            amount: self.reward.0,
            kind: self.reward_type,
        };
        Ok((self.pattern, reward))
    }
}

/// One good of an order.
#[derive(Debug, Clone, Deserialize)]
pub struct Good {
    /// Rules match against this text.
    pub description: String,
    /// The price, read exactly.
    pub price: JsonDecimal,
}

/// The body of `POST /api/orders`.
#[derive(Debug, Deserialize)]
pub struct OrderBody {
    /// The order number, checked with Luhn by the handler.
    pub order: String,
    /// The goods bought; an empty list makes the order `INVALID`.
    pub goods: Vec<Good>,
}

/// Where an order ends once processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Processed; the points when there are any.
    Processed(Option<Points>),
    /// Nothing to calculate, or a total beyond what points can hold.
    Invalid,
}

/// The outcome of an order: every matching rule summed exactly over all goods, then
/// rounded half-up to two decimals once, so that per-good rounding never adds up.
pub fn outcome(rules: &HashMap<String, Reward>, goods: &[Good]) -> Outcome {
    if goods.is_empty() {
        return Outcome::Invalid;
    }
    let total = goods
        .iter()
        .flat_map(|good| {
            rules
                .iter()
                .filter(|(pattern, _)| good.description.contains(pattern.as_str()))
                .map(|(_, reward)| reward.for_price(good.price.0))
        })
        .try_fold(Decimal::ZERO, |sum, reward| sum.checked_add(reward?));
    match total.map(Points::from_accrual) {
        Some(Ok(points)) => Outcome::Processed((!points.is_zero()).then_some(points)),
        _ => Outcome::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(text: &str) -> Decimal {
        JsonDecimal::parse(text).map(|d| d.0).unwrap_or_default()
    }

    fn good(description: &str, price: &str) -> Good {
        Good {
            description: description.to_owned(),
            price: JsonDecimal(decimal(price)),
        }
    }

    fn rules(list: &[(&str, &str, RewardType)]) -> HashMap<String, Reward> {
        list.iter()
            .map(|(pattern, amount, kind)| {
                let reward = Reward {
                    amount: decimal(amount),
                    kind: *kind,
                };
                ((*pattern).to_owned(), reward)
            })
            .collect()
    }

    #[test]
    fn rounding_happens_once_per_order_not_per_good() {
        // 0.004 twice: rounded per good it would be 0, summed first it is 0.01.
        let rules = rules(&[("x", "1", RewardType::Percent)]);
        let goods = [good("x", "0.4"), good("x", "0.4")];
        assert_eq!(
            outcome(&rules, &goods),
            Outcome::Processed(Points::from_cents(1).ok())
        );
    }

    #[test]
    fn a_total_rounding_to_zero_gives_no_points() {
        let rules = rules(&[("x", "1", RewardType::Percent)]);
        assert_eq!(
            outcome(&rules, &[good("x", "0.4")]),
            Outcome::Processed(None)
        );
    }

    #[test]
    fn an_overflowing_total_is_invalid() {
        let rules = rules(&[("x", "1000000000000000000", RewardType::Points)]);
        assert_eq!(outcome(&rules, &[good("x", "1")]), Outcome::Invalid);
    }
}
