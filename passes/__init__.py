"""Graph and loop passes: the pass manager, the rewrite engine, lowering, and one module per pass."""
