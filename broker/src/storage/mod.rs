//! Segmented log storage (in progress).
