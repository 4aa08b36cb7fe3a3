//! Integration tests of the grading engine: hostile submissions graded for real, the progress report.

mod history;
mod hostile;
