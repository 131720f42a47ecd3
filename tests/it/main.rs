//! Integration tests: the real `wxpush` binary against the sandbox over real HTTP on
//! 127.0.0.1. One test binary (like ripgrep's and uv's); helpers in `support`.

mod support;

mod accounts;
mod advice;
mod browser;
mod check;
mod layout;
mod resume;
mod sandbox;
mod scaffold;
mod send;
mod snapshots;
