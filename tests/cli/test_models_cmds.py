"""``scopenet models list`` / ``show``: every shipped card's headline figure, readable at 80 columns."""
from __future__ import annotations

import json

from scopenet.weights import list_models

from ._run import scopenet


def test_models_list_json_gives_each_cards_headline():
    r = scopenet("models", "list", "--json")
    assert r.returncode == 0, r.output
    rows = {m["name"]: m for m in json.loads(r.stdout)}
    assert set(rows) == {m.name for m in list_models()}
    for name, m in rows.items():
        assert m["headline"] is not None and m["headline"]["label"], name
    # the figures the README quotes, not a baseline's or a previous version's
    assert rows["classify-hsi-six"]["headline"]["value"] == 0.879
    assert rows["superres-spm-x4"]["headline"]["value"] > 36.01  # the model, not bicubic
    assert rows["inpaint-default"]["headline"]["value"] == 0.69
    assert rows["superres-spm-x4"]["task"] == "superres"


def test_models_list_table_keeps_names_and_figures_at_80_columns():
    r = scopenet("models", "list", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.output
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    for m in list_models():
        assert m.name in r.stdout
        assert f"{m.headline.value:.4g}" in r.stdout


def test_models_show_prints_the_card_and_refuses_unknown_names():
    r = scopenet("models", "show", "denoise-default")
    assert r.returncode == 0, r.output
    card = json.loads(r.stdout)
    assert card["card_format"] == 2 and card["task"] == "denoise" and card["metrics"]["headline"]["value"] < 1
    bad = scopenet("models", "show", "no-such-model")
    assert bad.returncode != 0 and "no-such-model" in bad.output and "Traceback" not in bad.output
