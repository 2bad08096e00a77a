//! Synthetic tenants (placeholder until written).
