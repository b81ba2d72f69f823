//! The store test suite, written once and run against every backend.
//!
//! Each case is an async function over `&dyn Store`; `store_suite!(open)` in a backend's test
//! module turns every case into a `#[tokio::test]` on a fresh store from `open`, so SQLite and
//! PostgreSQL are held to exactly the same behaviour. The cases live in files named like the
//! store's areas; this file holds the fixture, the macro and the shared test data.

use std::future::Future;
use std::sync::Arc;

use skolebro_protocol::{
    ChainHead, Delta, DeviceId, DeviceSigningKey, DeviceVerifyingKey, Enrollment, Entity,
    EntityDelta, Gender, Group, Payload, Record, RecordHandle, Roster, School, Seq, SiteId,
    SiteSecret, Student,
};

use super::{
    enrolled_device_id, token_id, AnyRecord, ApplyOutcome, AuditEntry, AuditFilter, Changes,
    ConsumerClient, ConsumerScope, Counts, CurrentRecord, DeviceReason, EnrollRequest, Fylke,
    IncomingBatch, NewRelease, NewToken, NewWindow, Read, ReadFilter, Role, RolloutChange, Store,
    StoreError, Timestamp, TokenRecord, TransferWindow, UiUser, UpdateCounts, UpdateEvent,
    UpdateState,
};

mod access_log;
mod consumer_pages;
mod consumers;
mod devices;
mod fleet;
mod key_rotations;
mod operator_tokens;
mod operators;
mod records;
mod releases;
mod renames;
mod replaced_secret;
mod retention;
mod sealing;
mod sign_in;
mod sites;
mod subjects;
mod tokens;
mod windows;

pub(crate) use access_log::*;
pub(crate) use consumer_pages::*;
pub(crate) use consumers::*;
pub(crate) use devices::*;
pub(crate) use fleet::*;
pub(crate) use key_rotations::*;
pub(crate) use operator_tokens::*;
pub(crate) use operators::*;
pub(crate) use records::*;
pub(crate) use releases::*;
pub(crate) use renames::*;
pub(crate) use replaced_secret::*;
pub(crate) use retention::*;
pub(crate) use sealing::*;
pub(crate) use sign_in::*;
pub(crate) use sites::*;
pub(crate) use subjects::*;
pub(crate) use tokens::*;
pub(crate) use windows::*;

/// A fresh store for one test, and how to remove it afterwards.
pub(crate) trait Fixture {
    fn store(&self) -> Arc<dyn Store>;
    async fn cleanup(self);
}

/// Runs one case on its own task, so the fixture is cleaned up even when the case panics,
/// then passes the panic on.
pub(crate) async fn run<F, B, Fut>(fixture: F, body: B)
where
    F: Fixture,
    B: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body(fixture.store())).await;
    fixture.cleanup().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the test task did not finish: {error}"),
        }
    }
}

macro_rules! store_suite {
    ($open:ident) => {
        $crate::store::suite::store_suite!(@each $open;
            a_delta_shows_up_in_the_current_roster,
            an_update_closes_the_old_version_and_the_past_stays_readable,
            an_upsert_with_unchanged_content_keeps_its_version,
            a_delete_closes_the_record,
            a_replayed_batch_changes_nothing,
            a_gap_is_refused_and_changes_nothing,
            a_forked_chain_is_refused_and_changes_nothing,
            a_snapshot_replaces_the_roster_and_leaves_unchanged_records_alone,
            counts_count_current_records_by_kind,
            concurrent_applies_of_one_batch_apply_it_once,
            an_upsert_whose_handle_does_not_match_its_key_is_refused,
            a_class_move_naming_a_pupil_central_holds_is_stored_and_one_it_lacks_refused,
            a_batch_naming_a_record_twice_is_refused,
            two_sites_stay_separate,
            unknown_revoked_and_misplaced_devices_are_refused,
            registering_a_device_again_is_idempotent_but_a_new_key_conflicts,
            a_site_secret_cannot_change_under_stored_records,
            a_batch_for_a_site_without_a_secret_is_refused,
            a_token_enrolls_one_device_only,
            an_expired_token_changes_nothing,
            a_revoked_token_is_refused,
            an_unknown_token_is_refused,
            enrollment_keeps_the_secret_a_site_already_has,
            a_revoked_device_cannot_enroll_again,
            tokens_are_listed_without_their_hash_and_registered_once,
            devices_are_listed_with_their_site_and_revocation,
            releases_are_registered_once_and_listed_newest_first,
            a_rollout_change_keeps_what_it_does_not_name,
            updates_count_once_per_device_and_state_with_their_reasons,
            current_records_carry_their_handle_and_the_time_they_took_their_content,
            current_schools_are_listed_with_their_site,
            consumer_clients_are_created_once_listed_and_revoked,
            a_consumer_token_names_its_client_until_it_expires_or_the_client_is_revoked,
            operator_accounts_are_created_once_and_sessions_expire,
            a_replaced_password_hash_ends_the_accounts_sessions_only,
            the_audit_log_lists_newest_first,
            each_applied_batch_is_logged_as_a_transfer_once,
            transfers_since_a_time_are_listed_oldest_first_with_their_site,
            one_sites_transfers_since_a_time_are_listed_oldest_first_without_the_others,
            the_audit_log_is_filtered_by_actor_action_and_target_and_paged,
            transfer_windows_are_created_listed_by_county_and_read_by_id,
            a_window_closing_before_it_opens_or_overlapping_its_county_is_refused,
            the_last_heartbeat_is_kept_with_its_deviation_groups,
            the_site_history_keeps_each_days_newest_deviations_and_every_held_day,
            a_days_newer_heartbeat_replaces_its_codes_and_an_older_one_changes_none,
            queued_commands_are_delivered_once_oldest_first_and_kept_as_delivered,
            the_command_queue_per_device_is_bounded,
            concurrent_heartbeats_deliver_each_command_once,
            the_last_batch_of_a_device_is_its_newest_transfer,
            failed_sign_ins_lock_a_name_and_no_other_until_it_signs_in,
            concurrent_sign_ins_cannot_outrun_the_lock,
            a_rename_keeps_the_identity_and_leaves_one_record,
            a_rename_without_its_delete_is_refused_and_changes_nothing,
            a_new_record_under_a_renamed_records_first_key_gets_an_identity_of_its_own,
            a_site_is_registered_with_its_schools_and_a_school_belongs_to_one_site,
            a_school_moves_to_another_site_only_when_it_is_registered,
            an_operator_token_names_its_client_until_it_is_revoked,
            key_rotations_are_published_once_per_role_and_sequence_and_listed_in_order,
            reads_are_logged_and_listed_by_client_and_site_newest_first,
            reads_older_than_the_retention_are_purged_in_bounded_steps,
            paged_lists_answer_exactly_as_the_whole_roster_does,
            paging_columns_follow_renames_moves_and_closes_so_lists_and_feeds_match_the_roster,
            an_enrollment_at_a_school_its_site_holds_no_record_of_is_neither_listed_nor_counted,
            retention_purges_history_and_departed_pupils_school_year_by_school_year,
            a_countys_own_period_keeps_its_sites_history_longer,
            purges_delete_in_bounded_steps_and_only_what_left_before_the_cutoff,
            a_forgotten_site_has_no_records_devices_or_tokens_left,
            a_subject_export_finds_every_version_at_every_site,
            erasing_a_subject_deletes_every_version_and_leaves_a_tombstone,
            a_batch_carrying_an_erased_subject_is_held_back_until_the_tombstone_is_cleared,
            an_erased_pupil_under_a_new_key_is_held_back_with_the_enrollment_naming_it,
        );
    };
    (@each $open:ident; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::store::suite::run($open().await, |store| async move {
                    $crate::store::suite::$name(&*store).await;
                })
                .await;
            }
        )*
    };
}

pub(crate) use store_suite;

// ---------------------------------------------------------------------------------------------
// Test data

pub(crate) fn site_a() -> SiteId {
    SiteId::new("skole-46505").expect("a valid site id")
}

fn site_b() -> SiteId {
    SiteId::new("skole-46506").expect("a valid site id")
}

fn device_a() -> DeviceId {
    DeviceId::new("pi-46505").expect("a valid device id")
}

fn device_b() -> DeviceId {
    DeviceId::new("pi-46506").expect("a valid device id")
}

fn secret_a() -> SiteSecret {
    SiteSecret::from_bytes([0xa1; 32])
}

fn secret_b() -> SiteSecret {
    SiteSecret::from_bytes([0xb2; 32])
}

fn key(seed: u8) -> DeviceVerifyingKey {
    DeviceSigningKey::from_bytes([seed; 32]).verifying_key()
}

fn school() -> School {
    School {
        skolenummer: "46505".into(),
        organisasjonsnummer: Some("974600951".into()),
        kommunenummer: Some("4601".into()),
        fylkesnummer: Some("46".into()),
        name: "Bjølsen skole".into(),
    }
}

pub(crate) fn student(key: &str, given_name: &str) -> Student {
    Student {
        source_key: key.into(),
        national_id: None,
        username: Some(format!("{key}@skole.no").into()),
        given_name: given_name.into(),
        middle_name: None,
        family_name: "Nordmann".into(),
        birth_date: None,
        gender: Gender::Female,
        email: None,
    }
}

fn group(key: &str) -> Group {
    Group {
        source_key: key.into(),
        name: key.into(),
        grade: Some("10".into()),
        school: "46505".into(),
        school_year: Some("2025/2026".into()),
    }
}

fn enrollment(key: &str, student: &str, group: &str) -> Enrollment {
    Enrollment {
        source_key: key.into(),
        student: student.into(),
        school: "46505".into(),
        group: Some(group.into()),
    }
}

fn handle<R: Record>(secret: &SiteSecret, record: &R) -> RecordHandle {
    secret.handle(R::ENTITY, record.key())
}

fn upserts<R: Record + Clone>(secret: &SiteSecret, records: &[R]) -> EntityDelta<R> {
    let mut delta = EntityDelta {
        renames: Vec::new(),
        upserts: records
            .iter()
            .map(|record| (handle(secret, record), record.clone()))
            .collect(),
        deletes: Vec::new(),
    };
    delta.sort();
    delta
}

fn students_delta(secret: &SiteSecret, students: Vec<Student>) -> Payload {
    Payload::Delta(Delta {
        students: upserts(secret, &students),
        ..Delta::default()
    })
}

fn delete_students(secret: &SiteSecret, keys: &[&str]) -> Payload {
    let mut students = EntityDelta {
        renames: Vec::new(),
        upserts: Vec::new(),
        deletes: keys
            .iter()
            .map(|key| secret.handle(Entity::Student, key))
            .collect(),
    };
    students.sort();
    Payload::Delta(Delta {
        students,
        ..Delta::default()
    })
}

fn roster_of_students(students: Vec<Student>) -> Roster {
    Roster {
        students,
        ..Roster::default()
    }
}

/// The digest the fake envelope number `seq` has: any 32 bytes do for the store.
fn digest(seq: Seq) -> [u8; 32] {
    let mut digest = [0xd1; 32];
    digest[..8].copy_from_slice(&seq.0.to_be_bytes());
    digest
}

/// The batch that continues the chain at `head`.
fn batch(
    device: DeviceId,
    site: SiteId,
    head: ChainHead,
    payload: Payload,
    at: i64,
) -> IncomingBatch {
    IncomingBatch {
        device,
        site,
        seq: head.next_seq,
        prev: head.prev,
        next_head: ChainHead::after(head.next_seq, digest(head.next_seq)),
        payload,
        at: Timestamp(at),
        bytes: 1000,
    }
}

async fn enroll(
    store: &dyn Store,
    site: &SiteId,
    device: &DeviceId,
    secret: &SiteSecret,
    seed: u8,
) {
    store
        .set_site_secret(site, secret)
        .await
        .expect("the site secret is stored");
    store
        .register_device(device, site, &key(seed))
        .await
        .expect("the device registers");
}

async fn enroll_a(store: &dyn Store) {
    enroll(store, &site_a(), &device_a(), &secret_a(), 1).await;
}

/// Sends the next batch of device A (site A), as its agent would.
async fn send_a(store: &dyn Store, payload: Payload, at: i64) -> Result<ApplyOutcome, StoreError> {
    let head = store
        .chain_head(&device_a())
        .await
        .expect("the chain head reads");
    store
        .apply(batch(device_a(), site_a(), head, payload, at))
        .await
}

async fn applied(store: &dyn Store, payload: Payload, at: i64) -> Changes {
    match send_a(store, payload, at).await {
        Ok(ApplyOutcome::Applied(changes)) => changes,
        other => panic!("expected the batch to apply, got {other:?}"),
    }
}

async fn current_a(store: &dyn Store) -> Roster {
    store
        .current_roster(&site_a())
        .await
        .expect("the current roster reads")
}

async fn as_of_a(store: &dyn Store, at: i64) -> Roster {
    store
        .roster_as_of(&site_a(), Timestamp(at))
        .await
        .expect("the roster as of a time reads")
}

fn changes(added: u64, changed: u64, removed: u64, unchanged: u64) -> Changes {
    Changes {
        added,
        changed,
        removed,
        unchanged,
        renamed: 0,
    }
}
