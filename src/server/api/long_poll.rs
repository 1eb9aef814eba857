//! Caps on held long-polls (`GET /api/v1/events?wait=`): each holds a
//! connection and a task for up to a minute, so without a cap a client can
//! pin any number of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::protocol::limits::{MAX_LONG_POLLS, MAX_LONG_POLLS_PER_TOKEN};
use crate::server::api::ApiError;

/// Long-polls held now, in all and per token subject.
#[derive(Default)]
pub struct LongPolls {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_subject: HashMap<String, usize>,
}

/// One held long-poll; dropping it frees its place.
pub struct Permit {
    polls: Arc<LongPolls>,
    subject: String,
}

impl LongPolls {
    /// A place for one more long-poll by `subject`: 429 when the subject
    /// holds [`MAX_LONG_POLLS_PER_TOKEN`] already, 503 when the server
    /// holds [`MAX_LONG_POLLS`]. Both say to retry (a poll frees its place
    /// within its `wait`); the client may also ask without `wait`.
    pub fn acquire(polls: &Arc<LongPolls>, subject: &str) -> Result<Permit, ApiError> {
        let mut held = polls.held.lock().expect("long-poll counts");
        let mine = held.by_subject.get(subject).copied().unwrap_or(0);
        if mine >= MAX_LONG_POLLS_PER_TOKEN {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "this token already holds {mine} long-polls, the limit: wait for one to answer, or poll without `wait`"
                ),
                retry_after: 1,
            });
        }
        if held.total >= MAX_LONG_POLLS {
            return Err(ApiError::Unavailable(format!(
                "the server holds {} long-polls, its limit; retry, or use the WebSocket",
                held.total
            )));
        }
        held.total += 1;
        *held.by_subject.entry(subject.to_string()).or_default() += 1;
        Ok(Permit {
            polls: polls.clone(),
            subject: subject.to_string(),
        })
    }

    /// Long-polls held now (for `/health`).
    pub fn held(&self) -> usize {
        self.held.lock().expect("long-poll counts").total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.polls.held.lock().expect("long-poll counts");
        held.total -= 1;
        if let Some(n) = held.by_subject.get_mut(&self.subject) {
            *n -= 1;
            if *n == 0 {
                held.by_subject.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_subject_and_freed_on_drop() {
        let polls = Arc::new(LongPolls::default());
        let mut permits: Vec<Permit> = (0..MAX_LONG_POLLS_PER_TOKEN)
            .map(|_| LongPolls::acquire(&polls, "tv-1").unwrap())
            .collect();
        let refused = LongPolls::acquire(&polls, "tv-1").err().unwrap();
        assert!(matches!(
            refused,
            ApiError::TooManyRequests { retry_after: 1, .. }
        ));
        assert!(LongPolls::acquire(&polls, "tv-2").is_ok());
        permits.pop();
        assert!(LongPolls::acquire(&polls, "tv-1").is_ok());
        drop(permits);
        assert_eq!(polls.held(), 0);
    }

    #[test]
    fn the_server_wide_cap_answers_503() {
        let polls = Arc::new(LongPolls::default());
        let _held: Vec<Permit> = (0..MAX_LONG_POLLS)
            .map(|i| LongPolls::acquire(&polls, &format!("s{i}")).unwrap())
            .collect();
        let refused = LongPolls::acquire(&polls, "another").err().unwrap();
        assert!(matches!(refused, ApiError::Unavailable(_)));
    }
}
