//! The delete guard: a mirror run that would remove too much sends nothing unless allowed. It
//! exists for the day a view breaks and returns nothing: without it, mirror mode would wipe the
//! CRM. No I/O.

use crate::project::config::DeleteGuardConfig;
use crate::project::SyncFile;

/// The limits for one sync: its header's, else the project's.
pub fn limits(project: &DeleteGuardConfig, sync: &SyncFile) -> DeleteGuardConfig {
    DeleteGuardConfig {
        max_deletes: sync.max_deletes.or(project.max_deletes),
        max_delete_pct: sync.max_delete_pct.unwrap_or(project.max_delete_pct),
    }
}

/// Why a run with `deletes` removals out of `stored` rows, from a model of `rows_read` rows,
/// must not go ahead without `--allow-deletes`; `None` when it may.
pub fn violation(limits: &DeleteGuardConfig, deletes: u64, stored: u64, rows_read: u64) -> Option<String> {
    if deletes == 0 {
        return None;
    }
    if rows_read == 0 {
        return Some(format!("the model returned no rows, so this run would remove all {deletes} row(s) the destination holds"));
    }
    if let Some(max) = limits.max_deletes.filter(|max| deletes > *max) {
        return Some(format!("this run would remove {deletes} row(s), more than max_deletes = {max}"));
    }
    let pct = deletes as f64 * 100.0 / stored.max(1) as f64;
    if limits.max_delete_pct < 100.0 && pct > limits.max_delete_pct {
        return Some(format!(
            "this run would remove {deletes} of {stored} row(s) ({pct:.0}%), more than max_delete_pct = {}",
            limits.max_delete_pct
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: Option<u64>, pct: f64) -> DeleteGuardConfig {
        DeleteGuardConfig { max_deletes: max, max_delete_pct: pct }
    }

    #[test]
    fn limits_by_count_share_and_empty_models() {
        assert_eq!(violation(&guard(None, 50.0), 0, 10, 0), None);
        assert_eq!(violation(&guard(None, 50.0), 5, 10, 5), None, "50% is allowed");
        assert!(violation(&guard(None, 50.0), 6, 10, 4).unwrap().contains("6 of 10 row(s) (60%)"));
        assert!(violation(&guard(Some(2), 100.0), 3, 100, 97).unwrap().contains("max_deletes = 2"));
        assert!(violation(&guard(None, 100.0), 3, 3, 0).unwrap().contains("the model returned no rows"));
        assert_eq!(violation(&guard(None, 100.0), 9, 10, 1), None, "100% turns the share check off");
    }
}
