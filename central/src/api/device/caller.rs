//! Who is calling on the device listener, as the handlers see it: the peer address the
//! server attached to the request, and the check of the certificate's device against the
//! store that every request of a device makes.

use std::net::SocketAddr;

use skolebro_provisioning::DeviceIdentity;

use crate::api::error::ApiError;
use crate::state::AppState;
use crate::store::DeviceRecord;

/// The address a device connection comes from, attached to each of its requests: the
/// enrollment rate limit counts per address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// Whether the connection's device may write: registered, not revoked, and registered for
/// the site its certificate names. Asked per request, so a device revoked while its
/// connection is open is refused from its next request on.
pub(crate) async fn authorize(
    state: &AppState,
    identity: &DeviceIdentity,
) -> Result<DeviceRecord, ApiError> {
    let device = &identity.device;
    let Some(record) = state.store.device(device).await? else {
        tracing::warn!(%device, "request refused: unknown_device");
        return Err(ApiError::forbidden(
            "unknown_device",
            format!("device {device} is not registered"),
        ));
    };
    if record.revoked {
        tracing::warn!(%device, "request refused: device_revoked");
        return Err(ApiError::forbidden(
            "device_revoked",
            format!("device {device} is revoked"),
        ));
    }
    if record.site != identity.site {
        tracing::warn!(%device, "request refused: wrong_site (registration)");
        return Err(ApiError::forbidden(
            "wrong_site",
            format!("device {device} is registered for another site"),
        ));
    }
    Ok(record)
}
