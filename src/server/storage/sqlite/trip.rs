//! Whole transactions sent to SQLite as one query. sqlx runs each SQLite
//! connection on a thread of its own, and every statement is a round trip
//! to it: two thread switches, which on a busy 2-core machine cost more
//! than the statement. A write that knows all its statements up front
//! (`BEGIN IMMEDIATE; ...; COMMIT;`) makes one trip with the write turn
//! held, instead of one per statement.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{FromRow, QueryBuilder, Sqlite};

use crate::server::storage::StoreError;

/// A pooled connection that is closed, not returned, if dropped before
/// [`CloseUnlessDone::done`]: a write stopped mid-flight (its task dropped
/// when the runtime shuts down) may leave its transaction open, and closing
/// the connection rolls it back.
pub(super) struct CloseUnlessDone(Option<PoolConnection<Sqlite>>);

impl CloseUnlessDone {
    pub(super) async fn acquire(pool: &SqlitePool) -> Result<CloseUnlessDone, StoreError> {
        Ok(CloseUnlessDone(Some(pool.acquire().await?)))
    }

    pub(super) fn conn(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("connection until done")
    }

    pub(super) fn done(mut self) {
        self.0.take();
    }

    /// After a failed statement: the ones before it ran inside the
    /// transaction, so end it, or give the connection up.
    pub(super) async fn roll_back(mut self) {
        if sqlx::query("ROLLBACK").execute(self.conn()).await.is_ok() {
            self.done();
        }
    }
}

impl Drop for CloseUnlessDone {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// Runs `query`, a whole transaction from `BEGIN IMMEDIATE` to `COMMIT`,
/// in one trip, and returns the rows its statements return. The caller
/// holds the write turn.
pub(super) async fn rows_in_one_trip<T>(
    pool: &SqlitePool,
    mut query: QueryBuilder<'_, Sqlite>,
    persistent: bool,
) -> Result<Vec<T>, StoreError>
where
    T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
{
    let mut conn = CloseUnlessDone::acquire(pool).await?;
    match query
        .build_query_as::<T>()
        .persistent(persistent)
        .fetch_all(conn.conn())
        .await
    {
        Ok(rows) => {
            conn.done();
            Ok(rows)
        }
        Err(e) => {
            conn.roll_back().await;
            Err(e.into())
        }
    }
}
