//! Service-level objectives as data: error budgets, burn rates, multiwindow multi-burn-rate alerts
//! (Google, *The Site Reliability Workbook*, ch. 5 "Alerting on SLOs"), and the Prometheus recording
//! and alerting rules generated from them.
