"""What comes in, checked before any model runs: images, the ten presets, LIME settings and the parameter file.

images (decode with caps), user_files (size-limited reads), presets (+ presets.json, the manifest: keys,
files, checksums; the download cache), lime_kwargs (explain_instance's keyword arguments), param_file (the
ten-key file format: load, save, validate), safe_pickle (the restricted unpickler), segmentation (named
segmentations as plain data).
"""
