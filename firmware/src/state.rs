//! The agent's externally visible state.
//!
//! The Linux agent computes its state from provisioning, enrolment, sync and
//! update progress and posts it here as an event; [`crate::led`] turns each
//! state into a blink pattern. The enum lives in its own module because the
//! agent crate will share it (for logs and the local status page), so it must
//! not depend on anything panel-specific.

/// What the appliance is doing, as far as the person standing next to it
/// needs to know.
///
/// The variants are ordered roughly by life cycle: a new box is
/// [`NotProvisioned`](AgentState::NotProvisioned), enrols, and then spends
/// its life in [`Healthy`](AgentState::Healthy) with excursions to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// No configuration from the provisioning stick yet; the box cannot do
    /// anything until someone inserts one.
    NotProvisioned,
    /// Provisioned and currently enrolling with the central platform; wait.
    Enrolling,
    /// Enrolled, rosters are flowing, nothing needs attention.
    Healthy,
    /// A roster delta is held back until someone reviews it (for example an
    /// unusually large number of removals); the school needs to act.
    HoldingDelta,
    /// The central platform cannot be reached; rosters are kept locally and
    /// will be sent when it comes back.
    CentralUnreachable,
    /// Something failed that the agent cannot recover from by itself.
    Error,
    /// A software update is being applied; do not unplug.
    Updating,
}

impl AgentState {
    /// Every state, so callers (and tests) can iterate over all of them
    /// without repeating the list.
    pub const ALL: [AgentState; 7] = [
        AgentState::NotProvisioned,
        AgentState::Enrolling,
        AgentState::Healthy,
        AgentState::HoldingDelta,
        AgentState::CentralUnreachable,
        AgentState::Error,
        AgentState::Updating,
    ];
}

#[cfg(test)]
mod tests {
    use super::AgentState;

    #[test]
    fn all_lists_each_state_exactly_once() {
        for (i, a) in AgentState::ALL.iter().enumerate() {
            assert!(!AgentState::ALL[i + 1..].contains(a), "{a:?} listed twice");
        }
    }
}
