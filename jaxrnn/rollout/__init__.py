"""Rolling a cell over sequences: ``scan`` and its engines (the fused BPTT engine, the
parallel scan of linear recurrences), truncated BPTT, and gradient diagnostics."""
