//! What differs between Postgres and MariaDB/MySQL, besides statements (`sql.rs`): quoting,
//! the column type declared for a model type, what an existing column's declared type holds,
//! and what a database error means (whether to retry, or to single out the row).

use crate::value::ValueType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// What an existing column holds, read from its declared type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float,
    /// `numeric(p,s)`; Postgres' bare `numeric` has neither.
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    Text,
    Bytes,
    Date,
    /// Fractional-second digits kept.
    Time {
        digits: u32,
    },
    /// `zoned`: an instant (`timestamptz`; MySQL's TIMESTAMP, converted from the session's UTC);
    /// else the UTC wall-clock time (`timestamp`, `DATETIME`).
    Timestamp {
        digits: u32,
        zoned: bool,
    },
    Uuid,
    Json,
    /// A Postgres array of the element kind.
    Array(Box<Kind>),
    /// A type sluice does not write to (`real`, `money`, an enum, ...).
    Other,
}

/// What a failed statement means for the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A row's data broke a constraint or a type rule: the rows are split until the bad one
    /// stands alone and is rejected.
    Row,
    /// Deadlock, serialisation failure, a lost connection, a server going down: retry the batch.
    Transient,
    /// Privileges, a table dropped mid-run, anything else: the run fails.
    Fatal,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "Postgres",
            Dialect::Mysql => "MySQL",
        }
    }

    /// An identifier, quoted: any name works (spaces, quotes, reserved words, upper case).
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// The longest identifier the database keeps whole. Postgres cuts longer names silently
    /// (NAMEDATALEN - 1 bytes), so they are refused up front; MySQL counts characters.
    pub fn check_identifier(self, name: &str) -> Result<(), String> {
        let too_long = match self {
            Dialect::Postgres => name.len() > 63,
            Dialect::Mysql => name.chars().count() > 64,
        };
        if name.is_empty() {
            return Err("an empty name".into());
        }
        if too_long {
            return Err(format!(
                "`{name}` is longer than {} allows ({}): rename it in the mapping",
                self.name(),
                match self {
                    Dialect::Postgres => "63 bytes",
                    Dialect::Mysql => "64 characters",
                }
            ));
        }
        if name.contains('\0') {
            return Err(format!("`{}` holds a NUL character", name.replace('\0', "\\0")));
        }
        Ok(())
    }

    /// The column type a new column gets for a model type. `key`: the column is part of the
    /// primary key (MySQL cannot index TEXT or BLOB whole).
    pub fn declare(self, t: &ValueType, key: bool) -> Option<String> {
        use ValueType as T;
        Some(match self {
            Dialect::Postgres => match t {
                T::Bool => "boolean".into(),
                T::Int => "bigint".into(),
                T::Float => "double precision".into(),
                T::Decimal { precision: Some(p), scale: Some(s) } if *p <= 1000 => format!("numeric({p},{s})"),
                T::Decimal { .. } => "numeric".into(),
                T::Text => "text".into(),
                T::Bytes => "bytea".into(),
                T::Date => "date".into(),
                T::Time => "time".into(),
                T::Timestamp => "timestamp with time zone".into(),
                T::Uuid => "uuid".into(),
                T::Json => "jsonb".into(),
                T::Array(item) => match item.as_ref() {
                    // Postgres arrays of arrays must be rectangular: nested lists are JSON.
                    T::Array(_) | T::Unknown => "jsonb".into(),
                    scalar => format!("{}[]", self.declare(scalar, false)?),
                },
                T::Unknown => return None,
            },
            Dialect::Mysql => match t {
                T::Bool => "BOOLEAN".into(),
                T::Int => "BIGINT".into(),
                T::Float => "DOUBLE".into(),
                // MySQL's widest: 65 digits, 30 after the point.
                T::Decimal { precision: Some(p), scale: Some(s) } if *p <= 65 && *s <= 30 => format!("DECIMAL({p},{s})"),
                T::Decimal { .. } => "DECIMAL(65,30)".into(),
                // 255 characters of utf8mb4 fit InnoDB's 3072-byte index prefix; the collation
                // (a binary one, see `schema`) is added where the table is created.
                T::Text if key => "VARCHAR(255) CHARACTER SET utf8mb4".into(),
                T::Text => "LONGTEXT".into(),
                T::Bytes if key => "VARBINARY(255)".into(),
                T::Bytes => "LONGBLOB".into(),
                T::Date => "DATE".into(),
                T::Time => "TIME(6)".into(),
                T::Timestamp => "DATETIME(6)".into(),
                T::Uuid => "CHAR(36)".into(),
                T::Json | T::Array(_) => "JSON".into(),
                T::Unknown => return None,
            },
        })
    }

    /// What a Postgres column holds, from `format_type()`: `numeric(10,2)`, `character
    /// varying(20)`, `timestamp(3) with time zone`, `integer[]`.
    pub fn postgres_kind(declared: &str) -> Kind {
        if let Some(item) = declared.strip_suffix("[]") {
            return Kind::Array(Box::new(Dialect::postgres_kind(item)));
        }
        let (base, modifier) = split_modifier(declared);
        let digits = || modifier.first().copied().unwrap_or(6);
        match base.as_str() {
            "boolean" => Kind::Bool,
            "smallint" | "integer" | "bigint" => Kind::Int,
            "double precision" => Kind::Float,
            "numeric" => {
                Kind::Decimal { precision: modifier.first().copied(), scale: modifier.get(1).copied().or(modifier.first().map(|_| 0)) }
            }
            "text" | "character varying" | "character" | "citext" => Kind::Text,
            "bytea" => Kind::Bytes,
            "date" => Kind::Date,
            "time without time zone" => Kind::Time { digits: digits() },
            "timestamp with time zone" => Kind::Timestamp { digits: digits(), zoned: true },
            "timestamp without time zone" => Kind::Timestamp { digits: digits(), zoned: false },
            "uuid" => Kind::Uuid,
            "json" | "jsonb" => Kind::Json,
            _ => Kind::Other,
        }
    }

    /// What a MySQL/MariaDB column holds, from information_schema's DATA_TYPE and COLUMN_TYPE
    /// (MariaDB's JSON is LONGTEXT with a check: text).
    pub fn mysql_kind(data_type: &str, column_type: &str, precision: Option<u32>, scale: Option<u32>, digits: Option<u32>) -> Kind {
        let column_type = column_type.to_ascii_lowercase();
        match data_type.to_ascii_lowercase().as_str() {
            // BOOLEAN is TINYINT(1).
            "tinyint" if column_type.starts_with("tinyint(1)") => Kind::Bool,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Kind::Int,
            "double" => Kind::Float,
            "decimal" => Kind::Decimal { precision, scale },
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => Kind::Text,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
            "date" => Kind::Date,
            "time" => Kind::Time { digits: digits.unwrap_or(0) },
            "datetime" => Kind::Timestamp { digits: digits.unwrap_or(0), zoned: false },
            "timestamp" => Kind::Timestamp { digits: digits.unwrap_or(0), zoned: true },
            "json" => Kind::Json,
            "uuid" => Kind::Uuid,
            _ => Kind::Other,
        }
    }

    /// Whether an existing column of `kind` holds a model type's values without a cast that
    /// could change them. A conflict is an error naming both types, never a silent cast.
    pub fn fits(self, t: &ValueType, kind: &Kind) -> bool {
        use ValueType as T;
        match (t, kind) {
            (T::Unknown, _) => true,
            (T::Bool, Kind::Bool) | (T::Int, Kind::Int | Kind::Decimal { .. }) | (T::Float, Kind::Float) => true,
            (T::Decimal { .. }, Kind::Decimal { .. }) => true,
            // Whole numbers (DuckDB's HUGEINT, UBIGINT): a value out of range is that row's error.
            (T::Decimal { scale: Some(0), .. }, Kind::Int) => true,
            (T::Text, Kind::Text) | (T::Bytes, Kind::Bytes) | (T::Date, Kind::Date) | (T::Time, Kind::Time { .. }) => true,
            (T::Timestamp, Kind::Timestamp { .. }) => true,
            (T::Uuid, Kind::Uuid | Kind::Text) => true,
            (T::Json, Kind::Json) => true,
            // MariaDB's JSON is LONGTEXT; MySQL keeps JSON in text columns too.
            (T::Json | T::Array(_), Kind::Text) => self == Dialect::Mysql,
            (T::Array(_), Kind::Json) => true,
            (T::Array(item), Kind::Array(k)) => self.fits(item, k),
            _ => false,
        }
    }

    /// What a database error means: by SQLSTATE (both), and MySQL's error number where its
    /// SQLSTATE is the catch-all HY000.
    pub fn failure(self, sqlstate: Option<&str>, mysql_number: Option<u16>) -> Failure {
        if let Some(n) = mysql_number {
            match n {
                // Deadlock, lock wait timeout, too many connections, server shutdown, gone away.
                1213 | 1205 | 1040 | 1053 | 2006 | 2013 => return Failure::Transient,
                // Incorrect value for the column, out of range, truncated, bad datetime, NULL
                // into NOT NULL, duplicate entry, foreign key, invalid JSON, CHECK failed.
                1366 | 1264 | 1265 | 1292 | 1406 | 1048 | 1062 | 1451 | 1452 | 3140 | 4025 | 3819 | 1367 | 1411 => return Failure::Row,
                _ => {}
            }
        }
        let Some(state) = sqlstate else { return Failure::Fatal };
        match state.get(..2) {
            Some("22" | "23") => Failure::Row,
            // Serialisation failure, deadlock; connection exceptions; insufficient resources;
            // operator intervention (shutdown, statement cancelled).
            Some("40" | "08" | "53" | "57") => Failure::Transient,
            // Lock not available.
            _ if state == "55P03" => Failure::Transient,
            // A key too long for its index (54000); two rows of the batch that are one key to
            // the table (21000: `char(n)` padding, a case-insensitive type): the row's doing.
            _ if state == "54000" || state == "21000" => Failure::Row,
            _ => Failure::Fatal,
        }
    }
}

/// `numeric(10,2)` -> ("numeric", [10, 2]); `timestamp(3) with time zone` -> ("timestamp with
/// time zone", [3]); `character varying(20)` -> ("character varying", [20]).
fn split_modifier(declared: &str) -> (String, Vec<u32>) {
    match (declared.find('('), declared.find(')')) {
        (Some(open), Some(close)) if open < close => {
            let parts: Vec<&str> = declared[open + 1..close].split(',').map(str::trim).collect();
            // `numeric(5,-2)` (Postgres 15) rounds to hundreds: a type sluice does not write.
            if parts.iter().any(|p| p.starts_with('-')) {
                return (format!("{declared} (negative scale)"), Vec::new());
            }
            let modifier = parts.iter().filter_map(|n| n.parse().ok()).collect();
            let base = format!("{}{}", &declared[..open], &declared[close + 1..]);
            (base.trim().to_string(), modifier)
        }
        _ => (declared.trim().to_string(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_declared_types_read_as_what_they_hold() {
        assert_eq!(Dialect::postgres_kind("numeric(10,2)"), Kind::Decimal { precision: Some(10), scale: Some(2) });
        assert_eq!(Dialect::postgres_kind("numeric(10)"), Kind::Decimal { precision: Some(10), scale: Some(0) });
        assert_eq!(Dialect::postgres_kind("numeric"), Kind::Decimal { precision: None, scale: None });
        assert_eq!(Dialect::postgres_kind("timestamp(3) with time zone"), Kind::Timestamp { digits: 3, zoned: true });
        assert_eq!(Dialect::postgres_kind("timestamp without time zone"), Kind::Timestamp { digits: 6, zoned: false });
        assert_eq!(Dialect::postgres_kind("character varying(20)"), Kind::Text);
        assert_eq!(Dialect::postgres_kind("integer[]"), Kind::Array(Box::new(Kind::Int)));
        assert_eq!(Dialect::postgres_kind("real"), Kind::Other);
        assert_eq!(Dialect::postgres_kind("numeric(5,-2)"), Kind::Other);
    }

    #[test]
    fn identifiers_are_quoted_whatever_they_hold() {
        assert_eq!(Dialect::Postgres.quote("Customer \"ID\""), "\"Customer \"\"ID\"\"\"");
        assert_eq!(Dialect::Mysql.quote("select`x"), "`select``x`");
        assert!(Dialect::Postgres.check_identifier(&"x".repeat(64)).is_err());
        assert!(Dialect::Mysql.check_identifier(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn a_column_that_would_cast_the_model_type_does_not_fit() {
        let p = Dialect::Postgres;
        assert!(p.fits(&ValueType::Int, &Kind::Decimal { precision: None, scale: None }));
        assert!(!p.fits(&ValueType::Float, &Kind::Decimal { precision: None, scale: None }));
        assert!(!p.fits(&ValueType::Int, &Kind::Text));
        assert!(!p.fits(&ValueType::Json, &Kind::Text));
        assert!(Dialect::Mysql.fits(&ValueType::Json, &Kind::Text));
        assert!(p.fits(&ValueType::Array(Box::new(ValueType::Int)), &Kind::Array(Box::new(Kind::Int))));
        assert!(!p.fits(&ValueType::Array(Box::new(ValueType::Text)), &Kind::Array(Box::new(Kind::Int))));
    }

    #[test]
    fn data_errors_single_out_rows_and_lock_errors_retry() {
        assert_eq!(Dialect::Postgres.failure(Some("23505"), None), Failure::Row);
        assert_eq!(Dialect::Postgres.failure(Some("40P01"), None), Failure::Transient);
        assert_eq!(Dialect::Postgres.failure(Some("42501"), None), Failure::Fatal);
        assert_eq!(Dialect::Mysql.failure(Some("HY000"), Some(1366)), Failure::Row);
        assert_eq!(Dialect::Mysql.failure(Some("40001"), Some(1213)), Failure::Transient);
        assert_eq!(Dialect::Mysql.failure(Some("42000"), Some(1142)), Failure::Fatal);
    }
}
