"""Neuron concept labels for image classifiers, the CLIP-dissect way (see dissection_data/README.md).

The library never imports gradio; the app reads the built tables through `dissection_data.tables`.
"""
