//! What one `pytake alerts` request fetches, and its forms: the API's
//! JSON as sent, a table (or a line saying what was done), CSV for the
//! listings.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::rules::{RuleAction, RulesArgs, RulesListArgs};
use super::{csv, refused, render, Action};
use crate::client::alerts::{AlertQuery, NewSilenceRequest};
use crate::client::{ApiClient, Fetched};
use crate::config::duration;
use crate::protocol::alerts::{Alert, AlertRule, AlertState, Incident, Silence};

/// `GET /api/v1/alerts`: alerts newest first, and the time the listing
/// starts at (the server's default when none was asked for).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlertsPage {
    pub alerts: Vec<Alert>,
    pub since: String,
}

/// `GET /api/v1/alerts/incidents`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IncidentsPage {
    pub incidents: Vec<Incident>,
}

/// `GET /api/v1/alerts/rules`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RulesPage {
    pub rules: Vec<AlertRule>,
}

/// `GET /api/v1/alerts/silences`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SilencesPage {
    pub silences: Vec<Silence>,
}

/// `POST /api/v1/alerts/{id}/ack`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Acked {
    pub incident: Incident,
}

/// What an alert listing asked for, to say it above the table.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertListing {
    pub state: Option<AlertState>,
    pub tenant: Option<String>,
    pub limit: u32,
}

/// What an incident listing asked for; `since` none: the server's
/// default.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentListing {
    pub tenant: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// One request's reply.
#[derive(Debug)]
pub enum Reply {
    Alerts {
        page: Fetched<AlertsPage>,
        listing: AlertListing,
    },
    Incidents {
        page: Fetched<IncidentsPage>,
        listing: IncidentListing,
    },
    Rules {
        page: Fetched<RulesPage>,
        tenant: Option<String>,
    },
    Rule(Fetched<AlertRule>),
    Added(Fetched<AlertRule>),
    /// The rule's id (the server answers 204, no body).
    Removed(String),
    /// Enabled or disabled: the rule says which.
    Toggled(Fetched<AlertRule>),
    Acked(Fetched<Acked>),
    Silenced(Fetched<Silence>),
    Silences {
        page: Fetched<SilencesPage>,
        all: bool,
    },
    /// The silence's id (204, no body).
    Unsilenced(String),
}

impl Reply {
    /// Makes `action`'s request; `now` dates a `--since` given as a
    /// duration. The server's refusals come back as [`super::Refused`].
    pub async fn fetch(
        api: &ApiClient,
        action: &Action,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Reply> {
        Ok(match action {
            Action::List(a) => {
                let query = AlertQuery {
                    state: a.state.map(|s| s.name().to_string()),
                    tenant_id: a.tenant.clone(),
                    since: a.since.as_ref().and_then(|s| s.time(now)),
                    limit: Some(a.limit),
                };
                Reply::Alerts {
                    page: api.alerts(&query).await.map_err(refused)?,
                    listing: AlertListing {
                        state: a.state,
                        tenant: a.tenant.clone(),
                        limit: a.limit,
                    },
                }
            }
            Action::Incidents(a) => {
                let listing = IncidentListing {
                    tenant: a.tenant.clone(),
                    since: a.since.as_ref().and_then(|s| s.time(now)),
                    limit: a.limit,
                };
                let page = api
                    .incidents(
                        listing.tenant.as_deref(),
                        listing.since,
                        Some(listing.limit),
                    )
                    .await
                    .map_err(refused)?;
                Reply::Incidents { page, listing }
            }
            Action::Rules(r) => Reply::rules(api, r).await?,
            Action::Ack(a) => Reply::Acked(api.acknowledge_alert(&a.id).await.map_err(refused)?),
            Action::Silence(a) => {
                let silence = NewSilenceRequest {
                    rule_id: a.rule.clone(),
                    tenant_id: a.tenant.clone(),
                    for_: duration::format(a.for_),
                    reason: a.reason.clone(),
                };
                Reply::Silenced(api.add_silence(&silence).await.map_err(refused)?)
            }
            Action::Silences(a) => Reply::Silences {
                page: api
                    .silences(a.tenant.as_deref(), a.all)
                    .await
                    .map_err(refused)?,
                all: a.all,
            },
            Action::Unsilence(a) => {
                api.delete_silence(&a.id).await.map_err(refused)?;
                Reply::Unsilenced(a.id.clone())
            }
        })
    }

    async fn rules(api: &ApiClient, args: &RulesArgs) -> anyhow::Result<Reply> {
        Ok(match &args.action {
            None => Reply::rule_list(api, &args.list).await?,
            Some(RuleAction::List(l)) => Reply::rule_list(api, l).await?,
            Some(RuleAction::Show(r)) => Reply::Rule(api.alert_rule(&r.id).await.map_err(refused)?),
            Some(RuleAction::Add(a)) => {
                Reply::Added(api.create_alert_rule(&a.body()).await.map_err(refused)?)
            }
            Some(RuleAction::Rm(r)) => {
                api.delete_alert_rule(&r.id).await.map_err(refused)?;
                Reply::Removed(r.id.clone())
            }
            Some(RuleAction::Enable(r)) => Reply::Toggled(
                api.set_alert_rule_enabled(&r.id, true)
                    .await
                    .map_err(refused)?,
            ),
            Some(RuleAction::Disable(r)) => Reply::Toggled(
                api.set_alert_rule_enabled(&r.id, false)
                    .await
                    .map_err(refused)?,
            ),
        })
    }

    async fn rule_list(api: &ApiClient, list: &RulesListArgs) -> anyhow::Result<Reply> {
        let page = api
            .alert_rules(list.tenant.as_deref())
            .await
            .map_err(refused)?;
        Ok(Reply::Rules {
            page,
            tenant: list.tenant.clone(),
        })
    }

    /// One line of JSON: the API's body as sent; `None` after a delete,
    /// which has no body.
    pub fn json(&self) -> Option<&str> {
        Some(match self {
            Reply::Alerts { page, .. } => page.raw.get(),
            Reply::Incidents { page, .. } => page.raw.get(),
            Reply::Rules { page, .. } => page.raw.get(),
            Reply::Rule(f) | Reply::Added(f) | Reply::Toggled(f) => f.raw.get(),
            Reply::Acked(f) => f.raw.get(),
            Reply::Silenced(f) => f.raw.get(),
            Reply::Silences { page, .. } => page.raw.get(),
            Reply::Removed(_) | Reply::Unsilenced(_) => return None,
        })
    }

    /// The tables, or the line saying what was done; times relative to
    /// `now`.
    pub fn table(&self, color: bool, now: DateTime<Utc>) -> String {
        match self {
            Reply::Alerts { page, listing } => render::alerts(&page.body, listing, now, color),
            Reply::Incidents { page, listing } => {
                render::incidents(&page.body.incidents, listing, now, color)
            }
            Reply::Rules { page, tenant } => {
                render::rules(&page.body.rules, tenant.as_deref(), color)
            }
            Reply::Rule(f) => render::rule(&f.body, "rule", color),
            Reply::Added(f) => render::rule(&f.body, "added rule", color),
            Reply::Removed(id) => render::removed(id),
            Reply::Toggled(f) => render::toggled(&f.body),
            Reply::Acked(f) => render::acked(&f.body.incident, now),
            Reply::Silenced(f) => render::silenced(&f.body),
            Reply::Silences { page, all } => {
                render::silences(&page.body.silences, *all, now, color)
            }
            Reply::Unsilenced(id) => render::unsilenced(id),
        }
    }

    /// A listing as CSV; `None` for the other replies, which are not
    /// tables of rows (clap offers `--output csv` only for listings).
    pub fn csv(&self) -> Option<Vec<u8>> {
        match self {
            Reply::Alerts { page, .. } => Some(csv::alerts(&page.body.alerts)),
            Reply::Incidents { page, .. } => Some(csv::incidents(&page.body.incidents)),
            Reply::Rules { page, .. } => Some(csv::rules(&page.body.rules)),
            Reply::Silences { page, .. } => Some(csv::silences(&page.body.silences)),
            _ => None,
        }
    }
}
