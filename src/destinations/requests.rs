//! How a destination sends: the settings every destination takes (batch size, per-request
//! timeout, attempts, first retry delay), read the same way for all, each with the destination's
//! own defaults. A destination's config holds them as `requests`.
//!
//! They are read apart from the destination's own settings, which then refuse any key they do
//! not know: serde's `flatten` would switch that refusal off.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{parse_settings, Capabilities};

/// The request settings a destination runs with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// `max_batch_rows`: rows per batch at most (a request, or a group of requests).
    pub max_batch_rows: usize,
    /// `timeout`: how long one request may take ("30s").
    pub timeout: Duration,
    /// `max_attempts`: attempts per batch for transient failures (429, 5xx, network), the
    /// first included.
    pub max_attempts: usize,
    /// `retry_initial_delay`: the first wait before a retry; it doubles per attempt, with
    /// jitter, and a server's Retry-After wins.
    pub retry_initial_delay: Duration,
    /// `max_in_flight`: batches one run may have on the wire at once, at most.
    pub max_in_flight: usize,
}

/// A destination's defaults for [`Requests`]. `None`: the destination does not take that
/// setting, and a sluice.toml that sets it is refused.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub max_batch_rows: Option<usize>,
    pub timeout: Option<Duration>,
    pub max_attempts: Option<usize>,
    pub retry_initial_delay: Option<Duration>,
    pub max_in_flight: Option<usize>,
}

/// The setting names of [`Requests`].
pub const KEYS: [&str; 5] = ["max_batch_rows", "timeout", "max_attempts", "retry_initial_delay", "max_in_flight"];

/// The request settings as written in sluice.toml; their documentation is the reference's.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Given {
    /// Rows per batch at most: a request, or a group of requests.
    max_batch_rows: Option<usize>,
    /// How long one request may take.
    #[schemars(with = "Option<crate::project::schema::DurationText>")]
    timeout: Option<String>,
    /// Attempts per batch for transient failures (429, 5xx, no answer), the first included.
    max_attempts: Option<usize>,
    /// The first wait before a retry; it doubles per attempt, with jitter, and a server's
    /// Retry-After wins.
    #[schemars(with = "Option<crate::project::schema::DurationText>")]
    retry_initial_delay: Option<String>,
    /// Batches one run may have on the wire at once, at most. sluice starts at one and adds
    /// more while the service answers quickly and cleanly, backing off when it pushes back
    /// (429, 503, timeouts) or slows down; this caps it.
    max_in_flight: Option<usize>,
}

/// The request settings a destination with `defaults` takes, as a schema with each setting's
/// default: for the configuration reference.
pub fn schema(defaults: &Defaults) -> schemars::Schema {
    let mut schema = schemars::schema_for!(Given);
    let text = crate::project::duration_setting::text;
    let given: [(&str, Option<serde_json::Value>); 5] = [
        ("max_batch_rows", defaults.max_batch_rows.map(Into::into)),
        ("timeout", defaults.timeout.map(|d| text(d).into())),
        ("max_attempts", defaults.max_attempts.map(Into::into)),
        ("retry_initial_delay", defaults.retry_initial_delay.map(|d| text(d).into())),
        ("max_in_flight", defaults.max_in_flight.map(Into::into)),
    ];
    if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for (key, default) in given {
            match default {
                Some(d) => {
                    if let Some(p) = properties.get_mut(key).and_then(|p| p.as_object_mut()) {
                        p.insert("default".into(), d);
                    }
                }
                None => {
                    properties.remove(key);
                }
            }
        }
    }
    schema
}

impl Requests {
    /// A destination that takes every mode, paced by these settings.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_in_flight: self.max_in_flight,
            ..Capabilities::every_mode(self.max_batch_rows, self.max_attempts, self.retry_initial_delay)
        }
    }
}

/// Reads a destination's settings: the request settings over `defaults`, every other key into
/// its own config `T`.
pub fn parse<T: DeserializeOwned>(settings: &toml::Table, defaults: &Defaults) -> Result<(T, Requests), String> {
    let mut own = settings.clone();
    let mut given = toml::Table::new();
    for key in KEYS {
        if let Some(value) = own.remove(key) {
            given.insert(key.to_string(), value);
        }
    }
    let given: Given = parse_settings(&given)?;
    let config: T = parse_settings(&own).map_err(|e| match e.contains("unknown field") {
        true => format!("{e} (or one of {})", offered(defaults).join(", ")),
        false => e,
    })?;
    let duration = |key: &str, text: Option<String>| -> Result<Option<Duration>, String> {
        text.map(|t| humantime::parse_duration(&t).map_err(|e| format!("`{key}`: invalid duration `{t}`: {e} (use e.g. \"30s\")")))
            .transpose()
    };
    let requests = Requests {
        max_batch_rows: take("max_batch_rows", given.max_batch_rows, defaults.max_batch_rows)?.max(1),
        timeout: take("timeout", duration("timeout", given.timeout)?, defaults.timeout)?,
        max_attempts: take("max_attempts", given.max_attempts, defaults.max_attempts)?.max(1),
        retry_initial_delay: take(
            "retry_initial_delay",
            duration("retry_initial_delay", given.retry_initial_delay)?,
            defaults.retry_initial_delay,
        )?,
        max_in_flight: take("max_in_flight", given.max_in_flight, defaults.max_in_flight)?.max(1),
    };
    Ok((config, requests))
}

/// The value given, else the default; a setting the destination does not take is refused.
fn take<V: Default>(key: &str, given: Option<V>, default: Option<V>) -> Result<V, String> {
    match (given, default) {
        (Some(_), None) => Err(format!("`{key}` is not a setting of this destination")),
        (Some(v), Some(_)) => Ok(v),
        (None, d) => Ok(d.unwrap_or_default()),
    }
}

/// The request settings a destination takes, for messages.
fn offered(defaults: &Defaults) -> Vec<String> {
    let taken = [
        defaults.max_batch_rows.is_some(),
        defaults.timeout.is_some(),
        defaults.max_attempts.is_some(),
        defaults.retry_initial_delay.is_some(),
        defaults.max_in_flight.is_some(),
    ];
    KEYS.iter().zip(taken).filter(|(_, t)| *t).map(|(k, _)| format!("`{k}`")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        url: String,
    }

    const ALL: Defaults = Defaults {
        max_batch_rows: Some(500),
        timeout: Some(Duration::from_secs(30)),
        max_attempts: Some(5),
        retry_initial_delay: Some(Duration::from_millis(500)),
        max_in_flight: Some(4),
    };

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn request_settings_are_read_apart_with_the_destinations_defaults() {
        let (own, r) = parse::<Own>(&table("url = \"x\"\ntimeout = \"5s\"\nmax_batch_rows = 10"), &ALL).unwrap();
        assert_eq!(own.url, "x");
        assert_eq!(
            r,
            Requests {
                max_batch_rows: 10,
                timeout: Duration::from_secs(5),
                max_attempts: 5,
                retry_initial_delay: Duration::from_millis(500),
                max_in_flight: 4,
            }
        );
    }

    #[test]
    fn unknown_keys_and_settings_a_destination_does_not_take_are_refused() {
        let e = parse::<Own>(&table("url = \"x\"\ntimeuot = \"5s\""), &ALL).unwrap_err();
        assert!(e.contains("unknown field `timeuot`") && e.contains("`timeout`"), "{e}");
        let no_timeout = Defaults { timeout: None, ..ALL };
        let e = parse::<Own>(&table("url = \"x\"\ntimeout = \"5s\""), &no_timeout).unwrap_err();
        assert!(e.contains("`timeout` is not a setting of this destination"), "{e}");
        let e = parse::<Own>(&table("url = \"x\"\ntimeout = \"soon\""), &ALL).unwrap_err();
        assert!(e.contains("`timeout`: invalid duration `soon`"), "{e}");
    }
}
