//! Reading history through the REST API (`GET /api/v1/events`), which pages
//! forward only: `--no-follow`, `--tail N` and where `--since TIME` starts.

use std::collections::VecDeque;
use std::io::Write;

use chrono::{DateTime, Utc};

use super::print::{Flow, Printer};
use crate::client::{ApiClient, ClientError, HistoryParams};
use crate::protocol::api::EventsPage;
use crate::protocol::limits::MAX_PAGE;
use crate::protocol::{Event, EventId};

/// Pages of one filtered history: the server filters by room, type and
/// tenant, so every event a page holds matches.
pub trait Pages {
    /// Up to `limit` matching events with ids above `since`, oldest first.
    async fn page(&self, since: EventId, limit: u32) -> Result<EventsPage, ClientError>;
    /// The id just before the first matching event received at or after
    /// `time`: where `--since TIME` starts.
    async fn id_before(&self, time: DateTime<Utc>) -> Result<EventId, ClientError>;
    /// The newest event id on the server, matching or not.
    async fn head(&self) -> Result<EventId, ClientError>;
}

/// The REST API with the command's filters.
pub struct Rest<'a> {
    pub api: &'a ApiClient,
    pub filter: HistoryParams,
}

impl Pages for Rest<'_> {
    async fn page(&self, since: EventId, limit: u32) -> Result<EventsPage, ClientError> {
        self.api
            .events(&HistoryParams {
                since: Some(since),
                limit: Some(limit),
                ..self.filter.clone()
            })
            .await
    }

    async fn id_before(&self, time: DateTime<Utc>) -> Result<EventId, ClientError> {
        let page = self
            .api
            .events(&HistoryParams {
                since_time: Some(time),
                limit: Some(1),
                ..self.filter.clone()
            })
            .await?;
        // Nothing matched: the server says where it looked up to.
        Ok(page
            .events
            .first()
            .map(|e| e.id - 1)
            .unwrap_or(page.next_since))
    }

    async fn head(&self) -> Result<EventId, ClientError> {
        Ok(self.api.health().await?.last_event_id)
    }
}

/// Prints the events after `after` up to the server's head when the first
/// page is read, so a busy server cannot keep `--no-follow` going forever.
/// Returns whether the printer wants more, and that head: where a stream
/// that follows should start.
pub async fn print_after<W: Write>(
    pages: &impl Pages,
    after: EventId,
    printer: &mut Printer<W>,
) -> anyhow::Result<(Flow, EventId)> {
    let mut since = after;
    let mut head = None;
    loop {
        let page = pages.page(since, MAX_PAGE).await?;
        let head = *head.get_or_insert(page.head.max(after));
        for event in &page.events {
            if event.id > head {
                return Ok((Flow::More, head));
            }
            if printer.event(event)? == Flow::Done {
                return Ok((Flow::Done, head));
            }
        }
        if page.events.len() < MAX_PAGE as usize || page.next_since >= head {
            return Ok((Flow::More, head));
        }
        since = page.next_since;
    }
}

/// The last `n` matching events with ids up to `head` that `keep` accepts,
/// oldest first.
///
/// History pages forward only, and matching events may be sparse (a quiet
/// room among busy ones), so no id range is known to hold the last `n`.
/// This reads backwards in windows that double: `(head - n, head]` first,
/// then the `2n` ids before it, then `4n`, until `n` events are found or
/// the window reaches id 0. Each window is read forward (the server
/// filters, so only matching events travel) keeping only the newest it
/// still needs, so memory stays at `n` events and each event is read once.
/// A dense stream costs one request; a sparse one, one request per
/// doubling (about 20 for a million ids).
pub async fn last_n(
    pages: &impl Pages,
    n: usize,
    head: EventId,
    keep: impl Fn(&Event) -> bool,
) -> Result<Vec<Event>, ClientError> {
    let mut found: VecDeque<Event> = VecDeque::new();
    let mut hi = head;
    let mut width = EventId::try_from(n.max(1)).unwrap_or(EventId::MAX);
    while found.len() < n && hi > 0 {
        let lo = hi.saturating_sub(width).max(0);
        let need = n - found.len();
        let mut window: VecDeque<Event> = VecDeque::new();
        let mut since = lo;
        'window: loop {
            let page = pages.page(since, MAX_PAGE).await?;
            for event in &page.events {
                if event.id > hi {
                    break 'window;
                }
                if keep(event) {
                    window.push_back(event.clone());
                    if window.len() > need {
                        window.pop_front();
                    }
                }
            }
            if page.events.len() < MAX_PAGE as usize || page.next_since >= hi {
                break;
            }
            since = page.next_since;
        }
        while let Some(event) = window.pop_back() {
            found.push_front(event);
        }
        hi = lo;
        width = width.saturating_mul(2);
    }
    Ok(found.into())
}

#[cfg(test)]
mod tests {
    use super::super::print::tests::event;
    use super::*;
    use std::cell::Cell;

    /// A store of events with ids 1..=head, of which those `matching`
    /// pass the filter; counts the requests.
    struct Fake {
        events: Vec<Event>,
        head: EventId,
        requests: Cell<usize>,
    }

    impl Fake {
        fn new(head: EventId, matching: impl Fn(EventId) -> bool) -> Fake {
            let events = (1..=head)
                .filter(|id| matching(*id))
                .map(|id| event(id, "2026-01-01T10:00:00Z"))
                .collect();
            Fake {
                events,
                head,
                requests: Cell::new(0),
            }
        }
    }

    impl Pages for Fake {
        async fn page(&self, since: EventId, limit: u32) -> Result<EventsPage, ClientError> {
            self.requests.set(self.requests.get() + 1);
            let events: Vec<Event> = self
                .events
                .iter()
                .filter(|e| e.id > since)
                .take(limit as usize)
                .cloned()
                .collect();
            Ok(EventsPage {
                next_since: events.last().map_or(since, |e| e.id),
                events,
                head: self.head,
            })
        }

        async fn id_before(&self, _: DateTime<Utc>) -> Result<EventId, ClientError> {
            unreachable!()
        }

        async fn head(&self) -> Result<EventId, ClientError> {
            Ok(self.head)
        }
    }

    fn ids(events: &[Event]) -> Vec<EventId> {
        events.iter().map(|e| e.id).collect()
    }

    #[tokio::test]
    async fn the_last_n_of_a_dense_history_take_one_request() {
        let fake = Fake::new(5000, |_| true);
        let last = last_n(&fake, 3, 5000, |_| true).await.unwrap();
        assert_eq!(ids(&last), [4998, 4999, 5000]);
        assert_eq!(fake.requests.get(), 1);
    }

    #[tokio::test]
    async fn the_last_n_of_a_sparse_history_are_found_by_doubling() {
        // Every 700th id matches: the last 4 are spread over 2800 ids.
        let fake = Fake::new(10_000, |id| id % 700 == 0);
        let last = last_n(&fake, 4, 10_000, |_| true).await.unwrap();
        assert_eq!(ids(&last), [7700, 8400, 9100, 9800]);
        // Windows of 4, 8, ..., 2048 ids: 10 of them, one page each.
        assert_eq!(fake.requests.get(), 10);

        let few = Fake::new(3000, |id| id == 5 || id == 2999);
        let last = last_n(&few, 10, 3000, |_| true).await.unwrap();
        assert_eq!(ids(&last), [5, 2999], "fewer than n: all of them");
    }

    #[tokio::test]
    async fn the_last_n_respect_keep_and_page_through_big_windows() {
        let fake = Fake::new(5000, |_| true);
        let last = last_n(&fake, 1500, 5000, |e| e.id % 2 == 0).await.unwrap();
        assert_eq!(last.len(), 1500);
        assert_eq!((last[0].id, last[1499].id), (2002, 5000));
        let empty = Fake::new(0, |_| true);
        assert!(last_n(&empty, 3, 0, |_| true).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn no_follow_stops_at_the_head_it_first_saw() {
        let fake = Fake::new(2500, |id| id > 10);
        let mut printer = Printer::new(
            Vec::new(),
            crate::cli::output::OutputFormat::Json,
            false,
            None,
            None,
        );
        print_after(&fake, 0, &mut printer).await.unwrap();
        let printed = String::from_utf8(printer.into_inner()).unwrap();
        assert_eq!(printed.lines().count(), 2490);
        assert_eq!(fake.requests.get(), 3);

        // A head that moves on while paging: what came later is not printed.
        let moving = Fake {
            head: 1200,
            ..Fake::new(2500, |_| true)
        };
        let mut printer = Printer::new(
            Vec::new(),
            crate::cli::output::OutputFormat::Json,
            false,
            Some(5000),
            None,
        );
        print_after(&moving, 100, &mut printer).await.unwrap();
        let printed = String::from_utf8(printer.into_inner()).unwrap();
        let last: Event = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
        assert_eq!((printed.lines().count(), last.id), (1100, 1200));
    }
}
