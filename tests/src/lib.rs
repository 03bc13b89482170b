//! End-to-end tests of the hepcap binary live in `tests/`.
