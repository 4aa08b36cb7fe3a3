//! Tests of `kernels::observe`: the Prometheus registry and text format, W3C trace context and JSON logs.

mod prom;
mod trace;
