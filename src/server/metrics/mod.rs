//! The figures of the platform: what each stored event adds to them
//! ([`rollup`]), the campaign analytics ([`campaign`]), and the
//! aggregator that keeps them live from the event stream.

pub mod aggregator;
pub mod campaign;
pub mod figures;
pub mod handoff;
pub mod prometheus;
pub mod push;
pub mod rollup;
pub mod series;
pub mod system;
pub mod throttle;
