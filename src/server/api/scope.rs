//! Which tenants a request is about.

use super::ApiError;
use crate::protocol::{Claims, Role, Scope, TenantId};

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
