"""Card templates (dataset and model cards), filled through huggingface_hub's card data classes."""
