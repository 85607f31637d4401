"""Loaded models: llama.cpp contexts, the scheduler that decodes conversations together, one request's run.

- ``llama/``: the only package in the engine that imports ``llama_cpp`` (model, context, sampler,
  embedder, log routing; ``llama.compute.COMPUTE``: one compute thread steps every scheduler, as
  OpenMP wants one calling thread).
- ``scheduler.py`` with ``request.py`` (Request, Handle), ``slots.py`` (placement, prefix reuse, saved
  KV state) and ``text_stream.py``: every conversation of a loaded model decoded together.
- ``session.py``: one request: template, system prompt, history fit, tokenize, submit; its ``Reply``.
- ``worker/``: each loaded model in a process of its own (``child.py`` holds llama.cpp, the scheduler and
  the embedder; ``client.py`` is the engine's side; ``crashes.py`` remembers what crashed one).
- ``loader.py``: plan a model and start its worker; ``residency.py``: which loaded model serves a request;
  ``registry.py``: keep-alive, memory reservations, unload, eviction.
- ``toolcalls.py``: tool calls out of a reply's text; ``history.py``: fitting a history;
  ``adapters.py``: LoRA headers; ``quantizer.py``: llama.cpp's quantizer in a child process.

Import the submodules directly: importing this package loads nothing heavy.
"""
