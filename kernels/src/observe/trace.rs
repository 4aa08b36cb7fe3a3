//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): `traceparent` parsing, child spans, and
//! JSON-lines logs of `tracing` spans.
