"""Things that act in the env: Hugging Face causal LMs, OpenAI-compatible APIs, scripted baselines."""
