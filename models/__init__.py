"""vssm.models: one file per model family; importing a file registers its models with timm."""
