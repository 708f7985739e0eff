//! Building and merging standard `metav1.Condition`s for the status of `Peer`,
//! `ServiceExport` and `ServiceImport`.
//!
//! Controllers rebuild the whole wanted status on every reconcile. Writing it back unchanged
//! must not move `lastTransitionTime` (which `kubectl` shows and alerts key on) nor cause a
//! patch at all, so [`set_condition`] keeps the old timestamp while the status value stays the
//! same and reports whether anything changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// `status` value of a condition that holds.
pub const TRUE: &str = "True";
/// `status` value of a condition that does not hold.
pub const FALSE: &str = "False";
/// `status` value while it is not known yet.
pub const UNKNOWN: &str = "Unknown";

/// A condition for the object at `observed_generation` (its `metadata.generation`), stamped
/// `now`. `status` is `Some(true)`/`Some(false)`/`None` for True/False/Unknown.
pub fn new_condition(
    type_: &str,
    status: Option<bool>,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: match status {
            Some(true) => TRUE,
            Some(false) => FALSE,
            None => UNKNOWN,
        }
        .to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

/// Puts `wanted` into `conditions`, replacing the condition of the same type. Keeps the old
/// `lastTransitionTime` when the status value did not change. Returns whether the list
/// changed in any field other than that timestamp, i.e. whether a status patch is needed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut wanted: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == wanted.type_) {
        Some(current) => {
            if current.status == wanted.status {
                wanted.last_transition_time = current.last_transition_time.clone();
            }
            let changed = *current != wanted;
            *current = wanted;
            changed
        }
        None => {
            conditions.push(wanted);
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of that type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn setting_an_unchanged_condition_keeps_its_transition_time_and_reports_no_change() {
        let mut list = vec![];
        let first = new_condition(
            "Ready",
            Some(true),
            "HandshakeRecent",
            "",
            Some(1),
            at("2026-01-01T00:00:00Z"),
        );
        assert!(set_condition(&mut list, first.clone()));
        let again = new_condition(
            "Ready",
            Some(true),
            "HandshakeRecent",
            "",
            Some(1),
            at("2026-01-01T00:05:00Z"),
        );
        assert!(!set_condition(&mut list, again));
        assert_eq!(list, [first]);
        assert!(is_true(&list, "Ready"));
    }

    #[test]
    fn a_status_flip_moves_the_transition_time_and_a_new_generation_is_a_change() {
        let mut list = vec![new_condition(
            "Ready",
            Some(true),
            "A",
            "",
            Some(1),
            at("2026-01-01T00:00:00Z"),
        )];
        assert!(set_condition(
            &mut list,
            new_condition(
                "Ready",
                Some(true),
                "A",
                "",
                Some(2),
                at("2026-01-01T00:01:00Z")
            )
        ));
        assert_eq!(list[0].last_transition_time, at("2026-01-01T00:00:00Z"));
        assert_eq!(list[0].observed_generation, Some(2));
        assert!(set_condition(
            &mut list,
            new_condition(
                "Ready",
                None,
                "Pending",
                "",
                Some(2),
                at("2026-01-01T00:02:00Z")
            )
        ));
        assert_eq!(
            (list[0].status.as_str(), &list[0].last_transition_time),
            (UNKNOWN, &at("2026-01-01T00:02:00Z"))
        );
        assert!(!is_true(&list, "Ready"));
        assert!(set_condition(
            &mut list,
            new_condition(
                "Valid",
                Some(false),
                "InvalidSpec",
                "bad",
                Some(2),
                at("2026-01-01T00:02:00Z")
            )
        ));
        assert_eq!(list.len(), 2);
        assert_eq!(find(&list, "Valid").map(|c| c.status.as_str()), Some(FALSE));
    }
}
