//! Integration tests: the real `wxpush` binary against the sandbox over real HTTP on
//! 127.0.0.1. One test binary (like ripgrep's and uv's); helpers in `support`.

mod support;

mod check;
mod resume;
mod send;
