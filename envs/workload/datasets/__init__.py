"""Dataset sources (one module per source) and the split containers they are cut into."""
