//! Typing states: who is typing in which conversation, each ended by the
//! server when not refreshed within [`TYPING_TTL`].

use std::collections::HashMap;

use tokio::time::Instant;

use crate::protocol::presence::{TYPING_REPEAT, TYPING_TTL};
use crate::protocol::TenantId;
use crate::server::gateway::hub::ConnId;

/// One typist in one conversation. `conn` is the connection it types
/// from (`None` for a typist without one, the demo's), so two tabs of one
/// user type apart and a closing tab ends only its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypingKey {
    pub tenant: TenantId,
    pub conversation: String,
    pub user: String,
    pub conn: Option<ConnId>,
}

struct State {
    last_sent: Instant,
    expires: Instant,
}

/// Every typing state of this node.
#[derive(Default)]
pub(super) struct Typing {
    states: HashMap<TypingKey, State>,
}

impl Typing {
    /// Records a `Typing` message; true when it is to be sent on:
    /// `typing: true` that starts a state, or refreshes one last sent on
    /// [`TYPING_REPEAT`] ago or more; `typing: false` that ends one (a
    /// `false` for a state that does not exist was sent already, or never
    /// needed).
    pub fn update(&mut self, key: &TypingKey, typing: bool, now: Instant) -> bool {
        if !typing {
            return self.states.remove(key).is_some();
        }
        match self.states.get_mut(key) {
            Some(state) => {
                state.expires = now + TYPING_TTL;
                if now.duration_since(state.last_sent) >= TYPING_REPEAT {
                    state.last_sent = now;
                    true
                } else {
                    false
                }
            }
            None => {
                self.states.insert(
                    key.clone(),
                    State {
                        last_sent: now,
                        expires: now + TYPING_TTL,
                    },
                );
                true
            }
        }
    }

    /// Ends a connection's states at once: the next expiry sends their
    /// `typing: false`.
    pub fn end_conn(&mut self, conn: ConnId, now: Instant) -> bool {
        let mut any = false;
        for (key, state) in self.states.iter_mut() {
            if key.conn == Some(conn) {
                state.expires = now;
                any = true;
            }
        }
        any
    }

    /// Typing states held now.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Removes and returns the states expired by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<TypingKey> {
        let gone: Vec<TypingKey> = self
            .states
            .iter()
            .filter(|(_, s)| s.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &gone {
            self.states.remove(key);
        }
        gone
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.states.values().map(|s| s.expires).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(conn: u64) -> TypingKey {
        TypingKey {
            tenant: TenantId::parse("acme").unwrap(),
            conversation: "c1".into(),
            user: "ana".into(),
            conn: Some(conn),
        }
    }

    #[test]
    fn repeats_within_a_second_are_sent_once_and_states_expire() {
        let mut t = Typing::default();
        let t0 = Instant::now();
        assert!(t.update(&key(1), true, t0));
        assert!(!t.update(&key(1), true, t0 + Duration::from_millis(500)));
        assert!(t.update(&key(1), true, t0 + Duration::from_millis(1000)));
        assert_eq!(
            t.next_deadline(),
            Some(t0 + Duration::from_millis(1000) + TYPING_TTL)
        );
        assert!(t.expire(t0 + TYPING_TTL).is_empty(), "refreshed");
        assert_eq!(t.expire(t0 + Duration::from_secs(11)), [key(1)]);
        assert!(!t.update(&key(1), false, t0), "nothing to end");
    }

    #[test]
    fn a_closing_connection_ends_only_its_states() {
        let mut t = Typing::default();
        let t0 = Instant::now();
        t.update(&key(1), true, t0);
        t.update(&key(2), true, t0);
        assert!(t.end_conn(1, t0));
        assert_eq!(t.expire(t0), [key(1)]);
        assert!(t.update(&key(2), false, t0));
    }
}
