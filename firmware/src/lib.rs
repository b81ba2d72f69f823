//! Front panel (status LED, button) and watchdog logic for the skolebro appliance.
//!
//! The agent on the Raspberry Pi decides *what* is going on (provisioning, syncing
//! rosters, waiting for a reviewer, ...); this crate decides how that is shown on
//! the one status LED, how the one button is read, and when the hardware watchdog
//! may be kicked. It is `no_std` without an allocator and talks to hardware only
//! through embedded-hal 1.0 traits (plus the small [`watchdog::Watchdog`] trait),
//! so the same logic is tested on the host with mocks and could run on a
//! microcontroller front panel; on the Pi the agent binds it to GPIO and
//! `/dev/watchdog`.
//!
//! Everything is driven by the caller calling `tick()` at a fixed period
//! ([`TICK_MS`]); nothing here sleeps, busy-waits or reads a clock, which keeps
//! the timing deterministic and testable tick by tick.
//!
//! ```
//! # use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
//! use skolebro_firmware::{AgentState, Button, ButtonTiming, Polarity, StatusLed};
//! # let mut led_pin = Mock::new(&[Transaction::set(State::High)]);
//! # let mut button_pin = Mock::new(&[Transaction::get(State::High)]);
//! let mut led: StatusLed<_, 4> =
//!     StatusLed::new(led_pin.clone(), Polarity::ActiveHigh, AgentState::NotProvisioned);
//! let mut button = Button::new(button_pin.clone(), Polarity::ActiveLow, ButtonTiming::STANDARD);
//!
//! // Every TICK_MS, from the agent's timer:
//! led.post(AgentState::Enrolling);
//! led.tick()?;
//! if let Some(gesture) = button.tick()? {
//!     // hand the gesture to the agent
//! #   let _ = gesture;
//! }
//! # led_pin.done();
//! # button_pin.done();
//! # Ok::<(), embedded_hal_mock::eh1::MockError>(())
//! ```
//!
//! - [`state`]: the [`AgentState`] the agent reports.
//! - [`led`]: one blink pattern per state, played by [`StatusLed`].
//! - [`button`]: debounced [`Gesture`]s from [`Button`].
//! - [`watchdog`]: the [`Supervisor`] that kicks the hardware watchdog only
//!   while every registered task is alive.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(test)]
extern crate std;

pub mod button;
pub mod led;
pub mod state;
pub mod watchdog;

pub use button::{Button, ButtonTiming, Gesture};
pub use led::{Phase, StatusLed};
pub use state::AgentState;
pub use watchdog::{Supervisor, Watchdog};

/// The tick period, in milliseconds, that the blink tables and
/// [`ButtonTiming::STANDARD`] are written for.
///
/// Durations are counted in ticks rather than milliseconds so that no module
/// needs a clock; the caller owns the timer and must call every `tick()` at
/// this period for the documented durations to hold.
pub const TICK_MS: u32 = 50;

/// Which electrical level means "active" (LED lit, button pressed).
///
/// Boards differ: a button to ground with a pull-up reads low when pressed,
/// and an LED wired from 3V3 through the pin lights when the pin is low.
/// Keeping the wiring choice here lets the pattern and gesture logic speak only
/// of "lit" and "pressed".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// A high pin level means active.
    ActiveHigh,
    /// A low pin level means active.
    ActiveLow,
}

impl Polarity {
    /// Whether the pin should be driven high to make the signal `active`.
    const fn is_high_when(self, active: bool) -> bool {
        match self {
            Polarity::ActiveHigh => active,
            Polarity::ActiveLow => !active,
        }
    }
}
