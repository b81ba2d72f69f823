//! Suite cases for [`KeyRotationStore`]: published key rotations, kept once per role and
//! sequence and listed in order.

use super::*;
use crate::store::PublishedRotation;

fn rotation(role: &str, sequence: u64, statement: &[u8]) -> PublishedRotation {
    PublishedRotation {
        role: role.to_owned(),
        sequence,
        statement: statement.to_vec(),
        published: Timestamp(1_000 + sequence as i64),
    }
}

pub(crate) async fn key_rotations_are_published_once_per_role_and_sequence_and_listed_in_order(
    store: &dyn Store,
) {
    assert!(store.key_rotations().await.expect("listed").is_empty());
    for published in [
        rotation("stick", 2, b"stick two"),
        rotation("release", 1, b"release one"),
        rotation("stick", 1, b"stick one"),
    ] {
        assert!(store
            .publish_key_rotation(&published)
            .await
            .expect("published"));
    }
    assert!(!store
        .publish_key_rotation(&rotation("stick", 1, b"stick one"))
        .await
        .expect("the same statement again is a retry"),);
    assert!(matches!(
        store
            .publish_key_rotation(&rotation("stick", 1, b"another stick one"))
            .await,
        Err(StoreError::KeyRotationExists(role, 1)) if role == "stick"
    ));
    assert_eq!(
        store.key_rotations().await.expect("listed"),
        vec![
            rotation("release", 1, b"release one"),
            rotation("stick", 1, b"stick one"),
            rotation("stick", 2, b"stick two"),
        ]
    );
}
