//! Suite cases for [`SignInStore`]: the sign-in lock counted per name, shared by every
//! central on the store.

use std::time::Duration;

use super::*;
use crate::store::SignInAllowance;

/// Three failures at once, then one per minute.
const ALLOWANCE: SignInAllowance = SignInAllowance {
    capacity: 3,
    period: Duration::from_secs(180),
};

pub(crate) async fn failed_sign_ins_lock_a_name_and_no_other_until_it_signs_in(store: &dyn Store) {
    let at = Timestamp(1_000_000);
    for _ in 0..3 {
        let wait = store
            .take_sign_in("kari", ALLOWANCE, at)
            .await
            .expect("taken");
        assert_eq!(wait, None);
    }
    let wait = store
        .take_sign_in("kari", ALLOWANCE, at)
        .await
        .expect("read");
    assert_eq!(wait, Some(Duration::from_secs(60)), "locked for a minute");
    let ready = store
        .sign_in_ready("kari", ALLOWANCE, at)
        .await
        .expect("read");
    assert_eq!(ready, Some(Duration::from_secs(60)));
    let other = store
        .sign_in_ready("ola", ALLOWANCE, at)
        .await
        .expect("read");
    assert_eq!(other, None, "another name is not locked");

    let later = Timestamp(at.0 + 60_000);
    let wait = store
        .take_sign_in("kari", ALLOWANCE, later)
        .await
        .expect("read");
    assert_eq!(wait, None, "one more attempt a minute later");
    let wait = store
        .take_sign_in("kari", ALLOWANCE, later)
        .await
        .expect("read");
    assert!(wait.is_some(), "and only one");

    store.forget_sign_ins("kari").await.expect("forgotten");
    let ready = store
        .sign_in_ready("kari", ALLOWANCE, later)
        .await
        .expect("read");
    assert_eq!(ready, None, "a sign-in gives the allowance back");
}

pub(crate) async fn concurrent_sign_ins_cannot_outrun_the_lock(store: &dyn Store) {
    let at = Timestamp(5_000);
    let waits =
        futures_util::future::join_all((0..10).map(|_| store.take_sign_in("kari", ALLOWANCE, at)))
            .await;
    let allowed = waits
        .into_iter()
        .map(|wait| wait.expect("taken"))
        .filter(Option::is_none)
        .count();
    assert_eq!(allowed, 3, "exactly the allowance, however many at once");
}
