//! Durations in settings as humantime strings ("30s", "500ms"), for `sluice.toml` and every
//! destination's settings: `#[serde(with = "sluice::project::duration_setting")]` (also reachable
//! as `sluice::destinations::duration_setting`).

use serde::{Deserialize, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration `{s}`: {e} (use e.g. \"30s\")")))
}
