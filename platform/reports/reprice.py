"""Re-price an earlier comparison's winning policies under the current hardware model.

Crossbar counts, areas and energies of an ou_row or crossbar_row policy depend only on how many
rows each column group keeps, which its per-layer ratios fix; the weights decide only *which*
rows. So a policy saved in a trial's policy.json can be priced again after a change to `hw`
(index encoding, area scope, component costs) without re-running any search:
``python -m platform.compare ... compare.rebuild_from=<folder> compare.reprice=true``.
Structural granularities (filter, channel) change tensor shapes through coupled channels and
are left as they were measured.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from hw.cost_model import compression_split, price_layers
from hw.cost_report import compare_reports
from hw.layout_types import LayerOccupancy
from hw.spec import hw_spec_from_dict
from mapping.granularity import MASK_GRANULARITIES
from mapping.mapper import map_model
from mapping.report import price_layout
from platform.reports.comparison_table import MethodRun
from platform.search.sweep_folders import trial_dir, trial_key


def reprice_runs(plain: dict[str, Any], runs: list[MethodRun], say) -> list[MethodRun]:
    """The runs with CR, its split and the area/energy gains recomputed from their policy.json."""
    from envs.workload.data import DataConfig
    from envs.workload.models import build_model

    spec = hw_spec_from_dict(dict(plain["hw"]))
    data = DataConfig.from_mapping(dict(plain["data"])).load()
    model_cfg = plain["model"]
    model = build_model(model_cfg["name"], data.num_classes, data.in_channels, model_cfg.get("small_input", True),
                        None, model_cfg.get("stem"))
    shape = (1, data.in_channels, *data.image_size)
    repriced = []
    for run in runs:
        policy = trial_dir(Path(run.sweep_dir), trial_key(run.row.constraint)) / "policy.json"
        if run.granularity not in MASK_GRANULARITIES or not policy.is_file():
            repriced.append(run)
            continue
        document = json.loads(policy.read_text())
        if not document.get("ratios"):
            repriced.append(run)
            continue
        ratios = dict(zip(document["layer_names"], document["ratios"], strict=True))
        layout = map_model(model, ratios, spec, run.granularity, shape)
        occupancies = layout.occupancies()
        cost = price_layout(layout, spec)
        dense = [LayerOccupancy.dense(o.name, o.dense_rows, o.dense_cols, o.positions, spec) for o in occupancies]
        gains = compare_reports(price_layers(spec, dense), cost)
        split = compression_split(spec, occupancies, run.granularity, layout.packing, cost.total_crossbars)
        row = dataclasses.replace(run.row, compression_rate=split.compression_rate, packing_gain=split.packing_gain,
                                  pruning_gain=split.pruning_gain, crossbars=float(cost.total_crossbars),
                                  area_efficiency_gain=gains.area_efficiency_gain,
                                  energy_efficiency_gain=gains.energy_efficiency_gain)
        repriced.append(dataclasses.replace(run, row=row))
    say(f"re-priced {sum(r is not o for r, o in zip(repriced, runs, strict=True))} policies on hw {spec.name} "
        f"({spec.index.encoding} index, {spec.area_scope} area)")
    return repriced
