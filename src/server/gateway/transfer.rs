//! The `Transfer` frame: the WebSocket face of
//! [`crate::server::conversations::transfer`]. Every refusal is an `Error`
//! frame and the connection stays open; success has no reply of its own,
//! the `ConversationTransferred` event is the confirmation to every
//! subscriber of its rooms, the sender included.

use super::connection::{Connection, Socket, Step};
use crate::protocol::{ErrorCode, TenantId};
use crate::server::conversations::{transfer, TransferError};

impl Connection {
    pub(super) async fn transfer(
        &mut self,
        socket: &mut Socket,
        conversation_id: String,
        to_user: String,
        note: Option<String>,
        tenant_id: Option<String>,
    ) -> Step {
        let claims = self.claims.clone().expect("checked by caller");
        let tenant = match (claims.tenant_id.as_deref(), tenant_id.as_deref()) {
            (Some(own), None) => TenantId::checked(own),
            (_, Some(named)) => match TenantId::parse(named) {
                Ok(tenant) => tenant,
                Err(e) => {
                    let message = format!("payload.tenant_id: {e}");
                    return self
                        .send_error(socket, ErrorCode::BadMessage, message)
                        .await;
                }
            },
            (None, None) => {
                let message = "payload.tenant_id: an admin token names the conversation's tenant";
                return self
                    .send_error(socket, ErrorCode::BadMessage, message)
                    .await;
            }
        };
        let state = self.state.clone();
        let done = transfer(
            &state,
            &claims,
            &tenant,
            &conversation_id,
            &to_user,
            note.as_deref(),
        )
        .await;
        let (code, message) = match done {
            Ok(_) => return Ok(()),
            Err(TransferError::Forbidden(message)) => (ErrorCode::Forbidden, message),
            Err(TransferError::Invalid(e)) => (
                ErrorCode::BadMessage,
                format!("payload.{}: {}", e.field, e.problem),
            ),
            Err(TransferError::Conflict(message)) => (ErrorCode::Conflict, message),
            Err(e @ TransferError::Unavailable(_)) => (ErrorCode::Unavailable, e.to_string()),
        };
        self.send_error(socket, code, message).await
    }
}
