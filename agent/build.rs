//! Bakes the build time into the agent (`SKOLEBRO_BUILD_UNIX`): the first floor of its clock
//! (DESIGN decision 8), so a Pi that boots without network time never trusts a time from
//! before the software on it existed. `SOURCE_DATE_EPOCH` wins when set, for reproducible
//! builds (Debian sets it).
//!
//! Also bakes in what the updater compares a release against (DESIGN decision 7): the target
//! triple (`SKOLEBRO_TARGET`), and the version the agent reports (`SKOLEBRO_VERSION`: the
//! package version, unless the build sets `SKOLEBRO_VERSION`, so a test can build a second
//! real agent that reports another version).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=SKOLEBRO_BUILD_UNIX={seconds}");

    println!("cargo:rerun-if-env-changed=SKOLEBRO_VERSION");
    let version = std::env::var("SKOLEBRO_VERSION")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| std::env::var("CARGO_PKG_VERSION").ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=SKOLEBRO_VERSION={}", version.trim());
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=SKOLEBRO_TARGET={target}");
}
