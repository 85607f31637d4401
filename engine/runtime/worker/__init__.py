"""llama.cpp in a worker process per loaded model, as Ollama runs a runner per model.

llama.cpp ends the process on a failed ``GGML_ASSERT``, whatever the caller:
a GGUF whose header passes every check, or a request that meets an edge of
llama.cpp, would otherwise take the API, the app and every other model down
with it. So the engine's own process never runs llama.cpp: each loaded
model lives in a worker (``child.py``) that holds the weights, the batching
scheduler and the embedder, and streams tokens back over a socket pair
(``wire.py``). ``client.py`` is the engine's side; ``crashes.py`` remembers
what crashed a worker, so it is not run again.

- ``spec.py``: what a worker is asked to load, and what it answers;
- ``loaded.py``: the model, its scheduler and embedder, inside the worker.

Importing this package loads nothing; only ``loaded.py`` (in the worker) loads llama.cpp.
"""
