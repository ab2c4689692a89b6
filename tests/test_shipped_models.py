"""Every model shipped in scopenet/weights loads by name in a fresh interpreter and runs."""
from __future__ import annotations

import json
import subprocess
import sys

from scopenet.weights import list_models

SCRIPT = r"""
import json, sys, torch
from scopenet.training.packaging import example_input, load_model
out = {}
for name in sys.argv[1:]:
    m = load_model(name)
    x = example_input(m, size=64)
    with torch.no_grad():
        y = m(x)
    out[name] = [list(y.shape), bool(torch.isfinite(y).all())]
print(json.dumps(out))
"""


def test_every_shipped_model_loads_by_name_in_a_fresh_process():
    names = [m.name for m in list_models() if m.source == "shipped"]
    assert names, "no shipped models found in scopenet/weights"
    res = subprocess.run([sys.executable, "-c", SCRIPT, *names], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(out) == sorted(names)
    for name, (shape, finite) in out.items():
        assert shape[0] == 1 and finite, (name, shape, finite)
