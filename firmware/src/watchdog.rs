//! Watchdog supervisor: kick the hardware watchdog only while every agent
//! task is alive.
//!
//! Data flow: each long-running agent task (roster sync, upload, update
//! check, ...) is [registered](Supervisor::register) with a deadline and
//! reports [`alive`](Supervisor::alive) with the current tick whenever it
//! makes progress. The agent's timer loop calls [`Supervisor::tick`] every
//! tick; it kicks the hardware [`Watchdog`] (on the Pi, a write to
//! `/dev/watchdog`) only if every task reported within its deadline. If one
//! task stalls, the kicks stop and the hardware resets the Pi, which is the
//! only recovery an unattended box in a school cupboard has.
//!
//! Once a stall is seen the supervisor stays stalled (it never kicks again):
//! a task that hangs and then limps on is still a sign of a broken agent,
//! and a reset that sometimes does not happen would make the failure harder
//! to diagnose than one that always does.

use heapless::Vec;

/// A hardware watchdog that resets the system unless kicked in time.
///
/// embedded-hal 1.0 has no watchdog trait, so this is the minimal one the
/// supervisor needs; the agent implements it over `/dev/watchdog`, tests
/// over a counter.
pub trait Watchdog {
    /// Why a kick failed (e.g. the device file could not be written).
    type Error;

    /// Restarts the hardware countdown.
    fn kick(&mut self) -> Result<(), Self::Error>;
}

/// Handle for a registered task, returned by [`Supervisor::register`].
///
/// Only meaningful for the supervisor that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskId(usize);

/// Why a task could not be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The table already holds as many tasks as its capacity; the caller
    /// chose the capacity for the agent's known set of tasks, so this is a
    /// programming error to report, not a reason to crash the box.
    Full,
}

/// A [`TaskId`] that this supervisor did not issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownTask;

/// What [`Supervisor::tick`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every task was alive within its deadline; the watchdog was kicked.
    Kicked,
    /// A task missed its deadline (now or earlier); the watchdog was not
    /// kicked and will not be again, so the hardware will reset the system.
    /// Carries the name of the first task found stalled, for the log line
    /// written before the reset.
    Withheld {
        /// Name the stalled task was registered under.
        stalled: &'static str,
    },
}

struct Task {
    name: &'static str,
    deadline_ticks: u32,
    last_alive: u32,
}

impl Task {
    /// Stalled if more than `deadline_ticks` passed since the last report.
    /// Wrapping subtraction keeps this right across the tick counter
    /// wrapping around (after about 6.8 years at 50 ms).
    fn stalled_at(&self, now: u32) -> bool {
        now.wrapping_sub(self.last_alive) > self.deadline_ticks
    }
}

/// Kicks a [`Watchdog`] while up to `N` registered tasks are all alive.
///
/// With no tasks registered there is nothing to supervise and the watchdog
/// is kicked, so the box survives the start-up phase before the agent has
/// registered its tasks.
pub struct Supervisor<W, const N: usize> {
    watchdog: W,
    tasks: Vec<Task, N>,
    stalled: Option<&'static str>,
}

impl<W: Watchdog, const N: usize> Supervisor<W, N> {
    /// Takes ownership of the hardware watchdog, with no tasks registered.
    pub fn new(watchdog: W) -> Self {
        Self {
            watchdog,
            tasks: Vec::new(),
            stalled: None,
        }
    }

    /// Adds a task that must report [`alive`](Self::alive) at least every
    /// `deadline_ticks` ticks; the deadline starts counting at `now`.
    ///
    /// Fails with [`RegisterError::Full`] instead of panicking when the table
    /// is full, so a mis-sized table cannot itself take the agent down.
    pub fn register(
        &mut self,
        name: &'static str,
        deadline_ticks: u32,
        now: u32,
    ) -> Result<TaskId, RegisterError> {
        let id = TaskId(self.tasks.len());
        self.tasks
            .push(Task {
                name,
                deadline_ticks,
                last_alive: now,
            })
            .map_err(|_| RegisterError::Full)?;
        Ok(id)
    }

    /// Records that `task` made progress at tick `now`.
    pub fn alive(&mut self, task: TaskId, now: u32) -> Result<(), UnknownTask> {
        let entry = self.tasks.get_mut(task.0).ok_or(UnknownTask)?;
        entry.last_alive = now;
        Ok(())
    }

    /// Checks every task at tick `now` and kicks the watchdog if all are
    /// within their deadline; call once per tick.
    ///
    /// A task that reported exactly `deadline_ticks` ago is still alive.
    /// An error from the watchdog itself is returned as is (the agent should
    /// log it; the hardware will reset if kicks keep failing).
    pub fn tick(&mut self, now: u32) -> Result<Verdict, W::Error> {
        if self.stalled.is_none() {
            self.stalled = self
                .tasks
                .iter()
                .find(|t| t.stalled_at(now))
                .map(|t| t.name);
        }
        if let Some(stalled) = self.stalled {
            return Ok(Verdict::Withheld { stalled });
        }
        self.watchdog.kick()?;
        Ok(Verdict::Kicked)
    }

    /// Name of the task whose stall stopped the kicks, if any.
    ///
    /// Lets the agent show or log why a reset is coming without keeping
    /// the last [`Verdict`] around.
    pub fn stalled(&self) -> Option<&'static str> {
        self.stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct CountingWatchdog {
        kicks: usize,
        fail_next: bool,
    }

    #[derive(Debug, PartialEq)]
    struct KickFailed;

    impl Watchdog for CountingWatchdog {
        type Error = KickFailed;
        fn kick(&mut self) -> Result<(), KickFailed> {
            if core::mem::take(&mut self.fail_next) {
                return Err(KickFailed);
            }
            self.kicks += 1;
            Ok(())
        }
    }

    fn supervisor<const N: usize>() -> Supervisor<CountingWatchdog, N> {
        Supervisor::new(CountingWatchdog::default())
    }

    #[test]
    fn healthy_tasks_keep_the_kicks_coming() {
        let mut sup = supervisor::<2>();
        let sync = sup.register("sync", 10, 0).expect("room");
        let upload = sup.register("upload", 20, 0).expect("room");
        for now in 1..=100 {
            if now % 10 == 0 {
                sup.alive(sync, now).expect("known task");
            }
            if now % 20 == 0 {
                sup.alive(upload, now).expect("known task");
            }
            assert_eq!(sup.tick(now), Ok(Verdict::Kicked));
        }
        assert_eq!(sup.watchdog.kicks, 100);
        assert_eq!(sup.stalled(), None);
    }

    #[test]
    fn stalled_task_stops_the_kicks() {
        let mut sup = supervisor::<2>();
        let sync = sup.register("sync", 10, 0).expect("room");
        sup.register("upload", 5, 0).expect("room");
        for now in 1..=5 {
            sup.alive(sync, now).expect("known task");
            assert_eq!(sup.tick(now), Ok(Verdict::Kicked));
        }
        // "upload" last reported at 0 with a 5-tick deadline.
        sup.alive(sync, 6).expect("known task");
        assert_eq!(sup.tick(6), Ok(Verdict::Withheld { stalled: "upload" }));
        assert_eq!(sup.watchdog.kicks, 5);
        assert_eq!(sup.stalled(), Some("upload"));
    }

    #[test]
    fn a_report_exactly_at_the_deadline_is_in_time() {
        let mut sup = supervisor::<1>();
        let task = sup.register("sync", 10, 0).expect("room");
        assert_eq!(sup.tick(10), Ok(Verdict::Kicked));
        sup.alive(task, 10).expect("known task");
        assert_eq!(sup.tick(20), Ok(Verdict::Kicked));
        assert_eq!(sup.tick(21), Ok(Verdict::Withheld { stalled: "sync" }));
    }

    #[test]
    fn kicks_stay_stopped_after_the_stalled_task_recovers() {
        let mut sup = supervisor::<1>();
        let task = sup.register("sync", 3, 0).expect("room");
        assert_eq!(sup.tick(4), Ok(Verdict::Withheld { stalled: "sync" }));
        sup.alive(task, 5).expect("known task");
        for now in 5..50 {
            sup.alive(task, now).expect("known task");
            assert_eq!(sup.tick(now), Ok(Verdict::Withheld { stalled: "sync" }));
        }
        assert_eq!(sup.watchdog.kicks, 0);
    }

    #[test]
    fn registering_beyond_capacity_is_an_error() {
        let mut sup = supervisor::<2>();
        assert!(sup.register("sync", 10, 0).is_ok());
        assert!(sup.register("upload", 10, 0).is_ok());
        assert_eq!(sup.register("update", 10, 0), Err(RegisterError::Full));
        // The table is unchanged and supervision goes on.
        assert_eq!(sup.tick(5), Ok(Verdict::Kicked));
    }

    #[test]
    fn a_task_id_from_another_supervisor_is_rejected() {
        let mut big = supervisor::<2>();
        big.register("sync", 10, 0).expect("room");
        let second = big.register("upload", 10, 0).expect("room");
        let mut small = supervisor::<1>();
        small.register("sync", 10, 0).expect("room");
        assert_eq!(small.alive(second, 1), Err(UnknownTask));
    }

    #[test]
    fn no_registered_tasks_means_nothing_to_withhold_for() {
        let mut sup = supervisor::<1>();
        assert_eq!(sup.tick(1_000), Ok(Verdict::Kicked));
    }

    #[test]
    fn the_tick_counter_wrapping_around_is_not_a_stall() {
        let mut sup = supervisor::<1>();
        let start = u32::MAX - 3;
        let task = sup.register("sync", 10, start).expect("room");
        for i in 0..30u32 {
            let now = start.wrapping_add(i);
            sup.alive(task, now).expect("known task");
            assert_eq!(sup.tick(now), Ok(Verdict::Kicked), "at {now}");
        }
    }

    #[test]
    fn a_failed_kick_is_reported_and_the_next_one_is_tried() {
        let mut sup = supervisor::<1>();
        sup.register("sync", 10, 0).expect("room");
        sup.watchdog.fail_next = true;
        assert_eq!(sup.tick(1), Err(KickFailed));
        assert_eq!(sup.tick(2), Ok(Verdict::Kicked));
        assert_eq!(sup.watchdog.kicks, 1);
    }
}
