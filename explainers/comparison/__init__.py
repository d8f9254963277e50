"""Comparing methods on one image: one binarising rule for every map (masks), and IoU / Dice between masks
(agreement)."""
