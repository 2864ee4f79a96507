"""loyalty: a loyalty-program backend with a double-entry points ledger."""
