"""JSON that is always valid: NaN and infinity, which `json.dumps` writes as bare words, become null.

Both faces that print JSON (the CLI's `--json`, the server's answers and stream events) pass their figures
through `finite` first; a loss can be infinite and a client's parser must still read the line."""
from __future__ import annotations

import math


def finite(x):
    """`x` with every non-finite float, at any depth of dicts, lists and tuples, replaced by None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x
