//! The statements a batch runs, as text, for each dialect (pure: no I/O).
//!
//! Postgres gets a batch's rows as one parameter, a JSON array of rows (each an array of cells
//! as text, cast in SQL to the column's type): one statement per kind of operation, whatever
//! the batch's size, and nothing to re-plan per row count. MySQL has no such unpacking that
//! MariaDB shares, so its rows are bound one placeholder per cell, `VALUES (?, ?), (?, ?)`, in
//! statements of at most [`MYSQL_MAX_PARAMS`] placeholders.

use super::dialect::{Dialect, Kind};

/// The placeholders one MySQL statement may hold (the protocol counts them in 16 bits).
pub const MYSQL_MAX_PARAMS: usize = 65_535;

/// A column sluice writes, as the table declares it.
#[derive(Clone, Debug)]
pub struct Col {
    pub name: String,
    pub quoted: String,
    pub kind: Kind,
    /// As the database shows it (`numeric(10,2)`), for messages.
    pub declared: String,
    /// Postgres: the type a cell's text is cast to before it is assigned: the declared type
    /// without its modifier, so a too-long text or a too-wide number is an error on
    /// assignment, not cut short by the cast (`'abcdef'::varchar(3)` is `abc`, silently).
    pub cast: String,
}

/// How a field's new value meets the stored one on update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The new value, NULL included.
    Replace,
    /// `nulls = "skip"`: a NULL keeps the stored value.
    SkipNull,
    /// `write = "if_empty"`: the stored value unless it is NULL.
    IfEmpty,
}

/// The table a run writes, and how to speak to it.
#[derive(Clone, Debug)]
pub struct Table {
    pub dialect: Dialect,
    /// Quoted and qualified.
    pub name: String,
    /// `schema.table`, for messages.
    pub shown: String,
    /// Key columns no field carries first, then the fields, in mapping order.
    pub columns: Vec<Col>,
    /// For each key column, its index in `columns`.
    pub keys: Vec<usize>,
    /// `columns[field_base + j]` is field `j`.
    pub field_base: usize,
    /// Per column: how an update merges it (key columns are never updated).
    pub merge: Vec<Merge>,
}

/// What a key another writer inserted meanwhile does to a Postgres insert (MySQL inserts plainly:
/// such a row is its error, and is found when sent again alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Upsert: the row's fields are written over the stored ones (by [`Merge`]).
    Update,
    /// Insert mode: the stored row stays as it is.
    Keep,
}

impl Table {
    fn is_key(&self, c: usize) -> bool {
        self.keys.contains(&c)
    }

    fn key_list(&self) -> String {
        self.keys.iter().map(|&k| self.columns[k].quoted.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn all_columns(&self) -> String {
        self.columns.iter().map(|c| c.quoted.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Postgres: cell `i` of a JSON row `row`, cast for column `c`.
    fn pg_cell(&self, row: &str, i: usize, c: &Col) -> String {
        match &c.kind {
            // A JSON array of the items' text; NULL stays NULL (not an empty array).
            Kind::Array(_) => format!(
                "CASE WHEN jsonb_typeof({row}->{i}) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text({row}->{i}))::{} END",
                c.cast
            ),
            _ => format!("({row}->>{i})::{}", c.cast),
        }
    }

    /// Postgres: the batch document's rows (`$1`) as a relation `x` of the key columns, named
    /// `k0, k1, ...`, with the row's index as `i`.
    fn pg_keys_relation(&self) -> String {
        let keys: Vec<String> =
            self.keys.iter().enumerate().map(|(n, &k)| format!("{} AS k{n}", self.pg_cell("e.r", n, &self.columns[k]))).collect();
        format!("(SELECT (e.n - 1)::bigint AS i, {} FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, n)) AS x", keys.join(", "))
    }

    fn key_match(&self, table: &str) -> String {
        self.keys.iter().enumerate().map(|(n, &k)| format!("{table}.{} = x.k{n}", self.columns[k].quoted)).collect::<Vec<_>>().join(" AND ")
    }

    /// The update part of an upsert: each non-key column by its merge rule. Empty when only
    /// key columns are written.
    /// `new(c, col)` is column `c`'s new value, `old(col)` its stored one.
    fn assignments(&self, new: impl Fn(usize, &Col) -> String, old: impl Fn(&Col) -> String) -> Vec<String> {
        (0..self.columns.len())
            .filter(|&c| !self.is_key(c))
            .map(|c| {
                let col = &self.columns[c];
                let value = match self.merge[c] {
                    Merge::Replace => new(c, col),
                    Merge::SkipNull => format!("COALESCE({}, {})", new(c, col), old(col)),
                    Merge::IfEmpty => format!("COALESCE({}, {})", old(col), new(c, col)),
                };
                format!("{} = {value}", col.quoted)
            })
            .collect()
    }

    /// Inserts `rows` new rows of every column (Postgres: `$1`, any number of rows). On Postgres
    /// `ON CONFLICT (key)` still catches a key inserted meanwhile by another writer of the
    /// table (it targets the key's index only: a collision on another unique index is an error).
    pub fn insert(&self, conflict: OnConflict, rows: usize) -> String {
        match (self.dialect, conflict) {
            (Dialect::Postgres, conflict) => {
                let cells: Vec<String> = self.columns.iter().enumerate().map(|(i, c)| self.pg_cell("e.r", i, c)).collect();
                let set = self.assignments(|_, c| format!("EXCLUDED.{}", c.quoted), |c| format!("t.{}", c.quoted));
                let action = match conflict {
                    OnConflict::Update if !set.is_empty() => format!("DO UPDATE SET {}", set.join(", ")),
                    _ => "DO NOTHING".into(),
                };
                format!(
                    "INSERT INTO {} AS t ({}) SELECT {} FROM jsonb_array_elements($1::jsonb) AS e(r) ON CONFLICT ({}) {action}",
                    self.name,
                    self.all_columns(),
                    cells.join(", "),
                    self.key_list()
                )
            }
            // A plain INSERT: new keys only (the rows the table holds are updated apart). MySQL's
            // ON DUPLICATE KEY UPDATE fires on *any* unique index, so a row colliding with
            // another one would overwrite that row and be reported written; here it is that
            // row's error (1062), and a key inserted meanwhile by someone else is found when
            // the row is sent again alone.
            (Dialect::Mysql, _) => {
                let row = format!("({})", vec!["?"; self.columns.len()].join(", "));
                format!("INSERT INTO {} ({}) VALUES {}", self.name, self.all_columns(), vec![row; rows].join(", "))
            }
        }
    }

    /// Updates the stored rows of `rows` rows of every column, each non-key column by its
    /// [`Merge`] rule; `None` when every column is a key (nothing to update). An UPDATE, not an
    /// upsert: a NOT NULL column the sync does not write is no obstacle to changing a row.
    pub fn update(&self, rows: usize) -> Option<String> {
        let set = self.assignments(|i, _| format!("x.c{i}"), |c| format!("t.{}", c.quoted));
        if set.is_empty() {
            return None;
        }
        let matching: Vec<String> = self.keys.iter().map(|&k| format!("t.{} = x.c{k}", self.columns[k].quoted)).collect();
        Some(match self.dialect {
            Dialect::Postgres => {
                let cells: Vec<String> =
                    self.columns.iter().enumerate().map(|(i, c)| format!("{} AS c{i}", self.pg_cell("e.r", i, c))).collect();
                format!(
                    "UPDATE {} AS t SET {} FROM (SELECT {} FROM jsonb_array_elements($1::jsonb) AS e(r)) AS x WHERE {}",
                    self.name,
                    set.join(", "),
                    cells.join(", "),
                    matching.join(" AND ")
                )
            }
            Dialect::Mysql => {
                let names: Vec<String> = (0..self.columns.len()).map(|i| format!("? AS c{i}")).collect();
                let first = format!("SELECT {}", names.join(", "));
                let rest = format!("SELECT {}", vec!["?"; self.columns.len()].join(", "));
                let mut selects = vec![first];
                selects.extend(std::iter::repeat_n(rest, rows.saturating_sub(1)));
                let set: Vec<String> = set.iter().map(|a| format!("t.{a}")).collect();
                format!(
                    "UPDATE {} AS t JOIN ({}) AS x ON {} SET {}",
                    self.name,
                    selects.join(" UNION ALL "),
                    matching.join(" AND "),
                    set.join(", ")
                )
            }
        })
    }

    /// The indexes (`i`) of the `rows` keys the table holds, locked until the transaction
    /// ends: update mode writes only those.
    pub fn existing(&self, rows: usize) -> String {
        match self.dialect {
            Dialect::Postgres => {
                format!("SELECT x.i FROM {} JOIN {} AS t ON {} FOR UPDATE OF t", self.pg_keys_relation(), self.name, self.key_match("t"))
            }
            Dialect::Mysql => {
                let names: Vec<String> = (0..self.keys.len()).map(|n| format!("? AS k{n}")).collect();
                let first = format!("SELECT ? AS i, {}", names.join(", "));
                let rest = format!("SELECT ?, {}", vec!["?"; self.keys.len()].join(", "));
                let mut selects = vec![first];
                selects.extend(std::iter::repeat_n(rest, rows.saturating_sub(1)));
                format!(
                    "SELECT x.i FROM ({}) AS x JOIN {} AS t ON {} FOR UPDATE",
                    selects.join(" UNION ALL "),
                    self.name,
                    self.key_match("t")
                )
            }
        }
    }

    /// MySQL: `WHERE (k1, k2) IN ((?, ?), ...)` for `rows` keys.
    fn mysql_key_in(&self, rows: usize) -> String {
        let tuple = format!("({})", vec!["?"; self.keys.len()].join(", "));
        format!("({}) IN ({})", self.key_list(), vec![tuple; rows].join(", "))
    }

    /// Deletes the `rows` keys (a key not there is no error: deletes are idempotent).
    pub fn delete(&self, rows: usize) -> String {
        match self.dialect {
            Dialect::Postgres => format!("DELETE FROM {} AS t USING {} WHERE {}", self.name, self.pg_keys_relation(), self.key_match("t")),
            Dialect::Mysql => format!("DELETE FROM {} WHERE {}", self.name, self.mysql_key_in(rows)),
        }
    }

    /// Empties the non-key columns of the `rows` keys; `None` when every column is a key.
    pub fn clear(&self, rows: usize) -> Option<String> {
        let set: Vec<String> =
            (0..self.columns.len()).filter(|&c| !self.is_key(c)).map(|c| format!("{} = NULL", self.columns[c].quoted)).collect();
        if set.is_empty() {
            return None;
        }
        Some(match self.dialect {
            Dialect::Postgres => {
                format!("UPDATE {} AS t SET {} FROM {} WHERE {}", self.name, set.join(", "), self.pg_keys_relation(), self.key_match("t"))
            }
            Dialect::Mysql => format!("UPDATE {} SET {} WHERE {}", self.name, set.join(", "), self.mysql_key_in(rows)),
        })
    }

    /// Rows per MySQL statement when each row binds `per_row` placeholders.
    pub fn mysql_rows_per_statement(per_row: usize) -> usize {
        (MYSQL_MAX_PARAMS / per_row.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dialect: Dialect) -> Table {
        let col = |name: &str, kind: Kind, cast: &str| Col {
            name: name.into(),
            quoted: dialect.quote(name),
            kind,
            declared: cast.into(),
            cast: cast.into(),
        };
        Table {
            dialect,
            name: dialect.quote("scores"),
            shown: "scores".into(),
            columns: vec![
                col("id", Kind::Int, "bigint"),
                col("Score", Kind::Float, "double precision"),
                col("tags", Kind::Array(Box::new(Kind::Text)), "text[]"),
            ],
            keys: vec![0],
            field_base: 0,
            merge: vec![Merge::Replace, Merge::SkipNull, Merge::IfEmpty],
        }
    }

    #[test]
    fn postgres_upserts_a_whole_batch_from_one_document() {
        let sql = table(Dialect::Postgres).insert(OnConflict::Update, 500);
        assert_eq!(
            sql,
            "INSERT INTO \"scores\" AS t (\"id\", \"Score\", \"tags\") SELECT (e.r->>0)::bigint, (e.r->>1)::double precision, \
             CASE WHEN jsonb_typeof(e.r->2) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(e.r->2))::text[] END \
             FROM jsonb_array_elements($1::jsonb) AS e(r) ON CONFLICT (\"id\") DO UPDATE SET \
             \"Score\" = COALESCE(EXCLUDED.\"Score\", t.\"Score\"), \"tags\" = COALESCE(t.\"tags\", EXCLUDED.\"tags\")"
        );
        assert!(table(Dialect::Postgres).insert(OnConflict::Keep, 1).ends_with("ON CONFLICT (\"id\") DO NOTHING"));
        assert_eq!(
            table(Dialect::Postgres).update(9).unwrap(),
            "UPDATE \"scores\" AS t SET \"Score\" = COALESCE(x.c1, t.\"Score\"), \"tags\" = COALESCE(t.\"tags\", x.c2) FROM (SELECT \
             (e.r->>0)::bigint AS c0, (e.r->>1)::double precision AS c1, CASE WHEN jsonb_typeof(e.r->2) = 'array' THEN \
             ARRAY(SELECT jsonb_array_elements_text(e.r->2))::text[] END AS c2 FROM jsonb_array_elements($1::jsonb) AS e(r)) AS x \
             WHERE t.\"id\" = x.c0"
        );
    }

    #[test]
    fn mysql_binds_a_placeholder_per_cell() {
        let t = table(Dialect::Mysql);
        assert_eq!(t.insert(OnConflict::Update, 2), "INSERT INTO `scores` (`id`, `Score`, `tags`) VALUES (?, ?, ?), (?, ?, ?)");
        assert_eq!(
            t.update(2).unwrap(),
            "UPDATE `scores` AS t JOIN (SELECT ? AS c0, ? AS c1, ? AS c2 UNION ALL SELECT ?, ?, ?) AS x ON t.`id` = x.c0 SET \
             t.`Score` = COALESCE(x.c1, t.`Score`), t.`tags` = COALESCE(t.`tags`, x.c2)"
        );
        assert_eq!(t.delete(2), "DELETE FROM `scores` WHERE (`id`) IN ((?), (?))");
        assert_eq!(
            t.existing(2),
            "SELECT x.i FROM (SELECT ? AS i, ? AS k0 UNION ALL SELECT ?, ?) AS x JOIN `scores` AS t ON t.`id` = x.k0 FOR UPDATE"
        );
        assert_eq!(Table::mysql_rows_per_statement(3), 21_845);
    }
}
