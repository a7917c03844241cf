//! Domain values that parse rather than validate later: user ids, order numbers, points.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The id of a registered user (the primary key of `users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a text is not an order number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrderNumberError {
    /// Nothing but whitespace.
    #[error("the order number is empty")]
    Empty,
    /// Something other than the digits 0-9.
    #[error("an order number has digits only")]
    NotDigits,
    /// Longer than [`OrderNumber::MAX_LEN`].
    #[error("the order number is longer than {} digits", OrderNumber::MAX_LEN)]
    TooLong,
    /// The digits fail the Luhn checksum.
    #[error("the order number fails the Luhn check")]
    Luhn,
}

/// An order number: ASCII digits that pass the Luhn check, kept as text so that leading
/// zeros and numbers longer than any integer survive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderNumber(String);

impl Serialize for OrderNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl OrderNumber {
    /// The longest number accepted. Numbers are unique-indexed; a bound keeps every
    /// index entry well inside PostgreSQL's B-tree row limit.
    pub const MAX_LEN: usize = 1024;

    /// Parses an order number, ignoring surrounding whitespace.
    pub fn parse(text: &str) -> Result<Self, OrderNumberError> {
        let digits = text.trim();
        if digits.is_empty() {
            return Err(OrderNumberError::Empty);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OrderNumberError::NotDigits);
        }
        if digits.len() > Self::MAX_LEN {
            return Err(OrderNumberError::TooLong);
        }
        if !luhn_valid(digits) {
            return Err(OrderNumberError::Luhn);
        }
        Ok(Self(digits.to_owned()))
    }

    /// Wraps a number read back from our own storage, where only parsed numbers are written.
    pub fn from_trusted(number: String) -> Self {
        Self(number)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Luhn checksum over a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Why an amount of points is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PointsError {
    /// Zero or less where a positive sum is needed.
    #[error("the sum must be greater than zero")]
    NotPositive,
    /// Below zero.
    #[error("points cannot be negative")]
    Negative,
    /// More than two decimal places.
    #[error("the sum has more than 2 decimal places")]
    TooPrecise,
    /// Larger than the ledger can hold.
    #[error("the sum is too large")]
    TooLarge,
    /// Not a JSON number we can read exactly.
    #[error("not a number")]
    NotANumber,
}

/// An exact, non-negative amount of points with at most two decimal places.
///
/// Stored as integer hundredths; rendered in JSON as a number without superfluous zeros
/// (`42`, `500.5`, `729.98`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Points(i64);

impl Points {
    /// No points.
    pub const ZERO: Points = Points(0);

    /// Points from integer hundredths, as stored in the database.
    pub fn from_cents(cents: i64) -> Result<Self, PointsError> {
        if cents < 0 {
            return Err(PointsError::Negative);
        }
        Ok(Self(cents))
    }

    /// Parses a sum to spend: greater than zero, at most two decimal places.
    pub fn parse_sum(value: Decimal) -> Result<Self, PointsError> {
        if value <= Decimal::ZERO {
            return Err(PointsError::NotPositive);
        }
        if value.normalize().scale() > 2 {
            return Err(PointsError::TooPrecise);
        }
        Self::from_exact(value)
    }

    /// An accrual as the text of a JSON number, rounded half-up to two decimals. Half-up
    /// to two places depends on the third decimal only, so digits after it are dropped
    /// before parsing: any number of decimals is handled exactly.
    pub fn parse_accrual(text: &str) -> Result<Self, PointsError> {
        let text = text.trim();
        let shortened = match text.split_once('.') {
            Some((whole, fraction)) if !text.contains(['e', 'E']) => {
                let kept: String = fraction.chars().take(3).collect();
                format!("{whole}.{kept}")
            }
            _ => text.to_owned(),
        };
        let value = JsonDecimal::parse(&shortened).ok_or(PointsError::NotANumber)?;
        Self::from_accrual(value.0)
    }

    /// An accrual as the accrual system reports it: rounded half-up to two decimals.
    pub fn from_accrual(value: Decimal) -> Result<Self, PointsError> {
        if value < Decimal::ZERO {
            return Err(PointsError::Negative);
        }
        Self::from_exact(value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
    }

    fn from_exact(value: Decimal) -> Result<Self, PointsError> {
        let cents = value
            .checked_mul(Decimal::ONE_HUNDRED)
            .ok_or(PointsError::TooLarge)?;
        i64::try_from(cents)
            .map(Self)
            .map_err(|_| PointsError::TooLarge)
    }

    /// Integer hundredths, as stored in the database.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// The exact decimal value.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2).normalize()
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or `None` past the ledger's range.
    pub fn checked_add(self, other: Points) -> Option<Points> {
        self.0.checked_add(other.0).map(Points)
    }

    /// `self × times`, or `None` past the ledger's range.
    pub fn checked_mul(self, times: u32) -> Option<Points> {
        self.0.checked_mul(i64::from(times)).map(Points)
    }

    /// `self - other`, or `None` when that would be negative.
    pub fn checked_sub(self, other: Points) -> Option<Points> {
        self.0
            .checked_sub(other.0)
            .filter(|cents| *cents >= 0)
            .map(Points)
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_decimal().fmt(f)
    }
}

impl Serialize for Points {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A raw value makes serde_json write the decimal's own text: a number, never a
        // float's approximation and never a string.
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl utoipa::PartialSchema for Points {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_schema(
            "Points: a JSON number, 0 or more, exact to 2 decimals (never a string)",
            Some(0),
            "500.5",
        )
    }
}

impl utoipa::ToSchema for Points {}

/// The schema of an exact decimal written as a JSON number.
fn decimal_schema(
    description: &str,
    minimum: Option<isize>,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let example: serde_json::Value = serde_json::from_str(example).unwrap_or_default();
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .description(Some(description))
        .minimum(minimum)
        .examples([example])
        .into()
}

/// A signed amount of hundredths as the statement and the figures show it: `-751`,
/// `500.5`, `0`. Written as a JSON number from its decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cents(pub i64);

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Decimal::new(self.0, 2).normalize().fmt(f)
    }
}

impl utoipa::PartialSchema for Cents {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        decimal_schema(
            "Points, signed: a JSON number exact to 2 decimals (never a string)",
            None,
            "-751",
        )
    }
}

impl utoipa::ToSchema for Cents {}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// A JSON number read exactly from its text, never through `f64`; strings, booleans and
/// everything else are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonDecimal(pub Decimal);

impl JsonDecimal {
    /// Reads the text of one JSON number.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let first = text.as_bytes().first()?;
        if !(first.is_ascii_digit() || *first == b'-') {
            return None;
        }
        let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
        // Beyond 28 significant digits a Decimal would round: refuse rather than guess.
        if mantissa.bytes().filter(u8::is_ascii_digit).count() > 28 {
            return None;
        }
        let value = if mantissa.len() < text.len() {
            Decimal::from_scientific(text).ok()?
        } else {
            Decimal::from_str_exact(text).ok()?
        };
        Some(Self(value))
    }
}

impl<'de> Deserialize<'de> for JsonDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        Self::parse(raw.get()).ok_or_else(|| D::Error::custom("expected a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_known_numbers_and_rejects_typos() {
        assert!(luhn_valid("79927398713"));
        assert!(luhn_valid("2377225624"));
        assert!(luhn_valid("0"));
        assert!(!luhn_valid("79927398710"));
    }

    #[test]
    fn order_number_trims_and_classifies() {
        assert_eq!(
            OrderNumber::parse(" 79927398713\n").map(|n| n.to_string()),
            Ok("79927398713".to_owned())
        );
        assert_eq!(OrderNumber::parse("  "), Err(OrderNumberError::Empty));
        assert_eq!(OrderNumber::parse("12a4"), Err(OrderNumberError::NotDigits));
        assert_eq!(OrderNumber::parse("-18"), Err(OrderNumberError::NotDigits));
        assert_eq!(
            OrderNumber::parse("79927398710"),
            Err(OrderNumberError::Luhn)
        );
    }

    #[test]
    fn points_render_without_superfluous_zeros() {
        let render = |cents| serde_json::to_string(&Points::from_cents(cents).ok()).ok();
        assert_eq!(render(4200).as_deref(), Some("42"));
        assert_eq!(render(50050).as_deref(), Some("500.5"));
        assert_eq!(render(72998).as_deref(), Some("729.98"));
        assert_eq!(render(0).as_deref(), Some("0"));
    }

    #[test]
    fn sums_are_exact_positive_and_two_decimal() {
        let sum = |text: &str| JsonDecimal::parse(text).map(|d| Points::parse_sum(d.0));
        assert_eq!(sum("751"), Some(Points::from_cents(75100)));
        assert_eq!(sum("0.1"), Some(Points::from_cents(10)));
        assert_eq!(sum("1.10"), Some(Points::from_cents(110)));
        assert_eq!(sum("1e2"), Some(Points::from_cents(10000)));
        assert_eq!(sum("0"), Some(Err(PointsError::NotPositive)));
        assert_eq!(sum("-5"), Some(Err(PointsError::NotPositive)));
        assert_eq!(sum("1.001"), Some(Err(PointsError::TooPrecise)));
        assert_eq!(sum("1e30"), None);
        assert_eq!(sum("0.0100000000000000000000000000001"), None);
        assert_eq!(sum("\"10\""), None);
    }

    #[test]
    fn accruals_round_half_up() {
        let accrual = |text: &str| {
            JsonDecimal::parse(text)
                .map(|d| Points::from_accrual(d.0))
                .and_then(Result::ok)
                .map(Points::cents)
        };
        assert_eq!(accrual("0.125"), Some(13));
        assert_eq!(accrual("729.975"), Some(72998));
        assert_eq!(accrual("0.004"), Some(0));
        let text = |t: &str| Points::parse_accrual(t).ok().map(Points::cents);
        assert_eq!(text("0.004999999999999999999999999999"), Some(0));
        assert_eq!(text("729.97500000000000000000000000001"), Some(72998));
        assert_eq!(text("7.29975e2"), Some(72998));
        assert_eq!(text("500"), Some(50000));
        assert_eq!(text("\"5\""), None);
        assert_eq!(text("-1"), None);
    }
}
