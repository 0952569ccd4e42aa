//! `after = [...]` in a sync header: the syncs a sync runs after (contacts after accounts, so
//! associations find their accounts).
//!
//! Checked when the project loads: every name is a valid sync and no sync waits, through any
//! chain, for itself. A sync that breaks either rule is invalid (reported at its `after` line),
//! and so, in turn, is a sync that runs after it: a sync never runs without what it waits for.
//! Then [`Project::in_order`] orders a selection so every sync comes after those it names, and
//! [`Project::dependants`] answers who waits for a sync (the daemon starts them when it ends).
//! Pure: what the runs said is the engine's (`engine::sequence`).

use std::collections::{HashMap, HashSet};

use super::{did_you_mean, syncfile, Project, ProjectError, SyncSpec};

impl Project {
    /// Moves every sync whose `after` names an unknown or invalid sync, or closes a cycle, to
    /// `invalid`; again until none is left (a sync after one just found invalid is invalid too).
    pub(super) fn check_after(&mut self) {
        loop {
            let mut bad = self.unknown_after();
            if bad.is_empty() {
                bad = self.cycles();
            }
            if bad.is_empty() {
                return;
            }
            bad.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
            for (i, error) in bad {
                self.syncs.remove(i);
                self.invalid.push(error);
            }
        }
    }

    /// Syncs naming a sync that is not there (or is invalid), with the error for each.
    fn unknown_after(&self) -> Vec<(usize, ProjectError)> {
        let mut bad = Vec::new();
        for (i, sync) in self.syncs.iter().enumerate() {
            let after = &sync.file.after;
            let at = |message: String| ProjectError::at(&sync.file.path, after.line, message);
            let problem = after.value.iter().find_map(|name| {
                if name == sync.name() {
                    return Some(at(format!("`after` names `{name}` itself: a sync cannot run after itself")));
                }
                if self.syncs.iter().any(|s| s.name() == name) {
                    return None;
                }
                if let Some(broken) = self.invalid.iter().find(|e| syncfile::sync_name(&e.file) == *name) {
                    return Some(at(format!(
                        "`after` names `{name}`, whose sync file ({}) is invalid: this sync waits for it, so it cannot run either \
                         (`sluice check` says what is wrong with it)",
                        broken.file.display()
                    )));
                }
                let hint = did_you_mean(name, self.syncs.iter().map(SyncSpec::name)).map(|s| format!("did you mean `{s}`?"));
                Some(
                    at(format!("`after` names `{name}`, which is no sync of this project (a sync's name is its file's name)"))
                        .with_hint(hint),
                )
            });
            if let Some(e) = problem {
                bad.push((i, e));
            }
        }
        bad
    }

    /// Syncs on a cycle of `after`s, each with the cycle as it sees it.
    fn cycles(&self) -> Vec<(usize, ProjectError)> {
        let mut bad = Vec::new();
        for (i, sync) in self.syncs.iter().enumerate() {
            if let Some(path) = self.path_back(sync.name()) {
                let shown = path.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" -> ");
                bad.push((
                    i,
                    ProjectError::at(
                        &sync.file.path,
                        sync.file.after.line,
                        format!("`after` makes a cycle: {shown}, so none of them could ever run: drop one of these `after`s"),
                    ),
                ));
            }
        }
        bad
    }

    /// A chain of `after`s from `start` back to itself (`start`, ..., `start`), if there is one.
    fn path_back(&self, start: &str) -> Option<Vec<String>> {
        // Depth first, remembering the path; each sync is explored once.
        let mut seen = HashSet::new();
        let mut path = vec![start.to_string()];
        self.walk(start, start, &mut seen, &mut path).then_some(path)
    }

    fn walk(&self, start: &str, at: &str, seen: &mut HashSet<String>, path: &mut Vec<String>) -> bool {
        let Some(sync) = self.syncs.iter().find(|s| s.name() == at) else { return false };
        for next in &sync.file.after.value {
            path.push(next.clone());
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) && self.walk(start, next, seen, path) {
                return true;
            }
            path.pop();
        }
        false
    }

    /// `syncs` ordered so that each comes after every sync of the selection it waits for,
    /// directly or through syncs left out of it (`c` after `b` after `a`: `a` before `c`);
    /// otherwise in the order given. The project has no cycles (`check_after`).
    pub fn in_order<'p>(&self, syncs: Vec<&'p SyncSpec>) -> Vec<&'p SyncSpec> {
        // Most projects have no `after`: then the order given is the order (and start-up with
        // hundreds of syncs pays nothing).
        if syncs.iter().all(|s| s.file.after.value.is_empty()) {
            return syncs;
        }
        let by_name: HashMap<&str, &SyncSpec> = self.syncs.iter().map(|s| (s.name(), s)).collect();
        let upstream: Vec<HashSet<&str>> = syncs.iter().map(|s| upstream(s, &by_name)).collect();
        let mut placed = vec![false; syncs.len()];
        let mut ordered = Vec::with_capacity(syncs.len());
        while ordered.len() < syncs.len() {
            let waits = |i: usize| (0..syncs.len()).any(|j| j != i && !placed[j] && upstream[i].contains(syncs[j].name()));
            let unplaced = (0..syncs.len()).filter(|&i| !placed[i]);
            // Without a cycle some sync is ready; never loop forever on one.
            let ready = unplaced.clone().find(|&i| !waits(i)).or_else(|| unplaced.clone().next()).unwrap_or(0);
            placed[ready] = true;
            ordered.push(syncs[ready]);
        }
        ordered
    }

    /// The syncs that name `name` in their `after`.
    pub fn dependants<'p>(&'p self, name: &'p str) -> impl Iterator<Item = &'p SyncSpec> + 'p {
        self.syncs.iter().filter(move |s| s.file.after.value.iter().any(|d| d == name))
    }
}

/// Every sync `sync` runs after, through any chain of `after`s.
fn upstream<'a>(sync: &'a SyncSpec, by_name: &HashMap<&'a str, &'a SyncSpec>) -> HashSet<&'a str> {
    let mut found = HashSet::new();
    let mut stack = vec![sync];
    while let Some(at) = stack.pop() {
        for name in &at.file.after.value {
            if found.insert(name.as_str()) {
                stack.extend(by_name.get(name.as_str()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn project(files: &[(&str, &str)]) -> Project {
        let mut syncs = Vec::new();
        let mut invalid = Vec::new();
        for (name, after) in files {
            let text = format!("/* sluice\nprimary_key = \"id\"\n{after}\n*/\nSELECT 1 AS id");
            match syncfile::parse(Path::new(&format!("syncs/{name}.sql")), &text) {
                Ok(file) => syncs.push(SyncSpec { file, source: "w".into(), destination: "d".into(), dbt_models: Vec::new() }),
                Err(e) => invalid.push(e),
            }
        }
        let config = toml::from_str("").expect("an empty sluice.toml");
        let mut p = Project { root: ".".into(), config, syncs, invalid, dbt: None, dbt_error: None };
        p.check_after();
        p
    }

    fn names(syncs: &[&SyncSpec]) -> Vec<String> {
        syncs.iter().map(|s| s.name().to_string()).collect()
    }

    fn error_of(p: &Project, sync: &str) -> String {
        p.invalid.iter().find(|e| syncfile::sync_name(&e.file) == sync).map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn orders_dependants_after_what_they_name_and_keeps_file_order_otherwise() {
        let p = project(&[
            ("contacts", "after = [\"accounts\", \"owners\"]"),
            ("deals", "after = \"contacts\""),
            ("accounts", ""),
            ("owners", ""),
            ("unrelated", ""),
        ]);
        assert!(p.invalid.is_empty(), "{:?}", p.invalid);
        let all: Vec<&SyncSpec> = p.syncs.iter().collect();
        assert_eq!(names(&p.in_order(all)), ["accounts", "owners", "contacts", "deals", "unrelated"]);
        // A selection without a dependency keeps its own order.
        let some: Vec<&SyncSpec> = p.syncs.iter().filter(|s| s.name() != "accounts").collect();
        assert_eq!(names(&p.in_order(some)), ["owners", "contacts", "deals", "unrelated"]);
        // Through a sync left out: deals waits for accounts by way of contacts.
        let some: Vec<&SyncSpec> = p.syncs.iter().filter(|s| ["deals", "accounts"].contains(&s.name())).collect();
        assert_eq!(names(&p.in_order(some)), ["accounts", "deals"]);
        assert_eq!(p.dependants("contacts").map(SyncSpec::name).collect::<Vec<_>>(), ["deals"]);
    }

    #[test]
    fn unknown_names_and_cycles_are_errors_at_the_after_line_and_spread_to_dependants() {
        let p = project(&[
            ("a", "after = \"b\""),
            ("b", "after = [\"c\"]"),
            ("c", "after = \"a\""),
            ("d", "after = \"acounts\""),
            ("accounts", ""),
            ("e", "after = \"e\""),
            ("f", "after = \"c\""),
            ("g", "after = \"ok\""),
            ("ok", ""),
        ]);
        assert_eq!(names(&p.syncs.iter().collect::<Vec<_>>()), ["accounts", "g", "ok"]);
        let a = error_of(&p, "a");
        assert!(a.starts_with("syncs/a.sql:3:") && a.contains("cycle: `a` -> `b` -> `c` -> `a`"), "{a}");
        assert!(error_of(&p, "c").contains("`c` -> `a` -> `b` -> `c`"), "{}", error_of(&p, "c"));
        let d = error_of(&p, "d");
        assert!(d.contains("`acounts`, which is no sync") && d.contains("did you mean `accounts`?"), "{d}");
        assert!(error_of(&p, "e").contains("cannot run after itself"), "{}", error_of(&p, "e"));
        let f = error_of(&p, "f");
        assert!(f.contains("names `c`, whose sync file (syncs/c.sql) is invalid"), "{f}");
        let p = project(&[("x", "after = [\"\"]")]);
        assert!(error_of(&p, "x").contains("names an empty sync"), "{}", error_of(&p, "x"));
    }
}
