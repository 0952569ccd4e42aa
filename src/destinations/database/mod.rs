//! `postgres` and `mysql`: a table kept equal to the model. See docs/destinations.md.
//!
//! Rows are matched by the sync's key, a whole batch per statement and one transaction per
//! batch: the keys the table holds are read and locked, those rows updated (`UPDATE ... FROM`),
//! new ones inserted (Postgres: `INSERT ... ON CONFLICT (key) DO UPDATE`; MySQL: a plain INSERT,
//! since its ON DUPLICATE KEY UPDATE fires on any unique index). The table is created from the model's column types when it
//! is missing, and mapped columns it lacks are added (`schema`); columns nobody maps are never
//! touched. A value its column would round or cut is that row's rejection (`encoding`), and a
//! row the database refuses (a constraint, a type) is singled out by the engine's split
//! retries, never failing the batch's good rows. Record ids are the keys themselves.

mod client;
mod config;
mod dialect;
mod encoding;
mod schema;
mod sql;
mod writer;

pub use config::DatabaseConfig;
pub use dialect::Dialect;

use std::sync::Arc;

use async_trait::async_trait;

use self::client::Db;
use self::writer::TableWriter;
use crate::destinations::{Capabilities, Destination, DestinationError, Target, Writer};

pub struct DatabaseDestination {
    config: DatabaseConfig,
    db: Arc<Db>,
}

impl DatabaseDestination {
    pub fn from_settings(dialect: Dialect, settings: &toml::Table) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<DatabaseConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        let db = Db::new(dialect, &config)?;
        Ok(DatabaseDestination { config, db: Arc::new(db) })
    }
}

#[async_trait]
impl Destination for DatabaseDestination {
    /// The server and database (never the user or password): another database holds none of
    /// the rows.
    async fn identity(&self) -> Result<String, DestinationError> {
        Ok(self.db.shown.clone())
    }

    fn capabilities(&self) -> Capabilities {
        // `if_empty`: the statement itself keeps a stored value (COALESCE).
        Capabilities {
            if_empty: true,
            max_in_flight: self.config.requests.max_in_flight.min(self.config.max_connections.max(1) as usize),
            ..Capabilities::every_mode(
                self.config.requests.max_batch_rows,
                self.config.requests.max_attempts,
                self.config.requests.retry_initial_delay,
            )
        }
    }

    /// The connection, the table's shape against the sync, and the privileges a run needs.
    /// Reads only.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        schema::check(&self.db, target).await
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        let (table, warnings) = schema::open(&self.db, target).await?;
        Ok(Box::new(TableWriter { db: self.db.clone(), table: Arc::new(table), warnings }))
    }
}

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::DatabaseConfig, config::TableTarget>(&config::REQUESTS)
}
