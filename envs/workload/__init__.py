"""The workload a search prunes: datasets and their splits, models, trained and cached dense baselines,
training, fine-tuning and evaluation. Nothing here knows about the environment or the search."""
