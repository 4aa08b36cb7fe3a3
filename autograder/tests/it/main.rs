//! Integration tests of the grading engine: hostile submissions graded for real.

mod hostile;
