//! Suite cases for [`FleetStore`]: last heartbeats, the command queue with its delivery state,
//! each device's last batch, and the site history the heartbeats write.

use skolebro_protocol::api::{AgentState, Command, Heartbeat};

use super::*;
use crate::store::{SiteHistory, DELIVERED_COMMANDS_KEPT, HISTORY_DAYS, MAX_QUEUED_COMMANDS};

fn heartbeat(state: &str, errors: u64) -> Heartbeat {
    serde_json::from_value(serde_json::json!({
        "version": "0.1.0",
        "state": state,
        "outbox_depth": 2,
        "deviations": {"errors": errors, "warnings": 0},
        "deviation_groups": [{
            "code": "invalid_national_id",
            "severity": "error",
            "count": errors,
            "rows": [{"file": "elevliste.csv", "at": "line 3", "detail": "01*******80"}]
        }],
        "held": {"id": "h1", "reasons": ["deletes 40% of students"],
                 "upserts": {}, "deletes": {"students": 400}}
    }))
    .expect("a heartbeat")
}

fn release(held_id: &str) -> Command {
    Command::Release {
        held_id: held_id.into(),
    }
}

pub(crate) async fn the_last_heartbeat_is_kept_with_its_deviation_groups(store: &dyn Store) {
    enroll_a(store).await;
    assert!(store.fleet_activity().await.expect("fleet").is_empty());
    store
        .record_heartbeat(&device_a(), &heartbeat("holding", 3), Timestamp(1_000))
        .await
        .expect("recorded");
    store
        .record_heartbeat(&device_a(), &heartbeat("healthy", 5), Timestamp(2_000))
        .await
        .expect("recorded");
    // A heartbeat that took longer to arrive than a later one does not replace it.
    store
        .record_heartbeat(&device_a(), &heartbeat("error", 9), Timestamp(1_500))
        .await
        .expect("recorded");
    let fleet = store.fleet_activity().await.expect("fleet");
    let activity = &fleet[&device_a()];
    let last = activity.last_heartbeat.as_ref().expect("a heartbeat");
    assert_eq!(last.state, AgentState::Healthy);
    assert_eq!(last.deviation_groups[0].count, 5);
    assert_eq!(last.deviation_groups[0].rows[0].detail, "01*******80");
    assert_eq!(last.held.as_ref().expect("held").deletes["students"], 400);
    assert_eq!(activity.last_heartbeat_at, Some(Timestamp(2_000)));
    assert!(!fleet.contains_key(&device_b()));
}

pub(crate) async fn queued_commands_are_delivered_once_oldest_first_and_kept_as_delivered(
    store: &dyn Store,
) {
    enroll_a(store).await;
    let queued = store
        .queue_command(&device_a(), &Command::Resync, Timestamp(10))
        .await
        .expect("queued");
    assert_eq!(queued, 1);
    let queued = store
        .queue_command(&device_a(), &release("h1"), Timestamp(20))
        .await
        .expect("queued");
    assert_eq!(queued, 2);
    let waiting = &store.fleet_activity().await.expect("fleet")[&device_a()];
    assert_eq!(waiting.waiting(), vec![Command::Resync, release("h1")]);
    assert_eq!(waiting.last_heartbeat, None);

    let first = store
        .record_heartbeat(&device_a(), &heartbeat("holding", 0), Timestamp(30))
        .await
        .expect("recorded");
    assert_eq!(first, vec![Command::Resync, release("h1")]);
    let second = store
        .record_heartbeat(&device_a(), &heartbeat("healthy", 0), Timestamp(40))
        .await
        .expect("recorded");
    assert!(second.is_empty());

    let activity = &store.fleet_activity().await.expect("fleet")[&device_a()];
    assert!(activity.waiting().is_empty());
    let states: Vec<_> = activity
        .commands
        .iter()
        .map(|queued| (queued.queued_at, queued.delivered_at))
        .collect();
    assert_eq!(
        states,
        vec![
            (Timestamp(10), Some(Timestamp(30))),
            (Timestamp(20), Some(Timestamp(30)))
        ]
    );
}

pub(crate) async fn the_command_queue_per_device_is_bounded(store: &dyn Store) {
    enroll_a(store).await;
    for n in 0..MAX_QUEUED_COMMANDS {
        store
            .queue_command(&device_a(), &Command::Resync, Timestamp(n as i64))
            .await
            .expect("queued");
    }
    let full = store
        .queue_command(&device_a(), &Command::Resync, Timestamp(100))
        .await;
    assert!(
        matches!(&full, Err(StoreError::CommandQueueFull(device)) if *device == device_a()),
        "{full:?}"
    );
    // Another device's queue is its own.
    store
        .queue_command(&device_b(), &Command::Resync, Timestamp(100))
        .await
        .expect("device B's queue has room");
    // Delivery frees the queue, and only the last few delivered are kept.
    let delivered = store
        .record_heartbeat(&device_a(), &heartbeat("healthy", 0), Timestamp(200))
        .await
        .expect("recorded");
    assert_eq!(delivered.len(), MAX_QUEUED_COMMANDS);
    store
        .queue_command(&device_a(), &Command::Resync, Timestamp(300))
        .await
        .expect("queued again");
    let activity = &store.fleet_activity().await.expect("fleet")[&device_a()];
    assert_eq!(activity.commands.len(), DELIVERED_COMMANDS_KEPT + 1);
    assert_eq!(activity.waiting(), vec![Command::Resync]);
}

pub(crate) async fn concurrent_heartbeats_deliver_each_command_once(store: &dyn Store) {
    enroll_a(store).await;
    for n in 0..5 {
        store
            .queue_command(&device_a(), &release(&format!("h{n}")), Timestamp(n))
            .await
            .expect("queued");
    }
    let beat = heartbeat("holding", 0);
    let answers = futures_util::future::join_all((0..8).map(|n| {
        let beat = &beat;
        async move {
            store
                .record_heartbeat(&device_a(), beat, Timestamp(100 + n))
                .await
                .expect("recorded")
        }
    }))
    .await;
    let held_ids = |commands: &[Command]| -> Vec<String> {
        commands
            .iter()
            .map(|command| match command {
                Command::Release { held_id } => held_id.clone(),
                other => panic!("only releases were queued, got {other:?}"),
            })
            .collect()
    };
    for answer in &answers {
        let ids = held_ids(answer);
        assert!(ids.is_sorted(), "each answer oldest first: {ids:?}");
    }
    let mut delivered = held_ids(&answers.concat());
    delivered.sort();
    assert_eq!(
        delivered,
        ["h0", "h1", "h2", "h3", "h4"],
        "every command exactly once"
    );
}

pub(crate) async fn the_last_batch_of_a_device_is_its_newest_transfer(store: &dyn Store) {
    enroll_a(store).await;
    applied(
        store,
        students_delta(&secret_a(), vec![student("s1", "Kari")]),
        1_000,
    )
    .await;
    applied(
        store,
        students_delta(&secret_a(), vec![student("s2", "Ola")]),
        2_000,
    )
    .await;
    let activity = &store.fleet_activity().await.expect("fleet")[&device_a()];
    assert_eq!(activity.last_batch_seq, Some(Seq(2)));
    assert_eq!(activity.last_batch_at, Some(Timestamp(2_000)));
    assert_eq!(activity.last_heartbeat, None);
}

/// A heartbeat reporting `groups` of `(code, severity, count)`, held or not.
fn day_heartbeat(held: bool, groups: &[(&str, &str, u64)]) -> Heartbeat {
    let groups: Vec<_> = groups
        .iter()
        .map(|(code, severity, count)| {
            serde_json::json!({"code": code, "severity": severity, "count": count, "rows": []})
        })
        .collect();
    let held = held.then(|| {
        serde_json::json!({"id": "h1", "reasons": ["deletes 40% of students"],
                           "upserts": {}, "deletes": {"students": 400}})
    });
    serde_json::from_value(serde_json::json!({
        "version": "0.1.0",
        "state": if held.is_some() { "holding" } else { "healthy" },
        "deviation_groups": groups,
        "held": held,
    }))
    .expect("a heartbeat")
}

fn oslo_time(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("a time")
}

pub(crate) async fn the_site_history_keeps_each_days_newest_deviations_and_every_held_day(
    store: &dyn Store,
) {
    enroll_a(store).await;
    store
        .register_device(&device_b(), &site_a(), &key(2))
        .await
        .expect("a second device of site A");
    let beat = |device: DeviceId, heartbeat: Heartbeat, at: &str| {
        let at = oslo_time(at);
        async move {
            store
                .record_heartbeat(&device, &heartbeat, at)
                .await
                .expect("recorded");
        }
    };
    let error = "error";
    let warning = "warning";
    // 1 December in Oslo: held in the morning, released by noon; a heartbeat that took
    // longer to arrive than the noon one does not replace the day's deviations.
    beat(
        device_a(),
        day_heartbeat(true, &[("invalid_national_id", error, 3)]),
        "2026-12-01T08:00:00Z",
    )
    .await;
    beat(
        device_a(),
        day_heartbeat(false, &[("invalid_national_id", error, 5)]),
        "2026-12-01T11:00:00Z",
    )
    .await;
    beat(
        device_a(),
        day_heartbeat(false, &[("invalid_national_id", error, 9)]),
        "2026-12-01T10:00:00Z",
    )
    .await;
    // 23:30 UTC on 1 December is 2 December in Oslo; both devices of the site report.
    beat(
        device_a(),
        day_heartbeat(
            false,
            &[
                ("invalid_national_id", error, 2),
                ("unknown_field", warning, 1),
            ],
        ),
        "2026-12-01T23:30:00Z",
    )
    .await;
    beat(
        device_b(),
        day_heartbeat(false, &[("invalid_national_id", error, 4)]),
        "2026-12-02T09:00:00Z",
    )
    .await;
    let first = oslo_time("2026-12-01T12:00:00Z").oslo_day();
    let history = store
        .site_history(&site_a(), first - 10)
        .await
        .expect("a history");
    assert_eq!(history.held_days, [first].into());
    let counts: Vec<_> = history
        .deviations
        .iter()
        .map(|d| (d.day - first, d.code.as_str(), d.error, d.count))
        .collect();
    assert_eq!(
        counts,
        vec![
            (0, "invalid_national_id", true, 5),
            (1, "invalid_national_id", true, 6),
            (1, "unknown_field", false, 1),
        ]
    );
    // A later first day leaves the earlier ones out; another site has no history.
    let later = store
        .site_history(&site_a(), first + 1)
        .await
        .expect("a history");
    assert!(later.held_days.is_empty() && later.deviations.len() == 2);
    assert_eq!(
        store.site_history(&site_b(), 0).await.expect("a history"),
        SiteHistory::default()
    );
    // A heartbeat HISTORY_DAYS after 1 December drops that day, not the next.
    let at = Timestamp(oslo_time("2026-12-01T12:00:00Z").0 + HISTORY_DAYS * 86_400_000);
    store
        .record_heartbeat(&device_a(), &day_heartbeat(false, &[]), at)
        .await
        .expect("recorded");
    let kept = store.site_history(&site_a(), 0).await.expect("a history");
    assert!(kept.held_days.is_empty());
    let days: Vec<_> = kept.deviations.iter().map(|d| d.day - first).collect();
    assert_eq!(days, vec![1, 1], "{kept:?}");
}

pub(crate) async fn a_days_newer_heartbeat_replaces_its_codes_and_an_older_one_changes_none(
    store: &dyn Store,
) {
    enroll_a(store).await;
    let beat = |heartbeat: Heartbeat, at: &str| {
        let at = oslo_time(at);
        async move {
            store
                .record_heartbeat(&device_a(), &heartbeat, at)
                .await
                .expect("recorded");
        }
    };
    let codes = || async {
        let history = store.site_history(&site_a(), 0).await.expect("a history");
        history
            .deviations
            .into_iter()
            .map(|d| (d.code, d.error, d.count))
            .collect::<Vec<_>>()
    };
    beat(
        day_heartbeat(
            false,
            &[
                ("invalid_national_id", "error", 2),
                ("unknown_field", "warning", 4),
            ],
        ),
        "2026-12-01T08:00:00Z",
    )
    .await;
    // The same report again changes nothing; a later one without a code drops it and
    // takes the other's new count and severity.
    beat(
        day_heartbeat(
            false,
            &[
                ("invalid_national_id", "error", 2),
                ("unknown_field", "warning", 4),
            ],
        ),
        "2026-12-01T09:00:00Z",
    )
    .await;
    assert_eq!(
        codes().await,
        vec![
            ("invalid_national_id".to_owned(), true, 2),
            ("unknown_field".to_owned(), false, 4)
        ]
    );
    beat(
        day_heartbeat(false, &[("unknown_field", "error", 7)]),
        "2026-12-01T10:00:00Z",
    )
    .await;
    assert_eq!(codes().await, vec![("unknown_field".to_owned(), true, 7)]);
    // An older heartbeat of that day arriving late leaves the newest one's codes.
    beat(
        day_heartbeat(false, &[("invalid_national_id", "error", 1)]),
        "2026-12-01T09:30:00Z",
    )
    .await;
    assert_eq!(codes().await, vec![("unknown_field".to_owned(), true, 7)]);
    // A report without deviations empties the day.
    beat(day_heartbeat(false, &[]), "2026-12-01T11:00:00Z").await;
    assert_eq!(codes().await, vec![]);
}
