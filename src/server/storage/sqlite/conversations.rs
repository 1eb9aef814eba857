//! Conversation assignments on SQLite: a transfer is one `BEGIN
//! IMMEDIATE` transaction under the write turn, so transfers of one
//! conversation (of any, in fact) are serialized by the single writer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::insert_jobs;
use super::SqliteStore;
use crate::protocol::conversations::{Conversation, Transfer};
use crate::protocol::{EventId, TenantId};
use crate::server::storage::conversations::{
    next_transfer, time, ConversationStore, NewTransfer, Outbox, TransferRow, TRANSFER_COLUMNS,
};
use crate::server::storage::StoreError;

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn transfer(
        &self,
        transfer: &NewTransfer,
        outbox: &Outbox,
        now: DateTime<Utc>,
    ) -> Result<Transfer, StoreError> {
        let tenant = transfer.tenant_id.as_str();
        let id = transfer.conversation_id.as_str();
        let _write = self.writes.urgent().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<(String, i64)> = sqlx::query_as(
            "SELECT assignee, transfers FROM conversation_assignments \
             WHERE tenant_id = ?1 AND conversation_id = ?2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let record = match next_transfer(transfer, current, now) {
            Ok(record) => record,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        };
        let at = record.at.timestamp_millis();
        sqlx::query(
            "INSERT INTO conversation_assignments (tenant_id, conversation_id, assignee, assigned_at, transfers) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET \
             assignee = excluded.assignee, assigned_at = excluded.assigned_at, \
             transfers = excluded.transfers",
        )
        .bind(tenant)
        .bind(id)
        .bind(&record.to_user)
        .bind(at)
        .bind(record.seq)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO conversation_transfers ({TRANSFER_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)"
        ))
        .bind(tenant)
        .bind(id)
        .bind(record.seq)
        .bind(&record.from_user)
        .bind(&record.to_user)
        .bind(&record.note)
        .bind(&record.by)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        insert_jobs(&mut tx, &[outbox(&record)], now).await?;
        tx.commit().await?;
        self.wake_workers();
        Ok(record)
    }

    async fn set_event_id(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        seq: i64,
        event_id: EventId,
    ) -> Result<(), StoreError> {
        let _write = self.writes.urgent().await;
        sqlx::query(
            "UPDATE conversation_transfers SET event_id = ?4 \
             WHERE tenant_id = ?1 AND conversation_id = ?2 AND seq = ?3 AND event_id IS NULL",
        )
        .bind(tenant.as_str())
        .bind(conversation_id)
        .bind(seq)
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn conversation(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Conversation, StoreError> {
        // One read transaction: the assignee and the history agree.
        let mut tx = self.pool.begin().await?;
        let head: Option<(String, i64)> = sqlx::query_as(
            "SELECT assignee, assigned_at FROM conversation_assignments \
             WHERE tenant_id = ?1 AND conversation_id = ?2",
        )
        .bind(tenant.as_str())
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((assignee, assigned_at)) = head else {
            return Err(StoreError::NotFound {
                what: "conversation",
                id: conversation_id.to_string(),
            });
        };
        let rows: Vec<TransferRow> = sqlx::query_as(&format!(
            "SELECT {TRANSFER_COLUMNS} FROM conversation_transfers \
             WHERE tenant_id = ?1 AND conversation_id = ?2 AND seq < ?4 \
             ORDER BY seq DESC LIMIT ?3"
        ))
        .bind(tenant.as_str())
        .bind(conversation_id)
        .bind(i64::from(limit))
        .bind(before.unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut transfers = rows
            .into_iter()
            .map(TransferRow::into_transfer)
            .collect::<Result<Vec<_>, _>>()?;
        transfers.reverse();
        Ok(Conversation {
            conversation_id: conversation_id.to_string(),
            tenant_id: tenant.as_str().to_string(),
            assignee: Some(assignee),
            assigned_at: Some(time(assigned_at, "conversation", conversation_id)?),
            transfers,
        })
    }
}
