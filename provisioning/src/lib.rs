//! Operations CLI for platform keys, config sticks and release manifests; filled by the provisioning issue.
