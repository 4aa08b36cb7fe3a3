//! Load shedding by priority: a token bucket whose last tokens are reserved for the higher
//! priorities, and bounded admission with a `Retry-After` estimate.
