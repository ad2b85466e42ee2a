//! One file per route.

pub mod health;
pub mod initialize;
pub mod invoke;
pub mod pre_stop;
