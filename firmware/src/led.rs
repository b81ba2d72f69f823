//! Status LED: one blink pattern per [`AgentState`].
//!
//! Data flow: the agent posts each state change with [`StatusLed::post`]
//! into a small bounded queue; the agent's timer loop calls
//! [`StatusLed::tick`] every [`TICK_MS`](crate::TICK_MS), which takes at most
//! one event from the queue and drives the LED pin (an embedded-hal
//! [`OutputPin`], on the Pi a linux-embedded-hal GPIO line) through the
//! current state's pattern. There are no delays: each tick does a bounded
//! amount of work and returns.
//!
//! # Blink table
//!
//! Durations are in ticks of 50 ms; every pattern starts lit and repeats.
//!
//! | State                  | Pattern (on/off ticks)      | Looks like                             |
//! |------------------------|-----------------------------|----------------------------------------|
//! | `NotProvisioned`       | 20 on, 20 off               | slow even blink, 1 s / 1 s             |
//! | `Enrolling`            | 2 on, 2 off                 | fast flicker, 5 Hz                     |
//! | `Healthy`              | 58 on, 2 off                | steady on, 100 ms wink every 3 s       |
//! | `HoldingDelta`         | 3 on, 3 off, 3 on, 31 off   | double flash every 2 s                 |
//! | `CentralUnreachable`   | 3 on, 37 off                | single flash every 2 s                 |
//! | `Error`                | 3 on, 3 off ×3, then 25 off | triple flash every 2 s                 |
//! | `Updating`             | 5 on, 5 off                 | medium even blink, 2 Hz                |
//!
//! `Healthy` winks instead of staying solid so that a hung tick loop (LED
//! frozen on or off) never looks healthy. The flash count of the 2-second
//! family grows with urgency: 1 = waiting on the network, 2 = waiting on a
//! person, 3 = broken.

use embedded_hal::digital::OutputPin;
use heapless::Deque;

use crate::{AgentState, Polarity};

/// One step of a blink pattern: the LED is `lit` (or dark) for `ticks` ticks.
///
/// Patterns are const tables of these so the blink table above is data that
/// tests can check, not logic spread over a state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// Whether the LED is lit during this phase.
    pub lit: bool,
    /// How many ticks the phase lasts; always at least 1.
    pub ticks: u16,
}

const fn on(ticks: u16) -> Phase {
    Phase { lit: true, ticks }
}

const fn off(ticks: u16) -> Phase {
    Phase { lit: false, ticks }
}

const NOT_PROVISIONED: &[Phase] = &[on(20), off(20)];
const ENROLLING: &[Phase] = &[on(2), off(2)];
const HEALTHY: &[Phase] = &[on(58), off(2)];
const HOLDING_DELTA: &[Phase] = &[on(3), off(3), on(3), off(31)];
const CENTRAL_UNREACHABLE: &[Phase] = &[on(3), off(37)];
const ERROR: &[Phase] = &[on(3), off(3), on(3), off(3), on(3), off(25)];
const UPDATING: &[Phase] = &[on(5), off(5)];

/// The blink pattern shown for `state` (see the module's blink table).
///
/// Public so that the agent's local status page and the documentation can
/// render exactly what the LED does, from the same table.
pub const fn pattern(state: AgentState) -> &'static [Phase] {
    match state {
        AgentState::NotProvisioned => NOT_PROVISIONED,
        AgentState::Enrolling => ENROLLING,
        AgentState::Healthy => HEALTHY,
        AgentState::HoldingDelta => HOLDING_DELTA,
        AgentState::CentralUnreachable => CENTRAL_UNREACHABLE,
        AgentState::Error => ERROR,
        AgentState::Updating => UPDATING,
    }
}

/// Plays the current state's blink pattern on one LED pin, one tick at a time.
///
/// `Q` is the capacity of the state-change queue. When the queue is full,
/// [`post`](Self::post) discards the *oldest* pending change to make room:
/// the LED must end up showing the newest state, and a state that was
/// already superseded before it could be shown is the least useful one to
/// keep. The discarded state is returned so the caller can log it.
///
/// The queue is drained one event per tick, so a burst of changes is shown
/// as a brief sequence ending in the latest state. Posting the state already
/// shown does not restart its pattern, so an agent that re-reports its
/// state every cycle does not make the LED stutter.
pub struct StatusLed<P, const Q: usize> {
    pin: P,
    polarity: Polarity,
    events: Deque<AgentState, Q>,
    state: AgentState,
    phase: usize,
    elapsed: u16,
    /// Level last written successfully; `None` forces the next write.
    driven: Option<bool>,
}

impl<P: OutputPin, const Q: usize> StatusLed<P, Q> {
    /// Takes ownership of the LED pin and starts in `initial`.
    ///
    /// Nothing is written until the first [`tick`](Self::tick), so
    /// constructing the engine has no side effects on the hardware.
    /// A queue capacity of zero is rejected at compile time, since no state
    /// change could ever arrive.
    pub fn new(pin: P, polarity: Polarity, initial: AgentState) -> Self {
        const { assert!(Q > 0, "StatusLed needs a queue capacity of at least 1") };
        Self {
            pin,
            polarity,
            events: Deque::new(),
            state: initial,
            phase: 0,
            elapsed: 0,
            driven: None,
        }
    }

    /// Queues a state change to be shown from the next tick on.
    ///
    /// Returns the state change that had to be discarded because the queue
    /// was full (the oldest pending one), or `None` if nothing was lost.
    pub fn post(&mut self, state: AgentState) -> Option<AgentState> {
        let dropped = if self.events.is_full() {
            self.events.pop_front()
        } else {
            None
        };
        match self.events.push_back(state) {
            Ok(()) => dropped,
            // Not reachable with Q > 0 (a slot was just freed), but if it
            // were, losing the new event is what we report.
            Err(state) => Some(state),
        }
    }

    /// The state whose pattern is currently playing.
    ///
    /// Lets the agent confirm what the person at the box is seeing, e.g. for
    /// its logs, without keeping a second copy of the state.
    pub fn state(&self) -> AgentState {
        self.state
    }

    /// Advances the pattern by one tick; call exactly once per tick period.
    ///
    /// Applies at most one queued state change, then drives the pin for this
    /// tick. The pin is written only when the level changes, which keeps GPIO
    /// traffic (a syscall per write on the Pi) to the minimum. If the write
    /// fails, the pattern still advances so timing stays honest, the error is
    /// returned, and the write is retried on the next tick.
    pub fn tick(&mut self) -> Result<(), P::Error> {
        if let Some(next) = self.events.pop_front() {
            if next != self.state {
                self.state = next;
                self.phase = 0;
                self.elapsed = 0;
            }
        }

        let steps = pattern(self.state);
        let Some(step) = steps.get(self.phase).copied() else {
            // Cannot happen (phase always wraps within the table); restart
            // the pattern rather than panic.
            self.phase = 0;
            self.elapsed = 0;
            return Ok(());
        };
        self.elapsed = self.elapsed.saturating_add(1);
        if self.elapsed >= step.ticks {
            self.elapsed = 0;
            self.phase = (self.phase + 1) % steps.len();
        }
        self.drive(step.lit)
    }

    fn drive(&mut self, lit: bool) -> Result<(), P::Error> {
        if self.driven == Some(lit) {
            return Ok(());
        }
        self.driven = None;
        if self.polarity.is_high_when(lit) {
            self.pin.set_high()?;
        } else {
            self.pin.set_low()?;
        }
        self.driven = Some(lit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use embedded_hal_mock::eh1::MockError;
    use std::io::ErrorKind;
    use std::vec::Vec;

    /// The lit/dark level the LED shows on each of the first `ticks` ticks
    /// of `state`'s pattern, straight from the table.
    fn expected_levels(state: AgentState, ticks: usize) -> Vec<bool> {
        pattern(state)
            .iter()
            .flat_map(|p| core::iter::repeat_n(p.lit, usize::from(p.ticks)))
            .cycle()
            .take(ticks)
            .collect()
    }

    /// Pin writes an active-high LED should see for `levels`: one per change.
    fn writes_for(levels: &[bool]) -> Vec<Transaction> {
        let mut last = None;
        let mut out = Vec::new();
        for &lit in levels {
            if last != Some(lit) {
                out.push(Transaction::set(if lit { State::High } else { State::Low }));
                last = Some(lit);
            }
        }
        out
    }

    #[test]
    fn every_state_has_a_distinct_well_formed_pattern() {
        for (i, a) in AgentState::ALL.iter().enumerate() {
            let steps = pattern(*a);
            assert!(!steps.is_empty(), "{a:?} has no pattern");
            assert!(steps[0].lit, "{a:?} should start lit");
            assert!(
                steps.iter().all(|p| p.ticks > 0),
                "{a:?} has an empty phase"
            );
            assert!(steps.iter().any(|p| !p.lit), "{a:?} never goes dark");
            for w in steps.windows(2) {
                assert_ne!(w[0].lit, w[1].lit, "{a:?} repeats a level");
            }
            for b in &AgentState::ALL[i + 1..] {
                assert_ne!(pattern(*a), pattern(*b), "{a:?} looks like {b:?}");
            }
        }
    }

    #[test]
    fn each_pattern_plays_its_table_for_two_periods() {
        for state in AgentState::ALL {
            let period: usize = pattern(state).iter().map(|p| usize::from(p.ticks)).sum();
            let levels = expected_levels(state, 2 * period);
            let mut pin = Mock::new(&writes_for(&levels));
            let mut led: StatusLed<_, 4> = StatusLed::new(pin.clone(), Polarity::ActiveHigh, state);
            for _ in 0..2 * period {
                led.tick().expect("mock pin does not fail");
            }
            pin.done();
        }
    }

    #[test]
    fn enrolling_blinks_two_ticks_on_two_ticks_off() {
        let mut pin = Mock::new(&[
            Transaction::set(State::High),
            Transaction::set(State::Low),
            Transaction::set(State::High),
        ]);
        let mut led: StatusLed<_, 1> =
            StatusLed::new(pin.clone(), Polarity::ActiveHigh, AgentState::Enrolling);
        for _ in 0..6 {
            led.tick().expect("mock pin does not fail");
        }
        pin.done();
    }

    #[test]
    fn active_low_wiring_inverts_the_pin() {
        let mut pin = Mock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
        let mut led: StatusLed<_, 1> =
            StatusLed::new(pin.clone(), Polarity::ActiveLow, AgentState::Enrolling);
        for _ in 0..4 {
            led.tick().expect("mock pin does not fail");
        }
        pin.done();
    }

    #[test]
    fn a_posted_state_restarts_from_its_first_phase_on_the_next_tick() {
        // Healthy is lit for 58 ticks; switch to CentralUnreachable after 10.
        // Its pattern starts lit (no write), goes dark after 3 ticks.
        let mut pin = Mock::new(&[Transaction::set(State::High), Transaction::set(State::Low)]);
        let mut led: StatusLed<_, 2> =
            StatusLed::new(pin.clone(), Polarity::ActiveHigh, AgentState::Healthy);
        for _ in 0..10 {
            led.tick().expect("mock pin does not fail");
        }
        assert_eq!(led.post(AgentState::CentralUnreachable), None);
        assert_eq!(
            led.state(),
            AgentState::Healthy,
            "applied on tick, not on post"
        );
        for _ in 0..3 {
            led.tick().expect("mock pin does not fail");
        }
        assert_eq!(led.state(), AgentState::CentralUnreachable);
        led.tick().expect("mock pin does not fail");
        pin.done();
    }

    #[test]
    fn reposting_the_current_state_does_not_restart_the_pattern() {
        // NotProvisioned: 20 on, 20 off. Re-posting it every tick must not
        // keep it lit forever.
        let mut pin = Mock::new(&[Transaction::set(State::High), Transaction::set(State::Low)]);
        let mut led: StatusLed<_, 1> = StatusLed::new(
            pin.clone(),
            Polarity::ActiveHigh,
            AgentState::NotProvisioned,
        );
        for _ in 0..25 {
            assert_eq!(led.post(AgentState::NotProvisioned), None);
            led.tick().expect("mock pin does not fail");
        }
        pin.done();
    }

    #[test]
    fn a_full_queue_drops_the_oldest_change_and_keeps_the_newest() {
        let mut pin = Mock::new(&[Transaction::set(State::High)]);
        let mut led: StatusLed<_, 2> = StatusLed::new(
            pin.clone(),
            Polarity::ActiveHigh,
            AgentState::NotProvisioned,
        );
        assert_eq!(led.post(AgentState::Enrolling), None);
        assert_eq!(led.post(AgentState::Error), None);
        assert_eq!(led.post(AgentState::Healthy), Some(AgentState::Enrolling));
        led.tick().expect("mock pin does not fail");
        assert_eq!(led.state(), AgentState::Error);
        led.tick().expect("mock pin does not fail");
        assert_eq!(led.state(), AgentState::Healthy);
        pin.done();
    }

    #[test]
    fn a_failed_write_is_reported_and_retried_next_tick() {
        let mut pin = Mock::new(&[
            Transaction::set(State::High).with_error(MockError::Io(ErrorKind::Other)),
            Transaction::set(State::High),
        ]);
        let mut led: StatusLed<_, 1> =
            StatusLed::new(pin.clone(), Polarity::ActiveHigh, AgentState::Healthy);
        assert!(led.tick().is_err());
        led.tick().expect("second write succeeds");
        led.tick().expect("no write needed");
        pin.done();
    }
}
