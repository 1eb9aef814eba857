//! `GET /metrics` as a test reads it: samples by series, and waiting for
//! one to reach a value.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::{TestServer, DEADLINE};

/// A scrape: every sample by its series (`name{labels}` as written).
pub struct Scrape {
    pub text: String,
    pub samples: HashMap<String, f64>,
}

impl Scrape {
    pub fn parse(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("series and value");
                (series.to_string(), value.parse().expect("a number"))
            })
            .collect();
        Scrape { text, samples }
    }

    pub fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in\n{}", self.text))
    }

    /// The families, by name.
    pub fn families(&self) -> BTreeSet<String> {
        self.text
            .lines()
            .filter_map(|l| Some(l.strip_prefix("# TYPE ")?.split_once(' ')?.0.to_string()))
            .collect()
    }

    /// The label sections of every sample.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.samples
            .keys()
            .filter_map(|s| Some(s.split_once('{')?.1.trim_end_matches('}')))
    }
}

pub async fn scrape(server: &TestServer) -> Scrape {
    let response = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape::parse(response.text().await.expect("body"))
}

/// Scrapes until `series` reads `value`, within the deadline.
pub async fn scrape_until(server: &TestServer, series: &str, value: f64) -> Scrape {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let scrape = scrape(server).await;
        if scrape.samples.get(series) == Some(&value) {
            return scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never reached {value}:\n{}",
            scrape.text
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
