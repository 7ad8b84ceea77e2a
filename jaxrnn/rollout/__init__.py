"""Rolling a cell over sequences: ``scan``, the fused BPTT fast path, hand-derived and
truncated BPTT, and gradient diagnostics."""
