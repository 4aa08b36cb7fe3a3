//! Classical machine learning on the kernels (aprender's role in the course seeds).
//!
//! Every model is trained by a plain function taking a row-major [`Matrix`], a
//! target and a `Config` struct, and predicts from the same [`Matrix`] shape:
//!
//! | model | train | paper / reference |
//! |---|---|---|
//! | linear regression (optional ridge) | [`linear::fit`] | least squares by Cholesky of the normal equations in f64 |
//! | logistic regression (L2, class weights) | [`logistic::fit`] | Newton / IRLS (Hastie, Tibshirani & Friedman, ESL §4.4) |
//! | CART decision tree | [`tree::fit`] | Breiman, Friedman, Olshen & Stone, *Classification and Regression Trees* (1984) |
//! | random forest | [`forest::fit`] | Breiman, "Random Forests", Machine Learning 45 (2001) |
//! | histogram gradient boosting | [`gbm::fit`] | Ke et al., "LightGBM", NeurIPS 2017; Friedman, "Greedy Function Approximation" (2001) |
//! | k-means (k-means++) | [`kmeans::fit`] | Arthur & Vassilvitskii, "k-means++", SODA 2007 |
//!
//! Trees are flattened into [`flat::FlatForest`] for cache-friendly single-row and
//! batch prediction; [`metrics`] holds ROC AUC, PR AUC, log-loss and friends;
//! [`io`] saves and loads every model as safetensors plus a JSON header.

pub mod compiled;
pub mod flat;
pub mod forest;
pub mod gbm;
mod hist;
pub mod io;
pub mod kmeans;
pub mod lightgbm;
pub mod linear;
pub mod logistic;
pub mod matrix;
pub mod metrics;
pub mod tree;

pub use matrix::Matrix;
