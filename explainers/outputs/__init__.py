"""What leaves the library: pictures (render), the files of one explanation and of a run (summary: summary.json,
<method>.npy/_mask.png/_overlay.png, iou.csv), the ten-preset report, downloadable bundles (exports) and the
picklable view a UI streams (snapshot)."""
