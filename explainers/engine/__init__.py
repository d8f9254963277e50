"""What runs the model: loading (models), the BatchNorm-folded copy for batched passes (inference), float32 vs
opt-in TF32 (precision), stopping a request between batches (cancel), halving a batch on out-of-memory (oom), and
the library versions recorded with each result (provenance)."""
