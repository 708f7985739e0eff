//! NRI lifecycle events and the subscription mask a plugin returns from `Configure`.

use std::fmt;

/// The pod and container lifecycle events of NRI, with the numbers of the `Event` enum of
/// `api.proto` (0 is `UNKNOWN`, 15 is `LAST`; neither is an event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A pod sandbox was created and its network set up by the primary CNI.
    RunPodSandbox,
    /// A pod sandbox is being stopped.
    StopPodSandbox,
    /// A pod sandbox is being removed.
    RemovePodSandbox,
    /// A container is being created.
    CreateContainer,
    /// A container was created.
    PostCreateContainer,
    /// A container is being started.
    StartContainer,
    /// A container was started.
    PostStartContainer,
    /// A container is being updated.
    UpdateContainer,
    /// A container was updated.
    PostUpdateContainer,
    /// A container is being stopped.
    StopContainer,
    /// A container was removed.
    RemoveContainer,
    /// A pod sandbox is being updated.
    UpdatePodSandbox,
    /// A pod sandbox was updated.
    PostUpdatePodSandbox,
    /// The runtime asks validators about container adjustments.
    ValidateContainerAdjustment,
}

impl Event {
    /// Every event, in enum order.
    pub const ALL: [Self; 14] = [
        Self::RunPodSandbox,
        Self::StopPodSandbox,
        Self::RemovePodSandbox,
        Self::CreateContainer,
        Self::PostCreateContainer,
        Self::StartContainer,
        Self::PostStartContainer,
        Self::UpdateContainer,
        Self::PostUpdateContainer,
        Self::StopContainer,
        Self::RemoveContainer,
        Self::UpdatePodSandbox,
        Self::PostUpdatePodSandbox,
        Self::ValidateContainerAdjustment,
    ];

    /// The number of this event in the wire enum.
    pub const fn number(self) -> i32 {
        match self {
            Self::RunPodSandbox => 1,
            Self::StopPodSandbox => 2,
            Self::RemovePodSandbox => 3,
            Self::CreateContainer => 4,
            Self::PostCreateContainer => 5,
            Self::StartContainer => 6,
            Self::PostStartContainer => 7,
            Self::UpdateContainer => 8,
            Self::PostUpdateContainer => 9,
            Self::StopContainer => 10,
            Self::RemoveContainer => 11,
            Self::UpdatePodSandbox => 12,
            Self::PostUpdatePodSandbox => 13,
            Self::ValidateContainerAdjustment => 14,
        }
    }

    /// The event with this wire number; `None` for `UNKNOWN`, `LAST` and numbers from a newer API.
    pub fn from_number(number: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.number() == number)
    }

    /// The bit of this event in an [`EventMask`]: `1 << (number - 1)`.
    pub const fn bit(self) -> i32 {
        1 << (self.number() - 1)
    }

    /// The RPC name, as in logs and method paths.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RunPodSandbox => "RunPodSandbox",
            Self::StopPodSandbox => "StopPodSandbox",
            Self::RemovePodSandbox => "RemovePodSandbox",
            Self::CreateContainer => "CreateContainer",
            Self::PostCreateContainer => "PostCreateContainer",
            Self::StartContainer => "StartContainer",
            Self::PostStartContainer => "PostStartContainer",
            Self::UpdateContainer => "UpdateContainer",
            Self::PostUpdateContainer => "PostUpdateContainer",
            Self::StopContainer => "StopContainer",
            Self::RemoveContainer => "RemoveContainer",
            Self::UpdatePodSandbox => "UpdatePodSandbox",
            Self::PostUpdatePodSandbox => "PostUpdatePodSandbox",
            Self::ValidateContainerAdjustment => "ValidateContainerAdjustment",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The events a plugin subscribes to, as the `events` field of `ConfigureResponse`.
///
/// A mask of 0 would mean "every event" to the runtime, so a plugin always sends a non-empty one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventMask(i32);

impl EventMask {
    /// The mask with the given events.
    pub fn of(events: impl IntoIterator<Item = Event>) -> Self {
        Self(events.into_iter().fold(0, |bits, event| bits | event.bit()))
    }

    /// The wire value.
    pub const fn bits(self) -> i32 {
        self.0
    }

    /// Whether `event` is in the mask.
    pub const fn contains(self, event: Event) -> bool {
        self.0 & event.bit() != 0
    }

    /// The events in the mask, in enum order.
    pub fn events(self) -> impl Iterator<Item = Event> {
        Event::ALL
            .into_iter()
            .filter(move |event| self.contains(*event))
    }
}

impl fmt::Display for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.events().map(Event::name).collect();
        write!(f, "{} (0x{:x})", names.join(","), self.0)
    }
}

/// The events Nauti handles: the pod sandbox lifecycle, nothing about containers.
pub const SANDBOX_EVENTS: [Event; 3] = [
    Event::RunPodSandbox,
    Event::StopPodSandbox,
    Event::RemovePodSandbox,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_events_make_mask_seven() {
        let mask = EventMask::of(SANDBOX_EVENTS);
        assert_eq!(mask.bits(), 0b111);
        assert!(mask.contains(Event::StopPodSandbox));
        assert!(!mask.contains(Event::CreateContainer));
        assert_eq!(
            mask.to_string(),
            "RunPodSandbox,StopPodSandbox,RemovePodSandbox (0x7)"
        );
    }

    #[test]
    fn each_event_sets_the_bit_below_its_number() {
        let table = [
            (Event::RunPodSandbox, 1),
            (Event::RemovePodSandbox, 1 << 2),
            (Event::RemoveContainer, 1 << 10),
            (Event::UpdatePodSandbox, 1 << 11),
            (Event::ValidateContainerAdjustment, 1 << 13),
        ];
        for (event, bit) in table {
            assert_eq!(event.bit(), bit, "{event}");
            assert_eq!(EventMask::of([event]).bits(), bit, "{event}");
        }
    }

    #[test]
    fn numbers_round_trip_and_unknowns_are_none() {
        for event in Event::ALL {
            assert_eq!(Event::from_number(event.number()), Some(event));
        }
        for unknown in [0, 15, 16, -1, i32::MAX] {
            assert_eq!(Event::from_number(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn every_event_fits_the_31_bit_mask() {
        let all = EventMask::of(Event::ALL);
        assert_eq!(all.bits(), (1 << 14) - 1);
        assert_eq!(all.events().count(), 14);
    }
}
