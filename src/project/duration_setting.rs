//! Durations in settings as humantime strings ("30s", "500ms"), for `sluice.toml` and every
//! destination's settings: `#[serde(with = "sluice::project::duration_setting")]` (also reachable
//! as `sluice::destinations::duration_setting`). `serialize` writes a default the way a person
//! would ("90d", not "2months 29days 7h 12m"): the configuration reference shows defaults so.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration `{s}`: {e} (use e.g. \"30s\")")))
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(*d))
}

/// An optional duration: `#[serde(default, with = "crate::project::duration_setting::option")]`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => humantime::parse_duration(&s)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration `{s}`: {e} (use e.g. \"30s\")"))),
        }
    }

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::text(*d)),
            None => s.serialize_none(),
        }
    }
}

/// `d` in the largest unit that holds it whole: "90d", "6h", "20s", "500ms".
pub fn text(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_back_as_the_same_duration() {
        for d in [
            Duration::from_secs(90 * 86_400),
            Duration::from_secs(6 * 3600),
            Duration::from_secs(90),
            Duration::from_millis(1500),
            Duration::ZERO,
        ] {
            assert_eq!(humantime::parse_duration(&text(d)).unwrap(), d, "{}", text(d));
        }
        assert_eq!((text(Duration::from_secs(7200)).as_str(), text(Duration::from_secs(20)).as_str()), ("2h", "20s"));
    }
}
