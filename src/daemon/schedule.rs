//! When a sync's next run is due: its 6-field cron read in the daemon's time zone. croner walks
//! the calendar in that zone, so DST gaps and repeats are handled (a 02:30 run on the day clocks
//! jump from 02:00 to 03:00 happens at 03:00, once). No I/O.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// The first run time strictly after `after`.
pub fn next_after(cron: &str, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = Cron::from_str(cron).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc))
}

/// The last run time at or before `at`: what a daemon that was down would have missed.
pub fn previous_at_or_before(cron: &str, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = Cron::from_str(cron).ok()?;
    cron.find_previous_occurrence(&at.with_timezone(&tz), true).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn daily_runs_keep_local_time_across_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 09:00 Berlin is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST).
        let before = utc("2026-03-28T12:00:00Z");
        let first = next_after("0 0 9 * * *", berlin, before).unwrap();
        assert_eq!(first, utc("2026-03-29T07:00:00Z"), "the first summer-time morning");
        assert_eq!(next_after("0 0 9 * * *", berlin, utc("2026-03-27T12:00:00Z")).unwrap(), utc("2026-03-28T08:00:00Z"));
        assert_eq!(
            next_after("0 0 9 * * *", berlin, utc("2026-10-24T12:00:00Z")).unwrap(),
            utc("2026-10-25T08:00:00Z"),
            "back to winter time"
        );
    }

    #[test]
    fn a_run_inside_the_spring_gap_happens_once_after_it() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let next = next_after("0 30 2 * * *", berlin, utc("2026-03-28T12:00:00Z")).unwrap();
        // 02:30 does not exist on 2026-03-29 in Berlin; the run happens when the clock reads 03:00.
        assert_eq!(next.with_timezone(&berlin), berlin.with_ymd_and_hms(2026, 3, 29, 3, 0, 0).unwrap());
        let after = next_after("0 30 2 * * *", berlin, next).unwrap();
        assert_eq!(after.with_timezone(&berlin), berlin.with_ymd_and_hms(2026, 3, 30, 2, 30, 0).unwrap());
    }

    #[test]
    fn the_missed_run_is_the_last_one_due() {
        let at = utc("2026-11-24T10:17:00Z");
        assert_eq!(previous_at_or_before("0 */15 * * * *", Tz::UTC, at).unwrap(), utc("2026-11-24T10:15:00Z"));
        assert_eq!(next_after("0 */15 * * * *", Tz::UTC, at).unwrap(), utc("2026-11-24T10:30:00Z"));
    }
}
