"""Loaded models: llama.cpp contexts, the scheduler that decodes conversations together, options, templates.

``llama.py`` is the only module in the engine that imports ``llama_cpp``.
"""

from engine.runtime.loaded import LLAMA_LOG, LoadedModel, LoadOptions, model_path, route_llama_log

__all__ = ["LLAMA_LOG", "LoadOptions", "LoadedModel", "model_path", "route_llama_log"]
