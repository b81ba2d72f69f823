//! The front panel on the Pi: the firmware crate's status LED, button and watchdog
//! supervisor, bound to real hardware.
//!
//! [`skolebro_firmware`] holds the logic (blink patterns, debouncing, when the watchdog may
//! be kicked) over embedded-hal traits; this module opens what the config names and drives
//! it. On Linux the LED and button are GPIO character-device lines (`/dev/gpiochip0`,
//! through `linux-embedded-hal`'s `CdevPin`) and the watchdog is `/dev/watchdog`
//! ([`LinuxWatchdog`]).
//!
//! The daemon owns one [`Panel`], calls [`Panel::tick`] every [`TICK_MS`] and acts on the
//! [`Gesture`] it returns, and calls [`Panel::show`] whenever its [`AgentState`] changes.
//! With `kind = "none"` (the default, for machines without a panel) the LED and button are
//! absent: `show` only records the state and `tick` never reports a gesture.
//!
//! ```toml
//! # agent.toml: a panel on GPIO 17 (LED) and 27 (button), with the hardware watchdog
//! [panel]
//! kind = "gpio"
//! chip = "/dev/gpiochip0"
//! led_line = 17
//! button_line = 27
//! active_low = true
//! watchdog = "/dev/watchdog"
//! ```
//! `panel = "none"` (or no `panel` at all) means no panel and no watchdog.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::{self, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
pub use skolebro_firmware::watchdog::{TaskId, Verdict};
pub use skolebro_firmware::{AgentState, Gesture, TICK_MS};
use skolebro_firmware::{Supervisor, Watchdog};

/// How many tasks the daemon can put under the watchdog's supervision.
pub const MAX_TASKS: usize = 8;

/// State changes the LED keeps queued between two ticks.
const LED_QUEUE: usize = 4;

/// Which panel the box has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelKind {
    /// No LED and no button (a VM, a Pi in a rack): the state is only recorded.
    #[default]
    None,
    /// An LED and a push button on two lines of a GPIO chip.
    Gpio,
}

/// The `[panel]` section of `agent.toml`, or the shorthand `panel = "none"` / `"gpio"`
/// (the kind with every other field at its default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct PanelConfig {
    pub kind: PanelKind,
    /// The GPIO character device the two lines belong to.
    pub chip: PathBuf,
    /// Line offset of the status LED on `chip` (on the Pi's main chip, the BCM GPIO number).
    pub led_line: u32,
    /// Line offset of the push button on `chip`.
    pub button_line: u32,
    /// Whether a low level means "lit" for the LED and "pressed" for the button: an LED
    /// from 3V3 through a resistor into the pin, and a button from the pin to ground with a
    /// pull-up. `false` for an LED from the pin to ground and a button to 3V3 with a
    /// pull-down.
    pub active_low: bool,
    /// The hardware watchdog device (`/dev/watchdog`). Opening it arms it: from then on the
    /// box resets unless [`Panel::tick`] keeps kicking it. Independent of `kind`.
    pub watchdog: Option<PathBuf>,
}

impl Default for PanelConfig {
    fn default() -> Self {
        Self {
            kind: PanelKind::None,
            chip: PathBuf::from("/dev/gpiochip0"),
            led_line: 17,
            button_line: 27,
            active_low: true,
            watchdog: None,
        }
    }
}

impl<'de> Deserialize<'de> for PanelConfig {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = PanelConfig;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a panel kind ("none" or "gpio") or a [panel] table"#)
            }

            fn visit_str<E: de::Error>(self, kind: &str) -> Result<PanelConfig, E> {
                Ok(PanelConfig {
                    kind: PanelKind::deserialize(kind.into_deserializer())?,
                    ..PanelConfig::default()
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PanelConfig, A::Error> {
                PanelConfig::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_any(Either)
    }
}

/// Why the panel could not be opened or driven.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error("GPIO line {line} of {chip}: {source}")]
    Gpio {
        chip: PathBuf,
        line: u32,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a GPIO panel needs Linux (the GPIO character device)")]
    GpioUnsupported,
    #[error("status LED: {0}")]
    Led(Box<dyn std::error::Error + Send + Sync>),
    #[error("button: {0}")]
    Button(Box<dyn std::error::Error + Send + Sync>),
    #[error("watchdog {path}: {source}")]
    Watchdog {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `/dev/watchdog` (or any file standing in for it): each [`kick`](Watchdog::kick) writes
/// one byte, which restarts the hardware countdown.
///
/// Opening the device arms the watchdog. Dropping this writes the magic character `'V'`
/// before closing, which tells the driver the close is intended and disarms it (unless
/// the kernel was built with `CONFIG_WATCHDOG_NOWAYOUT`); [`keep_armed`](Self::keep_armed)
/// skips that, so the reset still comes.
#[derive(Debug)]
pub struct LinuxWatchdog {
    file: File,
    path: PathBuf,
    disarm_on_drop: bool,
}

impl LinuxWatchdog {
    /// The byte a kick writes: anything but `'V'` (which would request the magic close).
    pub const KICK: u8 = 0;
    /// The magic close character.
    pub const MAGIC_CLOSE: u8 = b'V';

    /// Opens (and so arms) the watchdog at `path`. The file must exist: this never
    /// creates one.
    pub fn open(path: &Path) -> Result<Self, PanelError> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| PanelError::Watchdog {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            file,
            path: path.to_owned(),
            disarm_on_drop: true,
        })
    }

    /// The device this writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the watchdog armed when this is dropped: the hardware resets the box once the
    /// countdown runs out.
    pub fn keep_armed(&mut self) {
        self.disarm_on_drop = false;
    }
}

impl Watchdog for LinuxWatchdog {
    type Error = std::io::Error;

    fn kick(&mut self) -> Result<(), std::io::Error> {
        self.file.write_all(&[Self::KICK])
    }
}

impl Drop for LinuxWatchdog {
    fn drop(&mut self) {
        if self.disarm_on_drop {
            // Nothing useful to do if this fails: the watchdog then resets the box, which
            // is the safe side.
            let _ = self.file.write_all(&[Self::MAGIC_CLOSE]);
        }
    }
}

/// Stands in for the hardware watchdog inside the [`Supervisor`]: a kick the supervisor
/// allows is only noted, and [`Panel`] then kicks the real device it owns. This way the
/// panel keeps the device (to leave it armed on drop after a stall) and sees its errors.
#[derive(Clone, Default)]
struct KickRequest(Arc<AtomicBool>);

impl Watchdog for KickRequest {
    type Error = std::convert::Infallible;

    fn kick(&mut self) -> Result<(), Self::Error> {
        self.0.store(true, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod gpio {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    use linux_embedded_hal::CdevPin;
    use skolebro_firmware::{AgentState, Button, ButtonTiming, Polarity, StatusLed};

    use super::{PanelConfig, PanelError, LED_QUEUE};

    const CONSUMER: &str = "skolebro-agent";

    pub(super) struct Hardware {
        pub led: StatusLed<CdevPin, LED_QUEUE>,
        pub button: Button<CdevPin>,
    }

    impl Hardware {
        pub(super) fn open(config: &PanelConfig, initial: AgentState) -> Result<Self, PanelError> {
            let polarity = if config.active_low {
                Polarity::ActiveLow
            } else {
                Polarity::ActiveHigh
            };
            let gpio_error = |line: u32| {
                move |e: linux_embedded_hal::gpio_cdev::Error| PanelError::Gpio {
                    chip: config.chip.clone(),
                    line,
                    source: Box::new(e),
                }
            };
            let mut chip = Chip::new(&config.chip).map_err(gpio_error(config.led_line))?;
            // The lines are requested without the kernel's ACTIVE_LOW flag: the firmware's
            // Polarity does the inversion, so the raw level is what the pins read and write.
            let dark = u8::from(config.active_low);
            let led = chip
                .get_line(config.led_line)
                .and_then(|line| line.request(LineRequestFlags::OUTPUT, dark, CONSUMER))
                .and_then(CdevPin::new)
                .map_err(gpio_error(config.led_line))?;
            let button = chip
                .get_line(config.button_line)
                .and_then(|line| line.request(LineRequestFlags::INPUT, 0, CONSUMER))
                .and_then(CdevPin::new)
                .map_err(gpio_error(config.button_line))?;
            Ok(Self {
                led: StatusLed::new(led, polarity, initial),
                button: Button::new(button, polarity, ButtonTiming::STANDARD),
            })
        }
    }
}

/// What one [`Panel::tick`] brought.
#[derive(Debug, Default)]
pub struct Tick {
    /// The gesture the person at the box completed on this tick.
    pub gesture: Option<Gesture>,
    /// Whether the watchdog was kicked: `None` without a watchdog or when the kick failed
    /// (see `faults`).
    pub verdict: Option<Verdict>,
    /// Whether every supervised task was alive within its deadline on this tick, with or
    /// without a hardware watchdog: systemd's watchdog, which the panel does not own, is fed
    /// on this.
    pub alive: bool,
    /// What failed on this tick (LED, button, watchdog), for the log. A failed LED write is
    /// retried on the next tick; a failed button read is skipped as a sample.
    pub faults: Vec<PanelError>,
}

/// The LED, button and watchdog the agent drives, as its config names them.
pub struct Panel {
    state: AgentState,
    #[cfg(target_os = "linux")]
    hardware: Option<gpio::Hardware>,
    supervisor: Supervisor<KickRequest, MAX_TASKS>,
    kick_requested: KickRequest,
    watchdog: Option<LinuxWatchdog>,
    now: u32,
}

impl fmt::Debug for Panel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panel")
            .field("state", &self.state)
            .field("gpio", &self.has_gpio())
            .field("watchdog", &self.watchdog.as_ref().map(LinuxWatchdog::path))
            .field("now", &self.now)
            .finish()
    }
}

impl Panel {
    /// A panel with no LED, no button and no watchdog: [`show`](Self::show) records the
    /// state, [`tick`](Self::tick) never reports a gesture.
    pub fn none() -> Self {
        let kick_requested = KickRequest::default();
        Self {
            state: AgentState::NotProvisioned,
            #[cfg(target_os = "linux")]
            hardware: None,
            supervisor: Supervisor::new(kick_requested.clone()),
            kick_requested,
            watchdog: None,
            now: 0,
        }
    }

    /// Opens what `config` names, starting in [`AgentState::NotProvisioned`]. Opening the
    /// watchdog arms it, so it is opened last: a GPIO error leaves it untouched.
    pub fn open(config: &PanelConfig) -> Result<Self, PanelError> {
        #[allow(unused_mut)]
        let mut panel = Self::none();
        match config.kind {
            PanelKind::None => {}
            #[cfg(target_os = "linux")]
            PanelKind::Gpio => panel.hardware = Some(gpio::Hardware::open(config, panel.state)?),
            #[cfg(not(target_os = "linux"))]
            PanelKind::Gpio => return Err(PanelError::GpioUnsupported),
        }
        if let Some(path) = &config.watchdog {
            panel.watchdog = Some(LinuxWatchdog::open(path)?);
        }
        Ok(panel)
    }

    /// Whether an LED and a button are attached.
    pub fn has_gpio(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.hardware.is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Shows `state` from the next tick on.
    pub fn show(&mut self, state: AgentState) {
        self.state = state;
        #[cfg(target_os = "linux")]
        if let Some(hardware) = &mut self.hardware {
            // Only the latest state matters: a discarded older one is not worth a log line.
            let _ = hardware.led.post(state);
        }
    }

    /// The state last passed to [`show`](Self::show).
    pub fn state(&self) -> AgentState {
        self.state
    }

    /// Ticks since the panel was opened: the clock for [`register`](Self::register) and
    /// [`alive`](Self::alive).
    pub fn now(&self) -> u32 {
        self.now
    }

    /// Puts a daemon task under the watchdog: it must call [`alive`](Self::alive) at least
    /// every `deadline_ticks` ticks, or the kicks stop for good and the box resets.
    pub fn register(
        &mut self,
        name: &'static str,
        deadline_ticks: u32,
    ) -> Result<TaskId, skolebro_firmware::watchdog::RegisterError> {
        self.supervisor.register(name, deadline_ticks, self.now)
    }

    /// Records that `task` made progress.
    pub fn alive(&mut self, task: TaskId) -> Result<(), skolebro_firmware::watchdog::UnknownTask> {
        self.supervisor.alive(task, self.now)
    }

    /// The task whose stall stopped the watchdog kicks, if any.
    pub fn stalled(&self) -> Option<&'static str> {
        self.supervisor.stalled()
    }

    /// One tick of the panel: advances the LED pattern, samples the button and kicks the
    /// watchdog if every registered task is alive. Call every [`TICK_MS`]; each device is
    /// tried even if another one failed.
    pub fn tick(&mut self) -> Tick {
        let mut tick = Tick::default();
        self.now = self.now.wrapping_add(1);

        #[cfg(target_os = "linux")]
        if let Some(hardware) = &mut self.hardware {
            if let Err(e) = hardware.led.tick() {
                tick.faults.push(PanelError::Led(Box::new(e)));
            }
            match hardware.button.tick() {
                Ok(gesture) => tick.gesture = gesture,
                Err(e) => tick.faults.push(PanelError::Button(Box::new(e))),
            }
        }

        let verdict = match self.supervisor.tick(self.now) {
            Ok(verdict) => verdict,
            Err(never) => match never {},
        };
        tick.alive = verdict == Verdict::Kicked;
        let kick = self.kick_requested.0.swap(false, Ordering::Relaxed);
        if let Some(watchdog) = &mut self.watchdog {
            if kick {
                match watchdog.kick() {
                    Ok(()) => tick.verdict = Some(verdict),
                    Err(source) => tick.faults.push(PanelError::Watchdog {
                        path: watchdog.path.clone(),
                        source,
                    }),
                }
            } else {
                tick.verdict = Some(verdict);
            }
        }
        tick
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        // A stalled task stopped the kicks so that the hardware resets the box; an orderly
        // shutdown of the process must not cancel that. Otherwise the close disarms it.
        if self.stalled().is_some() {
            if let Some(watchdog) = &mut self.watchdog {
                watchdog.keep_armed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PanelConfig, toml::de::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            #[serde(default)]
            panel: PanelConfig,
        }
        toml::from_str::<Outer>(text).map(|outer| outer.panel)
    }

    fn fake_watchdog() -> tempfile::NamedTempFile {
        tempfile::NamedTempFile::new().unwrap()
    }

    fn written(file: &tempfile::NamedTempFile) -> Vec<u8> {
        std::fs::read(file.path()).unwrap()
    }

    #[test]
    fn no_panel_section_means_no_panel_and_no_watchdog() {
        let config = parse("").unwrap();
        assert_eq!(config, PanelConfig::default());
        assert_eq!(config.kind, PanelKind::None);
        assert_eq!(config.watchdog, None);
    }

    #[test]
    fn the_kind_alone_is_a_shorthand() {
        assert_eq!(parse(r#"panel = "none""#).unwrap(), PanelConfig::default());
        let gpio = parse(r#"panel = "gpio""#).unwrap();
        assert_eq!(gpio.kind, PanelKind::Gpio);
        assert_eq!(gpio.chip, Path::new("/dev/gpiochip0"));
        assert!(parse(r#"panel = "spi""#).is_err());
    }

    #[test]
    fn a_full_panel_table_parses() {
        let config = parse(
            r#"
            [panel]
            kind = "gpio"
            chip = "/dev/gpiochip4"
            led_line = 5
            button_line = 6
            active_low = false
            watchdog = "/dev/watchdog"
            "#,
        )
        .unwrap();
        assert_eq!(
            config,
            PanelConfig {
                kind: PanelKind::Gpio,
                chip: PathBuf::from("/dev/gpiochip4"),
                led_line: 5,
                button_line: 6,
                active_low: false,
                watchdog: Some(PathBuf::from("/dev/watchdog")),
            }
        );
    }

    #[test]
    fn missing_fields_take_defaults() {
        let config = parse("[panel]\nkind = \"gpio\"\nled_line = 22\n").unwrap();
        assert_eq!(config.led_line, 22);
        assert_eq!(config.button_line, PanelConfig::default().button_line);
        assert!(config.active_low);
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        let error = parse("[panel]\nkind = \"gpio\"\nled_pin = 17\n").unwrap_err();
        assert!(error.to_string().contains("led_pin"), "{error}");
        assert!(parse("[panel]\nkind = \"i2c\"\n").is_err());
        assert!(parse("panel = 17").is_err());
    }

    #[test]
    fn a_none_panel_records_state_and_reports_nothing() {
        let mut panel = Panel::open(&PanelConfig::default()).unwrap();
        assert!(!panel.has_gpio());
        assert_eq!(panel.state(), AgentState::NotProvisioned);
        for state in AgentState::ALL {
            panel.show(state);
            assert_eq!(panel.state(), state);
            let tick = panel.tick();
            assert_eq!(tick.gesture, None);
            assert_eq!(tick.verdict, None, "no watchdog, no verdict");
            assert!(tick.alive, "nothing supervised has stalled");
            assert!(tick.faults.is_empty());
        }
        assert_eq!(panel.now(), AgentState::ALL.len() as u32);
    }

    #[test]
    fn a_none_panel_still_supervises_tasks() {
        let mut panel = Panel::none();
        let task = panel.register("sync", 2).unwrap();
        panel.tick();
        panel.alive(task).unwrap();
        panel.tick();
        assert!(panel.tick().alive);
        assert_eq!(panel.stalled(), None);
        assert!(
            !panel.tick().alive,
            "systemd's watchdog goes hungry without a panel too"
        );
        assert_eq!(panel.stalled(), Some("sync"));
    }

    #[test]
    fn kicks_write_a_byte_and_drop_writes_the_magic_close() {
        let device = fake_watchdog();
        let mut watchdog = LinuxWatchdog::open(device.path()).unwrap();
        assert_eq!(written(&device), b"", "opening writes nothing");
        watchdog.kick().unwrap();
        watchdog.kick().unwrap();
        assert_eq!(written(&device), [LinuxWatchdog::KICK; 2]);
        drop(watchdog);
        assert_eq!(written(&device), [0, 0, b'V']);
    }

    #[test]
    fn a_watchdog_kept_armed_is_closed_without_the_magic_character() {
        let device = fake_watchdog();
        let mut watchdog = LinuxWatchdog::open(device.path()).unwrap();
        watchdog.kick().unwrap();
        watchdog.keep_armed();
        drop(watchdog);
        assert_eq!(written(&device), [LinuxWatchdog::KICK]);
    }

    #[test]
    fn a_missing_watchdog_device_is_an_error_not_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        let error = LinuxWatchdog::open(&path).unwrap_err();
        assert!(matches!(error, PanelError::Watchdog { .. }), "{error}");
        assert!(error.to_string().contains("watchdog"), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn the_panel_kicks_its_watchdog_every_tick_and_disarms_on_drop() {
        let device = fake_watchdog();
        let config = PanelConfig {
            watchdog: Some(device.path().to_owned()),
            ..PanelConfig::default()
        };
        let mut panel = Panel::open(&config).unwrap();
        for _ in 0..3 {
            let tick = panel.tick();
            assert_eq!(tick.verdict, Some(Verdict::Kicked));
            assert!(tick.faults.is_empty());
        }
        drop(panel);
        assert_eq!(written(&device), [0, 0, 0, b'V']);
    }

    #[test]
    fn a_stalled_task_stops_the_kicks_and_leaves_the_watchdog_armed() {
        let device = fake_watchdog();
        let config = PanelConfig {
            watchdog: Some(device.path().to_owned()),
            ..PanelConfig::default()
        };
        let mut panel = Panel::open(&config).unwrap();
        panel.register("upload", 2).unwrap();
        assert_eq!(panel.tick().verdict, Some(Verdict::Kicked));
        assert_eq!(panel.tick().verdict, Some(Verdict::Kicked));
        let stalled = Verdict::Withheld { stalled: "upload" };
        let ticked = panel.tick();
        assert_eq!(ticked.verdict, Some(stalled));
        assert!(
            !ticked.alive,
            "systemd's watchdog is not fed after a stall either"
        );
        assert_eq!(panel.tick().verdict, Some(stalled));
        drop(panel);
        assert_eq!(written(&device), [0, 0], "no more kicks, no magic close");
    }

    #[test]
    fn a_gpio_panel_on_a_missing_chip_fails_without_arming_the_watchdog() {
        let device = fake_watchdog();
        let dir = tempfile::tempdir().unwrap();
        let config = PanelConfig {
            kind: PanelKind::Gpio,
            chip: dir.path().join("gpiochip9"),
            watchdog: Some(device.path().to_owned()),
            ..PanelConfig::default()
        };
        let error = Panel::open(&config).unwrap_err();
        if cfg!(target_os = "linux") {
            assert!(error.to_string().contains("gpiochip9"), "{error}");
        }
        assert_eq!(written(&device), b"", "the watchdog was never opened");
    }
}
