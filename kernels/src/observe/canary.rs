//! A canary controller: a percentage of traffic to a new version, judged against error-rate and
//! latency SLOs over a window, promoted or rolled back automatically.
