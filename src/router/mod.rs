//! Request routing: path normalization, pattern matching, specificity and templates.
