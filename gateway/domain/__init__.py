"""Pure domain rules: plain functions over plain data, no I/O."""
