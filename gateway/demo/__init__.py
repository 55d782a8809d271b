"""Demo data for `serve --demo` and `seed-demo`."""
