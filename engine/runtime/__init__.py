"""Loaded models: llama.cpp contexts, the scheduler that decodes conversations together, options, templates.

- ``llama.py``: the only module in the engine that imports ``llama_cpp``.
- ``scheduler.py``: every conversation of a loaded model decoded together, one token each per step;
  all schedulers are stepped by one compute thread (``llama.COMPUTE``: OpenMP wants one calling thread).
- ``loader.py``: plan, load and size a model; ``registry.py``: keep-alive, unload, eviction.
- ``options.py``: Ollama's option names; ``templates.py``: chat templates; ``history.py``: fitting a history.

Import the submodules directly: importing this package loads nothing heavy.
"""
