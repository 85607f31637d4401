"""The engine's one door to llama.cpp: thin, typed wrappers over llama-cpp-python's low-level bindings.

The modules of this package are the only ones in the engine that import
``llama_cpp``. They offer what the scheduler needs and no policy:

- ``model.py``: a ``Model`` (weights, LoRA adapters, vocabulary), checked before llama.cpp sees it;
- ``context.py``: a ``Context`` (a KV cache with several sequences), decoded a ``Batch`` at a time;
- ``sampler.py``: a ``Sampler`` (llama.cpp's own sampler chain); ``embedder.py``: an ``Embedder``;
- ``compute.py``: ``COMPUTE``, the one thread that runs every decode (OpenMP wants one calling thread);
- ``log.py``: llama.cpp's log, routed into ``LLAMA_LOG`` and a size-capped file instead of stderr;
- ``backend.py``: the backend started once, and whether the build can offload to a GPU;
- ``quantize.py``: llama.cpp's quantizer, for the child process of ``engine.runtime.quantizer``.

Why not llama-cpp-python's high-level ``Llama``: it runs one sequence, forces
flash attention off (llama.cpp's own default is auto: +10-40% on an H100),
copies a 512 x n_vocab scores array with every state save, and its
``token_to_piece`` returns a whole padded buffer.

Import the submodules directly: importing this package loads nothing (not even llama.cpp).

    model = Model.load(path, n_gpu_layers=-1)
    ctx = Context(model, n_ctx=4096, n_seq_max=4, n_threads=physical_cores())
    batch = Batch(512)
    last = batch.add_run(model.tokenize("The capital of France is"), 0, seq=0, logits_last=True)
    ctx.decode(batch)
    token = Sampler(model, temperature=0).sample(ctx, last)
"""
