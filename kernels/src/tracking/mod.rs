//! MLflow tracking client (placeholder, being written).
