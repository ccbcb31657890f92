//! Autotuning run-time parameters, as Faiss's `AutoTune`: each index reports the
//! parameters worth exploring ([`Index::parameter_ranges`](crate::Index::parameter_ranges)),
//! a [`ParameterSpace`] numbers their combinations, [`ParameterSpace::explore`] measures
//! them against ground truth with a [`Criterion`] (pruning combinations that cannot improve
//! the front), [`OperatingPoints`] keeps the Pareto front of (quality, time), and [`tune`]
//! applies the setting that meets a goal. [`set_index_parameters`] sets parameters from a
//! string such as `"nprobe=16,efSearch=64"`.

mod criterion;
mod points;
mod space;
mod tune;

pub use criterion::Criterion;
pub use points::{OperatingPoint, OperatingPoints};
pub use space::{ExploreEvent, ParameterRange, ParameterSpace, set_index_parameters};
pub use tune::{TuneGoal, TuneReport, tune};
