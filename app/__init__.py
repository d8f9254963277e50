"""XAI Lens web app (Gradio): a thin layer of layout and wiring over explainers/ and dissection_data/."""
