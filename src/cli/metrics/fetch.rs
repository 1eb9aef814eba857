//! What one refresh of `pytake metrics` fetches, and its three forms: the
//! API's JSON as sent, a table, CSV.

use serde::Serialize;
use serde_json::value::RawValue;

use super::{csv, render, View};
use crate::cli::exit::UsageError;
use crate::client::{ApiClient, Fetched};
use crate::protocol::campaigns::{
    CampaignDashboard, CampaignList, CampaignMetrics, CampaignPerformance,
};
use crate::protocol::dashboard::{Overview, Series};

/// One refresh's bodies.
#[derive(Debug)]
pub enum Data {
    Overview(Fetched<Overview>),
    Series(Fetched<Series>),
    Campaigns {
        list: Fetched<CampaignList>,
        dashboard: Fetched<CampaignDashboard>,
    },
    Campaign {
        metrics: Fetched<CampaignMetrics>,
        performance: Fetched<CampaignPerformance>,
    },
    System(Fetched<Overview>),
}

/// `metrics campaigns --output json`: both bodies, each as sent.
#[derive(Serialize)]
struct CampaignsJson<'a> {
    campaigns: &'a RawValue,
    dashboard: &'a RawValue,
}

/// `metrics campaign ID --output json`: both bodies, each as sent.
#[derive(Serialize)]
struct CampaignJson<'a> {
    metrics: &'a RawValue,
    performance: &'a RawValue,
}

/// The body inside `{"campaigns": [...]}`, as sent.
#[derive(serde::Deserialize)]
struct ListRaw<'a> {
    #[serde(borrow)]
    campaigns: &'a RawValue,
}

/// The overview's `system` and `subsystems`, as sent.
#[derive(serde::Deserialize, Serialize)]
struct SystemRaw<'a> {
    #[serde(borrow)]
    system: &'a RawValue,
    #[serde(borrow)]
    subsystems: &'a RawValue,
}

impl Data {
    /// Fetches `view` (the campaign views make two requests, at once).
    pub async fn fetch(api: &ApiClient, view: &View) -> anyhow::Result<Data> {
        let tenant = view.common().tenant.as_deref();
        Ok(match view {
            View::Overview(_) => Data::Overview(api.overview(tenant).await?),
            View::System(_) => Data::System(api.overview(tenant).await?),
            View::Series(a) => Data::Series(api.series(a.period, &a.metrics, tenant).await?),
            View::Campaigns(a) => {
                let (list, dashboard) = tokio::join!(
                    api.campaigns(tenant, a.limit),
                    api.campaign_dashboard(tenant)
                );
                Data::Campaigns {
                    list: list?,
                    dashboard: dashboard?,
                }
            }
            View::Campaign(a) => {
                let (metrics, performance) = tokio::join!(
                    api.campaign_metrics(&a.id, tenant),
                    api.campaign_performance(&a.id, tenant)
                );
                Data::Campaign {
                    metrics: metrics?,
                    performance: performance?,
                }
            }
        })
    }

    /// One line of JSON: the API's body (for `system`, the overview's
    /// `system` and `subsystems`; for the campaign views, both bodies).
    pub fn json(&self) -> anyhow::Result<String> {
        Ok(match self {
            Data::Overview(f) => f.raw.get().to_string(),
            Data::Series(f) => f.raw.get().to_string(),
            Data::System(f) => {
                let raw: SystemRaw = serde_json::from_str(f.raw.get())?;
                serde_json::to_string(&raw)?
            }
            Data::Campaigns { list, dashboard } => {
                let inner: ListRaw = serde_json::from_str(list.raw.get())?;
                serde_json::to_string(&CampaignsJson {
                    campaigns: inner.campaigns,
                    dashboard: &dashboard.raw,
                })?
            }
            Data::Campaign {
                metrics,
                performance,
            } => serde_json::to_string(&CampaignJson {
                metrics: &metrics.raw,
                performance: &performance.raw,
            })?,
        })
    }

    /// The view's tables.
    pub fn table(&self, color: bool) -> String {
        match self {
            Data::Overview(f) => render::overview(&f.body, color),
            Data::System(f) => render::system(&f.body, color),
            Data::Series(f) => render::series(&f.body, color),
            Data::Campaigns { list, dashboard } => {
                render::campaigns(&list.body.campaigns, &dashboard.body, color)
            }
            Data::Campaign {
                metrics,
                performance,
            } => render::campaign(&metrics.body, &performance.body, color),
        }
    }

    /// The view as CSV.
    pub fn csv(&self) -> Result<Vec<u8>, UsageError> {
        Ok(match self {
            Data::Overview(f) => csv::overview(&f.body),
            Data::System(f) => csv::system(&f.body),
            Data::Series(f) => csv::series(&f.body),
            Data::Campaigns { list, .. } => csv::campaigns(&list.body.campaigns),
            Data::Campaign { .. } => return Err(no_campaign_csv()),
        })
    }
}

/// Why `metrics campaign ID --output csv` is refused (before any request).
pub fn no_campaign_csv() -> UsageError {
    UsageError(
        "a campaign's view is several tables, so it has no CSV form: use --output json, \
         `pytake metrics campaigns --output csv` for the campaigns' figures, or \
         `pytake export campaign ID` for its report"
            .into(),
    )
}
