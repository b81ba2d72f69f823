//! The central platform: mTLS ingest, store with history, operator interface; filled by the ingest issue.
