"""The LIME parameter tuner (issue 17): per image, search explain_instance's settings for IoU with a reference
and LIME's time, check the front's stability across seeds, and write the front and a parameter file.

`python -m explainers.tuning --preset imagenet10 --reference converged --trials 20 --budget-s 3600 --out DIR`.
"""
