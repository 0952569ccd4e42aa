//! A sync's `schedule`: normalised to the 6-field (seconds first) cron the scheduler needs.

use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Runs only when triggered (`sluice run`, the API).
    Manual,
    /// A validated 6-field cron expression, seconds first.
    Cron(String),
}

impl Schedule {
    /// As status pages show it: `manual`, or the cron expression.
    pub fn text(&self) -> &str {
        match self {
            Schedule::Manual => "manual",
            Schedule::Cron(c) => c,
        }
    }
}

impl Schedule {
    /// Accepts 5-field cron, 6-field cron (seconds first), `@hourly`-style names and `manual`.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("manual") {
            return Ok(Schedule::Manual);
        }
        let six = match t.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 0 1 1 *".to_string(),
            "@monthly" => "0 0 0 1 * *".to_string(),
            "@weekly" => "0 0 0 * * SUN".to_string(),
            "@daily" | "@midnight" => "0 0 0 * * *".to_string(),
            "@hourly" => "0 0 * * * *".to_string(),
            _ if t.starts_with('@') => {
                return Err(format!(
                    "unknown schedule `{t}`: use @hourly, @daily, @weekly, @monthly, @yearly, a cron expression or \"manual\""
                ))
            }
            _ => match t.split_whitespace().count() {
                5 => format!("0 {t}"),
                6 => t.split_whitespace().collect::<Vec<_>>().join(" "),
                n => {
                    return Err(format!(
                        "schedule `{t}` has {n} fields: use 5-field cron (minute hour day month weekday), 6 with seconds first, @daily-style names or \"manual\""
                    ))
                }
            },
        };
        croner::Cron::from_str(&six).map_err(|e| format!("schedule `{t}` is not a valid cron expression: {e}"))?;
        Ok(Schedule::Cron(six))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_six_fields() {
        assert_eq!(Schedule::parse("*/15 * * * *").unwrap(), Schedule::Cron("0 */15 * * * *".into()));
        assert_eq!(Schedule::parse("30 0 12 * * *").unwrap(), Schedule::Cron("30 0 12 * * *".into()));
        assert_eq!(Schedule::parse("@Daily").unwrap(), Schedule::Cron("0 0 0 * * *".into()));
        assert_eq!(Schedule::parse("manual").unwrap(), Schedule::Manual);
    }

    #[test]
    fn rejects_bad_cron_with_reason() {
        assert!(Schedule::parse("61 * * * *").unwrap_err().contains("not a valid cron"));
        assert!(Schedule::parse("* * *").unwrap_err().contains("3 fields"));
        assert!(Schedule::parse("@sometimes").unwrap_err().contains("unknown schedule"));
    }
}
