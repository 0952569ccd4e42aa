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

/// The due time whose run should have started by now and may not have: the one before the
/// latest, once a whole interval (the gap to the latest) plus the sync's jitter `offset` has
/// passed since it. `None` for a schedule with fewer than two past times.
pub fn overdue(cron: &str, tz: Tz, now: DateTime<Utc>, offset: std::time::Duration) -> Option<DateTime<Utc>> {
    let latest = previous_at_or_before(cron, tz, now)?;
    let before = previous_at_or_before(cron, tz, latest - chrono::Duration::seconds(1))?;
    let offset = chrono::Duration::from_std(offset).ok()?;
    (now >= latest + offset).then_some(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_run_is_overdue_once_the_next_one_is_due() {
        let hourly = "0 0 * * * *";
        let due = overdue(hourly, chrono_tz::UTC, utc("2026-12-07T10:30:00Z"), std::time::Duration::ZERO);
        assert_eq!(due, Some(utc("2026-12-07T09:00:00Z")), "the 09:00 run should have started by 10:00");
        let jittered = overdue(hourly, chrono_tz::UTC, utc("2026-12-07T10:00:30Z"), std::time::Duration::from_secs(60));
        assert_eq!(jittered, None, "10:01 is when the jittered 10:00 run starts: 09:00's is not late yet");
        let jittered = overdue(hourly, chrono_tz::UTC, utc("2026-12-07T10:01:00Z"), std::time::Duration::from_secs(60));
        assert_eq!(jittered, Some(utc("2026-12-07T09:00:00Z")));
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
