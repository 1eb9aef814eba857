//! One rule for one tenant, one evaluation: the state machine
//! inactive -> pending -> firing -> resolved.
//!
//! No flapping: an alert fires only once the condition has held for the
//! rule's `for` (a single spike does not page), and resolves only once the
//! value has been clear of the threshold by the hysteresis band
//! ([`crate::protocol::alerts::HYSTERESIS`]) for `for` as well, so a value
//! hovering at the threshold keeps a firing alert firing and a pending one
//! from ever firing. No value (no traffic) counts as clear.

use chrono::{DateTime, Utc};

use crate::protocol::alerts::{AlertRule, AlertState};
use crate::server::storage::alerts::RuleState;

/// What one evaluation does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Nothing changes.
    Stay,
    /// The condition began to hold: a pending alert.
    Pend,
    /// A pending alert cleared before it fired: forgotten.
    Forget,
    /// The alert fires.
    Fire,
    /// A firing alert's value is clear (from `since`), or no longer:
    /// the state's `since` changes, nothing is notified.
    Clearing(Option<DateTime<Utc>>),
    /// The alert resolves.
    Resolve,
}

/// The step for `rule` in `state` (none: inactive) when it measures
/// `value` at `now`. A rule whose `for` is 0 fires (or resolves) in the
/// evaluation that sees the condition, not one later.
pub fn step(
    rule: &AlertRule,
    state: Option<&RuleState>,
    value: Option<f64>,
    now: DateTime<Utc>,
) -> Step {
    let breached = value.is_some_and(|v| rule.comparator.breached(v, rule.threshold));
    let cleared = value.is_none_or(|v| rule.comparator.cleared(v, rule.threshold));
    let held = |since: Option<DateTime<Utc>>| {
        since.is_some_and(|s| (now - s).to_std().unwrap_or_default() >= rule.for_)
    };
    match state.map(|s| (s.state, s.since)) {
        None | Some((AlertState::Resolved, _)) if breached => {
            if rule.for_.is_zero() {
                Step::Fire
            } else {
                Step::Pend
            }
        }
        None | Some((AlertState::Resolved, _)) => Step::Stay,
        Some((AlertState::Pending, _)) if !breached => Step::Forget,
        Some((AlertState::Pending, since)) if held(since) => Step::Fire,
        Some((AlertState::Pending, _)) => Step::Stay,
        Some((AlertState::Firing, since)) if cleared => match since {
            Some(_) if held(since) => Step::Resolve,
            Some(_) => Step::Stay,
            None if rule.for_.is_zero() => Step::Resolve,
            None => Step::Clearing(Some(now)),
        },
        Some((AlertState::Firing, Some(_))) => Step::Clearing(None),
        Some((AlertState::Firing, None)) => Step::Stay,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::alerts::default_rules;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn state(state: AlertState, since: Option<i64>) -> RuleState {
        RuleState {
            rule_id: "r".into(),
            tenant_id: "acme".into(),
            state,
            alert_id: "a".into(),
            since: since.map(at),
        }
    }

    /// Seed 000's failure-rate rule: > 5 % for 60 s.
    fn rule() -> AlertRule {
        let rule = default_rules().remove(0);
        assert_eq!((rule.threshold, rule.for_), (5.0, Duration::from_secs(60)));
        rule
    }

    #[test]
    fn fires_only_after_holding_for_the_pending_duration() {
        let r = rule();
        assert_eq!(step(&r, None, Some(4.0), at(0)), Step::Stay);
        assert_eq!(step(&r, None, Some(6.0), at(0)), Step::Pend);
        let pending = state(AlertState::Pending, Some(0));
        assert_eq!(step(&r, Some(&pending), Some(6.0), at(59)), Step::Stay);
        assert_eq!(step(&r, Some(&pending), Some(6.0), at(60)), Step::Fire);
        // A spike that ends before the pending duration never fires.
        assert_eq!(step(&r, Some(&pending), Some(5.0), at(30)), Step::Forget);
        assert_eq!(step(&r, Some(&pending), None, at(30)), Step::Forget);
    }

    #[test]
    fn resolves_only_when_clear_of_the_band_for_the_pending_duration() {
        let r = rule();
        let firing = state(AlertState::Firing, None);
        // Under the threshold but inside the 5 % band (4.75): still firing.
        assert_eq!(step(&r, Some(&firing), Some(4.9), at(0)), Step::Stay);
        assert_eq!(
            step(&r, Some(&firing), Some(4.0), at(10)),
            Step::Clearing(Some(at(10)))
        );
        let clearing = state(AlertState::Firing, Some(10));
        assert_eq!(step(&r, Some(&clearing), Some(4.0), at(69)), Step::Stay);
        assert_eq!(step(&r, Some(&clearing), Some(4.0), at(70)), Step::Resolve);
        // Back inside the band: the clearing starts over.
        assert_eq!(
            step(&r, Some(&clearing), Some(4.8), at(40)),
            Step::Clearing(None)
        );
        // No traffic counts as clear.
        assert_eq!(step(&r, Some(&clearing), None, at(70)), Step::Resolve);
    }

    #[test]
    fn a_value_hovering_at_the_threshold_never_flaps() {
        let r = rule();
        let mut current: Option<RuleState> = Some(state(AlertState::Firing, None));
        for i in 0..200 {
            let value = if i % 2 == 0 { 5.1 } else { 4.9 };
            match step(&r, current.as_ref(), Some(value), at(i * 5)) {
                Step::Stay => {}
                other => panic!("{other:?} at evaluation {i}"),
            }
        }
        // Pending, hovering: never holds long enough to fire.
        current = None;
        let mut fired = false;
        for i in 0..200 {
            let value = if i % 2 == 0 { 5.1 } else { 4.9 };
            match step(&r, current.as_ref(), Some(value), at(i * 5)) {
                Step::Pend => current = Some(state(AlertState::Pending, Some(i * 5))),
                Step::Forget => current = None,
                Step::Fire => fired = true,
                _ => {}
            }
        }
        assert!(!fired);
    }

    #[test]
    fn a_zero_pending_duration_acts_in_the_same_evaluation() {
        let mut r = rule();
        r.for_ = Duration::ZERO;
        assert_eq!(step(&r, None, Some(6.0), at(0)), Step::Fire);
        let firing = state(AlertState::Firing, None);
        assert_eq!(step(&r, Some(&firing), Some(1.0), at(5)), Step::Resolve);
    }
}
