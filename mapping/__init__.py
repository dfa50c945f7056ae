"""Crossbar-aware pruning and compact mapping with an indexed OU data path (docs/hardware-model.md).

One job per module, imported from where it lives (this package imports nothing, so that
`mapping.granularity` stays cheap to import for env workers):

- matrices: prunable layers, their R x C matrices and output positions, mask back-conversion.
- granularity: ratio -> mask for ou_row / crossbar_row, by L2 norm inside each column group.
- structural: the filter / channel baselines with torch-pruning (physically smaller models).
- packing: compaction into OU slots with index tables, slot-to-crossbar packing, utilization.
- layout: ModelLayout (what hw prices and executes) and its atomic, checksummed save/load.
- mapper: map_model / prune_and_map / apply_masks, the front door.
- crossbar_model: CrossbarModel, a model whose conv/linear layers run on the hw simulator.
- report: map_report, the engine of the inspect command.
"""
