//! JWT claims and roles: who a token speaks for and what it may do.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a token may do. Every role reads its tenant's events. Read from
/// text through [`FromStr`], so a bad role says which roles exist rather
/// than serde's "unknown variant".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Role {
    /// Every tenant; may publish and administer.
    Admin,
    /// A tenant's staff: reads and publishes.
    Operator,
    /// Read-only dashboards.
    Viewer,
    /// A platform service posting events for its tenant.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Service => "service",
        }
    }

    /// Whether the role may publish events (REST or WebSocket `Publish`).
    pub fn can_publish(self) -> bool {
        !matches!(self, Role::Viewer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            "service" => Ok(Role::Service),
            other => Err(format!(
                "unknown role `{other}`: expected admin, operator, viewer or service"
            )),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The claims of a pytake token (HS256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Absent for admin tokens, which see every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub role: Role,
    pub exp: u64,
    /// Required: the server measures a token's lifetime from it.
    pub iat: u64,
    /// Not valid before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Checked only when the server has `token_audience` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Checked only when the server has `token_issuer` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// A token's `aud`: one string or an array of them (RFC 7519, 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` is this audience or one of them.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(one) => one == aud,
            Audience::Many(many) => many.iter().any(|a| a == aud),
        }
    }
}

impl Claims {
    /// Claims with no `nbf`, `aud` or `iss`: what a pytake token carries
    /// unless the server is configured to check an audience or issuer.
    pub fn new(sub: &str, tenant_id: Option<&str>, role: Role, iat: u64, exp: u64) -> Claims {
        Claims {
            sub: sub.to_string(),
            tenant_id: tenant_id.map(str::to_string),
            role,
            iat,
            exp,
            nbf: None,
            aud: None,
            iss: None,
        }
    }

    /// The tenants these claims see: their tenant, or all for a token
    /// without one (admins).
    pub fn scope(&self) -> super::Scope<super::TenantId> {
        match &self.tenant_id {
            Some(tenant) => super::Scope::Only(super::TenantId::checked(tenant)),
            None => super::Scope::All,
        }
    }

    /// Whether these claims may see `tenant`.
    pub fn may_see(&self, tenant: &str) -> bool {
        self.role == Role::Admin || self.tenant_id.as_deref() == Some(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_role_names_the_roles_that_exist() {
        let e = serde_json::from_str::<Role>(r#""superuser""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown role `superuser`: expected admin, operator, viewer or service"
        );
        assert_eq!(
            serde_json::from_str::<Role>(r#""operator""#).unwrap(),
            Role::Operator
        );
        assert_eq!(
            serde_json::to_string(&Role::Service).unwrap(),
            r#""service""#
        );
    }
}
