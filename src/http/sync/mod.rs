pub mod status;
pub mod trigger;
