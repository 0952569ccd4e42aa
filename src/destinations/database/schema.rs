//! The table's shape: read from the database's catalog, created or widened from the model's
//! types when the sync allows, and checked against what the sync writes (a key it can upsert
//! by, columns whose types hold the model's values without a cast). `check` does the reading
//! and reports what a run would create and which privileges are missing, writing nothing.

use sqlx::Row;

use super::client::Db;
use super::config::TableTarget;
use super::dialect::{Dialect, Kind};
use super::sql::{Col, Merge, Table};
use crate::destinations::{parse_settings, DestinationError, Target};
use crate::value::ValueType;

/// A column the sync writes, as the model types it.
struct Wanted {
    name: String,
    value_type: ValueType,
    key: bool,
}

/// A column as the table declares it.
struct Existing {
    name: String,
    declared: String,
    kind: Kind,
    /// MySQL: the text column's collation (`utf8mb4_general_ci`).
    collation: Option<String>,
}

/// What the catalog says of the table.
struct Described {
    columns: Vec<Existing>,
    /// The column sets of its unique indexes (the primary key's included), without partial or
    /// expression indexes (an upsert cannot use those).
    unique: Vec<Vec<String>>,
}

/// Where the table is, and what the sync wants of it.
pub struct Request {
    schema: String,
    table: String,
    create: bool,
    wanted: Vec<Wanted>,
    keys: Vec<usize>,
    field_base: usize,
    merge: Vec<Merge>,
}

fn fatal(target: &Target, message: String) -> DestinationError {
    DestinationError::fatal(format!("sync `{}`: {message}", target.sync))
}

/// Reads the sync's `[target]` and the columns it writes; resolves the default schema.
pub async fn request(db: &Db, target: &Target) -> Result<Request, DestinationError> {
    let d = db.dialect;
    let settings: TableTarget = parse_settings(&target.settings)
        .map_err(|e| fatal(target, format!("[target]: {e} (it takes `table`, and optionally `schema` and `create`)")))?;
    let (schema, table) = match (settings.schema, settings.table.split_once('.')) {
        (Some(schema), _) => (Some(schema), settings.table.clone()),
        (None, Some((schema, table))) if !table.contains('.') => (Some(schema.to_string()), table.to_string()),
        (None, Some(_)) => {
            return Err(fatal(
                target,
                format!("[target] table = \"{}\" has more than one dot: give the schema in `schema`", settings.table),
            ))
        }
        (None, None) => (None, settings.table.clone()),
    };
    let schema = match schema {
        Some(s) => s,
        None => default_schema(db)
            .await?
            .ok_or_else(|| fatal(target, "the `url` names no database, so `table` needs one: write `table = \"database.table\"`".into()))?,
    };
    for name in [&schema, &table] {
        d.check_identifier(name).map_err(|e| fatal(target, format!("[target]: {e}")))?;
    }
    // Key columns no field carries are written under their own name, first.
    let mut wanted = Vec::new();
    for (k, col) in target.key_columns.iter().enumerate() {
        if target.key_fields[k].is_none() {
            wanted.push(Wanted { name: col.clone(), value_type: target.key_types[k].clone(), key: true });
        }
    }
    let field_base = wanted.len();
    for (j, field) in target.fields.iter().enumerate() {
        let key = target.key_fields.contains(&Some(j));
        wanted.push(Wanted { name: field.clone(), value_type: target.field_types[j].clone(), key });
    }
    let mut extra = 0..field_base;
    let keys: Vec<usize> = target.key_fields.iter().map(|f| f.map(|j| field_base + j).or_else(|| extra.next()).unwrap_or(0)).collect();
    for (i, w) in wanted.iter().enumerate() {
        d.check_identifier(&w.name).map_err(|e| fatal(target, format!("column {e}")))?;
        // MySQL's column names ignore case.
        let same = |a: &str, b: &str| if d == Dialect::Mysql { a.eq_ignore_ascii_case(b) } else { a == b };
        if wanted[..i].iter().any(|o| same(&o.name, &w.name)) {
            return Err(fatal(target, format!("two fields write the column `{}` of {}: rename one in the mapping", w.name, d.name())));
        }
    }
    let merge = (0..wanted.len())
        .map(|c| match c.checked_sub(field_base) {
            Some(j) if target.if_empty.get(j).copied().unwrap_or(false) => Merge::IfEmpty,
            Some(_) if target.skip_nulls => Merge::SkipNull,
            _ => Merge::Replace,
        })
        .collect();
    Ok(Request { schema, table, create: settings.create, wanted, keys, field_base, merge })
}

/// MySQL: the collation text key columns are created with, a binary one that does not ignore
/// trailing spaces: MySQL 8's `utf8mb4_0900_bin`, MariaDB's `utf8mb4_nopad_bin`; else
/// `utf8mb4_bin` (binary, but PAD SPACE). Postgres: none. Asked only when a table is to be made.
async fn key_collation(db: &Db) -> Result<Option<String>, DestinationError> {
    if db.dialect == Dialect::Postgres {
        return Ok(None);
    }
    for c in ["utf8mb4_0900_bin", "utf8mb4_nopad_bin"] {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.COLLATIONS WHERE COLLATION_NAME = ?")
            .bind(c)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.error(e, "reading the collations"))?;
        if n > 0 {
            return Ok(Some(c.to_string()));
        }
    }
    Ok(Some("utf8mb4_bin".to_string()))
}

async fn default_schema(db: &Db) -> Result<Option<String>, DestinationError> {
    let sql = match db.dialect {
        Dialect::Postgres => "SELECT current_schema()::text",
        Dialect::Mysql => "SELECT CAST(DATABASE() AS CHAR)",
    };
    let row = sqlx::query(sql).fetch_one(&db.pool).await.map_err(|e| db.error(e, "reading the default schema"))?;
    text(&row, 0).map_err(|e| db.error(e, "reading the default schema"))
}

async fn schema_exists(db: &Db, schema: &str) -> Result<bool, DestinationError> {
    let sql = match db.dialect {
        Dialect::Postgres => "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
        Dialect::Mysql => "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    };
    let n: i64 = sqlx::query_scalar(sql).bind(schema).fetch_one(&db.pool).await.map_err(|e| db.error(e, "reading the schemas"))?;
    Ok(n > 0)
}

/// Cell `i` of a catalog row as text. sqlx's `Any` driver sees MySQL's long text (what
/// information_schema and CAST give on some servers) as a BLOB: its bytes are UTF-8.
fn text(row: &sqlx::any::AnyRow, i: usize) -> Result<Option<String>, sqlx::Error> {
    match row.try_get::<Option<String>, _>(i) {
        Ok(t) => Ok(t),
        Err(_) => Ok(row.try_get::<Option<Vec<u8>>, _>(i)?.map(|b| String::from_utf8_lossy(&b).into_owned())),
    }
}

/// The table's columns and unique keys, or `None` when there is no such table.
async fn describe(db: &Db, schema: &str, table: &str) -> Result<Option<Described>, DestinationError> {
    let doing = "reading the table's columns";
    let err = |e| db.error(e, doing);
    let (columns_sql, unique_sql, exists_sql) = match db.dialect {
        Dialect::Postgres => (
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            "SELECT i.indexrelid::bigint, a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, o) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indimmediate AND i.indisvalid \
             AND i.indpred IS NULL AND i.indexprs IS NULL AND k.o <= i.indnkeyatts \
             ORDER BY 1, k.o",
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        ),
        Dialect::Mysql => (
            // Text cast to CHAR: some servers give information_schema's text as BLOBs.
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
             CAST(COALESCE(NUMERIC_PRECISION, -1) AS SIGNED), CAST(COALESCE(NUMERIC_SCALE, -1) AS SIGNED), \
             CAST(COALESCE(DATETIME_PRECISION, -1) AS SIGNED), CAST(COLLATION_NAME AS CHAR) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            "SELECT CAST(DENSE_RANK() OVER (ORDER BY INDEX_NAME) AS SIGNED), CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             AND TABLE_TYPE = 'BASE TABLE'",
        ),
    };
    let exists: i64 = sqlx::query_scalar(exists_sql).bind(schema).bind(table).fetch_one(&db.pool).await.map_err(err)?;
    if exists == 0 {
        return Ok(None);
    }
    let rows = sqlx::query(columns_sql).bind(schema).bind(table).fetch_all(&db.pool).await.map_err(err)?;
    let mut columns = Vec::new();
    for row in rows {
        let name = text(&row, 0).map_err(err)?.unwrap_or_default();
        let first = text(&row, 1).map_err(err)?.unwrap_or_default();
        let (declared, kind, collation) = match db.dialect {
            Dialect::Postgres => (first.clone(), Dialect::postgres_kind(&first), None),
            Dialect::Mysql => {
                let column_type = text(&row, 2).map_err(err)?.unwrap_or_default();
                let number =
                    |i: usize| -> Result<Option<u32>, DestinationError> { Ok(u32::try_from(row.try_get::<i64, _>(i).map_err(err)?).ok()) };
                let kind = Dialect::mysql_kind(&first, &column_type, number(3)?, number(4)?, number(5)?);
                (column_type, kind, text(&row, 6).map_err(err)?)
            }
        };
        columns.push(Existing { name, declared, kind, collation });
    }
    let rows = sqlx::query(unique_sql).bind(schema).bind(table).fetch_all(&db.pool).await.map_err(err)?;
    let mut unique: Vec<(i64, Vec<String>)> = Vec::new();
    for row in rows {
        let (index, column): (i64, String) = (row.try_get(0).map_err(err)?, text(&row, 1).map_err(err)?.unwrap_or_default());
        match unique.last_mut() {
            Some((i, cols)) if *i == index => cols.push(column),
            _ => unique.push((index, vec![column])),
        }
    }
    Ok(Some(Described { columns, unique: unique.into_iter().map(|(_, c)| c).collect() }))
}

impl Request {
    fn qualified(&self, d: Dialect) -> String {
        format!("{}.{}", d.quote(&self.schema), d.quote(&self.table))
    }

    fn shown(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn declare(&self, d: Dialect, w: &Wanted, target: &Target) -> Result<String, DestinationError> {
        d.declare(&w.value_type, w.key).ok_or_else(|| {
            fatal(
                target,
                format!(
                    "column `{}`: sluice cannot tell its type from the model: cast it there (`CAST(x AS text)`), or create the \
                     column yourself",
                    w.name
                ),
            )
        })
    }

    /// `CREATE TABLE` for the wanted columns, keyed by the sync's key (MySQL text keys in
    /// `collation`: they compare byte for byte, trailing spaces included, as the model's do).
    async fn create_statement(&self, db: &Db, target: &Target) -> Result<String, DestinationError> {
        let d = db.dialect;
        let collation = key_collation(db).await?;
        let mut parts = Vec::new();
        for w in &self.wanted {
            let collate = match &collation {
                Some(c) if w.key && w.value_type == ValueType::Text => format!(" COLLATE {c}"),
                _ => String::new(),
            };
            parts.push(format!("{} {}{collate}{}", d.quote(&w.name), self.declare(d, w, target)?, if w.key { " NOT NULL" } else { "" }));
        }
        let keys: Vec<String> = self.keys.iter().map(|&k| d.quote(&self.wanted[k].name)).collect();
        parts.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        Ok(format!("CREATE TABLE IF NOT EXISTS {} ({})", self.qualified(d), parts.join(", ")))
    }

    fn add_column_statement(&self, d: Dialect, w: &Wanted, target: &Target) -> Result<String, DestinationError> {
        let guard = if d == Dialect::Postgres { "IF NOT EXISTS " } else { "" };
        Ok(format!("ALTER TABLE {} ADD COLUMN {guard}{} {}", self.qualified(d), d.quote(&w.name), self.declare(d, w, target)?))
    }

    /// A missing table that `create = false` keeps sluice from making.
    fn no_table(&self, target: &Target, statement: &str) -> DestinationError {
        fatal(target, format!("there is no table {} and `create = false`: create it ({statement})", self.shown()))
    }

    /// Mapped columns the table lacks, with the statements that add them: an error with
    /// `create = false`, or when one of them is a key column (sluice adds no key).
    fn cannot_add(&self, d: Dialect, target: &Target, missing: &[&Wanted]) -> Result<Vec<String>, DestinationError> {
        if let Some(key) = missing.iter().find(|w| w.key) {
            return Err(fatal(
                target,
                format!("{} has no column `{}` for the key: add it, with a unique index on the key", self.shown(), key.name),
            ));
        }
        let statements: Vec<String> = missing.iter().map(|w| self.add_column_statement(d, w, target)).collect::<Result<_, _>>()?;
        if !self.create {
            return Err(fatal(
                target,
                format!("{} lacks mapped columns and `create = false`: add them ({})", self.shown(), statements.join("; ")),
            ));
        }
        Ok(statements)
    }

    fn find<'a>(&self, d: Dialect, described: &'a Described, name: &str) -> Option<&'a Existing> {
        described.columns.iter().find(|c| if d == Dialect::Mysql { c.name.eq_ignore_ascii_case(name) } else { c.name == name })
    }

    /// The wanted columns the table lacks.
    fn missing<'a>(&'a self, d: Dialect, described: &Described) -> Vec<&'a Wanted> {
        self.wanted.iter().filter(|w| self.find(d, described, &w.name).is_none()).collect()
    }

    /// Checks the table against the sync: each wanted column there (unless `allow_missing`)
    /// with a type that holds the model's values, and a unique index on exactly the key
    /// columns. Returns warnings for the run report.
    fn verify(&self, d: Dialect, described: &Described, target: &Target, allow_missing: bool) -> Result<Vec<String>, DestinationError> {
        for w in &self.wanted {
            let Some(existing) = self.find(d, described, &w.name) else {
                if allow_missing {
                    continue;
                }
                return Err(fatal(target, format!("{} has no column `{}`", self.shown(), w.name)));
            };
            if !d.fits(&w.value_type, &existing.kind) {
                return Err(fatal(
                    target,
                    format!(
                        "column `{}` of {} is {}, but the model gives {} values: change the column's type, or cast the value in \
                         the model (sluice does not convert it silently)",
                        w.name,
                        self.shown(),
                        existing.declared,
                        w.value_type.name()
                    ),
                ));
            }
        }
        // MySQL's column names ignore case; Postgres' quoted ones do not.
        let fold = |c: &str| if d == Dialect::Mysql { c.to_lowercase() } else { c.to_string() };
        let key_names: Vec<String> = self.keys.iter().map(|&k| fold(&self.wanted[k].name)).collect();
        let same_set = |cols: &Vec<String>| {
            let mut a: Vec<String> = cols.iter().map(|c| fold(c)).collect();
            let mut b = key_names.clone();
            a.sort();
            b.sort();
            a == b
        };
        if !described.unique.iter().any(same_set) {
            let names: Vec<&str> = self.keys.iter().map(|&k| self.wanted[k].name.as_str()).collect();
            let quoted: Vec<String> = names.iter().map(|n| d.quote(n)).collect();
            return Err(fatal(
                target,
                format!(
                    "{} has no primary key or unique index on exactly ({}), which upserts need: add one \
                     (ALTER TABLE {} ADD PRIMARY KEY ({}))",
                    self.shown(),
                    names.join(", "),
                    self.qualified(d),
                    quoted.join(", ")
                ),
            ));
        }
        let mut warnings = Vec::new();
        if d == Dialect::Mysql {
            // A key compared without regard to case is one row for keys the model holds apart.
            for &k in &self.keys {
                let name = &self.wanted[k].name;
                if let Some(c) = self.find(d, described, name).and_then(|e| e.collation.as_deref()).filter(|c| c.ends_with("_ci")) {
                    warnings.push(format!(
                        "key column `{name}` of {} compares text without regard to case (collation {c}): keys that differ only in \
                         case are one row there, and the later overwrites the earlier (use a _bin collation)",
                        self.shown()
                    ));
                }
            }
        }
        Ok(warnings)
    }

    /// The table as this run writes it (see [`Request::verify`]).
    fn shape(&self, d: Dialect, described: &Described, target: &Target) -> Result<(Table, Vec<String>), DestinationError> {
        let warnings = self.verify(d, described, target, false)?;
        let mut columns = Vec::new();
        for w in &self.wanted {
            let existing =
                self.find(d, described, &w.name).ok_or_else(|| fatal(target, format!("{} has no column `{}`", self.shown(), w.name)))?;
            columns.push(Col {
                name: existing.name.clone(),
                quoted: d.quote(&existing.name),
                cast: pg_cast(&existing.kind, &existing.declared),
                kind: existing.kind.clone(),
                declared: existing.declared.clone(),
            });
        }
        let table = Table {
            dialect: d,
            name: self.qualified(d),
            shown: self.shown(),
            columns,
            keys: self.keys.clone(),
            field_base: self.field_base,
            merge: self.merge.clone(),
        };
        Ok((table, warnings))
    }
}

/// Postgres: the type a cell's text is cast to (see [`Col::cast`]).
fn pg_cast(kind: &Kind, declared: &str) -> String {
    match kind {
        Kind::Bool => "boolean".into(),
        Kind::Int => "bigint".into(),
        Kind::Float => "double precision".into(),
        Kind::Decimal { .. } => "numeric".into(),
        Kind::Text => "text".into(),
        Kind::Bytes => "bytea".into(),
        Kind::Date => "date".into(),
        Kind::Time { .. } => "time".into(),
        Kind::Timestamp { zoned: true, .. } => "timestamptz".into(),
        Kind::Timestamp { zoned: false, .. } => "timestamp".into(),
        Kind::Uuid => "uuid".into(),
        Kind::Json => if declared == "json" { "json" } else { "jsonb" }.into(),
        Kind::Array(item) => format!("{}[]", pg_cast(item, declared.trim_end_matches("[]"))),
        Kind::Other => declared.into(),
    }
}

/// Opens the table for a run: creates it, or adds the columns it lacks, when the sync allows;
/// then checks its shape.
pub async fn open(db: &Db, target: &Target) -> Result<(Table, Vec<String>), DestinationError> {
    let d = db.dialect;
    let (request, described) = read(db, target).await?;
    let described = match described {
        Some(described) => described,
        None => {
            let statement = request.create_statement(db, target).await?;
            if !request.create {
                return Err(request.no_table(target, &statement));
            }
            tracing::info!(sync = %target.sync, "creating {}: {statement}", request.shown());
            ddl(db, &statement).await.map_err(|e| db.error(e, &format!("creating {}", request.shown())))?;
            describe(db, &request.schema, &request.table)
                .await?
                .ok_or_else(|| fatal(target, format!("{} was created but cannot be read back", request.shown())))?
        }
    };
    let missing = request.missing(d, &described);
    if missing.is_empty() {
        return request.shape(d, &described, target);
    }
    for (w, statement) in missing.iter().zip(request.cannot_add(d, target, &missing)?) {
        tracing::info!(sync = %target.sync, "adding a column to {}: {statement}", request.shown());
        if let Err(e) = ddl(db, &statement).await {
            // Another sync added it meanwhile (MySQL has no ADD COLUMN IF NOT EXISTS).
            let duplicate = matches!(&e, sqlx::Error::Database(x) if x.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| m.number() == 1060));
            if !duplicate {
                return Err(db.error(e, &format!("adding column `{}` to {}", w.name, request.shown())));
            }
        }
    }
    let described = describe(db, &request.schema, &request.table)
        .await?
        .ok_or_else(|| fatal(target, format!("{} disappeared while its columns were added", request.shown())))?;
    request.shape(d, &described, target)
}

/// What `open` and `check` both start with: the server reached, the sync's request read, its
/// schema there, and the table as the catalog describes it (`None`: no such table).
async fn read(db: &Db, target: &Target) -> Result<(Request, Option<Described>), DestinationError> {
    db.reachable().await?;
    let request = request(db, target).await?;
    if !schema_exists(db, &request.schema).await? {
        return Err(missing_schema(db.dialect, &request, target));
    }
    let described = describe(db, &request.schema, &request.table).await?;
    Ok((request, described))
}

/// Runs a CREATE or ALTER. On Postgres it waits at most `DDL_LOCK_TIMEOUT` for the table's
/// lock: an ALTER queued behind a long transaction would block every query of the application
/// on that table meanwhile; it fails instead (and the run is retried).
async fn ddl(db: &Db, statement: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    if db.dialect == Dialect::Postgres {
        sqlx::query(&format!("SET LOCAL lock_timeout = '{}ms'", DDL_LOCK_TIMEOUT.as_millis())).execute(&mut *tx).await?;
    }
    sqlx::query(statement).execute(&mut *tx).await?;
    tx.commit().await
}

/// How long a CREATE or ALTER waits for a lock on Postgres.
const DDL_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn missing_schema(d: Dialect, request: &Request, target: &Target) -> DestinationError {
    let what = if d == Dialect::Mysql { "database" } else { "schema" };
    fatal(
        target,
        format!(
            "there is no {what} `{}` in {}: create it (CREATE {} {})",
            request.schema,
            d.name(),
            what.to_uppercase(),
            d.quote(&request.schema)
        ),
    )
}

/// `check`: the table's shape and the privileges a run needs, reading only. What a run would
/// create or add is fine when the user may create it.
pub async fn check(db: &Db, target: &Target) -> Result<(), DestinationError> {
    let d = db.dialect;
    let (request, described) = read(db, target).await?;
    let Some(described) = described else {
        let statement = request.create_statement(db, target).await?;
        if !request.create {
            return Err(request.no_table(target, &statement));
        }
        return may(db, &request, "CREATE", target, &statement).await;
    };
    // The columns that are there must hold the model's values; the missing ones would be
    // created as the model types them.
    let missing = request.missing(d, &described);
    request.verify(d, &described, target, true)?;
    if !missing.is_empty() {
        let statements = request.cannot_add(d, target, &missing)?;
        may(db, &request, "ALTER", target, &statements.join("; ")).await?;
    }
    table_privileges(db, &request, target).await
}

/// Whether the user may run `statement` (CREATE TABLE in the schema, or ALTER TABLE).
async fn may(db: &Db, request: &Request, privilege: &str, target: &Target, statement: &str) -> Result<(), DestinationError> {
    let d = db.dialect;
    let allowed: bool = match (d, privilege) {
        (Dialect::Postgres, "CREATE") => sqlx::query_scalar("SELECT has_schema_privilege($1, 'CREATE')")
            .bind(&request.schema)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.error(e, "reading privileges"))?,
        // Adding a column takes the table's owner (or a member of the owning role).
        (Dialect::Postgres, _) => sqlx::query_scalar(
            "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
        )
        .bind(&request.schema)
        .bind(&request.table)
        .fetch_one(&db.pool)
        .await
        .map_err(|e| db.error(e, "reading privileges"))?,
        // Global or database-wide grants of the current account (a grant through a role is
        // not seen: run the statement yourself, then set `create = false`).
        (Dialect::Mysql, privilege) => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES \
                 UNION ALL SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = ?) p \
                 WHERE p.PRIVILEGE_TYPE = ? AND p.GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
                 SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
            )
            .bind(&request.schema)
            .bind(privilege)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.error(e, "reading privileges"))?;
            n > 0
        }
    };
    if allowed {
        return Ok(());
    }
    let grant = match (d, privilege) {
        (Dialect::Postgres, "CREATE") => format!("GRANT CREATE ON SCHEMA {} TO <user>", d.quote(&request.schema)),
        (Dialect::Postgres, _) => format!("make the user the owner of {}", request.shown()),
        (Dialect::Mysql, p) => format!("GRANT {p} ON {}.* TO <user>", d.quote(&request.schema)),
    };
    Err(fatal(
        target,
        format!("a run would run `{statement}`, but the user in `url` may not ({grant}); or run it yourself and set `create = false`"),
    ))
}

/// The privileges every run needs on an existing table: SELECT, INSERT, UPDATE, and DELETE in
/// mirror mode.
async fn table_privileges(db: &Db, request: &Request, target: &Target) -> Result<(), DestinationError> {
    let d = db.dialect;
    let mut needed = vec!["SELECT", "INSERT", "UPDATE"];
    if target.mode == crate::project::Mode::Mirror {
        needed.push("DELETE");
    }
    let mut lacking = Vec::new();
    for privilege in needed {
        let allowed = match d {
            Dialect::Postgres => sqlx::query_scalar::<_, bool>("SELECT has_table_privilege($1, $2)")
                .bind(request.qualified(d))
                .bind(privilege)
                .fetch_one(&db.pool)
                .await
                .map_err(|e| db.error(e, "reading privileges"))?,
            // MySQL checks privileges before it reads a row: a statement that matches nothing,
            // rolled back, says whether it is allowed, roles and all.
            Dialect::Mysql => {
                let t = request.qualified(d);
                let k = d.quote(&request.wanted[request.keys[0]].name);
                let probe = match privilege {
                    "SELECT" => format!("SELECT {k} FROM {t} WHERE 1 = 0"),
                    "INSERT" => format!("INSERT INTO {t} ({k}) SELECT {k} FROM {t} WHERE 1 = 0"),
                    "UPDATE" => format!("UPDATE {t} SET {k} = {k} WHERE 1 = 0"),
                    _ => format!("DELETE FROM {t} WHERE 1 = 0"),
                };
                let mut tx = db.pool.begin().await.map_err(|e| db.error(e, "checking privileges"))?;
                let result = sqlx::query(&probe).execute(&mut *tx).await;
                let _ = tx.rollback().await;
                match result {
                    Ok(_) => true,
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42000") => false,
                    Err(e) => return Err(db.error(e, "checking privileges")),
                }
            }
        };
        if !allowed {
            lacking.push(privilege);
        }
    }
    if lacking.is_empty() {
        return Ok(());
    }
    Err(fatal(
        target,
        format!(
            "the user in `url` lacks {} on {}: GRANT {} ON {} TO <user>",
            lacking.join(", "),
            request.shown(),
            lacking.join(", "),
            request.qualified(d)
        ),
    ))
}
