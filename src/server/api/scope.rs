//! Which tenants a request is about.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::ApiError;
use crate::protocol::events::validate_event_types;
use crate::protocol::{Claims, Role, Room, Scope, TenantId};

/// The tenant a request names with `tenant_id`, or the token's own scope
/// (its tenant; every tenant for an admin) when it names none. A tenant
/// token naming another tenant is 403.
pub fn tenant_scope(claims: &Claims, asked: Option<&str>) -> Result<Scope<TenantId>, ApiError> {
    match asked {
        Some(t) => {
            let tenant = TenantId::parse(t).map_err(|e| ApiError::bad_param("tenant_id", e))?;
            if !claims.may_see(t) {
                return Err(ApiError::Forbidden(format!(
                    "this token may not see tenant `{t}`"
                )));
            }
            Ok(Scope::Only(tenant))
        }
        None => {
            debug_assert!(claims.tenant_id.is_some() || claims.role == Role::Admin);
            Ok(claims.scope())
        }
    }
}

/// The query's filters every event read shares: `rooms` and `event_types`
/// (comma-separated lists, empty entries ignored), each checked.
pub fn event_filters(
    params: &HashMap<String, String>,
) -> Result<(Vec<Room>, Option<Vec<String>>), ApiError> {
    let list = |name: &str| -> Vec<String> {
        params
            .get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let rooms = list("rooms")
        .iter()
        .map(|room| Room::parse(room).map_err(|e| ApiError::bad_param("rooms", e)))
        .collect::<Result<Vec<Room>, ApiError>>()?;
    let types = validate_event_types(Some(list("event_types")))
        .map_err(|e| ApiError::bad_param("event_types", e))?;
    Ok((rooms, types))
}

/// An RFC 3339 time parameter, if given.
pub fn time_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .get(name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError::bad_param(name, format!("`{t}` is not an RFC 3339 time: {e}"))
                })
        })
        .transpose()
}
