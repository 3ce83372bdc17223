//! Database outages: PostgreSQL cut in the middle of a tick, then healed.
