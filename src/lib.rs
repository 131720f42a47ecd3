//! wxpush: declarative WeChat push campaigns.
pub mod sandbox;
