use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

/// This destination's defaults for the request settings every destination takes. A batch is
/// one transaction; a few go side by side (different keys never wait on each other's locks).
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: Some(1_000),
    timeout: Some(Duration::from_secs(60)),
    max_attempts: Some(5),
    retry_initial_delay: Some(Duration::from_secs(1)),
    max_in_flight: Some(4),
};

/// A table in a PostgreSQL (`kind = "postgres"`) or MariaDB/MySQL (`kind = "mysql"`) database,
/// kept equal to the model by key, one transaction per batch (stored rows updated, new ones
/// inserted); the table created, and missing columns added, from the model's types.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:5432/database` or `mysql://user:password@host:3306/database`
    /// (TLS and the like as the driver's query parameters: `sslmode`, `ssl-mode`).
    #[schemars(with = "crate::project::schema::Secret")]
    pub url: SecretString,
    /// Connections to the server at most (each batch in flight holds one while it commits).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// The request settings (`destinations::requests`, with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}

fn default_max_connections() -> u32 {
    4
}

/// The table this sync keeps equal to its model.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableTarget {
    /// `schema.table`, or `table` (the connection's default schema: `current_schema()` on
    /// Postgres, the URL's database on MySQL). Names are taken exactly as written (quoted): case,
    /// spaces and reserved words are kept. A name with a dot in it: give `schema` apart.
    pub table: String,
    /// The schema (a database, on MySQL), when not written in `table`.
    pub schema: Option<String>,
    /// Create the table when it is missing, and add mapped columns it lacks. Off: a missing
    /// table or column is an error naming the statement to run.
    #[serde(default = "yes")]
    pub create: bool,
}

fn yes() -> bool {
    true
}
