//! Query-string parameters, read strictly: unknown or repeated names, numbers out of range
//! and malformed dates are `400` with a reason.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use actix_web::HttpRequest;
use chrono::NaiveDate;

use crate::error::ApiError;

/// The parameters of a request.
pub struct Params(HashMap<String, String>);

impl Params {
    /// Reads the query string, allowing only the names in `allowed`, each at most once.
    pub fn read(req: &HttpRequest, allowed: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
            .map_err(|_| ApiError::BadRequest("unreadable query string".into()))?;
        let mut params = HashMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let mut name = name;
                name.truncate(64);
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {name:?}; expected one of: {}",
                    allowed.join(", ")
                )));
            }
            if params.insert(name.clone(), value).is_some() {
                return Err(ApiError::BadRequest(format!("{name} is given twice")));
            }
        }
        Ok(Self(params))
    }

    /// An integer in `range`, or `default` when absent.
    pub fn integer(
        &self,
        name: &str,
        range: RangeInclusive<i64>,
        default: Option<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.0.get(name) else {
            return Ok(default);
        };
        text.parse::<i64>()
            .ok()
            .filter(|value| range.contains(value))
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be an integer from {} to {}",
                    range.start(),
                    range.end()
                ))
            })
    }

    /// The text of a parameter, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A `YYYY-MM-DD` date; required.
    pub fn date(&self, name: &str) -> Result<NaiveDate, ApiError> {
        let text = self
            .0
            .get(name)
            .ok_or_else(|| ApiError::BadRequest(format!("{name} is required (YYYY-MM-DD)")))?;
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .filter(|_| text.len() == 10)
            .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a date, YYYY-MM-DD")))
    }
}

/// The longest range of days a figure covers.
pub const MAX_DAYS: i64 = 366;

/// `from` and `to`, both included, in order and at most [`MAX_DAYS`] days.
pub fn day_range(params: &Params) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let (from, to) = (params.date("from")?, params.date("to")?);
    if from > to {
        return Err(ApiError::BadRequest("from must not be after to".into()));
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(ApiError::BadRequest(format!(
            "a range covers at most {MAX_DAYS} days"
        )));
    }
    Ok((from, to))
}
