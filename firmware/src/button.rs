//! The front-panel button: debounced gestures from one input pin.
//!
//! Data flow: the agent's timer loop calls [`Button::tick`] every
//! [`TICK_MS`]; the button samples its pin (an embedded-hal
//! [`InputPin`], on the Pi a linux-embedded-hal GPIO line), debounces the
//! reading and returns at most one [`Gesture`]. The agent acts on it: a
//! [`Gesture::SyncNow`] starts a roster sync immediately, a
//! [`Gesture::Reprovision`] re-reads the configuration from the provisioning
//! stick. Sampling on the tick (instead of interrupts) means contact bounce
//! cannot flood the agent, and the timing is exact in ticks.
//!
//! # Gestures
//!
//! - A press released before the hold time is a short press:
//!   [`Gesture::SyncNow`], reported on release (only then is it known not to
//!   become a hold).
//! - Holding for the hold time (10 s with [`ButtonTiming::STANDARD`]) reports
//!   [`Gesture::Reprovision`] once, while still held, so the person gets LED
//!   feedback without having to guess when to let go. Holding longer does not
//!   repeat it, and the release that follows reports nothing. The hold time
//!   is counted in samples that read pressed, from the first one, so a
//!   brief glitch during a hold delays it by the glitch but does not restart
//!   it.
//! - A level must be read on `debounce_ticks` consecutive samples before it
//!   counts; shorter toggles (contact bounce) never produce a gesture.

use embedded_hal::digital::InputPin;

use crate::{Polarity, TICK_MS};

/// What the person at the box asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gesture {
    /// Short press: sync rosters now instead of waiting for the schedule.
    SyncNow,
    /// Long hold: re-provision from the USB stick (e.g. after the school
    /// handed out a new configuration).
    Reprovision,
}

/// Debounce and hold durations, in ticks.
///
/// Kept as ticks so the button never needs a clock; construct with
/// [`ButtonTiming::new`] for a different tick period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ButtonTiming {
    debounce_ticks: u16,
    hold_ticks: u32,
}

impl ButtonTiming {
    /// Timing for the standard [`TICK_MS`] = 50 ms tick: a level must hold
    /// for 2 consecutive samples (so a bounce seen on one sample only is
    /// ignored, at the cost of at most 100 ms latency), and a hold lasts
    /// 10 s (200 ticks), counted from the first sample that saw the press.
    pub const STANDARD: ButtonTiming = ButtonTiming {
        debounce_ticks: 2,
        hold_ticks: 10_000 / TICK_MS,
    };

    /// Custom timing; `None` if `debounce_ticks` is zero (no debouncing at
    /// all) or the hold is not longer than the debounce (a press could never
    /// be short).
    pub const fn new(debounce_ticks: u16, hold_ticks: u32) -> Option<Self> {
        if debounce_ticks == 0 || hold_ticks <= debounce_ticks as u32 {
            None
        } else {
            Some(Self {
                debounce_ticks,
                hold_ticks,
            })
        }
    }
}

/// A debounced push button that turns samples into [`Gesture`]s.
///
/// The button starts out released; if it is already held at power-on, the
/// press is recognised after the debounce time and can become a hold, which
/// lets someone power the box up with the button held to re-provision.
pub struct Button<P> {
    pin: P,
    polarity: Polarity,
    timing: ButtonTiming,
    /// Debounced state.
    pressed: bool,
    /// Consecutive samples that disagreed with `pressed`.
    disagreeing: u16,
    /// Pressed samples in this press, counting the debounce samples.
    held: u32,
    /// Whether this press already fired [`Gesture::Reprovision`].
    hold_fired: bool,
}

impl<P: InputPin> Button<P> {
    /// Takes ownership of the button pin.
    ///
    /// `polarity` says which level means pressed: a button to ground with a
    /// pull-up (the usual Pi wiring) is [`Polarity::ActiveLow`].
    pub fn new(pin: P, polarity: Polarity, timing: ButtonTiming) -> Self {
        Self {
            pin,
            polarity,
            timing,
            pressed: false,
            disagreeing: 0,
            held: 0,
            hold_fired: false,
        }
    }

    /// Samples the pin once; call exactly once per tick period.
    ///
    /// Returns the gesture completed on this tick, if any. A failed read is
    /// returned as an error and leaves the debouncer untouched, as if the
    /// sample had not been taken.
    pub fn tick(&mut self) -> Result<Option<Gesture>, P::Error> {
        let high = self.pin.is_high()?;
        let raw_pressed = self.polarity.is_high_when(true) == high;

        if raw_pressed == self.pressed {
            self.disagreeing = 0;
        } else {
            self.disagreeing = self.disagreeing.saturating_add(1);
            if self.disagreeing >= self.timing.debounce_ticks {
                self.disagreeing = 0;
                self.pressed = raw_pressed;
                if raw_pressed {
                    // The debounce samples already saw the press; the hold
                    // clock below counts this tick as one of them.
                    self.held = u32::from(self.timing.debounce_ticks) - 1;
                    self.hold_fired = false;
                } else {
                    let was_hold = self.hold_fired;
                    self.hold_fired = false;
                    return Ok((!was_hold).then_some(Gesture::SyncNow));
                }
            }
        }

        // Only samples that read pressed count towards the hold: a sample
        // reading released may be the start of the release, and crediting it
        // would turn a press just short of the hold time into a hold.
        if self.pressed && raw_pressed && !self.hold_fired {
            self.held = self.held.saturating_add(1);
            if self.held >= self.timing.hold_ticks {
                self.hold_fired = true;
                return Ok(Some(Gesture::Reprovision));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use embedded_hal_mock::eh1::MockError;
    use std::io::ErrorKind;
    use std::vec::Vec;

    /// Samples for an active-low button: `true` = pressed (pin low).
    fn samples(pressed: &[bool]) -> Vec<Transaction> {
        pressed
            .iter()
            .map(|&p| Transaction::get(if p { State::Low } else { State::High }))
            .collect()
    }

    /// `n` samples at one level.
    fn run(pressed: bool, n: usize) -> Vec<bool> {
        std::vec![pressed; n]
    }

    /// Feeds `pressed` through a standard active-low button and returns
    /// `(tick index, gesture)` for every gesture.
    fn gestures(pressed: &[bool]) -> Vec<(usize, Gesture)> {
        let mut pin = Mock::new(&samples(pressed));
        let mut button = Button::new(pin.clone(), Polarity::ActiveLow, ButtonTiming::STANDARD);
        let mut out = Vec::new();
        for i in 0..pressed.len() {
            if let Some(g) = button.tick().expect("mock pin does not fail") {
                out.push((i, g));
            }
        }
        pin.done();
        out
    }

    fn concat(parts: &[Vec<bool>]) -> Vec<bool> {
        parts.concat()
    }

    #[test]
    fn short_press_asks_for_a_sync_on_release() {
        let input = concat(&[run(false, 3), run(true, 6), run(false, 4)]);
        // Release seen on ticks 9 and 10; debounced on the second.
        assert_eq!(gestures(&input), [(10, Gesture::SyncNow)]);
    }

    #[test]
    fn contact_bounce_never_fires_a_press() {
        // Every toggle lasts one sample, shorter than the 2-sample debounce.
        let bouncing: Vec<bool> = (0..400).map(|i| i % 2 == 0).collect();
        let input = concat(&[run(false, 2), bouncing, run(false, 5)]);
        assert_eq!(gestures(&input), []);
    }

    #[test]
    fn bounce_shorter_than_a_custom_debounce_never_fires() {
        // Debounce 4 samples; bursts of 3 pressed samples are bounce.
        let timing = ButtonTiming::new(4, 20).expect("valid timing");
        let burst = concat(&[run(true, 3), run(false, 1)]);
        let input: Vec<bool> = burst.iter().copied().cycle().take(200).collect();
        let mut pin = Mock::new(&samples(&input));
        let mut button = Button::new(pin.clone(), Polarity::ActiveLow, timing);
        for _ in 0..input.len() {
            assert_eq!(button.tick().expect("mock pin does not fail"), None);
        }
        pin.done();
    }

    #[test]
    fn a_bouncy_press_counts_as_one_sync() {
        let input = concat(&[
            run(false, 2),
            std::vec![true, false, true, false, true],
            run(true, 8),
            std::vec![false, true, false, true],
            run(false, 5),
        ]);
        let got = gestures(&input);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, Gesture::SyncNow);
    }

    #[test]
    fn ten_second_hold_reprovisions_exactly_at_ten_seconds() {
        // 200 pressed samples at 50 ms = 10 s, counted from the first.
        let input = concat(&[run(false, 1), run(true, 200)]);
        assert_eq!(gestures(&input), [(200, Gesture::Reprovision)]);
        // One sample short of that is still a short press once released.
        let input = concat(&[run(false, 1), run(true, 199), run(false, 2)]);
        assert_eq!(gestures(&input), [(201, Gesture::SyncNow)]);
    }

    #[test]
    fn holding_past_ten_seconds_reprovisions_once_and_release_is_silent() {
        // 30 s hold, then release.
        let input = concat(&[run(false, 1), run(true, 600), run(false, 10)]);
        assert_eq!(gestures(&input), [(200, Gesture::Reprovision)]);
    }

    #[test]
    fn bounce_during_a_hold_does_not_restart_the_hold() {
        let mut input = concat(&[run(false, 1), run(true, 100)]);
        input.push(false); // single-sample glitch
        input.extend(run(true, 120));
        input.extend(run(false, 3));
        // The glitch sample itself is not counted: 200 pressed samples are
        // complete one tick later than without it.
        assert_eq!(gestures(&input), [(201, Gesture::Reprovision)]);
    }

    #[test]
    fn a_new_press_after_a_hold_is_a_sync_again() {
        let input = concat(&[run(true, 250), run(false, 5), run(true, 4), run(false, 3)]);
        let kinds: Vec<Gesture> = gestures(&input).into_iter().map(|(_, g)| g).collect();
        assert_eq!(kinds, [Gesture::Reprovision, Gesture::SyncNow]);
    }

    #[test]
    fn active_high_wiring_reads_high_as_pressed() {
        let mut pin = Mock::new(&[
            Transaction::get(State::High),
            Transaction::get(State::High),
            Transaction::get(State::Low),
            Transaction::get(State::Low),
        ]);
        let mut button = Button::new(pin.clone(), Polarity::ActiveHigh, ButtonTiming::STANDARD);
        let got: Vec<_> = (0..4)
            .filter_map(|_| button.tick().expect("mock pin does not fail"))
            .collect();
        assert_eq!(got, [Gesture::SyncNow]);
        pin.done();
    }

    #[test]
    fn a_failed_read_is_reported_and_not_counted_as_a_sample() {
        let mut pin = Mock::new(&[
            Transaction::get(State::Low),
            Transaction::get(State::Low).with_error(MockError::Io(ErrorKind::Other)),
            Transaction::get(State::High),
            Transaction::get(State::High),
        ]);
        let mut button = Button::new(pin.clone(), Polarity::ActiveLow, ButtonTiming::STANDARD);
        assert_eq!(button.tick().expect("first read works"), None);
        assert!(button.tick().is_err());
        // Only one pressed sample was taken, less than the debounce: no press.
        assert_eq!(button.tick().expect("read works"), None);
        assert_eq!(button.tick().expect("read works"), None);
        pin.done();
    }

    #[test]
    fn timing_rejects_no_debounce_and_holds_shorter_than_debounce() {
        assert_eq!(ButtonTiming::new(0, 200), None);
        assert_eq!(ButtonTiming::new(5, 5), None);
        assert!(ButtonTiming::new(1, 2).is_some());
        assert_eq!(ButtonTiming::new(2, 200), Some(ButtonTiming::STANDARD));
    }
}
