//! Optimisers over parameter and gradient slices: SGD with momentum, AdamW, clipping, schedules.
