"""Per-request batch loaders, so a page of results costs a fixed number of round trips."""
